"""How the SQLite store lays entities out in rows: the columns, the conversions, the statements.

Pure functions and SQL text, no connection, so there is one place to read when a column or a
domain field changes. Conventions (see `schema`): timestamps are INTEGER microseconds since the
epoch, UTC; lists and small value objects are JSON text. Conversions that can fail on caller
input raise `InvalidArgumentError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

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
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.base import ModelRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_T = TypeVar("_T")


# --- values ------------------------------------------------------------------------------------


def micros(moment: datetime, field: str) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgumentError(field, "must be a timezone-aware datetime")
    return (moment - _EPOCH) // _MICROSECOND


def optional_micros(moment: datetime | None, field: str) -> int | None:
    return None if moment is None else micros(moment, field)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def to_json(value: Any, field: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(field, f"must be JSON-serialisable ({exc})") from None


def _value_object(cls: type[_T], text: str) -> _T:
    """Rebuild a small frozen dataclass stored as a JSON object.

    Keys are matched by field name: a field added to the class later takes its default on older
    rows, and a key whose field was removed is ignored.
    """
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str], values: str | None = None) -> str:
    """INSERT that overwrites the row with the same key, so writing the same rows twice changes nothing.

    (An upsert rather than INSERT OR REPLACE: REPLACE deletes and re-inserts, which would fire
    delete actions of any future foreign key or trigger.)
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    values = values or ", ".join("?" * len(columns))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _insert_new_sql(table: str, columns: Sequence[str], key: str) -> str:
    """INSERT that writes nothing when the key is taken (the caller checks `rowcount`)."""
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({key}) DO NOTHING"
    )


# --- customers ---------------------------------------------------------------------------------

_CUSTOMER_COLUMNS = (
    "customer_id",
    "created_at",
    "updated_at",
    "display_name",
    "email",
    "age_band",
    "household_size",
    "postcode",
    "preferences",
    "dietary_restrictions",
    "allergens",
    "consent",
)
CUSTOMER_SELECT = f"SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM customer_profiles"
INSERT_NEW_CUSTOMER = _insert_new_sql("customer_profiles", _CUSTOMER_COLUMNS, "customer_id")
UPSERT_CUSTOMER = _upsert_sql("customer_profiles", _CUSTOMER_COLUMNS, ("customer_id",))


def customer_row(c: Customer) -> tuple[Any, ...]:
    return (
        c.customer_id,
        micros(c.created_at, "created_at"),
        micros(c.updated_at, "updated_at"),
        c.display_name,
        c.email,
        c.age_band,
        c.household_size,
        c.postcode,
        to_json(dataclasses.asdict(c.preferences), "preferences"),
        to_json(c.dietary_restrictions, "dietary_restrictions"),
        to_json(c.allergens, "allergens"),
        to_json(dataclasses.asdict(c.consent), "consent"),
    )


def customer_from_row(row: Sequence[Any]) -> Customer:
    return Customer(
        customer_id=row[0],
        created_at=from_micros(row[1]),
        updated_at=from_micros(row[2]),
        display_name=row[3],
        email=row[4],
        age_band=row[5],
        household_size=row[6],
        postcode=row[7],
        preferences=_value_object(Preferences, row[8]),
        dietary_restrictions=tuple(json.loads(row[9])),
        allergens=tuple(json.loads(row[10])),
        consent=_value_object(Consent, row[11]),
    )


# --- products ----------------------------------------------------------------------------------

_PRODUCT_COLUMNS = (
    "product_id",
    "name",
    "department",
    "aisle",
    "brand",
    "price",
    "pack_size",
    "dietary_tags",
    "allergens",
    "in_stock",
    "updated_at",
)
PRODUCT_SELECT = f"SELECT {', '.join(_PRODUCT_COLUMNS)} FROM products"
UPSERT_PRODUCT = _upsert_sql("products", _PRODUCT_COLUMNS, ("product_id",))


def product_row(p: Product) -> tuple[Any, ...]:
    return (
        p.product_id,
        p.name,
        p.department,
        p.aisle,
        p.brand,
        p.price,
        p.pack_size,
        to_json(p.dietary_tags, "dietary_tags"),
        to_json(p.allergens, "allergens"),
        int(p.in_stock),
        optional_micros(p.updated_at, "updated_at"),
    )


def product_from_row(row: Sequence[Any]) -> Product:
    return Product(
        product_id=row[0],
        name=row[1],
        department=row[2],
        aisle=row[3],
        brand=row[4],
        price=row[5],
        pack_size=row[6],
        dietary_tags=tuple(json.loads(row[7])),
        allergens=tuple(json.loads(row[8])),
        in_stock=bool(row[9]),
        updated_at=None if row[10] is None else from_micros(row[10]),
    )


# --- purchases ---------------------------------------------------------------------------------

_PURCHASE_KEY = ("customer_id", "purchased_at", "order_id", "product_id")
# Selected in `Purchase` field order.
PURCHASE_SELECT = (
    "SELECT customer_id, order_id, product_id, quantity, unit_price, purchased_at, store_id FROM purchase_history"
)
UPSERT_PURCHASE = _upsert_sql("purchase_history", (*_PURCHASE_KEY, "quantity", "unit_price", "store_id"), _PURCHASE_KEY)
# The bulk path: rows straight from `PurchaseColumns` (its column order, epoch seconds),
# converted by SQLite rather than by a Python loop over millions of lines.
UPSERT_PURCHASE_COLUMNS = _upsert_sql(
    "purchase_history",
    ("customer_id", "order_id", "product_id", "quantity", "unit_price", "purchased_at", "store_id"),
    _PURCHASE_KEY,
    values="?, ?, ?, ?, ?, ? * 1000000, ?",
)


