"""`omnix import instacart --resumable --workers N` on DynamoDB (dynoxide): the order lines
written by N processes, each its share of the customers, checkpointed apart.

It ends with exactly the rows of a one-process import, and the training snapshot it leaves is
what a rebuild holds; killed with SIGKILL midway (the processes it started stop too) and run
again (with as many processes or another number), it ends the same; a bad line stops every
process, naming the file, line and column.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto_server import LocalDynamoDB
from store_support import checkpoint, kill_when_checkpointed

from omnix_recs.cli import main
from omnix_recs.data.generate import generate_instacart
from omnix_recs.store import snapshot
from omnix_recs.store.dynamodb import DynamoStore


def contents(store: DynamoStore) -> tuple[list[Any], list[Any], list[Any]]:
    lines = sorted(row for batch in store.scan_purchases() for row in batch.rows_with_stores())
    customers = sorted(store.list_customer_ids(10_000).items)
    return lines, [(p.product_id, p.price) for p in store.iter_products()], customers


def held(s: snapshot.TrainingSnapshot) -> list[tuple[str, str, str, int]]:
    kept = np.flatnonzero(np.asarray(s.item) >= 0)
    return sorted(
        (s.customer_ids[s.customer[i]], s.order_ids[int(s.basket[i])], s.item_ids[s.item[i]], int(s.purchased_at[i]))
        for i in kept.tolist()
    )


def omnix(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "omnix_recs.cli", *arguments]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("gen")
    generate_instacart(directory, customers=150, products=300, days=365, seed=3)
    return directory


@pytest.fixture(scope="module")
def clean(local_dynoxide: LocalDynamoDB, data: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """What a one-process import leaves."""
    url = local_dynoxide.url()
    environment = {**os.environ, "OMNIX_SNAPSHOT_DIR": "off"}
    for command in (("init-tables",), ("import", "instacart", str(data))):
        subprocess.run(omnix(*command, "--store", url), capture_output=True, timeout=600, check=True, env=environment)
    store = DynamoStore.from_url(url, session=local_dynoxide.session)
    try:
        return contents(store)
    finally:
        store.close()


def test_an_import_over_processes_ends_as_a_one_process_import(
    local_dynoxide: LocalDynamoDB,
    data: Path,
    clean: tuple[list[Any], list[Any], list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = local_dynoxide.open_store()
    try:
        monkeypatch.setenv("OMNIX_SNAPSHOT_DIR", str(tmp_path / "snapshot"))
        arguments = ["import", "instacart", str(data), "--store", local_dynoxide.url(store.env)]
        assert main([*arguments, "--resumable", "--workers", "3"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert contents(store) == clean and report["order_lines"] == len(clean[0])
        assert checkpoint(store) is None
        # The snapshot from the lines this process read while the others wrote them.
        written = snapshot.load(tmp_path / "snapshot")
        assert written is not None and written.watermark == store.purchase_watermark()
        assert held(written) == held(snapshot.rebuild(store, tmp_path / "rebuilt", "x"))
    finally:
        store.close()


@pytest.mark.parametrize("again", [2, 3], ids=["same-workers", "other-workers"])
def test_killed_midway_and_run_again_it_ends_as_a_one_process_import(
    again: int, local_dynoxide: LocalDynamoDB, data: Path, clean: tuple[list[Any], list[Any], list[Any]]
) -> None:
    """Run again with as many processes, each continues its share; with another number, the
    shares are others and are written from their first row."""
    url = local_dynoxide.url()
    environment = {**os.environ, "OMNIX_SNAPSHOT_DIR": "off"}
    subprocess.run(omnix("init-tables", "--store", url), capture_output=True, timeout=120, check=True, env=environment)
    store = DynamoStore.from_url(url, session=local_dynoxide.session)
    command = omnix("import", "instacart", str(data), "--store", url, "--resumable", "--workers", "2")
    # A session of its own: its processes share its group, which tells when they are all gone.
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment, start_new_session=True
    )
    kill_when_checkpointed(
        process,
        store,
        lambda saved: any(
            int(value["M"]["rows"]["N"]) >= 1_000 for name, value in saved.items() if name.startswith("share")
        ),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # its processes notice within a chunk and stop
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the import's processes outlived it")
    assert any(name.startswith("share") for name in checkpoint(store) or {})
    command[command.index("--workers") + 1] = str(again)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True, env=environment)
    try:
        assert contents(store) == clean and json.loads(resumed.stdout)["order_lines"] == len(clean[0])
        assert checkpoint(store) is None
    finally:
        store.close()


def test_a_bad_line_stops_every_process_naming_it(
    local_dynoxide: LocalDynamoDB, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in data.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    lines = (broken / "order_products__prior.csv").read_text().splitlines()
    order_id, _, *rest = lines[500].split(",")
    lines[500] = ",".join([order_id, "999999", *rest])  # a product products.csv does not have
    (broken / "order_products__prior.csv").write_text("\n".join(lines) + "\n")
    store = local_dynoxide.open_store()
    try:
        url = local_dynoxide.url(store.env)
        assert main(["import", "instacart", str(broken), "--store", url, "--resumable", "--workers", "2"]) == 2
        error = capsys.readouterr().err
        assert "order_products__prior.csv:line 501:product_id" in error and "999999" in error
    finally:
        store.close()


@pytest.mark.parametrize(
    ("store_kind", "options", "says"),
    [
        ("dynoxide", ["--workers", "2"], "add --resumable"),
        ("dynoxide", ["--workers", "0", "--resumable"], "between 1 and 64"),
        ("sqlite", ["--workers", "2"], "only resumable DynamoDB imports"),
    ],
)
def test_workers_are_refused_where_they_cannot_run(
    store_kind: str,
    options: list[str],
    says: str,
    request: pytest.FixtureRequest,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    if store_kind == "dynoxide":
        url = request.getfixturevalue("local_dynoxide").url()
    assert main(["import", "instacart", str(data), "--store", url, *options]) == 2
    error = capsys.readouterr().err
    assert "--workers" in error and says in error
