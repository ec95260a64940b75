import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersion(_message.Message):
    __slots__ = ("version", "created_at", "active", "metrics", "artifact_uri", "blends", "tuning")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class BlendsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blend
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blend, _Mapping]] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_URI_FIELD_NUMBER: _ClassVar[int]
    BLENDS_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    version: str
    created_at: _timestamp_pb2.Timestamp
    active: bool
    metrics: _containers.ScalarMap[str, float]
    artifact_uri: str
    blends: _containers.MessageMap[str, Blend]
    tuning: str
    def __init__(self, version: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ..., artifact_uri: _Optional[str] = ..., blends: _Optional[_Mapping[str, Blend]] = ..., tuning: _Optional[str] = ...) -> None: ...

class Blend(_message.Message):
    __slots__ = ("weights", "exclude_history", "per_category_cap", "neighbours_per_item")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_HISTORY_FIELD_NUMBER: _ClassVar[int]
    PER_CATEGORY_CAP_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.ScalarMap[str, float]
    exclude_history: bool
    per_category_cap: int
    neighbours_per_item: int
    def __init__(self, weights: _Optional[_Mapping[str, float]] = ..., exclude_history: _Optional[bool] = ..., per_category_cap: _Optional[int] = ..., neighbours_per_item: _Optional[int] = ...) -> None: ...

class RetrainModelRequest(_message.Message):
    __slots__ = ("skip_activation", "force")
    SKIP_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    skip_activation: bool
    force: bool
    def __init__(self, skip_activation: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class RetrainModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ...) -> None: ...

class ActivateModelRequest(_message.Message):
    __slots__ = ("version", "force")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    force: bool
    def __init__(self, version: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RollbackModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportPeriod(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRecommendationPerformanceRequest(_message.Message):
    __slots__ = ("period", "strategy")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    strategy: str
    def __init__(self, period: _Optional[_Union[ReportPeriod, _Mapping]] = ..., strategy: _Optional[str] = ...) -> None: ...

class GetRecommendationPerformanceResponse(_message.Message):
    __slots__ = ("lists_served", "impressions", "click_through_rate", "conversion_rate")
    LISTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    lists_served: int
    impressions: int
    click_through_rate: float
    conversion_rate: float
    def __init__(self, lists_served: _Optional[int] = ..., impressions: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ...) -> None: ...

class GetRecommendationRoiRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    def __init__(self, period: _Optional[_Union[ReportPeriod, _Mapping]] = ...) -> None: ...

class GetRecommendationRoiResponse(_message.Message):
    __slots__ = ("attributed_revenue", "revenue_share")
    ATTRIBUTED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    attributed_revenue: float
    revenue_share: float
    def __init__(self, attributed_revenue: _Optional[float] = ..., revenue_share: _Optional[float] = ...) -> None: ...

class GetRecommendationImpactRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    def __init__(self, period: _Optional[_Union[ReportPeriod, _Mapping]] = ...) -> None: ...

class GetRecommendationImpactResponse(_message.Message):
    __slots__ = ("average_order_value_exposed", "average_order_value_control", "basket_size_exposed", "basket_size_control")
    AVERAGE_ORDER_VALUE_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ORDER_VALUE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    BASKET_SIZE_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    BASKET_SIZE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    average_order_value_exposed: float
    average_order_value_control: float
    basket_size_exposed: float
    basket_size_control: float
    def __init__(self, average_order_value_exposed: _Optional[float] = ..., average_order_value_control: _Optional[float] = ..., basket_size_exposed: _Optional[float] = ..., basket_size_control: _Optional[float] = ...) -> None: ...
