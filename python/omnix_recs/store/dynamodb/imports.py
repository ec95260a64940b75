"""Large writes and `import_session()`: validated row by row, idempotent, undone on failure.

A DynamoDB transaction holds a few dozen items at most (`TRANSACTION_MAX`), not an import. So
every key is derived from its row (importing again rewrites identical rows), and before each
chunk is written the rows it overwrites are read into an undo journal; an import that fails or
ends without `commit()` replays it newest first. Not promised: isolation (rows show as their
chunks land; the undo assumes no other writer of those rows), nor undo when the process itself
dies (run the import again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from omnix_recs import progress
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from omnix_recs.store.dynamodb.client import DynamoClient
from omnix_recs.store.dynamodb.codec import customer_item, product_item, purchase_item, with_history_headers
from omnix_recs.store.dynamodb.tables import CUSTOMERS, PRODUCTS, PURCHASES, TableSpec, without_duplicates

log = logging.getLogger(__name__)

IMPORT_CHUNK = 100  # rows per undo-journal record: one BatchGetItem of their old images


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
            yield from map(tuple, reversed(json.loads(zlib.decompress(record))))  # JSON gave lists

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class ImportTarget(Protocol):
    """What a session needs of the store it writes into. Not `DynamoStore` itself: the store
    opens sessions, so naming it here would tie the two modules in a circle."""

    @property
    def db(self) -> DynamoClient: ...
    @property
    def table_names(self) -> Mapping[str, str]: ...
    def bump_catalog_version(self) -> None: ...
    def bump_purchase_watermark(self, *, epoch: bool) -> None: ...


class DynamoImportSession:
    """An `ImportSession` on DynamoDB: idempotent, undone on failure or abandonment, not
    isolated (see the module docstring)."""

    def __init__(self, store: ImportTarget, writers: int = 4) -> None:
        self._store = store
        self._journal = UndoJournal()
        self._writers = writers
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="omnix-dynamo-import")
        self._in_flight: dict[Future[None], frozenset[tuple[str, ...]]] = {}  # chunk -> its keys
        self._purchasers: set[str] = set()  # customers whose "#history" row this session wrote
        self._wrote_products = False
        self._wrote_purchases = False
        self._state = "new"  # then "open" inside `with`, then "committed" or "rolled back"
        self._progress = contextlib.ExitStack()
        self._written = progress.Task("", None, "items", None)  # shown once the session opens

    def __enter__(self) -> DynamoImportSession:
        if self._state != "new":
            raise FailedPreconditionError("an import session is used once")
        self._state = "open"
        self._written = self._progress.enter_context(progress.track("write to DynamoDB", unit="items"))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._state == "open":  # an exception left the block, or commit() never came
                self._roll_back()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._journal.close()
            self._progress.close()
            if self._wrote_products:  # committed or undone, the catalog may have changed
                self._store.bump_catalog_version()
            if self._wrote_purchases:  # and so may the purchase history: its copies are stale
                self._store.bump_purchase_watermark(epoch=True)

    def add_customers(self, customers: Iterable[Customer]) -> None:
        self._add(CUSTOMERS, "customers", customer_item, customers)

    def add_products(self, products: Iterable[Product]) -> None:
        self._wrote_products = True
        self._add(PRODUCTS, "products", product_item, products)

    def add_purchases(self, purchases: Iterable[Purchase]) -> None:
        self._wrote_purchases = True
        self._add(PURCHASES, "purchases", purchase_item, purchases)

    def add_purchase_columns(self, columns: PurchaseColumns) -> None:
        self.add_purchases(
            Purchase(customer, order, product, quantity, price, datetime.fromtimestamp(seconds, UTC), store)
            for customer, order, product, quantity, price, seconds, store in columns.rows_with_stores()
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
        items = without_duplicates(spec, chunk)
        if spec is PURCHASES:
            items = with_history_headers(items, self._purchasers)
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
        self._written.advance(len(items))

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
