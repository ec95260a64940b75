"""MarketingService: validate, call the campaign service (marketing/), map back.

Campaign builds read every customer and run for seconds to a minute, so they go to a worker
thread like every other call here.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc

from omnix_recs._proto.omnix.v1 import marketing_pb2 as pb
from omnix_recs._proto.omnix.v1 import marketing_pb2_grpc
from omnix_recs.api import validation as check
from omnix_recs.api.mapping import timestamp_to_proto
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.domain.consumption import PopulationCycles
from omnix_recs.engine.recommender import Recommender
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.insights.baseline import BaselineCache
from omnix_recs.limits import MAX_CLOCK_SKEW, MAX_NAME_LENGTH
from omnix_recs.marketing.campaigns import CampaignService, DiscardServedLists
from omnix_recs.marketing.performance import CampaignEvents, CampaignPerformance
from omnix_recs.marketing.records import (
    Campaign,
    CampaignEvent,
    CampaignKind,
    CampaignMessage,
    CampaignSpec,
    QuietHours,
)
from omnix_recs.marketing.writer import MessageWriter

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MarketingService"].full_name
DEFAULT_ITEMS = 6
MAX_ITEMS = 20
MAX_OFFER_LENGTH = 200
DEFAULT_HOLDOUT_PERCENT = 10
MAX_HOLDOUT_PERCENT = 50
DEFAULT_CAP = 2
DEFAULT_LISTED = 50
MAX_LISTED = 1_000
MAX_CAP = 50

KINDS = {
    pb.CAMPAIGN_KIND_PERSONALIZED_EMAIL: CampaignKind.PERSONALIZED_EMAIL,
    pb.CAMPAIGN_KIND_ABANDONED_CART: CampaignKind.ABANDONED_CART,
    pb.CAMPAIGN_KIND_WIN_BACK: CampaignKind.WIN_BACK,
    pb.CAMPAIGN_KIND_REPLENISHMENT_REMINDER: CampaignKind.REPLENISHMENT_REMINDER,
    pb.CAMPAIGN_KIND_NEW_PRODUCT_DISCOVERY: CampaignKind.NEW_PRODUCT_DISCOVERY,
    pb.CAMPAIGN_KIND_LOYALTY_REWARD: CampaignKind.LOYALTY_REWARD,
}
KIND_TO_PROTO = {kind: number for number, kind in KINDS.items()}
EVENTS = {
    pb.CAMPAIGN_EVENT_KIND_OPEN: CampaignEvent.OPEN,
    pb.CAMPAIGN_EVENT_KIND_CLICK: CampaignEvent.CLICK,
    pb.CAMPAIGN_EVENT_KIND_UNSUBSCRIBE: CampaignEvent.UNSUBSCRIBE,
}


def campaign_service(app: AppContext) -> CampaignService:
    """The campaign service of a server (or the CLI): a recommender that keeps no lists."""
    recommender = Recommender(app.store, app.models, catalog=app.catalog, served_lists=DiscardServedLists())
    baseline = BaselineCache(app.store)

    def population() -> PopulationCycles:
        return baseline.get().cycles

    writer = MessageWriter(app.bedrock(), budget_s=app.settings.bedrock_timeout_s)
    return CampaignService(app.store, recommender, population, writer=writer)


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    campaigns = campaign_service(app)
    events = CampaignEvents(app.store, campaigns, app.customers)
    marketing_pb2_grpc.add_MarketingServiceServicer_to_server(
        MarketingServicer(campaigns, events, Validator(app.settings.limits)), server
    )
    return [SERVICE_NAME]


def _now() -> datetime:
    return datetime.now(UTC)


def spec_from_proto(request: pb.CreateCampaignRequest, *, now: datetime) -> CampaignSpec:
    name = check.text("name", request.name, max_length=MAX_NAME_LENGTH, required=True)
    kind = KINDS[check.enum_value("kind", request.kind, pb.CampaignKind)]
    as_of = check.timestamp("as_of", request, "as_of", required=False, not_after=now) or now
    scheduled = check.timestamp("scheduled_at", request, "scheduled_at", required=False)
    if scheduled is not None and scheduled < as_of:
        raise InvalidArgumentError("scheduled_at", "must not be before as_of")
    quiet = QuietHours()
    if request.HasField("quiet_hours"):
        quiet = QuietHours(
            check.integer("quiet_hours.start_hour", request.quiet_hours.start_hour, minimum=0, maximum=23),
            check.integer("quiet_hours.end_hour", request.quiet_hours.end_hour, minimum=0, maximum=23),
        )
    holdout = DEFAULT_HOLDOUT_PERCENT
    if request.HasField("holdout_percent"):
        holdout = check.integer("holdout_percent", request.holdout_percent, minimum=0, maximum=MAX_HOLDOUT_PERCENT)
    lapsed_after = request.lapsed_after_cycles or 2.5
    return CampaignSpec(
        name=name,
        kind=kind,
        as_of=as_of,
        scheduled_at=scheduled,
        items_per_message=check.integer("items_per_message", request.items_per_message, minimum=0, maximum=MAX_ITEMS)
        or DEFAULT_ITEMS,
        offer=check.text("offer", request.offer, max_length=MAX_OFFER_LENGTH),
        holdout_percent=holdout,
        max_messages_per_week=check.integer(
            "max_messages_per_week", request.max_messages_per_week, minimum=0, maximum=MAX_CAP
        )
        or DEFAULT_CAP,
        quiet_hours=quiet,
        due_within_days=check.integer("due_within_days", request.due_within_days, minimum=0, maximum=30) or 3,
        cart_delay_hours=check.integer("cart_delay_hours", request.cart_delay_hours, minimum=0, maximum=168) or 4,
        lapsed_after_cycles=check.number("lapsed_after_cycles", lapsed_after, minimum=1.5, maximum=10.0),
        dry_run=request.dry_run,
    )


def message_to_proto(message: CampaignMessage) -> pb.CampaignMessage:
    return pb.CampaignMessage(
        campaign_id=message.campaign_id,
        customer_id=message.customer_id,
        subject=message.subject,
        body=message.body,
        items=[
            pb.CampaignItem(product_id=i.product_id, name=i.name, price=i.price, reasons=i.reasons)
            for i in message.items
        ],
        offer=message.offer,
        send_at=timestamp_to_proto(message.send_at),
        source=message.source,
    )


def campaign_to_proto(campaign: Campaign) -> pb.Campaign:
    return pb.Campaign(
        campaign_id=campaign.campaign_id,
        name=campaign.name,
        kind=KIND_TO_PROTO[campaign.kind],
        scheduled_at=timestamp_to_proto(campaign.send_at),
        audience_size=campaign.audience_size,
        as_of=timestamp_to_proto(campaign.as_of),
        customers_considered=campaign.customers_considered,
        selected=campaign.selected,
        capped=campaign.capped,
        holdout_size=campaign.holdout_size,
        dry_run=campaign.dry_run,
        preview=[message_to_proto(m) for m in campaign.preview],
        offer=campaign.offer,
        created_at=timestamp_to_proto(campaign.created_at),
        bedrock_messages=campaign.bedrock_messages,
    )


def performance_to_proto(p: CampaignPerformance) -> pb.GetCampaignPerformanceResponse:
    def rate(n: int) -> float:
        return n / p.sent if p.sent else 0.0

    return pb.GetCampaignPerformanceResponse(
        campaign_id=p.campaign_id,
        sent=p.sent,
        open_rate=rate(p.opened),
        conversion_rate=p.recipients.rate,
        attributed_revenue=p.recipients.revenue,
        click_rate=rate(p.clicked),
        attributed_purchases=p.recipients.lines,
        unsubscribes=p.unsubscribed,
        holdout_size=p.holdout.customers,
        holdout_conversion_rate=p.holdout.rate,
        incremental_conversion=p.incremental_conversion,
        relative_lift=p.relative_lift,
        incremental_revenue_per_recipient=p.incremental_revenue_per_recipient,
        attribution_days=p.attribution_days,
    )


class MarketingServicer(marketing_pb2_grpc.MarketingServiceServicer):
    def __init__(self, campaigns: CampaignService, events: CampaignEvents, validator: Validator) -> None:
        self.campaigns = campaigns
        self.events = events
        self.v = validator

    async def CreateCampaign(
        self,
        request: pb.CreateCampaignRequest,
        context: grpc.aio.ServicerContext[pb.CreateCampaignRequest, pb.Campaign],
    ) -> pb.Campaign:
        spec = spec_from_proto(request, now=_now())
        campaign = await asyncio.to_thread(self.campaigns.create, spec)
        return campaign_to_proto(campaign)

    async def ListCampaigns(
        self,
        request: pb.ListCampaignsRequest,
        context: grpc.aio.ServicerContext[pb.ListCampaignsRequest, pb.ListCampaignsResponse],
    ) -> pb.ListCampaignsResponse:
        limit = check.integer("limit", request.limit, minimum=0, maximum=MAX_LISTED) or DEFAULT_LISTED
        campaigns = await asyncio.to_thread(self.campaigns.recent, limit)
        return pb.ListCampaignsResponse(campaigns=[campaign_to_proto(c) for c in campaigns])

    async def GetCampaign(
        self,
        request: pb.GetCampaignRequest,
        context: grpc.aio.ServicerContext[pb.GetCampaignRequest, pb.Campaign],
    ) -> pb.Campaign:
        campaign_id = self.v.require_id("campaign_id", request.campaign_id)
        return campaign_to_proto(await asyncio.to_thread(self.campaigns.get, campaign_id))

    async def ListCampaignMessages(
        self,
        request: pb.ListCampaignMessagesRequest,
        context: grpc.aio.ServicerContext[pb.ListCampaignMessagesRequest, pb.ListCampaignMessagesResponse],
    ) -> pb.ListCampaignMessagesResponse:
        campaign_id = self.v.require_id("campaign_id", request.campaign_id)
        page_size = self.v.page_size("page_size", request.page_size)
        page_token = self.v.page_token("page_token", request.page_token)
        page = await asyncio.to_thread(self.campaigns.messages, campaign_id, page_size, page_token)
        return pb.ListCampaignMessagesResponse(
            messages=[message_to_proto(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def RecordCampaignEvent(
        self,
        request: pb.RecordCampaignEventRequest,
        context: grpc.aio.ServicerContext[pb.RecordCampaignEventRequest, pb.RecordCampaignEventResponse],
    ) -> pb.RecordCampaignEventResponse:
        campaign_id = self.v.require_id("campaign_id", request.campaign_id)
        customer_id = self.v.require_id("customer_id", request.customer_id)
        event = EVENTS[check.enum_value("event", request.event, pb.CampaignEventKind)]
        product_id = self.v.optional_id("product_id", request.product_id)
        now = _now()
        occurred_at = (
            check.timestamp("occurred_at", request, "occurred_at", required=False, not_after=now + MAX_CLOCK_SKEW)
            or now
        )
        await asyncio.to_thread(self.events.record, campaign_id, customer_id, event, product_id, occurred_at)
        return pb.RecordCampaignEventResponse()

    async def GetCampaignPerformance(
        self,
        request: pb.GetCampaignPerformanceRequest,
        context: grpc.aio.ServicerContext[pb.GetCampaignPerformanceRequest, pb.GetCampaignPerformanceResponse],
    ) -> pb.GetCampaignPerformanceResponse:
        campaign_id = self.v.require_id("campaign_id", request.campaign_id)
        performance = await asyncio.to_thread(self.events.performance, campaign_id)
        return performance_to_proto(performance)
