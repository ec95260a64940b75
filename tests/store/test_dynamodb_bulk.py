"""Bulk loads for DynamoDB's ImportTable (store/dynamodb/bulk.py, `omnix import ... --bulk-to`,
`omnix import-tables`).

A generated shop written as a bulk load and loaded by `dynoxide import` (the local ImportTable)
gives tables holding exactly the items an import through the store writes, and a training
snapshot the store takes as current without reading its purchases. Loaded by ImportTable itself
(moto's, from moto's S3), the store reads the same shop. What cannot become such tables is
refused naming why, and leaves no directory, no snapshot and no table.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from local_aws import dynoxide_binary, dynoxide_server
from moto_server import LocalDynamoDB

from omnix_recs.cli import main
from omnix_recs.data.generate import generate_instacart
from omnix_recs.domain.models import Purchase
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError
from omnix_recs.s3 import S3Location
from omnix_recs.store import snapshot
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.bulk import LOADED_WATERMARK, MANIFEST, import_tables
from omnix_recs.store.dynamodb.codec import PurchaseItems, purchase_item
from omnix_recs.store.dynamodb.tables import CUSTOMERS, MODELS, PRODUCTS, PURCHASES, TableSpec

SHOP = {"customers": 40, "products": 200, "days": 90, "seed": 3}
BUCKET = "omnix-bulk"
LOADED = (CUSTOMERS, PRODUCTS, PURCHASES)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bulk") / "shop"
    generate_instacart(directory, **SHOP)  # type: ignore[arg-type]
    return directory


def bulk_load(shop: Path, out: Path, url: str, snapshots: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("OMNIX_SNAPSHOT_DIR", str(snapshots))
    return main(["import", "instacart", str(shop), "--store", url, "--bulk-to", str(out)])


def table_items(store: DynamoStore, spec: TableSpec) -> dict[tuple[str, ...], dict[str, Any]]:
    items = store.db.items("scan", TableName=store.table_names[spec.table], ConsistentRead=True)
    return {spec.key_tuple(item): item for item in items}


def snapshot_rows(loaded: snapshot.TrainingSnapshot) -> set[tuple[str, str, str, int]]:
    customers, items, orders = loaded.customer_ids, loaded.item_ids, loaded.order_ids.all()
    return {
        (customers[c], items[i], orders[b], int(t))
        for c, i, b, t in zip(loaded.customer, loaded.item, loaded.basket, loaded.purchased_at)
        if i >= 0
    }


def store_rows(store: DynamoStore) -> set[tuple[str, str, str, int]]:
    return {
        (customer, product, order, int(at))
        for batch in store.scan_purchases()
        for customer, order, product, _, _, at in batch.rows()
    }


@pytest.fixture
def dynoxide_load(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """The shop bulk-loaded for env "bulk", imported by `dynoxide import` into a database file
    that a dynoxide server then serves: (its store URL, the snapshot directory)."""
    binary = dynoxide_binary()
    if binary is None:
        pytest.skip("dynoxide is not installed (run scripts/setup-system.sh)")
    out, database, snapshots = tmp_path / "load", tmp_path / "tables.db", tmp_path / "snapshot"
    # The URL the training host uses names the snapshot's store; the port is chosen later, so
    # the load is written for a placeholder and the snapshot's source is the server's URL below.
    assert bulk_load(shop, out, "dynamodb://?region=us-east-1&env=bulk", snapshots, monkeypatch) == 0
    subprocess.run(
        [binary, "import", "--source", str(out), "--schema", str(out / "tables.json"), "--output", str(database)],
        check=True,
        capture_output=True,
    )
    with dynoxide_server(database) as endpoint:
        yield f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=bulk", snapshots


def test_a_bulk_load_holds_what_an_import_writes_and_the_snapshot_is_current(
    shop: Path, dynoxide_load: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, snapshots = dynoxide_load
    loaded = DynamoStore.from_url(url)
    # The whole table set, the tables given nothing empty: no `omnix init-tables` needed.
    assert set(loaded.db.call("list_tables")["TableNames"]) == set(loaded.table_names.values())
    reference = DynamoStore.from_url(url.replace("env=bulk", "env=reference"))
    reference.create_tables()
    monkeypatch.setenv("OMNIX_SNAPSHOT_DIR", "off")
    assert main(["import", "instacart", str(shop), "--store", url.replace("env=bulk", "env=reference")]) == 0

    for spec in LOADED:
        assert table_items(loaded, spec) == table_items(reference, spec), spec.table
    models = table_items(loaded, MODELS)
    assert models[("#purchases",)]["purchaseEpoch"] == {"N": "1"}
    assert models[("#catalog",)]["catalogVersion"] == {"N": "1"}
    assert loaded.purchase_watermark() == LOADED_WATERMARK
    assert loaded.refusals_indexed()  # every profile loaded carries the refusals' index key

    written = snapshot.load(snapshots)
    assert written is not None and written.watermark == LOADED_WATERMARK
    # Taken as current: the same generation comes back, nothing is read from the purchase table.
    with monkeypatch.context() as reading:
        reading.setattr(DynamoStore, "scan_purchases_unordered", lambda *a, **k: pytest.fail("scanned the store"))
        current = snapshot.fresh(loaded, snapshots, written.source)  # the URL the load was given
    assert current.path == written.path
    assert snapshot_rows(current) == store_rows(reference)
    loaded.close()
    reference.close()


def test_import_table_on_moto_loads_the_shop(
    shop: Path,
    tmp_path: Path,
    local_dynamodb: LocalDynamoDB,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = "bulkmoto"
    url = local_dynamodb.url(env)
    out = tmp_path / "load"
    assert bulk_load(shop, out, url, tmp_path / "snapshot", monkeypatch) == 0
    s3 = local_dynamodb.session.client("s3", endpoint_url=local_dynamodb.endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for path in out.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"loads/first/{path.relative_to(out)}")
    location = S3Location(BUCKET, "loads/first", endpoint=local_dynamodb.endpoint, region="us-east-1")

    store = local_dynamodb.open_store(env, create_tables=False)
    loaded = import_tables(store.db, env, location, poll_s=0.05)
    manifest = json.loads((out / MANIFEST).read_text())
    assert {table.name: table.items for table in loaded} == {
        n: items for n, items in manifest["tables"].items() if items
    }
    assert store.purchase_watermark() == LOADED_WATERMARK  # the journal's table was created after
    files = {spec: items_in(out / store.table_names[spec.table]) for spec in LOADED}
    for spec in LOADED:
        assert table_items(store, spec) == files[spec], spec.table
    customer = next(iter(files[CUSTOMERS].values()))["customerId"]["S"]
    assert store.get_customer(customer).customer_id == customer
    assert store.purchases_of(customer)

    with pytest.raises(FailedPreconditionError, match="-bulkmoto exist: ImportTable creates the tables it loads"):
        import_tables(store.db, env, location, poll_s=0.05)
    source = f"s3://{BUCKET}/loads/first?endpoint={local_dynamodb.endpoint}&region=us-east-1"
    assert main(["import-tables", source, "--store", local_dynamodb.url("other")]) != 0
    assert "is for the tables of env 'bulkmoto', the store's are 'other'" in capsys.readouterr().err
    with pytest.raises(FailedPreconditionError, match="manifest.json does not exist: not a bulk load"):
        import_tables(store.db, env, S3Location(BUCKET, "loads/none", endpoint=local_dynamodb.endpoint), poll_s=0.05)
    store.close()


def items_in(table_directory: Path) -> dict[tuple[str, ...], dict[str, Any]]:
    spec = next(spec for spec in LOADED if table_directory.name.startswith(f"omnix-ai-{spec.table}-"))
    items = {}
    for part in sorted((table_directory / "data").glob("*.json.gz")):
        with gzip.open(part, "rt", encoding="utf-8") as lines:
            for line in lines:
                item = json.loads(line)["Item"]
                items[spec.key_tuple(item)] = item
    return items


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


@pytest.mark.parametrize(
    ("spoil", "field", "message"),
    [
        (lambda d: append(d / "order_products__prior.csv", "1,abc,9,0\n"), "product_id", "positive whole-number id"),
        (
            lambda d: append(
                d / "order_products__prior.csv", (d / "order_products__prior.csv").read_text().splitlines()[1] + "\n"
            ),
            "purchases",
            "1 order line(s) repeat an earlier line's customer, order, product and time",
        ),
    ],
    ids=["bad value", "repeated line"],
)
def test_a_load_that_fails_leaves_nothing(
    spoil: Any,
    field: str,
    message: str,
    shop: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spoiled = tmp_path / "shop"
    subprocess.run(["cp", "-r", str(shop), str(spoiled)], check=True)
    spoil(spoiled)
    out, snapshots = tmp_path / "load", tmp_path / "snapshot"
    (tmp_path / "load.partial").mkdir()  # a killed load's leftover: removed, not in the way
    assert bulk_load(spoiled, out, "dynamodb://?region=us-east-1&env=bulk", snapshots, monkeypatch) != 0
    said = capsys.readouterr().err
    assert field in said and message in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def test_what_a_bulk_load_is_not_for_is_refused(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "dynamodb://?region=us-east-1&env=bulk"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert bulk_load(shop, tmp_path / "full", url, tmp_path / "s", monkeypatch) != 0
    assert "--bulk-to" in capsys.readouterr().err
    assert bulk_load(shop, tmp_path / "a", f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "s", monkeypatch) != 0
    assert "a bulk load is for DynamoDB tables" in capsys.readouterr().err
    monkeypatch.delenv("OMNIX_SNAPSHOT_DIR", raising=False)
    assert main(["import", "instacart", str(shop), "--store", url, "--bulk-to", str(tmp_path / "a")]) != 0
    assert "OMNIX_SNAPSHOT_DIR" in capsys.readouterr().err
    assert (
        main(["import", "instacart", str(shop), "--store", url, "--bulk-to", str(tmp_path / "a"), "--resumable"]) != 0
    )
    assert "one process" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


ODD_LINES = [
    ("c1", "o1", "p1", 1, 2.5, 1_700_000_000, ""),
    ("c#1", "o%23", "p#%", 12, 0.1, 0, "s1"),
    ("ü", "o", "p", 3, 1e-5, 1_700_000_001, ""),
    ("c", "o", "p", 1, 1e-140, 1_700_000_001, ""),  # below DynamoDB's smallest number: zero
    ("c", "o", "p", 2, 123456789.125, 2_000_000_000, "s"),
    ("c", "o", "p", np.int64(4), np.float64(2.5), np.int64(1_700_000_000), ""),
    ("c", "o", "p", 1, 1, 1_700_000_000, ""),  # an int price, after the float 1.0-like ones
    ("c", "o", "p", 1, 2.5, 1_700_000_000, ""),  # cached values come back the same
]
BAD_LINES = [
    ("", "o", "p", 1, 2.5, 0, ""),
    ("c", "", "p", 1, 2.5, 0, ""),
    ("c", "o", "", 1, 2.5, 0, ""),
    ("c", "o", "p", 1.5, 2.5, 0, ""),
    ("c", "o", "p", True, 2.5, 0, ""),
    ("c", "o", "p", 1, float("nan"), 0, ""),
    ("c", "o", "p", 1, True, 0, ""),
]


def test_purchase_items_are_purchase_item() -> None:
    encoder = PurchaseItems()
    for customer, order, product, quantity, price, seconds, store in ODD_LINES:
        at = datetime.fromtimestamp(int(seconds), UTC)
        expected = purchase_item(Purchase(customer, order, product, quantity, price, at, store))
        assert encoder.item(customer, order, product, quantity, price, seconds, store) == expected
    for customer, order, product, quantity, price, seconds, store in BAD_LINES:
        at = datetime.fromtimestamp(int(seconds), UTC)
        with pytest.raises(InvalidArgumentError) as expected_error:
            purchase_item(Purchase(customer, order, product, quantity, price, at, store))
        with pytest.raises(InvalidArgumentError) as error:
            encoder.item(customer, order, product, quantity, price, seconds, store)
        assert (error.value.field, error.value.message) == (expected_error.value.field, expected_error.value.message)