def purchase_row(p: Purchase) -> tuple[Any, ...]:
    """In `UPSERT_PURCHASE` column order."""
    return (
        p.customer_id,
        micros(p.purchased_at, "purchased_at"),
        p.order_id,
        p.product_id,
        p.quantity,
        p.unit_price,
        p.store_id,
    )


def purchase_from_row(row: Sequence[Any]) -> Purchase:
    """From a `PURCHASE_SELECT` row."""
    return Purchase(row[0], row[1], row[2], row[3], row[4], from_micros(row[5]), row[6])


# --- interactions ------------------------------------------------------------------------------

_INTERACTION_COLUMNS = ("customer_id", "occurred_at", "interaction_id", "kind", "product_id", "query", "quantity")
INTERACTION_SELECT = f"SELECT {', '.join(_INTERACTION_COLUMNS)} FROM product_interactions"
UPSERT_INTERACTION = _upsert_sql("product_interactions", _INTERACTION_COLUMNS, _INTERACTION_COLUMNS[:3])


def interaction_row(i: Interaction) -> tuple[Any, ...]:
    return (
        i.customer_id,
        micros(i.occurred_at, "occurred_at"),
        i.interaction_id,
        InteractionKind(i.kind).value,
        i.product_id,
        i.query,
        i.quantity,
    )


def interaction_from_row(row: Sequence[Any]) -> Interaction:
    return Interaction(
        customer_id=row[0],
        occurred_at=from_micros(row[1]),
        interaction_id=row[2],
        kind=InteractionKind(row[3]),
        product_id=row[4],
        query=row[5],
        quantity=row[6],
    )


# --- served recommendations and feedback ---------------------------------------------------------

_RECOMMENDATION_COLUMNS = (
    "recommendation_id",
    "customer_id",
    "generated_at",
    "strategy",
    "model_version",
    "items",
    "experiment_id",
    "arm_id",
    "other_assignments",
)
RECOMMENDATION_SELECT = f"SELECT {', '.join(_RECOMMENDATION_COLUMNS)} FROM recommendations"
INSERT_NEW_RECOMMENDATION = _insert_new_sql("recommendations", _RECOMMENDATION_COLUMNS, "recommendation_id")


def recommendation_row(served: ServedRecommendation) -> tuple[Any, ...]:
    items = [
        {"product_id": i.product_id, "score": i.score, "confidence": i.confidence, "reasons": list(i.reasons)}
        for i in served.items
    ]
    return (
        served.recommendation_id,
        served.customer_id,
        micros(served.generated_at, "generated_at"),
        served.strategy,
        served.model_version,
        # Built from checked strings and floats only; orjson because every served list passes here.
        orjson.dumps(items).decode(),
        served.experiment_id,
        served.arm_id,
        orjson.dumps(dict(served.other_assignments)).decode() if served.other_assignments else "",
    )


def recommendation_from_row(row: Sequence[Any]) -> ServedRecommendation:
    return ServedRecommendation(
        recommendation_id=row[0],
        customer_id=row[1],
        generated_at=from_micros(row[2]),
        strategy=row[3],
        model_version=row[4],
        items=tuple(
            RecommendedItem(i["product_id"], i["score"], i["confidence"], tuple(i["reasons"]))
            for i in orjson.loads(row[5])
        ),
        experiment_id=row[6],
        arm_id=row[7],
        other_assignments=tuple(orjson.loads(row[8]).items()) if row[8] else (),
    )


_FEEDBACK_COLUMNS = ("recommendation_id", "occurred_at", "product_id", "event", "customer_id")
FEEDBACK_SELECT = f"SELECT {', '.join(_FEEDBACK_COLUMNS)} FROM feedback"
UPSERT_FEEDBACK = _upsert_sql("feedback", _FEEDBACK_COLUMNS, _FEEDBACK_COLUMNS[:4])


def feedback_row(f: Feedback) -> tuple[Any, ...]:
    return (
        f.recommendation_id,
        micros(f.occurred_at, "occurred_at"),
        f.product_id,
        FeedbackEvent(f.event).value,
        f.customer_id,
    )


def feedback_from_row(row: Sequence[Any]) -> Feedback:
    return Feedback(
        recommendation_id=row[0],
        occurred_at=from_micros(row[1]),
        product_id=row[2],
        event=FeedbackEvent(row[3]),
        customer_id=row[4],
    )


# --- models and documents ----------------------------------------------------------------------

_MODEL_COLUMNS = ("version", "created_at", "artifact_uri", "metrics", "notes", "active")
MODEL_SELECT = f"SELECT {', '.join(_MODEL_COLUMNS)} FROM models"
INSERT_NEW_MODEL = _insert_new_sql("models", _MODEL_COLUMNS, "version")


def model_row(record: ModelRecord) -> tuple[Any, ...]:
    return (
        record.version,
        micros(record.created_at, "created_at"),
        record.artifact_uri,
        to_json(record.metrics, "metrics"),
        record.notes,
        int(record.active),
    )


def model_from_row(row: Sequence[Any]) -> ModelRecord:
    return ModelRecord(
        version=row[0],
        created_at=from_micros(row[1]),
        artifact_uri=row[2],
        metrics=json.loads(row[3]),
        notes=row[4],
        active=bool(row[5]),
    )


UPSERT_DOCUMENT = _upsert_sql(
    "documents", ("customer_id", "kind", "created_at", "body"), ("customer_id", "kind", "created_at")
)
