"""A new table set's first load as files for DynamoDB's ImportTable, which uses no write capacity.

Writing 34M order lines with BatchWriteItem (imports.py) costs about 100M write units and hours;
ImportTable builds new tables from files in S3 without consuming any, billed per GB of source.
`BulkLoad` is an import destination (`omnix import ... --bulk-to DIR`): its session writes to
files, instead of sending them, exactly the items the store's own import session would write:

    DIR/<table name>/data/<part>.json.gz   DynamoDB JSON lines, {"Item": {...}}: ImportTable's
                                           DYNAMODB_JSON with GZIP, and `dynoxide import`'s input
    DIR/tables.json                        [{"Table": CreateTable parameters}]: ImportTable's
                                           TableCreationParameters, and `dynoxide import --schema`
    DIR/manifest.json                      the table set, items per table, the tables' purchase
                                           watermark; written last

It fills the customers, products, purchases and models tables (of the models table, the catalog
version and the purchase epoch rows) and gives every other table of the store an empty file, so
the import makes the whole table set: `dynoxide import` (which answers each DescribeTable by
counting the table, minutes at tens of millions of items) needs no `omnix init-tables` after
it. `import_tables` (`omnix import-tables s3://...`) runs one ImportTable per table, then turns
on the TTL of the tables that expire items, as `omnix init-tables` does.
The training snapshot is written with the watermark the new tables will have, so the first
`omnix train` reads the lines at memory speed and nothing from the purchase table.

The directory is written as `DIR.partial` and renamed when the load commits: a load that fails or
is killed leaves no DIR (the next load to DIR removes the leftover). ImportTable takes each key
once, so what an import would overwrite is resolved here: a customer or product given twice is
kept as given last, and an order line given twice (the same customer, order, product and time)
refuses the load, naming how many there were.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from botocore.exceptions import ClientError

from omnix_recs import progress
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError
from omnix_recs.s3 import S3Location, s3_client
from omnix_recs.store import snapshot
from omnix_recs.store.base import ImportedPurchases, ImportFollower, PurchaseShares, PurchaseWatermark, purchase_columns
from omnix_recs.store.dynamodb.client import DynamoClient, TableMissingError, client_from_url, error_code
from omnix_recs.store.dynamodb.codec import (
    CATALOG_VERSION_ROW,
    PURCHASE_WATERMARK_ROW,
    REFUSALS_INDEXED_ROW,
    PurchaseItems,
    customer_item,
    product_item,
    timestamp,
    wire_string,
    with_history_headers,
)
from omnix_recs.store.dynamodb.export import s3_bytes, s3_json
from omnix_recs.store.dynamodb.journal import JOURNAL_SHARDS
from omnix_recs.store.dynamodb.tables import (
    CUSTOMERS,
    MODELS,
    PRODUCTS,
    PURCHASES,
    TABLES,
    TableSpec,
    create_missing_tables,
    table_definition,
    table_name,
)

log = logging.getLogger(__name__)

FORMAT = "omnix-dynamodb-bulk-load"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLES_FILE = "tables.json"
PART_ITEMS = 1_000_000  # items per data file: about 17 MB gzipped for order lines
CHUNK = 1_000  # order lines encoded, given their "#history" rows and written together
# The epoch the loaded tables start at: one import's worth of history, nothing journaled since.
LOADED_WATERMARK = PurchaseWatermark(epoch=1, sequence=0, shards=(0,) * JOURNAL_SHARDS)
IMPORT_STATUS_EVERY_S = 5.0


class BulkLoad:
    """The import destination that writes a new table set's files to `out` (see the module
    docstring); `store_url` (`dynamodb://...&env=...`) names the tables and the snapshot's
    store, `snapshot_dir` is where the training host reads the snapshot. Nothing is sent to
    DynamoDB: the tables must not exist yet, ImportTable creates them."""

    def __init__(self, out: Path, store_url: str, snapshot_dir: Path) -> None:
        _, self.env = client_from_url(store_url)  # checks the URL; the client is never used
        self.out = out
        self.store_url = store_url
        self.snapshot_dir = snapshot_dir
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidArgumentError("--bulk-to", f"{out} exists and is not an empty directory")

    def import_session(self, follower: ImportFollower | None = None) -> BulkLoadSession:
        return BulkLoadSession(self, follower)

    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]:
        return []  # new tables hold no history (an import checks it for another --as-of)


class _TableFiles:
    """One table's data files: gzipped DynamoDB JSON lines, a new part every `PART_ITEMS`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "data"
        self.directory.mkdir(parents=True)
        self.items = 0
        self._raw: BinaryIO | None = None
        self._file: gzip.GzipFile | None = None

    def write(self, items: Iterable[Mapping[str, Any]]) -> None:
        self.write_encoded(map(orjson.dumps, items))

    def write_encoded(self, items: Iterable[bytes]) -> None:
        """Items already in JSON (DynamoDB's wire format); a table given none has one empty part."""
        if self._file is None and self.items == 0:
            self._next_part()
        for item in items:
            if self.items and self.items % PART_ITEMS == 0:
                self._next_part()
            assert self._file is not None  # opened above
            self._file.write(b'{"Item":' + item + b"}\n")
            self.items += 1

    def _next_part(self) -> None:
        self.close()
        self._raw = (self.directory / f"{self.items // PART_ITEMS:05d}.json.gz").open("wb")
        self._file = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=1)

    def close(self) -> None:
        """Finish the open part, on disk (fsync) before the manifest says the load is whole."""
        if self._file is not None and self._raw is not None:
            self._file.close()  # leaves `_raw` open
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._file = self._raw = None


