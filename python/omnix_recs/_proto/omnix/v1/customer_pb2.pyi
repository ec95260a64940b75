import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnix_recs._proto.omnix.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InteractionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERACTION_KIND_UNSPECIFIED: _ClassVar[InteractionKind]
    INTERACTION_KIND_VIEW: _ClassVar[InteractionKind]
    INTERACTION_KIND_CART_ADD: _ClassVar[InteractionKind]
    INTERACTION_KIND_CART_REMOVE: _ClassVar[InteractionKind]
    INTERACTION_KIND_SEARCH: _ClassVar[InteractionKind]
    INTERACTION_KIND_WISHLIST: _ClassVar[InteractionKind]
INTERACTION_KIND_UNSPECIFIED: InteractionKind
INTERACTION_KIND_VIEW: InteractionKind
INTERACTION_KIND_CART_ADD: InteractionKind
INTERACTION_KIND_CART_REMOVE: InteractionKind
INTERACTION_KIND_SEARCH: InteractionKind
INTERACTION_KIND_WISHLIST: InteractionKind

class Preferences(_message.Message):
    __slots__ = ("favorite_departments", "favorite_brands", "disliked_products", "budget_per_trip", "organic_preference")
    FAVORITE_DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    FAVORITE_BRANDS_FIELD_NUMBER: _ClassVar[int]
    DISLIKED_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_TRIP_FIELD_NUMBER: _ClassVar[int]
    ORGANIC_PREFERENCE_FIELD_NUMBER: _ClassVar[int]
    favorite_departments: _containers.RepeatedScalarFieldContainer[str]
    favorite_brands: _containers.RepeatedScalarFieldContainer[str]
    disliked_products: _containers.RepeatedScalarFieldContainer[str]
    budget_per_trip: float
    organic_preference: bool
    def __init__(self, favorite_departments: _Optional[_Iterable[str]] = ..., favorite_brands: _Optional[_Iterable[str]] = ..., disliked_products: _Optional[_Iterable[str]] = ..., budget_per_trip: _Optional[float] = ..., organic_preference: _Optional[bool] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("personalization", "marketing", "analytics")
    PERSONALIZATION_FIELD_NUMBER: _ClassVar[int]
    MARKETING_FIELD_NUMBER: _ClassVar[int]
    ANALYTICS_FIELD_NUMBER: _ClassVar[int]
    personalization: bool
    marketing: bool
    analytics: bool
    def __init__(self, personalization: _Optional[bool] = ..., marketing: _Optional[bool] = ..., analytics: _Optional[bool] = ...) -> None: ...

class CustomerProfile(_message.Message):
    __slots__ = ("customer_id", "display_name", "email", "age_band", "household_size", "postcode", "preferences", "dietary_restrictions", "allergens", "consent", "created_at", "updated_at", "loyalty")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    HOUSEHOLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    POSTCODE_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    DIETARY_RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    ALLERGENS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    email: str
    age_band: str
    household_size: int
    postcode: str
    preferences: Preferences
    dietary_restrictions: _containers.RepeatedScalarFieldContainer[str]
    allergens: _containers.RepeatedScalarFieldContainer[str]
    consent: Consent
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    loyalty: LoyaltyStatus
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., email: _Optional[str] = ..., age_band: _Optional[str] = ..., household_size: _Optional[int] = ..., postcode: _Optional[str] = ..., preferences: _Optional[_Union[Preferences, _Mapping]] = ..., dietary_restrictions: _Optional[_Iterable[str]] = ..., allergens: _Optional[_Iterable[str]] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., loyalty: _Optional[_Union[LoyaltyStatus, _Mapping]] = ...) -> None: ...

