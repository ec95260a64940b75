"""Campaign texts written through Bedrock, with the local template whenever it cannot.

Bedrock (the process's client and circuit breaker, insights/bedrock.py, the same ones the
insights use) writes a message's subject and opening paragraph from facts that name no one:
the campaign kind, the items' names, prices and reasons, the offer. The greeting, the item
list, the offer and the unsubscribe line stay the local template's (`messages.compose`), so a
message never shows a price, an item or a promise the campaign did not make. The answer is one
forced tool call checked like any untrusted input; a refused answer, an error, a timeout or an
open circuit keeps the local text, and the message records which wrote it (`source`).

Calls run `concurrency` at a time: Bedrock's quotas are per account, and a campaign must not
starve the insights calls sharing them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from omnix_recs.insights.bedrock import BedrockAnalyst, BedrockError, tool_request
from omnix_recs.marketing.messages import MAX_SUBJECT_LENGTH, compose
from omnix_recs.marketing.records import SOURCE_BEDROCK, CampaignKind, CampaignMessage
from omnix_recs.progress import track

log = logging.getLogger("omnix.marketing")

TOOL_NAME = "write_campaign_message"
TOOL_DESCRIPTION = "Record the subject line and opening paragraph of one supermarket marketing e-mail."
SYSTEM_PROMPT = (
    "You write short marketing e-mails for a supermarket. You receive the campaign's purpose, the "
    "products the e-mail lists (with why each was chosen) and any offer. Write a subject line and "
    "one opening paragraph: warm, plain, specific to these products and this purpose. Do not greet "
    "the reader, do not list prices, do not promise anything that is not in the offer, do not add "
    f"links. Answer by calling the {TOOL_NAME} tool."
)
MAX_OPENING_LENGTH = 600
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_LENGTH - 20},
        "opening": {"type": "string", "minLength": 1, "maxLength": MAX_OPENING_LENGTH},
    },
    "required": ["subject", "opening"],
    "additionalProperties": False,
}
_PURPOSES = {
    CampaignKind.PERSONALIZED_EMAIL: "weekly personalised picks",
    CampaignKind.ABANDONED_CART: "products left in the cart without buying them",
    CampaignKind.WIN_BACK: "a customer who has not shopped for longer than usual; products they used to buy",
    CampaignKind.REPLENISHMENT_REMINDER: "products the customer usually buys and is about to run out of",
    CampaignKind.NEW_PRODUCT_DISCOVERY: "products the customer has never bought, chosen from what they like",
    CampaignKind.LOYALTY_REWARD: "a thank-you to one of the shop's most loyal customers",
}
# Links and markup would let a model's text send readers somewhere the campaign did not choose.
_FORBIDDEN = re.compile(r"https?://|www\.|<[a-z/!]", re.IGNORECASE)
MAX_TOKENS = 400
DEFAULT_CONCURRENCY = 8

Progress = Callable[[int, int], None]


def message_facts(kind: CampaignKind, message: CampaignMessage) -> dict[str, Any]:
    """What Bedrock is told about one message: nothing about who receives it."""
    return {
        "purpose": _PURPOSES[kind],
        "products": [
            {"name": i.name or i.product_id, "price": round(i.price, 2), "why": list(i.reasons[:1])}
            for i in message.items
        ],
        "offer": message.offer,
    }


def message_request(model_id: str, kind: CampaignKind, message: CampaignMessage) -> dict[str, Any]:
    return tool_request(
        model_id,
        system=SYSTEM_PROMPT,
        user_text="The e-mail (JSON):\n" + json.dumps(message_facts(kind, message), sort_keys=True),
        tool_name=TOOL_NAME,
        tool_description=TOOL_DESCRIPTION,
        input_schema=MESSAGE_SCHEMA,
        max_tokens=MAX_TOKENS,
        temperature=0.5,
    )


def validate_text(answer: Any) -> tuple[str, str]:
    """(subject, opening) from the tool input, or `ValueError` saying what is wrong."""
    if not isinstance(answer, dict):
        raise ValueError(f"expected an object, got {type(answer).__name__}")
    extra = set(answer) - set(MESSAGE_SCHEMA["properties"])
    if extra:
        raise ValueError(f"unexpected fields {sorted(extra)}")
    texts = []
    for field, limit in (("subject", MAX_SUBJECT_LENGTH - 20), ("opening", MAX_OPENING_LENGTH)):
        value = answer.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{field}: must be non-empty text")
        value = " ".join(value.split()) if field == "subject" else value.strip()
        if len(value) > limit:
            raise ValueError(f"{field}: longer than {limit} characters")
        if _FORBIDDEN.search(value):
            raise ValueError(f"{field}: contains a link or markup")
        texts.append(value)
    return texts[0], texts[1]


@dataclass(frozen=True, slots=True)
class WriteReport:
    bedrock: int  # messages Bedrock wrote
    local: int  # messages left with the local text
    fallbacks: dict[str, int]  # why Bedrock did not write (BedrockError.kind) -> messages


class MessageWriter:
    """Rewrites locally written messages through Bedrock when it is enabled (`bedrock` given)."""

    def __init__(
        self, bedrock: BedrockAnalyst | None, *, budget_s: float = 8.0, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self.bedrock = bedrock
        self.budget_s = budget_s
        self.concurrency = max(1, concurrency)

    def rewrite(
        self,
        kind: CampaignKind,
        messages: Sequence[CampaignMessage],
        names: Sequence[str],
        *,
        progress: Progress | None = None,
    ) -> tuple[list[CampaignMessage], WriteReport]:
        """`messages` (local text) with Bedrock's text where it answered; `names[i]` is the first
        name greeting message i ("" = none)."""
        if self.bedrock is None or not messages:
            return list(messages), WriteReport(0, len(messages), {})
        bedrock = self.bedrock
        fallbacks: Counter[str] = Counter()
        lock = threading.Lock()

        def write(k: int) -> CampaignMessage:
            message = messages[k]
            try:
                subject, opening = bedrock.call_tool(
                    message_request(bedrock.model_id, kind, message), validate_text, budget_s=self.budget_s
                )
            except BedrockError as exc:
                with lock:
                    fallbacks[exc.kind] += 1
                return message
            subject, body = compose(subject, opening, names[k], message.items, message.offer, greeted=False)
            return dataclasses.replace(message, subject=subject, body=body, source=SOURCE_BEDROCK)

        written: list[CampaignMessage] = []
        with (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="omnix-campaign-text") as pool,
            track("campaign texts through Bedrock", total=len(messages), unit="messages") as shown,
        ):
            for done, message in enumerate(pool.map(write, range(len(messages))), start=1):
                written.append(message)
                shown.advance()
                if progress is not None and (done % 100 == 0 or done == len(messages)):
                    progress(done, len(messages))
        by_bedrock = sum(m.source == SOURCE_BEDROCK for m in written)
        if fallbacks:
            log.warning("campaign texts fell back to the local template", extra={"reasons": dict(fallbacks)})
        return written, WriteReport(by_bedrock, len(written) - by_bedrock, dict(fallbacks))