class BulkLoadSession:
    """An `ImportSession` writing files (see the module docstring): committed whole, or nothing."""

    def __init__(self, load: BulkLoad, follower: ImportFollower | None) -> None:
        self._load = load
        self._follower = follower
        self._lines = snapshot.ImportedLines()  # for the snapshot, and to find repeated lines
        self._partial = load.out.with_name(f"{load.out.name}.partial")
        self._files: dict[str, _TableFiles] = {}
        self._keyed: dict[str, dict[tuple[str, ...], bytes]] = {CUSTOMERS.table: {}, PRODUCTS.table: {}}
        self._purchasers: set[str] = set()
        self._encoder = PurchaseItems()
        self._given = 0
        self._state = "new"  # then "open" inside `with`, then "committed"

    def __enter__(self) -> BulkLoadSession:
        if self._state != "new":
            raise FailedPreconditionError("an import session is used once")
        self._state = "open"
        shutil.rmtree(self._partial, ignore_errors=True)  # a killed load's leftover
        self._partial.mkdir(parents=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state != "committed":
            for files in self._files.values():
                files.close()
            shutil.rmtree(self._partial, ignore_errors=True)

    def add_customers(self, customers: Iterable[Customer]) -> None:
        self._add_keyed(CUSTOMERS, "customers", customer_item, customers)

    def add_products(self, products: Iterable[Product]) -> None:
        self._add_keyed(PRODUCTS, "products", product_item, products)

    def add_purchases(self, purchases: Iterable[Purchase]) -> None:
        given = list(purchases)
        self.add_purchase_columns(purchase_columns(given))

    def add_purchase_columns(self, columns: PurchaseColumns) -> None:
        self._require_open()
        rows = list(columns.rows_with_stores())  # checks the lengths before anything is written
        self._lines.add(columns)
        if self._follower is not None:
            self._follower.add(columns)
        files, encode = self._table(PURCHASES), self._encoder.item
        for start in range(0, len(rows), CHUNK):
            chunk = []
            for n, row in enumerate(rows[start : start + CHUNK], self._given + start):
                try:
                    chunk.append(encode(*row))
                except InvalidArgumentError as error:
                    raise InvalidArgumentError(f"purchases[{n}].{error.field}", error.message) from None
            files.write(with_history_headers(chunk, self._purchasers))
        self._given += len(rows)

    def add_purchase_shares(self, shares: PurchaseShares, workers: int, lines: Iterable[PurchaseColumns]) -> None:
        if workers > 1:
            raise FailedPreconditionError("a bulk load is written by one process: leave out --workers")
        for batch in lines:
            self.add_purchase_columns(batch)

    def commit(self) -> None:
        self._require_open()
        lines = self._lines.distinct()
        repeated = self._given - len(lines[0]["item"])
        if repeated:
            raise InvalidArgumentError(
                "purchases",
                f"{repeated} order line(s) repeat an earlier line's customer, order, product and time: ImportTable "
                "takes each key once (an import through the store keeps the last of them)",
            )
        for spec in (CUSTOMERS, PRODUCTS):
            self._table(spec).write_encoded(self._keyed[spec.table].values())
        self._table(MODELS).write(
            [
                {"version": wire_string(CATALOG_VERSION_ROW), "catalogVersion": {"N": "1"}},
                {"version": wire_string(PURCHASE_WATERMARK_ROW), "purchaseEpoch": {"N": str(LOADED_WATERMARK.epoch)}},
                # Every profile here is written with the refusals' index key (codec.customer_item).
                {
                    "version": wire_string(REFUSALS_INDEXED_ROW),
                    "indexedAt": wire_string(timestamp(datetime.now(UTC), "now")),
                },
            ]
        )
        for spec in TABLES:  # the tables nothing was given for: created empty
            self._table(spec).write_encoded([])
        for files in self._files.values():
            files.close()
        names = {spec.table: table_name(spec, self._load.env) for spec in TABLES}
        _write_json(
            self._partial / TABLES_FILE,
            [{"Table": table_definition(spec, names[spec.table])} for spec in TABLES],
        )
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "load_id": str(uuid.uuid4()),
            "env": self._load.env,
            "tables": {names[table]: files.items for table, files in self._files.items()},
            "order_lines": self._given,
            "watermark": LOADED_WATERMARK.text(),
            "written_at": time.time(),
        }
        _write_json(self._partial / MANIFEST, manifest)  # last: a directory with it is whole
        # The snapshot before the load is in place: a load in place always has one. One left by
        # a load that then failed is at an epoch no store has until a load that replaces it.
        snapshot.write_lines(self._load.snapshot_dir, self._load.store_url, self._lines, LOADED_WATERMARK)
        if self._load.out.exists():
            self._load.out.rmdir()  # empty (checked when the load began), and in the way
        os.replace(self._partial, self._load.out)
        snapshot.fsync_directory(self._load.out.parent)
        self._state = "committed"
        if self._follower is not None:
            before = PurchaseWatermark(0, 0, (0,) * JOURNAL_SHARDS)
            self._follower.imported(ImportedPurchases(before, held_none=True, after=LOADED_WATERMARK))

    def _add_keyed(
        self, spec: TableSpec, kind: str, encode: Callable[[Any], dict[str, Any]], rows: Iterable[Any]
    ) -> None:
        self._require_open()
        keyed = self._keyed[spec.table]
        for n, row in enumerate(rows):
            try:
                item = encode(row)
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"{kind}[{n}].{error.field}", error.message) from None
            key = spec.key_tuple(item)
            keyed.pop(key, None)  # given again: kept last, in the order of its last giving
            keyed[key] = orjson.dumps(item)

    def _table(self, spec: TableSpec) -> _TableFiles:
        files = self._files.get(spec.table)
        if files is None:
            files = self._files[spec.table] = _TableFiles(self._partial / table_name(spec, self._load.env))
        return files

    def _require_open(self) -> None:
        if self._state != "open":
            raise FailedPreconditionError("the import session is not open (use it in a `with` block, before commit)")


