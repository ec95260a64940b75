"""`omnix import instacart` into DynamoDB (dynoxide on 127.0.0.1): lines/s and where time goes.

Generates a supermarket (`omnix generate`), then for each variant starts a fresh dynoxide (its
own process, on a free port, stopped after), creates the tables and imports the data set
through `import_instacart`, as the command does. Prints per variant: wall time, lines/s, this
process's CPU seconds (encoding, botocore, HTTP) and dynoxide's (the emulated DynamoDB), so a
busy machine shows up as wall time neither of them spent.

Variants: `--writers` (parallel writer threads), `--mode undo` (the default session: one
consistent BatchGetItem per 100 rows for the undo journal) or `resumable` (`--resumable`: no
read before writing, checkpointed), `--db file` (dynoxide on a SQLite file, as a demo runs it)
or `memory`.

With `--journal` it measures the purchase journal instead: `add_purchases` of a 10-line order
(one transaction with its journal entry) and the next training's replay of 200 such writes
into a snapshot of 50,000 lines, against rebuilding that snapshot.

    python benches/bench_dynamodb_import.py --customers 300
    python benches/bench_dynamodb_import.py --journal
    python benches/bench_dynamodb_import.py --customers 5000 --db file --writers 4 --mode resumable
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
def dynoxide(scratch: Path, db: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A dynoxide process on a free port of 127.0.0.1, in memory or on a file in `scratch`,
    and its endpoint URL."""
    port = free_port()
    command = [dynoxide_binary(), "--host", "127.0.0.1", "--port", str(port), "--log", "quiet"]
    if db == "file":
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


def run(data: Path, as_of: date, scratch: Path, db: str, writers: int, mode: str) -> str:
    with dynoxide(scratch, db) as (server, endpoint):
        client, env = client_from_url(f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=bench")
        store = DynamoStore(client, env=env, import_writers=writers)
        store.create_tables()
        store.resumable_imports = mode == "resumable"
        server_cpu, own = cpu_seconds(server.pid), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        report = import_instacart(store, data, as_of=as_of)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
        store.close()
        return (
            f"{db:6} {mode:9} {writers:7d} {report.order_lines:9,d} {wall:8.1f} {report.order_lines / wall:8,.0f}"
            f" {client_cpu:10.1f} {cpu_seconds(server.pid) - server_cpu:12.1f} {os.getloadavg()[0]:6.1f}"
        )


def journal(scratch: Path) -> None:
    with dynoxide(scratch, "memory") as (_, endpoint):
        client, env = client_from_url(f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=journal")
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
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--db", choices=("memory", "file"), nargs="+", default=["memory"])
    parser.add_argument("--writers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--mode", choices=("undo", "resumable"), nargs="+", default=["undo", "resumable"])
    parser.add_argument("--journal", action="store_true", help="measure the purchase journal instead")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop dynoxide and the scratch dir too
    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="omnix-bench-dynamodb-") as scratch:
        if args.journal:
            journal(Path(scratch))
            return
        data = Path(scratch) / "gen"
        generate_instacart(data, customers=args.customers, products=args.products, days=365, seed=7)
        as_of = default_as_of(data) or date.today()
        print(
            f"{'db':6} {'mode':9} {'writers':>7} {'lines':>9} {'wall s':>8} {'lines/s':>8} {'client cpu':>10}"
            f" {'dynoxide cpu':>12} {'load':>6}"
        )
        for db in args.db:
            for mode in args.mode:
                for writers in args.writers:
                    print(run(data, as_of, Path(scratch), db, writers, mode), flush=True)


if __name__ == "__main__":
    main()
