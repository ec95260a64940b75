"""Line-by-line Python reference of the history summary (`rust_core/src/engine/history.rs`).

The summary as serving computed it before the Rust core: a `Purchase` per line, a loop in
Python, numpy for the per-item reductions. The tests check `features.summarize_lines` against
it, and `benches/bench_history.py` times the old shopper-cache miss path with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omnix_recs.domain.models import Purchase
from omnix_recs.engine.features import HABIT_DECAY, SECONDS_PER_DAY, PurchaseSummary


def reference_summary(
    purchases: Sequence[Purchase], index_of: dict[str, int], *, habit_decay: float = HABIT_DECAY
) -> PurchaseSummary:
    """`features.summarize_purchases`, one line at a time. Spend is added in the order given and
    the trips' total weight by numpy's pairwise sum, so those two may differ from the core's in
    the last bits."""
    trip_time: dict[str, float] = {}
    lines: list[tuple[str, int]] = []
    spend = 0.0
    newest = -np.inf
    for p in purchases:
        at = p.purchased_at.timestamp()
        newest = max(newest, at)
        # A trip is an order; its time is the earliest line's (lines of one order share it).
        trip_time[p.order_id] = min(at, trip_time.get(p.order_id, at))
        spend += p.quantity * p.unit_price
        item = index_of.get(p.product_id)
        if item is not None:
            lines.append((p.order_id, item))

    trips = sorted(trip_time, key=lambda o: (trip_time[o], o))
    n_trips = len(trips)
    trips_ago = {order: n_trips - 1 - k for k, order in enumerate(trips)}
    decay = habit_decay ** np.arange(n_trips, dtype=np.float64)  # by trips-ago
    total_weight = float(decay.sum())
    trip_times = np.array([trip_time[o] for o in trips], dtype=np.float64)  # oldest first

    # One (item, trip) pair per order line, deduplicated: a product twice in one order is one trip.
    pairs = np.array(sorted({(item, trips_ago[order]) for order, item in lines}), dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        f32 = np.zeros(0, dtype=np.float32)
        return PurchaseSummary(
            np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float64), f32, f32, f32, trip_times, spend, float(newest)
        )
    items, first = np.unique(pairs[:, 0], return_index=True)
    counts = np.diff(np.append(first, len(pairs)))
    pair_times = trip_times[n_trips - 1 - pairs[:, 1]]
    last = np.maximum.reduceat(pair_times, first)
    earliest = np.minimum.reduceat(pair_times, first)
    habit = np.add.reduceat(decay[pairs[:, 1]], first) / total_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gap = np.where(counts > 1, (last - earliest) / SECONDS_PER_DAY / (counts - 1), np.nan)
    return PurchaseSummary(
        items=items.astype(np.int32),
        last_bought_s=last,
        mean_gap_days=mean_gap.astype(np.float32),
        orders=counts.astype(np.float32),
        habit=habit.astype(np.float32),
        trip_times_s=trip_times,
        spend=spend,
        newest_line_s=float(newest),
    )