def _write_json(path: Path, value: object) -> None:
    with path.open("wb") as file:
        file.write(orjson.dumps(value, option=orjson.OPT_INDENT_2))
        file.flush()
        os.fsync(file.fileno())


# --- ImportTable -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedTable:
    name: str
    items: int
    import_arn: str


def import_tables(
    db: DynamoClient,
    env: str,
    location: S3Location,
    *,
    wait_s: float = 24 * 3600.0,
    poll_s: float = IMPORT_STATUS_EVERY_S,
) -> list[LoadedTable]:
    """Create the tables of the bulk load at `location` (its directory copied to S3) by
    ImportTable, one import per table running together; then the store's other tables
    (`create_missing_tables`). Returns the loaded tables once every import completed with every
    item the manifest counts.

    `FailedPreconditionError`: `location` holds no whole bulk load, it was written for another
    table set, one of its tables exists already (ImportTable only creates tables), or an import
    failed or imported another number of items. Running it again within 8 hours of an
    interrupted run follows the same imports (their client tokens) rather than starting others.
    """
    client = s3_client(location)
    missing = "not a bulk load (omnix import ... --bulk-to DIR, then copy DIR there)"
    manifest = s3_json(client, location.bucket, location.key(MANIFEST), missing)
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise FailedPreconditionError(
            f"{location.display}/{MANIFEST} is not a bulk load of format {FORMAT} {FORMAT_VERSION}"
        )
    if manifest["env"] != env:
        raise FailedPreconditionError(
            f"the bulk load at {location.display} is for the tables of env {manifest['env']!r}, the store's are {env!r}"
        )
    definitions = {
        entry["Table"]["TableName"]: entry["Table"]
        for entry in json.loads(s3_bytes(client, location.bucket, location.key(TABLES_FILE), missing))
    }
    # The tables given no item are created by `create_missing_tables` below (an ImportTable of
    # an empty file is an import for nothing; moto's refuses it).
    expected: dict[str, int] = {name: items for name, items in manifest["tables"].items() if items}
    existing = [name for name in expected if _exists(db, name)]
    if existing:  # before any import starts: none is left half done by this refusal
        raise FailedPreconditionError(
            f"{', '.join(existing)} exist: ImportTable creates the tables it loads (delete them, or load another env)"
        )
    started: dict[str, str] = {}
    for name in expected:
        token = str(uuid.uuid5(uuid.UUID(manifest["load_id"]), name))  # the same import on a rerun
        try:
            answer = db.call(
                "import_table",
                ClientToken=token,
                S3BucketSource={"S3Bucket": location.bucket, "S3KeyPrefix": location.key(f"{name}/data/")},
                InputFormat="DYNAMODB_JSON",
                InputCompressionType="GZIP",
                TableCreationParameters=definitions[name],
            )
        except ClientError as error:
            if error_code(error) in ("ResourceInUseException", "ImportConflictException"):
                raise FailedPreconditionError(
                    f"{name} exists: ImportTable creates the tables it loads (delete it, or load another env)"
                ) from None
            raise
        started[name] = answer["ImportTableDescription"]["ImportArn"]
    loaded = _await_imports(db, started, expected, wait_s, poll_s)
    create_missing_tables(db, env, wait_s=300.0)
    return loaded


