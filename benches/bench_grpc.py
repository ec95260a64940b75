#!/usr/bin/env python3
"""GetRecommendations over real gRPC, one client: p50/p99 latency per call.

Generates a synthetic supermarket, imports it into a fresh SQLite store, trains and activates a
model, starts the real server on 127.0.0.1, then calls GetRecommendations (BALANCED, limit 20)
for random customers in a closed loop from one synchronous client.

    python benches/bench_grpc.py [--customers 2000] [--products 3000] [--days 180] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import grpc
import numpy as np

from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs._proto.omnix.v1 import recommendation_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.server import build_server
from omnix_recs.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="omnix-bench-grpc-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate_instacart(root / "data", customers=args.customers, products=args.products, days=args.days, seed=7)
        settings = Settings(store_url=f"sqlite:///{root / 'omnix.db'}", model_dir=str(root / "models"), grpc_port=0)
        store = open_store(settings.store_url)
        import_instacart(store, root / "data", as_of=date.today())
        record = train_model(store, settings)
        customers = store.list_customer_ids(page_size=args.customers).items
        print(f"setup (generate, import, train {record.version}): {time.perf_counter() - started:.1f} s")

        # The server's loop runs until the end, so that stopping the server can finish on it.
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        async def start_server() -> tuple[grpc.aio.Server, int]:
            server, port = await build_server(settings, store)
            await server.start()
            return server, port

        server, port = asyncio.run_coroutine_threadsafe(start_server(), loop).result(30)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        rng = random.Random(1)

        def call() -> None:
            stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id=rng.choice(customers), limit=20))

        for _ in range(100):  # warm-up: connections, catalog snapshot, page cache
            call()
        latencies = np.empty(args.calls)
        for i in range(args.calls):
            start = time.perf_counter()
            call()
            latencies[i] = (time.perf_counter() - start) * 1e3
        print(f"GetRecommendations, 1 client, {args.calls} calls over {len(customers)} customers")
        print(
            f"p50 {np.percentile(latencies, 50):.2f} ms  p99 {np.percentile(latencies, 99):.2f} ms  "
            f"mean {latencies.mean():.2f} ms  ({1e3 / latencies.mean():.0f} calls/s)"
        )
        print(f"peak RSS (client + server process) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        channel.close()
        asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()


if __name__ == "__main__":
    main()
