"""A first load of DynamoDB by ImportTable, end to end on this machine, and training from it.

Generates a shop (`omnix generate`), writes it as a bulk load (`omnix import instacart
--bulk-to`, store/dynamodb/bulk.py), loads that with `dynoxide import` (the local counterpart
of ImportTable) into a database file, serves the file with dynoxide on 127.0.0.1 and runs
`omnix train` against it, the training snapshot the load wrote in place. Each step is the real
command in its own process; the bench prints its wall time, CPU (user + system) and peak RSS,
the sizes of the files, and dynoxide's CPU while training. `--sqlite` also imports the shop into
SQLite and trains there, for the same figures on the embedded store. `--without-order-lines`
loads every table but purchase-history's items, which training does not read (the snapshot holds
the lines): at 200,000 households they would be about 42 GB of database, and as much again while
dynoxide compacts it.

    python benches/bench_bulk_load.py --customers 50000
    python benches/bench_bulk_load.py --customers 5000 --sqlite --keep
    python benches/bench_bulk_load.py --customers 200000 --without-order-lines
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_dynamodb_import import FAKE_CREDENTIALS, cpu_seconds, dynoxide_binary, free_port
from bench_dynamodb_import import dynoxide as dynoxide_server

OMNIX = [sys.executable, "-m", "omnix_recs.cli"]


def step(name: str, command: list[str], environment: dict[str, str], log: Path) -> None:
    """Run `command`, printing its wall time, CPU and peak RSS (its own, as a child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("ab") as output:
        done = subprocess.run(command, env=environment, stdout=output, stderr=output, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}); see {log}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    # ru_maxrss of children is the largest of any child so far: printed as "at most".
    print(
        f"  {name:<24} {wall:8.1f} s wall {user:8.1f} user {system:6.1f} sys   peak RSS <= {after.ru_maxrss / 2**20:.1f} GB"
    )


def size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{total / 2**20:,.1f} MB"


def train_metrics(log: Path) -> str:
    """The validation figures of the last JSON summary `omnix train` printed to `log`."""
    text = log.read_text(errors="replace")
    summary = json.loads(text[text.rindex("\n{") + 1 : text.rindex("\n}") + 2])
    metrics = summary.get("metrics", {})
    names = ("validation_replenish_recall@10", "validation_replenish_tifu_knn_recall@10")
    return ", ".join(f"{name} {metrics[name]:.4f}" for name in names if name in metrics)


def loaded_into_dynoxide(
    scratch: Path,
    url: str,
    environment: dict[str, str],
    log: Path,
    shop: tuple[int, int, int, int],
    *,
    order_lines: bool = True,
) -> Path:
    """Generate a shop of (customers, products, days, seed) in `scratch/shop`, write it as a bulk
    load for the store `url` in `scratch/load` (its training snapshot where `environment`'s
    OMNIX_SNAPSHOT_DIR says) and `dynoxide import` it: the database file, each step timed.
    Without `order_lines`, purchase-history is left out (`omnix init-tables` makes it empty)."""
    customers, products, days, seed = shop
    files, load, database = scratch / "shop", scratch / "load", scratch / "dynamo.db"
    generate = ["generate", "--out", str(files), "--customers", str(customers), "--products", str(products)]
    step("generate", [*OMNIX, *generate, "--days", str(days), "--seed", str(seed)], environment, log)
    bulk = ["import", "instacart", str(files), "--store", url, "--bulk-to", str(load)]
    step("import --bulk-to", [*OMNIX, *bulk], environment, log)
    manifest = json.loads((load / "manifest.json").read_text())
    snapshot = Path(environment["OMNIX_SNAPSHOT_DIR"])
    print(f"    {manifest['order_lines']:,} order lines; files {size(load)}, snapshot {size(snapshot)}")
    schema = str(load / "tables.json")
    dynoxide_import = [
        dynoxide_binary(),
        "import",
        "--source",
        str(load),
        "--schema",
        schema,
        "--output",
        str(database),
    ]
    if not order_lines:
        tables = [table["Table"]["TableName"] for table in json.loads((load / "tables.json").read_text())]
        dynoxide_import += ["--tables", ",".join(name for name in tables if "-purchase-history-" not in name)]
    step("dynoxide import", dynoxide_import, environment, log)
    per_line = f" ({database.stat().st_size / manifest['order_lines']:,.0f} B a line)" if order_lines else ""
    print(f"    database {size(database)}{per_line}")
    return database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sqlite", action="store_true", help="also import into SQLite and train there")
    parser.add_argument(
        "--without-order-lines",
        action="store_true",
        help="load every table but purchase-history's items (training reads the snapshot's lines)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch parent directory (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="omnix-bench-bulk-", dir=args.workdir))
    log = scratch / "commands.log"
    port = free_port()
    url = f"dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:{port}&env=bench"
    environment = {**os.environ, **FAKE_CREDENTIALS, "OMNIX_SNAPSHOT_DIR": str(scratch / "snapshot")}
    try:
        print(f"{args.customers:,} households, {args.products:,} products, {args.days} days (scratch {scratch})")
        shop = args.customers, args.products, args.days, args.seed
        database = loaded_into_dynoxide(scratch, url, environment, log, shop, order_lines=not args.without_order_lines)
        with dynoxide_server(scratch, "file", port=port, database=database) as (server, _):
            if args.without_order_lines:  # the purchase table, empty
                step("init-tables", [*OMNIX, "init-tables", "--store", url], environment, log)
            step(
                "train (DynamoDB)",
                [*OMNIX, "train", "--store", url, "--model-dir", str(scratch / "models"), "--force"],
                environment,
                log,
            )
            print(f"    dynoxide CPU {cpu_seconds(server.pid):.1f} s; {train_metrics(log)}")
        if args.sqlite:
            sqlite = f"sqlite:///{scratch / 'omnix.db'}"
            environment = {**environment, "OMNIX_SNAPSHOT_DIR": ""}
            shop_files = str(scratch / "shop")
            step("import (SQLite)", [*OMNIX, "import", "instacart", shop_files, "--store", sqlite], environment, log)
            step(
                "train (SQLite)",
                [*OMNIX, "train", "--store", sqlite, "--model-dir", str(scratch / "models"), "--force"],
                environment,
                log,
            )
            print(f"    {train_metrics(log)}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
