"""What a campaign stores, and how it is kept as store documents.

Campaigns use the store's document methods (`Store.put_document`), so both stores keep them
without a schema of their own. Each message and each holdout entry is a document of the
customer it concerns, so exporting a customer's data includes the messages they were sent and
erasing the customer removes them. The campaign itself is a document under the pseudo-owner
`campaign:<id>` ('campaign:' ids are reserved for it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

CAMPAIGN_DOCUMENT = "campaign"
CAMPAIGN_OWNER_PREFIX = "campaign:"
# Who wrote a message's subject and body (marketing/writer.py).
SOURCE_BEDROCK = "bedrock"
SOURCE_LOCAL = "local"


class CampaignKind(enum.StrEnum):
    PERSONALIZED_EMAIL = "personalized_email"
    ABANDONED_CART = "abandoned_cart"
    WIN_BACK = "win_back"
    REPLENISHMENT_REMINDER = "replenishment_reminder"
    NEW_PRODUCT_DISCOVERY = "new_product_discovery"
    LOYALTY_REWARD = "loyalty_reward"


class CampaignEvent(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"


def messages_kind(campaign_id: str) -> str:
    return f"campaign-message:{campaign_id}"


def holdout_kind(campaign_id: str) -> str:
    return f"campaign-holdout:{campaign_id}"


def events_kind(campaign_id: str) -> str:
    return f"campaign-event:{campaign_id}"


def campaign_owner(campaign_id: str) -> str:
    return f"{CAMPAIGN_OWNER_PREFIX}{campaign_id}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Hours of the day (UTC) with no sends; start == end means none. May wrap midnight."""

    start_hour: int = 21
    end_hour: int = 8

    def contains(self, hour: int) -> bool:
        if self.start_hour == self.end_hour:
            return False
        if self.start_hour < self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What CreateCampaign asks for, validated."""

    name: str
    kind: CampaignKind
    as_of: datetime
    scheduled_at: datetime | None = None  # None = as_of
    items_per_message: int = 6
    offer: str = ""
    holdout_percent: int = 10
    max_messages_per_week: int = 2
    quiet_hours: QuietHours = QuietHours()
    due_within_days: int = 3
    cart_delay_hours: int = 4
    lapsed_after_cycles: float = 2.5
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class MessageItem:
    product_id: str
    name: str
    price: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CampaignMessage:
    campaign_id: str
    customer_id: str
    subject: str
    body: str
    items: tuple[MessageItem, ...]
    offer: str
    send_at: datetime
    source: str = SOURCE_LOCAL  # SOURCE_BEDROCK or SOURCE_LOCAL

    def to_document(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "body": self.body,
            "items": [
                {"product_id": i.product_id, "name": i.name, "price": i.price, "reasons": list(i.reasons)}
                for i in self.items
            ],
            "offer": self.offer,
            "send_at": self.send_at.isoformat(),
            "source": self.source,
        }

    @classmethod
    def from_document(cls, campaign_id: str, customer_id: str, body: dict[str, Any]) -> CampaignMessage:
        return cls(
            campaign_id=campaign_id,
            customer_id=customer_id,
            subject=str(body["subject"]),
            body=str(body["body"]),
            items=tuple(
                MessageItem(str(i["product_id"]), str(i["name"]), float(i["price"]), tuple(i["reasons"]))
                for i in body["items"]
            ),
            offer=str(body.get("offer", "")),
            send_at=datetime.fromisoformat(body["send_at"]),
            source=str(body.get("source", SOURCE_LOCAL)),
        )


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str  # "" for a dry run
    name: str
    kind: CampaignKind
    created_at: datetime
    as_of: datetime
    send_at: datetime
    offer: str
    customers_considered: int
    selected: int
    capped: int
    holdout_size: int
    audience_size: int  # messages written
    bedrock_messages: int = 0  # of those, written by Bedrock (the rest by the local template)
    dry_run: bool = False
    preview: tuple[CampaignMessage, ...] = ()

    def to_document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": str(self.kind),
            "as_of": self.as_of.isoformat(),
            "send_at": self.send_at.isoformat(),
            "offer": self.offer,
            "customers_considered": self.customers_considered,
            "selected": self.selected,
            "capped": self.capped,
            "holdout_size": self.holdout_size,
            "audience_size": self.audience_size,
            "bedrock_messages": self.bedrock_messages,
        }

    @classmethod
    def from_document(cls, campaign_id: str, created_at: datetime, body: dict[str, Any]) -> Campaign:
        return cls(
            campaign_id=campaign_id,
            name=str(body["name"]),
            kind=CampaignKind(body["kind"]),
            created_at=created_at,
            as_of=datetime.fromisoformat(body["as_of"]),
            send_at=datetime.fromisoformat(body["send_at"]),
            offer=str(body.get("offer", "")),
            customers_considered=int(body["customers_considered"]),
            selected=int(body["selected"]),
            capped=int(body["capped"]),
            holdout_size=int(body["holdout_size"]),
            audience_size=int(body["audience_size"]),
            bedrock_messages=int(body.get("bedrock_messages", 0)),
        )
