"""`DynamoStore`: the `Store` protocol's methods as DynamoDB requests.

The tables (`tables`), item and key encodings (`codec`), retries and batches (`client`) and
large writes (`imports`) have their own modules. Writes small enough for one transaction are
atomic; larger ones go through an import session. Erasure deletes derived rows before the
profile, so an erasure cut short is finished by calling it again.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from omnix_recs import progress
from omnix_recs.domain.models import (
    Customer,
    Feedback,
    Interaction,
    Page,
    Product,
    ProductFilter,
    Purchase,
    ServedRecommendation,
)
from omnix_recs.domain.purchases import OrderLines, PurchaseColumns
from omnix_recs.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from omnix_recs.store.base import (
    CustomerErasure,
    ExperimentRecord,
    ImportFollower,
    ModelRecord,
    PurchaseWatermark,
    refuse_pruned_period,
    served_lists_kept_since,
)
from omnix_recs.store.dynamodb.client import (
    TRANSACTION_MAX,
    DynamoClient,
    RetryPolicy,
    client_from_url,
    condition_failed,
    prefetched,
)
from omnix_recs.store.dynamodb.codec import (
    ACTIVE_MODEL_POINTER,
    CATALOG_LISTING,
    CATALOG_VERSION_ROW,
    CUSTOMERS_LISTING,
    EXPIRES_AT,
    FIRST_PURCHASE_KEY,
    HISTORY_HEADER,
    ORDER_LINE_ATTRIBUTES,
    PURCHASE_WATERMARK_ROW,
    PURCHASERS_LISTING,
    REFUSALS_INDEXED_ROW,
    REFUSED,
    REFUSED_ATTRIBUTE,
    RESERVED_MODEL_ROWS,
    Expression,
    append_purchase,
    customer_from_item,
    customer_item,
    decode_page_token,
    document_from_item,
    experiment_from_item,
    experiment_item,
    expired,
    feedback_from_item,
    feedback_item,
    interaction_from_item,
    interaction_item,
    key_part,
    model_from_item,
    model_item,
    non_empty_id,
    order_lines_from_items,
    product_from_item,
    product_item,
    purchase_from_item,
    purchase_item,
    recommendation_from_item,
    recommendation_item,
    timestamp,
    to_wire,
    wire_string,
    with_expiry,
    with_history_headers,
)
from omnix_recs.store.dynamodb.imports import DynamoImportSession
from omnix_recs.store.dynamodb.journal import (
    COUNTER_ATTRIBUTE,
    JOURNAL_SHARDS,
    LINES_ATTRIBUTE,
    SEQUENCE_ATTRIBUTE,
    SHARD_ATTRIBUTE,
    SHARD_SEQUENCES,
    columns_of,
    counter_key,
    journal_item,
    journal_parts,
    positions,
)
from omnix_recs.store.dynamodb.tables import (
    CUSTOMERS,
    DOCUMENTS,
    EXPERIMENTS,
    FEEDBACK,
    INTERACTIONS,
    MODELS,
    PRODUCTS,
    PURCHASE_JOURNAL,
    PURCHASES,
    RECOMMENDATION_IDS,
    RECOMMENDATIONS,
    REFUSALS_INDEX,
    TABLES,
    TableSpec,
    create_missing_tables,
    table_name,
    without_duplicates,
)

MAX_DOCUMENT_BYTES = 350_000  # DynamoDB items stop at 400 KB; keys and names need the rest
# Tries of a journaled write whose sequence another writer took first (each re-reads it).
JOURNAL_ATTEMPTS = 20
# A profile whose customer refused personalisation, with its expression's names and values.
REFUSING_PROFILE = "#consent.#personalization = :refused"
REFUSING_NAMES = {"#consent": "consent", "#personalization": "personalization"}
REFUSING_VALUES = {":refused": {"BOOL": False}}


class DynamoStore:
    """The `Store` protocol over DynamoDB (see `tables` for the tables, `imports` for large writes)."""

    def __init__(
        self,
        client: Any,
        *,
        env: str = "dev",
        retry: RetryPolicy = RetryPolicy(),
        read_ahead: int = 8,
        import_writers: int = 4,
        served_list_retention: timedelta | None = None,
    ) -> None:
        if not env or not all(ch.isalnum() or ch in "-_." for ch in env):
            raise InvalidArgumentError("OMNIX_STORE", f"env must be letters, digits, '-', '_' or '.', got {env!r}")
        self.env = env
        self.db = DynamoClient(client, retry)
        self.table_names = {spec.table: table_name(spec, env) for spec in TABLES}
        self._read_ahead = read_ahead  # parallel requests of a whole-table read
        self._import_writers = import_writers
        # Journaled writes: each thread of the process holds a shard of its own while it writes,
        # so they never race each other for a sequence (only other processes may), and the one
        # this process wrote last in a shard is usually the current one: no read first.
        self._shard_locks = [threading.Lock() for _ in range(JOURNAL_SHARDS)]
        self._shard_sequences: list[int | None] = [None] * JOURNAL_SHARDS
        self._first_shard = random.randrange(JOURNAL_SHARDS)
        # `import_session()` gives resumable sessions (imports.py): `omnix import --resumable`.
        self.resumable_imports = False
        self.url: str | None = None  # what opened it: how other processes of an import open it
        self.served_list_retention = served_list_retention

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        session: boto3.session.Session | None = None,
        retry: RetryPolicy = RetryPolicy(),
        served_list_retention: timedelta | None = None,
    ) -> DynamoStore:
        """`dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:8000&env=dev` (all optional).

        `session`: a boto3 session to make the client from; callers opening many stores
        (tests, tools) pass one so that botocore loads its service models once.
        """
        client, env = client_from_url(url, session)
        store = cls(client, env=env, retry=retry, served_list_retention=served_list_retention)
        store.url = url
        return store

    def _name(self, spec: TableSpec) -> str:
        return self.table_names[spec.table]

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self.db.client.close()

    def create_tables(self, wait_s: float = 300.0) -> list[str]:
        """Create the missing tables and indexes and wait until all are ACTIVE (idempotent).

        Returns what was created ("table", "table/index" or "table/ttl:attribute"). An existing
        table with another key schema is a `FailedPreconditionError`: it is not ours to change.
        """
        created = create_missing_tables(self.db, self.env, wait_s)
        if self._name(CUSTOMERS) in created:
            # Every profile of a table made here is written with the refusals' index key.
            self._mark_refusals_indexed()
        return created

    # --- customers -----------------------------------------------------------------------

    def create_customer(self, customer: Customer) -> None:
        self._put_customer(customer, "attribute_not_exists(customerId)", AlreadyExistsError)

    def get_customer(self, customer_id: str) -> Customer:
        item = self._get(CUSTOMERS, {"customerId": wire_string(customer_id)}) if customer_id else None
        if item is None:
            raise NotFoundError("customer", customer_id)
        return customer_from_item(item)

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        keys = [{"customerId": wire_string(cid)} for cid in dict.fromkeys(customer_ids) if cid]
        items = self.db.batch_get(self._name(CUSTOMERS), keys, ConsistentRead=True)
        return {customer.customer_id: customer for customer in map(customer_from_item, items)}

    def put_customer(self, customer: Customer, *, replaces: datetime | None = None) -> None:
        if replaces is None:
            self._put_customer(customer, "attribute_exists(customerId)", NotFoundError)
            return
        expected = timestamp(replaces, "replaces")
        try:
            self._put_customer(customer, "updatedAt = :expected", ConflictError, {":expected": wire_string(expected)})
        except ConflictError:
            # The condition fails for a missing profile too: say which of the two it was.
            self.get_customer(customer.customer_id)  # NotFoundError when gone
            raise

    def _put_customer(
        self,
        customer: Customer,
        condition: str,
        refusal: type[AlreadyExistsError] | type[NotFoundError] | type[ConflictError],
        values: dict[str, Any] | None = None,
    ) -> None:
        """Write the profile if `condition` holds of the stored one, else raise `refusal`."""
        try:
            self.db.call(
                "put_item",
                TableName=self._name(CUSTOMERS),
                Item=customer_item(customer),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if condition_failed(error):
                raise refusal("customer", customer.customer_id) from None
            raise

    def list_customer_ids(self, page_size: int, page_token: str = "") -> Page[str]:
        _check_positive(page_size, "page_size")
        expression = Expression()
        items, token = self.db.page(
            "query",
            {
                "TableName": self._name(CUSTOMERS),
                "IndexName": "listing-customerId-index",
                "KeyConditionExpression": expression.equals("listing", CUSTOMERS_LISTING),
                **expression.parameters(),
            },
            page_size,
            decode_page_token(page_token, {"listing": CUSTOMERS_LISTING, "customerId": None}),
            ("listing", "customerId"),
        )
        return Page(tuple(item["customerId"]["S"] for item in items), token)

    def customers_without_personalization(self) -> frozenset[str]:
        if self.refusals_indexed():
            expression = Expression()
            refusers = self.db.items(
                "query",
                TableName=self._name(CUSTOMERS),
                IndexName=REFUSALS_INDEX,
                KeyConditionExpression=expression.equals(REFUSED_ATTRIBUTE, REFUSED),
                **expression.parameters(),
            )
            return frozenset(item["customerId"]["S"] for item in refusers)
        # Profiles may predate the index (`index_refusals` has not run): read every one.
        scan = self.db.items("scan", **self._refusing_profiles_scan(unmarked_only=False))
        return frozenset(item["customerId"]["S"] for item in scan)

    def refusals_indexed(self) -> bool:
        """True when every refusing profile carries the refusals' index key: the profile table
        was made with the index (`create_tables`, a bulk load), or `index_refusals` has run."""
        return self._get(MODELS, {"version": wire_string(REFUSALS_INDEXED_ROW)}) is not None

    def index_refusals(self) -> int:
        """Give the refusals' index key to every refusing profile written without it (by a version
        before the index), then mark the index complete so that training reads refusers by it
        instead of scanning every profile. Returns how many profiles were given the key.

        Run it once no process of an older version writes profiles: a profile such a process
        writes afterwards would go without the key, and training would learn from a refuser."""
        table = self.db.call("describe_table", TableName=self._name(CUSTOMERS))["Table"]
        if not any(i["IndexName"] == REFUSALS_INDEX for i in table.get("GlobalSecondaryIndexes", [])):
            # Marked complete without it, every training would fail on the missing index.
            raise FailedPreconditionError(
                f"{table['TableName']} has no {REFUSALS_INDEX}: run `omnix init-tables` first"
            )
        marked = 0
        request = self._refusing_profiles_scan(unmarked_only=True)
        with progress.track("index the refusing profiles", unit="profiles") as task:
            while True:
                response = self.db.call("scan", **request)
                for item in response.get("Items", []):
                    marked += self._mark_refusing_profile(item["customerId"])
                task.advance(response.get("ScannedCount", 0))
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        self._mark_refusals_indexed()
        return marked

    def _refusing_profiles_scan(self, *, unmarked_only: bool) -> dict[str, Any]:
        """A Scan of the refusing profiles' ids; `unmarked_only`: of those without the index key.
        (DynamoDB refuses a name the expression does not use, so "#refused" only then.)"""
        condition, names = REFUSING_PROFILE, REFUSING_NAMES
        if unmarked_only:
            condition, names = (
                f"{condition} AND attribute_not_exists(#refused)",
                {**names, "#refused": REFUSED_ATTRIBUTE},
            )
        return {
            "TableName": self._name(CUSTOMERS),
            "ProjectionExpression": "customerId",
            "FilterExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": REFUSING_VALUES,
        }

    def _mark_refusing_profile(self, key: dict[str, Any]) -> int:
        """Set the index key on the profile `key` if it still refuses: 1 if set, 0 if consent
        was given since or the profile erased (the condition also keeps an erased one erased)."""
        try:
            self.db.call(
                "update_item",
                TableName=self._name(CUSTOMERS),
                Key={"customerId": key},
                UpdateExpression="SET #refused = :marker",
                ConditionExpression=REFUSING_PROFILE,
                ExpressionAttributeNames={**REFUSING_NAMES, "#refused": REFUSED_ATTRIBUTE},
                ExpressionAttributeValues={**REFUSING_VALUES, ":marker": wire_string(REFUSED)},
            )
            return 1
        except ClientError as error:
            if condition_failed(error):
                return 0
            raise

    def _mark_refusals_indexed(self) -> None:
        self.db.call(
            "put_item",
            TableName=self._name(MODELS),
            Item={
                "version": wire_string(REFUSALS_INDEXED_ROW),
                "indexedAt": wire_string(timestamp(datetime.now(UTC), "now")),
            },
        )

    def delete_customer(self, customer_id: str) -> CustomerErasure:
        """Erase everywhere; derived rows first, the profile last, so that an erasure cut short
        is finished by calling it again (DynamoDB cannot delete unbounded histories at once)."""
        if not customer_id:
            raise NotFoundError("customer", customer_id)
        profile = self._get(CUSTOMERS, {"customerId": wire_string(customer_id)})
        purchases = self._query_keys(PURCHASES, "customerId", customer_id)
        interactions = self._query_keys(INTERACTIONS, "customerId", customer_id)
        served = self._query_keys(RECOMMENDATIONS, "customerId", customer_id, also=("recommendationId",))
        served_ids = [item["recommendationId"]["S"] for item in served]
        # Feedback is the customer's own, or on a list served to them (as in the SQLite store).
        feedback = without_duplicates(
            FEEDBACK,
            [
                *self._query_keys(FEEDBACK, "customerId", customer_id, index="customerId-occurredAt-index"),
                *(key for rid in served_ids for key in self._query_keys(FEEDBACK, "recommendationId", rid)),
            ],
        )
        documents = self._query_keys(DOCUMENTS, "customerId", customer_id)
        journaled = [  # never a shard's counter row, whatever the id
            row
            for row in self._query_keys(PURCHASE_JOURNAL, "customerId", customer_id)
            if row["sk"] != counter_key(0)["sk"]
        ]
        doomed: list[tuple[TableSpec, list[dict[str, Any]]]] = [
            (PURCHASE_JOURNAL, journaled),  # before the lines: a copy must never replay them
            (PURCHASES, purchases),
            (INTERACTIONS, interactions),
            (FEEDBACK, feedback),
            (RECOMMENDATION_IDS, [{"recommendationId": wire_string(rid)} for rid in served_ids]),
            (RECOMMENDATIONS, served),
            (DOCUMENTS, documents),
            (CUSTOMERS, [profile] if profile else []),  # last
        ]
        if not any(rows for _, rows in doomed):
            raise NotFoundError("customer", customer_id)
        try:
            for spec, rows in doomed:
                self.db.batch_write([(self._name(spec), {"DeleteRequest": {"Key": spec.key_of(row)}}) for row in rows])
        finally:
            if purchases or journaled:  # copies of the history holding their lines are stale
                self.bump_purchase_epoch()
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
        expression = Expression()
        parameters: dict[str, Any] = {
            "TableName": self._name(spec),
            "KeyConditionExpression": expression.equals(attribute, value),
            "ProjectionExpression": expression.projection([*spec.key_attributes, *also]),
        }
        return list(self.db.items("query", **parameters, **_read_from(index), **expression.parameters()))

    def _get(self, spec: TableSpec, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.db.call("get_item", TableName=self._name(spec), Key=key, ConsistentRead=True).get("Item")

    def _listing(self, spec: TableSpec, index: str, listing: str) -> Iterator[dict[str, Any]]:
        """Every row of a listing (the rows whose `listing` attribute is `listing`), in id order."""
        expression = Expression()
        return self.db.items(
            "query",
            TableName=self._name(spec),
            IndexName=index,
            KeyConditionExpression=expression.equals("listing", listing),
            **expression.parameters(),
        )

    # --- catalog -------------------------------------------------------------------------

    def upsert_products(self, products: Sequence[Product]) -> int:
        items = without_duplicates(PRODUCTS, [product_item(p) for p in products])
        try:
            self._write_all(PRODUCTS, items)
        finally:  # even a failed write may have changed rows (then undone them): look again
            if items:
                self.bump_catalog_version()
        return len(items)

    def catalog_version(self) -> int:
        row = self._get(MODELS, {"version": wire_string(CATALOG_VERSION_ROW)})
        return 0 if row is None else int(row["catalogVersion"]["N"])

    def bump_catalog_version(self) -> None:
        """After product writes (upserts here, import sessions): one atomic counter update."""
        self.db.call(
            "update_item",
            TableName=self._name(MODELS),
            Key={"version": wire_string(CATALOG_VERSION_ROW)},
            UpdateExpression="ADD catalogVersion :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    def get_product(self, product_id: str) -> Product:
        item = self._get(PRODUCTS, {"productId": wire_string(product_id)}) if product_id else None
        if item is None:
            raise NotFoundError("product", product_id)
        return product_from_item(item)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        keys = [{"productId": wire_string(pid)} for pid in dict.fromkeys(product_ids) if pid]
        items = self.db.batch_get(self._name(PRODUCTS), keys, ConsistentRead=True)
        return {product.product_id: product for product in map(product_from_item, items)}

    def list_products(self, product_filter: ProductFilter, page_size: int, page_token: str = "") -> Page[Product]:
        """By product id: category-index for one department, the catalog listing otherwise;
        the other criteria filter what the index returns."""
        _check_positive(page_size, "page_size")
        f, expression, conditions = product_filter, Expression(), []
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
            decode_page_token(page_token, {index.hash_key: partition, "productId": None}),
            (index.hash_key, "productId"),
            filtered=bool(conditions),
        )
        return Page(tuple(map(product_from_item, items)), token)

    def iter_products(self) -> Iterator[Product]:
        """The catalog in product id order (the catalog listing)."""
        return map(product_from_item, self._listing(PRODUCTS, "listing-productId-index", CATALOG_LISTING))

    # --- purchases -----------------------------------------------------------------------

    def add_purchases(self, purchases: Sequence[Purchase]) -> int:
        """Lines, their customers' "#history" rows and their journal entries (journal.py).

        Up to `TRANSACTION_MAX` items in all (an order of up to 22 lines) are one transaction with
        the journal and its sequence. More are written first, then journaled: a copy read in
        between replays them later, and the copy's dedup drops what its scan already held. A
        failure between the two moves the epoch, so no copy trusts a journal missing lines."""
        lines = without_duplicates(PURCHASES, [purchase_item(p) for p in purchases])
        if not lines:
            return 0
        rows = with_history_headers(lines)
        parts = journal_parts(lines)
        if len(rows) + len(parts) < TRANSACTION_MAX:
            self._journal(parts, [(self._name(PURCHASES), row) for row in rows])
            return len(lines)
        journaled = False
        try:
            self._write_all(PURCHASES, rows)
            for start in range(0, len(parts), TRANSACTION_MAX - 1):
                self._journal(parts[start : start + TRANSACTION_MAX - 1], [])
            journaled = True
        finally:
            if not journaled:
                self.bump_purchase_epoch()
        return len(lines)

    def _journal(self, parts: Sequence[tuple[str, bytes]], puts: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Put `parts` under the next sequence of a shard this thread holds, and `puts` too,
        moving the shard's counter to it, in one transaction; when another process took that
        sequence first, read it again and retry (journal.py)."""
        shard = self._take_shard()
        try:
            for attempt in range(JOURNAL_ATTEMPTS):
                if attempt:
                    time.sleep(self.db.retry.delay_s(min(attempt - 1, 5)))
                current = self._shard_sequences[shard]
                if current is None:
                    current = self._read_shard(shard)
                self._shard_sequences[shard] = None  # known again once this write lands
                if self._journaled(parts, puts, shard, current):
                    self._shard_sequences[shard] = current + 1
                    return
        finally:
            self._shard_locks[shard].release()
        raise UnavailableError(
            f"DynamoDB is unavailable: the purchase sequence kept moving under {JOURNAL_ATTEMPTS} tries"
        )

    def _take_shard(self) -> int:
        """A journal shard no other thread of this process holds, from this process's first one
        (a lone writer keeps one shard, whose sequence it then knows); all taken: wait for one."""
        for offset in range(JOURNAL_SHARDS):
            shard = (self._first_shard + offset) % JOURNAL_SHARDS
            if self._shard_locks[shard].acquire(blocking=False):
                return shard
        shard = random.randrange(JOURNAL_SHARDS)
        self._shard_locks[shard].acquire()
        return shard

    def _read_shard(self, shard: int) -> int:
        row = self._get(PURCHASE_JOURNAL, counter_key(shard)) or {}
        return int(row.get(COUNTER_ATTRIBUTE, {}).get("N", 0))

    def _journaled(
        self, parts: Sequence[tuple[str, bytes]], puts: Sequence[tuple[str, dict[str, Any]]], shard: int, current: int
    ) -> bool:
        """One try of `_journal` from sequence `current` of `shard`; False when it was not that."""
        journal = self._name(PURCHASE_JOURNAL)
        sequence = current + 1
        counter = {
            "TableName": journal,
            "Key": counter_key(shard),
            "UpdateExpression": f"SET {COUNTER_ATTRIBUTE} = :next",
            "ConditionExpression": (
                f"{COUNTER_ATTRIBUTE} = :current"
                if current
                else f"attribute_not_exists({COUNTER_ATTRIBUTE}) OR {COUNTER_ATTRIBUTE} = :current"  # never written
            ),
            "ExpressionAttributeValues": {":next": {"N": str(sequence)}, ":current": {"N": str(current)}},
        }
        numbered: dict[str, int] = {}
        actions: list[dict[str, Any]] = [{"Update": counter}]
        for customer_id, payload in parts:
            part = numbered[customer_id] = numbered.get(customer_id, -1) + 1
            item = journal_item(customer_id, shard, sequence, part, payload)
            actions.append({"Put": {"TableName": journal, "Item": item}})
        actions.extend({"Put": {"TableName": table, "Item": item}} for table, item in puts)
        try:
            # The token makes a retried call (after a lost response) a no-op, not a second write.
            self.db.call("transact_write_items", TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))
            return True
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False

    def purchase_watermark(self) -> PurchaseWatermark:
        """The epoch (the models table's `#purchases` row), then every journal shard's counter:
        each read consistently, so every entry a shard counts is there to replay."""
        row = self._get(MODELS, {"version": wire_string(PURCHASE_WATERMARK_ROW)}) or {}
        counters = self.db.batch_get(
            self._name(PURCHASE_JOURNAL), [counter_key(k) for k in range(JOURNAL_SHARDS)], ConsistentRead=True
        )
        shards = positions(counters)
        return PurchaseWatermark(
            epoch=int(row.get("purchaseEpoch", {}).get("N", 0)), sequence=sum(shards), shards=shards
        )

    def purchases_appended_since(
        self, watermark: PurchaseWatermark
    ) -> tuple[PurchaseColumns, PurchaseWatermark] | None:
        """The journal's entries past `watermark` in each shard, up to the current position, by a
        consistent parallel Scan of the journal; the same Scan finds what this trims (each
        shard's entries older than its newest `SHARD_SEQUENCES`), so the table is read once."""
        current = self.purchase_watermark()
        if current.epoch != watermark.epoch or len(watermark.shards) != JOURNAL_SHARDS:
            return None  # another epoch, or a copy from before the shards
        behind = [now - then for now, then in zip(current.shards, watermark.shards)]
        # Replayed only while a fifth short of what a trim keeps: another process's trim, made
        # from its own later position, then cannot delete entries this replay is still reading
        # (unless a fifth of the journal is written to one shard during it).
        replayable = SHARD_SEQUENCES - SHARD_SEQUENCES // 5
        if not all(0 <= writes <= replayable for writes in behind):
            return None
        if not any(behind):
            return PurchaseColumns([], [], [], [], [], []), current
        expression = Expression()
        shard, sequence = expression.name(SHARD_ATTRIBUTE), expression.name(SEQUENCE_ATTRIBUTE)
        # Not beyond `current`: entries written since belong to the next replay.
        wanted = [
            f"({shard} = {expression.value(k)} AND {sequence} > {expression.value(then)}"
            f" AND {sequence} <= {expression.value(now)})"
            for k, (then, now) in enumerate(zip(watermark.shards, current.shards))
            if now > then
        ]
        trimmed = self._trimmed_condition(expression, shard, sequence, current)
        responses = self.db.parallel_scan(
            self._read_ahead,
            TableName=self._name(PURCHASE_JOURNAL),
            FilterExpression=" OR ".join(wanted + ([f"({trimmed})"] if trimmed else [])),
            ConsistentRead=True,
            **expression.parameters(),
        )
        # Told apart by sequence (a replayed entry is at most four fifths of the kept writes
        # behind its shard's position, a trimmed one more than all of them); of a trimmed one
        # only the key is kept, so a long-untrimmed journal costs no more memory than its keys.
        journal = self._name(PURCHASE_JOURNAL)
        replayed: list[dict[str, Any]] = []
        doomed: list[tuple[str, dict[str, Any]]] = []
        for response in responses:
            for item in response["Items"]:
                if self._trimmed(item, current):
                    doomed.append((journal, {"DeleteRequest": {"Key": PURCHASE_JOURNAL.key_of(item)}}))
                else:
                    replayed.append(item)
        lines = columns_of(replayed)
        self.db.batch_write(doomed)
        return lines, current

    @staticmethod
    def _trimmed_condition(expression: Expression, shard: str, sequence: str, current: PurchaseWatermark) -> str | None:
        """The journal entries no copy may replay any more once the shards are at `current`:
        each shard's older than its newest `SHARD_SEQUENCES`, and those of the single sequence
        from before the shards (None while no shard has written that many). `shard` and
        `sequence` are `expression`'s names of those attributes (a name left unused is refused)."""
        old = [
            f"({shard} = {expression.value(k)} AND {sequence} <= {expression.value(now - SHARD_SEQUENCES)})"
            for k, now in enumerate(current.shards)
            if now > SHARD_SEQUENCES
        ]
        if not old:
            return None
        return (
            f"attribute_exists({expression.name(LINES_ATTRIBUTE)})"  # not the counter rows
            f" AND (attribute_not_exists({shard}) OR {' OR '.join(old)})"
        )

    @staticmethod
    def _trimmed(item: Mapping[str, Any], current: PurchaseWatermark) -> bool:
        """Whether `_trimmed_condition` holds for a journal entry the replay's Scan returned."""
        if SHARD_ATTRIBUTE not in item:
            return True
        return int(item[SEQUENCE_ATTRIBUTE]["N"]) <= current.shards[int(item[SHARD_ATTRIBUTE]["N"])] - SHARD_SEQUENCES

    def request_purchase_export(self, bucket: str, prefix: str) -> tuple[str, PurchaseWatermark]:
        """Ask DynamoDB to export the purchase table to `s3://bucket/prefix` (DYNAMODB_JSON;
        the table needs point-in-time recovery). Returns the export's ARN and the watermark
        read just before: the watermark of a snapshot built from the export (export.py)."""
        watermark = self.purchase_watermark()  # first: the export holds at least what it counts
        table = self.db.call("describe_table", TableName=self._name(PURCHASES))["Table"]
        answer = self.db.call(
            "export_table_to_point_in_time",
            TableArn=table["TableArn"],
            S3Bucket=bucket,
            S3Prefix=prefix,
            ExportFormat="DYNAMODB_JSON",
            ClientToken=str(uuid.uuid4()),
        )
        return str(answer["ExportDescription"]["ExportArn"]), watermark

    def bump_purchase_epoch(self) -> int:
        """After writes the journal does not hold (imports, erasures): one atomic counter update.
        Returns the epoch it made."""
        row = self.db.call(
            "update_item",
            TableName=self._name(MODELS),
            Key={"version": wire_string(PURCHASE_WATERMARK_ROW)},
            UpdateExpression="ADD purchaseEpoch :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(row["Attributes"]["purchaseEpoch"]["N"])

    def holds_purchase_lines(self) -> bool:
        """Whether the purchase table holds any row: one consistent Scan of one item."""
        response = self.db.call("scan", TableName=self._name(PURCHASES), Limit=1, ConsistentRead=True)
        return bool(response.get("Items")) or "LastEvaluatedKey" in response

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
            decode_page_token(page_token, {"customerId": customer_id, "sk": None}),
            PURCHASES.key_attributes,
        )
        return Page(tuple(map(purchase_from_item, items)), token)

    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]:
        items = self.db.items("query", **self._history_query(customer_id, end=before))
        return [purchase_from_item(item) for item in items]

    def order_lines_of(self, customer_id: str, before: datetime | None = None) -> OrderLines:
        if before is not None:
            timestamp(before, "before")  # a naive moment is refused naming this argument, not "end"
        query = self._history_query(customer_id, end=before, attributes=ORDER_LINE_ATTRIBUTES)
        return order_lines_from_items(list(self.db.items("query", **query)))

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
        low = FIRST_PURCHASE_KEY if start is None else timestamp(start, "start")
        expression = Expression()
        condition = f"{expression.equals('customerId', customer_id)} AND "
        if end is None:
            condition += f"{expression.name('sk')} >= {expression.value(low)}"
        else:
            high = max(low, timestamp(end, "end"))  # an end before the start: an empty range
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
        fields = ("customerId", "orderId", "productId", "quantity", "unitPrice", "purchaseDate", "storeId")

        def history(customer_id: str) -> list[dict[str, Any]]:
            return list(self.db.items("query", **self._history_query(customer_id, attributes=fields)))

        columns = _new_columns()
        with ThreadPoolExecutor(self._read_ahead, thread_name_prefix="omnix-dynamo-history") as pool:
            for lines in prefetched(pool, history, self._purchasers(), self._read_ahead * 2):
                for item in lines:
                    append_purchase(columns, item)
                    if len(columns) == batch_rows:
                        yield columns
                        columns = _new_columns()
        if len(columns):
            yield columns

    def purchases_between(self, start: datetime, end: datetime) -> Iterator[Purchase]:
        """Each catalog product's purchases of the period through productId-purchaseDate-index
        (keys only), `read_ahead` products at a time, then the lines themselves by BatchGetItem."""
        low, high = timestamp(start, "start"), timestamp(end, "end")
        return self._purchases_between(low, high)

    def _purchases_between(self, low: str, high: str) -> Iterator[Purchase]:
        def keys_of(product_id: str) -> list[dict[str, Any]]:
            expression = Expression()
            condition = (
                f"{expression.equals('productId', product_id)} AND "
                f"{expression.name('purchaseDate')} BETWEEN {expression.value(low)} AND {expression.value(high)}"
            )
            items = self.db.items(
                "query",
                TableName=self._name(PURCHASES),
                IndexName="productId-purchaseDate-index",
                KeyConditionExpression=condition,
                **expression.parameters(),
            )
            # BETWEEN includes `high`; the period does not.
            keys = [PURCHASES.key_of(item) for item in items if item["purchaseDate"]["S"] < high]
            return self.db.batch_get(self._name(PURCHASES), keys) if keys else []

        products = (p.product_id for p in self.iter_products())
        with ThreadPoolExecutor(self._read_ahead, thread_name_prefix="omnix-dynamo-period") as pool:
            for items in prefetched(pool, keys_of, products, self._read_ahead * 2):
                yield from map(purchase_from_item, items)

    def _purchasers(self) -> Iterator[str]:
        """Every customer with purchases, in id order."""
        items = self._listing(PURCHASES, "listing-customerId-index", PURCHASERS_LISTING)
        return (item["customerId"]["S"] for item in items)

    def scan_purchases_unordered(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        """Every order line by a parallel Scan (`read_ahead` segments, consistent reads): the
        whole table at the rate of several readers, without a Query per customer."""
        _check_positive(batch_rows, "batch_rows")
        return self._scan_purchases_unordered(batch_rows)

    def _scan_purchases_unordered(self, batch_rows: int) -> Iterator[PurchaseColumns]:
        expression = Expression()
        projection = expression.projection(
            ("customerId", "orderId", "productId", "quantity", "unitPrice", "purchaseDate")
        )
        responses = self.db.parallel_scan(
            self._read_ahead,
            TableName=self._name(PURCHASES),
            FilterExpression=f"attribute_not_exists({expression.name('listing')})",  # not "#history" rows
            ProjectionExpression=projection,
            ConsistentRead=True,
            **expression.parameters(),
        )
        columns = _new_columns()
        for response in responses:
            for item in response["Items"]:
                append_purchase(columns, item, with_store=False)  # training reads no store
                if len(columns) == batch_rows:
                    yield columns
                    columns = _new_columns()
        if len(columns):
            yield columns

    def count_purchases(self) -> int:
        """A parallel Scan that counts every row but the customers' "#history" rows."""
        expression = Expression()
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
        self.db.call("put_item", TableName=self._name(INTERACTIONS), Item=interaction_item(interaction))

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        _check_positive(limit, "limit")
        expression = Expression()
        condition = expression.equals("customerId", customer_id)
        if since is not None:
            condition += f" AND {expression.name('sk')} >= {expression.value(timestamp(since, 'since'))}"
        return [interaction_from_item(item) for item in self._newest(INTERACTIONS, condition, expression, limit)]

    def has_interactions(self) -> bool:
        # The table holds events alone: an unfiltered Scan's first page of one item is empty
        # only when the table is.
        response = self.db.call(
            "scan", TableName=self._name(INTERACTIONS), Limit=1, ProjectionExpression="customerId", ConsistentRead=True
        )
        return bool(response.get("Items"))

    def _newest(
        self, spec: TableSpec, condition: str, expression: Expression, limit: int, index: str | None = None
    ) -> list[dict[str, Any]]:
        """The first `limit` rows of a Query in descending sort key order."""
        parameters: dict[str, Any] = {
            "TableName": self._name(spec),
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            **expression.parameters(),
        }
        return self.db.first("query", {**parameters, **_read_from(index)}, limit)

    # --- served recommendations and feedback ---------------------------------------------

    def save_recommendation(self, served: ServedRecommendation) -> None:
        """The list and its id row in one transaction; the id row's condition keeps ids unique."""
        item, pointer = self._served_list_items(served)
        try:
            self.db.transact_puts(
                [
                    (self._name(RECOMMENDATION_IDS), pointer, "attribute_not_exists(recommendationId)"),
                    (self._name(RECOMMENDATIONS), item, None),
                ]
            )
        except ClientError as error:
            if condition_failed(error):
                raise AlreadyExistsError("recommendation", served.recommendation_id) from None
            raise

    def save_recommendations(self, served: Sequence[ServedRecommendation]) -> None:
        """BatchWriteItem (25 rows a call, unprocessed ones retried). Puts cannot be conditional
        in a batch, so a retried batch writes the same rows again, which changes nothing."""
        requests = []
        for item, pointer in map(self._served_list_items, served):
            requests.append((self._name(RECOMMENDATION_IDS), {"PutRequest": {"Item": pointer}}))
            requests.append((self._name(RECOMMENDATIONS), {"PutRequest": {"Item": item}}))
        self.db.batch_write(requests)

    def _served_list_items(self, served: ServedRecommendation) -> tuple[dict[str, Any], dict[str, Any]]:
        """The list's item and its id row, both expiring with the list."""
        item = with_expiry(recommendation_item(served), self._expires_at(served.generated_at))
        keys = ("recommendationId", "customerId", "sk", EXPIRES_AT)
        return item, {name: item[name] for name in keys if name in item}

    def _expires_at(self, moment: datetime) -> int | None:
        """When TTL may delete what `moment` wrote (epoch seconds), or None: kept forever."""
        retention = self.served_list_retention
        return None if retention is None else math.ceil((moment + retention).timestamp())

    def _kept(self, item: Mapping[str, Any], kept_since: str) -> bool:
        """Whether a served list's item is still readable: within this store's retention, and
        not expired by the TTL it was written with (which may have been shorter)."""
        return item["generatedAt"]["S"] >= kept_since and not expired(item, time.time())

    def _served_lists_kept_since(self) -> str:
        kept_since = served_lists_kept_since(self.served_list_retention)
        return "" if kept_since is None else timestamp(kept_since, "now")

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        pointer = None
        if recommendation_id:
            pointer = self._get(RECOMMENDATION_IDS, {"recommendationId": wire_string(recommendation_id)})
        item = None if pointer is None else self._get(RECOMMENDATIONS, RECOMMENDATIONS.key_of(pointer))
        if item is None or not self._kept(item, self._served_lists_kept_since()):
            raise NotFoundError("recommendation", recommendation_id)
        return recommendation_from_item(item)

    def list_recommendations(self, customer_id: str, limit: int = 20) -> list[ServedRecommendation]:
        _check_positive(limit, "limit")
        kept_since = self._served_lists_kept_since()
        expression = Expression()
        # The sort key starts with the serving time: the retention is a key condition, so lists
        # past it (expired, not yet deleted) are not even read.
        condition = expression.equals("customerId", customer_id)
        if kept_since:
            condition += f" AND {expression.name('sk')} >= {expression.value(kept_since)}"
        items = self._newest(RECOMMENDATIONS, condition, expression, limit)
        return [recommendation_from_item(item) for item in items if self._kept(item, kept_since)]

    def prune_served_lists(self, before: datetime, batch_rows: int = 1_000) -> int:
        """Nothing to do: DynamoDB's TTL deletes lists, id rows and feedback by `expiresAt`
        (`create_tables` enables it); reads skip what it has not deleted yet."""
        timestamp(before, "before")
        _check_positive(batch_rows, "batch_rows")
        return 0

    def add_feedback(self, feedback: Feedback) -> None:
        item = with_expiry(feedback_item(feedback), self._expires_at(feedback.occurred_at))
        self.db.call("put_item", TableName=self._name(FEEDBACK), Item=item)

    def list_feedback(self, recommendation_id: str) -> list[Feedback]:
        """Newest first."""
        expression = Expression()
        items = self.db.items(
            "query",
            TableName=self._name(FEEDBACK),
            KeyConditionExpression=expression.equals("recommendationId", recommendation_id),
            ScanIndexForward=False,
            ConsistentRead=True,
            **expression.parameters(),
        )
        return [feedback_from_item(item) for item in items]

    # --- models --------------------------------------------------------------------------

    def save_model(self, record: ModelRecord) -> None:
        """A new version (`AlreadyExistsError` when taken); saved active, it also becomes the
        active one, in the same transaction."""
        puts: list[tuple[str, dict[str, Any], str | None]] = [
            (self._name(MODELS), model_item(record), "attribute_not_exists(version)")
        ]
        if record.active:
            puts.append((self._name(MODELS), self._active_pointer(record.version), None))
        try:
            self.db.transact_puts(puts)
        except ClientError as error:
            if condition_failed(error):
                raise AlreadyExistsError("model", record.version) from None
            raise

    def list_models(self) -> list[ModelRecord]:
        """Newest first (a few hundred versions at most: one Scan, sorted here)."""
        items = list(self.db.items("scan", TableName=self._name(MODELS), ConsistentRead=True))
        pointer = next((i for i in items if i["version"]["S"] == ACTIVE_MODEL_POINTER), None)
        active = None if pointer is None else pointer["activeVersion"]["S"]
        records = [
            model_from_item(i, i["version"]["S"] == active)
            for i in items
            if i["version"]["S"] not in RESERVED_MODEL_ROWS
        ]
        return sorted(records, key=lambda r: (r.created_at, r.version), reverse=True)

    def activate_model(self, version: str) -> ModelRecord:
        """One pointer row names the active version, so "exactly one active" cannot break,
        even when two operators activate at once (the last one wins)."""
        record = None
        if version and version not in RESERVED_MODEL_ROWS:
            record = self._get(MODELS, {"version": wire_string(version)})
        if record is None:
            raise NotFoundError("model", version)
        try:
            self.db.call(
                "transact_write_items",
                TransactItems=[
                    {
                        "ConditionCheck": {  # still there when the pointer moves
                            "TableName": self._name(MODELS),
                            "Key": {"version": wire_string(version)},
                            "ConditionExpression": "attribute_exists(version)",
                        }
                    },
                    {"Put": {"TableName": self._name(MODELS), "Item": self._active_pointer(version)}},
                ],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except ClientError as error:
            if condition_failed(error):
                raise NotFoundError("model", version) from None
            raise
        return model_from_item(record, active=True)

    def active_model(self) -> ModelRecord | None:
        pointer = self._get(MODELS, {"version": wire_string(ACTIVE_MODEL_POINTER)})
        record = None if pointer is None else self._get(MODELS, {"version": pointer["activeVersion"]})
        return None if record is None else model_from_item(record, active=True)

    def delete_model(self, version: str) -> None:
        """The delete is conditional on the pointer not naming the version, in one transaction,
        so a version activated meanwhile is never left without its record."""
        if (
            not version
            or version in RESERVED_MODEL_ROWS
            or self._get(MODELS, {"version": wire_string(version)}) is None
        ):
            raise NotFoundError("model", version)
        try:
            self.db.call(
                "transact_write_items",
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._name(MODELS),
                            "Key": {"version": wire_string(ACTIVE_MODEL_POINTER)},
                            "ConditionExpression": "attribute_not_exists(activeVersion) OR activeVersion <> :v",
                            "ExpressionAttributeValues": {":v": wire_string(version)},
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._name(MODELS),
                            "Key": {"version": wire_string(version)},
                            "ConditionExpression": "attribute_exists(version)",
                        }
                    },
                ],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            active = self.active_model()
            if active is not None and active.version == version:
                raise FailedPreconditionError(
                    f"model {version} is active: activate another version before deleting it"
                ) from None
            raise NotFoundError("model", version) from None

    @staticmethod
    def _active_pointer(version: str) -> dict[str, Any]:
        return {"version": wire_string(ACTIVE_MODEL_POINTER), "activeVersion": wire_string(version)}

    # --- derived documents ---------------------------------------------------------------

    def put_document(self, kind: str, customer_id: str, created_at: datetime, body: dict[str, Any]) -> None:
        created = timestamp(created_at, "created_at")
        try:
            text = json.dumps(body)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError("body", f"must be JSON-serialisable: {error}") from None
        if len(text.encode()) > MAX_DOCUMENT_BYTES:
            raise InvalidArgumentError("body", f"documents are limited to {MAX_DOCUMENT_BYTES} bytes of JSON")
        item = {
            "customerId": non_empty_id(customer_id, "customer_id"),
            "sk": f"{key_part(non_empty_id(kind, 'kind'))}#{created}",
            "kind": kind,
            "createdAt": created,
            "body": text,
        }
        self.db.call("put_item", TableName=self._name(DOCUMENTS), Item=to_wire(item))

    def latest_document(self, kind: str, customer_id: str) -> tuple[datetime, dict[str, Any]] | None:
        expression = Expression()
        condition = (
            f"{expression.equals('customerId', customer_id)}"
            f" AND begins_with({expression.name('sk')}, {expression.value(key_part(kind) + '#')})"
        )
        items = self._newest(DOCUMENTS, condition, expression, 1)
        if not items:
            return None
        _, created, body = document_from_item(items[0])
        return created, body

    def customer_documents(self, customer_id: str) -> list[tuple[str, datetime, dict[str, Any]]]:
        """Newest first (then by kind): one Query of the customer's partition, sorted here."""
        expression = Expression()
        items = self.db.items(
            "query",
            TableName=self._name(DOCUMENTS),
            KeyConditionExpression=expression.equals("customerId", customer_id),
            ConsistentRead=True,
            **expression.parameters(),
        )
        documents = sorted(map(document_from_item, items), key=lambda d: d[0])
        return sorted(documents, key=lambda d: d[1], reverse=True)

    def list_documents(
        self, kind: str, since: datetime | None = None, limit: int = 10_000
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        _check_positive(limit, "limit")
        expression = Expression()
        condition = expression.equals("kind", kind)
        if since is not None:
            condition += f" AND {expression.name('createdAt')} >= {expression.value(timestamp(since, 'since'))}"
        items = self._newest(DOCUMENTS, condition, expression, limit, index="kind-createdAt-index")
        return [(item["customerId"]["S"], *document_from_item(item)[1:]) for item in items]

    # --- bulk ----------------------------------------------------------------------------

    def import_session(self, follower: ImportFollower | None = None) -> DynamoImportSession:
        return DynamoImportSession(
            self, writers=self._import_writers, resumable=self.resumable_imports, follower=follower
        )

    def _write_all(self, spec: TableSpec, items: list[dict[str, Any]]) -> None:
        """Write distinct-key items: atomically when one transaction holds them, otherwise
        through an import session (undone if it fails; see `imports`)."""
        if len(items) <= TRANSACTION_MAX:
            if items:
                self.db.transact_puts([(self._name(spec), item, None) for item in items])
            return
        with DynamoImportSession(self, writers=self._import_writers) as session:  # undone on failure
            session.add_items(spec, items)
            session.commit()

    # --- experiments ---------------------------------------------------------------------

    def create_experiment(self, experiment: ExperimentRecord) -> None:
        """The experiment and, while it runs, its lock rows, in one transaction: the locks'
        conditions keep one running experiment per surface among those not independent, and
        one per lever (model version, strategy, holdout) of a surface."""
        puts: list[tuple[str, dict[str, Any], str | None]] = [
            (self._name(EXPERIMENTS), experiment_item(experiment), "attribute_not_exists(experimentId)")
        ]
        if experiment.running:
            for name in _locks(experiment):
                lock = {"experimentId": wire_string(name), "holder": wire_string(experiment.experiment_id)}
                puts.append((self._name(EXPERIMENTS), lock, "attribute_not_exists(experimentId)"))
        try:
            self.db.transact_puts(puts)
        except ClientError as error:
            if not condition_failed(error):
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] != "ConditionalCheckFailed":
                conflict = experiment.conflict_with(self.list_experiments())
                raise FailedPreconditionError(
                    conflict or f"another experiment is running on the {experiment.surface} surface"
                ) from None
            raise AlreadyExistsError("experiment", experiment.experiment_id) from None

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        item = None
        if experiment_id and not experiment_id.startswith(SURFACE_LOCK_PREFIX):
            item = self._get(EXPERIMENTS, {"experimentId": wire_string(experiment_id)})
        if item is None:
            raise NotFoundError("experiment", experiment_id)
        return experiment_from_item(item)

    def list_experiments(self) -> list[ExperimentRecord]:
        """Newest first (tens of experiments: one Scan, sorted here)."""
        items = self.db.items("scan", TableName=self._name(EXPERIMENTS), ConsistentRead=True)
        # Lock and lease rows start with "#", which no experiment id can.
        records = [experiment_from_item(i) for i in items if not i["experimentId"]["S"].startswith("#")]
        return sorted(records, key=lambda e: (e.created_at, e.experiment_id), reverse=True)

    def stop_experiment(self, experiment_id: str, stopped_at: datetime) -> ExperimentRecord:
        """Stamp the stop and release the surface's lock in one transaction; stopping a
        stopped experiment (whose lock is gone) changes nothing."""
        experiment = self.get_experiment(experiment_id)
        if not experiment.running:
            return experiment
        stamp = Expression()
        stopped = stamp.name("stoppedAt")
        release = Expression()
        # Its own lock rows only; one already gone (a concurrent stop) is no obstacle.
        held = f"attribute_not_exists({release.name('experimentId')}) OR {release.equals('holder', experiment_id)}"
        try:
            self.db.call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._name(EXPERIMENTS),
                            "Key": {"experimentId": wire_string(experiment_id)},
                            # The first stop time stays, should two operators stop it at once.
                            "UpdateExpression": f"SET {stopped} = if_not_exists({stopped}, "
                            f"{stamp.value(timestamp(stopped_at, 'stopped_at'))})",
                            **stamp.parameters(),
                        }
                    },
                    *(
                        {
                            "Delete": {
                                "TableName": self._name(EXPERIMENTS),
                                "Key": {"experimentId": wire_string(name)},
                                "ConditionExpression": held,
                                **release.parameters(),
                            }
                        }
                        for name in _locks(experiment)
                    ),
                ],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            # The lock was already released (a concurrent stop): stamp the time alone, idempotently.
            self.db.call(
                "update_item",
                TableName=self._name(EXPERIMENTS),
                Key={"experimentId": wire_string(experiment_id)},
                UpdateExpression=f"SET {stopped} = if_not_exists({stopped}, {stamp.value(timestamp(stopped_at, 'stopped_at'))})",
                **stamp.parameters(),
            )
        return self.get_experiment(experiment_id)

    def served_lists_between(
        self, start: datetime, end: datetime, experiment_id: str = ""
    ) -> list[ServedRecommendation]:
        low, high = timestamp(start, "start"), timestamp(end, "end")
        refuse_pruned_period(start, self.served_list_retention)
        if experiment_id:
            items = self._lists_of(experiment_id, low, high)
            for primary in self._primaries_beside(experiment_id, start, end):
                # The lists it shaped beside another experiment are that one's (the primary's)
                # lists carrying it too: read through the primary's index entries, not a Scan.
                items += self._lists_of(primary, low, high, beside=experiment_id)
        else:  # a report over a period: every list of the period, wherever it sits
            expression = Expression()
            items = list(
                self.db.items(
                    "scan",
                    TableName=self._name(RECOMMENDATIONS),
                    FilterExpression=f"{expression.name('generatedAt')} BETWEEN"
                    f" {expression.value(low)} AND {expression.value(high)}",
                    **expression.parameters(),
                )
            )
        now_s = time.time()
        served = [
            recommendation_from_item(item)
            for item in items
            if item["generatedAt"]["S"] < high and not expired(item, now_s)
        ]
        return sorted(served, key=lambda r: (r.generated_at, r.recommendation_id))

    def _lists_of(self, experiment_id: str, low: str, high: str, beside: str = "") -> list[dict[str, Any]]:
        """The lists whose primary experiment is `experiment_id`, served from `low` to `high`
        (both included); only those also shaped by `beside` when given."""
        expression = Expression()
        query: dict[str, Any] = {
            "TableName": self._name(RECOMMENDATIONS),
            "IndexName": "experimentId-generatedAt-index",
            "KeyConditionExpression": f"{expression.equals('experimentId', experiment_id)} AND"
            f" {expression.name('generatedAt')} BETWEEN {expression.value(low)} AND {expression.value(high)}",
        }
        if beside:
            query["FilterExpression"] = f"contains({expression.name('otherExperimentIds')}, {expression.value(beside)})"
        return list(self.db.items("query", **query, **expression.parameters()))

    def _primaries_beside(self, experiment_id: str, start: datetime, end: datetime) -> list[str]:
        """For an independent experiment, the others on its surface that ran during [start, end)
        and may have been the primary one of the lists it shaped; none for the others."""
        experiments = self.list_experiments()
        this = next((e for e in experiments if e.experiment_id == experiment_id), None)
        if this is None or not this.independent:
            return []
        return [
            e.experiment_id
            for e in experiments
            if e.surface == this.surface
            and e.experiment_id != experiment_id
            and e.created_at < end
            and (e.stopped_at is None or e.stopped_at >= start)
        ]

    def acquire_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """A row of the experiments table (beside the surface locks), written only if absent,
        expired or already `holder`'s: one conditional PutItem."""
        condition = Expression()
        key = condition.name("experimentId")
        expires = condition.name("expiresAt")
        try:
            self.db.call(
                "put_item",
                TableName=self._name(EXPERIMENTS),
                Item={
                    "experimentId": wire_string(f"{LEASE_PREFIX}{name}"),
                    "holder": wire_string(holder),
                    "expiresAt": wire_string(timestamp(until, "until")),
                },
                ConditionExpression=f"attribute_not_exists({key}) OR {condition.equals('holder', holder)}"
                f" OR {expires} <= {condition.value(timestamp(now, 'now'))}",
                **condition.parameters(),
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def release_lease(self, name: str, holder: str) -> None:
        condition = Expression()
        try:
            self.db.call(
                "delete_item",
                TableName=self._name(EXPERIMENTS),
                Key={"experimentId": wire_string(f"{LEASE_PREFIX}{name}")},
                ConditionExpression=condition.equals("holder", holder),
                **condition.parameters(),
            )
        except ClientError as error:
            if not condition_failed(error):  # held by another (ours expired and was taken): theirs now
                raise

    def feedback_on(self, recommendation_ids: Sequence[str]) -> list[Feedback]:
        found: list[Feedback] = []
        for recommendation_id in dict.fromkeys(recommendation_ids):
            expression = Expression()
            items = self.db.items(
                "query",
                TableName=self._name(FEEDBACK),
                KeyConditionExpression=expression.equals("recommendationId", recommendation_id),
                ConsistentRead=True,
                **expression.parameters(),
            )
            found += map(feedback_from_item, items)
        return found


# Experiment ids cannot start with "#" (ids are letters, digits and . _ : @ -), so lock rows
# never collide with an experiment.
SURFACE_LOCK_PREFIX = "#running#"
# Lease rows (`acquire_lease`) live in the same table, after the same rule.
LEASE_PREFIX = "#lease#"


def _surface_lock(surface: str) -> str:
    return f"{SURFACE_LOCK_PREFIX}{surface}"


def _locks(experiment: ExperimentRecord) -> list[str]:
    """The lock rows a running experiment holds: its surface's unless independent, and one per
    lever it sets on that surface."""
    surface = [] if experiment.independent else [_surface_lock(experiment.surface)]
    return surface + [_surface_lock(f"{experiment.surface}#{lever}") for lever in sorted(experiment.levers())]


def _read_from(index: str | None) -> dict[str, Any]:
    """Query parameters: the base table, read consistently, or `index` (a GSI cannot be)."""
    return {"ConsistentRead": True} if index is None else {"IndexName": index}


def _check_positive(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(field, f"must be at least 1, got {value!r}")


def _new_columns() -> PurchaseColumns:
    return PurchaseColumns([], [], [], [], [], [])
