"""What a campaign did: opens, clicks and unsubscribes, and purchases against the holdout.

A purchase is attributed when a recipient buys one of their message's items within
`ATTRIBUTION_DAYS` of the send. The holdout (customers selected but sent nothing) is measured
the same way on the items they would have been sent, so the difference between the two
conversion rates is what the messages added, not what those customers would have bought anyway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from omnix_recs.customers import CustomerService
from omnix_recs.errors import InvalidArgumentError, NotFoundError
from omnix_recs.marketing.campaigns import MAX_CAMPAIGN_MESSAGES, CampaignService
from omnix_recs.marketing.records import CampaignEvent, events_kind, messages_kind
from omnix_recs.store.base import Store

ATTRIBUTION_DAYS = 7


@dataclass(frozen=True, slots=True)
class Conversions:
    customers: int
    converted: int  # customers who bought at least one of their items in the window
    lines: int  # order lines of those items
    revenue: float

    @property
    def rate(self) -> float:
        return self.converted / self.customers if self.customers else 0.0


@dataclass(frozen=True, slots=True)
class CampaignPerformance:
    campaign_id: str
    sent: int
    opened: int
    clicked: int
    unsubscribed: int
    recipients: Conversions
    holdout: Conversions
    attribution_days: int = ATTRIBUTION_DAYS

    @property
    def incremental_conversion(self) -> float:
        return self.recipients.rate - self.holdout.rate

    @property
    def relative_lift(self) -> float:
        return self.recipients.rate / self.holdout.rate - 1.0 if self.holdout.rate > 0 else 0.0

    @property
    def incremental_revenue_per_recipient(self) -> float:
        treated = self.recipients.revenue / self.recipients.customers if self.recipients.customers else 0.0
        held = self.holdout.revenue / self.holdout.customers if self.holdout.customers else 0.0
        return treated - held


class CampaignEvents:
    def __init__(self, store: Store, campaigns: CampaignService, customers: CustomerService) -> None:
        self.store = store
        self.campaigns = campaigns
        self.customers = customers

    def record(
        self, campaign_id: str, customer_id: str, event: CampaignEvent, product_id: str, occurred_at: datetime
    ) -> None:
        """`NotFoundError` unless the campaign sent the customer a message. An unsubscribe also
        withdraws the customer's marketing consent (published like any profile change)."""
        self.campaigns.get(campaign_id)
        found = self.store.latest_document(messages_kind(campaign_id), customer_id)
        if found is None:
            raise NotFoundError("campaign message", f"{campaign_id}/{customer_id}")
        if product_id:
            if event is not CampaignEvent.CLICK:
                raise InvalidArgumentError("product_id", "is only given with a click")
            if product_id not in {item["product_id"] for item in found[1]["items"]}:
                raise InvalidArgumentError("product_id", f"{product_id!r} was not in the customer's message")
        body = {"event": str(event), "product_id": product_id}
        self.store.put_document(events_kind(campaign_id), customer_id, occurred_at, body)
        if event is CampaignEvent.UNSUBSCRIBE:
            self.customers.update_profile(
                customer_id, lambda c: dataclasses.replace(c, consent=dataclasses.replace(c.consent, marketing=False))
            )

    def performance(self, campaign_id: str) -> CampaignPerformance:
        campaign = self.campaigns.get(campaign_id)
        messages = self.campaigns.all_messages(campaign_id)
        start = campaign.send_at
        end = start + timedelta(days=ATTRIBUTION_DAYS)
        customers_by_event: dict[str, set[str]] = {str(e): set() for e in CampaignEvent}
        for customer_id, _at, body in self.store.list_documents(events_kind(campaign_id), limit=MAX_CAMPAIGN_MESSAGES):
            customers_by_event[body["event"]].add(customer_id)
        # Clicking implies opening, whether or not the open was tracked (images blocked).
        opened = customers_by_event["open"] | customers_by_event["click"]
        return CampaignPerformance(
            campaign_id=campaign_id,
            sent=len(messages),
            opened=len(opened),
            clicked=len(customers_by_event["click"]),
            unsubscribed=len(customers_by_event["unsubscribe"]),
            recipients=self._conversions(
                ((m.customer_id, tuple(i.product_id for i in m.items)) for m in messages), start, end
            ),
            holdout=self._conversions(self.campaigns.holdout(campaign_id), start, end),
        )

    def _conversions(
        self, groups: Iterable[tuple[str, tuple[str, ...]]], start: datetime, end: datetime
    ) -> Conversions:
        customers = converted = lines = 0
        revenue = 0.0
        for customer_id, product_ids in groups:
            customers += 1
            bought = self.store.order_lines_of(customer_id, before=end)
            if not len(bought):
                continue
            promoted = set(product_ids)
            hit = (bought.purchased_at_s >= start.timestamp()) & np.fromiter(
                (p in promoted for p in bought.product_ids), dtype=bool, count=len(bought)
            )
            n = int(np.count_nonzero(hit))
            if n:
                converted += 1
                lines += n
                revenue += float(np.sum(bought.quantities[hit] * bought.unit_prices[hit]))
        return Conversions(customers, converted, lines, round(revenue, 2))
