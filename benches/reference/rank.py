"""numpy reference of the Rust ranking kernel (`rust_core/src/engine/rank.rs`).

The same blend written the numpy way (dense vectors over the whole catalog), used by the tests
to check the kernel and by `benches/bench_scoring.py` as the baseline the kernel is timed
against. Anchors (which history item led to a neighbour) are left out: they are bookkeeping,
tested on the kernel directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from omnix_recs._core import RANK_SIGNALS

CYCLE_PRIOR_GAPS = 2.0
DUE_WIDTH_EARLY = 0.6
DUE_WIDTH_LATE = 1.0
REASON_MIN_SHARE = 0.15
REASONS_PER_ITEM = 2


class RankRequest(TypedDict):
    """The keyword arguments of `RankTables.rank` that the reference reads."""

    history_items: npt.NDArray[np.int32]
    days_since_last: npt.NDArray[np.float32]
    mean_gap_days: npt.NDArray[np.float32]
    orders: npt.NDArray[np.float32]
    habit: npt.NDArray[np.float32]
    basket: npt.NDArray[np.int32]
    allowed: npt.NDArray[np.bool_]
    category_ids: npt.NDArray[np.int32]
    brand_ids: npt.NDArray[np.int32]
    extra_candidates: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]
    week: int
    k: int
    exclude_history: bool
    per_category_cap: int
    neighbours_per_item: int
    days_to_next_trip: NotRequired[float]
    like_you_items: NotRequired[npt.NDArray[np.int32] | None]
    like_you_scores: NotRequired[npt.NDArray[np.float32] | None]
    replaced_weight: NotRequired[float]
    popularity_discount: NotRequired[float]


@dataclass(frozen=True)
class ReferenceRanking:
    items: np.ndarray
    scores: np.ndarray
    confidence: np.ndarray
    reasons: np.ndarray


def _signal(name: str) -> int:
    return RANK_SIGNALS.index(name)


def _squash(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0.0)
    return x / (1.0 + x)


def _accumulate(
    idx: np.ndarray, score: np.ndarray, anchors: np.ndarray, weights: np.ndarray, take: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weight x neighbour score over the anchors' first `take` neighbours, and which items were reached."""
    total = np.zeros(n, dtype=np.float32)
    reached = np.zeros(n, dtype=bool)
    if len(anchors) == 0:
        return total, reached
    rows_idx = idx[anchors, :take]
    rows_val = weights[:, None] * score[anchors, :take]
    valid = rows_idx >= 0
    np.add.at(total, rows_idx[valid], rows_val[valid])
    reached[rows_idx[valid]] = True
    return total, reached


