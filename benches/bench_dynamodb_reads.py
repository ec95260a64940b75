"""Client CPU of the DynamoDB store's reads, answers parsed by orjson against botocore's parse.

The store's item reads (Query, Scan, GetItem, BatchGetItem) are parsed by orjson
(store/dynamodb/responses.py) instead of botocore's walk of the output shape. This bench loads
a generated shop into dynoxide the way `bench_bulk_load.py` does (`omnix import instacart
--bulk-to`, `dynoxide import`), opens two stores on it, one as `OMNIX_STORE` opens it and one
on a plain boto3 client, checks that both answer every read alike, then times each read in
rounds, the two stores in turns, and prints this process's CPU per call (one thread: the
client's share, without dynoxide's) and the ratio.

    python benches/bench_dynamodb_reads.py
    python benches/bench_dynamodb_reads.py --customers 5000 --products 50000 --calls 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from bench_bulk_load import loaded_into_dynoxide
from bench_dynamodb_import import FAKE_CREDENTIALS, free_port
from bench_dynamodb_import import dynoxide as dynoxide_server

from omnix_recs.domain.purchases import OrderLines
from omnix_recs.store.dynamodb import DynamoStore

ROUNDS = 5


def reads(store: DynamoStore, customers: list[str], calls: int) -> dict[str, tuple[int, Callable[[], Any]]]:
    """Each read the bench times: (calls per round, one round of them)."""
    since = datetime(2000, 1, 1, tzinfo=UTC)
    shoppers = customers[:calls]
    batches = [customers[k : k + 100] for k in range(0, min(len(customers), calls), 100)]
    return {
        "a shopper's order lines (Query)": (len(shoppers), lambda: [store.order_lines_of(c) for c in shoppers]),
        "a profile (GetItem)": (len(shoppers), lambda: [store.get_customer(c) for c in shoppers]),
        "recent events, none (Query)": (
            len(shoppers),
            lambda: [store.list_interactions(c, since=since, limit=200) for c in shoppers],
        ),
        "100 profiles (BatchGetItem)": (len(batches), lambda: [store.get_customers(b) for b in batches]),
        "the whole catalog (Query pages)": (1, lambda: list(store.iter_products())),
    }


def comparable(answer: Any) -> Any:
    """`answer` with order lines' columns as lists, so that `==` compares them."""
    if isinstance(answer, list):
        return [comparable(a) for a in answer]
    if isinstance(answer, OrderLines):
        return [list(column) for column in dataclasses.astuple(answer)]
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--calls", type=int, default=500, help="shoppers read per round")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch parent directory (default: system temp)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="omnix-bench-reads-", dir=args.workdir))
    log = scratch / "commands.log"
    port = free_port()
    url = f"dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:{port}&env=bench"
    environment = {**os.environ, **FAKE_CREDENTIALS, "OMNIX_SNAPSHOT_DIR": str(scratch / "snapshot")}
    os.environ.update(FAKE_CREDENTIALS)
    try:
        print(f"{args.customers:,} households, {args.products:,} products, {args.days} days (scratch {scratch})")
        shop = args.customers, args.products, args.days, args.seed
        database = loaded_into_dynoxide(scratch, url, environment, log, shop)
        with dynoxide_server(scratch, "file", port=port, database=database) as (_, endpoint):
            fast = DynamoStore.from_url(url)
            plain = DynamoStore(boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint), env="bench")
            customers = list(fast.list_customer_ids(args.customers).items)
            random.Random(args.seed).shuffle(customers)
            timed = {"orjson": reads(fast, customers, args.calls), "botocore": reads(plain, customers, args.calls)}
            for name, (_, read) in timed["orjson"].items():
                if comparable(read()) != comparable(timed["botocore"][name][1]()):
                    raise SystemExit(f"{name}: the two parses answer differently")
            cpu = {parse: {name: 0.0 for name in timed[parse]} for parse in timed}
            for _ in range(ROUNDS):
                for name in cpu["orjson"]:
                    for parse in ("botocore", "orjson"):
                        started = time.process_time()
                        timed[parse][name][1]()
                        cpu[parse][name] += time.process_time() - started
        print(f"\nclient CPU per call, {ROUNDS} rounds, the two in turns")
        print(f"  {'read':34} {'botocore':>12} {'orjson':>12} {'ratio':>6}")
        for name, (calls, _) in timed["orjson"].items():
            before, after = (cpu[parse][name] / (ROUNDS * calls) * 1000 for parse in ("botocore", "orjson"))
            print(f"  {name:34} {before:9.3f} ms {after:9.3f} ms {before / after:5.1f}x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
