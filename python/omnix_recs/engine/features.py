"""A shopper's history as the ranking kernel sees it, computed at request time.

History is read per request (through the cache, engine/cached_reads.py) instead of being baked
into the model, so a purchase recorded through the API changes the very next answer: its
"days since last bought" drops to zero and its due-ness resets, with no retraining. The model
supplies item-side knowledge and, for the customers it was built from, the products of the
shoppers like them; `HistoryFeatures` lists what the kernel gets.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import repeat

import numpy as np

from omnix_recs import _core
from omnix_recs.domain.models import Interaction, InteractionKind, Purchase
from omnix_recs.domain.purchases import OrderLines

SECONDS_PER_DAY = 86_400.0
# Weight of a trip k trips before the latest one is HABIT_DECAY**k: 0.9 means the last ~10 trips
# carry most of the weight (TIFU-KNN's within-group decay for Instacart; not tuned here yet).
HABIT_DECAY = 0.9
# Cart additions this recent (and not removed since) count as the basket when none is given.
CART_WINDOW = timedelta(hours=3)
# A shopper's rhythm is the median of their latest gaps between trips: recent enough to follow a
# change of habit, and a median so that one long holiday does not move it.
RHYTHM_GAPS = 8

_NO_ITEMS = np.zeros(0, dtype=np.int32)
_NO_SCORES = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class HistoryFeatures:
    """Kernel inputs for one shopper (arrays aligned, one entry per distinct model item)."""

    items: np.ndarray  # int32 model item indices, ascending
    days_since_last: np.ndarray  # float32
    mean_gap_days: np.ndarray  # float32, NaN when bought in one trip only
    orders: np.ndarray  # float32, trips containing the item
    # float32 in [0, 1]: the time-decayed share of the shopper's trips that contained the item
    # (recent trips count more, which is what makes next-basket methods such as TIFU-KNN strong)
    habit: np.ndarray
    trips: int  # distinct trips (orders) before as_of, including products not in the model
    trips_last_90_days: int
    spend: float  # total spent before as_of
    last_trip_at: datetime | None
    # Days from as_of to the shopper's next trip expected from their rhythm (0: due now, or unknown):
    # a list asked for right after a trip is for the next one.
    days_to_next_trip: float = 0.0
    # The model's "shoppers like you" row for this shopper (engine/shoppers.rs); empty when the
    # model does not know them (`with_shoppers_like_you` fills it in).
    like_you_items: np.ndarray = field(default_factory=lambda: _NO_ITEMS)
    like_you_scores: np.ndarray = field(default_factory=lambda: _NO_SCORES)

    @classmethod
    def empty(cls) -> HistoryFeatures:
        f32 = np.zeros(0, dtype=np.float32)
        return cls(np.zeros(0, dtype=np.int32), f32, f32, f32, f32, 0, 0, 0.0, None)

    def with_shoppers_like_you(self, items: np.ndarray, scores: np.ndarray) -> HistoryFeatures:
        """The same history with the model's "shoppers like you" row (none for an empty history:
        a shopper who shares nothing, by consent or by having bought nothing, gets nothing)."""
        if not self.trips:
            return self
        return replace(self, like_you_items=items, like_you_scores=scores)


@dataclass(frozen=True, slots=True)
class PurchaseSummary:
    """Everything the kernel's history features hold about a shopper's purchases except their age.

    Computing it is most of a request's history work, and it only changes when the shopper buys
    something, so servers cache it (`engine.cached_reads`) and age it per request with `at`.
    `at(as_of)` gives the features as of that moment; they are exact whenever every purchase
    summarised is older than `as_of` (`covers(as_of)`), and otherwise the summary of the lines
    before `as_of` has to be made instead.
    """

    items: np.ndarray  # int32 model item indices, ascending
    last_bought_s: np.ndarray  # float64 epoch seconds of the last trip containing the item
    mean_gap_days: np.ndarray  # float32, NaN when bought in one trip only
    orders: np.ndarray  # float32, trips containing the item
    habit: np.ndarray  # float32 in [0, 1]
    trip_times_s: np.ndarray  # float64 epoch seconds of every trip, oldest first
    spend: float
    newest_line_s: float  # epoch seconds of the newest order line; -inf without purchases

    def covers(self, as_of: datetime) -> bool:
        return self.newest_line_s < as_of.timestamp()

    def at(self, as_of: datetime) -> HistoryFeatures:
        if not len(self.trip_times_s):
            return HistoryFeatures.empty()
        as_of_s = as_of.timestamp()
        recent = as_of_s - 90 * SECONDS_PER_DAY
        return HistoryFeatures(
            items=self.items,
            days_since_last=((as_of_s - self.last_bought_s) / SECONDS_PER_DAY).astype(np.float32),
            mean_gap_days=self.mean_gap_days,
            orders=self.orders,
            habit=self.habit,
            trips=len(self.trip_times_s),
            trips_last_90_days=int(np.count_nonzero(self.trip_times_s >= recent)),
            spend=self.spend,
            last_trip_at=datetime.fromtimestamp(self.trip_times_s[-1], tz=as_of.tzinfo),
            days_to_next_trip=days_to_next_trip(self.trip_times_s, as_of_s),
        )


def days_to_next_trip(trip_times_s: np.ndarray, as_of_s: float) -> float:
    """Days from `as_of_s` until the shopper's next trip is expected: their last trip plus their
    rhythm (median of the last `RHYTHM_GAPS` gaps); 0 when that moment has passed or the shopper
    has made only one trip."""
    past = trip_times_s[trip_times_s < as_of_s]
    if len(past) < 2:
        return 0.0
    # statistics' median of a few floats: the same value as numpy's, for a tenth of its cost.
    gaps: list[float] = np.diff(past[-(RHYTHM_GAPS + 1) :]).tolist()
    rhythm_days = statistics.median(gaps) / SECONDS_PER_DAY
    return max(0.0, rhythm_days - (as_of_s - float(past[-1])) / SECONDS_PER_DAY)


def summarize_purchases(
    purchases: Sequence[Purchase], index_of: dict[str, int], *, habit_decay: float = HABIT_DECAY
) -> PurchaseSummary:
    """The as-of-independent part of a shopper's features, from all of `purchases` (any order)."""
    return summarize_lines(OrderLines.from_purchases(purchases), index_of, habit_decay=habit_decay)


