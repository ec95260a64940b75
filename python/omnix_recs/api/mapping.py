"""Domain objects ↔ protobuf messages.

`*_to_proto` render domain objects for responses; `*_from_proto` read request messages into
domain objects and validate them on the way, so nothing downstream checks a field twice. Every
field rule written in the .proto comments is enforced here, and each error names the field
with the prefix the caller passes (e.g. "rows[3].purchase").
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from omnix_recs._proto.omnix.v1 import common_pb2, customer_pb2
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.domain.models import (
    ALLERGENS,
    DIETARY_TAGS,
    Consent,
    Customer,
    Feedback,
    Interaction,
    InteractionKind,
    Preferences,
    Product,
    Purchase,
    ServedRecommendation,
)
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import (
    MAX_BUDGET,
    MAX_CLOCK_SKEW,
    MAX_DIETARY_ENTRIES,
    MAX_DISLIKED_PRODUCTS,
    MAX_EMAIL_LENGTH,
    MAX_HOUSEHOLD_SIZE,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PACK_SIZE_LENGTH,
    MAX_POSTCODE_LENGTH,
    MAX_PREFERENCE_ITEMS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_QUERY_LENGTH,
)

_AGE_BAND_RE = re.compile(r"(\d{1,3})-(\d{1,3})|(\d{1,3})\+")
_POSTCODE_RE = re.compile(r"[A-Za-z0-9 -]*")

_KIND_TO_PROTO: dict[InteractionKind, int] = {
    InteractionKind.VIEW: customer_pb2.INTERACTION_KIND_VIEW,
    InteractionKind.CART_ADD: customer_pb2.INTERACTION_KIND_CART_ADD,
    InteractionKind.CART_REMOVE: customer_pb2.INTERACTION_KIND_CART_REMOVE,
    InteractionKind.SEARCH: customer_pb2.INTERACTION_KIND_SEARCH,
    InteractionKind.WISHLIST: customer_pb2.INTERACTION_KIND_WISHLIST,
}
_KIND_FROM_PROTO = {number: kind for kind, number in _KIND_TO_PROTO.items()}
_CART_KINDS = (InteractionKind.CART_ADD, InteractionKind.CART_REMOVE)

# Names accepted in UpdatePreferencesRequest.update_mask.
PREFERENCE_FIELDS: tuple[str, ...] = tuple(f.name for f in customer_pb2.Preferences.DESCRIPTOR.fields)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --- timestamps ---------------------------------------------------------------------------


def timestamp_to_proto(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


# --- purchases ------------------------------------------------------------------------------


def purchase_to_proto(purchase: Purchase) -> common_pb2.Purchase:
    return common_pb2.Purchase(
        order_id=purchase.order_id,
        product_id=purchase.product_id,
        quantity=purchase.quantity,
        unit_price=purchase.unit_price,
        purchased_at=timestamp_to_proto(purchase.purchased_at),
        store_id=purchase.store_id,
    )


def purchase_from_proto(
    v: Validator, field: str, customer_id: str, msg: common_pb2.Purchase, *, now: datetime
) -> Purchase:
    """One order line of `customer_id` (already validated). `field` names `msg` in the request."""
    return Purchase(
        customer_id=customer_id,
        order_id=v.require_id(_join(field, "order_id"), msg.order_id),
        product_id=v.require_id(_join(field, "product_id"), msg.product_id),
        quantity=check.integer(_join(field, "quantity"), msg.quantity, minimum=1, maximum=MAX_QUANTITY),
        unit_price=check.number(_join(field, "unit_price"), msg.unit_price, minimum=0.0, maximum=MAX_PRICE),
        purchased_at=check.timestamp(  # type: ignore[arg-type]  # required=True never returns None
            _join(field, "purchased_at"), msg, "purchased_at", required=True, not_after=now + MAX_CLOCK_SKEW
        ),
        store_id=v.optional_id(_join(field, "store_id"), msg.store_id),
    )


# --- products -------------------------------------------------------------------------------


def product_to_proto(product: Product) -> common_pb2.Product:
    msg = common_pb2.Product(
        product_id=product.product_id,
        name=product.name,
        department=product.department,
        aisle=product.aisle,
        brand=product.brand,
        price=product.price,
        pack_size=product.pack_size,
        dietary_tags=product.dietary_tags,
        allergens=product.allergens,
        in_stock=product.in_stock,
    )
    if product.updated_at is not None:
        msg.updated_at.CopyFrom(timestamp_to_proto(product.updated_at))
    return msg


def product_from_proto(v: Validator, field: str, msg: common_pb2.Product, *, now: datetime) -> Product:
    """A catalog product to store; `updated_at` is the server's `now`, whatever the caller sent."""
    return Product(
        product_id=v.require_id(_join(field, "product_id"), msg.product_id),
        name=check.text(_join(field, "name"), msg.name, max_length=MAX_NAME_LENGTH, required=True),
        department=check.text(_join(field, "department"), msg.department, max_length=MAX_LABEL_LENGTH, required=True),
        aisle=check.text(_join(field, "aisle"), msg.aisle, max_length=MAX_LABEL_LENGTH, required=True),
        brand=check.text(_join(field, "brand"), msg.brand, max_length=MAX_LABEL_LENGTH),
        price=check.number(_join(field, "price"), msg.price, minimum=0.0, maximum=MAX_PRICE),
        pack_size=check.text(_join(field, "pack_size"), msg.pack_size, max_length=MAX_PACK_SIZE_LENGTH),
        dietary_tags=check.vocabulary(_join(field, "dietary_tags"), msg.dietary_tags, DIETARY_TAGS),
        allergens=check.vocabulary(_join(field, "allergens"), msg.allergens, ALLERGENS),
        in_stock=msg.in_stock,
        updated_at=now,
    )


