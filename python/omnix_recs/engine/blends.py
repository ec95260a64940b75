"""Blends: what each kind of list weighs, as weights over the ranking kernel's signals.

A strategy is a blend: signal weights (`_core.RANK_SIGNALS`) plus list rules (leave out what
the shopper bought, cap products per aisle, neighbours taken per history product), and
optionally trees that re-order the head of its list (engine/reranking.py). They are
data, not code: `omnix train` tunes them on the shop at hand and ships them inside the model
(as JSON, `Blend.to_json`), and `omnix evaluate` reports them beside these defaults, which
serve models that carry none.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnix_recs._core import RANK_FEATURES, RANK_SIGNALS, CoreError, Reranker


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
    # How much a product still counts once the shopper has replaced it by another of its aisle
    # (a brand switch: the kernel's `replaced_weight`), in [0, 1]; 1 = like any other.
    replaced_weight: float = 1.0
    # How much popularity costs, in [0, 1] (the kernel's `popularity_discount`): each score is
    # multiplied by 1 - discount x the product's popularity; 0 = none. Less popularity bias for
    # a little accuracy (README: its curve); operators set it with OMNIX_POPULARITY_DISCOUNT.
    popularity_discount: float = 0.0
    # Trees that order the blend's head instead of its score (engine/reranking.py), learned on
    # the shop's held-out baskets; None = the blend's own order.
    reranker: Reranker | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(RANK_SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {RANK_SIGNALS}")
        for name in ("replaced_weight", "popularity_discount"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"blend {name} must be in [0, 1], got {getattr(self, name)}")

    def to_json(self, *, trees: bool = True) -> dict[str, Any]:
        """The blend as the model's manifest stores it (signals in kernel order, unused left out).
        `trees=False` gives only the number of re-ranking trees (`reranker_trees`): a model
        record's notes describe the version, the artifact holds the trees."""
        return {
            "weights": {name: self.weights[name] for name in RANK_SIGNALS if self.weights.get(name, 0.0) != 0.0},
            "exclude_history": self.exclude_history,
            "per_category_cap": self.per_category_cap,
            "neighbours_per_item": self.neighbours_per_item,
            "replaced_weight": self.replaced_weight,
            "popularity_discount": self.popularity_discount,
            **(self._reranker_json(trees) if self.reranker is not None else {}),
        }

    def _reranker_json(self, trees: bool) -> dict[str, Any]:
        assert self.reranker is not None
        return {"reranker": reranker_to_json(self.reranker)} if trees else {"reranker_trees": self.reranker.n_trees}

    @classmethod
    def from_json(cls, value: object) -> Blend:
        """Read `to_json`'s output back; `ValueError` naming what is wrong otherwise."""
        if not isinstance(value, dict) or not isinstance(value.get("weights"), dict):
            raise ValueError("a blend is an object with a 'weights' object")
        weights = value["weights"]
        if not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights.values()):
            raise ValueError("blend weights must be numbers >= 0")
        rules: dict[str, type | tuple[type, ...]] = {
            "exclude_history": bool,
            "per_category_cap": int,
            "neighbours_per_item": int,
            "replaced_weight": _NUMBER,
            "popularity_discount": _NUMBER,
        }
        for name, kind in rules.items():
            if name in value and (type(value[name]) not in (kind if isinstance(kind, tuple) else (kind,))):
                raise ValueError(f"blend {name} must be {_kind_name(kind)}")
        if value.get("per_category_cap", 0) < 0 or value.get("neighbours_per_item", 1) < 1:
            raise ValueError("blend per_category_cap must be >= 0 and neighbours_per_item >= 1")
        return cls(
            {name: float(w) for name, w in weights.items()},
            **{name: value[name] for name in rules if name in value and rules[name] is not _NUMBER},
            replaced_weight=float(value.get("replaced_weight", 1.0)),
            popularity_discount=float(value.get("popularity_discount", 0.0)),
            reranker=reranker_from_json(value["reranker"]) if "reranker" in value else None,
        )

    @functools.cached_property
    def vector(self) -> np.ndarray:
        """The weights in the kernel's signal order (read-only; built once per blend)."""
        vector = np.array([self.weights.get(name, 0.0) for name in RANK_SIGNALS], dtype=np.float32)
        vector.flags.writeable = False
        return vector


