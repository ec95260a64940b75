"""What the reference baselines cost `omnix train`'s validation, before and after vectorising.

Training scores personal top frequency and TIFU-KNN on its validation shoppers
(`tuning.add_baselines`): they learn from up to `BASELINE_SHOPPERS` shoppers (the judged ones
and a seeded sample of the others) and list `VALIDATION_K` items for each of up to
`TUNING_SHOPPERS` judged ones, REPLENISH and DISCOVER. This bench sets up the same split on a
store's training snapshot (read only, never written) and times, per baseline, fit + lists:

- old: the shopper-by-shopper implementation (`benches/reference/baselines.py`);
- new: the package's (`engine/baselines.py`, `tuning.baseline_lists`).

Before timing anything it checks that both give the same lists, item for item. Catalog masks
are all-allowing (the validation's come from the engine's filters; they change no cost).

    omnix generate --out gen --customers 20000 --seed 7
    OMNIX_STORE=sqlite:///$PWD/gen/omnix.db omnix import instacart gen   # writes gen/omnix.db.snapshot too
    python benches/bench_baselines.py --db gen/omnix.db
    python benches/bench_baselines.py --db gen/omnix.db --all --repeats 1   # evaluate's four baselines
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from reference import baselines as reference

from omnix_recs.engine import baselines, tuning
from omnix_recs.engine.holdout import Trips, hold_out
from omnix_recs.engine.matrix import lines_from_snapshot
from omnix_recs.store import snapshot as training_snapshot

Pair = tuple[baselines.Baseline, reference.Baseline]

TRAINING: dict[str, Callable[[], Pair]] = {
    "personal top frequency": lambda: (baselines.PersonalFrequency(), reference.PersonalFrequency()),
    "TIFU-KNN": lambda: (baselines.TifuKNN(), reference.TifuKNN()),
}
EVALUATE_ONLY: dict[str, Callable[[], Pair]] = {
    "global popularity": lambda: (baselines.GlobalPopularity(), reference.GlobalPopularity()),
    "item-kNN (cosine)": lambda: (baselines.ItemKNN(), reference.ItemKNN()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="SQLite store whose DB.snapshot is read")
    parser.add_argument("--judged", type=int, default=tuning.TUNING_SHOPPERS)
    parser.add_argument("--population", type=int, default=tuning.BASELINE_SHOPPERS)
    parser.add_argument("--repeats", type=int, default=3, help="timings per method (the best is kept)")
    parser.add_argument("--all", action="store_true", help="also evaluate's global popularity and item-kNN")
    args = parser.parse_args()

    started = time.perf_counter()
    snapshot = training_snapshot.load(Path(f"{args.db}.snapshot"))
    if snapshot is None:
        raise SystemExit(f"no training snapshot next to {args.db}")
    lines = lines_from_snapshot(snapshot)
    trips = Trips.of(lines)
    eligible = trips.eligible()
    random.Random(0).shuffle(eligible)
    judged = sorted(eligible[: args.judged])
    split = hold_out(trips, judged)
    learn_from = tuning.population_sample(range(lines.n_customers), judged, args.population, seed=0)
    histories = trips.histories(split.targets, learn_from)
    row_of = {c: row for row, c in enumerate(learn_from)}
    rows = [row_of[c] for c in split.customers.tolist()]
    shown = [np.ones(lines.n_items, dtype=bool)] * len(rows)
    print(
        f"{lines.n_customers:,} shoppers, {lines.n_items:,} items, {len(lines):,} lines; baselines learn from "
        f"{len(histories):,} shoppers ({sum(map(len, histories)):,} baskets), list {tuning.VALIDATION_K} items "
        f"for {len(rows):,}; set up in {time.perf_counter() - started:.1f} s"
    )

    methods = {**TRAINING, **(EVALUATE_ONLY if args.all else {})}
    print(f"{'baseline':<24} {'old s':>8} {'new s':>8} {'old/new':>8}")
    totals = {"old": 0.0, "new": 0.0}
    for name, make in methods.items():
        best = {"old": float("inf"), "new": float("inf")}
        for repeat in range(args.repeats):
            new, old = make()
            t0 = time.perf_counter()
            new_lists = tuning.baseline_lists(new, histories, rows, shown, lines.item_ids, tuning.VALIDATION_K)
            t1 = time.perf_counter()
            old_lists = reference.baseline_lists(old, histories, rows, shown, lines.item_ids, tuning.VALIDATION_K)
            t2 = time.perf_counter()
            if repeat == 0 and new_lists != old_lists:
                raise SystemExit(f"{name}: the lists differ from the reference's")
            best["new"], best["old"] = min(best["new"], t1 - t0), min(best["old"], t2 - t1)
        totals["old"] += best["old"]
        totals["new"] += best["new"]
        print(f"{name:<24} {best['old']:>8.2f} {best['new']:>8.2f} {best['old'] / best['new']:>7.1f}x")
    print(f"{'total':<24} {totals['old']:>8.2f} {totals['new']:>8.2f} {totals['old'] / totals['new']:>7.1f}x")
    print("same lists: yes; load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
