"""Does the consumption-prediction signal improve the inventory forecast? A backtest on The
Complete Journey (the answer decided what `InventoryPlanner` serves: it does not, see README).

At each of four cut-offs (1, 15 and 29 October and 12 November 2017), the insights forecast
(`domain.predictions.forecast_consumption`, the per-customer next-purchase predictions, with the
population cycles built from the purchases before the cut-off only) is run for every household.
Each predicted product purchase in the horizon counts `confidence x the household's median
quantity`, once plus once per further cycle that fits: summed over households, that is the
"customers predicted due" demand of each product. It is compared with the served forecast
(recent demand, `marketing.inventory.forecast`) and blends of the two means, by WAPE and bias,
on the same products and cut-offs as benches/bench_inventory.py. About 10 minutes on 2 cores.

    python benches/bench_inventory_consumption.py --store sqlite:////tmp/cj/omnix.db
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np

from omnix_recs.domain.consumption import PurchaseTable, customer_cycles, enrich_history, population_cycles, to_day
from omnix_recs.domain.predictions import forecast_consumption
from omnix_recs.marketing.inventory import SalesWindow, _quantile, backtest_rows, backtest_sums, forecast
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

EXCLUDED_DEPARTMENTS = ("FUEL", "MISCELLANEOUS")
FIRST_CUTOFF = datetime(2017, 10, 1, tzinfo=UTC)
CUTOFF_WEEKS = (0, 2, 4, 6)
HORIZONS = (7, 14)
WEIGHTS = (0.25, 0.5, 0.75)


def predicted_due(
    store: Store, customers: list[str], table: PurchaseTable, as_of: datetime, row_of: dict[str, int]
) -> dict[int, np.ndarray]:
    """Expected units per product row over each horizon, from the households predicted due."""
    population = population_cycles(table.before(to_day(as_of)))
    expected = {h: np.zeros(len(row_of)) for h in HORIZONS}
    for customer_id in customers:
        purchases = store.purchases_of(customer_id, before=as_of)
        if not purchases:
            continue
        history = enrich_history(customer_id, purchases, {}, as_of=as_of)
        predicted = forecast_consumption(history, customer_cycles(history, population), population)
        quantities: dict[str, list[int]] = defaultdict(list)
        for p in purchases:
            quantities[p.product_id].append(p.quantity)
        for product in predicted.products:
            row = row_of.get(product.product_id)
            if row is None or product.cycle_days <= 0:
                continue
            units = product.confidence * float(np.median(quantities[product.product_id]))
            start = max(product.next_purchase_at, as_of)
            for h in HORIZONS:
                left_days = (as_of + timedelta(days=h) - start).total_seconds() / 86_400
                if left_days > 0:
                    expected[h][row] += units * (1 + math.floor(left_days / product.cycle_days))
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a store holding Complete Journey (only read)")
    args = parser.parse_args()
    store = open_store(args.store)
    try:
        excluded = [p.product_id for p in store.iter_products() if p.department in EXCLUDED_DEPARTMENTS]
        start_s = datetime(2017, 1, 1, tzinfo=UTC).timestamp()
        end = FIRST_CUTOFF.timestamp() + (11 * 7 + 14) * 86_400
        days = int((end - start_s) // 86_400)
        columns = list(store.scan_purchases())
        demand = SalesWindow.from_columns(columns, end, days=days, exclude=excluded).demand()
        table = PurchaseTable.from_columns(columns)
        customers = sorted({c for batch in columns for c in batch.customer_ids})
        row_of = {p: i for i, p in enumerate(demand.product_ids)}
        first = days - (11 * 7 + 14)
        cutoffs = [first + 7 * w for w in CUTOFF_WEEKS]
        signal: dict[tuple[int, int], np.ndarray] = {}
        for cut in cutoffs:
            started = time.perf_counter()
            as_of = datetime.fromtimestamp(start_s + cut * 86_400, UTC)
            for h, units in predicted_due(store, customers, table, as_of, row_of).items():
                signal[(cut, h)] = units
            print(f"{as_of:%Y-%m-%d}: {len(customers):,} households predicted in {time.perf_counter() - started:.0f} s")
    finally:
        store.close()

    def extra(cut: int, h: int, selling: np.ndarray, history: np.ndarray) -> dict[str, np.ndarray]:
        due = signal[(cut, h)][np.flatnonzero(selling)]
        recent = forecast(history, h).mean_daily * h
        methods = {"predicted due only": _quantile(0.5, due)}
        for w in WEIGHTS:
            methods[f"blend, {w:.0%} predicted due"] = _quantile(0.5, (1 - w) * recent + w * due)
        return methods

    rows = backtest_rows(backtest_sums(demand.units, cutoffs, HORIZONS, extra=extra))
    print("\n| horizon | method | WAPE | bias |\n|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r.horizon_days, r.wape)):
        print(f"| {row.horizon_days} days | {row.method} | {row.wape:.3f} | {row.bias:+.3f} |")


if __name__ == "__main__":
    main()