# --- customers ------------------------------------------------------------------------------


def preferences_to_proto(preferences: Preferences) -> customer_pb2.Preferences:
    return customer_pb2.Preferences(
        favorite_departments=preferences.favorite_departments,
        favorite_brands=preferences.favorite_brands,
        disliked_products=preferences.disliked_products,
        budget_per_trip=preferences.budget_per_trip,
        organic_preference=preferences.organic_preference,
    )


def preferences_from_proto(v: Validator, field: str, msg: customer_pb2.Preferences) -> Preferences:
    budget = None
    if msg.HasField("budget_per_trip"):
        budget = check.number(_join(field, "budget_per_trip"), msg.budget_per_trip, minimum=0.0, maximum=MAX_BUDGET)
    return Preferences(
        favorite_departments=check.text_list(
            _join(field, "favorite_departments"),
            msg.favorite_departments,
            max_items=MAX_PREFERENCE_ITEMS,
            max_length=MAX_LABEL_LENGTH,
        ),
        favorite_brands=check.text_list(
            _join(field, "favorite_brands"),
            msg.favorite_brands,
            max_items=MAX_PREFERENCE_ITEMS,
            max_length=MAX_LABEL_LENGTH,
        ),
        disliked_products=v.id_list(_join(field, "disliked_products"), msg.disliked_products, MAX_DISLIKED_PRODUCTS),
        budget_per_trip=budget,
        organic_preference=msg.organic_preference,
    )


def consent_to_proto(consent: Consent) -> customer_pb2.Consent:
    return customer_pb2.Consent(
        personalization=consent.personalization, marketing=consent.marketing, analytics=consent.analytics
    )


def customer_to_proto(customer: Customer) -> customer_pb2.CustomerProfile:
    return customer_pb2.CustomerProfile(
        customer_id=customer.customer_id,
        display_name=customer.display_name,
        email=customer.email,
        age_band=customer.age_band,
        household_size=customer.household_size,
        postcode=customer.postcode,
        preferences=preferences_to_proto(customer.preferences),
        dietary_restrictions=customer.dietary_restrictions,
        allergens=customer.allergens,
        consent=consent_to_proto(customer.consent),
        created_at=timestamp_to_proto(customer.created_at),
        updated_at=timestamp_to_proto(customer.updated_at),
    )


def _age_band(field: str, value: str) -> str:
    value = value.strip()
    match = _AGE_BAND_RE.fullmatch(value)
    if value and (match is None or (match.group(1) and int(match.group(1)) > int(match.group(2)))):
        raise InvalidArgumentError(field, f"must look like '25-34' or '65+', got {value!r}")
    return value


def _email(field: str, value: str) -> str:
    value = check.text(field, value, max_length=MAX_EMAIL_LENGTH)
    if value and "@" not in value:
        raise InvalidArgumentError(field, "must be an email address")
    return value


def _postcode(field: str, value: str) -> str:
    value = check.text(field, value, max_length=MAX_POSTCODE_LENGTH)
    if not _POSTCODE_RE.fullmatch(value):
        raise InvalidArgumentError(field, "may only contain letters, digits, spaces and hyphens")
    return value


