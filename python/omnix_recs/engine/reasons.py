"""Reasons: the kernel's reason codes turned into sentences a shopper understands.

The kernel returns, per listed product, the signals that contributed most and the product
that led to it (a neighbour's anchor). Words are written here, in Python, so that wording can
change without touching the kernel; the figures in them (days, trips, weeks) come from the
same history features the kernel ranked with, so a reason never disagrees with its score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from omnix_recs._core import RANK_SIGNALS
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.engine.features import HistoryFeatures
from omnix_recs.engine.filters import CatalogIndex


class ReasonWriter:
    """The reasons of one list: `writer(item, code, anchor)` -> a sentence."""

    def __init__(
        self, model: LoadedModel, index: CatalogIndex, history: HistoryFeatures, as_of: datetime, items: Sequence[int]
    ) -> None:
        self.model, self.index, self.history, self.as_of = model, index, history, as_of
        # Where each listed item is in the history, found at once (one search, not one per reason).
        found = np.searchsorted(history.items, items) if len(history.items) else np.zeros(0, dtype=np.int64)
        self._position = {
            item: pos
            for item, pos in zip(items, found.tolist())
            if pos < len(history.items) and history.items[pos] == item
        }

    def __call__(self, item: int, code: int, anchor: int) -> str:
        signal = RANK_SIGNALS[code]
        index, h = self.index, self.history
        pos = self._position.get(item)
        # Due now or due by the next trip: either way the shopper's own rhythm is the reason.
        if signal in ("replenishment", "due_by_next_trip") and pos is not None:
            since = _days(h.days_since_last[pos])
            gap = h.mean_gap_days[pos]
            if math.isfinite(gap):
                return f"you usually buy this every {_days(gap)}; last bought {since} ago"
            cycle = self.model.population_cycle_days[item]
            if math.isfinite(cycle):
                return f"last bought {since} ago; shoppers usually buy it again every {_days(cycle)}"
            return f"last bought {since} ago"
        if signal == "habit" and pos is not None:
            return f"in {int(h.orders[pos])} of your {h.trips} trips"
        if signal == "repurchase":
            return "shoppers who buy this tend to buy it again"
        if signal == "co_purchase" and anchor >= 0:
            return f"shoppers who buy {index.names[anchor]} also buy this"
        if signal == "basket_complement" and anchor >= 0:
            return f"often bought with {index.names[anchor]}"
        if signal == "similar" and anchor >= 0:
            return f"similar to {index.names[anchor]}"
        if signal == "popularity":
            return f"popular in {index.department_of(item).title() or 'the shop'}"
        if signal == "trending":
            return f"trending in {index.department_of(item).title() or 'the shop'}"
        if signal == "seasonal":
            return f"popular in week {self.as_of.isocalendar().week}"
        if signal == "category_affinity":
            return f"you often shop in {index.aisle_of(item) or 'this aisle'}"
        if signal == "brand_affinity":
            return f"you like {index.brand_of(item) or 'this brand'}"
        if signal == "taste":
            return "popular with shoppers who buy what you buy"
        if signal == "shoppers_like_you":
            return "bought by shoppers whose baskets look like yours"
        return signal.replace("_", " ")


def _days(value: float) -> str:
    days = max(0, round(float(value)))
    return "1 day" if days == 1 else f"{days} days"
