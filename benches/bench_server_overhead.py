#!/usr/bin/env python3
"""What the server's interceptor costs per call, and what a store-backed RPC costs.

Starts, in a separate process (so client and server do not share a GIL), a bare grpc.aio
server with only the health service, the same with the OMNIX interceptor, then the OMNIX server (interceptor, health, every
registered servicer) over a temporary SQLite store with one registered customer. Against each,
a closed-loop asyncio client with `--concurrency` calls in flight runs for `--seconds` and
prints throughput, latency percentiles and the server process's CPU time per call (read from
/proc, so Linux only; the number that stays meaningful when other work shares the machine) of
Health/Check and (OMNIX only) CustomerService/GetCustomerProfile.

    python benches/bench_server_overhead.py [--seconds 5] [--concurrency 32]

Access logging is off (level WARNING) so the numbers show the interceptor's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HEALTH_CHECK = health_pb2.HealthCheckRequest(service="")


def run_bare_server(ready: Any, stop: Any, intercepted: bool = False) -> None:
    from grpc_health.v1.health import aio as health_aio

    from omnix_recs.api.interceptors import ServerInterceptor

    async def main() -> None:
        server = grpc.aio.server(interceptors=[ServerInterceptor()] if intercepted else None)
        health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
        ready.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await asyncio.to_thread(stop.wait)
        await server.stop(0)

    asyncio.run(main())


def run_intercepted_server(ready: Any, stop: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    run_bare_server(ready, stop, intercepted=True)


def run_omnix_server(ready: Any, stop: Any) -> None:
    from datetime import datetime

    from omnix_recs.config import Settings
    from omnix_recs.domain.models import Customer
    from omnix_recs.server import OmnixServer
    from omnix_recs.store.sqlite import SqliteStore

    logging.basicConfig(level=logging.WARNING)

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


async def closed_loop(call: Callable[[], Any], seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time the server process has used (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(name: str, pid: int, call: Callable[[], Any], args: argparse.Namespace) -> None:
    cpu_before = server_cpu_seconds(pid)
    latencies = await closed_loop(call, args.seconds, args.concurrency)
    cpu_per_call_us = (server_cpu_seconds(pid) - cpu_before) / len(latencies) * 1e6
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<52} {len(latencies) / args.seconds:>7.0f} calls/s  "
        f"p50 {cuts[49] * 1000:6.2f} ms  p99 {cuts[98] * 1000:6.2f} ms  "
        f"server CPU {cpu_per_call_us:5.0f} us/call"
    )


def measure(target: Callable[[Any, Any], None], label: str, args: argparse.Namespace, profile: bool) -> None:
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    process = spawn.Process(target=target, args=(ready, stop))
    process.start()
    pid = process.pid
    assert pid is not None  # set by start()
    port = ready.get(timeout=60)

    async def client() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lacks its methods
            await closed_loop(lambda: health.Check(HEALTH_CHECK), 1.0, args.concurrency)  # warm-up
            await timed(f"{label}: Health/Check", pid, lambda: health.Check(HEALTH_CHECK), args)
            if profile:
                from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc

                customers = customer_pb2_grpc.CustomerServiceStub(channel)
                request = customer_pb2.GetCustomerProfileRequest(customer_id="c1")
                await timed(
                    f"{label}: CustomerService/GetCustomerProfile",
                    pid,
                    lambda: customers.GetCustomerProfile(request),
                    args,
                )

    try:
        asyncio.run(client())
    finally:
        stop.set()
        process.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"closed loop, {args.concurrency} calls in flight, {args.seconds:g} s per line")
    measure(run_bare_server, "bare grpc.aio", args, profile=False)
    measure(run_intercepted_server, "bare grpc.aio + OMNIX interceptor", args, profile=False)
    measure(run_omnix_server, "omnix server", args, profile=True)


if __name__ == "__main__":
    main()
