"""The DynamoDB store: the `Store` protocol over the seed's DynamoDB tables, through boto3.

Selected by `OMNIX_STORE=dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:8000&env=dev`
(`endpoint` unset = AWS's regional endpoint; `env` picks the table set, default `dev`;
credentials come from the usual AWS chain). `create_tables()` (`omnix init-tables`) creates
whatever table or index is missing, on-demand billing, and waits until it is ACTIVE.

Tables `omnix-ai-<table>-<env>` and their keys
----------------------------------------------
Timestamps in keys are ISO-8601 UTC with microseconds at a fixed width
(`2024-03-01T08:15:00.000000Z`), so string order is time order. Ids inside composite sort
keys have `%` and `#` percent-escaped, so `#` separates the parts unambiguously.

    customer-profiles     customerId                        customerId-updatedAt-index*
                                                            listing-customerId-index
    purchase-history      customerId + sk                   customerId-purchaseDate-index*
                          sk = purchaseDate#orderId#productId productId-purchaseDate-index*
                          (+ one "#history" row per customer) listing-customerId-index
    product-interactions  customerId + sk timestamp#interactionId
                                                            customerId-timestamp-index*
                                                            productId-timestamp-index*
    recommendations       customerId + sk generatedAt#recommendationId
                                                            customerId-generatedAt-index*
    recommendation-ids    recommendationId -> the list's key in `recommendations`
    products              productId                         category-index (department, productId)
                                                            listing-productId-index
    feedback              recommendationId + sk occurredAt#productId#event
                                                            customerId-occurredAt-index
    models                version (+ one "#active" row naming the active version)
    documents             customerId + sk kind#createdAt    kind-createdAt-index

Indexes marked * are the seed's, kept KEYS_ONLY for the seed's readers; our reads use the base
tables, which sort by the same attributes. Why the others:
- `listing-*-index`: the protocol lists customers and products in id order, which a Scan
  (hash order) cannot give. Rows carry a constant `listing` attribute ("customers",
  "catalog", "purchasers"), and the index on (listing, id) is that ordered list. One index
  partition per listing: fine for tens of thousands of products and a few hundred thousand
  customers (imports write them at most ~1,000 rows/s, the partition's limit).
- The `#history` row marks a customer who has purchases (sparse: only it has `listing`), so
  `scan_purchases` can walk histories by customer id and time, as the protocol wants, without
  holding the table in memory. Every purchase query starts its sort key at "0", after "#".
- `recommendation-ids` is written in the same transaction as the list, with
  attribute_not_exists: that is what makes recommendation ids unique (an index cannot refuse
  a duplicate) and lets `get_recommendation` read consistently (an index cannot).
- `category-index` serves the common one-department listing without a filter.

Floats are DynamoDB numbers (`Decimal(repr(x))`, which reads back as the same float);
free-form maps (model metrics, document bodies) are JSON text, as in the SQLite store, so
ints, floats and NaN round-trip exactly.

Consistency: base-table reads are strongly consistent. Reads through an index
(`list_customer_ids`, `list_products`, `iter_products`, `list_documents`, the customer order of
`scan_purchases`, finding a customer's feedback to erase it) are eventually consistent, as every
DynamoDB GSI is: on AWS a row written a moment ago may be missing for a fraction of a second.

Failures: throttling (ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded), 5xx and
connection errors are retried with exponential backoff and full jitter; so are the
UnprocessedItems of BatchWriteItem and the UnprocessedKeys of BatchGetItem. After
`RetryPolicy.max_attempts` the call raises `UnavailableError`. botocore's own retries are off, so
this is the single retry policy. A missing table is a `FailedPreconditionError` telling the
operator to run `omnix init-tables`.

Multi-row writes and imports: what is guaranteed
------------------------------------------------
DynamoDB has no transaction larger than 25 items (moto's and DynamoDB Local's limit; AWS's is
100), so the protocol's "a bulk write becomes visible whole" holds only for small writes:

* Writes of up to 25 rows (`add_purchases`, `upsert_products`: one order, one catalog edit;
  a customer's `#history` row counts) are one TransactWriteItems: atomic and visible at once.
* Larger writes and every `import_session()` are validated row by row before the row is sent,
  then written in BatchWriteItem chunks. Guarantees:
  1. Idempotent. Every key is derived from the row itself (customer, time, order, product...),
     so importing the same data again rewrites identical rows: nothing changes. A failed or
     interrupted import, run again to the end, converges to exactly the state of one clean run.
  2. Undone on failure. Before each chunk is written, the session reads (consistently) the
     rows it is about to overwrite and appends their previous images (or "absent") to an undo
     journal in a local temporary file. When the import fails (an exception leaves the `with`
     block, a chunk cannot be written after the retries) or is abandoned (the block ends
     without `commit()`), the journal is replayed newest first: rows the session created are
     deleted, rows it overwrote get their old values back. Then nothing of the import remains.
  3. Not promised: isolation. Rows are visible to readers as their chunks land, before
     `commit()`; a reader during an import may see part of it. The undo assumes the import is
     the only writer of the rows it touches (true for history and catalog loads); if the
     process itself dies (kill -9, power loss) nothing is undone and guarantee 1 is the
     remedy: run the import again.
  The undo journal costs one consistent read per written row and a temporary file of about
  11 bytes per new order line, 25 per overwritten one (zlib-compressed keys and old images).
Erasure (`delete_customer`) is likewise not one transaction: it deletes the derived rows first
and the profile last, so an erasure cut short is finished by calling it again.
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import math
import numbers
import operator
import random
import struct
import tempfile
import threading
import time
import uuid
import zlib
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import parse_qsl, urlsplit

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoRegionError
from botocore.exceptions import ConnectionError as BotoConnectionError

from omnix_recs.domain.models import (
    Consent,
    Customer,
    Feedback,
    FeedbackEvent,
    Interaction,
    InteractionKind,
    Page,
    Preferences,
    Product,
    ProductFilter,
    Purchase,
    RecommendedItem,
    ServedRecommendation,
)
from omnix_recs.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from omnix_recs.store.base import CustomerErasure, ModelRecord, PurchaseColumns

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R")

TABLE_PREFIX = "omnix-ai-"
BATCH_WRITE_MAX = 25  # BatchWriteItem's limit per request
BATCH_GET_MAX = 100  # BatchGetItem's limit per request
TRANSACTION_MAX = 25  # TransactWriteItems: moto and DynamoDB Local cap at 25 (AWS: 100)
IMPORT_CHUNK = 100  # rows per undo-journal record: one BatchGetItem of their old images
FILTERED_READ = 256  # rows evaluated per Query when a filter may discard most of them
MAX_DOCUMENT_BYTES = 350_000  # DynamoDB items stop at 400 KB; keys and names need the rest
MAX_PAGE_TOKEN_CHARS = 4096
HISTORY_HEADER = "#history"  # sort key of a customer's marker row in purchase-history
FIRST_PURCHASE_KEY = "0"  # every purchase sort key (a year) is >= "0" > "#history"
ACTIVE_MODEL_POINTER = "#active"  # the models row naming the active version
CUSTOMERS_LISTING, CATALOG_LISTING, PURCHASERS_LISTING = "customers", "catalog", "purchasers"
URL_PARAMETERS = ("region", "endpoint", "env")
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

# Error codes after which the same request may succeed later.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",  # too many concurrent control-plane operations
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
# Reasons a transaction was cancelled that a retry can fix (a conflicting concurrent write...).
TRANSIENT_CANCELLATION_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


# --- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexSpec:
    name: str
    hash_key: str
    range_key: str | None
    projection: str  # "ALL" or "KEYS_ONLY"


@dataclass(frozen=True, slots=True)
class TableSpec:
    table: str  # the table's name without prefix and environment
    hash_key: str
    range_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()

    @property
    def key_attributes(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The primary key of a wire-format item."""
        return {attribute: item[attribute] for attribute in self.key_attributes}

    def key_tuple(self, item: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(item[attribute]["S"] for attribute in self.key_attributes)

    def index(self, name: str) -> IndexSpec:
        return next(index for index in self.indexes if index.name == name)


CUSTOMERS = TableSpec(
    "customer-profiles",
    "customerId",
    indexes=(
        IndexSpec("customerId-updatedAt-index", "customerId", "updatedAt", "KEYS_ONLY"),
        IndexSpec("listing-customerId-index", "listing", "customerId", "KEYS_ONLY"),
    ),
)
PURCHASES = TableSpec(
    "purchase-history",
    "customerId",
    "sk",
    (
        IndexSpec("customerId-purchaseDate-index", "customerId", "purchaseDate", "KEYS_ONLY"),
        IndexSpec("productId-purchaseDate-index", "productId", "purchaseDate", "KEYS_ONLY"),
        IndexSpec("listing-customerId-index", "listing", "customerId", "KEYS_ONLY"),
    ),
)
INTERACTIONS = TableSpec(
    "product-interactions",
    "customerId",
    "sk",
    (
        IndexSpec("customerId-timestamp-index", "customerId", "timestamp", "KEYS_ONLY"),
        IndexSpec("productId-timestamp-index", "productId", "timestamp", "KEYS_ONLY"),
    ),
)
RECOMMENDATIONS = TableSpec(
    "recommendations",
    "customerId",
    "sk",
    (IndexSpec("customerId-generatedAt-index", "customerId", "generatedAt", "KEYS_ONLY"),),
)
RECOMMENDATION_IDS = TableSpec("recommendation-ids", "recommendationId")
PRODUCTS = TableSpec(
    "products",
    "productId",
    indexes=(
        IndexSpec("category-index", "department", "productId", "ALL"),
        IndexSpec("listing-productId-index", "listing", "productId", "ALL"),
    ),
)
FEEDBACK = TableSpec(
    "feedback",
    "recommendationId",
    "sk",
    (IndexSpec("customerId-occurredAt-index", "customerId", "occurredAt", "KEYS_ONLY"),),
)
MODELS = TableSpec("models", "version")
DOCUMENTS = TableSpec(
    "documents",
    "customerId",
    "sk",
    (IndexSpec("kind-createdAt-index", "kind", "createdAt", "ALL"),),
)
TABLES: tuple[TableSpec, ...] = (
    CUSTOMERS,
    PURCHASES,
    INTERACTIONS,
    RECOMMENDATIONS,
    RECOMMENDATION_IDS,
    PRODUCTS,
    FEEDBACK,
    MODELS,
    DOCUMENTS,
)


def table_name(spec: TableSpec, env: str) -> str:
    return f"{TABLE_PREFIX}{spec.table}-{env}"


def _table_definition(spec: TableSpec, name: str) -> dict[str, Any]:
    """CreateTable parameters for `spec` (every key attribute is a string)."""
    attributes = set(spec.key_attributes)
    for index in spec.indexes:
        attributes.update(a for a in (index.hash_key, index.range_key) if a)
    definition: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": _key_schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
    }
    if spec.indexes:
        definition["GlobalSecondaryIndexes"] = [_index_definition(index) for index in spec.indexes]
    return definition


