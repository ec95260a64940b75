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

class AccuracyBucket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCURACY_BUCKET_UNSPECIFIED: _ClassVar[AccuracyBucket]
    ACCURACY_BUCKET_DAY: _ClassVar[AccuracyBucket]
    ACCURACY_BUCKET_WEEK: _ClassVar[AccuracyBucket]
    ACCURACY_BUCKET_MONTH: _ClassVar[AccuracyBucket]
ACCURACY_BUCKET_UNSPECIFIED: AccuracyBucket
ACCURACY_BUCKET_DAY: AccuracyBucket
ACCURACY_BUCKET_WEEK: AccuracyBucket
ACCURACY_BUCKET_MONTH: AccuracyBucket

class AnalyzeCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class AnalyzeCustomerResponse(_message.Message):
    __slots__ = ("summary", "source", "insights", "analyzed_at", "model", "fallback_reason")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INSIGHTS_FIELD_NUMBER: _ClassVar[int]
    ANALYZED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    summary: str
    source: str
    insights: CustomerInsights
    analyzed_at: _timestamp_pb2.Timestamp
    model: str
    fallback_reason: str
    def __init__(self, summary: _Optional[str] = ..., source: _Optional[str] = ..., insights: _Optional[_Union[CustomerInsights, _Mapping]] = ..., analyzed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., fallback_reason: _Optional[str] = ...) -> None: ...

class GetInsightsRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetInsightsResponse(_message.Message):
    __slots__ = ("summary", "source", "insights", "analyzed_at", "model", "fallback_reason")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INSIGHTS_FIELD_NUMBER: _ClassVar[int]
    ANALYZED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    summary: str
    source: str
    insights: CustomerInsights
    analyzed_at: _timestamp_pb2.Timestamp
    model: str
    fallback_reason: str
    def __init__(self, summary: _Optional[str] = ..., source: _Optional[str] = ..., insights: _Optional[_Union[CustomerInsights, _Mapping]] = ..., analyzed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., fallback_reason: _Optional[str] = ...) -> None: ...

class CustomerInsights(_message.Message):
    __slots__ = ("highlights", "household", "budget", "lifestyle", "lifecycle", "needs", "actions")
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    HOUSEHOLD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    LIFESTYLE_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    highlights: _containers.RepeatedScalarFieldContainer[str]
    household: HouseholdInsight
    budget: BudgetInsight
    lifestyle: _containers.RepeatedCompositeFieldContainer[LifestyleInsight]
    lifecycle: LifecycleInsight
    needs: _containers.RepeatedCompositeFieldContainer[ProductNeed]
    actions: _containers.RepeatedCompositeFieldContainer[SuggestedAction]
    def __init__(self, highlights: _Optional[_Iterable[str]] = ..., household: _Optional[_Union[HouseholdInsight, _Mapping]] = ..., budget: _Optional[_Union[BudgetInsight, _Mapping]] = ..., lifestyle: _Optional[_Iterable[_Union[LifestyleInsight, _Mapping]]] = ..., lifecycle: _Optional[_Union[LifecycleInsight, _Mapping]] = ..., needs: _Optional[_Iterable[_Union[ProductNeed, _Mapping]]] = ..., actions: _Optional[_Iterable[_Union[SuggestedAction, _Mapping]]] = ...) -> None: ...

