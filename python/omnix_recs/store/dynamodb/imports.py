"""Large writes and `import_session()`: validated row by row, idempotent, undone on failure.

A DynamoDB transaction holds a few dozen items at most (`TRANSACTION_MAX`), not an import. So
every key is derived from its row (importing again rewrites identical rows), and before each
chunk is written the rows it overwrites are read into an undo journal; an import that fails or
ends without `commit()` replays it newest first. Not promised: isolation (rows show as their
chunks land; the undo assumes no other writer of those rows), nor undo when the process itself
dies (run the import again).

A resumable session (`omnix import ... --resumable`, for imports too large to undo) keeps no
undo journal, which also spares the read before each write. Instead it checkpoints, in the
models table, how many of the rows it was given are written (every chunk up to there landed)
and a digest of those rows. The same import run again after a crash, a kill or a failure
digests the rows it is given without writing them up to the checkpoint, then continues; rows
that differ from the checkpointed ones (another import) are written from the start instead, or,
when only later rows differ, refused (the checkpoint is cleared; run the import once more).
One resumable import per table set at a time.

A resumable import's lines may be written by several processes (`add_purchase_shares`, `omnix
import --workers`): each writes its share in a resumable session of its own, checkpointed as a
map in the same row, and stops when the process that started it is gone.

Either kind moves the purchase epoch before its first line and again when it ends, so a copy of
the history (the training snapshot) read before or during an import, or left by one that died,
is never taken for current. A `follower` hears of every line given and, after a commit, of the
watermark before them and whether another write also moved the epoch meanwhile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import struct
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import IO, Any, Protocol

from omnix_recs import progress
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, OmnixError, UnavailableError
from omnix_recs.store.base import (
    ImportedPurchases,
    ImportFollower,
    PurchaseShares,
    PurchaseWatermark,
    purchase_columns,
)
from omnix_recs.store.dynamodb.client import DynamoClient
from omnix_recs.store.dynamodb.codec import (
    IMPORT_CHECKPOINT_ROW,
    customer_item,
    product_item,
    purchase_item,
    wire_string,
    with_history_headers,
)
from omnix_recs.store.dynamodb.tables import CUSTOMERS, MODELS, PRODUCTS, PURCHASES, TableSpec, without_duplicates

log = logging.getLogger(__name__)

IMPORT_CHUNK = 100  # rows per undo-journal record: one BatchGetItem of their old images
CHECKPOINT_EVERY_S = 2.0  # a resumable session's progress row, at most this often


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
    @property
    def url(self) -> str | None: ...
    @classmethod
    def from_url(cls, url: str) -> ImportTarget: ...
    def close(self) -> None: ...
    def bump_purchase_epoch(self) -> int: ...
    def purchase_watermark(self) -> PurchaseWatermark: ...
    def holds_purchase_lines(self) -> bool: ...


class DynamoImportSession:
    """An `ImportSession` on DynamoDB: idempotent, undone on failure or abandonment, not
    isolated; or, `resumable`, checkpointed and never undone (see the module docstring)."""

    def __init__(
        self,
        store: ImportTarget,
        writers: int = 4,
        *,
        resumable: bool = False,
        follower: ImportFollower | None = None,
        share: tuple[int, int] | None = None,
        parent: int | None = None,
    ) -> None:
        self._store = store
        self._follower = follower
        # (k, n): the k-th of n processes writing one import's lines (`add_purchase_shares`):
        # its checkpoint is its own, and the epoch is the parent session's to move. It stops
        # once `parent`, the process that started it, is gone (killed).
        self._share = share
        self._parent = parent
        # Before the first line: the watermark, whether the store held no line, and whether
        # this session's own epoch move was the only one since the watermark was read.
        self._before: tuple[PurchaseWatermark, bool, bool] | None = None
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
        self._resumable = resumable
        self._rows = 0  # rows given so far, in order (what a checkpoint counts)
        self._digest = hashlib.blake2b(digest_size=16)  # of those rows
        if share is not None:  # a share of another split is another import
            self._digest.update(f"share {share[0]} of {share[1]}".encode())
        self._chunks: deque[_Chunk] = deque()  # submitted, in order, until all before are written
        self._chunk_of: dict[Future[None], _Chunk] = {}
        self._written_upto: _Chunk | None = None  # the last chunk all rows up to which are written
        self._head: _Chunk | None = None  # the first chunk: tells one import from another
        self._checkpointed_at = 0.0
        self._resume: _Checkpoint | None = None  # while skipping what a cut-short run wrote
        self._kept: list[tuple[TableSpec, dict[str, Any], _Chunk]] = []  # its first chunk's rows

    def __enter__(self) -> DynamoImportSession:
        if self._state != "new":
            raise FailedPreconditionError("an import session is used once")
        self._state = "open"
        self._written = self._progress.enter_context(progress.track("write to DynamoDB", unit="items"))
        if self._resumable:
            self._resume = self._read_checkpoint()
            if self._resume is not None:
                log.info("a resumable import was cut short after %d rows: checking they are these", self._resume.rows)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._state == "open" and self._resumable:  # failed or abandoned: keep what landed
                self._stop()
            elif self._state == "open":  # an exception left the block, or commit() never came
                self._roll_back()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._journal.close()
            self._progress.close()
            if self._wrote_products:  # committed or undone, the catalog may have changed
                self._store.bump_catalog_version()
            if self._wrote_purchases:  # and so may the purchase history: its copies are stale
                epoch = self._store.bump_purchase_epoch()
                if self._state == "committed" and self._follower is not None and self._before is not None:
                    before, held_none, alone = self._before
                    after = dataclasses.replace(before, epoch=epoch)
                    alone = alone and epoch == before.epoch + 2  # its two moves only
                    self._follower.imported(ImportedPurchases(before, held_none, after if alone else None))

    def add_customers(self, customers: Iterable[Customer]) -> None:
        self._add(CUSTOMERS, "customers", customer_item, customers)

    def add_products(self, products: Iterable[Product]) -> None:
        self._wrote_products = True
        self._add(PRODUCTS, "products", product_item, products)

    def add_purchases(self, purchases: Iterable[Purchase]) -> None:
        self._start_purchases()
        if self._follower is not None:
            purchases = list(purchases)
            self._follower.add(purchase_columns(purchases))
        self._add(PURCHASES, "purchases", purchase_item, purchases)

    def add_purchase_columns(self, columns: PurchaseColumns) -> None:
        rows = columns.rows_with_stores()  # checks the lengths before anything is written
        self._start_purchases()
        if self._follower is not None:
            self._follower.add(columns)
        self._add(
            PURCHASES,
            "purchases",
            purchase_item,
            (
                Purchase(customer, order, product, quantity, price, datetime.fromtimestamp(seconds, UTC), store)
                for customer, order, product, quantity, price, seconds, store in rows
            ),
        )

    def add_purchase_shares(self, shares: PurchaseShares, workers: int, lines: Iterable[PurchaseColumns]) -> None:
        """Order lines written by `workers` processes (resumable sessions only), the k-th writing
        `shares(k, workers)` in a resumable session of its own, checkpointed apart, while this
        one reads `lines` (the same lines, all of them) for its follower."""
        self._start_purchases()
        if workers <= 1:
            for batch in lines:
                self.add_purchase_columns(batch)
            return
        url = self._store.url
        if not self._resumable or url is None:
            raise FailedPreconditionError(
                "an import over several processes is a resumable one, of a store opened from its URL"
            )
        self._drain()
        self._checkpoint(force=True)  # the rows before the shares: not written again on a rerun
        context = multiprocessing.get_context("spawn")  # no boto3 client or lock crosses a fork
        answers = []
        processes = []
        for k in range(workers):
            answer, reply = context.Pipe(duplex=False)
            process = context.Process(
                target=_write_share,
                args=(type(self._store).from_url, url, shares, (k, workers), self._writers, os.getpid(), reply),
                name=f"omnix-import-{k}-of-{workers}",
            )
            process.start()
            reply.close()  # the child's end: once it is gone, reading says so
            answers.append(answer)
            processes.append(process)
        try:
            for batch in lines:
                if self._follower is not None:
                    self._follower.add(batch)
            outcomes = [_outcome(answer, process) for answer, process in zip(answers, processes)]
        except BaseException:
            for process in processes:  # stopped as a kill stops them: what landed is checkpointed
                process.terminate()
            raise
        finally:
            for answer, process in zip(answers, processes):
                process.join()
                answer.close()
        for written, _ in outcomes:
            self._written.advance(written)
        failed = next((failure for _, failure in outcomes if failure is not None), None)
        if failed is not None:
            kind, field, message = failed
            if kind == InvalidArgumentError.__name__:
                raise InvalidArgumentError(field, message)
            if kind == FailedPreconditionError.__name__:
                raise FailedPreconditionError(message)
            raise UnavailableError(message)

    def _start_purchases(self) -> None:
        """Before the first line: move the epoch, so that no copy of the history is taken for
        current while lines land, nor after this process dies midway (`__exit__` moves it again)."""
        self._require_open()
        if self._wrote_purchases or self._share is not None:
            return
        self._wrote_purchases = True
        read = self._store.purchase_watermark()
        moved = self._store.bump_purchase_epoch()
        held_none = self._follower is not None and not self._store.holds_purchase_lines()
        self._before = (read, held_none, moved == read.epoch + 1)

    def add_items(self, spec: TableSpec, items: Sequence[dict[str, Any]]) -> None:
        """Already encoded items with distinct keys (the store's own large writes)."""
        self._require_open()
        if self._resumable:
            raise FailedPreconditionError("a resumable import session takes rows, not encoded items")
        for start in range(0, len(items), IMPORT_CHUNK):
            self._submit(spec, list(items[start : start + IMPORT_CHUNK]))

    def commit(self) -> None:
        self._require_open()
        try:
            if self._resume is not None and self._rows < self._resume.head_rows:
                self._start_over()  # shorter than the cut-short run's first chunk: another import
            self._drain()
            if self._resume is not None:  # fewer rows than the cut-short run had written
                self._clear_checkpoint()
                raise FailedPreconditionError(
                    f"this import has {self._rows} rows, the resumable import that was cut short "
                    f"had written {self._resume.rows}: not the same import"
                )
        except BaseException:
            if not self._resumable:
                self._roll_back()
            raise
        if self._resumable:
            self._clear_checkpoint()
        self._state = "committed"

    def _add(self, spec: TableSpec, kind: str, encode: Callable[[Any], dict[str, Any]], rows: Iterable[Any]) -> None:
        self._require_open()
        chunk: list[dict[str, Any]] = []
        for n, row in enumerate(rows):
            if self._resumable:
                self._rows += 1
                self._digest.update(repr(row).encode())
                if self._resume is not None and self._skips(spec, kind, encode, row):
                    continue
            try:
                chunk.append(encode(row))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"{kind}[{n}].{error.field}", error.message) from None
            if len(chunk) == IMPORT_CHUNK:
                self._submit_rows(spec, chunk)
                chunk = []
        if chunk:
            self._submit_rows(spec, chunk)

    def _skips(self, spec: TableSpec, kind: str, encode: Callable[[Any], dict[str, Any]], row: Any) -> bool:
        """Whether `row` (the `_rows`-th) was written by the cut-short run, so is not written
        again. Its first chunk's rows are kept until they prove it is the same import."""
        resume = self._resume
        assert resume is not None  # the caller checks
        if self._rows <= resume.head_rows:
            self._kept.append((spec, encode(row), _Chunk(self._rows, self._digest.hexdigest())))
            if self._rows < resume.head_rows:
                return True
            if self._digest.hexdigest() != resume.head:
                self._start_over()
                return True  # written with the kept rows
            self._kept = []
            self._head = _Chunk(resume.head_rows, resume.head)
        if self._rows < resume.rows:
            return True
        if self._digest.hexdigest() != resume.digest:
            self._clear_checkpoint()
            raise FailedPreconditionError(
                f"the first {resume.rows} rows of this import differ from those of the resumable import "
                "that was cut short; its checkpoint is now cleared: run this import again"
            )
        log.info("resuming: %d rows were written by the run that was cut short", resume.rows)
        self._resume = None
        return True

    def _start_over(self) -> None:
        """The cut-short run was another import: write this one from its first row."""
        log.warning("the resumable import that was cut short was another one: this one starts from its first row")
        self._resume = None
        kept, self._kept = self._kept, []
        while kept:  # in chunks of one table each, each checkpointed at its own last row
            run = 1
            while run < min(len(kept), IMPORT_CHUNK) and kept[run][0] is kept[0][0]:
                run += 1
            spec, items, at = kept[0][0], [item for _, item, _ in kept[:run]], kept[run - 1][2]
            self._submit_rows(spec, items, at)
            del kept[:run]

    def _submit_rows(self, spec: TableSpec, chunk: list[dict[str, Any]], at: _Chunk | None = None) -> None:
        items = without_duplicates(spec, chunk)
        if spec is PURCHASES:
            items = with_history_headers(items, self._purchasers)
        self._submit(spec, items, at)

    def _submit(self, spec: TableSpec, items: list[dict[str, Any]], at: _Chunk | None = None) -> None:
        if self._parent is not None and os.getppid() != self._parent:
            raise UnavailableError("the import that started this process is gone")
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
        future = self._pool.submit(self._write_chunk, spec, items)
        self._in_flight[future] = keys
        if self._resumable:
            chunk = self._chunk_of[future] = at or _Chunk(self._rows, self._digest.hexdigest())
            self._chunks.append(chunk)
            self._head = self._head or chunk

    def _collect_finished(self) -> None:
        """Forget finished chunks, raising the first failure among them."""
        finished = [future for future in self._in_flight if future.done()]
        for future in finished:
            del self._in_flight[future]
        for future in finished:
            future.result()
            if self._resumable:
                self._chunk_of.pop(future).written = True
        if self._resumable:
            self._checkpoint(force=False)

    def _write_chunk(self, spec: TableSpec, items: list[dict[str, Any]]) -> None:
        db, name = self._store.db, self._store.table_names[spec.table]
        if not self._resumable:
            keys = [spec.key_of(item) for item in items]
            before = {spec.key_tuple(old): old for old in db.batch_get(name, keys, ConsistentRead=True)}
            # Write-ahead: the old images are journaled before anything is overwritten.
            self._journal.append([(name, key, before.get(spec.key_tuple(key))) for key in keys])
        db.batch_write([(name, {"PutRequest": {"Item": item}}) for item in items])
        self._written.advance(len(items))

    def _drain(self) -> None:
        wait(self._in_flight)
        self._collect_finished()

    # --- a resumable session's checkpoint ---------------------------------------------------

    @property
    def _models(self) -> str:
        return self._store.table_names[MODELS.table]

    def _read_checkpoint(self) -> _Checkpoint | None:
        item = self._store.db.call("get_item", TableName=self._models, Key=_CHECKPOINT_KEY, ConsistentRead=True)
        row = item.get("Item") or {}
        if self._share is not None:  # a share's progress is a map in the same row
            row = row.get(self._share_attribute, {}).get("M", {})
        if "rows" not in row:
            return None
        return _Checkpoint(
            rows=int(row["rows"]["N"]),
            digest=row["digest"]["S"],
            head_rows=int(row["headRows"]["N"]),
            head=row["head"]["S"],
        )

    @property
    def _share_attribute(self) -> str:
        assert self._share is not None
        return f"share{self._share[0]}of{self._share[1]}"

    def _checkpoint(self, *, force: bool) -> None:
        """Record how far every row is written, at most every `CHECKPOINT_EVERY_S` unless `force`."""
        while self._chunks and self._chunks[0].written:
            self._written_upto = self._chunks.popleft()
        upto, head = self._written_upto, self._head
        if upto is None or head is None or self._resume is not None:
            return  # nothing written yet, or still behind what the last run wrote
        now = time.monotonic()
        if not force and now - self._checkpointed_at < CHECKPOINT_EVERY_S:
            return
        self._checkpointed_at = now
        progress = {
            "rows": {"N": str(upto.rows)},
            "digest": wire_string(upto.digest),
            "headRows": {"N": str(head.rows)},
            "head": wire_string(head.digest),
            "updatedAt": wire_string(datetime.now(UTC).isoformat()),
        }
        # An update of this session's own attributes: the shares of one import write theirs
        # into the same row at the same time.
        fields = {self._share_attribute: {"M": progress}} if self._share is not None else progress
        names = {f"#f{n}": name for n, name in enumerate(fields)}
        self._store.db.call(
            "update_item",
            TableName=self._models,
            Key=_CHECKPOINT_KEY,
            UpdateExpression="SET " + ", ".join(f"#f{n} = :f{n}" for n in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":f{n}": value for n, value in enumerate(fields.values())},
        )

    def _clear_checkpoint(self) -> None:
        """The whole row for the import itself (its shares are done by then), a share's own map."""
        if self._share is None:
            self._store.db.call("delete_item", TableName=self._models, Key=_CHECKPOINT_KEY)
            return
        self._store.db.call(
            "update_item",
            TableName=self._models,
            Key=_CHECKPOINT_KEY,
            UpdateExpression="REMOVE #share",
            ExpressionAttributeNames={"#share": self._share_attribute},
        )

    def _stop(self) -> None:
        """A resumable session that failed or was abandoned: what landed stays, checkpointed."""
        self._state = "stopped"
        for future in self._in_flight:
            future.cancel()  # not started: not written
        wait(self._in_flight)
        for future, chunk in list(self._chunk_of.items()):
            if not future.cancelled() and future.exception() is None:
                chunk.written = True
        self._in_flight.clear()
        try:
            self._checkpoint(force=True)
        except UnavailableError as error:
            log.error(
                "the resumable import's checkpoint could not be written (%s): it resumes from an older one", error
            )
        rows = self._written_upto.rows if self._written_upto else 0
        log.error("the resumable import stopped with its first %d rows written: run it again to continue", rows)

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


