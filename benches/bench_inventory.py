"""Backtest of the inventory forecast on The Complete Journey's held-out weeks.

Reads the purchases of a store holding Complete Journey (only read), builds daily units per
product, and forecasts the next 7 and 14 days as of each Sunday from 1 October to 10 December
2017 (11 cut-offs, each using only the 91 days before it). Fuel and "miscellaneous" lines are
left out: fuel is sold by the thousandth of a gallon and would be nearly all the units. Prints
WAPE and bias of the forecast (`marketing.inventory.forecast`) against the moving average of the
last 28 days and the seasonal naive forecast (the last week repeated), over every product that
sold in the 28 days before the cut-off, and the share of actual sales inside the 10-90% interval.
Then the same per store (each store's own series of each product, summed over stores into one
WAPE): the store needs purchases imported with their store (`omnix import completejourney`
keeps it).

    python benches/bench_inventory.py --store sqlite:////tmp/cj/omnix.db
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np

from omnix_recs.marketing.inventory import (
    BacktestRow,
    BacktestSums,
    SalesWindow,
    backtest,
    backtest_rows,
    backtest_sums,
    forecast,
)
from omnix_recs.store import open_store

EXCLUDED_DEPARTMENTS = ("FUEL", "MISCELLANEOUS")
FIRST_CUTOFF = datetime(2017, 10, 1, tzinfo=UTC)
CUTOFFS = 11


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a store holding Complete Journey (only read)")
    args = parser.parse_args()
    store = open_store(args.store)
    started = time.perf_counter()
    try:
        excluded = [p.product_id for p in store.iter_products() if p.department in EXCLUDED_DEPARTMENTS]
        end = FIRST_CUTOFF.timestamp() + (CUTOFFS * 7 + 14) * 86_400
        days = int((end - datetime(2017, 1, 1, tzinfo=UTC).timestamp()) // 86_400)
        window = SalesWindow.from_columns(store.scan_purchases(), end, days=days, exclude=excluded)
    finally:
        store.close()
    demand = window.demand()
    first = days - (CUTOFFS * 7 + 14)
    cutoffs = [first + 7 * i for i in range(CUTOFFS)]
    print(f"{len(demand.product_ids):,} products, {days} days read in {time.perf_counter() - started:.1f} s")
    rows = backtest(demand.units, cutoffs)
    print_rows("whole shop", rows)
    for h in (7, 14):
        inside = total = 0.0
        for cut in cutoffs:
            history = demand.units[:, cut - 91 : cut]
            selling = history[:, -28:].sum(axis=1) > 0
            f = forecast(history[selling], h)
            actual = demand.units[selling, cut : cut + h].sum(axis=1)
            inside += float(np.count_nonzero((actual >= f.low) & (actual <= f.high)))
            total += len(actual)
        print(f"{h} days: {inside / total:.3f} of product-horizons inside the 10-90% interval")

    per_store(window, cutoffs)


def print_rows(title: str, rows: list[BacktestRow]) -> None:
    print(f"\n{title}\n| horizon | method | WAPE | bias |\n|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r.horizon_days, r.wape)):
        print(f"| {row.horizon_days} days | {row.method} | {row.wape:.3f} | {row.bias:+.3f} |")


def per_store(window: SalesWindow, cutoffs: list[int]) -> None:
    stores = [s for s in window.store_ids if s]
    if not stores:
        print("\nno purchase has a store: import again to keep them for the per-store backtest")
        return
    started = time.perf_counter()
    sums: BacktestSums = {}
    for store_id in stores:
        backtest_sums(window.demand(store_id).units, cutoffs, sums=sums)
    units = np.bincount(window.store, weights=window.units, minlength=len(window.store_ids))
    top = sorted(((units[i], s) for i, s in enumerate(window.store_ids) if s), reverse=True)[:5]
    share = sum(u for u, _ in top) / units.sum()
    print(
        f"\n{len(stores)} stores ({time.perf_counter() - started:.1f} s); the 5 biggest sell {share:.0%} of the units"
    )
    print_rows("per store (every store's product series)", backtest_rows(sums))


if __name__ == "__main__":
    main()
