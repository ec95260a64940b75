"""The training snapshot after an import (store/snapshot.py's `after_import`), on SQLite and
dynoxide: the lines the import heard of are added without reading the store when the snapshot
was current before it (or the store held no line), and the result is, line for line and id for
id, what a rebuild from the store holds; otherwise it is rebuilt, with a log line saying why. An
import that failed or died never leaves a snapshot claiming what the store does not hold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto_server import dynoxide_store
from store_support import T0, line

from omnix_recs.cli import main
from omnix_recs.data.generate import generate_instacart
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.store import snapshot
from omnix_recs.store.base import Store, purchase_columns
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.imports import DynamoImportSession
from omnix_recs.store.sqlite import SqliteStore

SOURCE = "test-store"
ADDED = "without reading the store"
REBUILT = "rebuilding it from the store"


HISTORY = [
    line("alice", "o1", "milk", 0),
    line("alice", "o1", "bread", 0),
    line("alice", "o2", "milk", 7),
    line("bob", "o1", "milk", 1),  # same order id as alice's: another basket
    line("erin", "o7", "caviar", 2),  # erased below: her lines are scrubbed, then gone
    line("erin", "o8", "milk", 5),
]
IMPORTED = [
    line("alice", "o2", "jam", 7),  # a new product in an order the snapshot holds
    line("alice", "o2", "milk", 7, quantity=4),  # a line it holds (same key): one row
    line("bob", "o4", "tea", 3),
    line("dave", "o1", "milk", 2),  # a new customer, with an order id others have
    line("dave", "o1", "milk", 2),  # given twice: one row
    line("frank", "o9", "figs", 9),
]


def held(s: snapshot.TrainingSnapshot) -> list[tuple[str, str, str, int]]:
    kept = np.flatnonzero(np.asarray(s.item) >= 0)
    return sorted(
        (s.customer_ids[s.customer[i]], s.order_ids[int(s.basket[i])], s.item_ids[s.item[i]], int(s.purchased_at[i]))
        for i in kept.tolist()
    )


def scanned(store: Store) -> list[tuple[str, str, str, int]]:
    return sorted((c, o, p, t) for batch in store.scan_purchases() for c, o, p, _, _, t in batch.rows())


def same_as_rebuilt(s: snapshot.TrainingSnapshot, store: Store, elsewhere: Path, *, exact: bool = False) -> None:
    """`s` holds what a rebuild holds: the lines, the ids, the baskets (codes may differ); with
    `exact` (SQLite, whose scan has an order), row for row and code for code."""
    rebuilt = snapshot.rebuild(store, elsewhere, SOURCE)
    assert held(s) == held(rebuilt) == scanned(store)
    assert len(s) == len(rebuilt)
    assert s.customer_ids == rebuilt.customer_ids and s.item_ids == rebuilt.item_ids
    assert len(s.order_ids) == len(rebuilt.order_ids)
    assert s.watermark.epoch == rebuilt.watermark.epoch
    if exact:
        for name in snapshot.LINE_COLUMNS:
            assert np.array_equal(getattr(s, name), getattr(rebuilt, name)), name
        assert s.order_ids.all() == rebuilt.order_ids.all()


def imported(store: Store, purchases: list[Purchase], lines: snapshot.ImportedLines) -> None:
    with store.import_session(lines) as session:
        half = len(purchases) // 2
        session.add_purchase_columns(purchase_columns(purchases[:half]))  # the importers' way
        session.add_purchases(purchases[half:])
        session.commit()


def no_scan(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> Iterator[PurchaseColumns]:
        raise AssertionError("the store was read")

    monkeypatch.setattr(store, "scan_purchases_unordered", refused)


@pytest.fixture(params=["sqlite", "dynoxide"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = (
        SqliteStore(tmp_path / "omnix.db") if request.param == "sqlite" else dynoxide_store(request, tmp_path)
    )
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def dynoxide(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DynamoStore]:
    """DynamoDB only: SQLite's import is one transaction holding the write lock, so nothing
    writes beside it and a process that dies midway wrote nothing."""
    opened = dynoxide_store(request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "snapshot"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="omnix_recs.store.snapshot")
    return caplog


def test_an_import_into_an_empty_store_is_its_snapshot(
    store: Store, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = snapshot.ImportedLines()
    imported(store, HISTORY + IMPORTED, lines)
    with monkeypatch.context() as patch:
        no_scan(store, patch)
        s = snapshot.after_import(store, directory, SOURCE, lines)
    assert ADDED in log.text and REBUILT not in log.text
    same_as_rebuilt(s, store, tmp_path / "rebuilt", exact=isinstance(store, SqliteStore))
    assert s.watermark == store.purchase_watermark()
    assert snapshot.fresh(store, directory, SOURCE).path == s.path  # current: used as it is


def test_an_import_onto_a_current_snapshot_adds_its_lines(
    store: Store, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_purchases(HISTORY)
    snapshot.fresh(store, directory, SOURCE)
    store.delete_customer("erin")
    snapshot.erase_customer(store, directory, "erin")  # scrubbed lines and ids: dropped by the append
    store.add_purchases([line("carol", "o3", "eggs", 4)])  # journaled after the snapshot: added later
    lines = snapshot.ImportedLines()
    imported(store, IMPORTED, lines)
    with monkeypatch.context() as patch:
        no_scan(store, patch)
        s = snapshot.after_import(store, directory, SOURCE, lines)
        assert ADDED in log.text and REBUILT not in log.text
        carol = ("carol", "o3", "eggs", int((T0 + timedelta(days=4)).timestamp()))
        assert carol not in held(s) and sorted([*held(s), carol]) == scanned(store)
        s = snapshot.fresh(store, directory, SOURCE)  # the journal since the snapshot, no scan
    same_as_rebuilt(s, store, tmp_path / "rebuilt")
    assert "erin" not in s.customer_ids and "caviar" not in s.item_ids
    assert s.watermark == store.purchase_watermark()


def erased_unheard(store: Store, directory: Path) -> None:
    """An erasure the snapshot did not hear of (another host): it is an epoch behind."""
    store.delete_customer("erin")


def no_snapshot(store: Store, directory: Path) -> None:
    snapshot._remove_generations(directory, keep=None)


def of_another_store(store: Store, directory: Path) -> None:
    snapshot.rebuild(store, directory, "another-store")


def unusable(store: Store, directory: Path) -> None:
    current = snapshot.load(directory)
    assert current is not None
    (current.path / "manifest.json").write_text("{not json")


@pytest.mark.parametrize(
    ("before_import", "reason"),
    [
        (erased_unheard, "was not current before the import"),
        (no_snapshot, "there was no snapshot before the import"),
        (of_another_store, "the snapshot copies another-store"),
        (unusable, "the snapshot is unusable"),
    ],
)
def test_a_snapshot_not_current_before_the_import_is_rebuilt_saying_why(
    store: Store, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture, before_import: Any, reason: str
) -> None:
    store.add_purchases(HISTORY)
    snapshot.fresh(store, directory, SOURCE)
    before_import(store, directory)
    lines = snapshot.ImportedLines()
    imported(store, IMPORTED, lines)
    s = snapshot.after_import(store, directory, SOURCE, lines)
    assert f"{reason}" in log.text and REBUILT in log.text and ADDED not in log.text
    same_as_rebuilt(s, store, tmp_path / "rebuilt")


def test_an_erasure_during_the_import_makes_it_rebuild(
    dynoxide: DynamoStore, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    store = dynoxide
    store.add_purchases(HISTORY)
    snapshot.fresh(store, directory, SOURCE)
    lines = snapshot.ImportedLines()
    with store.import_session(lines) as session:
        session.add_purchases(IMPORTED)
        assert isinstance(session, DynamoImportSession)
        session._drain()  # landed
        store.delete_customer("frank")  # took lines the import gave: the snapshot must not keep them
        session.commit()
    s = snapshot.after_import(store, directory, SOURCE, lines)
    assert "another write" in log.text and REBUILT in log.text
    assert all(customer != "frank" for customer, *_ in held(s))
    same_as_rebuilt(s, store, tmp_path / "rebuilt")


def test_journaled_writes_during_the_import_reach_the_next_read(
    dynoxide: DynamoStore, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    store = dynoxide
    store.add_purchases(HISTORY)
    snapshot.fresh(store, directory, SOURCE)
    lines = snapshot.ImportedLines()
    with store.import_session(lines) as session:
        session.add_purchases(IMPORTED[:3])
        store.add_purchases([line("gina", "o5", "kale", 6), line("alice", "o2", "jam", 7)])  # one the import has
        session.add_purchases(IMPORTED[3:])
        session.commit()
    snapshot.after_import(store, directory, SOURCE, lines)
    assert ADDED in log.text and REBUILT not in log.text
    same_as_rebuilt(snapshot.fresh(store, directory, SOURCE), store, tmp_path / "rebuilt")
    assert REBUILT not in log.text


def test_a_failed_import_leaves_the_snapshot_behind_the_store(store: Store, directory: Path) -> None:
    store.add_purchases(HISTORY)
    before = snapshot.fresh(store, directory, SOURCE)
    lines = snapshot.ImportedLines()
    with pytest.raises(RuntimeError, match="disk gone"), store.import_session(lines) as session:
        session.add_purchases(IMPORTED)
        raise RuntimeError("disk gone")
    assert lines.moved is None  # the session never told it of a commit
    s = snapshot.fresh(store, directory, SOURCE)
    assert held(s) == scanned(store) == held(before)


def test_an_import_that_died_midway_is_not_taken_for_current(dynoxide: DynamoStore, directory: Path) -> None:
    """The process dies with lines written and neither a commit nor a rollback (kill -9): on
    DynamoDB they stay, and the epoch the session moved before its first line says so."""
    store = dynoxide
    store.add_purchases(HISTORY)
    before = snapshot.fresh(store, directory, SOURCE)
    session = store.import_session(snapshot.ImportedLines())
    session.__enter__()
    session.add_purchases(IMPORTED)
    session._drain()  # landed; then the process is gone: no __exit__
    assert store.purchase_watermark().epoch > before.watermark.epoch
    s = snapshot.fresh(store, directory, SOURCE)
    assert s.path != before.path and held(s) == scanned(store)
    assert ("frank", "o9", "figs", int((T0 + timedelta(days=9)).timestamp())) in held(s)
    session._pool.shutdown(wait=True)
    session._journal.close()
    session._progress.close()


def other_households(directory: Path, offset: int) -> None:
    """Another shop's households: user ids moved by `offset` (order ids stay, as in a real second
    export: equal order ids of other customers are other baskets)."""
    for name in ("orders.csv", "households.csv"):
        path = directory / name
        header, *rows = path.read_text().splitlines()
        column = header.split(",").index("user_id")
        moved = [",".join(str(int(v) + offset) if i == column else v for i, v in enumerate(r.split(","))) for r in rows]
        path.write_text("\n".join([header, *moved]) + "\n")


@pytest.mark.parametrize("kind", ["sqlite", "dynoxide"])
def test_omnix_import_adds_to_the_snapshot_without_reading_the_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command: a first import into an empty store, then another one onto its snapshot."""
    first, second = tmp_path / "first", tmp_path / "second"
    generate_instacart(first, customers=30, products=200, days=120, seed=5)
    generate_instacart(second, customers=20, products=200, days=120, seed=6)
    other_households(second, offset=1_000)
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    if kind == "dynoxide":
        url = request.getfixturevalue("local_dynoxide").url()
        assert main(["init-tables", "--store", url]) == 0
    monkeypatch.setenv("OMNIX_SNAPSHOT_DIR", str(tmp_path / "snapshot"))
    monkeypatch.setattr(snapshot, "_rebuild", lambda *a: pytest.fail("rebuilt after an import"))
    for data in (first, second):
        assert main(["import", "instacart", str(data), "--store", url, "--as-of", date(2026, 3, 1).isoformat()]) == 0
    monkeypatch.undo()
    from omnix_recs.store import open_store

    opened = open_store(url)
    try:
        s = snapshot.load(tmp_path / "snapshot")
        assert s is not None and s.watermark == opened.purchase_watermark()
        same_as_rebuilt(s, opened, tmp_path / "rebuilt", exact=kind == "sqlite")
    finally:
        opened.close()


