"""Who a campaign selects: pure rules over one customer's trips, cart events and purchases.

The rules read columns (`OrderLines`, epoch seconds), not per-line objects, because a campaign
looks at every consenting customer; the campaign batch (`campaigns.py`) does the reads.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from omnix_recs.domain.models import Interaction, InteractionKind

SECONDS_PER_DAY = 86_400.0
# Lines this close to the previous one belong to the same trip.
SAME_TRIP_S = 12 * 3600.0
# A usual gap needs this many trips (two gaps) to mean anything.
MIN_RHYTHM_TRIPS = 3
# The usual gap is the median of the customer's latest gaps: habits drift.
RHYTHM_GAPS = 10
# Never lapsed before a week away (a daily shopper missing three days is on holiday), and past
# a year away a "win-back" is a cold acquisition.
MIN_LAPSED_DAYS = 7.0
MAX_LAPSED_DAYS = 365.0
# Cart events older than this are not an abandoned cart any more.
CART_LOOKBACK = timedelta(days=7)
# Loyalty: trips in the last 90 days that make a VIP (about weekly, as the recommender's VIP).
VIP_TRIPS_90_DAYS = 12
ACTIVE_DAYS = 90.0


@dataclass(frozen=True, slots=True)
class Rhythm:
    """A customer's shopping rhythm as of a moment."""

    trips: int
    last_trip_s: float  # NaN without trips
    usual_gap_days: float  # NaN below MIN_RHYTHM_TRIPS
    trips_last_90_days: int

    def days_away(self, as_of_s: float) -> float:
        return (as_of_s - self.last_trip_s) / SECONDS_PER_DAY if self.trips else math.inf


def trip_starts(purchased_at_s: np.ndarray) -> np.ndarray:
    """Start times of the trips (lines within `SAME_TRIP_S` of the previous one are one trip)."""
    times = np.unique(np.asarray(purchased_at_s, dtype=np.float64))
    if len(times) == 0:
        return times
    new_trip = np.empty(len(times), dtype=bool)
    new_trip[0] = True
    new_trip[1:] = np.diff(times) > SAME_TRIP_S
    return times[new_trip]


def rhythm(purchased_at_s: np.ndarray, as_of_s: float) -> Rhythm:
    """The rhythm from the lines before `as_of_s` (later ones are ignored)."""
    times = np.asarray(purchased_at_s, dtype=np.float64)
    trips = trip_starts(times[times < as_of_s])
    if len(trips) == 0:
        return Rhythm(0, math.nan, math.nan, 0)
    gaps = np.diff(trips)[-RHYTHM_GAPS:] / SECONDS_PER_DAY
    usual = float(np.median(gaps)) if len(trips) >= MIN_RHYTHM_TRIPS else math.nan
    recent = int(np.count_nonzero(trips >= as_of_s - ACTIVE_DAYS * SECONDS_PER_DAY))
    return Rhythm(len(trips), float(trips[-1]), usual, recent)


def lapsed(r: Rhythm, as_of_s: float, after_cycles: float) -> bool:
    """Overdue by the customer's own rhythm: away for `after_cycles` usual gaps (and at least a
    week, at most a year). A weekly shopper gone three weeks is lapsed; a monthly one is not."""
    if r.trips < MIN_RHYTHM_TRIPS or not math.isfinite(r.usual_gap_days):
        return False
    away = r.days_away(as_of_s)
    return max(MIN_LAPSED_DAYS, after_cycles * r.usual_gap_days) <= away <= MAX_LAPSED_DAYS


def overdue_ratio(r: Rhythm, as_of_s: float) -> float:
    """Days away over the usual gap (NaN without a rhythm): how lapsed, for ranking."""
    if r.trips < MIN_RHYTHM_TRIPS or not math.isfinite(r.usual_gap_days):
        return math.nan
    return r.days_away(as_of_s) / max(r.usual_gap_days, 0.5)


def no_trip_within(r: Rhythm, as_of_s: float, days: float) -> bool:
    """The naive lapse rule the win-back rule is measured against: no trip in `days` days."""
    return r.trips > 0 and r.days_away(as_of_s) >= days


def active(r: Rhythm) -> bool:
    return r.trips_last_90_days > 0


def vip(r: Rhythm) -> bool:
    return r.trips_last_90_days >= VIP_TRIPS_90_DAYS


@dataclass(frozen=True, slots=True)
class CartItem:
    product_id: str
    added_at: datetime


def abandoned_cart(
    events: Iterable[Interaction],
    bought_product_ids: Iterable[str],
    bought_at_s: np.ndarray,
    as_of: datetime,
    delay: timedelta,
) -> list[CartItem]:
    """Products in the cart at `as_of`, last added at least `delay` earlier (and within
    `CART_LOOKBACK`), and not bought since that addition; the most recently added first."""
    in_cart: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.occurred_at):
        if not (as_of - CART_LOOKBACK <= event.occurred_at < as_of) or not event.product_id:
            continue
        if event.kind is InteractionKind.CART_ADD:
            in_cart[event.product_id] = event.occurred_at
        elif event.kind is InteractionKind.CART_REMOVE:
            in_cart.pop(event.product_id, None)
    if not in_cart:
        return []
    last_bought: dict[str, float] = {}
    for product_id, at in zip(bought_product_ids, np.asarray(bought_at_s, dtype=np.float64).tolist()):
        if at < as_of.timestamp() and at > last_bought.get(product_id, -math.inf):
            last_bought[product_id] = at
    left = [
        CartItem(product_id, added_at)
        for product_id, added_at in in_cart.items()
        if added_at <= as_of - delay and last_bought.get(product_id, -math.inf) < added_at.timestamp()
    ]
    return sorted(left, key=lambda item: (item.added_at, item.product_id), reverse=True)


# Coupon targeting looks this far back for the customer's own rate of buying the products.
AFFINITY_LOOKBACK_DAYS = 180.0


def product_affinity(
    product_ids: Sequence[str],
    purchased_at_s: np.ndarray,
    targets: Collection[str],
    as_of_s: float,
    window_days: float,
) -> float:
    """How many of `targets` the customer is expected to buy within `window_days` of `as_of_s`,
    from their own rate of buying each one (trips with it over the look-back) and whether they
    are still on that rhythm: each product counts at most once, a product not bought for over
    twice its own gap counts half. Ranks customers for a promotion of those products."""
    times = np.asarray(purchased_at_s, dtype=np.float64)
    start = as_of_s - AFFINITY_LOOKBACK_DAYS * SECONDS_PER_DAY
    in_window = (times < as_of_s) & (times >= start)
    trips_of: dict[str, set[int]] = {}
    last_of: dict[str, float] = {}
    for product_id, at in zip(product_ids, times.tolist()):
        if product_id in targets and start <= at < as_of_s:
            trips_of.setdefault(product_id, set()).add(int(at // SECONDS_PER_DAY))
            last_of[product_id] = max(last_of.get(product_id, -math.inf), at)
    if not trips_of:
        return 0.0
    first = float(times[in_window].min())
    span_days = max(28.0, (as_of_s - first) / SECONDS_PER_DAY)
    expected = 0.0
    for product_id, days in trips_of.items():
        gap_days = span_days / len(days)
        away = (as_of_s - last_of[product_id]) / SECONDS_PER_DAY
        expected += min(1.0, window_days / gap_days) * (0.5 if away > 2 * gap_days else 1.0)
    return expected
