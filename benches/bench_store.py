"""Bulk-load throughput of the SQLite store: the path `omnix import instacart` takes.

Generates N synthetic order lines shaped like Instacart's `order_products__prior.csv` (orders in
order-id order, each from a random household, ~10 lines, popular products bought more often),
then measures, on a fresh database file:

1. first import: `import_session().add_purchase_columns(...)` in batches, then `commit()`
   (purchase indexes deferred and rebuilt at commit, as on a real first import);
2. re-import of the same lines (every line already exists: idempotent overwrite, indexes live);
3. `scan_purchases()`: reading every line back in columns, as a model build does.

Each line reports wall-clock throughput and, because the machine is often shared, throughput
per CPU-second of this process (SQLite runs in-process, single-threaded, without fsync in
these phases except at checkpoints), which is what the wall rate would be on an idle core.

    python benches/bench_store.py               # 2,000,000 lines
    python benches/bench_store.py 500000 --customers 20000
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
import time
from pathlib import Path

from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.store.sqlite import SqliteStore

FIRST_DAY = 1_735_689_600  # 2025-01-01T00:00:00Z, in epoch seconds
YEAR_S = 365 * 86_400


def synthetic_lines(lines: int, customers: int, products: int, batch_rows: int, seed: int) -> list[PurchaseColumns]:
    rng = random.Random(seed)
    # Zipf-like popularity: product k is bought about 1/k as often as product 1.
    cumulative = list(itertools.accumulate(1 / rank for rank in range(1, products + 1)))
    product_ids = [str(p) for p in range(1, products + 1)]
    batches: list[PurchaseColumns] = []
    columns = PurchaseColumns([], [], [], [], [], [])
    order = 0
    while len(columns) + sum(map(len, batches)) < lines:
        order += 1
        household = str(rng.randrange(1, customers + 1))
        placed_at = FIRST_DAY + rng.randrange(YEAR_S)
        basket = set(rng.choices(product_ids, cum_weights=cumulative, k=rng.randint(3, 17)))
        for product_id in basket:
            columns.customer_ids.append(household)
            columns.order_ids.append(str(order))
            columns.product_ids.append(product_id)
            columns.quantities.append(rng.randint(1, 3))
            columns.unit_prices.append(round(rng.uniform(0.5, 12.0), 2))
            columns.purchased_at.append(placed_at)
        if len(columns) >= batch_rows:
            batches.append(columns)
            columns = PurchaseColumns([], [], [], [], [], [])
    if len(columns):
        batches.append(columns)
    return batches


class Stopwatch:
    """Wall-clock and CPU seconds of this process since the last `lap()`."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        elapsed = (wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        return elapsed


def rates(lines: int, wall: float, cpu: float) -> str:
    return f"{lines / wall:>9,.0f} lines/s ({lines / cpu:>9,.0f} per CPU-second)"


def import_lines(store: SqliteStore, batches: list[PurchaseColumns]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds spent adding rows, and spent committing."""
    watch = Stopwatch()
    with store.import_session() as session:
        for batch in batches:
            session.add_purchase_columns(batch)
        adding = watch.lap()
        session.commit()
    return adding, watch.lap()


def file_sizes(path: Path) -> str:
    wal = path.with_name(path.name + "-wal")
    wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
    return f"database {path.stat().st_size / 1e6:,.0f} MB + WAL {wal_mb:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lines", type=int, nargs="?", default=2_000_000, help="order lines to load")
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--batch-rows", type=int, default=100_000, help="lines per add_purchase_columns call")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temporary directory)")
    args = parser.parse_args()

    started = time.perf_counter()
    batches = synthetic_lines(args.lines, args.customers, args.products, args.batch_rows, args.seed)
    lines = sum(map(len, batches))
    print(f"generated {lines:,} lines in {time.perf_counter() - started:.1f} s (not timed below)")

    with tempfile.TemporaryDirectory(prefix="omnix-bench-", dir=args.dir) as directory:
        path = Path(directory) / "omnix.db"
        store = SqliteStore(path)
        try:
            adding, committing = import_lines(store, batches)
            wall, cpu = adding[0] + committing[0], adding[1] + committing[1]
            print(
                f"first import: {rates(lines, wall, cpu)}  {wall:.1f} s: add {adding[0]:.1f} s,"
                f" commit incl. index build {committing[0]:.1f} s; {file_sizes(path)}"
            )
            adding, committing = import_lines(store, batches)
            wall, cpu = adding[0] + committing[0], adding[1] + committing[1]
            print(
                f"re-import:    {rates(lines, wall, cpu)}  {wall:.1f} s; {file_sizes(path)},"
                f" {store.count_purchases():,} lines"
            )
            watch = Stopwatch()
            scanned = sum(len(batch) for batch in store.scan_purchases())
            wall, cpu = watch.lap()
            print(f"scan:         {rates(scanned, wall, cpu)}  {wall:.1f} s")
        finally:
            store.close()


if __name__ == "__main__":
    main()