class LoyaltyStatus(_message.Message):
    __slots__ = ("points", "tier", "spend_last_year", "next_tier", "spend_to_next_tier", "trips_last_90_days", "vip")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SPEND_LAST_YEAR_FIELD_NUMBER: _ClassVar[int]
    NEXT_TIER_FIELD_NUMBER: _ClassVar[int]
    SPEND_TO_NEXT_TIER_FIELD_NUMBER: _ClassVar[int]
    TRIPS_LAST_90_DAYS_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    points: int
    tier: str
    spend_last_year: float
    next_tier: str
    spend_to_next_tier: float
    trips_last_90_days: int
    vip: bool
    def __init__(self, points: _Optional[int] = ..., tier: _Optional[str] = ..., spend_last_year: _Optional[float] = ..., next_tier: _Optional[str] = ..., spend_to_next_tier: _Optional[float] = ..., trips_last_90_days: _Optional[int] = ..., vip: _Optional[bool] = ...) -> None: ...

class RegisterCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "display_name", "email", "age_band", "household_size", "postcode", "preferences", "dietary_restrictions", "allergens", "consent")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    HOUSEHOLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    POSTCODE_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    DIETARY_RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    ALLERGENS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    email: str
    age_band: str
    household_size: int
    postcode: str
    preferences: Preferences
    dietary_restrictions: _containers.RepeatedScalarFieldContainer[str]
    allergens: _containers.RepeatedScalarFieldContainer[str]
    consent: Consent
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., email: _Optional[str] = ..., age_band: _Optional[str] = ..., household_size: _Optional[int] = ..., postcode: _Optional[str] = ..., preferences: _Optional[_Union[Preferences, _Mapping]] = ..., dietary_restrictions: _Optional[_Iterable[str]] = ..., allergens: _Optional[_Iterable[str]] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class GetCustomerProfileRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class UpdatePreferencesRequest(_message.Message):
    __slots__ = ("customer_id", "preferences", "update_mask")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    preferences: Preferences
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, customer_id: _Optional[str] = ..., preferences: _Optional[_Union[Preferences, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class SetDietaryRestrictionsRequest(_message.Message):
    __slots__ = ("customer_id", "restrictions", "allergens")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    ALLERGENS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    restrictions: _containers.RepeatedScalarFieldContainer[str]
    allergens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, customer_id: _Optional[str] = ..., restrictions: _Optional[_Iterable[str]] = ..., allergens: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateConsentRequest(_message.Message):
    __slots__ = ("customer_id", "consent")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    consent: Consent
    def __init__(self, customer_id: _Optional[str] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class UpdateDemographicsRequest(_message.Message):
    __slots__ = ("customer_id", "display_name", "email", "age_band", "household_size", "postcode", "update_mask")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    HOUSEHOLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    POSTCODE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    email: str
    age_band: str
    household_size: int
    postcode: str
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., email: _Optional[str] = ..., age_band: _Optional[str] = ..., household_size: _Optional[int] = ..., postcode: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListPurchasesRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token", "start_time", "end_time")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPurchasesResponse(_message.Message):
    __slots__ = ("purchases", "next_page_token")
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    purchases: _containers.RepeatedCompositeFieldContainer[_common_pb2.Purchase]
    next_page_token: str
    def __init__(self, purchases: _Optional[_Iterable[_Union[_common_pb2.Purchase, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordPurchaseRequest(_message.Message):
    __slots__ = ("customer_id", "purchase")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    purchase: _common_pb2.Purchase
    def __init__(self, customer_id: _Optional[str] = ..., purchase: _Optional[_Union[_common_pb2.Purchase, _Mapping]] = ...) -> None: ...

class RecordPurchaseResponse(_message.Message):
    __slots__ = ("purchase",)
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    purchase: _common_pb2.Purchase
    def __init__(self, purchase: _Optional[_Union[_common_pb2.Purchase, _Mapping]] = ...) -> None: ...

class RecordPurchasesRequest(_message.Message):
    __slots__ = ("customer_id", "purchases")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    purchases: _containers.RepeatedCompositeFieldContainer[_common_pb2.Purchase]
    def __init__(self, customer_id: _Optional[str] = ..., purchases: _Optional[_Iterable[_Union[_common_pb2.Purchase, _Mapping]]] = ...) -> None: ...

class RecordPurchasesResponse(_message.Message):
    __slots__ = ("purchases",)
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    purchases: _containers.RepeatedCompositeFieldContainer[_common_pb2.Purchase]
    def __init__(self, purchases: _Optional[_Iterable[_Union[_common_pb2.Purchase, _Mapping]]] = ...) -> None: ...

class Interaction(_message.Message):
    __slots__ = ("interaction_id", "kind", "product_id", "query", "quantity", "occurred_at")
    INTERACTION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    interaction_id: str
    kind: InteractionKind
    product_id: str
    query: str
    quantity: int
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, interaction_id: _Optional[str] = ..., kind: _Optional[_Union[InteractionKind, str]] = ..., product_id: _Optional[str] = ..., query: _Optional[str] = ..., quantity: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordInteractionRequest(_message.Message):
    __slots__ = ("customer_id", "interaction")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INTERACTION_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    interaction: Interaction
    def __init__(self, customer_id: _Optional[str] = ..., interaction: _Optional[_Union[Interaction, _Mapping]] = ...) -> None: ...

class ImportPurchasesRow(_message.Message):
    __slots__ = ("customer_id", "purchase")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    purchase: _common_pb2.Purchase
    def __init__(self, customer_id: _Optional[str] = ..., purchase: _Optional[_Union[_common_pb2.Purchase, _Mapping]] = ...) -> None: ...

class ImportPurchasesResponse(_message.Message):
    __slots__ = ("rows_received", "customers", "rows_written")
    ROWS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    rows_received: int
    customers: int
    rows_written: int
    def __init__(self, rows_received: _Optional[int] = ..., customers: _Optional[int] = ..., rows_written: _Optional[int] = ...) -> None: ...

class ExportCustomerDataRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class ExportedRecommendation(_message.Message):
    __slots__ = ("recommendation_id", "generated_at", "strategy", "model_version", "items")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    generated_at: _timestamp_pb2.Timestamp
    strategy: str
    model_version: str
    items: _containers.RepeatedCompositeFieldContainer[ExportedRecommendedItem]
    def __init__(self, recommendation_id: _Optional[str] = ..., generated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., strategy: _Optional[str] = ..., model_version: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ExportedRecommendedItem, _Mapping]]] = ...) -> None: ...

class ExportedRecommendedItem(_message.Message):
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

class ExportedFeedback(_message.Message):
    __slots__ = ("recommendation_id", "product_id", "event", "occurred_at")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    product_id: str
    event: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, recommendation_id: _Optional[str] = ..., product_id: _Optional[str] = ..., event: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StoredDocument(_message.Message):
    __slots__ = ("kind", "created_at", "body")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    kind: str
    created_at: _timestamp_pb2.Timestamp
    body: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ExportCustomerDataResponse(_message.Message):
    __slots__ = ("format_version", "exported_at", "profile", "purchases", "interactions", "recommendations", "feedback", "documents")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    exported_at: _timestamp_pb2.Timestamp
    profile: CustomerProfile
    purchases: _containers.RepeatedCompositeFieldContainer[_common_pb2.Purchase]
    interactions: _containers.RepeatedCompositeFieldContainer[Interaction]
    recommendations: _containers.RepeatedCompositeFieldContainer[ExportedRecommendation]
    feedback: _containers.RepeatedCompositeFieldContainer[ExportedFeedback]
    documents: _containers.RepeatedCompositeFieldContainer[StoredDocument]
    def __init__(self, format_version: _Optional[int] = ..., exported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., profile: _Optional[_Union[CustomerProfile, _Mapping]] = ..., purchases: _Optional[_Iterable[_Union[_common_pb2.Purchase, _Mapping]]] = ..., interactions: _Optional[_Iterable[_Union[Interaction, _Mapping]]] = ..., recommendations: _Optional[_Iterable[_Union[ExportedRecommendation, _Mapping]]] = ..., feedback: _Optional[_Iterable[_Union[ExportedFeedback, _Mapping]]] = ..., documents: _Optional[_Iterable[_Union[StoredDocument, _Mapping]]] = ...) -> None: ...

class DeleteCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class DeleteCustomerResponse(_message.Message):
    __slots__ = ("erased",)
    class ErasedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ERASED_FIELD_NUMBER: _ClassVar[int]
    erased: _containers.ScalarMap[str, int]
    def __init__(self, erased: _Optional[_Mapping[str, int]] = ...) -> None: ...
