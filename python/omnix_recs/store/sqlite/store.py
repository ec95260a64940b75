"""`SqliteStore`: the `Store` protocol's methods over one SQLite database file.

SQLite's one-writer, many-readers model fits a server that mostly reads: WAL lets every read
see a committed snapshot without waiting for a write, and taking the write lock up front makes
a write wait or fail whole instead of half-way. The tables are in `schema`, the row mapping in
`rows`; this module is connections, transactions and queries.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from omnix_recs.config import DEFAULT_STORE_URL
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
    ImportedPurchases,
    ImportFollower,
    ModelRecord,
    PurchaseShares,
    PurchaseWatermark,
    purchase_columns,
    refuse_pruned_period,
    served_lists_kept_since,
)
from omnix_recs.store.sqlite.rows import (
    CUSTOMER_SELECT,
    FEEDBACK_SELECT,
    INSERT_NEW_CUSTOMER,
    INSERT_NEW_MODEL,
    INSERT_NEW_RECOMMENDATION,
    INTERACTION_SELECT,
    MODEL_SELECT,
    PRODUCT_SELECT,
    PURCHASE_SELECT,
    RECOMMENDATION_SELECT,
    UPSERT_CUSTOMER,
    UPSERT_DOCUMENT,
    UPSERT_FEEDBACK,
    UPSERT_INTERACTION,
    UPSERT_PRODUCT,
    UPSERT_PURCHASE,
    UPSERT_PURCHASE_COLUMNS,
    customer_from_row,
    customer_row,
    feedback_from_row,
    feedback_row,
    from_micros,
    interaction_from_row,
    interaction_row,
    micros,
    model_from_row,
    model_row,
    optional_micros,
    product_from_row,
    product_row,
    purchase_from_row,
    purchase_row,
    recommendation_from_row,
    recommendation_row,
    to_json,
)
from omnix_recs.store.sqlite.schema import apply_migrations

DEFAULT_BUSY_TIMEOUT_MS = 5_000
# An import session's own page cache (KiB). Bulk loads insert at random places in the
# purchase b-tree; the bigger the cache, the fewer pages spill to the WAL mid-transaction.
_IMPORT_CACHE_KIB = 1024 * 1024
# Rows per fetch when streaming. Fewer than the garbage collector's young-generation threshold
# (700 new objects in CPython 3.11), so each fetch's row tuples are gone before a collection
# walks them: 500 rows per fetch scan purchases ~1.7x faster than 1,000, ~2.5x faster than 20,000.
_FETCH_ROWS = 500
# After a checkpoint, shrink the WAL back to this size (a big import leaves a big WAL).
_WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

# Primary SQLite result codes meaning "the database cannot be used right now", as opposed to
# a bug in our SQL: busy/locked by another writer, I/O failure, disk full, file unreadable.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)

# Lines of `add_purchases` kept in the purchase journal (`purchases_appended_since`); a copy
# of the history further behind is rebuilt.
JOURNAL_LINES = 1_000_000
_JOURNAL_PURCHASE = (
    "INSERT INTO purchase_journal (customer_id, purchased_at, order_id, product_id, quantity, unit_price)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_BUMP_PURCHASE_EPOCH = "UPDATE purchase_epoch SET epoch = epoch + 1 WHERE id = 1"
_MIN_MICROS = -(2**63)  # "kept since" when every served list is kept
# A prune batch: the oldest lists first, through recommendations_by_time, so a batch costs its
# own rows and never a pass over the table.
OLDEST_SERVED_LISTS = (
    "SELECT rowid, recommendation_id FROM recommendations WHERE generated_at < ? ORDER BY generated_at LIMIT ?"
)


def _purchase_watermark(conn: sqlite3.Connection) -> PurchaseWatermark:
    with _database_errors_as_unavailable():
        (epoch,) = conn.execute("SELECT epoch FROM purchase_epoch WHERE id = 1").fetchone()
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'purchase_journal'").fetchone()
    return PurchaseWatermark(epoch=int(epoch), sequence=int(row[0]) if row else 0)


# Erasure order matters: feedback on the customer's served lists is found through them.
_ERASURE_STATEMENTS: tuple[tuple[str, str], ...] = (
    ("profile", "DELETE FROM customer_profiles WHERE customer_id = :id"),
    ("purchases", "DELETE FROM purchase_history WHERE customer_id = :id"),
    ("interactions", "DELETE FROM product_interactions WHERE customer_id = :id"),
    (
        "feedback",
        "DELETE FROM feedback WHERE customer_id = :id OR recommendation_id IN"
        " (SELECT recommendation_id FROM recommendations WHERE customer_id = :id)",
    ),
    ("recommendations", "DELETE FROM recommendations WHERE customer_id = :id"),
    ("documents", "DELETE FROM documents WHERE customer_id = :id"),
)


# --- page tokens -------------------------------------------------------------------------------
# A token is the urlsafe base64 of a JSON list: the list's name, then the last key returned.
# The next page starts strictly after that key (keyset pagination: no offsets, stable under
# concurrent inserts).


def _page_token(listing: str, *last_key: str | int) -> str:
    raw = json.dumps([listing, *last_key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _page_start(token: str, listing: str, shape: tuple[type, ...]) -> list[Any] | None:
    """The key a page starts after, or None for the first page."""
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == len(shape) + 1
        and decoded[0] == listing
        and all(type(v) is t for v, t in zip(decoded[1:], shape))
    ):
        return decoded[1:]
    raise InvalidArgumentError("page_token", "malformed page token; pass back next_page_token exactly as returned")


def _check_at_least_one(field: str, value: int) -> None:
    if value < 1:
        raise InvalidArgumentError(field, f"must be at least 1, got {value}")


# --- errors ------------------------------------------------------------------------------------


@contextmanager
def _database_errors_as_unavailable() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        code = exc.sqlite_errorcode & 0xFF  # extended code -> primary code
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise UnavailableError(
                "the database is busy: another write (such as a bulk import) holds the lock; retry later"
            ) from exc
        if code in _UNAVAILABLE_CODES:
            raise UnavailableError(f"the database cannot be used right now ({exc}); retry later") from exc
        raise


class SqliteStore:
    """The `Store` protocol over one SQLite database file.

    How it behaves under load:
    - WAL journal: readers never wait for the writer and always see a committed snapshot; one
      writer at a time holds the write lock. A second writer waits up to `busy_timeout_ms`, then
      gets `UnavailableError` (e.g. a `RecordPurchase` arriving while a bulk import runs).
    - One connection per thread (the async server calls in through `asyncio.to_thread`); streaming
      reads (`scan_purchases`, `iter_products`) and import sessions get their own connection, so a
      consumer may interleave other store calls with them, on any thread.
    - Every write is one `BEGIN IMMEDIATE ... COMMIT`: it takes the write lock up front, so it
      never fails half-way for lack of it.
    - `synchronous=NORMAL`: a commit survives a crash of the process; a power loss may lose the last
      few commits, never corrupt the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        served_list_retention: timedelta | None = None,
    ) -> None:
        self.path = Path(path)
        self.served_list_retention = served_list_retention
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._local = threading.local()
        self._closed = False
        self._remove_temporary_directory: weakref.finalize[..., SqliteStore] | None = None
        try:
            if not self.path.parent.is_dir():
                # A mistyped path must not quietly become a new, empty store.
                raise InvalidArgumentError(
                    "OMNIX_STORE", f"the directory {self.path.parent} does not exist (create it, or fix the path)"
                )
            conn = self._conn()
            with _database_errors_as_unavailable():
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode != "wal":
                    raise UnavailableError(f"the database file cannot use WAL journaling (got {mode!r})")
                apply_migrations(conn)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, served_list_retention: timedelta | None = None) -> SqliteStore:
        """`sqlite:///relative/omnix.db`, `sqlite:////absolute/omnix.db`, or `sqlite:///:memory:`.

        `:memory:` opens a throwaway database (a temporary file removed by `close()`), with the
        same behaviour as any other, for tests and demos.
        """
        prefix = "sqlite:///"
        location = url[len(prefix) :] if url.startswith(prefix) else ""
        if not location:
            raise InvalidArgumentError(
                "OMNIX_STORE", f"expected sqlite:///path/to/omnix.db or sqlite:///:memory:, got {url!r}"
            )
        if location == ":memory:":
            return cls.temporary(served_list_retention=served_list_retention)
        if url == DEFAULT_STORE_URL:  # the default's own directory (./var) is created for the demo
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        return cls(Path(location), served_list_retention=served_list_retention)

    @classmethod
    def temporary(cls, *, served_list_retention: timedelta | None = None) -> SqliteStore:
        """A new empty store in a temporary directory, removed on `close()` (or at exit)."""
        directory = tempfile.mkdtemp(prefix="omnix-store-")
        try:
            store = cls(Path(directory) / "omnix.db", served_list_retention=served_list_retention)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        store._remove_temporary_directory = weakref.finalize(store, shutil.rmtree, directory, ignore_errors=True)
        return store

    # --- connections and transactions --------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A new connection with the store's settings, in autocommit mode (we issue BEGIN)."""
        if self._closed:
            raise UnavailableError("the store is closed")
        with _database_errors_as_unavailable():
            # check_same_thread=False only so that close() may close every thread's connection;
            # each connection is still used by one thread at a time.
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT_BYTES}")
                # Deleted rows are overwritten with zeros, not left in free pages (erasure).
                conn.execute("PRAGMA secure_delete = ON")
            except BaseException:
                conn.close()
                raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        if self._closed:
            raise UnavailableError("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._lock:
                if self._closed:  # closed while we connected
                    conn.close()  # type: ignore[unreachable]  # mypy cannot see another thread's close()
                    raise UnavailableError("the store is closed")
                # Threads come and go (thread pools shrink): drop the connections of dead ones.
                for thread in [t for t in self._connections if not t.is_alive()]:
                    self._connections.pop(thread).close()
                self._connections[threading.current_thread()] = conn
            self._local.conn = conn
        return conn

    def _fetch(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with _database_errors_as_unavailable():
            return self._conn().execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed when the block ends, rolled back if it raises."""
        conn = self._conn()
        with _database_errors_as_unavailable():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _stream(self, sql: str, params: Sequence[Any], batch_rows: int) -> Iterator[list[Any]]:
        """Rows in batches from one consistent snapshot, on a connection of their own."""
        conn = self._connect()
        try:
            with _database_errors_as_unavailable():
                cursor = conn.execute(sql, params)
                while rows := cursor.fetchmany(batch_rows):
                    yield rows
        finally:
            conn.close()

    # --- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection. Call it once the server has stopped using the store."""
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()
        if self._remove_temporary_directory is not None:
            self._remove_temporary_directory()

    # --- customers ------------------------------------------------------------------------------

    def create_customer(self, customer: Customer) -> None:
        row = customer_row(customer)
        with self._transaction() as conn:
            inserted = conn.execute(INSERT_NEW_CUSTOMER, row).rowcount
            if not inserted:
                raise AlreadyExistsError("customer", customer.customer_id)

    def get_customer(self, customer_id: str) -> Customer:
        rows = self._fetch(f"{CUSTOMER_SELECT} WHERE customer_id = ?", (customer_id,))
        if not rows:
            raise NotFoundError("customer", customer_id)
        return customer_from_row(rows[0])

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        rows = self._fetch(
            f"{CUSTOMER_SELECT} WHERE customer_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(customer_ids)),),
        )
        return {customer.customer_id: customer for customer in map(customer_from_row, rows)}

    def put_customer(self, customer: Customer, *, replaces: datetime | None = None) -> None:
        row = customer_row(customer)
        expected = None if replaces is None else micros(replaces, "replaces")
        with self._transaction() as conn:
            stored = conn.execute(
                "SELECT updated_at FROM customer_profiles WHERE customer_id = ?", (customer.customer_id,)
            ).fetchone()
            if stored is None:
                raise NotFoundError("customer", customer.customer_id)
            if expected is not None and stored[0] != expected:
                raise ConflictError("customer", customer.customer_id)
            conn.execute(UPSERT_CUSTOMER, row)

    def list_customer_ids(self, page_size: int, page_token: str = "") -> Page[str]:
        _check_at_least_one("page_size", page_size)
        start = _page_start(page_token, "customers", (str,))
        rows = self._fetch(
            "SELECT customer_id FROM customer_profiles WHERE customer_id > ? ORDER BY customer_id LIMIT ?",
            (start[0] if start else "", page_size + 1),
        )
        ids = tuple(r[0] for r in rows[:page_size])
        more = len(rows) > page_size
        return Page(ids, _page_token("customers", ids[-1]) if more else "")

    def customers_without_personalization(self) -> frozenset[str]:
        rows = self._fetch(
            "SELECT customer_id FROM customer_profiles WHERE json_extract(consent, '$.personalization') = 0"
        )
        return frozenset(r[0] for r in rows)

    def delete_customer(self, customer_id: str) -> CustomerErasure:
        with self._transaction() as conn:
            counts = {kind: conn.execute(sql, {"id": customer_id}).rowcount for kind, sql in _ERASURE_STATEMENTS}
            if not any(counts.values()):
                raise NotFoundError("customer", customer_id)
            conn.execute("DELETE FROM purchase_journal WHERE customer_id = ?", (customer_id,))
            if counts["purchases"]:  # copies of the history holding their lines are stale
                conn.execute(_BUMP_PURCHASE_EPOCH)
        # The WAL still holds the erased rows' old pages until a checkpoint copies the database
        # over them; checkpoint and truncate it now. Best effort: a long reader may keep part of
        # it until the next checkpoint.
        with suppress(sqlite3.OperationalError):
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return CustomerErasure(counts)

    # --- catalog --------------------------------------------------------------------------------

    def upsert_products(self, products: Sequence[Product]) -> int:
        rows = [product_row(p) for p in products]
        with self._transaction() as conn:
            conn.executemany(UPSERT_PRODUCT, rows)
        return len(rows)

    def get_product(self, product_id: str) -> Product:
        rows = self._fetch(f"{PRODUCT_SELECT} WHERE product_id = ?", (product_id,))
        if not rows:
            raise NotFoundError("product", product_id)
        return product_from_row(rows[0])

    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        # One JSON parameter rather than one `?` per id: no limit on how many ids are asked for.
        rows = self._fetch(
            f"{PRODUCT_SELECT} WHERE product_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(product_ids)),),
        )
        return {row[0]: product_from_row(row) for row in rows}

    def list_products(self, product_filter: ProductFilter, page_size: int, page_token: str = "") -> Page[Product]:
        _check_at_least_one("page_size", page_size)
        start = _page_start(page_token, "products", (str,))
        conditions = ["product_id > :after"]
        params: dict[str, Any] = {"after": start[0] if start else "", "limit": page_size + 1}
        for column, wanted in (
            ("department", product_filter.departments),
            ("aisle", product_filter.aisles),
            ("brand", product_filter.brands),
        ):
            if wanted:
                conditions.append(f"{column} IN (SELECT value FROM json_each(:{column}))")
                params[column] = json.dumps(list(wanted))
        if product_filter.dietary_tags:
            # No wanted tag may be missing from the product's tags.
            conditions.append(
                "NOT EXISTS (SELECT 1 FROM json_each(:tags) AS wanted"
                " WHERE wanted.value NOT IN (SELECT value FROM json_each(products.dietary_tags)))"
            )
            params["tags"] = json.dumps(list(product_filter.dietary_tags))
        if product_filter.in_stock_only:
            conditions.append("in_stock = 1")
        rows = self._fetch(
            f"{PRODUCT_SELECT} WHERE {' AND '.join(conditions)} ORDER BY product_id LIMIT :limit",
            params,
        )
        products = tuple(product_from_row(r) for r in rows[:page_size])
        more = len(rows) > page_size
        return Page(products, _page_token("products", products[-1].product_id) if more else "")

    def iter_products(self) -> Iterator[Product]:
        sql = f"{PRODUCT_SELECT} ORDER BY product_id"
        for rows in self._stream(sql, (), _FETCH_ROWS):
            yield from map(product_from_row, rows)

    def catalog_version(self) -> int:
        (version,) = self._fetch("SELECT version FROM catalog_version WHERE id = 1")[0]
        return int(version)

    # --- purchases ------------------------------------------------------------------------------

    def add_purchases(self, purchases: Sequence[Purchase]) -> int:
        rows = [purchase_row(p) for p in purchases]
        with self._transaction() as conn:
            conn.executemany(UPSERT_PURCHASE, rows)
            conn.executemany(_JOURNAL_PURCHASE, (row[:6] for row in rows))
            conn.execute("DELETE FROM purchase_journal WHERE sequence <= last_insert_rowid() - ?", (JOURNAL_LINES,))
        return len(rows)

    def list_purchases(
        self,
        customer_id: str,
        page_size: int,
        page_token: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[Purchase]:
        _check_at_least_one("page_size", page_size)
        after = _page_start(page_token, "purchases", (int, str, str))
        conditions = ["customer_id = :customer"]
        params: dict[str, Any] = {"customer": customer_id, "limit": page_size + 1}
        if start is not None:
            conditions.append("purchased_at >= :start")
            params["start"] = micros(start, "start")
        if end is not None:
            conditions.append("purchased_at < :end")
            params["end"] = micros(end, "end")
        if after is not None:
            conditions.append("(purchased_at, order_id, product_id) < (:at, :order, :product)")
            params.update(at=after[0], order=after[1], product=after[2])
        rows = self._fetch(
            f"{PURCHASE_SELECT} WHERE {' AND '.join(conditions)}"
            " ORDER BY purchased_at DESC, order_id DESC, product_id DESC LIMIT :limit",
            params,
        )
        page = rows[:page_size]
        token = ""
        if len(rows) > page_size:
            last = page[-1]
            token = _page_token("purchases", last[5], last[1], last[2])
        return Page(tuple(map(purchase_from_row, page)), token)

    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]:
        before_micros = None if before is None else micros(before, "before")
        rows = self._fetch(
            f"{PURCHASE_SELECT} WHERE customer_id = ? AND (? IS NULL OR purchased_at < ?)"
            " ORDER BY purchased_at, order_id, product_id",
            (customer_id, before_micros, before_micros),
        )
        return list(map(purchase_from_row, rows))

    def order_lines_of(self, customer_id: str, before: datetime | None = None) -> OrderLines:
        before_micros = None if before is None else micros(before, "before")
        rows = self._fetch(
            "SELECT order_id, product_id, quantity, unit_price, purchased_at FROM purchase_history"
            " WHERE customer_id = ? AND (? IS NULL OR purchased_at < ?)",
            (customer_id, before_micros, before_micros),
        )
        # One fetch and a C-level transpose: what is left per line is the sqlite3 row itself.
        order_ids, product_ids, quantities, unit_prices, purchased_at = zip(*rows) if rows else ((),) * 5
        return OrderLines(
            order_ids=order_ids,
            product_ids=product_ids,
            quantities=np.array(quantities, dtype=np.int64),
            unit_prices=np.array(unit_prices, dtype=np.float64),
            # Both exact in float64, then one correctly rounded division: datetime.timestamp()'s value.
            purchased_at_s=np.array(purchased_at, dtype=np.int64) / 1_000_000,
        )

    def scan_purchases(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        """Every order line by (customer, purchased_at): the clustered key order, so no sort."""
        _check_at_least_one("batch_rows", batch_rows)
        sql = (
            "SELECT customer_id, order_id, product_id, quantity, unit_price, purchased_at / 1000000, store_id"
            " FROM purchase_history ORDER BY customer_id, purchased_at"
        )
        # Small fetches appended to the column lists (a C-level transpose with zip) rather than
        # one fetch of a whole batch: see `_FETCH_ROWS`.
        fetch_rows = min(batch_rows, _FETCH_ROWS)
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        for rows in self._stream(sql, (), fetch_rows):
            if len(columns[0]) + len(rows) > batch_rows:
                yield PurchaseColumns(*columns)
                columns = ([], [], [], [], [], [], [])
            for column, values in zip(columns, zip(*rows)):
                column.extend(values)
        if columns[0]:
            yield PurchaseColumns(*columns)

    def scan_purchases_unordered(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        return self.scan_purchases(batch_rows)  # the clustered order costs nothing here

    def count_purchases(self) -> int:
        return int(self._fetch("SELECT count(*) FROM purchase_history")[0][0])

    def purchases_between(self, start: datetime, end: datetime) -> Iterator[Purchase]:
        span = (micros(start, "start"), micros(end, "end"))
        sql = f"{PURCHASE_SELECT} WHERE purchased_at >= ? AND purchased_at < ?"  # purchases_by_time
        for rows in self._stream(sql, span, _FETCH_ROWS):
            yield from map(purchase_from_row, rows)

    def purchase_watermark(self) -> PurchaseWatermark:
        return _purchase_watermark(self._conn())

    def purchases_appended_since(
        self, watermark: PurchaseWatermark
    ) -> tuple[PurchaseColumns, PurchaseWatermark] | None:
        conn = self._connect()  # its own read transaction: the epoch and the lines agree
        try:
            with _database_errors_as_unavailable():
                conn.execute("BEGIN")
                current = _purchase_watermark(conn)
                if current.epoch != watermark.epoch or watermark.sequence < current.sequence - JOURNAL_LINES:
                    return None
                rows = conn.execute(
                    "SELECT customer_id, order_id, product_id, quantity, unit_price, purchased_at / 1000000"
                    " FROM purchase_journal WHERE sequence > ? AND sequence <= ? ORDER BY sequence",
                    (watermark.sequence, current.sequence),
                ).fetchall()
                conn.execute("COMMIT")
        finally:
            conn.close()
        columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in range(6)]
        return PurchaseColumns(*columns), current

    # --- behaviour ------------------------------------------------------------------------------

    def add_interaction(self, interaction: Interaction) -> None:
        row = interaction_row(interaction)
        with self._transaction() as conn:
            conn.execute(UPSERT_INTERACTION, row)

    def has_interactions(self) -> bool:
        return bool(self._fetch("SELECT EXISTS (SELECT 1 FROM product_interactions)")[0][0])

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        _check_at_least_one("limit", limit)
        since_micros = None if since is None else micros(since, "since")
        rows = self._fetch(
            f"{INTERACTION_SELECT} WHERE customer_id = ? AND (? IS NULL OR occurred_at >= ?)"
            " ORDER BY occurred_at DESC, interaction_id DESC LIMIT ?",
            (customer_id, since_micros, since_micros, limit),
        )
        return list(map(interaction_from_row, rows))

    # --- served recommendations and feedback ------------------------------------------------------

    def save_recommendation(self, served: ServedRecommendation) -> None:
        row = recommendation_row(served)
        with self._transaction() as conn:
            inserted = conn.execute(INSERT_NEW_RECOMMENDATION, row).rowcount
            if not inserted:
                raise AlreadyExistsError("recommendation", served.recommendation_id)

    def save_recommendations(self, served: Sequence[ServedRecommendation]) -> None:
        rows = [recommendation_row(s) for s in served]
        with self._transaction() as conn:
            conn.executemany(INSERT_NEW_RECOMMENDATION, rows)  # taken ids: nothing written

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        rows = self._fetch(
            f"{RECOMMENDATION_SELECT} WHERE recommendation_id = ? AND generated_at >= ?",
            (recommendation_id, self._served_lists_kept_since()),
        )
        if not rows:
            raise NotFoundError("recommendation", recommendation_id)
        return recommendation_from_row(rows[0])

    def list_recommendations(self, customer_id: str, limit: int = 20) -> list[ServedRecommendation]:
        _check_at_least_one("limit", limit)
        rows = self._fetch(
            f"{RECOMMENDATION_SELECT} WHERE customer_id = ? AND generated_at >= ?"
            " ORDER BY generated_at DESC, recommendation_id DESC LIMIT ?",
            (customer_id, self._served_lists_kept_since(), limit),
        )
        return list(map(recommendation_from_row, rows))

    def _served_lists_kept_since(self) -> int:
        """Microseconds: lists served before this moment are past the retention (read as gone
        until `prune_served_lists` deletes them)."""
        kept_since = served_lists_kept_since(self.served_list_retention)
        return _MIN_MICROS if kept_since is None else micros(kept_since, "now")

    def prune_served_lists(self, before: datetime, batch_rows: int = 1_000) -> int:
        _check_at_least_one("batch_rows", batch_rows)
        cutoff = micros(before, "before")
        with self._transaction() as conn:
            # Ids as one JSON parameter: no cap on a batch's size.
            rows = conn.execute(OLDEST_SERVED_LISTS, (cutoff, batch_rows)).fetchall()
            if not rows:
                return 0
            conn.execute(
                "DELETE FROM feedback WHERE recommendation_id IN (SELECT value FROM json_each(?))",
                (json.dumps([r[1] for r in rows]),),
            )
            conn.execute(
                "DELETE FROM recommendations WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps([r[0] for r in rows]),),
            )
        return len(rows)

    def add_feedback(self, feedback: Feedback) -> None:
        row = feedback_row(feedback)
        with self._transaction() as conn:
            conn.execute(UPSERT_FEEDBACK, row)

    def list_feedback(self, recommendation_id: str) -> list[Feedback]:
        rows = self._fetch(
            f"{FEEDBACK_SELECT} WHERE recommendation_id = ? ORDER BY occurred_at DESC, product_id DESC, event DESC",
            (recommendation_id,),
        )
        return list(map(feedback_from_row, rows))

    # --- models ---------------------------------------------------------------------------------

    def save_model(self, record: ModelRecord) -> None:
        row = model_row(record)
        with self._transaction() as conn:
            if record.active:
                conn.execute("UPDATE models SET active = 0 WHERE active = 1 AND version <> ?", (record.version,))
            inserted = conn.execute(INSERT_NEW_MODEL, row).rowcount
            if not inserted:
                raise AlreadyExistsError("model", record.version)

    def list_models(self) -> list[ModelRecord]:
        return list(map(model_from_row, self._fetch(f"{MODEL_SELECT} ORDER BY created_at DESC, version DESC")))

    def activate_model(self, version: str) -> ModelRecord:
        with self._transaction() as conn:
            # Deactivate first: the unique index on active rows allows one at any moment.
            conn.execute("UPDATE models SET active = 0 WHERE active = 1 AND version <> ?", (version,))
            if not conn.execute("UPDATE models SET active = 1 WHERE version = ?", (version,)).rowcount:
                raise NotFoundError("model", version)
            return model_from_row(conn.execute(f"{MODEL_SELECT} WHERE version = ?", (version,)).fetchone())

    def active_model(self) -> ModelRecord | None:
        rows = self._fetch(f"{MODEL_SELECT} WHERE active = 1")
        return model_from_row(rows[0]) if rows else None

    def delete_model(self, version: str) -> None:
        with self._transaction() as conn:
            if conn.execute("DELETE FROM models WHERE version = ? AND active = 0", (version,)).rowcount:
                return
            if conn.execute("SELECT 1 FROM models WHERE version = ?", (version,)).fetchone() is None:
                raise NotFoundError("model", version)
        raise FailedPreconditionError(f"model {version} is active: activate another version before deleting it")

    # --- derived documents ------------------------------------------------------------------------

    def put_document(self, kind: str, customer_id: str, created_at: datetime, body: dict[str, Any]) -> None:
        row = (customer_id, kind, micros(created_at, "created_at"), to_json(body, "body"))
        with self._transaction() as conn:
            conn.execute(UPSERT_DOCUMENT, row)

    def latest_document(self, kind: str, customer_id: str) -> tuple[datetime, dict[str, Any]] | None:
        rows = self._fetch(
            "SELECT created_at, body FROM documents WHERE customer_id = ? AND kind = ?"
            " ORDER BY created_at DESC LIMIT 1",
            (customer_id, kind),
        )
        return (from_micros(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def customer_documents(self, customer_id: str) -> list[tuple[str, datetime, dict[str, Any]]]:
        rows = self._fetch(
            "SELECT kind, created_at, body FROM documents WHERE customer_id = ? ORDER BY created_at DESC, kind",
            (customer_id,),
        )
        return [(r[0], from_micros(r[1]), json.loads(r[2])) for r in rows]

    def list_documents(
        self, kind: str, since: datetime | None = None, limit: int = 10_000
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        _check_at_least_one("limit", limit)
        since_micros = None if since is None else micros(since, "since")
        rows = self._fetch(
            "SELECT customer_id, created_at, body FROM documents"
            " WHERE kind = ? AND (? IS NULL OR created_at >= ?)"
            " ORDER BY created_at DESC, customer_id DESC LIMIT ?",
            (kind, since_micros, since_micros, limit),
        )
        return [(r[0], from_micros(r[1]), json.loads(r[2])) for r in rows]

    # --- bulk -----------------------------------------------------------------------------------

    def import_session(self, follower: ImportFollower | None = None) -> SqliteImportSession:
        return SqliteImportSession(self, follower)

    # --- experiments ----------------------------------------------------------------------------

    def create_experiment(self, experiment: ExperimentRecord) -> None:
        row = (
            experiment.experiment_id,
            experiment.surface,
            micros(experiment.created_at, "created_at"),
            optional_micros(experiment.stopped_at, "stopped_at"),
            to_json(experiment.body(), "body"),
        )
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM experiments WHERE experiment_id = ?", row[:1]).fetchone():
                raise AlreadyExistsError("experiment", experiment.experiment_id)
            if experiment.running:
                # Read inside the write transaction: two creations cannot both pass the check.
                running = conn.execute(
                    f"{_EXPERIMENT_SELECT} WHERE surface = ? AND stopped_at IS NULL", (experiment.surface,)
                ).fetchall()
                conflict = experiment.conflict_with([_experiment_from_row(r) for r in running])
                if conflict is not None:
                    raise FailedPreconditionError(conflict)
            try:
                conn.execute(
                    "INSERT INTO experiments (experiment_id, surface, created_at, stopped_at, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError:  # experiments_one_running_per_surface
                raise FailedPreconditionError(
                    f"another experiment is running on the {experiment.surface} surface"
                ) from None

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        rows = self._fetch(f"{_EXPERIMENT_SELECT} WHERE experiment_id = ?", (experiment_id,))
        if not rows:
            raise NotFoundError("experiment", experiment_id)
        return _experiment_from_row(rows[0])

    def list_experiments(self) -> list[ExperimentRecord]:
        rows = self._fetch(f"{_EXPERIMENT_SELECT} ORDER BY created_at DESC, experiment_id DESC")
        return [_experiment_from_row(r) for r in rows]

    def stop_experiment(self, experiment_id: str, stopped_at: datetime) -> ExperimentRecord:
        stopped = micros(stopped_at, "stopped_at")
        with self._transaction() as conn:
            conn.execute(
                "UPDATE experiments SET stopped_at = coalesce(stopped_at, ?) WHERE experiment_id = ?",
                (stopped, experiment_id),
            )
            rows = conn.execute(f"{_EXPERIMENT_SELECT} WHERE experiment_id = ?", (experiment_id,)).fetchall()
        if not rows:
            raise NotFoundError("experiment", experiment_id)
        return _experiment_from_row(rows[0])

    def served_lists_between(
        self, start: datetime, end: datetime, experiment_id: str = ""
    ) -> list[ServedRecommendation]:
        span = (micros(start, "start"), micros(end, "end"))
        refuse_pruned_period(start, self.served_list_retention)
        if experiment_id:
            # Lists it shaped as the primary experiment (its index), then, for an independent
            # experiment, those it shaped beside another one (a pass over the period's lists).
            rows = self._fetch(
                f"{RECOMMENDATION_SELECT} WHERE experiment_id = ? AND generated_at >= ? AND generated_at < ?"
                f" UNION ALL {RECOMMENDATION_SELECT} WHERE generated_at >= ? AND generated_at < ?"
                " AND other_assignments <> '' AND json_extract(other_assignments, ?) IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM experiments WHERE experiment_id = ?"
                " AND coalesce(json_extract(body, '$.independent'), 0))"
                " ORDER BY generated_at, recommendation_id",
                (experiment_id, *span, *span, _json_key(experiment_id), experiment_id),
            )
        else:
            rows = self._fetch(
                f"{RECOMMENDATION_SELECT} WHERE generated_at >= ? AND generated_at < ?"
                " ORDER BY generated_at, recommendation_id",
                span,
            )
        return list(map(recommendation_from_row, rows))

    def acquire_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, holder, micros(until, "until"), micros(now, "now")),
            )
            return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def feedback_on(self, recommendation_ids: Sequence[str]) -> list[Feedback]:
        ids = list(dict.fromkeys(recommendation_ids))
        found: list[Feedback] = []
        # In chunks: SQLite caps the number of parameters of one statement.
        for begin in range(0, len(ids), 500):
            chunk = ids[begin : begin + 500]
            rows = self._fetch(f"{FEEDBACK_SELECT} WHERE recommendation_id IN ({', '.join('?' * len(chunk))})", chunk)
            found += map(feedback_from_row, rows)
        return found


_EXPERIMENT_SELECT = "SELECT experiment_id, created_at, stopped_at, body FROM experiments"


def _json_key(key: str) -> str:
    """A JSON path naming one key of an object, whatever characters the key holds."""
    return "$." + json.dumps(key)


def _experiment_from_row(row: Sequence[Any]) -> ExperimentRecord:
    stopped = None if row[2] is None else from_micros(row[2])
    return ExperimentRecord.from_body(row[0], from_micros(row[1]), stopped, json.loads(row[3]))


class SqliteImportSession:
    """An all-or-nothing bulk write: one `BEGIN IMMEDIATE` transaction on a connection of its own.

    Other connections keep reading the last committed state for the whole session; other
    writers wait (and get `UnavailableError` after the busy timeout) until it ends.

    Loading purchases into an empty purchase table (the first import) drops the table's
    secondary indexes and rebuilds them at `commit()`: one sort instead of millions of random
    index inserts, about 1.5x faster. The drop is part of the transaction, so a rollback
    restores them, and readers never see the table without them.

    A `follower` hears of the purchase lines as they are given and, after the commit, of the
    watermark before them: the transaction holds the write lock, so nothing else moved it.
    """

    def __init__(self, store: SqliteStore, follower: ImportFollower | None = None) -> None:
        self._store = store
        self._follower = follower
        self._before: tuple[PurchaseWatermark, bool] | None = None  # (watermark, held no line)
        self._conn: sqlite3.Connection | None = None
        self._committed = False
        self._purchases_prepared = False
        self._deferred_index_sql: list[str] = []

    def __enter__(self) -> SqliteImportSession:
        conn = self._store._connect()
        try:
            with _database_errors_as_unavailable():
                conn.execute(f"PRAGMA cache_size = -{_IMPORT_CACHE_KIB}")
                conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    def __exit__(self, *exc: object) -> None:
        conn = self._open_connection()
        self._conn = None
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            conn.close()

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise FailedPreconditionError(
                "the import session is not open: use it as `with store.import_session() as session:`"
            )
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        conn = self._open_connection()
        if self._committed:
            raise FailedPreconditionError("the import session is already committed")
        return conn

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with _database_errors_as_unavailable():
            self._writable().executemany(sql, rows)

    def add_customers(self, customers: Iterable[Customer]) -> None:
        self._write(UPSERT_CUSTOMER, map(customer_row, customers))

    def add_products(self, products: Iterable[Product]) -> None:
        self._write(UPSERT_PRODUCT, map(product_row, products))

    def add_purchases(self, purchases: Iterable[Purchase]) -> None:
        self._prepare_purchase_load()
        if self._follower is not None:
            purchases = list(purchases)
            self._follower.add(purchase_columns(purchases))
        self._write(UPSERT_PURCHASE, map(purchase_row, purchases))

    def add_purchase_columns(self, columns: PurchaseColumns) -> None:
        rows = columns.rows_with_stores()  # checks the lengths before anything changes
        self._prepare_purchase_load()
        if self._follower is not None:
            self._follower.add(columns)
        self._write(UPSERT_PURCHASE_COLUMNS, rows)

    def add_purchase_shares(self, shares: PurchaseShares, workers: int, lines: Iterable[PurchaseColumns]) -> None:
        for batch in lines:  # one transaction, one writer: written here
            self.add_purchase_columns(batch)

    def _prepare_purchase_load(self) -> None:
        if self._purchases_prepared:
            return
        conn = self._writable()
        with _database_errors_as_unavailable():
            held_none = bool(conn.execute("SELECT NOT EXISTS (SELECT 1 FROM purchase_history)").fetchone()[0])
            self._before = (_purchase_watermark(conn), held_none)
            if held_none:
                indexes = conn.execute(
                    "SELECT name, sql FROM sqlite_master"
                    " WHERE type = 'index' AND tbl_name = 'purchase_history' AND sql IS NOT NULL"
                ).fetchall()
                for name, sql in indexes:
                    conn.execute(f'DROP INDEX "{name}"')
                    self._deferred_index_sql.append(sql)
        self._purchases_prepared = True

    def commit(self) -> None:
        conn = self._writable()
        with _database_errors_as_unavailable():
            for sql in self._deferred_index_sql:
                conn.execute(sql)
            if self._purchases_prepared:  # copies of the history must be read again
                conn.execute(_BUMP_PURCHASE_EPOCH)
            conn.execute("COMMIT")
        self._committed = True
        if self._follower is not None and self._before is not None:
            before, held_none = self._before
            after = dataclasses.replace(before, epoch=before.epoch + 1)  # the bump above
            self._follower.imported(ImportedPurchases(before, held_none, after))
        # The commit copied the import into the database file; empty the WAL it went through
        # now rather than leave a file as big as the import on disk. Best effort: busy readers
        # may keep part of it until a later checkpoint, which is harmless.
        with suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
