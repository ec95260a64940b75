"""The training snapshot: every order line training reads, as numpy columns on local disk.

Scanning the purchase table costs about a minute at Instacart scale on SQLite and far more on
DynamoDB; loading the same lines from `.npy` files costs about a second. The snapshot is a copy
of the store's purchase history, so it must never be trained on stale, nor keep what an erasure
removed. It records the store's `PurchaseWatermark` at the moment it was read:

- same watermark as the store: used as it is;
- same epoch, later sequence: the lines appended since (`Store.purchases_appended_since`) are
  added, and a new generation is written;
- anything else (another epoch: an import or an erasure; a store without a journal; a missing,
  corrupted or foreign-format snapshot): rebuilt from `Store.scan_purchases`, with a log line.

An import hands the lines it gives its session to an `ImportedLines` (the session's
`ImportFollower`); `after_import` adds them to the snapshot without reading the store when the
snapshot was current just before the import (or the store held no line) and nothing but the
import moved the epoch meanwhile, and rebuilds otherwise, saying why. It writes only after the
import committed: an import that failed or died leaves the previous generation, behind the
epoch the import moved.

`erase_customer` scrubs a customer's lines from the snapshot in place (the store's erasure then
moved the epoch by one, which the scrub records); when it cannot be sure it is the only change,
it leaves the epoch behind and the next training rebuilds.

Layout of the directory (one writer at a time holds `lock`):

    lock                    flock(2) target
    current                 symlink to the live generation, replaced by an atomic rename
    gen-<n>/manifest.json   format, version, row counts, watermark; written last
    gen-<n>/<column>.npy    customer, item, basket (int32 codes per line), purchased_at (int64 s)
    gen-<n>/<ids>.bytes     customer, item and order ids: UTF-8 concatenated, with
    gen-<n>/<ids>.offsets.npy   int64 offsets (order ids are per basket)

A crash while writing leaves `current` on the previous generation; the leftovers are removed by
the next writer. Rows are in no particular order (appends go at the end); scrubbed rows have
item -1 and are dropped by `lines()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnix_recs.domain.purchases import PurchaseColumns, basket_codes
from omnix_recs.store.base import ImportedPurchases, PurchaseWatermark, Store

log = logging.getLogger(__name__)

FORMAT = "omnix-training-snapshot"
FORMAT_VERSION = 2  # 2: baskets numbered in order of first sight, not of their hashes
LINE_COLUMNS = {"customer": np.int32, "item": np.int32, "basket": np.int32, "purchased_at": np.int64}
ID_LISTS = ("customer_ids", "item_ids", "order_ids")
_CURRENT = "current"
_LOCK = "lock"

# Mixes the customer into an order's hash, so two customers' orders with the same id stay
# separate baskets while factorising (order ids are only unique per customer).
_CUSTOMER_MIX = np.uint64(0x9E3779B97F4A7C15)


class SnapshotError(Exception):
    """The snapshot on disk is unusable (missing file, wrong format, inconsistent sizes)."""


@dataclass(frozen=True)
class TrainingSnapshot:
    """One generation, loaded: line columns (memory-mapped) and the id lists they index.

    Line i is customer `customer_ids[customer[i]]` buying `item_ids[item[i]]` in basket
    `basket[i]` (whose order id is `order_ids[basket[i]]`) at `purchased_at[i]` (epoch s)."""

    customer: np.ndarray
    item: np.ndarray  # -1 on a scrubbed line
    basket: np.ndarray
    purchased_at: np.ndarray
    customer_ids: list[str]
    item_ids: list[str]
    order_ids: _IdList
    watermark: PurchaseWatermark
    source: str  # which store it copies (`location`)
    path: Path

    def __len__(self) -> int:
        return len(self.item)


class _IdList:
    """Strings stored as one UTF-8 blob plus offsets, decoded on demand (order ids are millions:
    only the few an append needs are ever decoded)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return bytes(self.blob[self.offsets[index] : self.offsets[index + 1]]).decode()

    def all(self) -> list[str]:
        data = bytes(self.blob)
        bounds = self.offsets.tolist()
        return [data[a:b].decode() for a, b in zip(bounds[:-1], bounds[1:])]

    @classmethod
    def of(cls, values: list[str]) -> _IdList:
        return cls(np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)).extended(values)

    def extended(self, values: list[str]) -> _IdList:
        """These ids followed by `values` (the existing ones are not decoded)."""
        if not values:
            return self
        encoded = [value.encode() for value in values]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        blob = np.concatenate([np.asarray(self.blob), np.frombuffer(b"".join(encoded), dtype=np.uint8)])
        offsets = np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(lengths)])
        return _IdList(blob, offsets)