def _index_definition(index: IndexSpec) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": _key_schema(index.hash_key, index.range_key),
        "Projection": {"ProjectionType": index.projection},
    }


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


# --- value encodings -------------------------------------------------------------------------


def _timestamp(value: datetime, field: str) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: string order is time order."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(field, "must be a timezone-aware datetime")
    t = value.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond:06d}Z"
    )


def _datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)  # the trailing Z reads as UTC


def _key_part(value: str) -> str:
    """An id made safe to join with '#': injective, so distinct ids never share a sort key."""
    return value.replace("%", "%25").replace("#", "%23")


def _id(value: str, field: str) -> str:
    # DynamoDB refuses empty strings in key attributes: say which field, not ValidationException.
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(field, "must be a non-empty string")
    return value


def _integer(value: int, field: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgumentError(field, f"must be an integer, got {value!r}")
    try:
        return operator.index(value)  # numpy integers too, floats never
    except TypeError:
        raise InvalidArgumentError(field, f"must be an integer, got {value!r}") from None


def _number(value: float, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidArgumentError(field, f"must be a finite number, got {value!r}")
    number = Decimal(repr(float(value)))
    # DynamoDB numbers stop at 1e-130: anything smaller is zero for every use we have.
    return number if abs(number) >= Decimal("1e-130") else Decimal(0)


def _choice(vocabulary: type[enum.StrEnum], value: str, field: str) -> str:
    try:
        return vocabulary(value).value
    except ValueError:
        known = ", ".join(member.value for member in vocabulary)
        raise InvalidArgumentError(field, f"unknown value {value!r} (known: {known})") from None


def _to_wire(plain: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in plain.items()}


def _from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


# --- entities <-> items ----------------------------------------------------------------------


def _customer_item(c: Customer) -> dict[str, Any]:
    p, consent = c.preferences, c.consent
    budget = p.budget_per_trip
    return _to_wire(
        {
            "customerId": _id(c.customer_id, "customer_id"),
            "listing": CUSTOMERS_LISTING,
            "createdAt": _timestamp(c.created_at, "created_at"),
            "updatedAt": _timestamp(c.updated_at, "updated_at"),
            "displayName": c.display_name,
            "email": c.email,
            "ageBand": c.age_band,
            "householdSize": _integer(c.household_size, "household_size"),
            "postcode": c.postcode,
            "preferences": {
                "favoriteDepartments": list(p.favorite_departments),
                "favoriteBrands": list(p.favorite_brands),
                "dislikedProducts": list(p.disliked_products),
                "budgetPerTrip": None if budget is None else _number(budget, "preferences.budget_per_trip"),
                "organicPreference": p.organic_preference,
            },
            "dietaryRestrictions": list(c.dietary_restrictions),
            "allergens": list(c.allergens),
            "consent": {
                "personalization": consent.personalization,
                "marketing": consent.marketing,
                "analytics": consent.analytics,
            },
        }
    )


def _customer(item: Mapping[str, Any]) -> Customer:
    v = _from_wire(item)
    p, consent = v["preferences"], v["consent"]
    return Customer(
        customer_id=v["customerId"],
        created_at=_datetime(v["createdAt"]),
        updated_at=_datetime(v["updatedAt"]),
        display_name=v["displayName"],
        email=v["email"],
        age_band=v["ageBand"],
        household_size=int(v["householdSize"]),
        postcode=v["postcode"],
        preferences=Preferences(
            favorite_departments=tuple(p["favoriteDepartments"]),
            favorite_brands=tuple(p["favoriteBrands"]),
            disliked_products=tuple(p["dislikedProducts"]),
            budget_per_trip=None if p["budgetPerTrip"] is None else float(p["budgetPerTrip"]),
            organic_preference=p["organicPreference"],
        ),
        dietary_restrictions=tuple(v["dietaryRestrictions"]),
        allergens=tuple(v["allergens"]),
        consent=Consent(
            personalization=consent["personalization"],
            marketing=consent["marketing"],
            analytics=consent["analytics"],
        ),
    )


def _product_item(p: Product) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "productId": _id(p.product_id, "product_id"),
        "listing": CATALOG_LISTING,
        "name": p.name,
        "aisle": p.aisle,
        "brand": p.brand,
        "price": _number(p.price, "price"),
        "packSize": p.pack_size,
        "dietaryTags": list(p.dietary_tags),
        "allergens": list(p.allergens),
        "inStock": p.in_stock,
    }
    # Index keys cannot be empty strings: a product without a department is absent from
    # category-index (it stays in the catalog listing).
    if p.department:
        plain["department"] = p.department
    if p.updated_at is not None:
        plain["updatedAt"] = _timestamp(p.updated_at, "updated_at")
    return _to_wire(plain)


def _product(item: Mapping[str, Any]) -> Product:
    v = _from_wire(item)
    return Product(
        product_id=v["productId"],
        name=v["name"],
        department=v.get("department", ""),
        aisle=v["aisle"],
        brand=v["brand"],
        price=float(v["price"]),
        pack_size=v["packSize"],
        dietary_tags=tuple(v["dietaryTags"]),
        allergens=tuple(v["allergens"]),
        in_stock=v["inStock"],
        updated_at=_datetime(v["updatedAt"]) if "updatedAt" in v else None,
    )


def _purchase_item(p: Purchase) -> dict[str, Any]:
    purchased = _timestamp(p.purchased_at, "purchased_at")
    order_id, product_id = _id(p.order_id, "order_id"), _id(p.product_id, "product_id")
    return _to_wire(
        {
            "customerId": _id(p.customer_id, "customer_id"),
            "sk": f"{purchased}#{_key_part(order_id)}#{_key_part(product_id)}",
            "purchaseDate": purchased,
            "orderId": order_id,
            "productId": product_id,
            "quantity": _integer(p.quantity, "quantity"),
            "unitPrice": _number(p.unit_price, "unit_price"),
        }
    )


def _history_header(customer_id: str) -> dict[str, Any]:
    """The row saying "this customer has purchases": their entry in the purchasers listing."""
    return {"customerId": _s(customer_id), "sk": _s(HISTORY_HEADER), "listing": _s(PURCHASERS_LISTING)}


def _with_history_headers(lines: list[dict[str, Any]], known: set[str] | None = None) -> list[dict[str, Any]]:
    """`lines` plus the header row of each customer in them (not already in `known`, which grows)."""
    known = set() if known is None else known
    new = [c for c in dict.fromkeys(line["customerId"]["S"] for line in lines) if c not in known]
    known.update(new)
    return lines + [_history_header(c) for c in new]


def _purchase(item: Mapping[str, Any]) -> Purchase:
    # Whole histories go through here: read the wire format directly.
    return Purchase(
        customer_id=item["customerId"]["S"],
        order_id=item["orderId"]["S"],
        product_id=item["productId"]["S"],
        quantity=int(item["quantity"]["N"]),
        unit_price=float(item["unitPrice"]["N"]),
        purchased_at=_datetime(item["purchaseDate"]["S"]),
    )


def _interaction_item(i: Interaction) -> dict[str, Any]:
    occurred = _timestamp(i.occurred_at, "occurred_at")
    interaction_id = _id(i.interaction_id, "interaction_id")
    plain: dict[str, Any] = {
        "customerId": _id(i.customer_id, "customer_id"),
        "sk": f"{occurred}#{_key_part(interaction_id)}",
        "timestamp": occurred,
        "interactionId": interaction_id,
        "kind": _choice(InteractionKind, i.kind, "kind"),
        "query": i.query,
        "quantity": _integer(i.quantity, "quantity"),
    }
    if i.product_id:  # searches have no product: absent from productId-timestamp-index
        plain["productId"] = i.product_id
    return _to_wire(plain)


def _interaction(item: Mapping[str, Any]) -> Interaction:
    v = _from_wire(item)
    return Interaction(
        customer_id=v["customerId"],
        interaction_id=v["interactionId"],
        kind=InteractionKind(v["kind"]),
        occurred_at=_datetime(v["timestamp"]),
        product_id=v.get("productId", ""),
        query=v["query"],
        quantity=int(v["quantity"]),
    )


def _recommendation_item(r: ServedRecommendation) -> dict[str, Any]:
    generated = _timestamp(r.generated_at, "generated_at")
    recommendation_id = _id(r.recommendation_id, "recommendation_id")
    return _to_wire(
        {
            "customerId": _id(r.customer_id, "customer_id"),
            "sk": f"{generated}#{_key_part(recommendation_id)}",
            "recommendationId": recommendation_id,
            "generatedAt": generated,
            "strategy": r.strategy,
            "modelVersion": r.model_version,
            "items": [
                {
                    "productId": item.product_id,
                    "score": _number(item.score, f"items[{n}].score"),
                    "confidence": _number(item.confidence, f"items[{n}].confidence"),
                    "reasons": list(item.reasons),
                }
                for n, item in enumerate(r.items)
            ],
        }
    )


def _recommendation(item: Mapping[str, Any]) -> ServedRecommendation:
    v = _from_wire(item)
    return ServedRecommendation(
        recommendation_id=v["recommendationId"],
        customer_id=v["customerId"],
        generated_at=_datetime(v["generatedAt"]),
        strategy=v["strategy"],
        model_version=v["modelVersion"],
        items=tuple(
            RecommendedItem(
                product_id=i["productId"],
                score=float(i["score"]),
                confidence=float(i["confidence"]),
                reasons=tuple(i["reasons"]),
            )
            for i in v["items"]
        ),
    )


def _feedback_item(f: Feedback) -> dict[str, Any]:
    occurred = _timestamp(f.occurred_at, "occurred_at")
    product_id, event = _id(f.product_id, "product_id"), _choice(FeedbackEvent, f.event, "event")
    return _to_wire(
        {
            "recommendationId": _id(f.recommendation_id, "recommendation_id"),
            "sk": f"{occurred}#{_key_part(product_id)}#{event}",
            "occurredAt": occurred,
            "customerId": _id(f.customer_id, "customer_id"),
            "productId": product_id,
            "event": event,
        }
    )


def _feedback(item: Mapping[str, Any]) -> Feedback:
    v = _from_wire(item)
    return Feedback(
        recommendation_id=v["recommendationId"],
        customer_id=v["customerId"],
        product_id=v["productId"],
        event=FeedbackEvent(v["event"]),
        occurred_at=_datetime(v["occurredAt"]),
    )


def _model_item(record: ModelRecord) -> dict[str, Any]:
    version = _id(record.version, "version")
    if version == ACTIVE_MODEL_POINTER:
        raise InvalidArgumentError("version", f"{ACTIVE_MODEL_POINTER!r} is reserved")
    return _to_wire(
        {
            "version": version,
            "createdAt": _timestamp(record.created_at, "created_at"),
            "artifactUri": record.artifact_uri,
            "metrics": json.dumps(record.metrics),
            "notes": record.notes,
        }
    )


def _model(item: Mapping[str, Any], active: bool) -> ModelRecord:
    v = _from_wire(item)
    return ModelRecord(
        version=v["version"],
        created_at=_datetime(v["createdAt"]),
        artifact_uri=v["artifactUri"],
        metrics=json.loads(v["metrics"]),
        active=active,
        notes=v["notes"],
    )


def _document(item: Mapping[str, Any]) -> tuple[str, datetime, dict[str, Any]]:
    """(kind, created_at, body)"""
    return item["kind"]["S"], _datetime(item["createdAt"]["S"]), json.loads(item["body"]["S"])


# --- page tokens -----------------------------------------------------------------------------


def _page_token(item: Mapping[str, Any], key_attributes: Sequence[str]) -> str:
    """An opaque token: the key of the last row served, as urlsafe base64 of JSON."""
    key = {attribute: item[attribute]["S"] for attribute in key_attributes}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _start_key(token: str, expected: Mapping[str, str | None]) -> dict[str, Any] | None:
    """The ExclusiveStartKey a page token stands for.

    `expected` maps each key attribute of the listing to the value it must have (None = any),
    so a token from another listing (another customer, another department) is refused rather
    than silently starting somewhere else.
    """
    if not token:
        return None
    refused = InvalidArgumentError("page_token", "malformed page token; pass back next_page_token exactly as returned")
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise refused
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError all are
        raise refused from None
    if not isinstance(key, dict) or set(key) != set(expected):
        raise refused
    for attribute, value in key.items():
        if not isinstance(value, str) or not value or expected[attribute] not in (None, value):
            raise refused
    return {attribute: _s(value) for attribute, value in key.items()}


def _check_positive(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(field, f"must be at least 1, got {value!r}")


class _Expression:
    """Placeholders for expression attribute names and values (names dodge reserved words)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _SERIALIZER.serialize(value)
        return placeholder

    def equals(self, attribute: str, value: Any) -> str:
        return f"{self.name(attribute)} = {self.value(value)}"

    def one_of(self, attribute: str, values: Sequence[str]) -> str:
        return f"{self.name(attribute)} IN ({', '.join(self.value(v) for v in values)})"

    def projection(self, attributes: Iterable[str]) -> str:
        return ", ".join(self.name(a) for a in attributes)

    def parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"ExpressionAttributeNames": self.names}
        if self.values:
            parameters["ExpressionAttributeValues"] = self.values
        return parameters


# --- the client: retries and batches ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (the AWS Architecture Blog's recommendation)."""

    max_attempts: int = 8
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay_s(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


class TableMissingError(FailedPreconditionError):
    """A table this store needs does not exist (run `omnix init-tables`)."""


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _cancellation_reasons(error: ClientError) -> set[str]:
    return {str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])}


def _is_transient(error: ClientError) -> bool:
    code = _error_code(error)
    if code == "TransactionCanceledException":
        reasons = _cancellation_reasons(error)
        return bool(reasons & TRANSIENT_CANCELLATION_CODES) and "ConditionalCheckFailed" not in reasons
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in TRANSIENT_ERROR_CODES or status >= 500


def _condition_failed(error: ClientError) -> bool:
    """A conditional write (or one inside a transaction) found its condition false."""
    code = _error_code(error)
    return code == "ConditionalCheckFailedException" or (
        code == "TransactionCanceledException" and "ConditionalCheckFailed" in _cancellation_reasons(error)
    )


def _describe(error: Exception | None) -> str:
    if isinstance(error, ClientError):
        return _error_code(error) or "error"
    return type(error).__name__


class DynamoClient:
    """A boto3 DynamoDB client with one retry policy and the batch operations done right."""

    def __init__(self, client: Any, retry: RetryPolicy) -> None:
        self.client = client
        self.retry = retry

    def call(self, operation: str, **parameters: Any) -> dict[str, Any]:
        """`client.<operation>(**parameters)`, retrying throttling and transient failures."""
        method = getattr(self.client, operation)
        last_error: Exception | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                time.sleep(self.retry.delay_s(attempt - 1))
            try:
                return method(**parameters)
            except ClientError as error:
                if _error_code(error) == "ResourceNotFoundException":
                    table = parameters.get("TableName") or ", ".join(parameters.get("RequestItems", {}))
                    message = f"DynamoDB table {table or '?'} is missing: run `omnix init-tables`"
                    raise TableMissingError(message) from error
                if not _is_transient(error):
                    raise
                last_error = error
            except (BotoConnectionError, HTTPClientError) as error:
                last_error = error
            log.debug("DynamoDB %s attempt %d failed: %s", operation, attempt + 1, last_error)
        raise UnavailableError(
            f"DynamoDB is unavailable: {operation} failed {self.retry.max_attempts} times "
            f"(last: {_describe(last_error)})"
        ) from last_error

    def transact_puts(self, puts: Sequence[tuple[str, dict[str, Any], str | None]]) -> None:
        """(table, item, condition or None) written atomically, at most `TRANSACTION_MAX`."""
        actions = []
        for table, item, condition in puts:
            put: dict[str, Any] = {"TableName": table, "Item": item}
            if condition:
                put["ConditionExpression"] = condition
            actions.append({"Put": put})
        # The token makes a retried call (after a lost response) a no-op, not a second write.
        self.call("transact_write_items", TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))

    def batch_write(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write (table, PutRequest/DeleteRequest) pairs, 25 per call, retrying unprocessed ones.

        A key must appear at most once per 25 requests (DynamoDB refuses duplicates in one call).
        """
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: dict[str, list[dict[str, Any]]] = {}
            for table, request in requests[start : start + BATCH_WRITE_MAX]:
                pending.setdefault(table, []).append(request)
            self._until_processed("batch_write_item", pending, "UnprocessedItems", lambda response: None)

    def batch_get(self, table: str, keys: Sequence[Mapping[str, Any]], **options: Any) -> list[dict[str, Any]]:
        """The items that exist among `keys` (distinct), 100 per call, retrying unprocessed ones."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending = {table: {"Keys": list(keys[start : start + BATCH_GET_MAX]), **options}}
            self._until_processed(
                "batch_get_item",
                pending,
                "UnprocessedKeys",
                lambda response: found.extend(response.get("Responses", {}).get(table, [])),
            )
        return found

    def _until_processed(
        self,
        operation: str,
        request_items: dict[str, Any],
        unprocessed_field: str,
        on_response: Callable[[dict[str, Any]], None],
    ) -> None:
        # DynamoDB returns what it could not do (throttled partitions) instead of failing the
        # call; back off and send only that part again.
        for attempt in range(self.retry.max_attempts):
            if attempt:
                time.sleep(self.retry.delay_s(attempt - 1))
            response = self.call(operation, RequestItems=request_items)
            on_response(response)
            request_items = response.get(unprocessed_field) or {}
            if not request_items:
                return
        left = sum(len(r) if isinstance(r, list) else len(r["Keys"]) for r in request_items.values())
        raise UnavailableError(
            f"DynamoDB is unavailable: {operation} left {left} requests unprocessed "
            f"after {self.retry.max_attempts} attempts"
        )

    def items(self, operation: str, **parameters: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query or Scan, following LastEvaluatedKey."""
        while True:
            response = self.call(operation, **parameters)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            parameters["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def first(self, operation: str, parameters: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
        """The first `count` items of a Query or Scan."""
        request = dict(parameters)
        found: list[dict[str, Any]] = []
        while len(found) < count:
            response = self.call(operation, **request, Limit=count - len(found))
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def page(
        self,
        operation: str,
        parameters: Mapping[str, Any],
        size: int,
        start_key: dict[str, Any] | None,
        key_attributes: Sequence[str],
        filtered: bool = False,
    ) -> tuple[list[dict[str, Any]], str]:
        """Up to `size` items and the token for the rest ("" when there is no more).

        Reads one item beyond the page so that the last page says so; the token is the key of
        the last item served, not DynamoDB's LastEvaluatedKey, so it is exact even when a
        filter made DynamoDB read further than the page.
        """
        request = dict(parameters)
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        found: list[dict[str, Any]] = []
        while True:
            wanted = size + 1 - len(found)
            request["Limit"] = max(wanted, FILTERED_READ) if filtered else wanted
            response = self.call(operation, **request)
            found.extend(response.get("Items", []))
            if len(found) > size or "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if len(found) <= size:
            return found, ""
        del found[size:]
        return found, _page_token(found[-1], key_attributes)

    def parallel_scan(self, segments: int, **parameters: Any) -> Iterator[dict[str, Any]]:
        """Scan responses from `segments` parallel segments, one request in flight per segment."""
        with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="omnix-dynamo-scan") as pool:

            def scan(segment: int, start_key: dict[str, Any] | None) -> Future[dict[str, Any]]:
                extra = {"ExclusiveStartKey": start_key} if start_key else {}
                return pool.submit(self.call, "scan", Segment=segment, TotalSegments=segments, **parameters, **extra)

            in_flight = {scan(segment, None): segment for segment in range(segments)}
            try:
                while in_flight:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        segment = in_flight.pop(future)
                        response = future.result()
                        if "LastEvaluatedKey" in response:
                            in_flight[scan(segment, response["LastEvaluatedKey"])] = segment
                        yield response
            finally:
                for future in in_flight:  # closed early: what has not started never will
                    future.cancel()


def _prefetched(pool: ThreadPoolExecutor, work: Callable[[_T], _R], inputs: Iterable[_T], depth: int) -> Iterator[_R]:
    """`map(work, inputs)` in order, with up to `depth` calls running ahead on `pool`."""
    ahead: deque[Future[_R]] = deque()
    try:
        for value in inputs:
            ahead.append(pool.submit(work, value))
            if len(ahead) >= depth:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        for future in ahead:
            future.cancel()


def _without_duplicates(spec: TableSpec, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items with distinct keys, the last one winning (as if written one after another)."""
    by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for item in items:
        key = spec.key_tuple(item)
        by_key.pop(key, None)
        by_key[key] = item
    return list(by_key.values())


# --- the store -------------------------------------------------------------------------------


class DynamoStore:
    """The `Store` protocol over DynamoDB (see the module docstring for tables and guarantees)."""

    def __init__(
        self,
        client: Any,
        *,
        env: str = "dev",
        retry: RetryPolicy = RetryPolicy(),
        read_ahead: int = 8,
        import_writers: int = 4,
    ) -> None:
        if not env or not all(ch.isalnum() or ch in "-_." for ch in env):
            raise InvalidArgumentError("OMNIX_STORE", f"env must be letters, digits, '-', '_' or '.', got {env!r}")
        self.env = env
        self.db = DynamoClient(client, retry)
        self.table_names = {spec.table: table_name(spec, env) for spec in TABLES}
        self._read_ahead = read_ahead  # parallel requests of a whole-table read
        self._import_writers = import_writers

    @classmethod
    def from_url(
        cls, url: str, *, session: boto3.session.Session | None = None, retry: RetryPolicy = RetryPolicy()
    ) -> DynamoStore:
        """`dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:8000&env=dev` (all optional).

        `session`: a boto3 session to make the client from; callers opening many stores
        (tests, tools) pass one so that botocore loads its service models once.
        """
        parts = urlsplit(url)
        if parts.scheme != "dynamodb" or parts.netloc or parts.path not in ("", "/") or parts.fragment:
            expected = "dynamodb://?region=...&endpoint=...&env=..."
            raise InvalidArgumentError("OMNIX_STORE", f"expected {expected}, got {url!r}")
        parameters: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in URL_PARAMETERS:
                known = ", ".join(URL_PARAMETERS)
                raise InvalidArgumentError("OMNIX_STORE", f"unknown parameter {name!r} (known: {known})")
            if name in parameters:
                raise InvalidArgumentError("OMNIX_STORE", f"parameter {name!r} given twice")
            parameters[name] = value
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # RetryPolicy is the one policy
            connect_timeout=3,
            read_timeout=20,
            max_pool_connections=32,  # server threads, read-ahead and import writers share it
        )
        try:
            client = (session or boto3.session.Session()).client(
                "dynamodb",
                region_name=parameters.get("region") or None,
                endpoint_url=parameters.get("endpoint") or None,
                config=config,
            )
        except NoRegionError:
            raise InvalidArgumentError("OMNIX_STORE", "no AWS region: add ?region=... or set AWS_REGION") from None
        except ValueError as error:  # a malformed endpoint URL
            raise InvalidArgumentError("OMNIX_STORE", str(error)) from None
        return cls(client, env=parameters.get("env") or "dev", retry=retry)

    def _name(self, spec: TableSpec) -> str:
        return self.table_names[spec.table]

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self.db.client.close()

    def create_tables(self, wait_s: float = 300.0) -> list[str]:
        """Create the missing tables and indexes and wait until all are ACTIVE (idempotent).

        Returns what was created ("table" or "table/index"). An existing table with another
        key schema is a `FailedPreconditionError`: it is not ours to change.
        """
        created: list[str] = []
        for spec in TABLES:
            name = self._name(spec)
            # Create first and describe on "already exists": one call per table when none exist.
            try:
                table = self.db.call("create_table", **_table_definition(spec, name))["TableDescription"]
                created.append(name)
            except ClientError as error:
                if _error_code(error) != "ResourceInUseException":
                    raise
                table = self.db.call("describe_table", TableName=name)["Table"]
            if not _is_active(table):
                table = self._wait_active(name, wait_s)
            if table["KeySchema"] != _key_schema(spec.hash_key, spec.range_key):
                raise FailedPreconditionError(f"table {name} exists with another key schema: {table['KeySchema']}")
            existing = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
            for index in spec.indexes:
                if index.name in existing:
                    continue
                # One new index per UpdateTable, each built before the next (DynamoDB's rule).
                keys = [a for a in (index.hash_key, index.range_key) if a]
                self.db.call(
                    "update_table",
                    TableName=name,
                    AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in keys],
                    GlobalSecondaryIndexUpdates=[{"Create": _index_definition(index)}],
                )
                created.append(f"{name}/{index.name}")
                self._wait_active(name, wait_s)
        return created

    def _wait_active(self, name: str, wait_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            table = self.db.call("describe_table", TableName=name)["Table"]
            if _is_active(table):
                return table
            if time.monotonic() > deadline:
                raise UnavailableError(f"DynamoDB table {name} is not ACTIVE after {wait_s:.0f} s")
            time.sleep(1.0)

    # --- customers -----------------------------------------------------------------------

    def create_customer(self, customer: Customer) -> None:
        try:
            self.db.call(
                "put_item",
                TableName=self._name(CUSTOMERS),
                Item=_customer_item(customer),
                ConditionExpression="attribute_not_exists(customerId)",
            )
        except ClientError as error:
            if _condition_failed(error):
                raise AlreadyExistsError("customer", customer.customer_id) from None
            raise

    def get_customer(self, customer_id: str) -> Customer:
        item = self._get(CUSTOMERS, {"customerId": _s(customer_id)}) if customer_id else None
        if item is None:
            raise NotFoundError("customer", customer_id)
        return _customer(item)

    def put_customer(self, customer: Customer) -> None:
        try:
            self.db.call(
                "put_item",
                TableName=self._name(CUSTOMERS),
                Item=_customer_item(customer),
                ConditionExpression="attribute_exists(customerId)",
            )
        except ClientError as error:
            if _condition_failed(error):
                raise NotFoundError("customer", customer.customer_id) from None
            raise

    def list_customer_ids(self, page_size: int, page_token: str = "") -> Page[str]:
        _check_positive(page_size, "page_size")
        expression = _Expression()
        items, token = self.db.page(
            "query",
            {
                "TableName": self._name(CUSTOMERS),
                "IndexName": "listing-customerId-index",
                "KeyConditionExpression": expression.equals("listing", CUSTOMERS_LISTING),
                **expression.parameters(),
            },
            page_size,
            _start_key(page_token, {"listing": CUSTOMERS_LISTING, "customerId": None}),
            ("listing", "customerId"),
        )
        return Page(tuple(item["customerId"]["S"] for item in items), token)

    def delete_customer(self, customer_id: str) -> CustomerErasure:
        """Erase everywhere; derived rows first, the profile last, so that an erasure cut short
        is finished by calling it again (DynamoDB cannot delete unbounded histories at once)."""
        if not customer_id:
            raise NotFoundError("customer", customer_id)
        profile = self._get(CUSTOMERS, {"customerId": _s(customer_id)})
        purchases = self._query_keys(PURCHASES, "customerId", customer_id)
        interactions = self._query_keys(INTERACTIONS, "customerId", customer_id)
        served = self._query_keys(RECOMMENDATIONS, "customerId", customer_id, also=("recommendationId",))
        served_ids = [item["recommendationId"]["S"] for item in served]
        # Feedback is the customer's own, or on a list served to them (as in the SQLite store).
        feedback = _without_duplicates(
            FEEDBACK,
            [
                *self._query_keys(FEEDBACK, "customerId", customer_id, index="customerId-occurredAt-index"),
                *(key for rid in served_ids for key in self._query_keys(FEEDBACK, "recommendationId", rid)),
            ],
        )
        documents = self._query_keys(DOCUMENTS, "customerId", customer_id)
        doomed: list[tuple[TableSpec, list[dict[str, Any]]]] = [
            (PURCHASES, purchases),
            (INTERACTIONS, interactions),
            (FEEDBACK, feedback),
            (RECOMMENDATION_IDS, [{"recommendationId": _s(rid)} for rid in served_ids]),
            (RECOMMENDATIONS, served),
            (DOCUMENTS, documents),
            (CUSTOMERS, [profile] if profile else []),  # last
        ]
        if not any(rows for _, rows in doomed):
            raise NotFoundError("customer", customer_id)
        for spec, rows in doomed:
            self.db.batch_write([(self._name(spec), {"DeleteRequest": {"Key": spec.key_of(row)}}) for row in rows])
        return CustomerErasure(
            {
                "profile": 1 if profile else 0,
                "purchases": sum(1 for row in purchases if row["sk"]["S"] != HISTORY_HEADER),
                "interactions": len(interactions),
                "recommendations": len(served),
                "feedback": len(feedback),
                "documents": len(documents),
            }
        )

    def _query_keys(
        self, spec: TableSpec, attribute: str, value: str, *, index: str | None = None, also: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The primary keys (and `also` attributes) of every row whose `attribute` (the table's
        or `index`'s partition key) is `value`."""
        expression = _Expression()
        parameters: dict[str, Any] = {
            "TableName": self._name(spec),
            "KeyConditionExpression": expression.equals(attribute, value),
            "ProjectionExpression": expression.projection([*spec.key_attributes, *also]),
        }
        if index is None:
            parameters["ConsistentRead"] = True
        else:
            parameters["IndexName"] = index
        return list(self.db.items("query", **parameters, **expression.parameters()))

    def _get(self, spec: TableSpec, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.db.call("get_item", TableName=self._name(spec), Key=key, ConsistentRead=True).get("Item")

    # --- catalog -------------------------------------------------------------------------

    def upsert_products(self, products: Sequence[Product]) -> int:
        items = _without_duplicates(PRODUCTS, [_product_item(p) for p in products])
        self._write_all(PRODUCTS, items)
        return len(items)

    def get_product(self, product_id: str) -> Product:
        item = self._get(PRODUCTS, {"productId": _s(product_id)}) if product_id else None
        if item is None:
            raise NotFoundError("product", product_id)
        return _product(item)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        keys = [{"productId": _s(pid)} for pid in dict.fromkeys(product_ids) if pid]
        items = self.db.batch_get(self._name(PRODUCTS), keys, ConsistentRead=True)
        return {product.product_id: product for product in map(_product, items)}

    def list_products(self, product_filter: ProductFilter, page_size: int, page_token: str = "") -> Page[Product]:
        """By product id: category-index for one department, the catalog listing otherwise;
        the other criteria filter what the index returns."""
        _check_positive(page_size, "page_size")
        f, expression, conditions = product_filter, _Expression(), []
        if len(f.departments) == 1 and f.departments[0]:  # (index keys are never empty)
            index, partition = PRODUCTS.index("category-index"), f.departments[0]
        else:
            index, partition = PRODUCTS.index("listing-productId-index"), CATALOG_LISTING
            if f.departments:
                conditions.append(expression.one_of("department", f.departments))
        key_condition = expression.equals(index.hash_key, partition)
        if f.aisles:
            conditions.append(expression.one_of("aisle", f.aisles))
        if f.brands:
            conditions.append(expression.one_of("brand", f.brands))
        for tag in f.dietary_tags:
            conditions.append(f"contains({expression.name('dietaryTags')}, {expression.value(tag)})")
        if f.in_stock_only:
            conditions.append(expression.equals("inStock", True))
        parameters: dict[str, Any] = {
            "TableName": self._name(PRODUCTS),
            "IndexName": index.name,
            "KeyConditionExpression": key_condition,
        }
        if conditions:
            parameters["FilterExpression"] = " AND ".join(conditions)
        items, token = self.db.page(
            "query",
            {**parameters, **expression.parameters()},
            page_size,
            _start_key(page_token, {index.hash_key: partition, "productId": None}),
            (index.hash_key, "productId"),
            filtered=bool(conditions),
        )
        return Page(tuple(map(_product, items)), token)

    def iter_products(self) -> Iterator[Product]:
        """The catalog in product id order (the catalog listing)."""
        expression = _Expression()
        items = self.db.items(
            "query",
            TableName=self._name(PRODUCTS),
            IndexName="listing-productId-index",
            KeyConditionExpression=expression.equals("listing", CATALOG_LISTING),
            **expression.parameters(),
        )
        return map(_product, items)

    # --- purchases -----------------------------------------------------------------------

    def add_purchases(self, purchases: Sequence[Purchase]) -> int:
        lines = _without_duplicates(PURCHASES, [_purchase_item(p) for p in purchases])
        self._write_all(PURCHASES, _with_history_headers(lines))
        return len(lines)

    def list_purchases(
        self,
        customer_id: str,
        page_size: int,
        page_token: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[Purchase]:
        _check_positive(page_size, "page_size")
        items, token = self.db.page(
            "query",
            {**self._history_query(customer_id, start=start, end=end), "ScanIndexForward": False},
            page_size,
            _start_key(page_token, {"customerId": customer_id, "sk": None}),
            PURCHASES.key_attributes,
        )
        return Page(tuple(map(_purchase, items)), token)

    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]:
        return [_purchase(item) for item in self.db.items("query", **self._history_query(customer_id, end=before))]

    def _history_query(
        self,
        customer_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        attributes: Sequence[str] = (),
    ) -> dict[str, Any]:
        # A sort key "<purchaseDate>#..." sorts after the bare date string of the same instant,
        # so `sk <= date(end)` excludes `end` and `sk >= date(start)` includes `start`; the
        # lowest bound "0" skips the customer's "#history" row.
        low = FIRST_PURCHASE_KEY if start is None else _timestamp(start, "start")
        expression = _Expression()
        condition = f"{expression.equals('customerId', customer_id)} AND "
        if end is None:
            condition += f"{expression.name('sk')} >= {expression.value(low)}"
        else:
            high = max(low, _timestamp(end, "end"))  # an end before the start: an empty range
            condition += f"{expression.name('sk')} BETWEEN {expression.value(low)} AND {expression.value(high)}"
        query = {"TableName": self._name(PURCHASES), "KeyConditionExpression": condition, "ConsistentRead": True}
        if attributes:
            query["ProjectionExpression"] = expression.projection(attributes)
        return {**query, **expression.parameters()}

    def scan_purchases(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        """Every order line by customer id, then time: the purchasers listing in order, each
        history read by one Query, `read_ahead` customers at a time."""
        _check_positive(batch_rows, "batch_rows")
        return self._scan_purchases(batch_rows)

    def _scan_purchases(self, batch_rows: int) -> Iterator[PurchaseColumns]:
        fields = ("customerId", "orderId", "productId", "quantity", "unitPrice", "purchaseDate")

        def history(customer_id: str) -> list[dict[str, Any]]:
            return list(self.db.items("query", **self._history_query(customer_id, attributes=fields)))

        columns = _new_columns()
        with ThreadPoolExecutor(self._read_ahead, thread_name_prefix="omnix-dynamo-history") as pool:
            for lines in _prefetched(pool, history, self._purchasers(), self._read_ahead * 2):
                for item in lines:
                    columns.customer_ids.append(item["customerId"]["S"])
                    columns.order_ids.append(item["orderId"]["S"])
                    columns.product_ids.append(item["productId"]["S"])
                    columns.quantities.append(int(item["quantity"]["N"]))
                    columns.unit_prices.append(float(item["unitPrice"]["N"]))
                    columns.purchased_at.append(int(_datetime(item["purchaseDate"]["S"]).timestamp()))
                    if len(columns) == batch_rows:
                        yield columns
                        columns = _new_columns()
        if len(columns):
            yield columns

    def _purchasers(self) -> Iterator[str]:
        """Every customer with purchases, in id order."""
        expression = _Expression()
        items = self.db.items(
            "query",
            TableName=self._name(PURCHASES),
            IndexName="listing-customerId-index",
            KeyConditionExpression=expression.equals("listing", PURCHASERS_LISTING),
            **expression.parameters(),
        )
        return (item["customerId"]["S"] for item in items)

    def count_purchases(self) -> int:
        """A parallel Scan that counts every row but the customers' "#history" rows."""
        expression = _Expression()
        responses = self.db.parallel_scan(
            self._read_ahead,
            TableName=self._name(PURCHASES),
            Select="COUNT",
            FilterExpression=f"attribute_not_exists({expression.name('listing')})",
            ConsistentRead=True,
            **expression.parameters(),
        )
        return sum(response["Count"] for response in responses)

    # --- behaviour -----------------------------------------------------------------------

    def add_interaction(self, interaction: Interaction) -> None:
        self.db.call("put_item", TableName=self._name(INTERACTIONS), Item=_interaction_item(interaction))

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        _check_positive(limit, "limit")
        expression = _Expression()
        condition = expression.equals("customerId", customer_id)
        if since is not None:
            condition += f" AND {expression.name('sk')} >= {expression.value(_timestamp(since, 'since'))}"
        return [_interaction(item) for item in self._newest(INTERACTIONS, condition, expression, limit)]

    def _newest(
        self, spec: TableSpec, condition: str, expression: _Expression, limit: int, index: str | None = None
    ) -> list[dict[str, Any]]:
        """The first `limit` rows of a Query in descending sort key order."""
        parameters: dict[str, Any] = {
            "TableName": self._name(spec),
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            **expression.parameters(),
        }
        if index is None:
            parameters["ConsistentRead"] = True
        else:
            parameters["IndexName"] = index
        return self.db.first("query", parameters, limit)

    # --- served recommendations and feedback ---------------------------------------------

    def save_recommendation(self, served: ServedRecommendation) -> None:
        """The list and its id row in one transaction; the id row's condition keeps ids unique."""
        item = _recommendation_item(served)
        pointer = {"recommendationId": item["recommendationId"], "customerId": item["customerId"], "sk": item["sk"]}
        try:
            self.db.transact_puts(
                [
                    (self._name(RECOMMENDATION_IDS), pointer, "attribute_not_exists(recommendationId)"),
                    (self._name(RECOMMENDATIONS), item, None),
                ]
            )
        except ClientError as error:
            if _condition_failed(error):
                raise AlreadyExistsError("recommendation", served.recommendation_id) from None
            raise

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        pointer = None
        if recommendation_id:
            pointer = self._get(RECOMMENDATION_IDS, {"recommendationId": _s(recommendation_id)})
        item = None if pointer is None else self._get(RECOMMENDATIONS, RECOMMENDATIONS.key_of(pointer))
        if item is None:
            raise NotFoundError("recommendation", recommendation_id)
        return _recommendation(item)

    def list_recommendations(self, customer_id: str, limit: int = 20) -> list[ServedRecommendation]:
        _check_positive(limit, "limit")
        expression = _Expression()
        condition = expression.equals("customerId", customer_id)
        return [_recommendation(item) for item in self._newest(RECOMMENDATIONS, condition, expression, limit)]

    def add_feedback(self, feedback: Feedback) -> None:
        self.db.call("put_item", TableName=self._name(FEEDBACK), Item=_feedback_item(feedback))

    def list_feedback(self, recommendation_id: str) -> list[Feedback]:
        """Newest first."""
        expression = _Expression()
        items = self.db.items(
            "query",
            TableName=self._name(FEEDBACK),
            KeyConditionExpression=expression.equals("recommendationId", recommendation_id),
            ScanIndexForward=False,
            ConsistentRead=True,
            **expression.parameters(),
        )
        return [_feedback(item) for item in items]

    # --- models --------------------------------------------------------------------------

    def save_model(self, record: ModelRecord) -> None:
        """A new version (`AlreadyExistsError` when taken); saved active, it also becomes the
        active one, in the same transaction."""
        puts = [(self._name(MODELS), _model_item(record), "attribute_not_exists(version)")]
        if record.active:
            puts.append((self._name(MODELS), self._active_pointer(record.version), None))
        try:
            self.db.transact_puts(puts)
        except ClientError as error:
            if _condition_failed(error):
                raise AlreadyExistsError("model", record.version) from None
            raise

    def list_models(self) -> list[ModelRecord]:
        """Newest first (a few hundred versions at most: one Scan, sorted here)."""
        items = list(self.db.items("scan", TableName=self._name(MODELS), ConsistentRead=True))
        pointer = next((i for i in items if i["version"]["S"] == ACTIVE_MODEL_POINTER), None)
        active = None if pointer is None else pointer["activeVersion"]["S"]
        records = [_model(i, i["version"]["S"] == active) for i in items if i is not pointer]
        return sorted(records, key=lambda r: (r.created_at, r.version), reverse=True)

    def activate_model(self, version: str) -> ModelRecord:
        """One pointer row names the active version, so "exactly one active" cannot break,
        even when two operators activate at once (the last one wins)."""
        record = self._get(MODELS, {"version": _s(version)}) if version and version != ACTIVE_MODEL_POINTER else None
        if record is None:
            raise NotFoundError("model", version)
        try:
            self.db.call(
                "transact_write_items",
                TransactItems=[
                    {
                        "ConditionCheck": {  # still there when the pointer moves
                            "TableName": self._name(MODELS),
                            "Key": {"version": _s(version)},
                            "ConditionExpression": "attribute_exists(version)",
                        }
                    },
                    {"Put": {"TableName": self._name(MODELS), "Item": self._active_pointer(version)}},
                ],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except ClientError as error:
            if _condition_failed(error):
                raise NotFoundError("model", version) from None
            raise
        return _model(record, active=True)

    def active_model(self) -> ModelRecord | None:
        pointer = self._get(MODELS, {"version": _s(ACTIVE_MODEL_POINTER)})
        record = None if pointer is None else self._get(MODELS, {"version": pointer["activeVersion"]})
        return None if record is None else _model(record, active=True)

    @staticmethod
    def _active_pointer(version: str) -> dict[str, Any]:
        return {"version": _s(ACTIVE_MODEL_POINTER), "activeVersion": _s(version)}

    # --- derived documents ---------------------------------------------------------------

    def put_document(self, kind: str, customer_id: str, created_at: datetime, body: dict[str, Any]) -> None:
        created = _timestamp(created_at, "created_at")
        try:
            text = json.dumps(body)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError("body", f"must be JSON-serialisable: {error}") from None
        if len(text.encode()) > MAX_DOCUMENT_BYTES:
            raise InvalidArgumentError("body", f"documents are limited to {MAX_DOCUMENT_BYTES} bytes of JSON")
        item = {
            "customerId": _id(customer_id, "customer_id"),
            "sk": f"{_key_part(_id(kind, 'kind'))}#{created}",
            "kind": kind,
            "createdAt": created,
            "body": text,
        }
        self.db.call("put_item", TableName=self._name(DOCUMENTS), Item=_to_wire(item))

    def latest_document(self, kind: str, customer_id: str) -> tuple[datetime, dict[str, Any]] | None:
        expression = _Expression()
        condition = (
            f"{expression.equals('customerId', customer_id)}"
            f" AND begins_with({expression.name('sk')}, {expression.value(_key_part(kind) + '#')})"
        )
        items = self._newest(DOCUMENTS, condition, expression, 1)
        if not items:
            return None
        _, created, body = _document(items[0])
        return created, body

    def customer_documents(self, customer_id: str) -> list[tuple[str, datetime, dict[str, Any]]]:
        """Newest first (then by kind): one Query of the customer's partition, sorted here."""
        expression = _Expression()
        items = self.db.items(
            "query",
            TableName=self._name(DOCUMENTS),
            KeyConditionExpression=expression.equals("customerId", customer_id),
            ConsistentRead=True,
            **expression.parameters(),
        )
        documents = sorted(map(_document, items), key=lambda d: d[0])
        return sorted(documents, key=lambda d: d[1], reverse=True)

    def list_documents(
        self, kind: str, since: datetime | None = None, limit: int = 10_000
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        _check_positive(limit, "limit")
        expression = _Expression()
        condition = expression.equals("kind", kind)
        if since is not None:
            condition += f" AND {expression.name('createdAt')} >= {expression.value(_timestamp(since, 'since'))}"
        items = self._newest(DOCUMENTS, condition, expression, limit, index="kind-createdAt-index")
        return [(item["customerId"]["S"], *_document(item)[1:]) for item in items]

    # --- bulk ----------------------------------------------------------------------------

    def import_session(self) -> DynamoImportSession:
        return DynamoImportSession(self, writers=self._import_writers)

    def _write_all(self, spec: TableSpec, items: list[dict[str, Any]]) -> None:
        """Write distinct-key items: atomically when one transaction holds them, otherwise
        through an import session (undone if it fails; see the module docstring)."""
        if len(items) <= TRANSACTION_MAX:
            if items:
                self.db.transact_puts([(self._name(spec), item, None) for item in items])
            return
        with self.import_session() as session:
            session.add_items(spec, items)
            session.commit()


def _is_active(table: Mapping[str, Any]) -> bool:
    indexes = table.get("GlobalSecondaryIndexes", [])
    return table["TableStatus"] == "ACTIVE" and all(i.get("IndexStatus") == "ACTIVE" for i in indexes)


def _new_columns() -> PurchaseColumns:
    return PurchaseColumns([], [], [], [], [], [])


# --- imports ---------------------------------------------------------------------------------


class UndoJournal:
    """The previous image (or absence) of every row an import wrote, in a temporary file.

    One record per written chunk: zlib-compressed JSON of [table, key, old item or null]
    triples, appended before the chunk is written. Replayed newest first, a row written twice
    ends with its image from before the import.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None  # created by the first append
        self._offsets: list[int] = []
        self._lock = threading.Lock()

    def append(self, entries: list[tuple[str, dict[str, Any], dict[str, Any] | None]]) -> None:
        record = zlib.compress(json.dumps(entries, separators=(",", ":")).encode(), 1)
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="omnix-import-undo-")
            self._offsets.append(self._file.seek(0, 2))
            self._file.write(struct.pack("<I", len(record)) + record)

    def newest_first(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        for offset in reversed(self._offsets):
            with self._lock:
                assert self._file is not None  # there are offsets
                self._file.seek(offset)
                (size,) = struct.unpack("<I", self._file.read(4))
                record = self._file.read(size)
            for table, key, old in reversed(json.loads(zlib.decompress(record))):
                yield table, key, old

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class DynamoImportSession:
    """An `ImportSession` on DynamoDB: idempotent, undone on failure or abandonment, not
    isolated (see "Multi-row writes and imports" in the module docstring)."""

    def __init__(self, store: DynamoStore, writers: int = 4) -> None:
        self._store = store
        self._journal = UndoJournal()
        self._writers = writers
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="omnix-dynamo-import")
        self._in_flight: dict[Future[None], frozenset[tuple[str, ...]]] = {}  # chunk -> its keys
        self._purchasers: set[str] = set()  # customers whose "#history" row this session wrote
        self._state = "new"  # then "open" inside `with`, then "committed" or "rolled back"

    def __enter__(self) -> DynamoImportSession:
        if self._state != "new":
            raise FailedPreconditionError("an import session is used once")
        self._state = "open"
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._state == "open":  # an exception left the block, or commit() never came
                self._roll_back()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._journal.close()

    def add_customers(self, customers: Iterable[Customer]) -> None:
        self._add(CUSTOMERS, "customers", _customer_item, customers)

    def add_products(self, products: Iterable[Product]) -> None:
        self._add(PRODUCTS, "products", _product_item, products)

    def add_purchases(self, purchases: Iterable[Purchase]) -> None:
        self._add(PURCHASES, "purchases", _purchase_item, purchases)

    def add_purchase_columns(self, columns: PurchaseColumns) -> None:
        lengths = {
            len(columns.customer_ids),
            len(columns.order_ids),
            len(columns.product_ids),
            len(columns.quantities),
            len(columns.unit_prices),
            len(columns.purchased_at),
        }
        if len(lengths) != 1:
            message = f"all columns must have the same length, got lengths {sorted(lengths)}"
            raise InvalidArgumentError("columns", message)
        self.add_purchases(
            Purchase(customer, order, product, quantity, price, datetime.fromtimestamp(seconds, UTC))
            for customer, order, product, quantity, price, seconds in zip(
                columns.customer_ids,
                columns.order_ids,
                columns.product_ids,
                columns.quantities,
                columns.unit_prices,
                columns.purchased_at,
            )
        )

    def add_items(self, spec: TableSpec, items: Sequence[dict[str, Any]]) -> None:
        """Already encoded items with distinct keys (the store's own large writes)."""
        self._require_open()
        for start in range(0, len(items), IMPORT_CHUNK):
            self._submit(spec, list(items[start : start + IMPORT_CHUNK]))

    def commit(self) -> None:
        self._require_open()
        try:
            self._drain()
        except BaseException:
            self._roll_back()
            raise
        self._state = "committed"

    def _add(self, spec: TableSpec, kind: str, encode: Callable[[Any], dict[str, Any]], rows: Iterable[Any]) -> None:
        self._require_open()
        chunk: list[dict[str, Any]] = []
        for n, row in enumerate(rows):
            try:
                chunk.append(encode(row))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"{kind}[{n}].{error.field}", error.message) from None
            if len(chunk) == IMPORT_CHUNK:
                self._submit_rows(spec, chunk)
                chunk = []
        if chunk:
            self._submit_rows(spec, chunk)

    def _submit_rows(self, spec: TableSpec, chunk: list[dict[str, Any]]) -> None:
        items = _without_duplicates(spec, chunk)
        if spec is PURCHASES:
            items = _with_history_headers(items, self._purchasers)
        self._submit(spec, items)

    def _submit(self, spec: TableSpec, items: list[dict[str, Any]]) -> None:
        keys = frozenset((spec.table, *spec.key_tuple(item)) for item in items)
        # Rows with one key land in the order given (the last one wins, as in SQLite): a chunk
        # waits for the earlier chunks holding any of its keys.
        wait([future for future, held in self._in_flight.items() if held & keys])
        # A bounded number of chunks in flight: memory stays flat, and a failed chunk stops
        # the import within a few chunks.
        while len(self._in_flight) >= 2 * self._writers:
            wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._collect_finished()
        self._collect_finished()
        self._in_flight[self._pool.submit(self._write_chunk, spec, items)] = keys

    def _collect_finished(self) -> None:
        """Forget finished chunks, raising the first failure among them."""
        finished = [future for future in self._in_flight if future.done()]
        for future in finished:
            del self._in_flight[future]
        for future in finished:
            future.result()

    def _write_chunk(self, spec: TableSpec, items: list[dict[str, Any]]) -> None:
        db, name = self._store.db, self._store.table_names[spec.table]
        keys = [spec.key_of(item) for item in items]
        before = {spec.key_tuple(old): old for old in db.batch_get(name, keys, ConsistentRead=True)}
        # Write-ahead: the old images are journaled before anything is overwritten.
        self._journal.append([(name, key, before.get(spec.key_tuple(key))) for key in keys])
        db.batch_write([(name, {"PutRequest": {"Item": item}}) for item in items])

    def _drain(self) -> None:
        wait(self._in_flight)
        self._collect_finished()

    def _roll_back(self) -> None:
        self._state = "rolled back"
        for future in self._in_flight:
            future.cancel()  # not started: never journaled, nothing to undo
        wait(self._in_flight)  # started: let them finish, so that their journal entry is final
        self._in_flight.clear()
        undo: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        try:
            for table, key, old in self._journal.newest_first():
                marker = (table, json.dumps(key, sort_keys=True))
                if marker in undo or len(undo) >= 500:
                    # One key twice in a batch is refused: apply what is pending first, in order.
                    self._store.db.batch_write(list(undo.values()))
                    undo.clear()
                undo[marker] = (table, {"PutRequest": {"Item": old}} if old else {"DeleteRequest": {"Key": key}})
            self._store.db.batch_write(list(undo.values()))
        except UnavailableError as error:
            log.error("import rollback incomplete (%s): run the same import again to converge", error)
            raise UnavailableError(
                "the import failed and undoing it did not finish; run the same import again "
                "(it is idempotent) to reach a consistent state"
            ) from error

    def _require_open(self) -> None:
        if self._state == "new":
            raise FailedPreconditionError(
                "the import session is not open: use it as `with store.import_session() as session:`"
            )
        if self._state != "open":
            raise FailedPreconditionError(f"the import session is already {self._state}")