def customer_from_register(
    v: Validator, request: customer_pb2.RegisterCustomerRequest, *, customer_id: str, now: datetime
) -> Customer:
    """The customer a registration creates; `customer_id` is the validated or assigned id."""
    consent = Consent()
    if request.HasField("consent"):
        consent = Consent(
            personalization=request.consent.personalization,
            marketing=request.consent.marketing,
            analytics=request.consent.analytics,
        )
    return Customer(
        customer_id=customer_id,
        created_at=now,
        updated_at=now,
        display_name=check.text("display_name", request.display_name, max_length=MAX_NAME_LENGTH),
        email=_email("email", request.email),
        age_band=_age_band("age_band", request.age_band),
        household_size=check.integer("household_size", request.household_size, minimum=0, maximum=MAX_HOUSEHOLD_SIZE),
        postcode=_postcode("postcode", request.postcode),
        preferences=preferences_from_proto(v, "preferences", request.preferences),
        dietary_restrictions=check.vocabulary(
            "dietary_restrictions", request.dietary_restrictions, DIETARY_TAGS, max_items=MAX_DIETARY_ENTRIES
        ),
        allergens=check.vocabulary("allergens", request.allergens, ALLERGENS, max_items=MAX_DIETARY_ENTRIES),
        consent=consent,
    )


# --- interactions ---------------------------------------------------------------------------


def interaction_to_proto(interaction: Interaction) -> customer_pb2.Interaction:
    return customer_pb2.Interaction(
        interaction_id=interaction.interaction_id,
        kind=_KIND_TO_PROTO[interaction.kind],  # type: ignore[arg-type]
        product_id=interaction.product_id,
        query=interaction.query,
        quantity=interaction.quantity,
        occurred_at=timestamp_to_proto(interaction.occurred_at),
    )


def interaction_from_proto(
    v: Validator,
    field: str,
    customer_id: str,
    msg: customer_pb2.Interaction,
    *,
    interaction_id: str,
    now: datetime,
) -> Interaction:
    """A behaviour event with the server-assigned `interaction_id`; unset time = `now`."""
    kind_number = check.enum_value(_join(field, "kind"), msg.kind, customer_pb2.InteractionKind)
    kind = _KIND_FROM_PROTO[kind_number]
    product_field, query_field, quantity_field = (_join(field, n) for n in ("product_id", "query", "quantity"))
    if kind is InteractionKind.SEARCH:
        product_id = v.optional_id(product_field, msg.product_id)
        if product_id:
            raise InvalidArgumentError(product_field, "must be empty for a search")
        query = check.text(query_field, msg.query, max_length=MAX_QUERY_LENGTH, required=True)
    else:
        product_id = v.require_id(product_field, msg.product_id)
        if msg.query:
            raise InvalidArgumentError(query_field, "is only for searches")
        query = ""
    if kind in _CART_KINDS:
        quantity = check.integer(quantity_field, msg.quantity, minimum=1, maximum=MAX_QUANTITY)
    elif msg.quantity:
        raise InvalidArgumentError(quantity_field, "is only for cart additions and removals")
    else:
        quantity = 0
    occurred_at = check.timestamp(
        _join(field, "occurred_at"), msg, "occurred_at", required=False, not_after=now + MAX_CLOCK_SKEW
    )
    return Interaction(
        customer_id=customer_id,
        interaction_id=interaction_id,
        kind=kind,
        occurred_at=occurred_at or now,
        product_id=product_id,
        query=query,
        quantity=quantity,
    )


# --- export ---------------------------------------------------------------------------------


def recommendation_to_proto(served: ServedRecommendation) -> customer_pb2.ExportedRecommendation:
    return customer_pb2.ExportedRecommendation(
        recommendation_id=served.recommendation_id,
        generated_at=timestamp_to_proto(served.generated_at),
        strategy=served.strategy,
        model_version=served.model_version,
        items=[
            customer_pb2.ExportedRecommendedItem(
                product_id=item.product_id, score=item.score, confidence=item.confidence, reasons=item.reasons
            )
            for item in served.items
        ],
    )


def feedback_to_proto(feedback: Feedback) -> customer_pb2.ExportedFeedback:
    return customer_pb2.ExportedFeedback(
        recommendation_id=feedback.recommendation_id,
        product_id=feedback.product_id,
        event=str(feedback.event),
        occurred_at=timestamp_to_proto(feedback.occurred_at),
    )


def document_to_proto(kind: str, created_at: datetime, body: dict[str, Any]) -> customer_pb2.StoredDocument:
    struct = struct_pb2.Struct()
    # json_format handles nested lists/objects and rejects what JSON cannot represent.
    json_format.ParseDict(body, struct)
    return customer_pb2.StoredDocument(kind=kind, created_at=timestamp_to_proto(created_at), body=struct)
