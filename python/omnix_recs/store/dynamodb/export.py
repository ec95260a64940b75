"""The purchase table from a DynamoDB export to S3, for building the training snapshot.

`ExportTableToPointInTime` (point-in-time recovery on, format DYNAMODB_JSON) copies a table to
S3 without reading it through the table's capacity: a 34M-line history is a Scan of hours, an
export of minutes, paid per GB. Its layout:

    <prefix>/AWSDynamoDB/<export id>/manifest-summary.json   outputFormat, itemCount, manifestFilesS3Key
    <prefix>/AWSDynamoDB/<export id>/manifest-files.json     JSON lines: dataFileS3Key, itemCount
    <prefix>/AWSDynamoDB/<export id>/data/<name>.json.gz     JSON lines: {"Item": {<DynamoDB JSON>}}

`export_purchase_lines` reads such an export as order lines (customers' "#history" rows left
out), checking each file's item count against the manifest. A snapshot built from it gets the
watermark read just before the export was requested (`DynamoStore.request_purchase_export`):
what was written since is in the journal, and lines in both are dropped once.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import FailedPreconditionError, UnavailableError
from omnix_recs.s3 import S3Location, s3_client
from omnix_recs.store.dynamodb.codec import append_purchase

SUMMARY = "manifest-summary.json"


def export_purchase_lines(location: S3Location, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
    """The order lines of an export of the purchase table, `location` being the export's own
    directory (`s3://bucket/<prefix>/AWSDynamoDB/<export id>`), in batches of `batch_rows`.

    `FailedPreconditionError` for what is not such an export (no summary, another format, an
    item count that differs from the manifest's); `UnavailableError` when S3 cannot be read."""
    client = s3_client(location)
    summary = s3_json(client, location.bucket, location.key(SUMMARY))
    if summary.get("outputFormat") != "DYNAMODB_JSON":
        raise FailedPreconditionError(
            f"{location.display} is an export in {summary.get('outputFormat')!r}, expected DYNAMODB_JSON"
        )
    files_key = _bucket_key(str(summary.get("manifestFilesS3Key", "")), str(summary.get("s3Prefix") or ""))
    manifest = s3_bytes(client, location.bucket, files_key).decode()
    columns = _new_columns()
    for entry in (json.loads(line) for line in manifest.splitlines() if line.strip()):
        key = _bucket_key(str(entry["dataFileS3Key"]), str(summary.get("s3Prefix") or ""))
        items = 0
        with gzip.open(io.BytesIO(s3_bytes(client, location.bucket, key)), "rt", encoding="utf-8") as data:
            for line in data:
                if not line.strip():
                    continue
                items += 1
                item = json.loads(line)["Item"]
                if "listing" in item:  # a customer's "#history" row, not a line
                    continue
                append_purchase(columns, item)
                if len(columns) == batch_rows:
                    yield columns
                    columns = _new_columns()
        if items != int(entry.get("itemCount", items)):
            raise FailedPreconditionError(
                f"s3://{location.bucket}/{key} holds {items} items, the export's manifest says {entry['itemCount']}"
            )
    if len(columns):
        yield columns


def _bucket_key(key: str, prefix: str) -> str:
    """Manifests name files from the bucket's root; some writers leave the export prefix out."""
    prefix = prefix.strip("/")
    return key if not prefix or key.startswith(f"{prefix}/") else f"{prefix}/{key}"


def s3_json(client: Any, bucket: str, key: str, missing: str = "not a finished export") -> dict[str, Any]:
    """The JSON object at `key`; `missing` says what its absence means."""
    try:
        value = json.loads(s3_bytes(client, bucket, key, missing))
    except ValueError as error:
        raise FailedPreconditionError(f"s3://{bucket}/{key} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise FailedPreconditionError(f"s3://{bucket}/{key} is not a JSON object")
    return value


def s3_bytes(client: Any, bucket: str, key: str, missing: str = "not a finished export") -> bytes:
    """The object at `key`: `FailedPreconditionError` saying `missing` when there is none,
    `UnavailableError` when S3 cannot be read."""
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise FailedPreconditionError(f"s3://{bucket}/{key} does not exist: {missing}") from None
        raise UnavailableError(f"S3 is unavailable: reading s3://{bucket}/{key} failed") from error
    except BotoCoreError as error:
        raise UnavailableError(f"S3 is unavailable: reading s3://{bucket}/{key} failed ({error})") from error


def _new_columns() -> PurchaseColumns:
    return PurchaseColumns([], [], [], [], [], [], [])
