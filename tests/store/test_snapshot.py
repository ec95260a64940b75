"""The training snapshot (store/snapshot.py): a columnar copy of the purchase history that is
never trained on stale and keeps nothing an erasure removed.

Run against every store (`store` fixture: SQLite, DynamoDB on moto and on dynoxide): the
snapshot holds what `scan_purchases` holds; appends reach it from the store's journal, without a
rebuild; an erasure leaves no byte of the customer in its files; a crash while writing
leaves the previous generation; an unusable one is rebuilt with a log line.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_support import line

from omnix_recs.store import snapshot
from omnix_recs.store.base import PurchaseWatermark, Store
from omnix_recs.store.sqlite import SqliteStore

SOURCE = "test-store"
SECRET_CUSTOMER = "erase-me-4417"
SECRET_ORDER = "order-only-they-had-9931"


HISTORY = [
    line("alice", "o1", "milk", 0),
    line("alice", "o1", "bread", 0),
    line("alice", "o2", "milk", 7),
    line("bob", "o1", "milk", 1),  # same order id as alice's: another basket
    line("bob", "o1", "eggs", 1),
    line("bob", "o3", "tea", 9, quantity=3),
    line(SECRET_CUSTOMER, SECRET_ORDER, "caviar", 2),
    line(SECRET_CUSTOMER, "o9", "milk", 5),
]


def scanned(store: Store) -> list[tuple[str, str, str, int]]:
    """Every line the store holds, as (customer, order, product, epoch s), sorted."""
    return sorted(
        (c, o, p, t)
        for batch in store.scan_purchases()
        for c, o, p, _, _, t in batch.rows()  # quantity and price: not what training reads
    )


def held(s: snapshot.TrainingSnapshot) -> list[tuple[str, str, str, int]]:
    kept = np.flatnonzero(np.asarray(s.item) >= 0)
    return sorted(
        (s.customer_ids[s.customer[i]], s.order_ids[int(s.basket[i])], s.item_ids[s.item[i]], int(s.purchased_at[i]))
        for i in kept.tolist()
    )


def baskets(s: snapshot.TrainingSnapshot) -> set[frozenset[tuple[str, str]]]:
    """The baskets as sets of (customer, product): codes may differ, the grouping may not."""
    groups: dict[int, set[tuple[str, str]]] = {}
    for i in np.flatnonzero(np.asarray(s.item) >= 0).tolist():
        groups.setdefault(int(s.basket[i]), set()).add((s.customer_ids[s.customer[i]], s.item_ids[s.item[i]]))
    return {frozenset(g) for g in groups.values()}


def files_containing(directory: Path, text: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


@pytest.fixture
def shop(store: Store) -> Store:
    store.add_purchases(HISTORY)
    return store


@pytest.fixture
def sqlite_shop(tmp_path: Path) -> Iterator[Store]:
    """For what does not depend on the store: the snapshot's files."""
    store = SqliteStore(tmp_path / "omnix.db")
    store.add_purchases(HISTORY)
    yield store
    store.close()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "snapshot"


def test_the_snapshot_holds_what_a_scan_holds(shop: Store, directory: Path) -> None:
    s = snapshot.fresh(shop, directory, SOURCE)
    assert held(s) == scanned(shop) and len(s) == len(HISTORY)
    assert s.customer_ids == sorted(s.customer_ids) and s.item_ids == sorted(s.item_ids)
    alice_o1 = frozenset({("alice", "milk"), ("alice", "bread")})
    assert alice_o1 in baskets(s) and frozenset({("bob", "milk"), ("bob", "eggs")}) in baskets(s)
    assert s.watermark == shop.purchase_watermark()
    # Read again unchanged: the same generation, not a rebuild.
    assert snapshot.fresh(shop, directory, SOURCE).path == s.path


def test_an_empty_store_gives_an_empty_snapshot(store: Store, directory: Path) -> None:
    s = snapshot.fresh(store, directory, SOURCE)
    assert len(s) == 0 and s.customer_ids == [] and held(s) == []


