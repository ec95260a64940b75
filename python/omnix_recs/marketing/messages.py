"""The local writer of campaign messages: a subject and a plain-text body per kind.

Deterministic and instant, so a campaign of tens of thousands of messages costs no network
call; every sentence comes from the message's own items and their reasons, nothing invented.
`compose` is also how a Bedrock-written subject and opening become a message (writer.py): the
greeting, the item list with prices, the offer and the unsubscribe line are always this
module's.
"""

from __future__ import annotations

from collections.abc import Sequence

from omnix_recs.marketing.records import CampaignKind, MessageItem

_SUBJECTS = {
    CampaignKind.PERSONALIZED_EMAIL: "{greeting}picked for you this week: {first}",
    CampaignKind.ABANDONED_CART: "{greeting}you left {first} in your cart",
    CampaignKind.WIN_BACK: "{greeting}we miss you: {first} and more",
    CampaignKind.REPLENISHMENT_REMINDER: "{greeting}time to restock {first}?",
    CampaignKind.NEW_PRODUCT_DISCOVERY: "{greeting}something new to try: {first}",
    CampaignKind.LOYALTY_REWARD: "{greeting}a thank-you for our best customers",
}
OPENINGS = {
    CampaignKind.PERSONALIZED_EMAIL: "Here is what we picked for you this week.",
    CampaignKind.ABANDONED_CART: "You left these in your cart. They are still waiting for you.",
    CampaignKind.WIN_BACK: "It has been a while since your last shop. Here are the things you used to buy.",
    CampaignKind.REPLENISHMENT_REMINDER: "By your usual rhythm, these are about to run out.",
    CampaignKind.NEW_PRODUCT_DISCOVERY: "A few products you have not tried yet, chosen from what you like.",
    CampaignKind.LOYALTY_REWARD: "You are one of our most regular shoppers. Thank you. Picked for you:",
}
MAX_SUBJECT_LENGTH = 120
FOOTER = "You receive this because you agreed to hear from us. Unsubscribe at any time."


def first_name(display_name: str) -> str:
    return display_name.split()[0] if display_name.strip() else ""


def write_message(kind: CampaignKind, display_name: str, items: Sequence[MessageItem], offer: str) -> tuple[str, str]:
    """(subject, body) of one message; `items` is not empty."""
    name = first_name(display_name)
    greeting = f"{name}, " if name else ""
    subject = _SUBJECTS[kind].format(greeting=greeting, first=items[0].name or items[0].product_id)
    return compose(subject, OPENINGS[kind], name, items, offer, greeted=bool(greeting))


def compose(
    subject: str, opening: str, name: str, items: Sequence[MessageItem], offer: str, *, greeted: bool
) -> tuple[str, str]:
    """(subject, body): `subject` (greeted = it already starts with the name) and `opening`
    framed by the greeting, the items, the offer and the footer."""
    if not greeted and name:
        # "Milk is due" -> "Anna, milk is due"; an acronym or a name ("BBQ", "Anna") keeps its case.
        keep_case = len(subject) > 1 and not subject[1].islower()
        subject = f"{name}, {subject if keep_case else subject[:1].lower() + subject[1:]}"
    elif not greeted:
        subject = subject[:1].upper() + subject[1:]
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[: MAX_SUBJECT_LENGTH - 1].rstrip() + "…"
    lines = [f"Hello {name}," if name else "Hello,", "", opening, ""]
    for item in items:
        price = f" ({item.price:.2f})" if item.price > 0 else ""
        why = f": {item.reasons[0]}" if item.reasons else ""
        lines.append(f"- {item.name or item.product_id}{price}{why}")
    if offer:
        lines += ["", f"Your offer: {offer}"]
    lines += ["", FOOTER]
    return subject, "\n".join(lines)
