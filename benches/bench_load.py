#!/usr/bin/env python3
"""The whole service under open-loop load on this machine: the highest rate at p99 < 200 ms.

Generates a supermarket (20k households by default), imports it into SQLite, trains a model,
then for each server configuration (`--configs`: `local` = in-process cache, `redis` = a
redis-server started here, `nocache` = OMNIX_CACHE_TTL_S=0) starts `omnix serve --workers N`
on a free port and runs `omnix loadgen` beside it (same 2 cores) at increasing rates: the
shoppers' mix (lists, similar products, basket completion, recorded interactions) and, as the
ceiling, bare health checks. Shoppers are modelled as the issue states them: `SHOPPERS`
(10,000) customers of the store are in a session, each calling every SHOPPERS / R seconds at a
rate of R calls/s (every 5 s at 2,000/s). The search measures their steady state: before it,
`WARM_UP_ROUNDS` rounds of the mix over every shopper in turn bring them into the server's
caches, as a session's earlier calls would (misses still happen as they do in production: after each
recorded interaction, and when an entry reaches its lifetime, OMNIX_CACHE_TTL_S).

A rate passes when p99 latency (from each call's scheduled start) stays under `--p99-ms` with
every call answered OK; a failed step is tried once more (a stall of a shared machine is not the
server's limit); the search multiplies the rate by 1.5 until a step fails, then bisects twice.
Each step also reports the CPU time per call of the server (all its processes, from /proc) and
of the load generator; from those the summary estimates the rate two dedicated cores could
carry, a figure that other work on the machine disturbs much less than latency. While the mix runs at 70% of the best rate found, py-spy
(`pip install py-spy`) samples the workers' Python threads holding the GIL, which is what
serialises each worker process, and the load generator's threads (it shares the cores); the
report groups the samples by where the time goes. `--mix recommendations=1` measures
GetRecommendations alone (the target's call), and `--shoppers N` keeps each shopper's calls as
far apart at a lower rate as they are at the target's (N = rate x 5 s).

    python benches/bench_load.py                      # about 8-10 minutes on 2 cores
    python benches/bench_load.py --keep var/bench-load --configs local --step-seconds 8
    python benches/bench_load.py --keep var/bench-load --configs local --rate 600   # one step, profiled
    python benches/bench_load.py --keep var/bench-load --configs local --mix recommendations=1 --p99-ms 50 \
        --rate 700 --hold 36        # that rate for 36 steps: the steady state, and the waves in it
    python benches/bench_load.py --keep var/bench-load --configs redis --hosts 3 --workers 1
    python benches/bench_load.py --keep var/bench-load --configs local,redis --mix recommendations=1 --p99-ms 50

The load generator is the native one by default (`--loadgen native`: `omnix-loadgen`, Rust,
built here when missing, sending calls this process plans), because it shares the two cores
with the server it measures: grpc.aio's client (`--loadgen grpc-aio`) takes 0.2-0.3 ms of CPU a
call, the native one 0.07-0.12 ms with the planning.

Each worker also listens on a port of its own (`omnix serve --worker-base-port`) and the load
generator balances each call over those ports, as a client that balances would; `--shared-port`
sends every call to the shared port instead, where the kernel hashes each connection to one
worker for the whole run (each step prints the split: `connections per worker 21/11`).

`--hosts N` starts N separate `omnix serve` processes on 127.0.0.2, 127.0.0.3, ... (one port,
one store, one Redis with `redis`), and the load generator balances every channel round robin
over them, as a client of several machines would.

`--keep DIR` keeps the generated store and model there and reuses them next time (each run starts
from a copy of the store as trained, so the lists one run serves do not slow the next), and leaves
the raw profile there (`profile-<config>.txt`, py-spy's collapsed stacks).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs import loadgen_native
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.loadgen import DEFAULT_MIX, ENGINES, LoadReport, parse_mix, run_loadgen, sample_ids
from omnix_recs.store import open_store

SHOPPERS = 10_000
# The warm-up: every shopper called in turn WARM_UP_ROUNDS times, so that each of two workers
# has most likely seen each shopper (a call lands on either: 1 - 2 * 0.5**4 = 88% of shoppers
# have been on both, and nearly all on the worker they reach next).
WARM_UP_RATE = 600.0
WARM_UP_ROUNDS = 4
# The rounds run one at a time. A round that answers fewer of its calls than this left shoppers
# cold (with Redis, first loads at 600/s answer a quarter to a half before the 2 s deadline):
# it does not count, and the next runs at half the rate. At most WARM_UP_MAX_ROUNDS in all.
WARM_UP_ANSWERED = 0.9
WARM_UP_MIN_RATE = 100.0
WARM_UP_MAX_ROUNDS = 2 * WARM_UP_ROUNDS
PRODUCT_SAMPLE = 5_000
CHANNELS = 32
START_RATE = {"mix": 50.0, "health": 400.0}
GROWTH = 1.5
REFINEMENTS = 2
MAX_STEPS = 12
SERVER_START_TIMEOUT_S = 60.0
# Beside the kept store: the store as trained, which every run starts from (`prepare_shop`).
PRISTINE_STORE = "omnix.pristine.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=1, help="separate servers on 127.0.0.2, .3, ... (default 1)")
    parser.add_argument(
        "--shared-port",
        action="store_true",
        help="send every call to the workers' shared port, where the kernel hashes each connection to one worker "
        "(default: balance each call over the workers' own ports, --worker-base-port)",
    )
    parser.add_argument("--configs", default="local,redis", help="comma-separated: local, redis, nocache")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--p99-ms", type=float, default=200.0)
    parser.add_argument(
        "--shoppers",
        type=int,
        default=SHOPPERS,
        help=f"customers in a session (default {SHOPPERS:,}); at a lower rate, fewer shoppers keep each one's "
        "calls as far apart as the target's (every 5 s at 2,000/s), to measure the CPU per call of that regime",
    )
    parser.add_argument(
        "--mix",
        default="",
        help="the calls measured, e.g. recommendations=1 for GetRecommendations alone (default: the shoppers' mix)",
    )
    parser.add_argument(
        "--loadgen",
        choices=ENGINES,
        default="native",
        help="the load generator's engine (default native: omnix-loadgen, built here if missing; grpc-aio: "
        "Python's grpc.aio client in this process, which takes 0.2-0.3 ms of the shared cores per call)",
    )
    parser.add_argument("--keep", help="directory for the generated store and model (reused when present)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the health-check ceiling (measured before)")
    parser.add_argument(
        "--rate", type=float, help="no search: run the mix at this rate (after a warm-up), with a profile"
    )
    parser.add_argument(
        "--hold",
        type=int,
        metavar="STEPS",
        help="with --rate, no profile: that rate for STEPS steps in a row after the warm-up, each printed, then "
        "summarised (a steady state, with the waves of cache expiry in it, which one passing step does not show)",
    )
    args = parser.parse_args()
    if not 1 <= args.hosts <= 200:
        parser.error(f"--hosts must be between 1 and 200, got {args.hosts}")
    if args.hold is not None and (args.hold < 1 or not args.rate):
        parser.error(f"--hold needs --rate and at least one step, got --hold {args.hold}")
    mix = parse_mix(args.mix) if args.mix else DEFAULT_MIX
    if args.loadgen == "native":
        build_native_loadgen()
    mix_name = args.mix or "recommendations 6 : similar 2 : basket 1 : interaction 1"
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} at start")

    with tempfile.TemporaryDirectory(prefix="omnix-bench-load-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        settings = prepare_shop(root, args)
        store = open_store(settings.store_url)
        try:
            customers, products = sample_ids(store, customers=args.shoppers, products=PRODUCT_SAMPLE)
        finally:
            store.close()
        ceiling = None
        summary = []
        for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
            hosts = f" on {args.hosts} hosts" if args.hosts > 1 else ""
            ports = "one shared port" if args.shared_port else "calls balanced over each worker's own port"
            print(
                f"\n=== {config}: omnix serve --workers {args.workers}{hosts}, {ports} "
                f"(load average {os.getloadavg()[0]:.1f})"
            )
            scratch_dir = root if args.keep else Path(scratch)
            # The raw profile (py-spy's collapsed stacks) stays in the kept directory, if any.
            with Server(
                settings, config, args.workers, scratch_dir, args.hosts, own_ports=not args.shared_port
            ) as server:
                load = Load(server, customers, products, args.step_seconds, args.p99_ms, mix, args.loadgen)
                load.warm_up()
                if args.rate and args.hold:
                    load.hold(args.rate, args.hold)
                    continue
                if args.rate:
                    print(
                        server.profile(
                            functools.partial(load.step, "mix", args.rate, show=True),
                            args.step_seconds,
                            loadgen_here=args.loadgen == "grpc-aio",
                        )
                    )
                    continue
                if ceiling is None and not args.no_ceiling:
                    print("health checks (the ceiling):")
                    ceiling = (load.search("health"), load.cpu_bound_rate())
                print(f"shoppers' calls ({mix_name}):")
                best = load.search("mix")
                capacity = load.cpu_bound_rate()
                # The CPU per call of the best passing step, and how busy the machine was meanwhile:
                # steadier than the rate on a shared machine (README, Throughput).
                cpu_ms = load.passed_cpu_ms[-1] if load.passed_cpu_ms else (0.0, 0.0)
                busy = os.getloadavg()[0]
                profile = server.profile(
                    functools.partial(load.step, "mix", round((best or START_RATE["mix"]) * 0.7)),
                    args.step_seconds,
                    loadgen_here=args.loadgen == "grpc-aio",
                )
                print(profile)
                summary.append((config, best, capacity, cpu_ms, busy))
        print(
            f"\n=== summary (open loop, {args.loadgen} load generator on the same machine, {len(customers)} shoppers)"
        )
        if ceiling is not None:
            print(
                f"health checks (the ceiling): {ceiling[0] or 0:.0f}/s at p99 < {args.p99_ms:g} ms, no errors; "
                f"CPU-bound estimate on 2 cores {ceiling[1]:.0f}/s"
            )
        for config, best, capacity, (server_ms, client_ms), busy in summary:
            share = f" ({best / ceiling[0]:.0%} of the ceiling)" if best and ceiling and ceiling[0] else ""
            print(
                f"{config:<8} {mix_name}: {best or 0:.0f}/s at p99 < {args.p99_ms:g} ms, no errors{share}; "
                f"CPU-bound estimate on 2 cores {capacity:.0f}/s; CPU/call at the best rate: server "
                f"{server_ms:.2f} ms, load generator {client_ms:.2f} ms (load average {busy:.1f})"
            )
    print(f"bench time {time.perf_counter() - started:.0f} s")


def build_native_loadgen() -> None:
    """`omnix-loadgen` (benches/loadgen/), built in release unless OMNIX_LOADGEN_BIN names one."""
    if os.environ.get("OMNIX_LOADGEN_BIN"):
        return
    checkout = Path(__file__).resolve().parents[1]
    print(f"building omnix-loadgen (cargo build --release --manifest-path {loadgen_native.MANIFEST}) ...", flush=True)
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--manifest-path", loadgen_native.MANIFEST], cwd=checkout, check=True
    )
    os.environ["OMNIX_LOADGEN_BIN"] = str(checkout / loadgen_native.BUILT_AT)


def prepare_shop(root: Path, args: argparse.Namespace) -> Settings:
    root.mkdir(parents=True, exist_ok=True)  # `--keep DIR` may name a directory not made yet
    database, pristine = root / "omnix.db", root / PRISTINE_STORE
    if pristine.exists():
        # Every run starts from the store as it was trained: the lists served by earlier runs
        # (gigabytes after a few searches) would make each run slower than the one before.
        for leftover in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(pristine, database)
    settings = Settings(store_url=f"sqlite:///{database}", model_dir=str(root / "models"), log_level="WARNING")
    store = open_store(settings.store_url)
    try:
        active = store.active_model()
        if active is not None:
            print(f"reusing {root}: {store.count_purchases()} order lines, model {active.version}")
            if not pristine.exists():  # a store kept before this copy existed
                keep_pristine_copy(database, pristine)
            return settings
        started = time.perf_counter()
        # The shopping history ends yesterday, as it would in production: an import "as of today"
        # places the last orders at their hour of today, hours after the calls that ask about
        # now, and a history reaching past the moment asked about is read from the store.
        last_day = date.today() - timedelta(days=1)
        summary = generate_instacart(
            root / "data", customers=args.customers, products=args.products, days=args.days, seed=7, end_date=last_day
        )
        import_instacart(store, root / "data", as_of=last_day)
        record = train_model(store, settings)
        shutil.rmtree(root / "data")
        print(
            f"setup: {args.customers} households, {summary['order_lines']} order lines, model {record.version} "
            f"in {time.perf_counter() - started:.0f} s"
        )
        keep_pristine_copy(database, pristine)
        return settings
    finally:
        store.close()


def keep_pristine_copy(database: Path, pristine: Path) -> None:
    """A consistent copy of the store (SQLite's online backup), for later runs to start from."""
    with contextlib.closing(sqlite3.connect(database)) as source, contextlib.closing(sqlite3.connect(pristine)) as copy:
        source.backup(copy)


class Server:
    """`omnix serve --workers N` in a subprocess (and a redis-server for the `redis` config); with
    `hosts` > 1, one such server per loopback address 127.0.0.2, 127.0.0.3, ..., all on one port,
    and `address` lists them all (the load generator balances over them). With `own_ports`, every
    worker also listens on a port of its own (`--worker-base-port`) and `address` lists those
    instead, so each call is balanced over the workers rather than each connection hashed to one."""

    def __init__(
        self, settings: Settings, config: str, workers: int, scratch: Path, hosts: int = 1, *, own_ports: bool = True
    ) -> None:
        self.config, self.workers, self.scratch = config, workers, scratch
        self.hosts = [f"127.0.0.{2 + i}" for i in range(hosts)] if hosts > 1 else ["127.0.0.1"]
        self.port = free_port(self.hosts)
        self.worker_ports = free_ports_in_a_row(workers, self.hosts, besides=self.port) if own_ports else []
        self.address = ",".join(f"{host}:{port}" for host in self.hosts for port in self.worker_ports or [self.port])
        self.env = {
            **os.environ,
            "OMNIX_STORE": settings.store_url,
            "OMNIX_MODEL_DIR": settings.model_dir,
            "OMNIX_LOG_LEVEL": "WARNING",  # no per-call access log: measure the service, not logging
        }
        self.env.pop("OMNIX_REDIS_URL", None)
        if config == "nocache":
            self.env["OMNIX_CACHE_TTL_S"] = "0"
        self.redis: subprocess.Popen[bytes] | None = None
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The first host's server (the one profiled)."""
        return self.processes[0] if self.processes else None

    def __enter__(self) -> Server:
        if self.config == "redis":
            redis_port = free_port()
            self.redis = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.scratch),
                ],
                stdout=subprocess.DEVNULL,
            )
            self.env["OMNIX_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        for host in self.hosts:
            command = [sys.executable, "-m", "omnix_recs.cli", "serve", "--workers", str(self.workers)]
            command += ["--host", host, "--port", str(self.port)]
            if self.worker_ports:
                command += ["--worker-base-port", str(self.worker_ports[0])]
            self.processes.append(subprocess.Popen(command, env=self.env))
        for host, process in zip(self.hosts, self.processes):
            for port in [self.port, *self.worker_ports]:
                wait_until_serving(f"{host}:{port}", process)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(60)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the servers' processes (each parent and its workers)."""
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def loop_cpu_seconds(self) -> float:
        """The part of `cpu_seconds` spent on the processes' main threads, where each runs its
        event loop; the rest is gRPC's poller and the background threads (served-list writes)."""
        return sum(thread_cpu_seconds(pid, pid) for pid in self.pids())

    def connections_per_process(self) -> list[int]:
        """Established connections to the serving ports held by each server process, the busiest
        first (on the shared port the kernel hashes each connection to one worker, SO_REUSEPORT)."""
        inodes = set().union(*(established_inodes(port) for port in [self.port, *self.worker_ports]))
        counts = []
        for pid in self.pids():
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:  # the process ended, or its descriptors moved while being read
                continue
            held = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
            if held:
                counts.append(held)
        return sorted(counts, reverse=True)

    def pids(self) -> list[int]:
        return [pid for process in self.processes for pid in (process.pid, *children_of(process.pid))]

    def profile(self, run_load: Callable[[], LoadReport], seconds: float, *, loadgen_here: bool) -> str:
        """Sample every worker with py-spy while `run_load` runs; summarise where time goes.
        `loadgen_here`: the load generator runs in this process (grpc-aio), so sample it too."""
        # Beside this Python too: a virtualenv's bin directory is often not on PATH.
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if py_spy is None:
            run_load()
            return "profile: py-spy is not installed (pip install py-spy)"
        assert self.process is not None
        raw = self.scratch / f"profile-{self.config}.txt"
        # The load generator (this process) shares the cores: where its CPU goes matters too.
        raw_loadgen = self.scratch / f"profile-{self.config}-loadgen.txt"

        def sample(pid: int, output: Path, *options: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), *options, "--duration", str(int(seconds)), "--rate", "200"]
                + ["--format", "raw", "--nonblocking", "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        samplers = [sample(self.process.pid, raw, "--subprocesses", "--gil")]
        if loadgen_here:
            samplers.append(sample(os.getpid(), raw_loadgen))
        report = run_load()
        for sampler in samplers:
            sampler.wait(seconds + 30)
        if not raw.exists():
            return "profile: py-spy could not sample the server (ptrace not permitted?)"
        text = f"profile at {report.rate:.0f}/s ({report.ok} OK calls), server:\n{summarise_profile(raw.read_text())}"
        if loadgen_here and raw_loadgen.exists():
            loadgen = summarise_profile(raw_loadgen.read_text(), "samples of the load generator's threads")
            text += f"\nthe load generator:\n{loadgen}"
        return text


class Load:
    """Runs open-loop steps against one server and searches for the best passing rate."""

    def __init__(
        self,
        server: Server,
        customers: list[str],
        products: list[str],
        seconds: float,
        p99_ms: float,
        mix: dict[str, float] = DEFAULT_MIX,
        engine: str = "native",
    ) -> None:
        self.server, self.customers, self.products, self.mix = server, customers, products, mix
        self.engine = engine
        self.seconds, self.p99_ms = seconds, p99_ms
        self.cpu_ms_per_call = (0.0, 0.0)  # server, load generator: of the last step
        self.loop_cpu_ms_per_call = 0.0  # the server's event loop threads': of the last step
        self.passed_cpu_ms: list[tuple[float, float]] = []  # the same, of every passing step
        self.connection_split: list[int] = []  # connections per server process, of the last step

    def step(self, kind: str, rate: float, *, show: bool = False) -> LoadReport:
        mix = {"health": 1.0} if kind == "health" else self.mix
        server_cpu, loop_cpu = self.server.cpu_seconds(), self.server.loop_cpu_seconds()
        # The step's connections exist only while it runs: count them a second in.
        split = threading.Timer(1.0, lambda: setattr(self, "connection_split", self.server.connections_per_process()))
        self.connection_split = []
        split.start()
        report = run_loadgen(
            self.server.address,
            rate=rate,
            duration_s=self.seconds,
            channels=CHANNELS,
            mix=mix,
            customers=self.customers,
            products=self.products,
            engine=self.engine,
        )
        split.cancel()
        calls = max(1, report.answered)
        self.cpu_ms_per_call = (
            (self.server.cpu_seconds() - server_cpu) / calls * 1000,
            report.client_cpu_s / calls * 1000,
        )
        self.loop_cpu_ms_per_call = (self.server.loop_cpu_seconds() - loop_cpu) / calls * 1000
        time.sleep(1.0)  # let the server drain before the next step
        if show:
            self.print_step(report, self.passes(report))
        return report

    def print_step(self, report: LoadReport, ok: bool) -> None:
        errors = ", ".join(f"{code} {n}" for code, n in sorted(report.errors.items())) or "no errors"
        server_ms, client_ms = self.cpu_ms_per_call
        print(
            f"  {report.rate:>6.0f}/s  {'pass' if ok else 'FAIL'}  OK {report.throughput:7.1f}/s  "
            f"{report.latency.render()}  {errors}  CPU/call server {server_ms:.2f} ms (event loops "
            f"{self.loop_cpu_ms_per_call:.2f}), loadgen {client_ms:.2f} ms  "
            f"(send lag p99 {report.send_lag_p99_ms:.1f} ms; connections per worker "
            f"{'/'.join(map(str, self.connection_split)) or '?'})",
            flush=True,
        )

    def passes(self, report: LoadReport) -> bool:
        return report.latency.p99_ms < self.p99_ms and report.ok == report.scheduled

    def hold(self, rate: float, steps: int) -> None:
        """`steps` steps at `rate` one after another, each printed, then how many passed, their
        p99s and the server's CPU per call."""
        p99s, cpu_ms, passed = [], [], 0
        for _ in range(steps):
            report = self.step("mix", rate, show=True)
            p99s.append(report.latency.p99_ms)
            cpu_ms.append(self.cpu_ms_per_call[0])
            passed += self.passes(report)
        print(
            f"  held {rate:.0f}/s for {steps} steps: {passed} at p99 < {self.p99_ms:g} ms with every call answered; "
            f"p99 median {statistics.median(p99s):.1f} ms, worst {max(p99s):.1f} ms; server CPU per call "
            f"{statistics.mean(cpu_ms):.2f} ms on average",
            flush=True,
        )

    def warm_up(self) -> None:
        """Page the model and store in, build the catalog snapshot in every worker, and bring the
        shoppers into the caches (see the module doc). Not measured; errors do not matter here,
        but a round that left too many calls unanswered is not counted and slows the next."""
        self.step("mix", 30)
        started, rate, good, rounds = time.perf_counter(), WARM_UP_RATE, 0, []
        for attempt in range(WARM_UP_MAX_ROUNDS):
            report = run_loadgen(
                self.server.address,
                rate=rate,
                duration_s=len(self.customers) / rate,  # one round: every shopper once
                channels=CHANNELS,
                mix=self.mix,  # the calls measured next: their lists are ranked and cached too
                customers=self.customers,
                products=self.products,
                seed=2 + attempt,
                shoppers_in_turn=True,
                engine=self.engine,
            )
            answered = report.ok / max(1, report.scheduled)
            rounds.append(f"{rate:.0f}/s {answered:.0%}")
            if answered >= WARM_UP_ANSWERED:
                good += 1
                if good == WARM_UP_ROUNDS:
                    break
            else:
                rate = max(WARM_UP_MIN_RATE, rate / 2)
        print(
            f"  warm-up: {len(self.customers)} shoppers in {len(rounds)} rounds in "
            f"{time.perf_counter() - started:.0f} s (rate, calls answered: {', '.join(rounds)})",
            flush=True,
        )
        time.sleep(1.0)

    def cpu_bound_rate(self) -> float:
        """Calls/s two dedicated cores could carry at the CPU per call of the passing steps of the
        last search (server + load generator: they share the machine)."""
        if not self.passed_cpu_ms:
            return 0.0
        per_call_ms = min(server + client for server, client in self.passed_cpu_ms[-3:])
        return 2 * 1000 / per_call_ms

    def search(self, kind: str) -> float | None:
        self.passed_cpu_ms = []
        best, failed, rate = None, None, START_RATE[kind]
        for _ in range(MAX_STEPS):
            if not self._try(kind, rate):
                failed = rate
                break
            best, rate = rate, rate * GROWTH
        for _ in range(REFINEMENTS if best and failed else 0):
            middle = (best + failed) / 2  # type: ignore[operator]
            if self._try(kind, middle):
                best = middle
            else:
                failed = middle
        return best

    def _try(self, kind: str, rate: float) -> bool:
        return self._attempt(kind, rate) or self._attempt(kind, rate)

    def _attempt(self, kind: str, rate: float) -> bool:
        report = self.step(kind, round(rate))
        ok = self.passes(report)
        if ok:
            self.passed_cpu_ms.append(self.cpu_ms_per_call)
        self.print_step(report, ok)
        return ok


# --- where the time goes -------------------------------------------------------------------------

# Each sample goes to the innermost frame that matches one of these (checked leaf first).
BUCKETS: list[tuple[str, re.Pattern[str]]] = [
    ("ranking kernel (Rust, RankTables.rank)", re.compile(r"^Recommender\._rank |_shop_wide_ranked")),
    ("store reads/writes (SQLite)", re.compile(r"omnix_recs/store/sqlite")),
    ("Redis client (redis-py)", re.compile(r"\(redis/")),
    ("cache (store/cache/, codecs)", re.compile(r"omnix_recs/store/cache/|omnix_recs/engine/cached_reads\.py")),
    ("history features", re.compile(r"omnix_recs/engine/features\.py")),
    ("catalog filters and masks", re.compile(r"omnix_recs/engine/filters\.py")),
    ("reasons and served-list assembly", re.compile(r"omnix_recs/engine/reasons\.py|Recommender\._serve ")),
    ("other serving logic", re.compile(r"omnix_recs/engine/")),
    ("servicers and validation (api/)", re.compile(r"omnix_recs/api/(?!interceptors)")),
    ("interceptor (request id, errors, log)", re.compile(r"omnix_recs/api/interceptors|omnix_recs/request_context")),
    ("gRPC and protobuf (Python side)", re.compile(r"\(grpc/|_pb2|google/protobuf")),
    # Callbacks whose innermost Python frame is the loop's run most often in gRPC's Cython core.
    ("event loop: asyncio and gRPC's Cython core", re.compile(r"\(asyncio/|selectors\.py")),
    ("thread pool hand-off", re.compile(r"concurrent/futures|\(threading\.py")),
]


def summarise_profile(raw: str, sampled: str = "samples of threads holding the GIL") -> str:
    """py-spy's collapsed stacks ("frame;frame;... count") → share of samples per bucket, and
    the functions that were on CPU themselves most often."""
    buckets: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1]] += count
        buckets[
            next((name for frame in reversed(frames) for name, pattern in BUCKETS if pattern.search(frame)), "other")
        ] += count
    if not total:
        return "  (no samples)"
    lines = [
        f"  {total} {sampled}; share by where the innermost known frame is"
        " (the Rust kernel and SQLite release the GIL, so they show only through their callers):"
    ]
    lines += [f"    {share / total:6.1%}  {name}" for name, share in buckets.most_common()]
    lines.append("  functions most often on CPU themselves:")
    lines += [f"    {count / total:6.1%}  {frame}" for frame, count in leaves.most_common(12)]
    return "\n".join(lines)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is `port` (/proc/net/tcp)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01":  # 01: ESTABLISHED
                inodes.add(inode)
    return inodes


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port(hosts: list[str] | None = None) -> int:
    """A port free on 127.0.0.1, or on every one of `hosts`."""
    hosts = hosts or ["127.0.0.1"]
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind((hosts[0], 0))
            port: int = sock.getsockname()[1]
        if free_everywhere(hosts[1:], [port]):
            return port
    raise SystemExit(f"no port free on all of {', '.join(hosts)}")


def free_ports_in_a_row(count: int, hosts: list[str], *, besides: int) -> list[int]:
    """`count` consecutive ports free on every one of `hosts`, none of them `besides`."""
    for _ in range(50):
        first = free_port(hosts)
        ports = list(range(first, first + count))
        if besides not in ports and ports[-1] <= 65_535 and free_everywhere(hosts, ports[1:]):
            return ports
    raise SystemExit(f"no {count} ports in a row free on all of {', '.join(hosts)}")


def free_everywhere(hosts: list[str], ports: list[int]) -> bool:
    """Whether each of `ports` can be bound on each of `hosts` (none is listened on)."""
    try:
        for host in hosts:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind((host, port))
    except OSError:
        return False
    return True


def wait_until_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lacks its methods
        while True:
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server on {address} did not start")
            time.sleep(0.2)


if __name__ == "__main__":
    main()
