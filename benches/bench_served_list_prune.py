#!/usr/bin/env python3
"""Pruning served lists past the retention on SQLite (omnix_recs/served_retention.py): its
throughput on a large recommendations table, and GetRecommendations latency while it runs.

Generates a small supermarket, imports it, trains a model and serves it on 127.0.0.1 (as
bench_grpc.py), then fills the recommendations table with `--lists` served lists of `--items`
items each, served evenly over the last `--span-days` days (one feedback row per ten lists), so
that a 90-day retention deletes the older part. One client calls the server in a closed loop,
nine GetRecommendations (cache off: each reads the store) then one RecordPurchase (a write,
which waits for the write lock a prune batch holds): `--calls` calls before the prune, then for
as long as the prune runs (a thread of the server's process, as `omnix serve` with one worker
runs it), then `--calls` after.

    python benches/bench_served_list_prune.py [--lists 1000000] [--items 10] [--span-days 180]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np

from omnix_recs._proto.omnix.v1 import common_pb2, customer_pb2, customer_pb2_grpc, recommendation_pb2_grpc
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.domain.models import RecommendedItem, ServedRecommendation
from omnix_recs.engine.train import train_model
from omnix_recs.served_retention import BATCH_ROWS, ServedListPruning
from omnix_recs.server import OmnixServer
from omnix_recs.store.sqlite import SqliteStore
from omnix_recs.store.sqlite.rows import INSERT_NEW_RECOMMENDATION, recommendation_row

RETENTION = timedelta(days=90)


def fill(path: Path, lists: int, items: int, span_days: int, customers: list[str]) -> None:
    """`lists` served lists over the last `span_days` days, written in one transaction."""
    now = datetime.now(UTC)
    template = ServedRecommendation(
        "x",
        "x",
        now,
        "balanced",
        "v1",
        tuple(
            RecommendedItem(
                f"p{n}", 0.9 - n / 100, 0.5, ("you usually buy this every 9 days; last bought 10 days ago",)
            )
            for n in range(items)
        ),
    )
    row = recommendation_row(template)
    step_us = span_days * 86_400_000_000 // lists
    start_us = int(now.timestamp() * 1e6) - span_days * 86_400_000_000
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for begin in range(0, lists, 50_000):
        rows = [
            (f"r{n:09d}", customers[n % len(customers)], start_us + n * step_us, *row[3:])
            for n in range(begin, min(lists, begin + 50_000))
        ]
        conn.executemany(INSERT_NEW_RECOMMENDATION, rows)
        conn.executemany(
            "INSERT INTO feedback (recommendation_id, occurred_at, product_id, event, customer_id) VALUES (?,?,?,?,?)",
            [(r[0], r[2] + 60_000_000, "p0", "clicked", r[1]) for r in rows[::10]],
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def percentiles(latencies: list[float]) -> str:
    a = np.array(latencies)
    return (
        f"p50 {np.percentile(a, 50):.2f} ms  p99 {np.percentile(a, 99):.2f} ms  max {a.max():.1f} ms  ({len(a)} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--span-days", type=int, default=180)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="omnix-bench-prune-", dir=args.dir) as tmp:
        root = Path(tmp)
        db = root / "omnix.db"
        started = time.perf_counter()
        generate_instacart(root / "data", customers=2000, products=3000, days=180, seed=7)
        settings = Settings(store_url=f"sqlite:///{db}", model_dir=str(root / "models"), grpc_port=0, cache_ttl_s=0)
        store = SqliteStore(db, served_list_retention=RETENTION)
        import_instacart(store, root / "data", as_of=date.today())
        train_model(store, settings)
        customers = list(store.list_customer_ids(page_size=2000).items)
        print(f"setup (generate, import, train): {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        fill(db, args.lists, args.items, args.span_days, customers)
        size_before = db.stat().st_size
        print(
            f"filled {args.lists:,} served lists ({args.items} items) over {args.span_days} days:"
            f" {time.perf_counter() - started:.1f} s, database {size_before / 1e9:.2f} GB"
        )

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        async def start_server() -> OmnixServer:
            # Started whole (not `build_server`): the served lists' write-behind thread runs,
            # and its flushes contend with the prune for the write lock as they do in `omnix serve`.
            built = await OmnixServer.create(settings, store)
            await built.start()
            return built

        built = asyncio.run_coroutine_threadsafe(start_server(), loop).result(30)
        channel = grpc.insecure_channel(f"127.0.0.1:{built.port}")
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        customer_stub = customer_pb2_grpc.CustomerServiceStub(channel)
        product_ids = [p.product_id for p in store.iter_products()][:100]
        rng = random.Random(1)
        orders = iter(range(10**9))

        def call(reads: list[float], writes: list[float]) -> None:
            begin = time.perf_counter()
            customer_id = rng.choice(customers)
            if len(reads) % 10 == 9:
                purchase = common_pb2.Purchase(
                    order_id=f"bench-{next(orders)}", product_id=rng.choice(product_ids), quantity=1, unit_price=1.0
                )
                purchase.purchased_at.GetCurrentTime()
                customer_stub.RecordPurchase(
                    customer_pb2.RecordPurchaseRequest(customer_id=customer_id, purchase=purchase)
                )
                writes.append((time.perf_counter() - begin) * 1e3)
            else:
                stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id=customer_id, limit=20))
            reads.append((time.perf_counter() - begin) * 1e3)

        def measure(label: str, keep_going: Callable[[list[float]], bool]) -> None:
            reads: list[float] = []
            writes: list[float] = []
            while keep_going(reads):
                call(reads, writes)
            reads = [r for n, r in enumerate(reads) if n % 10 != 9]
            print(f"{label}: GetRecommendations {percentiles(reads)}")
            print(f"{' ' * len(label)}  RecordPurchase     {percentiles(writes)}")

        for _ in range(200):  # warm-up
            call([], [])
        measure("before the prune", lambda done: len(done) < args.calls)

        # The prune in a thread of the serving process, timing each batch (the write lock it holds).
        pruning_store = SqliteStore(db, served_list_retention=RETENTION)
        batch_ms: list[float] = []
        prune_one_batch = pruning_store.prune_served_lists

        def timed_batch(before: datetime, batch_rows: int = BATCH_ROWS) -> int:
            begin = time.perf_counter()
            try:
                return prune_one_batch(before, batch_rows)
            finally:
                batch_ms.append((time.perf_counter() - begin) * 1e3)

        pruning_store.prune_served_lists = timed_batch  # type: ignore[method-assign]
        pruning = ServedListPruning(pruning_store, RETENTION, batch_rows=args.batch_rows)
        pruner = threading.Thread(target=pruning.run_once)
        pruner.start()
        measure("during the prune", lambda done: pruner.is_alive())
        pruner.join()
        result = pruning.runs[-1]
        assert result is not None and result.finished
        print(
            f"prune: {result.deleted:,} lists (+ their feedback) in {result.seconds:.1f} s ="
            f" {result.deleted / result.seconds:,.0f} lists/s; {result.batches} batches of {args.batch_rows},"
            f" batch (write lock held) p50 {np.percentile(batch_ms, 50):.1f} ms max {max(batch_ms):.1f} ms"
        )
        measure("after the prune ", lambda done: len(done) < args.calls)
        conn = sqlite3.connect(db)
        (left,) = conn.execute("SELECT count(*) FROM recommendations").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (page,) = conn.execute("PRAGMA page_size").fetchone()
        conn.close()
        print(
            f"left {left:,} lists; database {db.stat().st_size / 1e9:.2f} GB of which {free * page / 1e9:.2f} GB"
            " free pages (reused by new lists: the file stops growing)"
        )
        channel.close()
        asyncio.run_coroutine_threadsafe(built.shutdown(1.0), loop).result(30)
        writer = built.app.served_lists
        print(f"served lists queued {writer.queued:,}, dropped {writer.dropped:,}" if writer else "")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        pruning_store.close()
        store.close()


if __name__ == "__main__":
    main()
