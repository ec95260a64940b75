import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as _recommendation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExperimentSurface(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_SURFACE_UNSPECIFIED: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_RECOMMENDATIONS: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_PERSONALIZED: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_SIMILAR: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_FREQUENTLY_BOUGHT_TOGETHER: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_TRENDING: _ClassVar[ExperimentSurface]
    EXPERIMENT_SURFACE_SEASONAL: _ClassVar[ExperimentSurface]

class ExperimentMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_METRIC_UNSPECIFIED: _ClassVar[ExperimentMetric]
    EXPERIMENT_METRIC_CLICK_THROUGH_RATE: _ClassVar[ExperimentMetric]
    EXPERIMENT_METRIC_CONVERSION_RATE: _ClassVar[ExperimentMetric]
    EXPERIMENT_METRIC_REVENUE_PER_CUSTOMER: _ClassVar[ExperimentMetric]
EXPERIMENT_SURFACE_UNSPECIFIED: ExperimentSurface
EXPERIMENT_SURFACE_RECOMMENDATIONS: ExperimentSurface
EXPERIMENT_SURFACE_PERSONALIZED: ExperimentSurface
EXPERIMENT_SURFACE_SIMILAR: ExperimentSurface
EXPERIMENT_SURFACE_FREQUENTLY_BOUGHT_TOGETHER: ExperimentSurface
EXPERIMENT_SURFACE_TRENDING: ExperimentSurface
EXPERIMENT_SURFACE_SEASONAL: ExperimentSurface
EXPERIMENT_METRIC_UNSPECIFIED: ExperimentMetric
EXPERIMENT_METRIC_CLICK_THROUGH_RATE: ExperimentMetric
EXPERIMENT_METRIC_CONVERSION_RATE: ExperimentMetric
EXPERIMENT_METRIC_REVENUE_PER_CUSTOMER: ExperimentMetric

class ExperimentArm(_message.Message):
    __slots__ = ("arm_id", "traffic_percent", "model_version", "strategy")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    traffic_percent: int
    model_version: str
    strategy: _recommendation_pb2.Strategy
    def __init__(self, arm_id: _Optional[str] = ..., traffic_percent: _Optional[int] = ..., model_version: _Optional[str] = ..., strategy: _Optional[_Union[_recommendation_pb2.Strategy, str]] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("experiment_id", "description", "surface", "arms", "primary_metric", "holdout_percent", "attribution_window_days", "created_at", "stopped_at", "running", "independent")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STOPPED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    INDEPENDENT_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    description: str
    surface: ExperimentSurface
    arms: _containers.RepeatedCompositeFieldContainer[ExperimentArm]
    primary_metric: ExperimentMetric
    holdout_percent: int
    attribution_window_days: int
    created_at: _timestamp_pb2.Timestamp
    stopped_at: _timestamp_pb2.Timestamp
    running: bool
    independent: bool
    def __init__(self, experiment_id: _Optional[str] = ..., description: _Optional[str] = ..., surface: _Optional[_Union[ExperimentSurface, str]] = ..., arms: _Optional[_Iterable[_Union[ExperimentArm, _Mapping]]] = ..., primary_metric: _Optional[_Union[ExperimentMetric, str]] = ..., holdout_percent: _Optional[int] = ..., attribution_window_days: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stopped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., running: _Optional[bool] = ..., independent: _Optional[bool] = ...) -> None: ...

class CreateExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "description", "surface", "arms", "primary_metric", "holdout_percent", "attribution_window_days", "independent")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    INDEPENDENT_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    description: str
    surface: ExperimentSurface
    arms: _containers.RepeatedCompositeFieldContainer[ExperimentArm]
    primary_metric: ExperimentMetric
    holdout_percent: int
    attribution_window_days: int
    independent: bool
    def __init__(self, experiment_id: _Optional[str] = ..., description: _Optional[str] = ..., surface: _Optional[_Union[ExperimentSurface, str]] = ..., arms: _Optional[_Iterable[_Union[ExperimentArm, _Mapping]]] = ..., primary_metric: _Optional[_Union[ExperimentMetric, str]] = ..., holdout_percent: _Optional[int] = ..., attribution_window_days: _Optional[int] = ..., independent: _Optional[bool] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ...) -> None: ...

class StopExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class GetExperimentResultsRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("value", "low", "high")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    value: float
    low: float
    high: float
    def __init__(self, value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class ExperimentArmResult(_message.Message):
    __slots__ = ("arm_id", "customers", "served_lists", "impressions", "clicks", "add_to_carts", "purchases", "revenue", "click_through_rate", "conversion_rate", "revenue_per_customer", "click_through_rate_interval", "conversion_rate_interval", "revenue_per_customer_interval", "difference", "p_value")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    SERVED_LISTS_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    ADD_TO_CARTS_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_PER_CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    REVENUE_PER_CUSTOMER_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    customers: int
    served_lists: int
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    revenue: float
    click_through_rate: float
    conversion_rate: float
    revenue_per_customer: float
    click_through_rate_interval: Interval
    conversion_rate_interval: Interval
    revenue_per_customer_interval: Interval
    difference: Interval
    p_value: float
    def __init__(self, arm_id: _Optional[str] = ..., customers: _Optional[int] = ..., served_lists: _Optional[int] = ..., impressions: _Optional[int] = ..., clicks: _Optional[int] = ..., add_to_carts: _Optional[int] = ..., purchases: _Optional[int] = ..., revenue: _Optional[float] = ..., click_through_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ..., revenue_per_customer: _Optional[float] = ..., click_through_rate_interval: _Optional[_Union[Interval, _Mapping]] = ..., conversion_rate_interval: _Optional[_Union[Interval, _Mapping]] = ..., revenue_per_customer_interval: _Optional[_Union[Interval, _Mapping]] = ..., difference: _Optional[_Union[Interval, _Mapping]] = ..., p_value: _Optional[float] = ...) -> None: ...

class GetExperimentResultsResponse(_message.Message):
    __slots__ = ("experiment", "arms", "p_value", "winner", "sample_ratio_mismatch", "sample_ratio_p_value", "cuped_variance_reduction", "looks", "computed_at")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    CUPED_VARIANCE_REDUCTION_FIELD_NUMBER: _ClassVar[int]
    LOOKS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    arms: _containers.RepeatedCompositeFieldContainer[ExperimentArmResult]
    p_value: float
    winner: str
    sample_ratio_mismatch: bool
    sample_ratio_p_value: float
    cuped_variance_reduction: float
    looks: int
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ..., arms: _Optional[_Iterable[_Union[ExperimentArmResult, _Mapping]]] = ..., p_value: _Optional[float] = ..., winner: _Optional[str] = ..., sample_ratio_mismatch: _Optional[bool] = ..., sample_ratio_p_value: _Optional[float] = ..., cuped_variance_reduction: _Optional[float] = ..., looks: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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

class PerformanceSlice(_message.Message):
    __slots__ = ("strategy", "model_version", "lists_served", "impressions", "clicks", "add_to_carts", "dismissals", "purchases", "revenue", "click_through_rate", "conversion_rate", "dismissal_rate")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LISTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    ADD_TO_CARTS_FIELD_NUMBER: _ClassVar[int]
    DISMISSALS_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    DISMISSAL_RATE_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    model_version: str
    lists_served: int
    impressions: int
    clicks: int
    add_to_carts: int
    dismissals: int
    purchases: int
    revenue: float
    click_through_rate: float
    conversion_rate: float
    dismissal_rate: float
    def __init__(self, strategy: _Optional[str] = ..., model_version: _Optional[str] = ..., lists_served: _Optional[int] = ..., impressions: _Optional[int] = ..., clicks: _Optional[int] = ..., add_to_carts: _Optional[int] = ..., dismissals: _Optional[int] = ..., purchases: _Optional[int] = ..., revenue: _Optional[float] = ..., click_through_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ..., dismissal_rate: _Optional[float] = ...) -> None: ...

class GetRecommendationPerformanceResponse(_message.Message):
    __slots__ = ("lists_served", "impressions", "click_through_rate", "conversion_rate", "total", "slices", "meets_click_through_target", "repeat_purchase_rate")
    LISTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    CLICK_THROUGH_RATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    MEETS_CLICK_THROUGH_TARGET_FIELD_NUMBER: _ClassVar[int]
    REPEAT_PURCHASE_RATE_FIELD_NUMBER: _ClassVar[int]
    lists_served: int
    impressions: int
    click_through_rate: float
    conversion_rate: float
    total: PerformanceSlice
    slices: _containers.RepeatedCompositeFieldContainer[PerformanceSlice]
    meets_click_through_target: bool
    repeat_purchase_rate: float
    def __init__(self, lists_served: _Optional[int] = ..., impressions: _Optional[int] = ..., click_through_rate: _Optional[float] = ..., conversion_rate: _Optional[float] = ..., total: _Optional[_Union[PerformanceSlice, _Mapping]] = ..., slices: _Optional[_Iterable[_Union[PerformanceSlice, _Mapping]]] = ..., meets_click_through_target: _Optional[bool] = ..., repeat_purchase_rate: _Optional[float] = ...) -> None: ...

class GetRecommendationRoiRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    def __init__(self, period: _Optional[_Union[ReportPeriod, _Mapping]] = ...) -> None: ...

class GetRecommendationRoiResponse(_message.Message):
    __slots__ = ("attributed_revenue", "revenue_share", "total_revenue", "attributed_purchases", "attribution_window_days")
    ATTRIBUTED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REVENUE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTION_WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    attributed_revenue: float
    revenue_share: float
    total_revenue: float
    attributed_purchases: int
    attribution_window_days: int
    def __init__(self, attributed_revenue: _Optional[float] = ..., revenue_share: _Optional[float] = ..., total_revenue: _Optional[float] = ..., attributed_purchases: _Optional[int] = ..., attribution_window_days: _Optional[int] = ...) -> None: ...

class GetRecommendationImpactRequest(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: ReportPeriod
    def __init__(self, period: _Optional[_Union[ReportPeriod, _Mapping]] = ...) -> None: ...

class GetRecommendationImpactResponse(_message.Message):
    __slots__ = ("average_order_value_exposed", "average_order_value_control", "basket_size_exposed", "basket_size_control", "customers_exposed", "customers_control", "order_value_uplift", "basket_size_uplift", "retention_exposed", "retention_control")
    AVERAGE_ORDER_VALUE_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ORDER_VALUE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    BASKET_SIZE_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    BASKET_SIZE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_CONTROL_FIELD_NUMBER: _ClassVar[int]
    ORDER_VALUE_UPLIFT_FIELD_NUMBER: _ClassVar[int]
    BASKET_SIZE_UPLIFT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_EXPOSED_FIELD_NUMBER: _ClassVar[int]
    RETENTION_CONTROL_FIELD_NUMBER: _ClassVar[int]
    average_order_value_exposed: float
    average_order_value_control: float
    basket_size_exposed: float
    basket_size_control: float
    customers_exposed: int
    customers_control: int
    order_value_uplift: float
    basket_size_uplift: float
    retention_exposed: float
    retention_control: float
    def __init__(self, average_order_value_exposed: _Optional[float] = ..., average_order_value_control: _Optional[float] = ..., basket_size_exposed: _Optional[float] = ..., basket_size_control: _Optional[float] = ..., customers_exposed: _Optional[int] = ..., customers_control: _Optional[int] = ..., order_value_uplift: _Optional[float] = ..., basket_size_uplift: _Optional[float] = ..., retention_exposed: _Optional[float] = ..., retention_control: _Optional[float] = ...) -> None: ...