# REPLENISH and DISCOVER as `omnix evaluate` tuned them on a generated shop's validation split;
# BALANCED sits between them by hand: mostly replenishment, with some taste.
DEFAULT_BLENDS: dict[str, Blend] = {
    # The start of every tuning run and the blend of a model trained without tuning. Due-ness is
    # judged at the shopper's next expected trip, so a list asked for right after a trip is for
    # the next one; shoppers like you carries what a household's neighbours buy again.
    Strategy.REPLENISH: Blend(
        {
            "habit": 2.0,
            "repurchase": 0.4,
            "basket_complement": 0.2,
            "popularity": 0.05,
            "category_affinity": 0.05,
            "due_by_next_trip": 1.0,
            "shoppers_like_you": 0.3,
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
            "shoppers_like_you": 0.3,
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


def blends_from_json(value: object) -> dict[str, Blend]:
    """A manifest's `blends` object ({strategy: blend}); `ValueError` naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("blends must be an object keyed by strategy")
    unknown = set(value) - {str(s) for s in Strategy}
    if unknown:
        raise ValueError(f"blends for unknown strategies {sorted(unknown)}")
    out: dict[str, Blend] = {}
    for strategy, blend in value.items():
        try:
            out[Strategy(strategy)] = Blend.from_json(blend)
        except ValueError as err:
            raise ValueError(f"blend {strategy}: {err}") from None
    return out


def describe(blend: Blend) -> str:
    """One line for people: the weights in use and the list rules."""
    weights = ", ".join(f"{name} {blend.weights[name]:g}" for name in RANK_SIGNALS if blend.weights.get(name, 0) > 0)
    cap = blend.per_category_cap or "none"
    excluded = "; leaves out past purchases" if blend.exclude_history else ""
    replaced = f"; a replaced product counts {blend.replaced_weight:g}" if blend.replaced_weight < 1 else ""
    discount = f"; popularity discount {blend.popularity_discount:g}" if blend.popularity_discount > 0 else ""
    reranked = f"; head re-ranked by {blend.reranker.n_trees} trees" if blend.reranker is not None else ""
    rules = f"{excluded}{replaced}{discount}{reranked}"
    return f"{weights}; {blend.neighbours_per_item} neighbours per product, per-aisle cap {cap}{rules}"


_NUMBER = (int, float)
# The re-ranker's node arrays as the manifest keeps them, and their element types.
_RERANKER_ARRAYS = {
    "base": np.float32,
    "feature": np.int32,
    "threshold": np.float32,
    "left": np.int32,
    "right": np.int32,
    "value": np.float32,
    "roots": np.int32,
}


def reranker_to_json(reranker: Reranker) -> dict[str, Any]:
    """A re-ranker as the manifest stores it: its node arrays as lists, and the names of the
    features it reads, so that a kernel computing other features refuses it on load."""
    arrays = reranker.arrays()
    return {"features": list(RANK_FEATURES), **{name: arrays[name].tolist() for name in _RERANKER_ARRAYS}}


def reranker_from_json(value: object) -> Reranker:
    """Read `reranker_to_json`'s output back; `ValueError` naming what is wrong otherwise."""
    if not isinstance(value, dict):
        raise ValueError("a reranker is an object of node arrays")
    if value.get("features") != list(RANK_FEATURES):
        raise ValueError("the reranker was trained on other features than this kernel computes: retrain the model")
    arrays: dict[str, Any] = {}
    for name, dtype in _RERANKER_ARRAYS.items():
        column = value.get(name)
        if not isinstance(column, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in column
        ):
            raise ValueError(f"reranker {name} must be a list of numbers")
        arrays[name] = np.array(column, dtype=dtype)
    try:
        return Reranker(n_features=len(RANK_FEATURES), **arrays)
    except CoreError as err:
        raise ValueError(f"reranker: {err}") from None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "a number" if isinstance(kind, tuple) else kind.__name__