# --- reading -----------------------------------------------------------------------------------


def load(directory: Path) -> TrainingSnapshot | None:
    """The live generation, or None when there is none. `SnapshotError` when it is unusable."""
    current = directory / _CURRENT
    if not current.is_symlink() and not current.exists():
        return None
    path = directory / os.readlink(current) if current.is_symlink() else current
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"no readable manifest in {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not an omnix training snapshot")
    if manifest.get("version") != FORMAT_VERSION:
        raise SnapshotError(f"{path} has format version {manifest.get('version')!r}, this omnix reads {FORMAT_VERSION}")
    try:
        rows, watermark = int(manifest["rows"]), manifest["watermark"]
        columns = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in LINE_COLUMNS}
        ids = {name: _load_ids(path, name) for name in ID_LISTS}
        snapshot = TrainingSnapshot(
            **columns,
            customer_ids=ids["customer_ids"].all(),
            item_ids=ids["item_ids"].all(),
            order_ids=ids["order_ids"],
            watermark=PurchaseWatermark(
                epoch=int(watermark["epoch"]),
                sequence=int(watermark["sequence"]),
                shards=tuple(int(position) for position in watermark.get("shards", ())),
            ),
            source=str(manifest["source"]),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read {path}: {exc}") from exc
    _check(snapshot, rows)
    return snapshot


def _load_ids(path: Path, name: str) -> _IdList:
    offsets = np.load(path / f"{name}.offsets.npy")
    blob = np.fromfile(path / f"{name}.bytes", dtype=np.uint8)
    if offsets.dtype != np.int64 or offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0:
        raise SnapshotError(f"{path / name}.offsets.npy is malformed")
    if offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0):
        raise SnapshotError(f"{path / name}.bytes does not match its offsets")
    return _IdList(blob, offsets)


def _check(s: TrainingSnapshot, rows: int) -> None:
    """Shapes, types and code ranges: what a truncated or foreign file would get wrong."""
    for name, dtype in LINE_COLUMNS.items():
        column = getattr(s, name)
        if column.dtype != dtype or column.shape != (rows,):
            raise SnapshotError(f"{s.path / name}.npy holds {column.dtype}{column.shape}, expected {rows} {dtype}")
    if rows == 0:
        return
    limits = {"customer": len(s.customer_ids), "item": len(s.item_ids), "basket": len(s.order_ids)}
    for name, limit in limits.items():
        column = getattr(s, name)
        low = -1 if name == "item" else 0
        if int(column.min()) < low or int(column.max()) >= limit:
            raise SnapshotError(f"{s.path / name}.npy has codes outside its id list ({limit} ids)")


# --- keeping it fresh --------------------------------------------------------------------------


def location(store: Store, configured: str, store_url: str) -> tuple[Path, str] | None:
    """(directory, source) of the store's snapshot: `configured` (OMNIX_SNAPSHOT_DIR) when set,
    none when it is "off", else beside a SQLite database file (DynamoDB has no default: a
    training host's local disk is the operator's choice). `source` names the store, so a
    directory pointed at another store is rebuilt rather than trusted."""
    if configured == "off":
        return None
    # The SQLite store's file (an attribute, so it is seen through wrappers such as guard_store).
    database = getattr(store, "path", None)
    source = str(database.resolve()) if isinstance(database, Path) else store_url
    if configured:
        return Path(configured), source
    if isinstance(database, Path):
        return database.with_name(f"{database.name}.snapshot"), source
    return None


