"""A campaign's messages as files an e-mail or push sender reads: JSON Lines or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.marketing.records import CampaignMessage

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "campaign_id",
    "customer_id",
    "send_at",
    "subject",
    "body",
    "offer",
    "product_ids",
    "items_json",
    "source",
)


def write_messages(messages: Iterable[CampaignMessage], out: TextIO, fmt: str) -> int:
    """Write the messages to `out`; returns how many. CSV keeps the items as JSON in one column."""
    count = 0
    if fmt == "jsonl":
        for message in messages:
            line = {"campaign_id": message.campaign_id, "customer_id": message.customer_id, **message.to_document()}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
        return count
    if fmt != "csv":
        raise InvalidArgumentError("format", f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for message in messages:
        document = message.to_document()
        writer.writerow(
            (
                message.campaign_id,
                message.customer_id,
                document["send_at"],
                message.subject,
                message.body,
                message.offer,
                " ".join(i.product_id for i in message.items),
                json.dumps(document["items"], ensure_ascii=False),
                message.source,
            )
        )
        count += 1
    return count
