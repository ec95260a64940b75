"""Training from the snapshot (store/snapshot.py, engine/matrix.py `lines_from_snapshot`).

The lines the build gets from the snapshot are the ones a scan gives; `omnix train` sees a
purchase recorded since the last training; an erased customer is in neither the snapshot's
files nor the next model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from generated_shop import generated_shop_db

from omnix_recs.cli import main
from omnix_recs.config import Settings
from omnix_recs.customers import CustomerService
from omnix_recs.domain.models import Purchase
from omnix_recs.engine.build import BuildParameters, read_training_data
from omnix_recs.engine.matrix import PurchaseLines, lines_from_snapshot, read_purchase_lines
from omnix_recs.engine.train import train_model
from omnix_recs.store import open_store, snapshot
from omnix_recs.store.base import Store

PARAMS = BuildParameters(neighbours=10, taste_dimensions=8, basket_min_support=1)


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_shop_db(tmp_path_factory.mktemp("snapshot-shop"), customers=60, products=200, days=90, seed=5)


@pytest.fixture
def store(generated_db: Path, tmp_path: Path) -> Iterator[Store]:
    shutil.copyfile(generated_db, tmp_path / "omnix.db")
    opened = open_store(f"sqlite:///{tmp_path / 'omnix.db'}")
    yield opened
    opened.close()


def assert_same_lines(a: PurchaseLines, b: PurchaseLines) -> None:
    """Equal, baskets included: both number them in order of first sight."""
    assert a.customer_ids == b.customer_ids and a.item_ids == b.item_ids and a.n_baskets == b.n_baskets
    for name in ("customer", "item", "basket", "purchased_at"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


_LINES_DIGEST = """
import hashlib, sys
from omnix_recs.engine.build import read_training_data
from omnix_recs.store import open_store
store = open_store(sys.argv[1])
snapshot_at = (__import__("pathlib").Path(sys.argv[2]), "test") if len(sys.argv) > 2 else None
_, lines = read_training_data(store, snapshot_at=snapshot_at)
print(hashlib.sha256(b"".join(getattr(lines, n).tobytes() for n in ("customer", "item", "basket", "purchased_at"))).hexdigest())
"""


@pytest.mark.parametrize("from_snapshot", [False, True])
def test_lines_do_not_depend_on_the_process_hash_seed(store: Store, tmp_path: Path, from_snapshot: bool) -> None:
    """Order ids are grouped into baskets by `hash()`, which each process salts differently:
    the codes must not follow it, or two trainings on the same data rank differently."""
    digests = set()
    for seed in ("1", "2"):
        args = [sys.executable, "-c", _LINES_DIGEST, f"sqlite:///{tmp_path / 'omnix.db'}"]
        if from_snapshot:
            shutil.rmtree(tmp_path / f"snap-{seed}", ignore_errors=True)
            args.append(str(tmp_path / f"snap-{seed}"))  # each process writes its own snapshot
        done = subprocess.run(
            args, env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize(
    ("before", "refusing"),
    [
        (None, 0),
        (datetime(2026, 10, 1, tzinfo=UTC), 0),
        (None, 7),
        (datetime(2026, 9, 1, tzinfo=UTC), 3),
    ],
)
def test_snapshot_lines_equal_scanned_lines(
    store: Store, tmp_path: Path, before: datetime | None, refusing: int
) -> None:
    catalog = [p.product_id for p in store.iter_products()]
    customers = sorted({c for batch in store.scan_purchases() for c in batch.customer_ids})
    leave_out = frozenset(customers[:refusing])
    scanned = read_purchase_lines(
        (batch.without_customers(leave_out) for batch in store.scan_purchases()), catalog, before=before
    )
    s = snapshot.fresh(store, tmp_path / "snap", "test")
    assert_same_lines(lines_from_snapshot(s, catalog, before=before, leave_out=leave_out), scanned)


def test_read_training_data_from_the_snapshot_as_from_the_store(store: Store, tmp_path: Path) -> None:
    products, scanned = read_training_data(store)
    _, copied = read_training_data(store, snapshot_at=(tmp_path / "snap", "test"))
    assert (tmp_path / "snap" / "current").is_symlink()
    assert_same_lines(copied, scanned)
    assert len(products) == len(list(store.iter_products()))


def test_training_sees_a_purchase_recorded_since_the_last_one(store: Store, tmp_path: Path) -> None:
    settings = Settings(model_dir=str(tmp_path / "models"))
    first = train_model(store, settings, tune=False, parameters=PARAMS)
    assert (tmp_path / "omnix.db.snapshot" / "current").is_symlink()  # beside the database
    lines = store.purchases_of(store.list_customer_ids(1).items[0])
    newest = lines[-1].purchased_at + timedelta(hours=1)
    store.add_purchases([Purchase("newcomer-1", "n-1", lines[0].product_id, 1, 1.0, newest)])
    second = train_model(store, settings, tune=False, parameters=PARAMS)
    assert second.metrics["customers"] == first.metrics["customers"] + 1
    assert second.metrics["order_lines"] == first.metrics["order_lines"] + 1


def test_an_erased_customer_is_in_neither_the_snapshot_nor_the_next_model(store: Store, tmp_path: Path) -> None:
    settings = Settings(model_dir=str(tmp_path / "models"))
    first = train_model(store, settings, tune=False, parameters=PARAMS)
    directory = tmp_path / "omnix.db.snapshot"
    victim = store.list_customer_ids(5).items[3]
    their_lines = len(store.purchases_of(victim))
    service = CustomerService(store, publish=lambda *_: None, snapshot_at=snapshot.location(store, "", ""))
    service.erase(victim)
    scrubbed = snapshot.load(directory)  # byte by byte: tests/store/test_snapshot.py
    assert scrubbed is not None and victim not in scrubbed.customer_ids
    second = train_model(store, settings, tune=False, parameters=PARAMS)
    assert second.metrics["customers"] == first.metrics["customers"] - 1
    assert second.metrics["order_lines"] == first.metrics["order_lines"] - their_lines


def test_lines_read_after_a_scrub_leave_the_scrubbed_customer_out(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "snap"
    loaded = snapshot.fresh(store, directory, "test")  # a training holds it, memory-mapped...
    victim = loaded.customer_ids[0]
    store.delete_customer(victim)
    snapshot.erase_customer(store, directory, victim)  # ...while an erasure scrubs the files
    lines = lines_from_snapshot(loaded, [p.product_id for p in store.iter_products()])
    assert victim not in lines.customer_ids
    assert_same_lines(lines, read_training_data(store)[1])


def test_omnix_import_writes_the_snapshot_the_next_training_reads(
    generated_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    data = generated_db.parent / "data"
    assert main(["import", "instacart", str(data), "--store", url, "--as-of", "2026-11-01"]) == 0
    capsys.readouterr()
    directory = tmp_path / "omnix.db.snapshot"
    written = snapshot.load(directory)
    store = open_store(url)
    try:
        assert written is not None and written.watermark == store.purchase_watermark()
    finally:
        store.close()
    caplog.set_level(logging.INFO, logger="omnix_recs.store.snapshot")
    assert main(["train", "--store", url, "--model-dir", str(tmp_path / "models"), "--no-tune"]) == 0
    assert not [r for r in caplog.records if r.name == "omnix_recs.store.snapshot"]  # read as it was
    assert json.loads(capsys.readouterr().out)["active"] is True
