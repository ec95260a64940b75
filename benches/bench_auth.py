#!/usr/bin/env python3
"""What token checks cost per call: the same RPC over real gRPC with auth off and on.

Starts the real server on 127.0.0.1 twice over one SQLite store (once without a secret, once
with `OMNIX_AUTH_JWT_SECRET`), then calls CustomerService.GetCustomerProfile as the customer's
own shopper in a closed loop from one synchronous client, rounds alternating. Prints the
server-side CPU per call (this process's CPU minus the client's, measured separately) and the
isolated check (token verification from the remembered table + role check).

    python benches/bench_auth.py [--calls 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import jwt

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer
from omnix_recs.security.auth import Authenticator, AuthSettings
from omnix_recs.server import OmnixServer
from omnix_recs.store import open_store

SECRET = "bench-secret-" + "x" * 40


def serve(settings: Settings, store_url: str) -> tuple[OmnixServer, asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    store = open_store(store_url)

    async def start() -> OmnixServer:
        server = await OmnixServer.create(settings, store)
        await server.start()
        return server

    return asyncio.run_coroutine_threadsafe(start(), loop).result(30), loop, thread


def round_trip(port: int, calls: int, metadata: tuple[tuple[str, str], ...]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) for `calls` calls."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = customer_pb2_grpc.CustomerServiceStub(channel)
        request = customer_pb2.GetCustomerProfileRequest(customer_id="c1")
        for _ in range(200):  # warm up
            stub.GetCustomerProfile(request, metadata=metadata)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            stub.GetCustomerProfile(request, metadata=metadata)
        return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_url = f"sqlite:///{Path(tmp) / 'omnix.db'}"
        seed = open_store(store_url)
        now = datetime.now(UTC)
        seed.create_customer(Customer("c1", now, now))
        seed.close()
        token = jwt.encode({"sub": "c1", "role": "shopper", "exp": int(time.time()) + 3600}, SECRET, "HS256")
        base = Settings(grpc_port=0, log_level="WARNING", model_dir=str(Path(tmp) / "models"))
        configs: dict[str, tuple[Settings, tuple[tuple[str, str], ...]]] = {
            "auth off": (base, ()),
            "auth on (HS256)": (
                dataclasses.replace(base, auth_jwt_secret=SECRET),
                (("authorization", f"Bearer {token}"),),
            ),
        }
        servers = {name: serve(settings, store_url) for name, (settings, _) in configs.items()}
        results: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, (_, metadata) in configs.items():
                cpu, wall = round_trip(servers[name][0].port, args.calls, metadata)
                results[name].append(cpu / args.calls * 1e6)
        for name, values in results.items():
            print(f"{name:18s} CPU per call (client + server, one process): {statistics.median(values):7.1f} us")
        off, on = (statistics.median(v) for v in results.values())
        print(f"auth adds {on - off:+.1f} us per call ({(on - off) / off:+.1%})")

        authenticator = Authenticator(AuthSettings(jwt_secret=SECRET))
        metadata = (("authorization", f"Bearer {token}"),)
        request = customer_pb2.GetCustomerProfileRequest(customer_id="c1")
        method = "/omnix.v1.CustomerService/GetCustomerProfile"
        n = 100_000
        started = time.perf_counter()
        for _ in range(n):
            authenticator.authorize(method, authenticator.principal_for(metadata, None), request)
        print(f"isolated check (remembered token + role): {(time.perf_counter() - started) / n * 1e6:.2f} us")
        started = time.perf_counter()
        for _ in range(2_000):
            jwt.decode(token, SECRET, algorithms=["HS256"])
        print(f"a first-time HS256 verification: {(time.perf_counter() - started) / 2_000 * 1e6:.1f} us")
        for server, loop, thread in servers.values():
            asyncio.run_coroutine_threadsafe(server.shutdown(0), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


if __name__ == "__main__":
    main()
