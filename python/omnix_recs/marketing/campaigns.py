"""Building a campaign: select the audience, pick each message's items, write it, store it.

One batch over every customer: consent first (marketing, and personalisation for the rules
that read history), then the kind's rule (`audiences.py`), the frequency cap across campaigns,
the random holdout, and the items from the recommender or the consumption predictions. The
holdout's items are picked too (and stored with it), so that performance compares buyers of
the same kind of items with and without a message. Customers are handled by a thread pool:
the ranking runs in Rust with the GIL released and the store reads wait on I/O. Messages are
written by the local template as they are picked, then rewritten through Bedrock when it is
enabled (writer.py: a few calls at a time; a dry run rewrites only its preview).

Everything blocks; servers call it in a worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from omnix_recs.domain.consumption import PopulationCycles, customer_cycles, enrich_history
from omnix_recs.domain.models import Customer, Page, Product, RecommendedItem, ServedRecommendation
from omnix_recs.domain.predictions import forecast_consumption, predict_next_visit
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.recommender import Recommender
from omnix_recs.errors import InvalidArgumentError, NotFoundError
from omnix_recs.marketing import audiences
from omnix_recs.marketing.loyalty import loyalty_status
from omnix_recs.marketing.messages import first_name, write_message
from omnix_recs.marketing.records import (
    CAMPAIGN_DOCUMENT,
    CAMPAIGN_OWNER_PREFIX,
    Campaign,
    CampaignKind,
    CampaignMessage,
    CampaignSpec,
    MessageItem,
    QuietHours,
    campaign_owner,
    holdout_kind,
    messages_kind,
)
from omnix_recs.marketing.writer import MessageWriter
from omnix_recs.progress import track
from omnix_recs.store.base import Store

log = logging.getLogger("omnix.marketing")

# How many documents a listing of one campaign's messages may return (the store reads them in one go).
MAX_CAMPAIGN_MESSAGES = 1_000_000
PREVIEW_MESSAGES = 20
# Campaigns whose recipient lists a process keeps for paging (ListCampaignMessages).
RECIPIENT_LISTS_KEPT = 8
CAP_WINDOW = timedelta(days=7)
CUSTOMER_PAGE = 1_000
# Kinds whose rule reads the customer's history: they need consent to personalisation too.
HISTORY_KINDS = frozenset(set(CampaignKind) - {CampaignKind.PERSONALIZED_EMAIL})
_STRATEGY = {
    CampaignKind.PERSONALIZED_EMAIL: Strategy.BALANCED,
    CampaignKind.WIN_BACK: Strategy.REPLENISH,
    CampaignKind.NEW_PRODUCT_DISCOVERY: Strategy.DISCOVER,
}

Progress = Callable[[int, int], None]  # (customers done, customers in all)


def _now() -> datetime:
    return datetime.now(UTC)


class DiscardServedLists:
    """Where a campaign's `Recommender` puts its lists: nowhere (the messages are the record)."""

    def save_recommendation(self, served: ServedRecommendation) -> None:
        return None

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        raise NotFoundError("recommendation", recommendation_id)


def send_time(requested: datetime, quiet: QuietHours) -> datetime:
    """`requested`, or the end of the quiet hours it falls in."""
    if not quiet.contains(requested.hour):
        return requested
    moved = requested.replace(hour=quiet.end_hour, minute=0, second=0, microsecond=0)
    return moved if moved > requested else moved + timedelta(days=1)