class HouseholdInsight(_message.Message):
    __slots__ = ("size", "confidence", "evidence")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    size: int
    confidence: float
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, size: _Optional[int] = ..., confidence: _Optional[float] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class BudgetInsight(_message.Message):
    __slots__ = ("tier", "price_sensitivity", "confidence", "evidence")
    TIER_FIELD_NUMBER: _ClassVar[int]
    PRICE_SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    tier: str
    price_sensitivity: str
    confidence: float
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tier: _Optional[str] = ..., price_sensitivity: _Optional[str] = ..., confidence: _Optional[float] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class LifestyleInsight(_message.Message):
    __slots__ = ("trait", "confidence", "evidence")
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    trait: str
    confidence: float
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, trait: _Optional[str] = ..., confidence: _Optional[float] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class LifecycleInsight(_message.Message):
    __slots__ = ("segment", "confidence", "evidence")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    segment: str
    confidence: float
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, segment: _Optional[str] = ..., confidence: _Optional[float] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class ProductNeed(_message.Message):
    __slots__ = ("product_id", "when", "reason")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    when: str
    reason: str
    def __init__(self, product_id: _Optional[str] = ..., when: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SuggestedAction(_message.Message):
    __slots__ = ("action", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: str
    reason: str
    def __init__(self, action: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetConsumptionPredictionsRequest(_message.Message):
    __slots__ = ("customer_id", "as_of", "limit", "due_only")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    as_of: _timestamp_pb2.Timestamp
    limit: int
    due_only: bool
    def __init__(self, customer_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., due_only: _Optional[bool] = ...) -> None: ...

class GetConsumptionPredictionsResponse(_message.Message):
    __slots__ = ("next_visit_at", "predictions", "next_visit_confidence", "visit_cycle_days", "as_of")
    NEXT_VISIT_AT_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_VISIT_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VISIT_CYCLE_DAYS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    next_visit_at: _timestamp_pb2.Timestamp
    predictions: _containers.RepeatedCompositeFieldContainer[ConsumptionPrediction]
    next_visit_confidence: float
    visit_cycle_days: float
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, next_visit_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predictions: _Optional[_Iterable[_Union[ConsumptionPrediction, _Mapping]]] = ..., next_visit_confidence: _Optional[float] = ..., visit_cycle_days: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConsumptionPrediction(_message.Message):
    __slots__ = ("product_id", "next_purchase_at", "confidence", "cycle_days", "last_purchased_at", "due_now")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_PURCHASE_AT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CYCLE_DAYS_FIELD_NUMBER: _ClassVar[int]
    LAST_PURCHASED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_NOW_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    next_purchase_at: _timestamp_pb2.Timestamp
    confidence: float
    cycle_days: float
    last_purchased_at: _timestamp_pb2.Timestamp
    due_now: bool
    def __init__(self, product_id: _Optional[str] = ..., next_purchase_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confidence: _Optional[float] = ..., cycle_days: _Optional[float] = ..., last_purchased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_now: _Optional[bool] = ...) -> None: ...

class BatchAnalyzeRequest(_message.Message):
    __slots__ = ("customer_ids", "max_customers", "skip_analyzed_since", "concurrency", "progress_every")
    CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    SKIP_ANALYZED_SINCE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_EVERY_FIELD_NUMBER: _ClassVar[int]
    customer_ids: _containers.RepeatedScalarFieldContainer[str]
    max_customers: int
    skip_analyzed_since: _timestamp_pb2.Timestamp
    concurrency: int
    progress_every: int
    def __init__(self, customer_ids: _Optional[_Iterable[str]] = ..., max_customers: _Optional[int] = ..., skip_analyzed_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., concurrency: _Optional[int] = ..., progress_every: _Optional[int] = ...) -> None: ...

class BatchAnalyzeProgress(_message.Message):
    __slots__ = ("started_at", "total", "done", "analyzed", "skipped", "failed", "bedrock", "local", "finished", "last_error")
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ANALYZED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    BEDROCK_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    started_at: _timestamp_pb2.Timestamp
    total: int
    done: int
    analyzed: int
    skipped: int
    failed: int
    bedrock: int
    local: int
    finished: bool
    last_error: str
    def __init__(self, started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total: _Optional[int] = ..., done: _Optional[int] = ..., analyzed: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., bedrock: _Optional[int] = ..., local: _Optional[int] = ..., finished: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetPredictionAccuracyRequest(_message.Message):
    __slots__ = ("since", "until", "bucket", "horizon_days")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    bucket: AccuracyBucket
    horizon_days: int
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket: _Optional[_Union[AccuracyBucket, str]] = ..., horizon_days: _Optional[int] = ...) -> None: ...

class PredictionAccuracy(_message.Message):
    __slots__ = ("predictions", "scored", "next_visit_mae_days", "next_purchase_mae_days", "product_predictions_scored", "due_now_precision", "due_now_recall")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    NEXT_VISIT_MAE_DAYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PURCHASE_MAE_DAYS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_PREDICTIONS_SCORED_FIELD_NUMBER: _ClassVar[int]
    DUE_NOW_PRECISION_FIELD_NUMBER: _ClassVar[int]
    DUE_NOW_RECALL_FIELD_NUMBER: _ClassVar[int]
    predictions: int
    scored: int
    next_visit_mae_days: float
    next_purchase_mae_days: float
    product_predictions_scored: int
    due_now_precision: float
    due_now_recall: float
    def __init__(self, predictions: _Optional[int] = ..., scored: _Optional[int] = ..., next_visit_mae_days: _Optional[float] = ..., next_purchase_mae_days: _Optional[float] = ..., product_predictions_scored: _Optional[int] = ..., due_now_precision: _Optional[float] = ..., due_now_recall: _Optional[float] = ...) -> None: ...

class AccuracyBucketResult(_message.Message):
    __slots__ = ("start", "accuracy")
    START_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    accuracy: PredictionAccuracy
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., accuracy: _Optional[_Union[PredictionAccuracy, _Mapping]] = ...) -> None: ...

class GetPredictionAccuracyResponse(_message.Message):
    __slots__ = ("overall", "buckets", "drift", "scored_until")
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    SCORED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    overall: PredictionAccuracy
    buckets: _containers.RepeatedCompositeFieldContainer[AccuracyBucketResult]
    drift: AccuracyDrift
    scored_until: _timestamp_pb2.Timestamp
    def __init__(self, overall: _Optional[_Union[PredictionAccuracy, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[AccuracyBucketResult, _Mapping]]] = ..., drift: _Optional[_Union[AccuracyDrift, _Mapping]] = ..., scored_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccuracyDrift(_message.Message):
    __slots__ = ("latest_bucket", "next_visit_mae_change_days", "next_purchase_mae_change_days", "p_value", "drifting")
    LATEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    NEXT_VISIT_MAE_CHANGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PURCHASE_MAE_CHANGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    DRIFTING_FIELD_NUMBER: _ClassVar[int]
    latest_bucket: _timestamp_pb2.Timestamp
    next_visit_mae_change_days: float
    next_purchase_mae_change_days: float
    p_value: float
    drifting: bool
    def __init__(self, latest_bucket: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_visit_mae_change_days: _Optional[float] = ..., next_purchase_mae_change_days: _Optional[float] = ..., p_value: _Optional[float] = ..., drifting: _Optional[bool] = ...) -> None: ...
