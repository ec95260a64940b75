#!/usr/bin/env python3
"""What the REST gateway adds to a call: the same requests over gRPC directly and through REST.

Starts, in a separate process (so client and server do not share a GIL), the OMNIX server with
the gateway beside it, exactly as `omnix serve --http-port` runs them (one process, one event
loop, uvloop), over a generated supermarket with a trained model. Then, from this process, the
same requests in a closed loop, first over a gRPC channel, then as REST calls on keep-alive
HTTP/1.1 connections, and prints latency percentiles and the p50/p99 overhead of REST:

- GetProduct: a cheap call, so the difference is mostly the transcoding and the extra hop;
- GetRecommendations: a serving call (REPLENISH, 10 items with reasons).

    python benches/bench_gateway.py [--calls 2000] [--concurrency 1]

With `--concurrency 1` the numbers are per-call latency; higher values add queueing. Access
logging is off (level WARNING) so the numbers show the calls' own work. The REST client is a
minimal HTTP/1.1 client written here: Python's HTTP client libraries cost more per call than the
gateway does (httpx added about 1.5 ms per call on a 2-core machine), which would hide what the
gateway adds; grpc's client is C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc

from omnix_recs._proto.omnix.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

CUSTOMERS, PRODUCTS, DAYS = 300, 1_000, 180


def run_server(directory: str, ready: Any, stop: Any) -> None:
    from omnix_recs import event_loop
    from omnix_recs.config import Settings
    from omnix_recs.data.generate import generate_instacart
    from omnix_recs.data.instacart import import_instacart
    from omnix_recs.engine.train import train_model
    from omnix_recs.gateway.serve import start_beside
    from omnix_recs.server import OmnixServer
    from omnix_recs.store import open_store

    logging.basicConfig(level=logging.WARNING)
    root = Path(directory)
    settings = Settings(store_url=f"sqlite:///{root / 'omnix.db'}", grpc_port=0, model_dir=str(root / "models"))
    store = open_store(settings.store_url)
    today = datetime.now(UTC).date()
    generate_instacart(root / "data", customers=CUSTOMERS, products=PRODUCTS, days=DAYS, seed=3, end_date=today)
    import_instacart(store, root / "data", as_of=today)
    train_model(store, settings, tune=False)

    async def main() -> None:
        server = await OmnixServer.create(settings, store)
        await server.start()
        gateway = await start_beside("127.0.0.1", server.port, "127.0.0.1", 0)
        customers = list(store.list_customer_ids(50).items)
        products = [p.product_id for p, _ in zip(store.iter_products(), range(50))]
        ready.put((server.port, gateway.port, customers, products))
        await asyncio.to_thread(stop.wait)
        await gateway.stop()
        await server.shutdown(0)

    event_loop.run(main(), use_uvloop=True)
    store.close()


class KeepAliveHttp:
    """GET over one keep-alive HTTP/1.1 connection per worker; just enough for the bench."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        connection = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = connection
        target = f"{path}?{urlencode(params)}" if params else path
        writer.write(f"GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.idle.append(connection)
        if status != 200:
            raise RuntimeError(f"GET {target}: HTTP {status}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def closed_loop(
    call: Callable[[int], Awaitable[None]], calls: int, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000.0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time the server process has used (Linux /proc): unlike latency, it
    stays meaningful when other work shares the machine."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    server_pid: int, grpc_port: int, http_port: int, customers: list[str], products: list[str], args: Any
) -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    recommendations = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    http = KeepAliveHttp(http_port)

    async def grpc_product(i: int) -> None:
        await catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=products[i % len(products)]))

    async def rest_product(i: int) -> None:
        await http.get(f"/v1/products/{products[i % len(products)]}")

    async def grpc_recommendations(i: int) -> None:
        await recommendations.GetRecommendations(
            recommendation_pb2.GetRecommendationsRequest(
                customer_id=customers[i % len(customers)], limit=10, strategy=recommendation_pb2.STRATEGY_REPLENISH
            )
        )

    async def rest_recommendations(i: int) -> None:
        await http.get(
            f"/v1/customers/{customers[i % len(customers)]}/recommendations",
            params={"limit": 10, "strategy": "STRATEGY_REPLENISH"},
        )

    print(f"{args.calls} calls each, concurrency {args.concurrency}; latency in ms, server CPU in us per call")
    print(f"{'call':<22}{'path':<7}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'calls/s':>10}{'CPU us':>9}")
    for name, direct, rest in (
        ("GetProduct", grpc_product, rest_product),
        ("GetRecommendations", grpc_recommendations, rest_recommendations),
    ):
        results, cpu = {}, {}
        for path, call in (("gRPC", direct), ("REST", rest)):
            await closed_loop(call, min(200, args.calls), args.concurrency)  # warm up
            cpu_before = server_cpu_seconds(server_pid)
            latencies, seconds = await closed_loop(call, args.calls, args.concurrency)
            cpu[path] = (server_cpu_seconds(server_pid) - cpu_before) / len(latencies) * 1e6
            results[path] = latencies
            print(
                f"{name:<22}{path:<7}{percentile(latencies, 0.5):>8.3f}{percentile(latencies, 0.9):>8.3f}"
                f"{percentile(latencies, 0.99):>8.3f}{statistics.fmean(latencies):>8.3f}{len(latencies) / seconds:>10.0f}"
                f"{cpu[path]:>9.0f}"
            )
        p50 = percentile(results["REST"], 0.5) - percentile(results["gRPC"], 0.5)
        p99 = percentile(results["REST"], 0.99) - percentile(results["gRPC"], 0.99)
        extra_cpu = cpu["REST"] - cpu["gRPC"]
        print(f"{name:<22}REST overhead: p50 {p50:+.3f} ms, p99 {p99:+.3f} ms, server CPU {extra_cpu:+.0f} us per call")
    await http.close()
    await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    with tempfile.TemporaryDirectory(prefix="omnix-bench-gateway-") as directory:
        server = spawn.Process(target=run_server, args=(directory, ready, stop), daemon=True)
        server.start()
        try:
            grpc_port, http_port, customers, products = ready.get(timeout=300)
            assert server.pid is not None
            asyncio.run(measure(server.pid, grpc_port, http_port, customers, products, args))
        finally:
            stop.set()
            server.join(30)
            if server.is_alive():
                server.kill()


if __name__ == "__main__":
    main()
