"""What an erasure's second pass costs per model version: blanking one customer's "shoppers like
you" row (engine/model_erasure.py) in a version built for C customers with K products each.

Writes one synthetic version (only the like-you table is realistic in size: 50 products per
customer as `BuildParameters.like_you_items`; the item tables are small), then times
`ModelFiles.erase` for one customer: on the local model directory (copy, patch, fsync and rename
of three files), and with `--s3` on a local moto S3 (download of the table, patch, upload, new
`contents.json`) plus the host's cached copy. Also times the check of a version that does not
name the customer (what every later erasure pays per version).

    python benches/bench_erasure.py                       # 200,000 customers, local directory
    python benches/bench_erasure.py --customers 50000 --s3
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from omnix_recs.engine.artifact import write_model
from omnix_recs.engine.build import BuildParameters, BuiltModel
from omnix_recs.engine.model_erasure import ModelFiles
from omnix_recs.store.base import ModelRecord
from omnix_recs.store.sqlite import SqliteStore

ITEMS = 1000


def synthetic_model(customers: int, per_customer: int, seed: int) -> BuiltModel:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for index_name, score_name in (("cooc_idx", "cooc_sim"), ("fbt_idx", "fbt_score"), ("content_idx", "content_sim")):
        arrays[index_name] = rng.integers(0, ITEMS, (ITEMS, 10), dtype=np.int32)
        arrays[score_name] = rng.random((ITEMS, 10), dtype=np.float32)
    for name in ("popularity", "trending", "population_cycle_days", "repurchase_rate"):
        arrays[name] = rng.random(ITEMS, dtype=np.float32)
    arrays["seasonal_lift"] = np.ones((ITEMS, 53), dtype=np.float32)
    arrays["taste_factors"] = rng.random((ITEMS, 8), dtype=np.float32)
    arrays["like_you_customers"] = np.array([f"customer-{n:07d}" for n in range(customers)])
    arrays["like_you_indptr"] = np.arange(0, (customers + 1) * per_customer, per_customer, dtype=np.int64)
    arrays["like_you_items"] = rng.integers(0, ITEMS, customers * per_customer, dtype=np.int32)
    arrays["like_you_scores"] = rng.random(customers * per_customer, dtype=np.float32)
    return BuiltModel(
        item_ids=[f"p{n}" for n in range(ITEMS)],
        arrays=arrays,
        data_as_of=datetime(2026, 11, 1, tzinfo=UTC),
        counts={"items": ITEMS, "customers": customers, "order_lines": 0, "baskets": 0},
        parameters=BuildParameters(),
    )


def table_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.glob("like_you_*.npy")) / 1e6


def timed(files: ModelFiles, store: SqliteStore, customer_id: str) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    report = files.erase(store, {customer_id: None})
    return time.perf_counter() - wall, time.process_time() - cpu, len(report.rewritten)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--per-customer", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--s3", action="store_true", help="also measure a version in a local moto S3")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)
        built = synthetic_model(args.customers, args.per_customer, seed=7)
        store = SqliteStore(root / "omnix.db")
        version, path = write_model(built, root / "models")
        store.save_model(ModelRecord(version, datetime.now(UTC), str(path), {}, active=True))
        print(
            f"version of {args.customers:,} customers x {args.per_customer} products: "
            f"like-you table {table_mb(path):.0f} MB"
        )
        files = ModelFiles(str(root / "models"), root / "cache")
        middle = f"customer-{args.customers // 2:07d}"
        wall, cpu, rewritten = timed(files, store, middle)
        print(f"local directory: blank one row   {wall:6.2f} s wall, {cpu:5.2f} s CPU ({rewritten} copy rewritten)")
        wall, cpu, rewritten = timed(files, store, middle)
        print(f"local directory: nothing to do   {wall:6.2f} s wall, {cpu:5.2f} s CPU ({rewritten} rewritten)")
        store.close()
        if args.s3:
            s3_store = SqliteStore(root / "omnix-s3.db")  # its records name the S3 version only
            s3_timings(built, root, s3_store, f"customer-{args.customers // 3:07d}")
            s3_store.close()


def s3_timings(built: BuiltModel, root: Path, store: SqliteStore, customer_id: str) -> None:
    from moto.server import ThreadedMotoServer

    from omnix_recs.config import Settings
    from omnix_recs.engine.artifact_store import ModelDestination
    from omnix_recs.s3 import S3Location, s3_client

    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"s3://bench-models/models?endpoint=http://{host}:{port}&region=us-east-1"
        s3_client(S3Location.parse(url)).create_bucket(Bucket="bench-models")
        settings = Settings(model_dir=url, model_cache_dir=str(root / "s3-cache"))
        saved = ModelDestination(settings).save(built, {})
        store.save_model(ModelRecord(saved.version, saved.created_at, saved.artifact_uri, {}))
        wall, cpu, rewritten = timed(ModelFiles.from_settings(settings), store, customer_id)
        print(
            f"S3 (moto) and the host's cached copy: blank one row {wall:6.2f} s wall, {cpu:5.2f} s CPU "
            f"({rewritten} copies rewritten)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