def summarize_lines(
    lines: OrderLines, index_of: dict[str, int], *, habit_decay: float = HABIT_DECAY
) -> PurchaseSummary:
    """`summarize_purchases` of the same lines given as columns (`Store.order_lines_of`, the read
    of a shopper-cache miss). A trip is an order, placed at its earliest line's time; what the
    summary holds per product is computed in the Rust core (rust_core/src/engine/history.rs).
    Python's share is two dictionary look-ups per line: its trip, and its model item."""
    n = len(lines)
    # Trips numbered in order-id order: trips placed at the same moment are ranked by number.
    trip_of = {order: k for k, order in enumerate(sorted(set(lines.order_ids)))}
    items, last_bought_s, mean_gap_days, orders, habit, trip_times_s, spend, newest_line_s = (
        _core.summarize_order_lines(
            trip=np.fromiter(map(trip_of.__getitem__, lines.order_ids), np.int64, n),
            trips=len(trip_of),
            item=np.fromiter(map(index_of.get, lines.product_ids, repeat(-1)), np.int64, n),  # -1: not in the model
            quantity=lines.quantities,
            unit_price=lines.unit_prices,
            purchased_at_s=lines.purchased_at_s,
            habit_decay=habit_decay,
        )
    )
    return PurchaseSummary(items, last_bought_s, mean_gap_days, orders, habit, trip_times_s, spend, newest_line_s)


def cart_from_interactions(interactions: Iterable[Interaction], as_of: datetime) -> list[str]:
    """Products added to the cart within CART_WINDOW before `as_of` and not removed since."""
    in_cart: dict[str, bool] = {}
    for event in sorted(interactions, key=lambda e: e.occurred_at):
        if not (as_of - CART_WINDOW <= event.occurred_at < as_of) or not event.product_id:
            continue
        if event.kind is InteractionKind.CART_ADD:
            in_cart[event.product_id] = True
        elif event.kind is InteractionKind.CART_REMOVE:
            in_cart[event.product_id] = False
    return [product for product, present in in_cart.items() if present]
