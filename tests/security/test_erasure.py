"""Erasure leaves nothing in the SQLite files, and a mistyped store path is an error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnix_recs.domain.models import Customer, Purchase
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store import open_store
from omnix_recs.store.sqlite import SqliteStore

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