_CHECKPOINT_KEY = {"version": wire_string(IMPORT_CHECKPOINT_ROW)}


def _write_share(
    opener: Callable[[str], ImportTarget],
    url: str,
    shares: PurchaseShares,
    share: tuple[int, int],
    writers: int,
    parent: int,
    reply: Connection,
) -> None:
    """In a process of its own: open the store (`opener(url)`: the store's class method, so this
    module names no store), write share `share` of the lines, then send (lines written, the
    failure as (class name, field, message) or None): exceptions do not cross whole."""
    lines, failure = 0, None
    store = opener(url)
    try:
        with DynamoImportSession(store, writers, resumable=True, share=share, parent=parent) as session:
            for batch in shares(*share):
                session.add_purchase_columns(batch)
                lines += len(batch)
            session.commit()
    except InvalidArgumentError as error:
        failure = (type(error).__name__, error.field, error.message)
    except OmnixError as error:
        failure = (type(error).__name__, "", str(error))
    finally:
        store.close()
    with contextlib.suppress(OSError):  # the import that waits for it may be gone (killed)
        reply.send((lines, failure))
    reply.close()


def _outcome(answer: Connection, process: BaseProcess) -> tuple[int, tuple[str, str, str] | None]:
    """What a share's process sent, or its death as a failure."""
    try:
        outcome: tuple[int, tuple[str, str, str] | None] = answer.recv()
        return outcome
    except EOFError:  # it died before answering (killed, out of memory)
        process.join()
        return 0, ("UnavailableError", "", f"the import process {process.name} died (exit code {process.exitcode})")


class _Chunk:
    """A submitted chunk of a resumable session: the rows given up to its end and their digest."""

    __slots__ = ("digest", "rows", "written")

    def __init__(self, rows: int, digest: str) -> None:
        self.rows = rows
        self.digest = digest
        self.written = False


@dataclass(frozen=True)
class _Checkpoint:
    rows: int  # every row up to here is written
    digest: str  # of those rows
    head_rows: int  # the first chunk's rows
    head: str  # and their digest
