"""Resumable imports on DynamoDB (store/dynamodb/imports.py, `omnix import ... --resumable`).

A resumable session keeps what it wrote when it fails, with a checkpoint in the models table;
the same import run again writes only what comes after the checkpoint and ends with the same
tables as an import that never failed. Another import after a cut-short one starts from its
first row; one that shares only the first rows is refused and clears the checkpoint. The real
command, killed with SIGKILL midway and run again, ends with the same rows as a clean import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto_server import LocalDynamoDB
from store_support import checkpoint, kill_when_checkpointed

from omnix_recs.cli import main
from omnix_recs.domain.models import Product, Purchase
from omnix_recs.errors import FailedPreconditionError, UnavailableError
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.tables import PURCHASES as PURCHASE_TABLE

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PRODUCTS = [Product(f"p{n:03d}", f"Product {n}", "dairy", "milk", price=1.25, updated_at=T0) for n in range(150)]
PURCHASES = [
    Purchase(f"c{n % 37:02d}", f"o{n // 7}", f"p{n % 150:03d}", 1 + n % 3, 2.5, T0 + timedelta(hours=n))
    for n in range(1_200)
]


def run(store: DynamoStore, purchases: list[Purchase] = PURCHASES) -> None:
    store.resumable_imports = True
    with store.import_session() as session:
        session.add_products(PRODUCTS)
        session.add_purchases(purchases)
        session.commit()


def contents(store: DynamoStore) -> tuple[list[Any], list[Any]]:
    lines = sorted(row for batch in store.scan_purchases() for row in batch.rows_with_stores())
    return lines, [(p.product_id, p.price) for p in store.iter_products()]


class CountedWrites:
    """Counts the items the store writes in batches; fails every batch after `fail_after` items."""

    def __init__(self, store: DynamoStore, fail_after: int | None = None) -> None:
        self.items = 0
        self._lock = threading.Lock()
        self._write = store.db.batch_write
        self._fail_after = fail_after
        store.db.batch_write = self  # type: ignore[method-assign]

    def __call__(self, requests: Any) -> None:
        with self._lock:
            if self._fail_after is not None and self.items >= self._fail_after:
                raise UnavailableError("DynamoDB is unavailable: injected")
            self.items += len(requests)
        self._write(requests)


@pytest.fixture
def dynamo(local_dynoxide: LocalDynamoDB) -> Iterator[DynamoStore]:
    store = local_dynoxide.open_store()
    yield store
    store.close()


@pytest.fixture
def clean(local_dynoxide: LocalDynamoDB) -> tuple[list[Any], list[Any]]:
    """What an import that never failed leaves."""
    store = local_dynoxide.open_store()
    try:
        run(store)
        return contents(store)
    finally:
        store.close()


def test_a_resumable_import_that_failed_continues_where_it_stopped(
    dynamo: DynamoStore, clean: tuple[list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("omnix_recs.store.dynamodb.imports.CHECKPOINT_EVERY_S", 0.0)
    epoch = dynamo.purchase_watermark().epoch
    failing = CountedWrites(dynamo, fail_after=700)
    with pytest.raises(UnavailableError, match="injected"):
        run(dynamo)
    saved = checkpoint(dynamo)
    assert saved is not None and 0 < int(saved["rows"]["N"]) <= failing.items
    assert dynamo.count_purchases() > 0  # kept, not undone
    assert dynamo.purchase_watermark().epoch > epoch  # copies of the history know it changed
    dynamo.db.batch_write = failing._write  # type: ignore[method-assign]

    again = CountedWrites(dynamo)
    run(dynamo)
    total = len(PRODUCTS) + len(PURCHASES) + 37  # and each customer's "#history" row
    assert again.items < total - int(saved["rows"]["N"]) + 300  # rewrites at most what was in flight
    assert contents(dynamo) == clean
    assert checkpoint(dynamo) is None  # a finished import leaves none


def test_another_import_after_a_cut_short_one_starts_from_its_first_row(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("omnix_recs.store.dynamodb.imports.CHECKPOINT_EVERY_S", 0.0)
    failing = CountedWrites(dynamo, fail_after=500)
    with pytest.raises(UnavailableError):
        run(dynamo)
    dynamo.db.batch_write = failing._write  # type: ignore[method-assign]
    other = [Purchase("zed", "o1", p.product_id, 1, 9.0, T0) for p in PRODUCTS[:3]]
    dynamo.resumable_imports = True
    with dynamo.import_session() as session:
        session.add_products([Product("p-new", "New", "bakery", "bread", price=3.0, updated_at=T0)])
        session.add_purchases(other)
        session.commit()
    assert {line[0] for line in contents(dynamo)[0]} >= {"zed"}
    assert dynamo.get_product("p-new").price == 3.0
    assert checkpoint(dynamo) is None


def test_an_import_sharing_only_its_first_rows_is_refused_and_clears_the_checkpoint(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("omnix_recs.store.dynamodb.imports.CHECKPOINT_EVERY_S", 0.0)
    failing = CountedWrites(dynamo, fail_after=900)
    with pytest.raises(UnavailableError):
        run(dynamo)
    dynamo.db.batch_write = failing._write  # type: ignore[method-assign]
    changed = [
        *PURCHASES[:100],
        *(Purchase(p.customer_id, p.order_id, p.product_id, 9, 1.0, p.purchased_at) for p in PURCHASES[100:]),
    ]
    with pytest.raises(FailedPreconditionError, match="differ from those of the resumable import"):
        run(dynamo, changed)
    assert checkpoint(dynamo) is None
    run(dynamo, changed)  # once more: from its first row
    assert {line[3] for line in contents(dynamo)[0]} >= {9}


def test_a_resumable_import_refuses_encoded_items(dynamo: DynamoStore) -> None:
    dynamo.resumable_imports = True
    with pytest.raises(FailedPreconditionError, match="takes rows"):
        with dynamo.import_session() as session:
            session.add_items(PURCHASE_TABLE, [])


def test_resumable_is_refused_on_sqlite_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_url = f"sqlite:///{tmp_path / 'omnix.db'}"
    assert main(["import", "instacart", str(tmp_path), "--store", store_url, "--resumable"]) == 2
    assert "--resumable" in capsys.readouterr().err


# --- the real command, killed midway ------------------------------------------------------------


def omnix(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "omnix_recs.cli", *arguments]


def test_an_import_killed_midway_and_run_again_ends_as_a_clean_import(
    local_dynoxide: LocalDynamoDB, tmp_path: Path
) -> None:
    data = tmp_path / "gen"
    # Enough order lines that the import outlives a few of its checkpoints (every 2 s at most)
    # after the first 2,000 lines: with 100 customers a fast machine finished between two.
    subprocess.run(
        omnix("generate", "--out", str(data), "--customers", "300", "--products", "300", "--seed", "3"),
        capture_output=True,
        timeout=120,
        check=True,
    )
    killed, clean = local_dynoxide.url(), local_dynoxide.url()
    environment = {**os.environ, "OMNIX_SNAPSHOT_DIR": "off"}
    for url in (killed, clean):
        subprocess.run(
            omnix("init-tables", "--store", url), capture_output=True, timeout=120, check=True, env=environment
        )
    store = DynamoStore.from_url(killed, session=local_dynoxide.session)
    command = omnix("import", "instacart", str(data), "--store", killed, "--resumable")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    # Killed once some order lines are checkpointed, not only the catalog and the customers.
    kill_when_checkpointed(process, store, lambda saved: int(saved["rows"]["N"]) >= 2_000)
    saved = checkpoint(store)
    assert saved is not None
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True, env=environment)
    assert "resuming:" in resumed.stderr
    subprocess.run(
        omnix("import", "instacart", str(data), "--store", clean),
        capture_output=True,
        timeout=600,
        check=True,
        env=environment,
    )
    reference = DynamoStore.from_url(clean, session=local_dynoxide.session)
    try:
        assert contents(store) == contents(reference)
        assert store.count_purchases() == reference.count_purchases() == json.loads(resumed.stdout)["order_lines"]
        assert checkpoint(store) is None
    finally:
        store.close()
        reference.close()
