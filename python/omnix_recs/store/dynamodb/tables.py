"""The store's DynamoDB tables and indexes, named `omnix-ai-<table>-<env>`, and creating them.

The seed's indexes (KEYS_ONLY) are kept for the seed's readers; our reads use the base tables,
which are read consistently and sort by the same attributes. Each index we add answers one
question of the `Store` protocol that a Scan cannot; reads through it are eventually consistent,
as every GSI's are. Every key attribute is a string; timestamps and ids inside sort keys are
encoded by `codec` so that string order is time order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from omnix_recs.errors import FailedPreconditionError, UnavailableError
from omnix_recs.store.dynamodb.client import DynamoClient, error_code
from omnix_recs.store.dynamodb.codec import EXPIRES_AT, REFUSED_ATTRIBUTE

TABLE_PREFIX = "omnix-ai-"
REFUSALS_INDEX = "refusals-customerId-index"  # the customers who refused personalisation


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
    # The number attribute (epoch seconds) DynamoDB's TTL deletes items by; None = no TTL.
    ttl_attribute: str | None = None

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
        # Listings in id order, which a Scan (hash order) cannot give: rows carry a constant
        # `listing` attribute. One partition per listing, so its writes share one partition's limit.
        IndexSpec("listing-customerId-index", "listing", "customerId", "KEYS_ONLY"),
        # Sparse: only refusing profiles carry its key, so training reads the few refusers
        # instead of scanning every profile. Trusted only once the models table says every
        # refusing profile carries the key (DynamoStore.refusals_indexed).
        IndexSpec(REFUSALS_INDEX, REFUSED_ATTRIBUTE, "customerId", "KEYS_ONLY"),
    ),
)
PURCHASES = TableSpec(
    "purchase-history",
    "customerId",
    "sk",
    (
        IndexSpec("customerId-purchaseDate-index", "customerId", "purchaseDate", "KEYS_ONLY"),
        IndexSpec("productId-purchaseDate-index", "productId", "purchaseDate", "KEYS_ONLY"),
        # Sparse: only each purchaser's "#history" row carries `listing`, so `scan_purchases`
        # walks histories in customer order without holding the table in memory.
        IndexSpec("listing-customerId-index", "listing", "customerId", "KEYS_ONLY"),
    ),
)
# The lines `add_purchases` wrote, per customer, shard and sequence, for copies of the history
# to replay, and the shards' counters (journal.py); no index: replay scans it, erasure queries
# the customer's partition.
PURCHASE_JOURNAL = TableSpec("purchase-journal", "customerId", "sk")
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
    (
        IndexSpec("customerId-generatedAt-index", "customerId", "generatedAt", "KEYS_ONLY"),
        # Sparse: only lists served in an experiment carry `experimentId` (its results read them).
        IndexSpec("experimentId-generatedAt-index", "experimentId", "generatedAt", "ALL"),
    ),
    # Served lists expire after the retention (OMNIX_SERVED_LIST_RETENTION_DAYS), with their
    # id rows and feedback; items written while lists were kept forever carry no expiry.
    ttl_attribute=EXPIRES_AT,
)
# Written in the same transaction as the list, with attribute_not_exists: that makes
# recommendation ids unique (an index cannot refuse a duplicate) and readable consistently.
RECOMMENDATION_IDS = TableSpec("recommendation-ids", "recommendationId", ttl_attribute=EXPIRES_AT)
PRODUCTS = TableSpec(
    "products",
    "productId",
    indexes=(
        IndexSpec("category-index", "department", "productId", "ALL"),  # one department, no filter
        IndexSpec("listing-productId-index", "listing", "productId", "ALL"),
    ),
)
FEEDBACK = TableSpec(
    "feedback",
    "recommendationId",
    "sk",
    (IndexSpec("customerId-occurredAt-index", "customerId", "occurredAt", "KEYS_ONLY"),),
    ttl_attribute=EXPIRES_AT,
)
MODELS = TableSpec("models", "version")
EXPERIMENTS = TableSpec("experiments", "experimentId")
DOCUMENTS = TableSpec(
    "documents",
    "customerId",
    "sk",
    (IndexSpec("kind-createdAt-index", "kind", "createdAt", "ALL"),),
)
TABLES: tuple[TableSpec, ...] = (
    CUSTOMERS,
    PURCHASES,
    PURCHASE_JOURNAL,
    INTERACTIONS,
    RECOMMENDATIONS,
    RECOMMENDATION_IDS,
    PRODUCTS,
    FEEDBACK,
    MODELS,
    DOCUMENTS,
    EXPERIMENTS,
)


def table_name(spec: TableSpec, env: str) -> str:
    return f"{TABLE_PREFIX}{spec.table}-{env}"


def without_duplicates(spec: TableSpec, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items with distinct keys, the last one winning (as if written one after another)."""
    by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for item in items:
        key = spec.key_tuple(item)
        by_key.pop(key, None)
        by_key[key] = item
    return list(by_key.values())


