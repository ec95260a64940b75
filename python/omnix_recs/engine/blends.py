"""Blends: what each kind of list weighs, as weights over the ranking kernel's signals.

A strategy is a blend: signal weights (`_core.RANK_SIGNALS`) plus list rules (leave out what
the shopper bought, cap products per aisle, neighbours taken per history product). They are
data, not code, so `omnix evaluate` can tune them on the shop at hand and report the result
beside these defaults.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np

from omnix_recs._core import RANK_SIGNALS


class Strategy(enum.StrEnum):
    BALANCED = "balanced"
    REPLENISH = "replenish"
    DISCOVER = "discover"


@dataclass(frozen=True)
class Blend:
    """Signal weights and list rules for one kind of list."""

    weights: dict[str, float]
    exclude_history: bool = False
    per_category_cap: int = 0  # 0 = no cap
    neighbours_per_item: int = 20

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(RANK_SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {RANK_SIGNALS}")

    @functools.cached_property
    def vector(self) -> np.ndarray:
        """The weights in the kernel's signal order (read-only; built once per blend)."""
        vector = np.array([self.weights.get(name, 0.0) for name in RANK_SIGNALS], dtype=np.float32)
        vector.flags.writeable = False
        return vector


# REPLENISH and DISCOVER as `omnix evaluate` tuned them on a generated shop's validation split;
# BALANCED sits between them by hand: mostly replenishment, with some taste.
DEFAULT_BLENDS: dict[str, Blend] = {
    Strategy.REPLENISH: Blend(
        {
            "replenishment": 4.0,
            "habit": 1.0,
            "repurchase": 0.4,
            "co_purchase": 0.3,
            "basket_complement": 0.2,
            "popularity": 0.05,
            "category_affinity": 0.05,
        },
    ),
    # Content similarity and popularity only fill the list where nothing else knows a product
    # (a catalogue nobody has bought from yet); at 0.02 they do not reorder the rest.
    Strategy.DISCOVER: Blend(
        {
            "taste": 1.0,
            "co_purchase": 0.3,
            "basket_complement": 0.3,
            "seasonal": 0.4,
            "category_affinity": 0.4,
            "similar": 0.02,
            "popularity": 0.02,
        },
        exclude_history=True,
        per_category_cap=3,
    ),
    Strategy.BALANCED: Blend(
        {
            "replenishment": 3.0,
            "habit": 1.0,
            "repurchase": 0.3,
            "co_purchase": 0.2,
            "basket_complement": 0.3,
            "similar": 0.05,
            "popularity": 0.05,
            "trending": 0.05,
            "seasonal": 0.1,
            "category_affinity": 0.1,
            "brand_affinity": 0.05,
            "taste": 0.2,
        },
        per_category_cap=4,
    ),
}
# GetSimilarProducts and GetFrequentlyBoughtTogether: lists around the products asked about.
SIMILAR_BLEND = Blend({"similar": 1.0, "co_purchase": 0.6, "popularity": 0.05})
COMPLEMENT_BLEND = Blend({"basket_complement": 1.0, "co_purchase": 0.4, "popularity": 0.05}, per_category_cap=3)