def test_omnix_demo_leaves_its_first_training_a_current_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`omnix demo` on an empty store: its import writes the snapshot (beside the SQLite file, by
    default) as `omnix import` does, so the first training reads it without a rebuild."""
    from omnix_recs import cli, server
    from omnix_recs.store import open_store

    monkeypatch.setattr(cli, "DEMO_CUSTOMERS", 30)
    monkeypatch.setattr(cli, "DEMO_PRODUCTS", 200)
    monkeypatch.setattr(cli, "DEMO_DAYS", 120)
    monkeypatch.delenv("OMNIX_SNAPSHOT_DIR", raising=False)
    monkeypatch.setattr(server, "serve", lambda settings, http_port=None: None)  # the demo's last step
    monkeypatch.setattr(snapshot, "_rebuild", lambda *a: pytest.fail("the snapshot was rebuilt"))
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    args = ["--store", url, "--model-dir", str(tmp_path / "models"), "--data-dir", str(tmp_path / "data")]
    assert main(["demo", *args]) == 0
    monkeypatch.undo()

    opened = open_store(url)
    try:
        assert opened.active_model() is not None
        at = snapshot.location(opened, "", url)
        assert at is not None and at[0] == tmp_path / "omnix.db.snapshot"
        s = snapshot.load(at[0])
        assert s is not None and s.watermark == opened.purchase_watermark()
        same_as_rebuilt(s, opened, tmp_path / "rebuilt", exact=True)
    finally:
        opened.close()


def test_a_crash_while_writing_after_the_import_leaves_the_snapshot_behind(
    store: Store, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_purchases(HISTORY)
    before = snapshot.fresh(store, directory, SOURCE)
    lines = snapshot.ImportedLines()
    imported(store, IMPORTED, lines)

    def crash(*args: Any) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(snapshot, "_write_manifest", crash)
        with pytest.raises(OSError, match="disk gone"):
            snapshot.after_import(store, directory, SOURCE, lines)
    survivor = snapshot.load(directory)
    assert survivor is not None and survivor.path == before.path  # an epoch behind the store
    assert survivor.watermark.epoch < store.purchase_watermark().epoch
    assert held(snapshot.fresh(store, directory, SOURCE)) == scanned(store)


def test_imports_onto_their_own_snapshots_stay_what_a_rebuild_holds(
    store: Store, directory: Path, tmp_path: Path, log: pytest.LogCaptureFixture
) -> None:
    """Import after import, each onto the snapshot the last one left (on SQLite, row for row:
    training numbers baskets in row order)."""
    for n, purchases in enumerate((HISTORY, IMPORTED, [line("alice", "o1", "tea", 0), *HISTORY[:2]])):
        lines = snapshot.ImportedLines()
        imported(store, purchases, lines)
        s = snapshot.after_import(store, directory, SOURCE, lines)
        same_as_rebuilt(s, store, tmp_path / f"rebuilt-{n}", exact=isinstance(store, SqliteStore))
    assert REBUILT not in log.text