def test_appended_purchases_reach_the_next_read(shop: Store, directory: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = snapshot.fresh(shop, directory, SOURCE)
    shop.add_purchases(
        [
            line("carol", "o1", "milk", 3),  # a new customer
            line("alice", "o2", "jam", 7),  # a new product, in an order the snapshot holds
            line("alice", "o2", "milk", 7),  # a line it holds already (writes are idempotent)
        ]
    )
    shop.add_purchases([line("alice", "o2", "milk", 7, quantity=2)])  # the same key again
    caplog.set_level(logging.INFO, logger="omnix_recs.store.snapshot")
    s = snapshot.fresh(shop, directory, SOURCE)
    assert held(s) == scanned(shop) and len(s) == len(HISTORY) + 2
    assert frozenset({("alice", "milk"), ("alice", "jam")}) in baskets(s)
    assert s.watermark == shop.purchase_watermark() and s.path != first.path
    assert not first.path.exists()  # the previous generation is gone
    messages = [r.getMessage() for r in caplog.records]
    assert any("appended lines added" in m for m in messages)
    assert not any("rebuilding it from the store" in m for m in messages)


def test_an_import_moves_the_epoch_and_the_snapshot_is_read_again(shop: Store, directory: Path) -> None:
    before = snapshot.fresh(shop, directory, SOURCE).watermark
    with shop.import_session() as session:
        session.add_purchases([line("dave", "o5", "tea", 4)])
        session.commit()
    assert shop.purchase_watermark().epoch > before.epoch
    assert held(snapshot.fresh(shop, directory, SOURCE)) == scanned(shop)


def test_erasure_leaves_no_trace_in_the_snapshot_files(shop: Store, directory: Path) -> None:
    s = snapshot.fresh(shop, directory, SOURCE)
    assert files_containing(directory, SECRET_CUSTOMER) and files_containing(directory, SECRET_ORDER)
    shop.delete_customer(SECRET_CUSTOMER)
    snapshot.erase_customer(shop, directory, SECRET_CUSTOMER)
    assert files_containing(directory, SECRET_CUSTOMER) == []
    assert files_containing(directory, SECRET_ORDER) == []
    assert files_containing(directory, "caviar") != []  # item ids stay: they are the catalog's
    after = snapshot.fresh(shop, directory, SOURCE)
    assert held(after) == scanned(shop) and all(c != SECRET_CUSTOMER for c, *_ in held(after))
    # The scrub was the only change: the snapshot moved to the store's epoch without a rebuild.
    assert after.path == s.path and after.watermark == shop.purchase_watermark()


def test_erasure_the_snapshot_did_not_hear_of_is_caught_by_the_epoch(shop: Store, directory: Path) -> None:
    snapshot.fresh(shop, directory, SOURCE)
    shop.delete_customer(SECRET_CUSTOMER)  # e.g. through another host, without the snapshot
    after = snapshot.fresh(shop, directory, SOURCE)
    assert all(c != SECRET_CUSTOMER for c, *_ in held(after))
    assert files_containing(directory, SECRET_CUSTOMER) == []


def test_a_crash_while_writing_leaves_the_previous_generation(
    shop: Store, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = snapshot.fresh(shop, directory, SOURCE)
    shop.add_purchases([line("carol", "o1", "milk", 3)])

    def crash(*args: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(snapshot, "_write_manifest", crash)
    with pytest.raises(OSError, match="disk gone"):
        snapshot.fresh(shop, directory, SOURCE)
    monkeypatch.undo()
    survivor = snapshot.load(directory)
    assert survivor is not None and survivor.path == good.path and held(survivor) == held(good)
    assert len([p for p in directory.iterdir() if p.name.startswith("gen-")]) == 2  # the half-written one
    s = snapshot.fresh(shop, directory, SOURCE)
    assert held(s) == scanned(shop)
    assert [p.name for p in directory.iterdir() if p.name.startswith("gen-")] == [s.path.name]


def corrupt_manifest(path: Path) -> None:
    (path / "manifest.json").write_text("{not json")


def foreign_format(path: Path) -> None:
    (path / "manifest.json").write_text('{"format": "omnix-training-snapshot", "version": 99}')


def truncated_column(path: Path) -> None:
    data = (path / "item.npy").read_bytes()
    (path / "item.npy").write_bytes(data[: len(data) - 8])


def codes_out_of_range(path: Path) -> None:
    np.save(path / "customer.npy", np.full(len(HISTORY), 1000, dtype=np.int32))


def missing_ids(path: Path) -> None:
    os.remove(path / "order_ids.bytes")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (corrupt_manifest, "no readable manifest"),
        (foreign_format, "format version 99"),
        (truncated_column, "cannot read"),
        (codes_out_of_range, "codes outside its id list"),
        (missing_ids, "cannot read"),
    ],
)
def test_an_unusable_snapshot_is_rebuilt_with_a_log_line(
    sqlite_shop: Store, directory: Path, caplog: pytest.LogCaptureFixture, damage: Any, message: str
) -> None:
    damage(snapshot.fresh(sqlite_shop, directory, SOURCE).path)
    with pytest.raises(snapshot.SnapshotError, match=message):
        snapshot.load(directory)
    caplog.set_level(logging.WARNING, logger="omnix_recs.store.snapshot")
    assert held(snapshot.fresh(sqlite_shop, directory, SOURCE)) == scanned(sqlite_shop)
    assert any(message in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)


def test_erasure_removes_an_unusable_snapshot(sqlite_shop: Store, directory: Path) -> None:
    foreign_format(snapshot.fresh(sqlite_shop, directory, SOURCE).path)
    sqlite_shop.delete_customer(SECRET_CUSTOMER)
    snapshot.erase_customer(sqlite_shop, directory, SECRET_CUSTOMER)
    assert files_containing(directory, SECRET_CUSTOMER) == [] and snapshot.load(directory) is None


def test_a_snapshot_of_another_store_is_not_trusted(shop: Store, directory: Path, tmp_path: Path) -> None:
    snapshot.fresh(shop, directory, SOURCE)
    other = SqliteStore(tmp_path / "other.db")
    try:
        other.add_purchases([line("zoe", "o1", "tea", 1)])
        assert held(snapshot.fresh(other, directory, "another-store")) == scanned(other)
    finally:
        other.close()


# --- the store side: the watermark every store keeps --------------------------------------------


def test_writes_move_the_watermark(store: Store) -> None:
    start = store.purchase_watermark()
    store.add_purchases([line("alice", "o1", "milk", 0)])
    appended = store.purchase_watermark()
    assert appended.epoch == start.epoch and appended.sequence > start.sequence
    store.delete_customer("alice")
    erased = store.purchase_watermark()
    assert erased.epoch > appended.epoch
    assert store.purchases_appended_since(appended) is None  # another epoch: no lines to add
    same = store.purchases_appended_since(erased)
    assert same is not None and len(same[0]) == 0 and same[1] == erased


def test_sqlite_reads_appended_lines_from_its_journal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "omnix.db")
    try:
        store.add_purchases(HISTORY[:2])
        mark = store.purchase_watermark()
        store.add_purchases(HISTORY[2:4])
        answer = store.purchases_appended_since(mark)
        assert answer is not None
        lines, watermark = answer
        assert list(lines.rows()) == [
            (p.customer_id, p.order_id, p.product_id, p.quantity, p.unit_price, int(p.purchased_at.timestamp()))
            for p in HISTORY[2:4]
        ]
        assert watermark == store.purchase_watermark() == PurchaseWatermark(mark.epoch, mark.sequence + 2)
        # An erasure removes the customer's journal lines with their purchases.
        store.delete_customer("bob")
        rows = store._fetch("SELECT count(*) FROM purchase_journal WHERE customer_id = 'bob'")
        assert rows[0][0] == 0
    finally:
        store.close()


