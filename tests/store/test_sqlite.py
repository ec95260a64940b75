"""What only the SQLite store does: URLs, connection settings, migrations, locking, raw tables."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnix_recs.domain.models import Customer, Feedback, FeedbackEvent, Purchase
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from omnix_recs.store import open_store
from omnix_recs.store.sqlite import SqliteStore
from omnix_recs.store.sqlite.schema import MIGRATIONS, Migration, apply_migrations, schema_version

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Connect = Callable[[Path], sqlite3.Connection]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "omnix.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(db_path, busy_timeout_ms=50)
    yield store
    store.close()


@pytest.fixture
def raw() -> Iterator[Connect]:
    """Plain connections to a store's file, to look at what it wrote; closed after the test."""
    opened: list[sqlite3.Connection] = []

    def connect(path: Path) -> sqlite3.Connection:
        opened.append(sqlite3.connect(path, isolation_level=None))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


def line(customer_id: str, order_id: str, product_id: str = "p1") -> Purchase:
    return Purchase(customer_id, order_id, product_id, 1, 2.5, T0)


# --- opening ---------------------------------------------------------------------------------


def test_url_with_an_absolute_path(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}")
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == db_path
        assert db_path.exists()
    finally:
        store.close()


def test_url_with_a_relative_path_creates_missing_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqliteStore.from_url("sqlite:///./var/omnix.db")
    try:
        assert (tmp_path / "var" / "omnix.db").exists()
    finally:
        store.close()


def test_memory_url_is_a_throwaway_database_removed_on_close() -> None:
    store = SqliteStore.from_url("sqlite:///:memory:")
    store.add_purchases([line("c1", "o1")])
    assert store.count_purchases() == 1
    store.close()
    assert not store.path.parent.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:omnix.db", "postgres:///omnix"])
def test_bad_urls_name_the_setting(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        SqliteStore.from_url(url)
    assert raised.value.field == "OMNIX_STORE"


def test_every_thread_connection_uses_wal_and_the_store_settings(sqlite_store: SqliteStore) -> None:
    settings: list[tuple] = []

    def read_settings() -> None:
        conn = sqlite_store._conn()
        names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        settings.append(tuple(conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names))

    workers = [threading.Thread(target=read_settings) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    read_settings()
    assert settings == [("wal", 1, 1, 50)] * 4  # synchronous 1 = NORMAL


def test_calls_after_close_are_unavailable(sqlite_store: SqliteStore) -> None:
    sqlite_store.close()
    sqlite_store.close()  # closing twice is harmless
    with pytest.raises(UnavailableError):
        sqlite_store.count_purchases()
    with pytest.raises(UnavailableError):
        list(sqlite_store.scan_purchases())


# --- migrations ------------------------------------------------------------------------------


def test_migration_versions_count_up_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_new_database_gets_every_migration(sqlite_store: SqliteStore, db_path: Path, raw: Connect) -> None:
    rows = raw(db_path).execute("SELECT version, description FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.description) for m in MIGRATIONS]


def test_reopening_a_migrated_database_changes_nothing(db_path: Path, raw: Connect) -> None:
    SqliteStore(db_path).close()
    before = raw(db_path).execute("SELECT * FROM schema_migrations").fetchall()
    SqliteStore(db_path).close()
    assert raw(db_path).execute("SELECT * FROM schema_migrations").fetchall() == before


def test_a_database_from_newer_code_is_refused(db_path: Path, raw: Connect) -> None:
    SqliteStore(db_path).close()
    newer = MIGRATIONS[-1].version + 1
    raw(db_path).execute("INSERT INTO schema_migrations VALUES (?, 0, 'from the future')", (newer,))
    with pytest.raises(FailedPreconditionError, match=f"schema version {newer}"):
        SqliteStore(db_path)


def test_a_failing_migration_leaves_the_previous_version(db_path: Path, raw: Connect) -> None:
    conn = raw(db_path)
    good = Migration(1, "shelves", ("CREATE TABLE shelves (id TEXT)",))
    bad = Migration(2, "half done", ("CREATE TABLE labels (id TEXT)", "CREATE TABLE shelves (id TEXT)"))
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, (good, bad))
    assert schema_version(conn) == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "shelves" in tables and "labels" not in tables
    assert apply_migrations(conn, (good,)) == 1


# --- locking and import sessions -------------------------------------------------------------


def test_a_writer_blocked_by_another_is_unavailable(sqlite_store: SqliteStore, db_path: Path, raw: Connect) -> None:
    holder = raw(db_path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(UnavailableError, match="busy"):
            sqlite_store.add_purchases([line("c1", "o1")])
        assert sqlite_store.count_purchases() == 0  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
    assert sqlite_store.add_purchases([line("c1", "o1")]) == 1


def test_an_import_is_invisible_until_commit_and_holds_the_write_lock(sqlite_store: SqliteStore) -> None:
    sqlite_store.add_purchases([line("c1", "o1")])
    with sqlite_store.import_session() as session:
        session.add_purchases([line("c2", "o2"), line("c2", "o3")])
        assert sqlite_store.count_purchases() == 1
        with pytest.raises(UnavailableError):
            sqlite_store.add_purchases([line("c3", "o4")])
        session.commit()
    assert sqlite_store.count_purchases() == 3


def purchase_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'purchase_history' ORDER BY name"
    ).fetchall()


@pytest.mark.parametrize("commit", [True, False])
def test_a_first_import_defers_the_purchase_indexes_and_always_restores_them(
    sqlite_store: SqliteStore, db_path: Path, raw: Connect, commit: bool
) -> None:
    observer = raw(db_path)
    indexes = purchase_indexes(observer)
    assert any(name == "purchases_by_product" for name, _ in indexes)
    with sqlite_store.import_session() as session:
        session.add_purchases([line("c1", "o1")])
        assert purchase_indexes(observer) == indexes  # other connections still see them
        if commit:
            session.commit()
    assert purchase_indexes(observer) == indexes
    assert sqlite_store.count_purchases() == int(commit)


# --- raw tables ------------------------------------------------------------------------------


def test_erasure_leaves_no_row_with_the_customer_id_in_any_table(
    sqlite_store: SqliteStore, db_path: Path, raw: Connect
) -> None:
    for customer_id in ("c1", "c2"):
        sqlite_store.create_customer(Customer(customer_id, T0, T0))
        sqlite_store.add_purchases([line(customer_id, "o1"), line(customer_id, "o2")])
        sqlite_store.put_document("analysis", customer_id, T0, {"summary": "regular weekly shop"})
        sqlite_store.add_feedback(Feedback(f"r-{customer_id}", customer_id, "p1", FeedbackEvent.SHOWN, T0))

    sqlite_store.delete_customer("c1")

    conn = raw(db_path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_customers = [t for t in tables if "customer_id" in {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}]
    assert len(with_customers) == 7  # a new table holding customer data must join the erasure
    for table in with_customers:
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE customer_id = 'c1'").fetchone() == (0,), table
    assert conn.execute("SELECT count(*) FROM purchase_history WHERE customer_id = 'c2'").fetchone() == (2,)


def test_timestamps_are_stored_as_utc_microseconds(sqlite_store: SqliteStore, db_path: Path, raw: Connect) -> None:
    sqlite_store.add_purchases([line("c1", "o1")])
    (stored,) = raw(db_path).execute("SELECT purchased_at FROM purchase_history").fetchone()
    assert stored == int(T0.timestamp()) * 1_000_000