def fresh(store: Store, directory: Path, source: str) -> TrainingSnapshot:
    """The snapshot brought up to the store's current purchase history (see the module doc)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        return _fresh(store, directory, source)


def _fresh(store: Store, directory: Path, source: str) -> TrainingSnapshot:
    try:
        snapshot = load(directory)
    except SnapshotError as exc:
        log.warning("training snapshot unusable, rebuilding it from the store: %s", exc)
        snapshot = None
    if snapshot is not None and snapshot.source != source:
        log.warning("training snapshot in %s copies %s, not %s: rebuilding it", directory, snapshot.source, source)
        snapshot = None
    if snapshot is not None:
        current = store.purchase_watermark()
        if current == snapshot.watermark:
            return snapshot
        appended = store.purchases_appended_since(snapshot.watermark)
        if appended is not None:
            lines, watermark = appended
            started = time.perf_counter()
            snapshot = _write(directory, *_appended(snapshot, lines), watermark, source)
            log.info("training snapshot: %d appended lines added in %.1f s", len(lines), time.perf_counter() - started)
            return snapshot
        log.info(
            "training snapshot at %s, the store at %s: rebuilding it from the store",
            snapshot.watermark,
            current,
        )
    return _rebuild(store, directory, source)


def rebuild(store: Store, directory: Path, source: str) -> TrainingSnapshot:
    """A new snapshot from a whole scan of the store (e.g. right after an import)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        return _rebuild(store, directory, source)


class ImportedLines:
    """The lines an import gives its session, as codes (about 24 bytes a line and one order id
    per basket), and how the import moved the watermark: the store's `ImportFollower` for
    `after_import`."""

    def __init__(self) -> None:
        self._lines = _Factoriser()
        self._distinct: _Columns | None = None
        self.moved: ImportedPurchases | None = None  # told by the session once it committed

    def __len__(self) -> int:
        return self._lines.rows

    def add(self, lines: PurchaseColumns) -> None:
        self._lines.add(lines)

    def imported(self, moved: ImportedPurchases) -> None:
        self.moved = moved

    def distinct(self) -> _Columns:
        """The lines heard of, each distinct line (customer, order, product, time) once, as
        columns and id lists; computed once, later calls return the same."""
        if self._distinct is None:
            self._distinct = self._lines.finish(distinct=True)
        return self._distinct


def after_import(store: Store, directory: Path, source: str, imported: ImportedLines) -> TrainingSnapshot:
    """The snapshot after an import that committed: its lines added to the snapshot as it was
    just before (or alone, when the store held none), without reading the store, when nothing
    else moved the epoch meanwhile; otherwise rebuilt, with a log line saying why. Exactly the
    lines, customers, products and baskets a rebuild would hold."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        moved = imported.moved
        if moved is None:  # no line imported: the history is what it was
            return _fresh(store, directory, source)
        base, reason = _base_for(directory, source, moved)
        if reason or moved.after is None:
            log.info(
                "training snapshot: %s: rebuilding it from the store",
                reason or "another write (an erasure, another import) moved the purchase epoch during the import",
            )
            return _rebuild(store, directory, source)
        started = time.perf_counter()
        lines, given = imported._lines, len(imported)
        if base is not None:
            lines.add_snapshot(base)
        # From the snapshot's own sequence: what was journaled since (during the import too) is
        # added by the next `fresh`, and lines it holds already are dropped there.
        watermark = dataclasses.replace(moved.before if base is None else base.watermark, epoch=moved.after.epoch)
        snapshot = _write(directory, *lines.finish(distinct=True), watermark, source)
        log.info(
            "training snapshot: %d imported lines added to %d without reading the store in %.1f s",
            given,
            0 if base is None else len(base),
            time.perf_counter() - started,
        )
        return snapshot


def write_lines(directory: Path, source: str, lines: ImportedLines, watermark: PurchaseWatermark) -> TrainingSnapshot:
    """A new snapshot of exactly `lines` (`ImportedLines.distinct()`, each line once) at
    `watermark`: for a load into new tables whose watermark is known beforehand (a bulk load,
    store/dynamodb/bulk.py), so nothing is read from the store."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        started = time.perf_counter()
        snapshot = _write(directory, *lines.distinct(), watermark, source)
        log.info("training snapshot: %d loaded lines written in %.1f s", len(snapshot), time.perf_counter() - started)
        return snapshot


def _base_for(directory: Path, source: str, moved: ImportedPurchases) -> tuple[TrainingSnapshot | None, str]:
    """(the snapshot the import's lines go on, None for none; why they cannot, "" when they can)."""
    if moved.held_none:
        return None, ""
    try:
        base = load(directory)
    except SnapshotError as exc:
        return None, f"the snapshot is unusable ({exc})"
    if base is None:
        return None, "there was no snapshot before the import"
    if base.source != source:
        return None, f"the snapshot copies {base.source}, not {source}"
    if not moved.before.covers(base.watermark):
        return None, (
            f"the snapshot (at {base.watermark.text()}) was not current before the import ({moved.before.text()})"
        )
    return base, ""