def _exists(db: DynamoClient, name: str) -> bool:
    try:
        db.call("describe_table", TableName=name)
    except TableMissingError:
        return False
    return True


def _await_imports(
    db: DynamoClient, started: dict[str, str], expected: dict[str, int], wait_s: float, poll_s: float
) -> list[LoadedTable]:
    deadline = time.monotonic() + wait_s
    pending = dict(started)
    processed = dict.fromkeys(started, 0)
    with progress.track("DynamoDB ImportTable", total=sum(expected.values()), unit="items") as task:
        while pending:
            for name, arn in list(pending.items()):
                description = db.call("describe_import", ImportArn=arn)["ImportTableDescription"]
                now = int(description.get("ProcessedItemCount", 0))
                task.advance(now - processed[name])
                processed[name] = now
                status = description["ImportStatus"]
                if status in ("IN_PROGRESS", "CANCELLING"):
                    continue
                del pending[name]
                if status != "COMPLETED":
                    reason = description.get("FailureMessage") or description.get("FailureCode") or status
                    raise FailedPreconditionError(f"the import of table {name} ended {status}: {reason}")
                imported, errors = int(description.get("ImportedItemCount", 0)), int(description.get("ErrorCount", 0))
                if imported != expected[name] or errors:
                    raise FailedPreconditionError(
                        f"table {name} imported {imported} items ({errors} errors), the bulk load holds {expected[name]}"
                    )
            if pending and time.monotonic() > deadline:
                raise FailedPreconditionError(
                    f"the imports of {', '.join(pending)} are still running after {wait_s:.0f} s"
                )
            if pending:
                time.sleep(poll_s)
    return [LoadedTable(name, expected[name], arn) for name, arn in started.items()]
