"""The DynamoDB store on dynoxide, end to end: what `omnix` does with a DynamoDB URL.

The store contract runs on dynoxide as `[dynoxide]` (conftest.py); here the commands a user
runs against a local DynamoDB (tests/local_aws.py starts dynoxide on 127.0.0.1): create the
tables, import a generated shop, train from it, and the progress an import shows meanwhile.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from moto_server import LocalDynamoDB

from omnix_recs.cli import main
from omnix_recs.data.generate import generate_instacart
from omnix_recs.store import open_store

SHOP = dict(customers=40, products=200, days=120, seed=11)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dynoxide-shop")
    generate_instacart(directory, **SHOP)  # type: ignore[arg-type]
    return directory


def test_init_tables_import_and_train_on_dynoxide(
    local_dynoxide: LocalDynamoDB,
    shop: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    url = local_dynoxide.url()
    assert main(["init-tables", "--store", url]) == 0
    capsys.readouterr()

    assert main(["--progress-every", "60", "import", "instacart", str(shop), "--store", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["customers"] == SHOP["customers"] and report["order_lines"] > 0
    done = [r.getMessage() for r in caplog.records if r.name == "omnix.progress" and "done in" in r.getMessage()]
    written = next(line for line in done if line.startswith("write to DynamoDB: "))
    # Every order line, customer and product, plus one history header per purchaser.
    items = int(written.removeprefix("write to DynamoDB: ").split(" ", 1)[0].replace(",", ""))
    assert items >= report["order_lines"] + report["customers"] + report["products"]

    models = tmp_path / "models"
    assert main(["train", "--store", url, "--model-dir", str(models), "--no-tune"]) == 0
    model = json.loads(capsys.readouterr().out)
    assert model["active"] is True
    store = open_store(url)
    try:
        assert store.count_purchases() == report["order_lines"]
        active = store.active_model()
        assert active is not None and active.version == model["version"]
    finally:
        store.close()


def test_importing_again_changes_nothing_on_dynoxide(
    local_dynoxide: LocalDynamoDB, shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = local_dynoxide.url()
    assert main(["init-tables", "--store", url]) == 0
    assert main(["import", "instacart", str(shop), "--store", url]) == 0
    capsys.readouterr()
    assert main(["import", "instacart", str(shop), "--store", url]) == 0
    again = json.loads(capsys.readouterr().out)
    store = open_store(url)
    try:
        assert store.count_purchases() == again["order_lines"]
    finally:
        store.close()


def test_a_bad_import_file_leaves_dynoxide_as_it_was(
    local_dynoxide: LocalDynamoDB, shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for source in shop.iterdir():
        (broken / source.name).write_bytes(source.read_bytes())
    lines = (broken / "order_products__prior.csv").read_text(encoding="utf-8").splitlines()
    lines[len(lines) // 2] = "1,not-a-product,1,0"
    (broken / "order_products__prior.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    url = local_dynoxide.url()
    assert main(["init-tables", "--store", url]) == 0
    assert main(["import", "instacart", str(broken), "--store", url]) == 2
    assert "order_products__prior.csv" in capsys.readouterr().err
    store = open_store(url)
    try:
        assert store.count_purchases() == 0
        assert list(store.iter_products()) == []
    finally:
        store.close()