def rebuild_from(
    directory: Path, source: str, batches: Iterable[PurchaseColumns], watermark: PurchaseWatermark
) -> TrainingSnapshot:
    """A new snapshot from `batches` holding the store's history as of `watermark` or later,
    e.g. a DynamoDB export to S3 requested after reading the watermark
    (store/dynamodb/export.py): the next `fresh` adds what the store journaled since, and
    drops the lines both hold."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        started = time.perf_counter()
        snapshot = _write(directory, *_factorised(batches), watermark, source)
        log.info(
            "training snapshot: %d lines read from an export in %.1f s", len(snapshot), time.perf_counter() - started
        )
        return snapshot


def _rebuild(store: Store, directory: Path, source: str) -> TrainingSnapshot:
    started = time.perf_counter()
    watermark = store.purchase_watermark()  # first: a write during the scan shows as newer
    snapshot = _write(directory, *_factorised(store.scan_purchases_unordered()), watermark, source)
    log.info("training snapshot: %d lines read from the store in %.1f s", len(snapshot), time.perf_counter() - started)
    return snapshot


def erase_customer(store: Store, directory: Path, customer_id: str) -> None:
    """Scrub `customer_id`'s lines and id from the snapshot (after `store.delete_customer`).

    The scrub overwrites in place (item -1, time 0, ids zeroed) and is flushed before the
    manifest moves to the store's epoch; it moves only when the snapshot was exactly one epoch
    behind, i.e. this erasure was the only change since. While a training holds the snapshot
    (a rebuild takes a minute), the scrub waits for it in a thread rather than hold up the
    erasure; what that training writes is an epoch behind, so it is never trained on."""
    if not (directory / _CURRENT).is_symlink():
        return
    try:
        with _locked(directory, blocking=False):
            _erase_locked(store, directory, customer_id)
    except BlockingIOError:
        threading.Thread(
            target=_erase_when_free, args=(store, directory, customer_id), name="omnix-snapshot-erase", daemon=True
        ).start()


def _erase_when_free(store: Store, directory: Path, customer_id: str) -> None:
    try:
        with _locked(directory):
            _erase_locked(store, directory, customer_id)
    except Exception:  # a thread of its own: nobody else would hear of it
        log.exception("scrubbing an erased customer from the training snapshot in %s failed", directory)


def _erase_locked(store: Store, directory: Path, customer_id: str) -> bool:
    try:
        snapshot = load(directory)
    except SnapshotError as exc:
        log.warning("training snapshot unusable, removing it: %s", exc)
        _remove_generations(directory, keep=None)
        return False
    if snapshot is None:
        return False
    found = _scrub(snapshot, customer_id)
    current = store.purchase_watermark()
    if current.epoch == snapshot.watermark.epoch + 1:
        # The epoch only: lines appended since the snapshot's sequence are still to be read.
        moved = dataclasses.replace(snapshot.watermark, epoch=current.epoch)
        _write_manifest(snapshot.path, len(snapshot), moved, snapshot.source, _counts(snapshot))
    return found


def _scrub(snapshot: TrainingSnapshot, customer_id: str) -> bool:
    try:
        code = snapshot.customer_ids.index(customer_id)
    except ValueError:
        return False
    path = snapshot.path
    customer = np.load(path / "customer.npy", mmap_mode="r")
    rows = np.flatnonzero(customer == code)
    baskets = np.unique(np.asarray(np.load(path / "basket.npy", mmap_mode="r"))[rows])
    for name, value in (("item", -1), ("purchased_at", 0)):
        column = np.load(path / f"{name}.npy", mmap_mode="r+")
        column[rows] = value
        column.flush()
    _zero_ids(path, "customer_ids", np.array([code]))
    _zero_ids(path, "order_ids", baskets)
    return True


def _zero_ids(path: Path, name: str, indexes: np.ndarray) -> None:
    offsets = np.load(path / f"{name}.offsets.npy")
    blob = np.memmap(path / f"{name}.bytes", dtype=np.uint8, mode="r+")
    for index in indexes.tolist():
        blob[offsets[index] : offsets[index + 1]] = 0
    blob.flush()


@contextlib.contextmanager
def _locked(directory: Path, *, blocking: bool = True) -> Iterator[None]:
    """The snapshot's writer lock; `BlockingIOError` at once when taken and not `blocking`."""
    with open(directory / _LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- building columns ----------------------------------------------------------------------------


_Columns = tuple[dict[str, np.ndarray], list[str], list[str], _IdList]


def _factorised(batches: Iterable[PurchaseColumns]) -> _Columns:
    """Lines from a scan as codes: customers and items in id order, baskets per (customer, order)."""
    lines = _Factoriser()
    for batch in batches:
        lines.add(batch)
    return lines.finish(distinct=False)  # a scan reads each stored line once


class _Factoriser:
    """Lines as codes, batch by batch: customers and items coded by first sight (sorted by id
    at the end), baskets by a hash of (customer, order id)."""

    def __init__(self) -> None:
        self.customers, self.items = _NextCode(), _NextCode()
        self.order_of_key: dict[int, str] = {}
        self.parts: dict[str, list[np.ndarray]] = {"customer": [], "item": [], "key": [], "purchased_at": []}
        self.rows = 0

    def add(self, batch: PurchaseColumns) -> None:
        if len(batch) == 0:
            return
        customer = _codes(self.customers, batch.customer_ids)
        order_hash = np.fromiter(map(hash, batch.order_ids), dtype=np.int64, count=len(batch)).view(np.uint64)
        key = order_hash ^ (customer.astype(np.uint64) * _CUSTOMER_MIX)
        # A basket's lines are usually adjacent (scans go by customer, then time): one order id
        # per run of equal keys rather than per line.
        runs = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        for k, i in zip(key[runs].tolist(), runs.tolist()):
            self.order_of_key.setdefault(k, batch.order_ids[i])
        self._append(customer, _codes(self.items, batch.product_ids), key, batch.purchased_at)

    def add_snapshot(self, snapshot: TrainingSnapshot) -> None:
        """The snapshot's live lines (not scrubbed ones, nor ids only those had), as codes of this
        factoriser: only the ids and order ids its lines use are decoded and hashed."""
        kept = np.flatnonzero(np.asarray(snapshot.item) >= 0)
        if len(kept) == 0:
            return
        lines = {name: np.asarray(getattr(snapshot, name))[kept] for name in LINE_COLUMNS}
        codes = {}
        for name, ids in (("customer", snapshot.customer_ids), ("item", snapshot.item_ids)):
            used = np.unique(lines[name])
            ours = np.zeros(len(ids), dtype=np.int32)
            ours[used] = _codes(self.customers if name == "customer" else self.items, [ids[i] for i in used.tolist()])
            codes[name] = ours[lines[name]]
        baskets, first = np.unique(lines["basket"], return_index=True)
        order_ids = [snapshot.order_ids[b] for b in baskets.tolist()]
        order_hash = np.zeros(len(snapshot.order_ids), dtype=np.uint64)
        order_hash[baskets] = np.fromiter(map(hash, order_ids), dtype=np.int64, count=len(order_ids)).view(np.uint64)
        key = order_hash[lines["basket"]] ^ (codes["customer"].astype(np.uint64) * _CUSTOMER_MIX)
        for k, order_id in zip(key[first].tolist(), order_ids):
            self.order_of_key.setdefault(k, order_id)
        self._append(codes["customer"], codes["item"], key, lines["purchased_at"])

    def _append(self, customer: np.ndarray, item: np.ndarray, key: np.ndarray, at: Any) -> None:
        self.parts["customer"].append(customer)
        self.parts["item"].append(item)
        self.parts["key"].append(key)
        self.parts["purchased_at"].append(np.asarray(at, dtype=np.int64))
        self.rows += len(customer)

    def finish(self, *, distinct: bool) -> _Columns:
        """The columns and id lists (this factoriser is spent). `distinct`: a line given twice
        (the same customer, order, product and time: one row of the store) is kept once."""
        joined = {
            name: np.concatenate(p) if p else np.zeros(0, np.uint64 if name == "key" else np.int64)
            for name, p in self.parts.items()
        }
        self.parts.clear()
        keys, basket = basket_codes(joined.pop("key"))
        order_ids = _IdList.of([self.order_of_key[k] for k in keys.tolist()])
        self.order_of_key.clear()
        customer_code, customer_ids = _sorted_codes(self.customers)
        item_code, item_ids = _sorted_codes(self.items)
        columns = {
            "customer": customer_code[joined["customer"]]
            if len(customer_code)
            else joined["customer"].astype(np.int32),
            "item": item_code[joined["item"]] if len(item_code) else joined["item"].astype(np.int32),
            "basket": basket.astype(np.int32).reshape(-1),
            "purchased_at": joined["purchased_at"],
        }
        if distinct:
            columns, order_ids = _distinct(columns, order_ids)
        return columns, customer_ids, item_ids, order_ids


def _distinct(columns: dict[str, np.ndarray], order_ids: _IdList) -> tuple[dict[str, np.ndarray], _IdList]:
    """Each line once, in the order a scan of the SQLite store gives them (customer, time, order
    id, product: its primary key), baskets numbered by first sight in that order: what a
    rebuild from that store holds, row for row (training numbers baskets the same way, so the
    row order is part of what it reads). Equal basket, item and time is one line (a basket is
    one customer's)."""
    names = order_ids.all()
    order_rank = np.empty(len(names), dtype=np.int64)
    order_rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    basket = columns["basket"]
    order = np.lexsort((columns["item"], order_rank[basket], columns["purchased_at"], columns["customer"]))
    basket_item = (basket[order].astype(np.int64) << 32) | columns["item"][order].astype(np.int64)
    at = columns["purchased_at"][order]
    first = np.concatenate(([True], (basket_item[1:] != basket_item[:-1]) | (at[1:] != at[:-1])))
    kept = {name: column[order[first]] for name, column in columns.items()}
    seen, kept["basket"] = basket_codes(kept["basket"].astype(np.uint64))
    kept["basket"] = kept["basket"].astype(np.int32)
    return kept, _IdList.of([names[b] for b in seen.tolist()])


class _NextCode(dict[str, int]):
    """A dict that files an unseen key under the next code (one C-level lookup for known keys)."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


def _codes(codes: _NextCode, values: list[str]) -> np.ndarray:
    return np.fromiter(map(codes.__getitem__, values), dtype=np.int32, count=len(values))


def _sorted_codes(codes: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """(new code of each old code, -1 for codes no id holds; the ids sorted): ids in sorted order."""
    ids = sorted(codes)
    old = np.fromiter(map(codes.__getitem__, ids), dtype=np.int64, count=len(ids))
    new_code = np.full(int(old.max()) + 1 if len(old) else 0, -1, dtype=np.int32)
    new_code[old] = np.arange(len(ids))
    return new_code, ids


def _appended(snapshot: TrainingSnapshot, lines: PurchaseColumns) -> _Columns:
    """The snapshot plus `lines`, without the ones it already holds (writes are idempotent upserts
    on (customer, purchased_at, order, product), and a rebuild may have read some already), and
    without scrubbed lines and customers (their dead baskets stay until a rebuild)."""
    kept = np.asarray(snapshot.item) >= 0
    columns = {name: np.asarray(getattr(snapshot, name))[kept] for name in LINE_COLUMNS}
    has_lines = np.bincount(columns["customer"], minlength=len(snapshot.customer_ids)) > 0
    customer_code = {c: n for n, c in enumerate(snapshot.customer_ids) if has_lines[n]}
    next_customer = len(snapshot.customer_ids)
    item_code = {p: n for n, p in enumerate(snapshot.item_ids)}
    # What the snapshot holds of the customers in `lines`: their baskets by order id, and their
    # lines, found in one pass over the column rather than one per customer.
    touched = np.array(sorted({customer_code[c] for c in lines.customer_ids if c in customer_code}), dtype=np.int32)
    rows = np.flatnonzero(np.isin(columns["customer"], touched))
    baskets_of: dict[int, dict[str, int]] = {}  # customer code -> order id -> basket code
    seen: set[tuple[int, int, int, int]] = set()  # (customer, basket, item, time)
    held = zip(*(columns[name][rows].tolist() for name in LINE_COLUMNS))
    for c, i, b, at in held:
        seen.add((c, b, i, at))
        own = baskets_of.setdefault(c, {})
        if b not in own.values():
            own[snapshot.order_ids[b]] = b
    new_orders: list[str] = []
    added: dict[str, list[int]] = {name: [] for name in LINE_COLUMNS}
    for customer_id, order_id, product_id, _, _, at in lines.rows():
        c = customer_code.get(customer_id)
        if c is None:
            c = customer_code[customer_id] = next_customer
            next_customer += 1
        own = baskets_of.setdefault(c, {})
        b = own.get(order_id)
        if b is None:
            b = own[order_id] = len(snapshot.order_ids) + len(new_orders)
            new_orders.append(order_id)
        i = item_code.setdefault(product_id, len(item_code))
        if (c, b, i, at) in seen:
            continue
        seen.add((c, b, i, at))
        for name, value in zip(LINE_COLUMNS, (c, i, b, at)):
            added[name].append(value)
    for name, dtype in LINE_COLUMNS.items():
        columns[name] = np.concatenate([columns[name], np.asarray(added[name], dtype=dtype)])
    customer_remap, customer_ids = _sorted_codes(customer_code)
    item_remap, item_ids = _sorted_codes(item_code)
    columns["customer"] = customer_remap[columns["customer"]]
    columns["item"] = item_remap[columns["item"]]
    return columns, customer_ids, item_ids, snapshot.order_ids.extended(new_orders)


# --- writing a generation -------------------------------------------------------------------------


def _write(
    directory: Path,
    columns: dict[str, np.ndarray],
    customer_ids: list[str],
    item_ids: list[str],
    order_ids: _IdList,
    watermark: PurchaseWatermark,
    source: str,
) -> TrainingSnapshot:
    """Write a new generation beside the live one, then switch `current` to it atomically."""
    _remove_generations(directory, keep=_live_name(directory))  # a crashed writer's leftovers
    name = f"gen-{time.time_ns()}-{os.getpid()}"
    path = directory / name
    path.mkdir()
    rows = len(columns["item"])
    for column, dtype in LINE_COLUMNS.items():
        _durable(
            path / f"{column}.npy", lambda f, c=column, d=dtype: np.save(f, np.ascontiguousarray(columns[c], dtype=d))
        )
    for list_name, ids in zip(ID_LISTS, (_IdList.of(customer_ids), _IdList.of(item_ids), order_ids)):
        _durable(path / f"{list_name}.bytes", lambda f, i=ids: f.write(np.asarray(i.blob).tobytes()))
        _durable(path / f"{list_name}.offsets.npy", lambda f, i=ids: np.save(f, i.offsets))
    _write_manifest(path, rows, watermark, source, (len(customer_ids), len(item_ids), len(order_ids)))
    link = directory / f".{name}.link"
    os.symlink(name, link)
    os.replace(link, directory / _CURRENT)
    fsync_directory(directory)
    _remove_generations(directory, keep=name)
    loaded = load(directory)
    assert loaded is not None  # just written
    return loaded


def _counts(snapshot: TrainingSnapshot) -> tuple[int, int, int]:
    return len(snapshot.customer_ids), len(snapshot.item_ids), len(snapshot.order_ids)


def _write_manifest(
    path: Path, rows: int, watermark: PurchaseWatermark, source: str, counts: tuple[int, int, int]
) -> None:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "rows": rows,
        "customers": counts[0],
        "items": counts[1],
        "baskets": counts[2],
        "watermark": {"epoch": watermark.epoch, "sequence": watermark.sequence, "shards": list(watermark.shards)},
        "source": source,
        "written_at": time.time(),
    }
    temporary = path / "manifest.json.tmp"
    _durable(temporary, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    os.replace(temporary, path / "manifest.json")
    fsync_directory(path)


def _durable(path: Path, write: Any) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """A rename or new file in `path` on disk (the bulk load's too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _live_name(directory: Path) -> str | None:
    current = directory / _CURRENT
    return os.readlink(current) if current.is_symlink() else None


def _remove_generations(directory: Path, keep: str | None) -> None:
    """Every generation but `keep` (with `keep=None`, all of them and `current`)."""
    if keep is None:
        with contextlib.suppress(FileNotFoundError):
            (directory / _CURRENT).unlink()
    for entry in directory.iterdir():
        # Only what this module writes: the directory is the operator's choice and may hold more.
        if entry.name == keep or not entry.name.startswith(("gen-", ".gen-")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
