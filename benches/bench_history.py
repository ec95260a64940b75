"""What a shopper-cache miss costs: reading a shopper's whole history and summarising it.

A recommendation request whose shopper snapshot is not cached (the shopper's first request, or
their first since buying something) reads their purchase history and summarises it
(`engine.cached_reads.ShopperReads._snapshot`). Two paths, on the same SQLite file:

- old: `store.purchases_of` (a `Purchase` with a `datetime` per line), then the per-line Python
  summary serving used before (`benches/reference/history.py`);
- new: `store.order_lines_of` (columns), then `features.summarize_lines` (Rust core).

A synthetic supermarket (`omnix generate`'s generator) is imported into a temporary SQLite
file; the model is taken to know every catalog product. Before timing, every measured
shopper's two summaries are checked to agree. Each shopper is then read `--repeats` times, the
two paths interleaved so that a busy machine slows both alike; the table gives p50/p99 over all
those calls, per stage, in microseconds, for typical shoppers (50–200 order lines) and the
heaviest ones, and old/new ratios. Automatic garbage collection is off while timing (collected
between repeats): the old path's objects would otherwise set off collections inside whichever
call came next. The figures therefore leave out collection pauses, which the old path, with
about ten objects per line, causes far more of than the new one.

    python benches/bench_history.py                       # 2,000 households
    python benches/bench_history.py --customers 5000 --repeats 20
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from reference.history import reference_summary

from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.features import PurchaseSummary, summarize_lines
from omnix_recs.store.sqlite import SqliteStore

TYPICAL_LINES = (50, 200)
STAGES = ("store read", "summary", "total")


def check_same_summary(new: PurchaseSummary, old: PurchaseSummary, customer_id: str) -> None:
    for name in ("items", "last_bought_s", "mean_gap_days", "orders", "habit", "trip_times_s"):
        np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=1e-6, err_msg=f"{customer_id}: {name}")
    assert abs(new.spend - old.spend) <= 1e-9 * abs(old.spend), customer_id
    assert new.newest_line_s == old.newest_line_s, customer_id


def old_miss(store: SqliteStore, customer_id: str, index_of: dict[str, int]) -> tuple[float, float]:
    """(store read, summary) seconds of the path serving took before."""
    started = time.perf_counter()
    purchases = store.purchases_of(customer_id)
    read = time.perf_counter()
    reference_summary(purchases, index_of)
    return read - started, time.perf_counter() - read


def new_miss(store: SqliteStore, customer_id: str, index_of: dict[str, int]) -> tuple[float, float]:
    """(store read, summary) seconds of `ShopperReads._snapshot`'s path."""
    started = time.perf_counter()
    lines = store.order_lines_of(customer_id)
    read = time.perf_counter()
    summarize_lines(lines, index_of)
    return read - started, time.perf_counter() - read


PATHS = {"old": old_miss, "new": new_miss}


def measure(store: SqliteStore, customers: list[str], index_of: dict[str, int], repeats: int) -> dict[str, np.ndarray]:
    """Per path, an array [calls, 2] of (store read, summary) seconds."""
    samples: dict[str, list[tuple[float, float]]] = {path: [] for path in PATHS}
    gc.disable()  # collected between repeats instead: see the module docstring
    try:
        for repeat in range(repeats):
            gc.collect()
            for customer_id in customers:
                # Alternate which path goes first, so neither always runs right after the other.
                for path in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
                    samples[path].append(PATHS[path](store, customer_id, index_of))
    finally:
        gc.enable()
    return {path: np.array(times) for path, times in samples.items()}


def percentiles_us(times: np.ndarray) -> dict[str, tuple[float, float]]:
    stages = {"store read": times[:, 0], "summary": times[:, 1], "total": times.sum(axis=1)}
    return {stage: (np.percentile(t, 50) * 1e6, np.percentile(t, 99) * 1e6) for stage, t in stages.items()}


def report(group: str, lines: list[int], times: dict[str, np.ndarray]) -> None:
    old, new = percentiles_us(times["old"]), percentiles_us(times["new"])
    print(f"\n{group}: {len(lines)} shoppers, order lines p50 {int(np.median(lines)):,}, max {max(lines):,}")
    print(f"  {'path':<12}" + "".join(f"{stage + ' p50':>16}{'p99':>10}" for stage in STAGES))
    for name, row in (("old", old), ("new", new)):
        print(f"  {name:<12}" + "".join(f"{row[s][0]:>16,.0f}{row[s][1]:>10,.0f}" for s in STAGES))
    print(
        f"  {'old / new':<12}"
        + "".join(f"{old[s][0] / new[s][0]:>15.1f}x{old[s][1] / new[s][1]:>9.1f}x" for s in STAGES)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--products", type=int, default=3_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--typical", type=int, default=300, help="typical shoppers sampled (default 300)")
    parser.add_argument("--heaviest", type=int, default=20, help="heaviest shoppers measured (default 20)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="omnix-bench-history-") as tmp:
        data = Path(tmp) / "instacart"
        generated = generate_instacart(
            data, customers=args.customers, products=args.products, days=args.days, seed=args.seed
        )
        store = SqliteStore(Path(tmp) / "omnix.db")
        try:
            import_instacart(store, data, as_of=date.fromisoformat(generated["end_date"]))
            index_of = {product.product_id: k for k, product in enumerate(store.iter_products())}
            lines_of: dict[str, int] = {}
            for batch in store.scan_purchases():
                for customer_id in batch.customer_ids:
                    lines_of[customer_id] = lines_of.get(customer_id, 0) + 1
            print(
                f"history read + summary of a shopper-cache miss, SQLite: {len(lines_of):,} households, "
                f"{store.count_purchases():,} order lines, model of {len(index_of):,} products; "
                f"{args.repeats} reads per shopper, each path"
            )

            low, high = TYPICAL_LINES
            typical = sorted(c for c, n in lines_of.items() if low <= n <= high)
            typical = random.Random(args.seed).sample(typical, min(args.typical, len(typical)))
            heaviest = sorted(lines_of, key=lambda c: (-lines_of[c], c))[: args.heaviest]
            for customer_id in typical + heaviest:  # checked once, which also warms the page cache
                check_same_summary(
                    summarize_lines(store.order_lines_of(customer_id), index_of),
                    reference_summary(store.purchases_of(customer_id), index_of),
                    customer_id,
                )
            for group, customers in ((f"typical ({low}-{high} lines)", typical), ("heaviest", heaviest)):
                report(group, [lines_of[c] for c in customers], measure(store, customers, index_of, args.repeats))
        finally:
            store.close()


if __name__ == "__main__":
    main()
