import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInventoryForecastRequest(_message.Message):
    __slots__ = ("product_ids", "horizon_days", "as_of", "limit", "store_id")
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    horizon_days: int
    as_of: _timestamp_pb2.Timestamp
    limit: int
    store_id: str
    def __init__(self, product_ids: _Optional[_Iterable[str]] = ..., horizon_days: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., store_id: _Optional[str] = ...) -> None: ...

class ProductDemandForecast(_message.Message):
    __slots__ = ("product_id", "name", "expected_units", "low_units", "high_units", "mean_daily_units")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_UNITS_FIELD_NUMBER: _ClassVar[int]
    LOW_UNITS_FIELD_NUMBER: _ClassVar[int]
    HIGH_UNITS_FIELD_NUMBER: _ClassVar[int]
    MEAN_DAILY_UNITS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    name: str
    expected_units: float
    low_units: float
    high_units: float
    mean_daily_units: float
    def __init__(self, product_id: _Optional[str] = ..., name: _Optional[str] = ..., expected_units: _Optional[float] = ..., low_units: _Optional[float] = ..., high_units: _Optional[float] = ..., mean_daily_units: _Optional[float] = ...) -> None: ...

class GetInventoryForecastResponse(_message.Message):
    __slots__ = ("horizon_days", "as_of", "forecasts", "store_id")
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    horizon_days: int
    as_of: _timestamp_pb2.Timestamp
    forecasts: _containers.RepeatedCompositeFieldContainer[ProductDemandForecast]
    store_id: str
    def __init__(self, horizon_days: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., forecasts: _Optional[_Iterable[_Union[ProductDemandForecast, _Mapping]]] = ..., store_id: _Optional[str] = ...) -> None: ...

class StockPosition(_message.Message):
    __slots__ = ("product_id", "on_hand", "on_order", "lead_time_days")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    ON_ORDER_FIELD_NUMBER: _ClassVar[int]
    LEAD_TIME_DAYS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: float
    on_order: float
    lead_time_days: int
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[float] = ..., on_order: _Optional[float] = ..., lead_time_days: _Optional[int] = ...) -> None: ...

class GetReorderRecommendationsRequest(_message.Message):
    __slots__ = ("positions", "service_level", "review_period_days", "as_of", "store_id")
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_PERIOD_DAYS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[StockPosition]
    service_level: float
    review_period_days: int
    as_of: _timestamp_pb2.Timestamp
    store_id: str
    def __init__(self, positions: _Optional[_Iterable[_Union[StockPosition, _Mapping]]] = ..., service_level: _Optional[float] = ..., review_period_days: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store_id: _Optional[str] = ...) -> None: ...

class ReorderRecommendation(_message.Message):
    __slots__ = ("product_id", "reorder_point", "order_quantity", "mean_daily_units", "stockout_probability", "expected_stockouts_avoided")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    ORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MEAN_DAILY_UNITS_FIELD_NUMBER: _ClassVar[int]
    STOCKOUT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STOCKOUTS_AVOIDED_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    reorder_point: float
    order_quantity: float
    mean_daily_units: float
    stockout_probability: float
    expected_stockouts_avoided: float
    def __init__(self, product_id: _Optional[str] = ..., reorder_point: _Optional[float] = ..., order_quantity: _Optional[float] = ..., mean_daily_units: _Optional[float] = ..., stockout_probability: _Optional[float] = ..., expected_stockouts_avoided: _Optional[float] = ...) -> None: ...

class GetReorderRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations",)
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[ReorderRecommendation]
    def __init__(self, recommendations: _Optional[_Iterable[_Union[ReorderRecommendation, _Mapping]]] = ...) -> None: ...