def test_location_defaults_beside_a_sqlite_file(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "omnix.db")
    try:
        assert snapshot.location(store, "", "sqlite:///x") == (
            tmp_path / "omnix.db.snapshot",
            str(tmp_path / "omnix.db"),
        )
        assert snapshot.location(store, "off", "sqlite:///x") is None
        assert snapshot.location(store, "/elsewhere", "u") == (Path("/elsewhere"), str(tmp_path / "omnix.db"))
    finally:
        store.close()


def test_the_unordered_scan_holds_what_the_ordered_one_holds(shop: Store) -> None:
    batches = list(shop.scan_purchases_unordered(batch_rows=3))
    assert [len(b) for b in batches] == [3, 3, 2]
    assert sorted(row for b in batches for row in b.rows()) == sorted(
        row for b in shop.scan_purchases() for row in b.rows()
    )


def test_an_erasure_while_a_training_holds_the_snapshot_scrubs_it_afterwards(
    sqlite_shop: Store, directory: Path
) -> None:
    snapshot.fresh(sqlite_shop, directory, SOURCE)
    sqlite_shop.delete_customer(SECRET_CUSTOMER)
    with snapshot._locked(directory):  # a training reading or rebuilding it
        snapshot.erase_customer(sqlite_shop, directory, SECRET_CUSTOMER)  # returns at once
        assert files_containing(directory, SECRET_CUSTOMER) != []
    (waiting,) = [t for t in threading.enumerate() if t.name == "omnix-snapshot-erase"]
    waiting.join(timeout=30)
    assert files_containing(directory, SECRET_CUSTOMER) == []
    assert snapshot.fresh(sqlite_shop, directory, SOURCE).watermark == sqlite_shop.purchase_watermark()


def test_files_of_others_in_the_directory_are_left_alone(sqlite_shop: Store, directory: Path) -> None:
    directory.mkdir()
    (directory / "notes.txt").write_text("the operator's")
    snapshot.fresh(sqlite_shop, directory, SOURCE)
    sqlite_shop.add_purchases([line("carol", "o1", "milk", 3)])
    snapshot.fresh(sqlite_shop, directory, SOURCE)
    assert (directory / "notes.txt").read_text() == "the operator's"
