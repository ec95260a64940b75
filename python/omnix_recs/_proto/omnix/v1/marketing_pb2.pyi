import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CampaignKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_KIND_UNSPECIFIED: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_PERSONALIZED_EMAIL: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_ABANDONED_CART: _ClassVar[CampaignKind]
    CAMPAIGN_KIND_WIN_BACK: _ClassVar[CampaignKind]
CAMPAIGN_KIND_UNSPECIFIED: CampaignKind
CAMPAIGN_KIND_PERSONALIZED_EMAIL: CampaignKind
CAMPAIGN_KIND_ABANDONED_CART: CampaignKind
CAMPAIGN_KIND_WIN_BACK: CampaignKind

class CreateCampaignRequest(_message.Message):
    __slots__ = ("name", "kind", "scheduled_at", "items_per_message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: CampaignKind
    scheduled_at: _timestamp_pb2.Timestamp
    items_per_message: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[CampaignKind, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., items_per_message: _Optional[int] = ...) -> None: ...

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "name", "kind", "scheduled_at", "audience_size")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_SIZE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    kind: CampaignKind
    scheduled_at: _timestamp_pb2.Timestamp
    audience_size: int
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[CampaignKind, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audience_size: _Optional[int] = ...) -> None: ...

class GetCampaignPerformanceRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetCampaignPerformanceResponse(_message.Message):
    __slots__ = ("campaign_id", "sent", "open_rate", "conversion_rate", "attributed_revenue")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    OPEN_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    sent: int
    open_rate: float
    conversion_rate: float
    attributed_revenue: float
    def __init__(self, campaign_id: _Optional[str] = ..., sent: _Optional[int] = ..., open_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ..., attributed_revenue: _Optional[float] = ...) -> None: ...
