"""How the DynamoDB store writes things down: domain objects as items, keys, page tokens.

Encoding validates a caller's object on the way (`InvalidArgumentError` naming the field), so
nothing malformed is sent. Keys are built so that string order is the order the protocol reads
in: fixed-width UTC timestamps, and ids escaped so `#` separates the parts of a sort key. Floats
are `Decimal(repr(x))` and free-form maps JSON text, so values read back exactly as written.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import numbers
import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from omnix_recs.domain.models import (
    Consent,
    Customer,
    Feedback,
    FeedbackEvent,
    Interaction,
    InteractionKind,
    Preferences,
    Product,
    Purchase,
    RecommendedItem,
    ServedRecommendation,
)
from omnix_recs.domain.purchases import OrderLines, PurchaseColumns
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.base import ExperimentRecord, ModelRecord

MAX_PAGE_TOKEN_CHARS = 4096
HISTORY_HEADER = "#history"  # sort key of a customer's marker row in purchase-history
FIRST_PURCHASE_KEY = "0"  # every purchase sort key (a year) is >= "0" > "#history"
ACTIVE_MODEL_POINTER = "#active"  # the models row naming the active version
CATALOG_VERSION_ROW = "#catalog"  # the models row counting catalog writes (`catalog_version`)
# The models row holding the purchase history's watermark (`purchase_watermark`).
PURCHASE_WATERMARK_ROW = "#purchases"
IMPORT_CHECKPOINT_ROW = "#import"  # the models row of a resumable import's progress (imports.py)
# The models row saying every refusing profile carries `REFUSED_ATTRIBUTE` (`refusals_indexed`).
REFUSALS_INDEXED_ROW = "#refusals"
RESERVED_MODEL_ROWS = (
    ACTIVE_MODEL_POINTER,
    CATALOG_VERSION_ROW,
    PURCHASE_WATERMARK_ROW,
    IMPORT_CHECKPOINT_ROW,
    REFUSALS_INDEXED_ROW,
)
# Written only on the profiles of customers who refused personalisation, so that the sparse
# index over it (tables.py) holds exactly them and training reads them without a Scan.
REFUSED_ATTRIBUTE, REFUSED = "personalizationRefused", "refused"
CUSTOMERS_LISTING, CATALOG_LISTING, PURCHASERS_LISTING = "customers", "catalog", "purchasers"
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


# --- value encodings -------------------------------------------------------------------------


def timestamp(value: datetime, field: str) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: string order is time order."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(field, "must be a timezone-aware datetime")
    t = value.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)  # the trailing Z reads as UTC


def key_part(value: str) -> str:
    """An id made safe to join with '#': injective, so distinct ids never share a sort key."""
    return value.replace("%", "%25").replace("#", "%23")


def non_empty_id(value: str, field: str) -> str:
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


def _number(value: object, field: str) -> Decimal:
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


def to_wire(plain: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in plain.items()}


def _from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def wire_string(value: str) -> dict[str, str]:
    return {"S": value}


# --- entities <-> items ----------------------------------------------------------------------


def customer_item(c: Customer) -> dict[str, Any]:
    p, consent = c.preferences, c.consent
    budget = p.budget_per_trip
    item = to_wire(
        {
            "customerId": non_empty_id(c.customer_id, "customer_id"),
            "listing": CUSTOMERS_LISTING,
            "createdAt": timestamp(c.created_at, "created_at"),
            "updatedAt": timestamp(c.updated_at, "updated_at"),
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
    if not consent.personalization:
        # Absent, never NULL, otherwise: an index key of another type fails the write.
        item[REFUSED_ATTRIBUTE] = wire_string(REFUSED)
    return item


def customer_from_item(item: Mapping[str, Any]) -> Customer:
    v = _from_wire(item)
    p, consent = v["preferences"], v["consent"]
    return Customer(
        customer_id=v["customerId"],
        created_at=parse_timestamp(v["createdAt"]),
        updated_at=parse_timestamp(v["updatedAt"]),
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


def product_item(p: Product) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "productId": non_empty_id(p.product_id, "product_id"),
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
        plain["updatedAt"] = timestamp(p.updated_at, "updated_at")
    return to_wire(plain)


def product_from_item(item: Mapping[str, Any]) -> Product:
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
        updated_at=parse_timestamp(v["updatedAt"]) if "updatedAt" in v else None,
    )


def purchase_item(p: Purchase) -> dict[str, Any]:
    purchased = timestamp(p.purchased_at, "purchased_at")
    order_id, product_id = non_empty_id(p.order_id, "order_id"), non_empty_id(p.product_id, "product_id")
    customer_id = non_empty_id(p.customer_id, "customer_id")
    quantity = _SERIALIZER.serialize(_integer(p.quantity, "quantity"))
    price = _SERIALIZER.serialize(_number(p.unit_price, "unit_price"))
    return _purchase_wire(customer_id, order_id, product_id, purchased, quantity, price, p.store_id)


def _purchase_wire(
    customer_id: str, order_id: str, product_id: str, purchased: str, quantity: Any, price: Any, store_id: str
) -> dict[str, Any]:
    """A purchase-history item from checked parts (`quantity` and `price` already wire values):
    the one layout `purchase_item` and `PurchaseItems` write."""
    item: dict[str, Any] = {
        "customerId": {"S": customer_id},
        "sk": {"S": f"{purchased}#{key_part(order_id)}#{key_part(product_id)}"},
        "purchaseDate": {"S": purchased},
        "orderId": {"S": order_id},
        "productId": {"S": product_id},
        "quantity": quantity,
        "unitPrice": price,
    }
    if store_id:  # absent = not known (DynamoDB keeps no empty attribute worth paying for)
        item["storeId"] = {"S": store_id}
    return item


class PurchaseItems:
    """`purchase_item` of many lines given as column values (a bulk load's millions): the same
    items and the same errors, with each distinct time, quantity and price encoded once rather
    than through a `datetime`, a `Decimal` and boto3's serializer per line (15 -> ~3 us a line)."""

    def __init__(self) -> None:
        self._times: dict[int, str] = {}
        self._quantities: dict[int, Any] = {}  # {"N": ...} as boto3 serialises it
        self._prices: dict[float, Any] = {}

    def item(
        self, customer: str, order: str, product: str, quantity: int, price: float, seconds: int, store: str
    ) -> dict[str, Any]:
        purchased = self._times.get(seconds) if seconds.__class__ is int else None
        if purchased is None:
            purchased = timestamp(datetime.fromtimestamp(seconds, UTC), "purchased_at")
            if seconds.__class__ is int:
                self._times[seconds] = purchased
        order_id, product_id = non_empty_id(order, "order_id"), non_empty_id(product, "product_id")
        customer_id = non_empty_id(customer, "customer_id")  # checked in `purchase_item`'s order
        # Cached by exact type: True == 1 and 1 == 1.0 would otherwise share an entry.
        quantity_wire: Any = self._quantities.get(quantity) if quantity.__class__ is int else None
        if quantity_wire is None:
            quantity_wire = _SERIALIZER.serialize(_integer(quantity, "quantity"))
            if quantity.__class__ is int:
                self._quantities[quantity] = quantity_wire
        price_wire: Any = self._prices.get(price) if price.__class__ is float else None
        if price_wire is None:
            price_wire = _SERIALIZER.serialize(_number(price, "unit_price"))
            if price.__class__ is float:
                self._prices[price] = price_wire
        return _purchase_wire(customer_id, order_id, product_id, purchased, quantity_wire, price_wire, store)


def _history_header(customer_id: str) -> dict[str, Any]:
    """The row saying "this customer has purchases": their entry in the purchasers listing."""
    return {
        "customerId": wire_string(customer_id),
        "sk": wire_string(HISTORY_HEADER),
        "listing": wire_string(PURCHASERS_LISTING),
    }


def with_history_headers(lines: list[dict[str, Any]], known: set[str] | None = None) -> list[dict[str, Any]]:
    """`lines` plus the header row of each customer in them (not already in `known`, which grows)."""
    known = set() if known is None else known
    new = [c for c in dict.fromkeys(line["customerId"]["S"] for line in lines) if c not in known]
    known.update(new)
    return lines + [_history_header(c) for c in new]


def purchase_from_item(item: Mapping[str, Any]) -> Purchase:
    # Whole histories go through here: read the wire format directly.
    return Purchase(
        customer_id=item["customerId"]["S"],
        order_id=item["orderId"]["S"],
        product_id=item["productId"]["S"],
        quantity=int(item["quantity"]["N"]),
        unit_price=float(item["unitPrice"]["N"]),
        purchased_at=parse_timestamp(item["purchaseDate"]["S"]),
        store_id=item["storeId"]["S"] if "storeId" in item else "",
    )


# What `order_lines_from_items` reads: a query's projection, so the rest never crosses the wire.
ORDER_LINE_ATTRIBUTES = ("orderId", "productId", "quantity", "unitPrice", "purchaseDate")


def order_lines_from_items(items: Sequence[Mapping[str, Any]]) -> OrderLines:
    """A history's purchase items as `OrderLines`: the wire format read column by column, the
    timestamps parsed by numpy in one call rather than a `datetime` per line."""
    return OrderLines(
        order_ids=[item["orderId"]["S"] for item in items],
        product_ids=[item["productId"]["S"] for item in items],
        quantities=np.array([int(item["quantity"]["N"]) for item in items], dtype=np.int64),
        unit_prices=np.array([float(item["unitPrice"]["N"]) for item in items], dtype=np.float64),
        purchased_at_s=epoch_seconds([item["purchaseDate"]["S"] for item in items]),
    )


def epoch_seconds(timestamps: Sequence[str]) -> np.ndarray:
    """float64 epoch seconds of `timestamp` strings, each equal to `parse_timestamp(t).timestamp()`."""
    # numpy reads the ISO text without its Z as UTC (with it, it warns that zones are deprecated),
    # to integer microseconds; then one correctly rounded division, as datetime.timestamp() does.
    micros = np.array([t.removesuffix("Z") for t in timestamps], dtype="datetime64[us]")
    return micros.astype(np.int64) / 1_000_000


def interaction_item(i: Interaction) -> dict[str, Any]:
    occurred = timestamp(i.occurred_at, "occurred_at")
    interaction_id = non_empty_id(i.interaction_id, "interaction_id")
    plain: dict[str, Any] = {
        "customerId": non_empty_id(i.customer_id, "customer_id"),
        "sk": f"{occurred}#{key_part(interaction_id)}",
        "timestamp": occurred,
        "interactionId": interaction_id,
        "kind": _choice(InteractionKind, i.kind, "kind"),
        "query": i.query,
        "quantity": _integer(i.quantity, "quantity"),
    }
    if i.product_id:  # searches have no product: absent from productId-timestamp-index
        plain["productId"] = i.product_id
    return to_wire(plain)


def interaction_from_item(item: Mapping[str, Any]) -> Interaction:
    v = _from_wire(item)
    return Interaction(
        customer_id=v["customerId"],
        interaction_id=v["interactionId"],
        kind=InteractionKind(v["kind"]),
        occurred_at=parse_timestamp(v["timestamp"]),
        product_id=v.get("productId", ""),
        query=v["query"],
        quantity=int(v["quantity"]),
    )


# The attribute DynamoDB's TTL deletes served lists, their id rows and feedback by: epoch seconds.
EXPIRES_AT = "expiresAt"


def expired(item: Mapping[str, Any], now_s: float) -> bool:
    """Whether TTL may delete `item` by now: DynamoDB deletes expired items up to days late,
    so reads skip them themselves. Items without the attribute never expire."""
    expires = item.get(EXPIRES_AT)
    return expires is not None and int(expires["N"]) <= now_s


def with_expiry(item: dict[str, Any], expires_at: int | None) -> dict[str, Any]:
    """`item` carrying the TTL attribute when it expires (unchanged when kept forever)."""
    return item if expires_at is None else {**item, EXPIRES_AT: {"N": str(expires_at)}}


def recommendation_item(r: ServedRecommendation) -> dict[str, Any]:
    generated = timestamp(r.generated_at, "generated_at")
    recommendation_id = non_empty_id(r.recommendation_id, "recommendation_id")
    # Only lists served in an experiment carry these: the experiment index stays sparse.
    experiment: dict[str, Any] = {"experimentId": r.experiment_id, "armId": r.arm_id} if r.experiment_id else {}
    if r.other_assignments:
        # The map for reading back; the set for a Scan's `contains` (an independent experiment's lists).
        experiment["otherAssignments"] = dict(r.other_assignments)
        experiment["otherExperimentIds"] = {e for e, _ in r.other_assignments}
    return to_wire(
        {
            **experiment,
            "customerId": non_empty_id(r.customer_id, "customer_id"),
            "sk": f"{generated}#{key_part(recommendation_id)}",
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


def recommendation_from_item(item: Mapping[str, Any]) -> ServedRecommendation:
    v = _from_wire(item)
    return ServedRecommendation(
        recommendation_id=v["recommendationId"],
        customer_id=v["customerId"],
        generated_at=parse_timestamp(v["generatedAt"]),
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
        experiment_id=v.get("experimentId", ""),
        arm_id=v.get("armId", ""),
        other_assignments=tuple(v.get("otherAssignments", {}).items()),
    )


def experiment_item(e: ExperimentRecord) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "experimentId": non_empty_id(e.experiment_id, "experiment_id"),
        "createdAt": timestamp(e.created_at, "created_at"),
        "body": json.dumps(e.body(), separators=(",", ":")),
    }
    if e.stopped_at is not None:
        plain["stoppedAt"] = timestamp(e.stopped_at, "stopped_at")
    return to_wire(plain)


def experiment_from_item(item: Mapping[str, Any]) -> ExperimentRecord:
    v = _from_wire(item)
    stopped = v.get("stoppedAt")
    return ExperimentRecord.from_body(
        v["experimentId"],
        parse_timestamp(v["createdAt"]),
        None if stopped is None else parse_timestamp(stopped),
        json.loads(v["body"]),
    )


def feedback_item(f: Feedback) -> dict[str, Any]:
    occurred = timestamp(f.occurred_at, "occurred_at")
    product_id, event = non_empty_id(f.product_id, "product_id"), _choice(FeedbackEvent, f.event, "event")
    return to_wire(
        {
            "recommendationId": non_empty_id(f.recommendation_id, "recommendation_id"),
            "sk": f"{occurred}#{key_part(product_id)}#{event}",
            "occurredAt": occurred,
            "customerId": non_empty_id(f.customer_id, "customer_id"),
            "productId": product_id,
            "event": event,
        }
    )


def feedback_from_item(item: Mapping[str, Any]) -> Feedback:
    v = _from_wire(item)
    return Feedback(
        recommendation_id=v["recommendationId"],
        customer_id=v["customerId"],
        product_id=v["productId"],
        event=FeedbackEvent(v["event"]),
        occurred_at=parse_timestamp(v["occurredAt"]),
    )


def model_item(record: ModelRecord) -> dict[str, Any]:
    version = non_empty_id(record.version, "version")
    if version in RESERVED_MODEL_ROWS:
        raise InvalidArgumentError("version", f"{version!r} is reserved")
    return to_wire(
        {
            "version": version,
            "createdAt": timestamp(record.created_at, "created_at"),
            "artifactUri": record.artifact_uri,
            "metrics": json.dumps(record.metrics),
            "notes": record.notes,
        }
    )


def model_from_item(item: Mapping[str, Any], active: bool) -> ModelRecord:
    v = _from_wire(item)
    return ModelRecord(
        version=v["version"],
        created_at=parse_timestamp(v["createdAt"]),
        artifact_uri=v["artifactUri"],
        metrics=json.loads(v["metrics"]),
        active=active,
        notes=v["notes"],
    )


def document_from_item(item: Mapping[str, Any]) -> tuple[str, datetime, dict[str, Any]]:
    """(kind, created_at, body)"""
    return item["kind"]["S"], parse_timestamp(item["createdAt"]["S"]), json.loads(item["body"]["S"])


# --- page tokens -----------------------------------------------------------------------------


def encode_page_token(item: Mapping[str, Any], key_attributes: Sequence[str]) -> str:
    """An opaque token: the key of the last row served, as urlsafe base64 of JSON."""
    key = {attribute: item[attribute]["S"] for attribute in key_attributes}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(token: str, expected: Mapping[str, str | None]) -> dict[str, Any] | None:
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
    return {attribute: wire_string(value) for attribute, value in key.items()}


# --- expressions -------------------------------------------------------------------------


class Expression:
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


def append_purchase(columns: PurchaseColumns, item: Mapping[str, Any], *, with_store: bool = True) -> None:
    """Append one purchase item (wire format) to `columns`; without its store when `with_store`
    is false (`store_ids` stays empty: a read that does not fetch the attribute)."""
    columns.customer_ids.append(item["customerId"]["S"])
    columns.order_ids.append(item["orderId"]["S"])
    columns.product_ids.append(item["productId"]["S"])
    columns.quantities.append(int(item["quantity"]["N"]))
    columns.unit_prices.append(float(item["unitPrice"]["N"]))
    columns.purchased_at.append(int(parse_timestamp(item["purchaseDate"]["S"]).timestamp()))
    if with_store:
        columns.store_ids.append(item["storeId"]["S"] if "storeId" in item else "")
