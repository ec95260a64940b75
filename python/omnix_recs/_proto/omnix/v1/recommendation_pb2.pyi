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

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_BALANCED: _ClassVar[Strategy]
    STRATEGY_REPLENISH: _ClassVar[Strategy]
    STRATEGY_DISCOVER: _ClassVar[Strategy]

class LifecycleStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STAGE_UNSPECIFIED: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_NEW: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_REGULAR: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_VIP: _ClassVar[LifecycleStage]

class FeedbackEvent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_EVENT_UNSPECIFIED: _ClassVar[FeedbackEvent]
    FEEDBACK_EVENT_SHOWN: _ClassVar[FeedbackEvent]
    FEEDBACK_EVENT_CLICKED: _ClassVar[FeedbackEvent]
    FEEDBACK_EVENT_ADDED_TO_CART: _ClassVar[FeedbackEvent]
    FEEDBACK_EVENT_PURCHASED: _ClassVar[FeedbackEvent]
    FEEDBACK_EVENT_DISMISSED: _ClassVar[FeedbackEvent]
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_BALANCED: Strategy
STRATEGY_REPLENISH: Strategy
STRATEGY_DISCOVER: Strategy
LIFECYCLE_STAGE_UNSPECIFIED: LifecycleStage
LIFECYCLE_STAGE_NEW: LifecycleStage
LIFECYCLE_STAGE_REGULAR: LifecycleStage
LIFECYCLE_STAGE_VIP: LifecycleStage
FEEDBACK_EVENT_UNSPECIFIED: FeedbackEvent
FEEDBACK_EVENT_SHOWN: FeedbackEvent
FEEDBACK_EVENT_CLICKED: FeedbackEvent
FEEDBACK_EVENT_ADDED_TO_CART: FeedbackEvent
FEEDBACK_EVENT_PURCHASED: FeedbackEvent
FEEDBACK_EVENT_DISMISSED: FeedbackEvent

class RecommendationFilters(_message.Message):
    __slots__ = ("max_price", "include_departments", "exclude_departments", "dietary_restrictions", "allergens")
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    DIETARY_RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    ALLERGENS_FIELD_NUMBER: _ClassVar[int]
    max_price: float
    include_departments: _containers.RepeatedScalarFieldContainer[str]
    exclude_departments: _containers.RepeatedScalarFieldContainer[str]
    dietary_restrictions: _containers.RepeatedScalarFieldContainer[str]
    allergens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_price: _Optional[float] = ..., include_departments: _Optional[_Iterable[str]] = ..., exclude_departments: _Optional[_Iterable[str]] = ..., dietary_restrictions: _Optional[_Iterable[str]] = ..., allergens: _Optional[_Iterable[str]] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("product_id", "score", "confidence", "reasons")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    confidence: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRecommendationsRequest(_message.Message):
    __slots__ = ("customer_id", "limit", "strategy", "as_of", "filters", "basket_product_ids", "exclude_purchased")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    BASKET_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PURCHASED_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    limit: int
    strategy: Strategy
    as_of: _timestamp_pb2.Timestamp
    filters: RecommendationFilters
    basket_product_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_purchased: bool
    def __init__(self, customer_id: _Optional[str] = ..., limit: _Optional[int] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ..., basket_product_ids: _Optional[_Iterable[str]] = ..., exclude_purchased: _Optional[bool] = ...) -> None: ...

class ExperimentAssignment(_message.Message):
    __slots__ = ("experiment_id", "arm_id")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    arm_id: str
    def __init__(self, experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ...) -> None: ...

class GetRecommendationsResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "strategy", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    strategy: Strategy
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class GetPersonalizedRecommendationsRequest(_message.Message):
    __slots__ = ("customer_id", "limit", "as_of", "filters")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    limit: int
    as_of: _timestamp_pb2.Timestamp
    filters: RecommendationFilters
    def __init__(self, customer_id: _Optional[str] = ..., limit: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ...) -> None: ...

class GetPersonalizedRecommendationsResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "lifecycle", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    lifecycle: LifecycleStage
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., lifecycle: _Optional[_Union[LifecycleStage, str]] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class GetSimilarProductsRequest(_message.Message):
    __slots__ = ("product_id", "limit", "customer_id", "filters")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    limit: int
    customer_id: str
    filters: RecommendationFilters
    def __init__(self, product_id: _Optional[str] = ..., limit: _Optional[int] = ..., customer_id: _Optional[str] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ...) -> None: ...

class GetSimilarProductsResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class GetFrequentlyBoughtTogetherRequest(_message.Message):
    __slots__ = ("basket_product_ids", "limit", "customer_id", "filters")
    BASKET_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    basket_product_ids: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    customer_id: str
    filters: RecommendationFilters
    def __init__(self, basket_product_ids: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., customer_id: _Optional[str] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ...) -> None: ...

class GetFrequentlyBoughtTogetherResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class GetTrendingRequest(_message.Message):
    __slots__ = ("limit", "department", "window_days", "customer_id", "filters")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    department: str
    window_days: int
    customer_id: str
    filters: RecommendationFilters
    def __init__(self, limit: _Optional[int] = ..., department: _Optional[str] = ..., window_days: _Optional[int] = ..., customer_id: _Optional[str] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ...) -> None: ...

class GetTrendingResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "window_days", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    window_days: int
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., window_days: _Optional[int] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class GetSeasonalRequest(_message.Message):
    __slots__ = ("limit", "as_of", "department", "customer_id", "filters")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    as_of: _timestamp_pb2.Timestamp
    department: str
    customer_id: str
    filters: RecommendationFilters
    def __init__(self, limit: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., department: _Optional[str] = ..., customer_id: _Optional[str] = ..., filters: _Optional[_Union[RecommendationFilters, _Mapping]] = ...) -> None: ...

class GetSeasonalResponse(_message.Message):
    __slots__ = ("items", "model_version", "recommendation_id", "week_of_year", "experiment_id", "arm_id", "assignments")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    WEEK_OF_YEAR_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    recommendation_id: str
    week_of_year: int
    experiment_id: str
    arm_id: str
    assignments: _containers.RepeatedCompositeFieldContainer[ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., week_of_year: _Optional[int] = ..., experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class RecordFeedbackRequest(_message.Message):
    __slots__ = ("recommendation_id", "customer_id", "product_id", "event", "occurred_at")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    customer_id: str
    product_id: str
    event: FeedbackEvent
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, recommendation_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., product_id: _Optional[str] = ..., event: _Optional[_Union[FeedbackEvent, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordFeedbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