# --- creating them ---------------------------------------------------------------------------


def create_missing_tables(db: DynamoClient, env: str, wait_s: float) -> list[str]:
    """Create the missing tables and indexes of `env`, turn on TTL where a table expires items,
    and wait until all are ACTIVE (idempotent).

    Returns what was created ("table", "table/index" or "table/ttl:attribute"). An existing
    table with another key schema is a `FailedPreconditionError`: it is not ours to change.
    """
    created: list[str] = []
    for spec in TABLES:
        name = table_name(spec, env)
        # Create first and describe on "already exists": one call per table when none exist.
        try:
            table = db.call("create_table", **table_definition(spec, name))["TableDescription"]
            created.append(name)
        except ClientError as error:
            if error_code(error) != "ResourceInUseException":
                raise
            table = db.call("describe_table", TableName=name)["Table"]
        if not _is_active(table):
            table = _wait_active(db, name, wait_s)
        if table["KeySchema"] != _key_schema(spec.hash_key, spec.range_key):
            raise FailedPreconditionError(f"table {name} exists with another key schema: {table['KeySchema']}")
        existing = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
        for index in spec.indexes:
            if index.name in existing:
                continue
            # One new index per UpdateTable, each built before the next (DynamoDB's rule).
            keys = [a for a in (index.hash_key, index.range_key) if a]
            db.call(
                "update_table",
                TableName=name,
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in keys],
                GlobalSecondaryIndexUpdates=[{"Create": _index_definition(index)}],
            )
            created.append(f"{name}/{index.name}")
            _wait_active(db, name, wait_s)
        # A table created here is listed already; an older one reports the TTL it gained.
        if spec.ttl_attribute is not None and _enable_ttl(db, name, spec.ttl_attribute) and name not in created:
            created.append(f"{name}/ttl:{spec.ttl_attribute}")
    return created


def _enable_ttl(db: DynamoClient, name: str, attribute: str) -> bool:
    """Turn on TTL by `attribute` unless it is on (or turning on); True when this call did.
    TTL on another attribute is a `FailedPreconditionError`: it is not ours to change."""
    description = db.call("describe_time_to_live", TableName=name)["TimeToLiveDescription"]
    status = description.get("TimeToLiveStatus", "DISABLED")
    if status in ("ENABLED", "ENABLING"):
        if description.get("AttributeName") != attribute:
            raise FailedPreconditionError(
                f"table {name} expires items by {description.get('AttributeName')!r}, not {attribute!r}"
            )
        return False
    try:
        db.call(
            "update_time_to_live",
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )
    except ClientError as error:
        # Another process enabling it at the same moment; AWS refuses a second enable this way.
        if error_code(error) == "ValidationException" and "already enabled" in str(error):
            return False
        raise
    return True


def _wait_active(db: DynamoClient, name: str, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        table: dict[str, Any] = db.call("describe_table", TableName=name)["Table"]
        if _is_active(table):
            return table
        if time.monotonic() > deadline:
            raise UnavailableError(f"DynamoDB table {name} is not ACTIVE after {wait_s:.0f} s")
        time.sleep(1.0)


def _is_active(table: Mapping[str, Any]) -> bool:
    indexes = table.get("GlobalSecondaryIndexes", [])
    return table["TableStatus"] == "ACTIVE" and all(i.get("IndexStatus") == "ACTIVE" for i in indexes)


def table_definition(spec: TableSpec, name: str) -> dict[str, Any]:
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