def in_holdout(salt: str, customer_id: str, percent: int) -> bool:
    """A stable, uniform draw per (campaign, customer)."""
    digest = hashlib.blake2b(f"{salt}|{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


@dataclass(frozen=True, slots=True)
class _Outcome:
    customer_id: str
    consented: bool = False
    selected: bool = False
    capped: bool = False
    holdout: bool = False
    message: CampaignMessage | None = None
    items: tuple[str, ...] = ()  # the holdout's would-be items
    name: str = ""  # the first name the message greets


class CampaignService:
    def __init__(
        self,
        store: Store,
        recommender: Recommender,
        population: Callable[[], PopulationCycles],
        *,
        workers: int | None = None,
        writer: MessageWriter | None = None,
    ) -> None:
        """`recommender`: one whose served lists go nowhere (`DiscardServedLists`) and that keeps
        no cache. `population`: the shop's consumption cycles (for replenishment predictions).
        `writer`: rewrites the texts through Bedrock; None = the local template only."""
        self.store = store
        self.writer = writer or MessageWriter(None)
        self.recommender = recommender
        self.population = population
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._recipients_of: OrderedDict[str, list[str]] = OrderedDict()

    # --- building ---------------------------------------------------------------------------

    def create(
        self, spec: CampaignSpec, *, progress: Progress | None = None, text_progress: Progress | None = None
    ) -> Campaign:
        """`progress(customers done, customers)`; `text_progress(messages done, messages)` while
        Bedrock rewrites the texts."""
        created_at = _now()
        if spec.as_of > created_at + timedelta(minutes=5):
            raise InvalidArgumentError("as_of", "must not be in the future")
        campaign_id = "" if spec.dry_run else uuid.uuid4().hex
        send_at = send_time(spec.scheduled_at or spec.as_of, spec.quiet_hours)
        salt = campaign_id or uuid.uuid4().hex
        sent_lately = self._recent_sends(send_at)
        catalog = {p.product_id: p for p in self.store.iter_products()}
        population = self.population() if spec.kind is CampaignKind.REPLENISHMENT_REMINDER else None
        customer_ids = list(self._customer_ids())

        def outcome(customer_id: str) -> _Outcome:
            return self._outcome(spec, campaign_id, salt, send_at, sent_lately, catalog, population, customer_id)

        outcomes: list[_Outcome] = []
        with (
            ThreadPoolExecutor(self._workers, thread_name_prefix="omnix-campaign") as pool,
            track(f"campaign {spec.kind}", total=len(customer_ids), unit="customers") as shown,  # CLI only
        ):
            for done, result in enumerate(pool.map(outcome, customer_ids, chunksize=64), start=1):
                outcomes.append(result)
                shown.advance()
                if progress is not None and (done % 500 == 0 or done == len(customer_ids)):
                    progress(done, len(customer_ids))
        written = [o for o in outcomes if o.message is not None]
        messages = [o.message for o in written if o.message is not None]
        # A dry run shows its preview only: only those texts are worth a Bedrock call.
        rewrite = len(messages) if not spec.dry_run else min(PREVIEW_MESSAGES, len(messages))
        rewritten, texts = self.writer.rewrite(
            spec.kind, messages[:rewrite], [o.name for o in written[:rewrite]], progress=text_progress
        )
        messages = rewritten + messages[rewrite:]
        holdout = [o for o in outcomes if o.holdout]
        campaign = Campaign(
            campaign_id=campaign_id,
            name=spec.name,
            kind=spec.kind,
            created_at=created_at,
            as_of=spec.as_of,
            send_at=send_at,
            offer=spec.offer,
            customers_considered=sum(o.consented for o in outcomes),
            selected=sum(o.selected for o in outcomes),
            capped=sum(o.capped for o in outcomes),
            holdout_size=len(holdout),
            audience_size=len(messages),
            bedrock_messages=texts.bedrock,
            dry_run=spec.dry_run,
            preview=tuple(messages[:PREVIEW_MESSAGES]) if spec.dry_run else (),
        )
        if not spec.dry_run:
            self._store_campaign(campaign, messages, holdout)
        log.info(
            "campaign built",
            extra={
                "campaign_id": campaign_id,
                "kind": str(spec.kind),
                "messages": len(messages),
                "bedrock_messages": texts.bedrock,
                "dry_run": spec.dry_run,
            },
        )
        return campaign

    def _store_campaign(
        self, campaign: Campaign, messages: Sequence[CampaignMessage], holdout: Sequence[_Outcome]
    ) -> None:
        """Messages and holdout first, the campaign record last: a campaign that exists is whole."""
        for message in messages:
            self.store.put_document(
                messages_kind(campaign.campaign_id), message.customer_id, campaign.created_at, message.to_document()
            )
        for entry in holdout:
            self.store.put_document(
                holdout_kind(campaign.campaign_id),
                entry.customer_id,
                campaign.created_at,
                {"items": list(entry.items), "send_at": campaign.send_at.isoformat()},
            )
        self.store.put_document(
            CAMPAIGN_DOCUMENT, campaign_owner(campaign.campaign_id), campaign.created_at, campaign.to_document()
        )

    def _customer_ids(self) -> Iterator[str]:
        token = ""
        while True:
            page = self.store.list_customer_ids(CUSTOMER_PAGE, token)
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token

    def _recent_sends(self, send_at: datetime) -> Counter[str]:
        """Campaign messages per customer sent in the cap window before `send_at`."""
        sent: Counter[str] = Counter()
        # A campaign is created at most a little before its send, so the window on creation
        # times is wide: campaigns scheduled weeks ahead are rare and then found by send time.
        for owner, _created, body in self.store.list_documents(CAMPAIGN_DOCUMENT, limit=MAX_CAMPAIGN_MESSAGES):
            their_send = datetime.fromisoformat(body["send_at"])
            if send_at - CAP_WINDOW <= their_send <= send_at:
                campaign_id = owner.removeprefix("campaign:")
                for customer_id, _at, _body in self.store.list_documents(
                    messages_kind(campaign_id), limit=MAX_CAMPAIGN_MESSAGES
                ):
                    sent[customer_id] += 1
        return sent

    def _outcome(
        self,
        spec: CampaignSpec,
        campaign_id: str,
        salt: str,
        send_at: datetime,
        sent_lately: Counter[str],
        catalog: dict[str, Product],
        population: PopulationCycles | None,
        customer_id: str,
    ) -> _Outcome:
        try:
            customer = self.store.get_customer(customer_id)
        except NotFoundError:  # erased while the campaign ran
            return _Outcome(customer_id)
        consent = customer.consent
        if not consent.marketing or (spec.kind in HISTORY_KINDS and not consent.personalization):
            return _Outcome(customer_id)
        candidates = self._select(spec, customer, population, send_at)
        if candidates is None:
            return _Outcome(customer_id, consented=True)
        if sent_lately[customer_id] >= spec.max_messages_per_week:
            return _Outcome(customer_id, consented=True, selected=True, capped=True)
        items = self._items(spec, customer, candidates, catalog)
        if not items:
            return _Outcome(customer_id, consented=True)
        if in_holdout(salt, customer_id, spec.holdout_percent):
            return _Outcome(customer_id, True, True, holdout=True, items=tuple(i.product_id for i in items))
        subject, body = write_message(spec.kind, customer.display_name, items, spec.offer)
        message = CampaignMessage(campaign_id, customer_id, subject, body, items, spec.offer, send_at)
        return _Outcome(customer_id, True, True, message=message, name=first_name(customer.display_name))

    def _select(
        self, spec: CampaignSpec, customer: Customer, population: PopulationCycles | None, send_at: datetime
    ) -> list[MessageItem] | None:
        """None: not in the audience. Otherwise the kind's own items (cart, due products) or []
        when the recommender picks them."""
        as_of, kind = spec.as_of, spec.kind
        lines = self.store.order_lines_of(customer.customer_id, before=as_of)
        r = audiences.rhythm(lines.purchased_at_s, as_of.timestamp())
        if kind is CampaignKind.PERSONALIZED_EMAIL:
            return [] if r.trips else None
        if kind is CampaignKind.WIN_BACK:
            return [] if audiences.lapsed(r, as_of.timestamp(), spec.lapsed_after_cycles) else None
        if kind is CampaignKind.NEW_PRODUCT_DISCOVERY:
            return [] if audiences.active(r) else None
        if kind is CampaignKind.LOYALTY_REWARD:
            return [] if loyalty_status(lines, as_of.timestamp()).rewarded else None
        if kind is CampaignKind.ABANDONED_CART:
            events = self.store.list_interactions(customer.customer_id, since=as_of - audiences.CART_LOOKBACK)
            left = audiences.abandoned_cart(
                events, lines.product_ids, lines.purchased_at_s, as_of, timedelta(hours=spec.cart_delay_hours)
            )
            reasons = [f"in your cart since {item.added_at:%a %d %b}" for item in left]
            return [MessageItem(i.product_id, "", 0.0, (why,)) for i, why in zip(left, reasons)] or None
        assert kind is CampaignKind.REPLENISHMENT_REMINDER and population is not None
        if r.trips < 2:
            return None
        due_by = send_at + timedelta(days=spec.due_within_days)
        purchases = self.store.purchases_of(customer.customer_id, before=as_of)
        history = enrich_history(customer.customer_id, purchases, {}, as_of=as_of)
        cycles = customer_cycles(history, population)
        # No product is forecast before the next trip, so a customer not expected by `due_by`
        # has nothing due: skip the product outlooks, the bulk of the cost.
        next_visit, _ = predict_next_visit(history, cycles.visits, population)
        if next_visit is None or next_visit > due_by:
            return None
        forecast = forecast_consumption(history, cycles, population)
        due = [
            MessageItem(
                p.product_id,
                "",
                0.0,
                (
                    f"you usually buy this every {p.cycle_days:.0f} days; "
                    f"last bought {(as_of - p.last_purchased_at).days} days ago",
                ),
            )
            for p in forecast.products
            if p.next_purchase_at <= due_by and p.cycle_days > 0 and p.last_purchased_at < as_of
        ]
        return due or None

    def _items(
        self, spec: CampaignSpec, customer: Customer, own: list[MessageItem], catalog: dict[str, Product]
    ) -> tuple[MessageItem, ...]:
        """The message's items, named and priced from the catalog; products no longer on sale
        are left out."""
        if not own:
            picked = self._recommended(spec, customer)
            own = [MessageItem(i.product_id, "", 0.0, i.reasons) for i in picked]
        items = []
        for item in own:
            product = catalog.get(item.product_id)
            if product is None or not product.in_stock:
                continue
            items.append(dataclasses.replace(item, name=product.name, price=product.price))
            if len(items) == spec.items_per_message:
                break
        return tuple(items)

    def _recommended(self, spec: CampaignSpec, customer: Customer) -> tuple[RecommendedItem, ...]:
        n, as_of = spec.items_per_message, spec.as_of
        if spec.kind is CampaignKind.LOYALTY_REWARD:
            return self.recommender.personalized(customer.customer_id, limit=n, as_of=as_of).items
        strategy = _STRATEGY[spec.kind]
        return self.recommender.recommend(
            customer.customer_id,
            strategy=strategy,
            limit=n,
            as_of=as_of,
            exclude_purchased=strategy is Strategy.DISCOVER,
        ).items

    # --- reading ----------------------------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign:
        found = self.store.latest_document(CAMPAIGN_DOCUMENT, campaign_owner(campaign_id))
        if found is None:
            raise NotFoundError("campaign", campaign_id)
        return Campaign.from_document(campaign_id, *found)

    def recent(self, limit: int) -> list[Campaign]:
        """The `limit` newest stored campaigns, newest first."""
        documents = self.store.list_documents(CAMPAIGN_DOCUMENT, limit=limit)
        return [
            Campaign.from_document(owner.removeprefix(CAMPAIGN_OWNER_PREFIX), created_at, body)
            for owner, created_at, body in documents
        ]

    def all_messages(self, campaign_id: str) -> list[CampaignMessage]:
        """Every stored message of the campaign, in customer id order."""
        self.get(campaign_id)
        documents = self.store.list_documents(messages_kind(campaign_id), limit=MAX_CAMPAIGN_MESSAGES)
        messages = [CampaignMessage.from_document(campaign_id, customer_id, body) for customer_id, _, body in documents]
        return sorted(messages, key=lambda m: m.customer_id)

    def holdout(self, campaign_id: str) -> list[tuple[str, tuple[str, ...]]]:
        """(customer id, would-be product ids) of the holdout."""
        documents = self.store.list_documents(holdout_kind(campaign_id), limit=MAX_CAMPAIGN_MESSAGES)
        return sorted((customer_id, tuple(body["items"])) for customer_id, _, body in documents)

    def messages(self, campaign_id: str, page_size: int, page_token: str = "") -> Page[CampaignMessage]:
        """A page of the messages in customer id order; the token is the offset of the next page.

        The recipients' ids are read once per campaign and kept (a campaign's audience never
        grows); each page then reads its own messages, so a message erased with its customer is
        simply missing from its page."""
        start = _offset(page_token)
        recipients = self._recipients(campaign_id)
        end = start + page_size
        kind = messages_kind(campaign_id)
        page = []
        for customer_id in recipients[start:end]:
            found = self.store.latest_document(kind, customer_id)
            if found is not None:
                page.append(CampaignMessage.from_document(campaign_id, customer_id, found[1]))
        return Page(tuple(page), str(end) if end < len(recipients) else "")

    def _recipients(self, campaign_id: str) -> list[str]:
        with self._lock:
            cached = self._recipients_of.get(campaign_id)
            if cached is not None:
                self._recipients_of.move_to_end(campaign_id)
                return cached
        recipients = [m.customer_id for m in self.all_messages(campaign_id)]
        with self._lock:
            self._recipients_of[campaign_id] = recipients
            while len(self._recipients_of) > RECIPIENT_LISTS_KEPT:
                self._recipients_of.popitem(last=False)
        return recipients


def _offset(page_token: str) -> int:
    if not page_token:
        return 0
    if not page_token.isdigit() or len(page_token) > 9:
        raise InvalidArgumentError("page_token", "is not a page token returned by this service")
    return int(page_token)
