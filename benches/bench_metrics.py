#!/usr/bin/env python3
"""What Prometheus metrics cost per call: the OMNIX server's CPU per call without and with them.

Starts the OMNIX server (interceptor, every servicer, a temporary SQLite store with one
customer) in a separate process three times: metrics off, metrics on in one process, and
metrics on in multiprocess mode (values in files, as under `--workers N`). A closed-loop client
calls Health/Check and CustomerService/GetCustomerProfile; the server's CPU time per call comes
from /proc (Linux). The issue's budget: at most 3% more CPU per call.

    python benches/bench_metrics.py [--seconds 5] [--concurrency 32] [--rounds 3]

On a shared machine the end-to-end difference drowns in noise, so the bench also times what the
interceptor adds per call in isolation (recording one call: in flight up and down, the count,
the latency) and sets it against the server's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import tempfile
from datetime import UTC, datetime
from typing import Any

import grpc
from bench_server_overhead import HEALTH_CHECK, closed_loop, server_cpu_seconds
from grpc_health.v1 import health_pb2_grpc


def run_server(ready: Any, stop: Any, mode: str) -> None:
    if mode == "multiprocess":  # before prometheus_client is imported, as a spawned worker would see it
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="omnix-bench-metrics-")
    from omnix_recs import metrics
    from omnix_recs.config import Settings
    from omnix_recs.domain.models import Customer
    from omnix_recs.server import OmnixServer
    from omnix_recs.store.sqlite import SqliteStore

    logging.basicConfig(level=logging.WARNING)
    if mode != "off":
        metrics.enable()

    async def main() -> None:
        store = SqliteStore.temporary()
        now = datetime.now(UTC)
        store.create_customer(Customer("c1", created_at=now, updated_at=now))
        built = await OmnixServer.create(Settings(grpc_port=0), store)
        await built.start()
        ready.put(built.port)
        await asyncio.to_thread(stop.wait)
        await built.shutdown(0)
        store.close()

    asyncio.run(main())


def measure(mode: str, args: argparse.Namespace) -> dict[str, float]:
    """Server CPU microseconds per call, by RPC."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    process = spawn.Process(target=run_server, args=(ready, stop, mode))
    process.start()
    pid = process.pid
    assert pid is not None  # set by start()
    port = ready.get(timeout=60)
    found: dict[str, float] = {}

    async def client() -> None:
        from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lacks its methods
            customers = customer_pb2_grpc.CustomerServiceStub(channel)
            profile = customer_pb2.GetCustomerProfileRequest(customer_id="c1")
            calls = {
                "Health/Check": lambda: health.Check(HEALTH_CHECK),
                "GetCustomerProfile": lambda: customers.GetCustomerProfile(profile),
            }
            for name, call in calls.items():
                await closed_loop(call, 1.0, args.concurrency)  # warm-up
                before = server_cpu_seconds(pid)
                latencies = await closed_loop(call, args.seconds, args.concurrency)
                found[name] = (server_cpu_seconds(pid) - before) / len(latencies) * 1e6

    try:
        asyncio.run(client())
    finally:
        stop.set()
        process.join(30)
    return found


def recording_cost(ready: Any, mode: str, calls: int = 100_000) -> None:
    """Microseconds the interceptor's metrics take for one call, in a fresh process."""
    if mode == "multiprocess":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="omnix-bench-metrics-")
    import time

    from omnix_recs import metrics

    recorder = metrics.enable()
    method = "/omnix.v1.CustomerService/GetCustomerProfile"
    started = time.perf_counter()
    for _ in range(calls):
        recorder.started()
        recorder.finished(method, grpc.StatusCode.OK, 0.001)
    ready.put((time.perf_counter() - started) / calls * 1e6)


def cost_of_recording(mode: str) -> float:
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Queue()
    process = spawn.Process(target=recording_cost, args=(ready, mode))
    process.start()
    cost = float(ready.get(timeout=120))
    process.join(30)
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per mode; the median is shown")
    args = parser.parse_args()
    modes = ("off", "in-process", "multiprocess")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits every mode alike
        for mode in modes:
            runs[mode].append(measure(mode, args))
    print(
        f"server CPU per call (median of {args.rounds}), closed loop, {args.concurrency} in flight, {args.seconds:g} s"
    )
    for rpc in runs["off"][0]:
        base = statistics.median(r[rpc] for r in runs["off"])
        cells = []
        for mode in modes:
            value = statistics.median(r[rpc] for r in runs[mode])
            cells.append(f"{mode} {value:5.0f} us ({value / base - 1:+.1%})")
        print(f"{rpc:<20} " + "   ".join(cells))
    base = statistics.median(r["Health/Check"] for r in runs["off"])
    for mode in modes[1:]:
        cost = cost_of_recording(mode)
        print(f"recording one call, {mode}: {cost:.1f} us = {cost / base:.1%} of Health/Check's server CPU")


if __name__ == "__main__":
    main()
