"""The training snapshot built from a DynamoDB export to S3 (store/dynamodb/export.py).

moto's S3 holds files in the layout and format ExportTableToPointInTime writes (manifests,
gzipped DynamoDB JSON lines), made from the purchase table of a DynamoDB store (moto); the
snapshot built from them holds what a scan holds, and purchases recorded after the export reach
it from the journal without a rebuild. What is not a finished DYNAMODB_JSON export is refused.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto_server import LocalDynamoDB

from omnix_recs.cli import main
from omnix_recs.domain.models import Purchase
from omnix_recs.errors import FailedPreconditionError
from omnix_recs.s3 import S3Location
from omnix_recs.store import snapshot
from omnix_recs.store.base import PurchaseWatermark
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.export import export_purchase_lines

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BUCKET = "omnix-exports"
SOURCE = "dynamodb-under-test"
HISTORY = [
    Purchase(f"c{n % 7}", f"o{n // 4}", f"p{n % 11}", 1 + n % 2, 1.5, T0 + timedelta(hours=n), "s1" if n % 3 else "")
    for n in range(60)
]


@pytest.fixture
def store(local_dynamodb: LocalDynamoDB) -> Iterator[DynamoStore]:
    opened = local_dynamodb.open_store()
    opened.add_purchases(HISTORY)
    yield opened
    opened.close()


@pytest.fixture
def s3(local_dynamodb: LocalDynamoDB) -> Any:
    client = local_dynamodb.session.client("s3", endpoint_url=local_dynamodb.endpoint, region_name="us-east-1")
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    return client


def write_export(s3: Any, store: DynamoStore, export_id: str, files: int = 2, **summary: Any) -> str:
    """The purchase table as ExportTableToPointInTime writes it; returns the export's directory key."""
    items = list(store.db.items("scan", TableName=store.table_names["purchase-history"], ConsistentRead=True))
    directory = f"omnix/AWSDynamoDB/{export_id}"
    entries = []
    for n in range(files):
        part = items[n::files]
        key = f"{directory}/data/part{n}.json.gz"
        body = "".join(json.dumps({"Item": item}) + "\n" for item in part)
        s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body.encode()))
        entries.append({"itemCount": len(part), "md5Checksum": "x", "etag": "x", "dataFileS3Key": key})
    s3.put_object(
        Bucket=BUCKET, Key=f"{directory}/manifest-files.json", Body="\n".join(map(json.dumps, entries)).encode()
    )
    description = {
        "version": "2020-06-30",
        "s3Bucket": BUCKET,
        "s3Prefix": "omnix",
        "manifestFilesS3Key": f"{directory}/manifest-files.json",
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
        **summary,
    }
    s3.put_object(Bucket=BUCKET, Key=f"{directory}/manifest-summary.json", Body=json.dumps(description).encode())
    return directory


def location(local_dynamodb: LocalDynamoDB, directory: str) -> S3Location:
    return S3Location.parse(f"s3://{BUCKET}/{directory}?endpoint={local_dynamodb.endpoint}&region=us-east-1")


def scanned(store: DynamoStore) -> list[tuple[Any, ...]]:
    return sorted((c, o, p, t) for batch in store.scan_purchases() for c, o, p, _, _, t in batch.rows())


def held(s: snapshot.TrainingSnapshot) -> list[tuple[Any, ...]]:
    kept = np.flatnonzero(np.asarray(s.item) >= 0).tolist()
    return sorted(
        (s.customer_ids[s.customer[i]], s.order_ids[int(s.basket[i])], s.item_ids[s.item[i]], int(s.purchased_at[i]))
        for i in kept
    )


def test_an_export_reads_as_the_lines_a_scan_reads(store: DynamoStore, s3: Any, local_dynamodb: LocalDynamoDB) -> None:
    directory = write_export(s3, store, "01-lines")
    lines = [
        row
        for batch in export_purchase_lines(location(local_dynamodb, directory), 7)
        for row in batch.rows_with_stores()
    ]
    expected = [
        (p.customer_id, p.order_id, p.product_id, p.quantity, p.unit_price, int(p.purchased_at.timestamp()), p.store_id)
        for p in HISTORY
    ]
    assert sorted(lines) == sorted(expected)  # the "#history" rows are not lines