def _replaced(aisle: np.ndarray, days: np.ndarray, own: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Which history products another repeat product (2+ trips) of their aisle, first bought
    after they were last bought, has replaced."""
    with np.errstate(invalid="ignore"):
        first = (days + own * (orders - np.float32(1.0))).astype(np.float32)
    repeat = (orders >= 2) & np.isfinite(own) & (aisle >= 0)
    replaced = np.zeros(len(aisle), dtype=bool)
    for k in range(len(aisle)):
        same = repeat & (aisle == aisle[k])
        replaced[k] = aisle[k] >= 0 and bool(same.any()) and bool(first[same].min() < days[k])
    return replaced


def rank_reference(tables: dict[str, np.ndarray], **req: Unpack[RankRequest]) -> ReferenceRanking:
    """Same keyword arguments as `RankTables.rank`; `tables` holds the model arrays by name."""
    n = len(tables["popularity"])
    hist = np.asarray(req["history_items"], dtype=np.int64)
    habit = np.asarray(req["habit"], dtype=np.float32)
    basket = np.asarray(req["basket"], dtype=np.int64)
    weights = np.asarray(req["weights"], dtype=np.float32)
    take = int(req["neighbours_per_item"])

    # Every history product, then every basket product not in the history, once each.
    context = np.concatenate([hist, basket[~np.isin(basket, hist)]])
    once = np.ones(len(context), np.float32)

    co_purchase, reached_cooc = _accumulate(tables["cooc_idx"], tables["cooc_sim"], context, once, take, n)
    similar, reached_content = _accumulate(tables["content_idx"], tables["content_sim"], context, once, take, n)
    complement, reached_fbt = _accumulate(
        tables["fbt_idx"], tables["fbt_score"], basket, np.ones(len(basket), np.float32), take, n
    )

    like_you = np.zeros(n, dtype=np.float32)
    like_you_items = np.asarray(
        req["like_you_items"] if req.get("like_you_items") is not None else np.zeros(0), dtype=np.int64
    )
    if len(like_you_items):
        like_you[like_you_items] = np.asarray(req["like_you_scores"], dtype=np.float32)

    candidate = reached_cooc | reached_content | reached_fbt
    candidate[like_you_items] = True
    candidate[hist] = True
    candidate[np.asarray(req["extra_candidates"], dtype=np.int64)] = True
    eligible = candidate & np.asarray(req["allowed"], dtype=bool)
    eligible[basket] = False
    if req["exclude_history"]:
        eligible[hist] = False

    taste = np.zeros(n, dtype=np.float32)
    factors = tables["taste_factors"]
    if weights[_signal("taste")] > 0 and factors.shape[1] > 0:
        shopper = factors[context].sum(axis=0, dtype=np.float32)
        taste[eligible] = factors[eligible] @ shopper

    signals = np.zeros((n, len(RANK_SIGNALS)), dtype=np.float32)
    orders = np.asarray(req["orders"], dtype=np.float32)
    gaps = np.maximum(orders - 1.0, 0.0)
    own = np.asarray(req["mean_gap_days"], dtype=np.float32)
    population = tables["population_cycle_days"][hist]
    own_known = np.isfinite(own) & (gaps > 0)
    pop_known = np.isfinite(population) & (population > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cycle = np.where(
            own_known & pop_known,
            (gaps * own + CYCLE_PRIOR_GAPS * population) / (gaps + CYCLE_PRIOR_GAPS),
            np.where(own_known, own, np.where(pop_known, population, np.nan)),
        ).astype(np.float32)
        days = np.asarray(req["days_since_last"], dtype=np.float32)

        def dueness(days: np.ndarray) -> np.ndarray:
            ratio = np.log((days + np.float32(0.5)) / cycle)
            width = np.where(ratio < 0, DUE_WIDTH_EARLY, DUE_WIDTH_LATE).astype(np.float32)
            due = np.exp(-(ratio * ratio) / (2.0 * width * width))
            return np.where((cycle > 0) & (days >= 0), due, 0.0).astype(np.float32)

        due = dueness(days)
        due_next = dueness(days + np.float32(req.get("days_to_next_trip", 0.0)))
    signals[hist, _signal("replenishment")] = habit * due
    signals[hist, _signal("due_by_next_trip")] = habit * due_next
    signals[hist, _signal("habit")] = habit
    signals[hist, _signal("repurchase")] = np.clip(tables["repurchase_rate"][hist], 0.0, 1.0)
    replaced_weight = np.float32(req.get("replaced_weight", 1.0))
    if replaced_weight < 1:
        replaced = _replaced(np.asarray(req["category_ids"], dtype=np.int64)[hist], days, own, orders)
        for name in ("replenishment", "due_by_next_trip", "habit", "repurchase"):
            signals[hist[replaced], _signal(name)] *= replaced_weight
    for name, evidence in (
        ("co_purchase", co_purchase),
        ("similar", similar),
        ("taste", taste),
        ("shoppers_like_you", like_you),
    ):
        strongest = evidence[eligible].max(initial=0.0)
        if strongest > 0:
            signals[:, _signal(name)] = np.clip(evidence / strongest, 0.0, 1.0)
    signals[:, _signal("basket_complement")] = _squash(complement)
    signals[:, _signal("popularity")] = np.clip(tables["popularity"], 0.0, 1.0)
    signals[:, _signal("trending")] = _squash(tables["trending"])
    signals[:, _signal("seasonal")] = _squash(tables["seasonal_lift"][:, int(req["week"])] - 1.0)
    for name, ids in (("category_affinity", req["category_ids"]), ("brand_affinity", req["brand_ids"])):
        keys = np.asarray(ids, dtype=np.int64)
        hist_keys = keys[hist]
        known = hist_keys >= 0
        share = np.zeros(max(int(keys.max(initial=-1)) + 1, 1), dtype=np.float32)
        np.add.at(share, hist_keys[known], habit[known])
        if habit.sum() > 0:
            share /= habit.sum(dtype=np.float32)
        signals[:, _signal(name)] = np.where(keys >= 0, share[np.maximum(keys, 0)], 0.0)
    signals[~np.isfinite(signals)] = 0.0

    discount = np.float32(req.get("popularity_discount", 0.0))
    if discount > 0:
        popularity = np.nan_to_num(tables["popularity"], nan=0.0, posinf=0.0, neginf=0.0)
        signals = signals * (np.float32(1.0) - discount * np.clip(popularity, 0.0, 1.0).astype(np.float32))[:, None]
    contributions = signals * weights[None, :]
    score = contributions.sum(axis=1)
    keep = eligible & (score > 0)

    items = np.flatnonzero(keep)
    items = items[np.lexsort((items, -score[items]))]
    cap = int(req["per_category_cap"])
    if cap > 0:
        categories = np.asarray(req["category_ids"])[items]
        seen: dict[int, int] = {}
        chosen = []
        for item, category in zip(items, categories):
            if category >= 0:
                if seen.get(int(category), 0) >= cap:
                    continue
                seen[int(category)] = seen.get(int(category), 0) + 1
            chosen.append(item)
        items = np.asarray(chosen, dtype=np.int64)
    items = items[: int(req["k"])]

    weight_total = float(weights.sum())
    top_scores = score[items]
    confidence = 1.0 - np.exp(-4.0 * top_scores / weight_total) if weight_total > 0 else np.zeros_like(top_scores)
    top_contrib = contributions[items]
    order = np.argsort(-top_contrib, axis=1, kind="stable")[:, :REASONS_PER_ITEM]
    picked = np.take_along_axis(top_contrib, order, axis=1)
    reasons = np.where((picked > 0) & (picked >= REASON_MIN_SHARE * top_scores[:, None]), order, -1).astype(np.int8)
    return ReferenceRanking(
        items.astype(np.int32), top_scores.astype(np.float32), confidence.astype(np.float32), reasons
    )
