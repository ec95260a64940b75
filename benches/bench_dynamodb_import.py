"""`omnix import instacart` into DynamoDB (dynoxide on 127.0.0.1): lines/s and where time goes.

Generates a supermarket (`omnix generate`), then for each variant starts a fresh dynoxide (its
own process, on a free port, stopped after), creates the tables and imports the data set
through `import_instacart`, as the command does. Prints per variant: wall time, lines/s, this
process's CPU seconds (encoding, botocore, HTTP) and dynoxide's (the emulated DynamoDB), so a
busy machine shows up as wall time neither of them spent.

Variants: `--writers` (parallel writer threads), `--mode undo` (the default session: one
consistent BatchGetItem per 100 rows for the undo journal) or `resumable` (`--resumable`: no
read before writing, checkpointed), `--db file` (dynoxide on a SQLite file, as a demo runs it)
or `memory`, `--processes` (resumable only: `omnix import --workers`, that many processes
writing the lines, each with `--writers` threads; their CPU is counted with this process's).

With `--journal` it measures the purchase journal instead: `add_purchases` of a 10-line order
(one transaction with its journal entry) and the next training's replay of 200 such writes
into a snapshot of 50,000 lines, against rebuilding that snapshot; then orders a second with
1 and 8 concurrent writers (threads of this process, one store; `--journal-writers`), the
snapshot checked to hold every line they wrote; `--journal-processes P` runs them as P
processes (hosts) of that many threads each, racing for one table set. `--latency-ms` adds
that much to every request, as the network to DynamoDB does (dynoxide answers in well under a
millisecond, so without it the writers are bound by this machine's CPU rather than by waiting).

    python benches/bench_dynamodb_import.py --customers 300
    python benches/bench_dynamodb_import.py --journal
    python benches/bench_dynamodb_import.py --journal --journal-writers 1 8 16 --latency-ms 10
    python benches/bench_dynamodb_import.py --customers 5000 --db file --writers 4 --mode resumable
    python benches/bench_dynamodb_import.py --customers 1000 --mode resumable --writers 4 --processes 1 4
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import default_as_of, import_instacart
from omnix_recs.domain.models import Purchase
from omnix_recs.store import snapshot
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.client import client_from_url

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def dynoxide_binary() -> str:
    found = shutil.which("dynoxide") or str(Path.home() / ".cargo" / "bin" / "dynoxide")
    if not os.access(found, os.X_OK):
        raise SystemExit("dynoxide is not installed (scripts/setup-system.sh installs it)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextlib.contextmanager
def dynoxide(
    scratch: Path, db: str, *, port: int | None = None, database: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A dynoxide process on 127.0.0.1 (`port`, default a free one), in memory or on a file in
    `scratch` (`database`: serving that file), and its endpoint URL."""
    port = port or free_port()
    command = [dynoxide_binary(), "--host", "127.0.0.1", "--port", str(port), "--log", "quiet"]
    if database is not None:
        command += ["--db-path", str(database)]
    elif db == "file":
        command += ["--db-path", str(scratch / f"dynoxide-{port}.db")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("dynoxide did not start") from None
                time.sleep(0.1)
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def client_cpu_seconds() -> float:
    """This process's CPU and that of its finished children (`--processes`)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(data: Path, as_of: date, scratch: Path, db: str, writers: int, mode: str, processes: int) -> str:
    with dynoxide(scratch, db) as (server, endpoint):
        url = f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=bench"
        client, env = client_from_url(url)
        store = DynamoStore(client, env=env, import_writers=writers)
        store.url = url  # how the processes of `--processes` open it
        store.create_tables()
        store.resumable_imports = mode == "resumable"
        server_cpu, own = cpu_seconds(server.pid), client_cpu_seconds()
        started = time.perf_counter()
        report = import_instacart(store, data, as_of=as_of, workers=processes)
        wall = time.perf_counter() - started
        client_cpu = client_cpu_seconds() - own
        store.close()
        return (
            f"{db:6} {mode:9} {processes:5d} {writers:7d} {report.order_lines:9,d} {wall:8.1f}"
            f" {report.order_lines / wall:8,.0f}"
            f" {client_cpu:10.1f} {cpu_seconds(server.pid) - server_cpu:12.1f} {os.getloadavg()[0]:6.1f}"
        )


def concurrent_orders(store: DynamoStore, writers: int, orders: int, t0: datetime, prefix: str = "") -> float:
    """Orders a second of `writers` threads, each writing `orders` 10-line orders of its own."""
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for order in range(orders):
                when = t0 + timedelta(days=500 + writers, minutes=order)
                store.add_purchases(
                    [Purchase(f"{prefix}w{writers}-{w}", f"o{order}", f"p{k}", 1, 2.0, when) for k in range(10)]
                )
        except BaseException as error:  # seen below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise failures[0]
    return writers * orders / wall


def latency(client: object, latency_ms: float) -> None:
    """`latency_ms` more for every request of `client` (the network to DynamoDB)."""
    if latency_ms:
        client.meta.events.register("before-send.dynamodb", lambda **_: time.sleep(latency_ms / 1e3))  # type: ignore[attr-defined]


def process_orders(
    url: str, latency_ms: float, writers: int, orders: int, t0: datetime, tag: int
) -> tuple[float, float]:
    """In a process of its own (another host): `writers` threads' orders; (start, end) times."""
    client, env = client_from_url(url)
    latency(client, latency_ms)
    store = DynamoStore(client, env=env)
    started = time.time()
    concurrent_orders(store, writers, orders, t0, prefix=f"h{tag}-")
    ended = time.time()
    store.close()
    return started, ended


def journal(scratch: Path, writer_counts: list[int], latency_ms: float, processes: int) -> None:
    with dynoxide(scratch, "memory") as (server, endpoint):
        url = f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=journal"
        client, env = client_from_url(url)
        latency(client, latency_ms)
        store = DynamoStore(client, env=env)
        store.create_tables()
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        history = [
            Purchase(f"c{n % 500}", f"o{n // 10}", f"p{n % 997}", 1, 2.0, t0 + timedelta(hours=n // 10))
            for n in range(50_000)
        ]
        with store.import_session() as session:
            session.add_purchases(history)
            session.commit()
        directory = scratch / "snapshot"
        started = time.perf_counter()
        snapshot.fresh(store, directory, "bench")
        print(f"snapshot rebuilt from 50,000 lines: {time.perf_counter() - started:.2f} s")
        latencies = []
        for order in range(200):
            basket = [
                Purchase(f"c{order}", f"new{order}", f"p{k}", 1, 2.0, t0 + timedelta(days=400, minutes=order))
                for k in range(10)
            ]
            started = time.perf_counter()
            store.add_purchases(basket)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        print(f"add_purchases, 10 lines: median {latencies[100] * 1e3:.1f} ms, p99 {latencies[197] * 1e3:.1f} ms")
        started = time.perf_counter()
        replayed = snapshot.fresh(store, directory, "bench")
        print(
            f"200 writes (2,000 lines) added to the snapshot: {time.perf_counter() - started:.2f} s ({len(replayed):,} lines)"
        )
        expected = len(replayed)
        for writers in writer_counts:
            orders = max(50, 400 // writers)
            own, server_cpu = client_cpu_seconds(), cpu_seconds(server.pid)
            if processes == 1:
                rate = concurrent_orders(store, writers, orders, t0)
            else:  # `processes` hosts of `writers` threads each, racing for the same table set
                with multiprocessing.get_context("spawn").Pool(processes) as pool:
                    spans = pool.starmap(
                        process_orders, [(url, latency_ms, writers, orders, t0, tag) for tag in range(processes)]
                    )
                rate = processes * writers * orders / (max(end for _, end in spans) - min(start for start, _ in spans))
            total = processes * writers * orders
            cpu_ms = (client_cpu_seconds() - own) / total * 1e3
            server_ms = (cpu_seconds(server.pid) - server_cpu) / total * 1e3
            expected += total * 10
            held = len(snapshot.fresh(store, directory, "bench"))
            if held != expected:
                raise SystemExit(f"the snapshot holds {held:,} lines after the writers, expected {expected:,}")
            print(
                f"{processes} x {writers} concurrent writers: {rate:,.0f} orders/s (10 lines each; CPU an order: client"
                f" {cpu_ms:.1f} ms, dynoxide {server_ms:.1f} ms; load {os.getloadavg()[0]:.1f});"
                f" snapshot complete ({held:,} lines)"
            )
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--db", choices=("memory", "file"), nargs="+", default=["memory"])
    parser.add_argument("--writers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--mode", choices=("undo", "resumable"), nargs="+", default=["undo", "resumable"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1], help="import processes (resumable only)")
    parser.add_argument("--journal", action="store_true", help="measure the purchase journal instead")
    parser.add_argument("--journal-writers", type=int, nargs="+", default=[1, 8], help="concurrent writers")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request (--journal)")
    parser.add_argument("--journal-processes", type=int, default=1, help="processes of --journal-writers each")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop dynoxide and the scratch dir too
    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="omnix-bench-dynamodb-") as scratch:
        if args.journal:
            journal(Path(scratch), args.journal_writers, args.latency_ms, args.journal_processes)
            return
        data = Path(scratch) / "gen"
        generate_instacart(data, customers=args.customers, products=args.products, days=365, seed=7)
        as_of = default_as_of(data) or date.today()
        print(
            f"{'db':6} {'mode':9} {'procs':>5} {'writers':>7} {'lines':>9} {'wall s':>8} {'lines/s':>8} {'client cpu':>10}"
            f" {'dynoxide cpu':>12} {'load':>6}"
        )
        for db in args.db:
            for mode in args.mode:
                for processes in args.processes if mode == "resumable" else [1]:
                    for writers in args.writers:
                        print(run(data, as_of, Path(scratch), db, writers, mode, processes), flush=True)


if __name__ == "__main__":
    main()