def test_a_snapshot_built_from_an_export_then_follows_the_journal(
    store: DynamoStore, s3: Any, local_dynamodb: LocalDynamoDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watermark = store.purchase_watermark()  # read before the export is requested
    directory = write_export(s3, store, "02-snapshot")
    target = tmp_path / "snapshot"
    built = snapshot.rebuild_from(target, SOURCE, export_purchase_lines(location(local_dynamodb, directory)), watermark)
    assert held(built) == scanned(store) and built.watermark == watermark
    store.add_purchases([Purchase("c-new", "o-new", "p1", 1, 2.0, T0 + timedelta(days=30))])
    caplog.set_level(logging.INFO, logger="omnix_recs.store.snapshot")
    after = snapshot.fresh(store, target, SOURCE)
    assert held(after) == scanned(store) and len(after) == len(HISTORY) + 1
    assert any("appended lines added" in r.getMessage() for r in caplog.records)
    assert not any("rebuilding" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ({"outputFormat": "ION"}, "expected DYNAMODB_JSON"),
        ({"manifestFilesS3Key": "omnix/AWSDynamoDB/elsewhere/manifest-files.json"}, "not a finished export"),
    ],
)
def test_what_is_not_a_finished_json_export_is_refused(
    store: DynamoStore, s3: Any, local_dynamodb: LocalDynamoDB, summary: dict[str, Any], message: str
) -> None:
    directory = write_export(s3, store, f"03-{len(message)}", **summary)
    with pytest.raises(FailedPreconditionError, match=message):
        list(export_purchase_lines(location(local_dynamodb, directory)))


def test_a_missing_export_and_a_short_data_file_are_refused(
    store: DynamoStore, s3: Any, local_dynamodb: LocalDynamoDB
) -> None:
    with pytest.raises(FailedPreconditionError, match="manifest-summary.json does not exist"):
        list(export_purchase_lines(location(local_dynamodb, "omnix/AWSDynamoDB/none")))
    directory = write_export(s3, store, "04-short", files=1)
    truncated = gzip.compress(
        b'{"Item": {"customerId": {"S": "c1"}, "sk": {"S": "#history"}, "listing": {"S": "p"}}}\n'
    )
    s3.put_object(Bucket=BUCKET, Key=f"{directory}/data/part0.json.gz", Body=truncated)
    with pytest.raises(FailedPreconditionError, match="holds 1 items, the export's manifest says"):
        list(export_purchase_lines(location(local_dynamodb, directory)))


def test_an_export_is_requested_with_the_watermark_read_before_it(
    store: DynamoStore, s3: Any, local_dynamodb: LocalDynamoDB
) -> None:
    dynamodb = local_dynamodb.session.client("dynamodb", endpoint_url=local_dynamodb.endpoint, region_name="us-east-1")
    dynamodb.update_continuous_backups(
        TableName=store.table_names["purchase-history"],
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    arn, watermark = store.request_purchase_export(BUCKET, "omnix")
    assert arn.startswith("arn:") and watermark == store.purchase_watermark()


# --- the commands ---------------------------------------------------------------------------------


def test_the_commands_request_an_export_and_build_the_snapshot_from_one(
    store: DynamoStore,
    s3: Any,
    local_dynamodb: LocalDynamoDB,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.db.call(
        "update_continuous_backups",
        TableName=store.table_names["purchase-history"],
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    url = local_dynamodb.url(store.env)
    assert main(["export-purchases", "--store", url, "--to", f"s3://{BUCKET}/omnix"]) == 0
    requested = json.loads(capsys.readouterr().out)
    current = store.purchase_watermark()
    assert requested["watermark"] == current.text() and PurchaseWatermark.parse(current.text()) == current
    directory = write_export(s3, store, "05-command")
    monkeypatch.setenv("OMNIX_SNAPSHOT_DIR", str(tmp_path / "snapshot"))
    export = str(location(local_dynamodb, directory))
    assert main(["snapshot-from-export", export, "--watermark", requested["watermark"], "--store", url]) == 0
    assert json.loads(capsys.readouterr().out)["lines"] == len(HISTORY)
    assert snapshot.fresh(store, tmp_path / "snapshot", url).watermark == current  # trusted as it is


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--watermark", "3"], "--watermark"),
        (["--watermark", "a:b"], "--watermark"),
    ],
)
def test_a_bad_watermark_is_refused_naming_the_option(
    arguments: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["snapshot-from-export", f"s3://{BUCKET}/x", *arguments])
    assert exited.value.code == 2 and named in capsys.readouterr().err


def test_without_a_snapshot_directory_nothing_is_read(
    store: DynamoStore,
    local_dynamodb: LocalDynamoDB,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OMNIX_SNAPSHOT_DIR", raising=False)
    url = local_dynamodb.url(store.env)
    assert main(["snapshot-from-export", f"s3://{BUCKET}/none", "--watermark", "0:1", "--store", url]) == 2
    assert "OMNIX_SNAPSHOT_DIR" in capsys.readouterr().err
