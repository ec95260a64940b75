import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CampaignKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_KIND_UNSPECIFIED: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_PERSONALIZED_EMAIL: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_ABANDONED_CART: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_WIN_BACK: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_REPLENISHMENT_REMINDER: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_NEW_PRODUCT_DISCOVERY: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_LOYALTY_REWARD: _ClassVar[CampaignKind]

class CampaignEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_EVENT_KIND_UNSPECIFIED: _ClassVar[CampaignEventKind]
    CAMPAIGN_EVENT_KIND_OPEN: _ClassVar[CampaignEventKind]
    CAMPAIGN_EVENT_KIND_CLICK: _ClassVar[CampaignEventKind]
    CAMPAIGN_EVENT_KIND_UNSUBSCRIBE: _ClassVar[CampaignEventKind]
CAMPAIGN_KIND_UNSPECIFIED: CampaignKind
CAMPAIGN_KIND_PERSONALIZED_EMAIL: CampaignKind
CAMPAIGN_KIND_ABANDONED_CART: CampaignKind
CAMPAIGN_KIND_WIN_BACK: CampaignKind
CAMPAIGN_KIND_REPLENISHMENT_REMINDER: CampaignKind
CAMPAIGN_KIND_NEW_PRODUCT_DISCOVERY: CampaignKind
CAMPAIGN_KIND_LOYALTY_REWARD: CampaignKind
CAMPAIGN_EVENT_KIND_UNSPECIFIED: CampaignEventKind
CAMPAIGN_EVENT_KIND_OPEN: CampaignEventKind
CAMPAIGN_EVENT_KIND_CLICK: CampaignEventKind
CAMPAIGN_EVENT_KIND_UNSUBSCRIBE: CampaignEventKind

class QuietHours(_message.Message):
    __slots__ = ("start_hour", "end_hour")
    START_HOUR_FIELD_NUMBER: _ClassVar[int]
    END_HOUR_FIELD_NUMBER: _ClassVar[int]
    start_hour: int
    end_hour: int
    def __init__(self, start_hour: _Optional[int] = ..., end_hour: _Optional[int] = ...) -> None: ...

class CreateCampaignRequest(_message.Message):
    __slots__ = ("name", "kind", "scheduled_at", "items_per_message", "dry_run", "as_of", "offer", "holdout_percent", "max_messages_per_week", "quiet_hours", "due_within_days", "cart_delay_hours", "lapsed_after_cycles")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_PER_WEEK_FIELD_NUMBER: _ClassVar[int]
    QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    DUE_WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    CART_DELAY_HOURS_FIELD_NUMBER: _ClassVar[int]
    LAPSED_AFTER_CYCLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: CampaignKind
    scheduled_at: _timestamp_pb2.Timestamp
    items_per_message: int
    dry_run: bool
    as_of: _timestamp_pb2.Timestamp
    offer: str
    holdout_percent: int
    max_messages_per_week: int
    quiet_hours: QuietHours
    due_within_days: int
    cart_delay_hours: int
    lapsed_after_cycles: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[CampaignKind, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., items_per_message: _Optional[int] = ..., dry_run: _Optional[bool] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offer: _Optional[str] = ..., holdout_percent: _Optional[int] = ..., max_messages_per_week: _Optional[int] = ..., quiet_hours: _Optional[_Union[QuietHours, _Mapping]] = ..., due_within_days: _Optional[int] = ..., cart_delay_hours: _Optional[int] = ..., lapsed_after_cycles: _Optional[float] = ...) -> None: ...

class CampaignItem(_message.Message):
    __slots__ = ("product_id", "name", "price", "reasons")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    name: str
    price: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, product_id: _Optional[str] = ..., name: _Optional[str] = ..., price: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class CampaignMessage(_message.Message):
    __slots__ = ("campaign_id", "customer_id", "subject", "body", "items", "offer", "send_at", "source")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    SEND_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    customer_id: str
    subject: str
    body: str
    items: _containers.RepeatedCompositeFieldContainer[CampaignItem]
    offer: str
    send_at: _timestamp_pb2.Timestamp
    source: str
    def __init__(self, campaign_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., items: _Optional[_Iterable[_Union[CampaignItem, _Mapping]]] = ..., offer: _Optional[str] = ..., send_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "name", "kind", "scheduled_at", "audience_size", "as_of", "customers_considered", "selected", "capped", "holdout_size", "dry_run", "preview", "offer", "created_at", "bedrock_messages")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_SIZE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    CAPPED_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BEDROCK_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    kind: CampaignKind
    scheduled_at: _timestamp_pb2.Timestamp
    audience_size: int
    as_of: _timestamp_pb2.Timestamp
    customers_considered: int
    selected: int
    capped: int
    holdout_size: int
    dry_run: bool
    preview: _containers.RepeatedCompositeFieldContainer[CampaignMessage]
    offer: str
    created_at: _timestamp_pb2.Timestamp
    bedrock_messages: int
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[CampaignKind, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience_size: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customers_considered: _Optional[int] = ..., selected: _Optional[int] = ..., capped: _Optional[int] = ..., holdout_size: _Optional[int] = ..., dry_run: _Optional[bool] = ..., preview: _Optional[_Iterable[_Union[CampaignMessage, _Mapping]]] = ..., offer: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bedrock_messages: _Optional[int] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns",)
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[Campaign]
    def __init__(self, campaigns: _Optional[_Iterable[_Union[Campaign, _Mapping]]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class ListCampaignMessagesRequest(_message.Message):
    __slots__ = ("campaign_id", "page_size", "page_token")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    page_size: int
    page_token: str
    def __init__(self, campaign_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCampaignMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[CampaignMessage]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[CampaignMessage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordCampaignEventRequest(_message.Message):
    __slots__ = ("campaign_id", "customer_id", "event", "product_id", "occurred_at")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    customer_id: str
    event: CampaignEventKind
    product_id: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, campaign_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., event: _Optional[_Union[CampaignEventKind, str]] = ..., product_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordCampaignEventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCampaignPerformanceRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetCampaignPerformanceResponse(_message.Message):
    __slots__ = ("campaign_id", "sent", "open_rate", "conversion_rate", "attributed_revenue", "click_rate", "attributed_purchases", "unsubscribes", "holdout_size", "holdout_conversion_rate", "incremental_conversion", "relative_lift", "incremental_revenue_per_recipient", "attribution_days")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    OPEN_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    CLICK_RATE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBES_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_CONVERSION_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_LIFT_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_REVENUE_PER_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    sent: int
    open_rate: float
    conversion_rate: float
    attributed_revenue: float
    click_rate: float
    attributed_purchases: int
    unsubscribes: int
    holdout_size: int
    holdout_conversion_rate: float
    incremental_conversion: float
    relative_lift: float
    incremental_revenue_per_recipient: float
    attribution_days: int
    def __init__(self, campaign_id: _Optional[str] = ..., sent: _Optional[int] = ..., open_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ..., attributed_revenue: _Optional[float] = ..., click_rate: _Optional[float] = ..., attributed_purchases: _Optional[int] = ..., unsubscribes: _Optional[int] = ..., holdout_size: _Optional[int] = ..., holdout_conversion_rate: _Optional[float] = ..., incremental_conversion: _Optional[float] = ..., relative_lift: _Optional[float] = ..., incremental_revenue_per_recipient: _Optional[float] = ..., attribution_days: _Optional[int] = ...) -> None: ...
