"""Erasure leaves nothing in the SQLite files, and a mistyped store path is an error."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnix_recs.domain.models import Customer, Purchase
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store import open_store
from omnix_recs.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from moto_server import local_dynoxide  # noqa: E402, F401  (a session fixture)
from test_store_contract import populate_customer  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=UTC)
# Values that occur nowhere else in the database, so finding their bytes means a leftover.
MARKERS = {"email": "erase.me.zq7@example.test", "name": "Zqxjv Erasable", "order": "order-zq7-secret"}


def files_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_an_erased_customer_leaves_no_bytes_in_the_database_or_its_wal(tmp_path):
    path = tmp_path / "omnix.db"
    store = SqliteStore(path)
    try:
        store.create_customer(
            Customer("c1", NOW, NOW, display_name=MARKERS["name"], email=MARKERS["email"], postcode="ZQ7 1AA")
        )
        store.create_customer(Customer("c2", NOW, NOW, display_name="Bystander"))
        store.add_purchases(
            [Purchase("c1", MARKERS["order"], f"p{i}", 1, 2.0, NOW) for i in range(50)]
            + [Purchase("c2", "o-c2", "p1", 1, 2.0, NOW)]
        )
        assert MARKERS["email"].encode() in files_of(path)
        store.delete_customer("c1")
        left = files_of(path)
        for marker in MARKERS.values():
            assert marker.encode() not in left, f"{marker!r} is still on disk after erasure"
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
        assert store.get_customer("c2").display_name == "Bystander"
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-omnix-dir/sub/omnix.db", "sqlite:///./no-such-dir/omnix.db"])
def test_a_store_url_whose_directory_does_not_exist_is_an_error(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match="does not exist") as info:
        open_store(url)
    assert info.value.field == "OMNIX_STORE"
    assert not Path("/nonexistent-omnix-dir").exists() and not (tmp_path / "no-such-dir").exists()


def test_the_default_store_creates_its_own_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///./var/omnix.db").close()
    assert (tmp_path / "var" / "omnix.db").exists()


# --- nothing left in any table, read raw (not through the Store API) ---------------------------

ERASED, KEPT = "erase-zq7", "keep-zq8"


@pytest.fixture(params=["sqlite", "dynoxide"])
def raw_store(request, tmp_path):
    """(store, every row of every table as text): SQLite and DynamoDB (on dynoxide)."""
    if request.param == "sqlite":
        path = tmp_path / "omnix.db"
        store = SqliteStore(path)

        def rows() -> list[str]:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                return [repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')]

    else:
        store = request.getfixturevalue("local_dynoxide").open_store()

        def rows() -> list[str]:
            return [
                repr(item)
                for table in store.table_names.values()
                for item in store.db.items("scan", TableName=table, ConsistentRead=True)
            ]

    yield store, rows
    store.close()


def test_erasure_leaves_no_row_naming_the_customer_in_any_table(raw_store):
    store, rows = raw_store
    populate_customer(store, ERASED)
    populate_customer(store, KEPT)
    assert any(ERASED in row for row in rows()) and any(KEPT in row for row in rows())

    store.delete_customer(ERASED)

    left = [row for row in rows() if ERASED in row]
    assert not left, f"{len(left)} rows still name the erased customer: {left[:3]}"
    assert sum(KEPT in row for row in rows()) >= 6  # the bystander keeps every kind of row
