"""Tuning the blends on held-out baskets, and the validation report that goes with it.

How much each signal should count depends on the shop: weekly staples reward due-ness, a shop
of one-off purchases rewards co-purchase. So the blends are searched for on each shop's own
data (coordinate ascent over the signal weights and list rules, judged by NDCG@10 on baskets
the model never saw) rather than fixed in code. Each shopper of the search is asked either at
the end of their last trip's day or just before their next trip (seeded, half each), so the
winner is good at both moments. `omnix train` ships what wins, after comparing it with the
defaults and the baselines on the same baskets (`validate`); `omnix evaluate` reports it.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from omnix_recs._core import RANK_SIGNALS, CandidateSignals
from omnix_recs.domain.models import Product
from omnix_recs.engine import baselines
from omnix_recs.engine.artifact import LoadedModel, with_habit_decay
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy
from omnix_recs.engine.cached_reads import read_ahead, repeated_reads
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.engine.filters import CatalogCache
from omnix_recs.engine.holdout import (
    AskedAt,
    ItemPopularity,
    Split,
    Trips,
    hold_out,
    known_lines,
    lines_without,
    list_metrics,
    ndcg,
)
from omnix_recs.engine.matrix import PurchaseLines
from omnix_recs.engine.recommender import PreparedShopper, Recommender, in_threads
from omnix_recs.engine.reranking import fit_reranker, head_candidates, reranked_head
from omnix_recs.store.base import Store

TASKS = (Strategy.REPLENISH, Strategy.DISCOVER, Strategy.BALANCED)
TUNING_METRIC_K = 10
# Coordinate ascent: each weight is tried at these multiples of its value (0 drops the signal;
# passes compound, so two reach x4) and an unused signal at these weights (signals are on
# [0, 1]: "a tie-breaker" and "a real say"); passes repeat while any change helped, a third
# rarely finding what is worth its cost.
TUNING_FACTORS = (0.0, 0.5, 2.0)
TUNING_NEW_WEIGHTS = (0.05, 0.25)
TUNING_MAX_PASSES = 2
TUNING_NEIGHBOURS = (10, 20, 50)
TUNING_CATEGORY_CAPS = (0, 3)
# How much a product replaced by another of its aisle still counts (kernel `replaced_weight`).
TUNING_REPLACED_WEIGHTS = (0.0, 0.5, 1.0)
# A change is kept only when it adds at least this much mean NDCG@10, and more than this many
# standard errors of the shopper-by-shopper gain: smaller gains are noise of the sample (they
# do not carry over to other baskets), and chasing them costs passes.
TUNING_MIN_GAIN = 1e-4
TUNING_MIN_STANDARD_ERRORS = 1.0
# Shoppers in the heat a step must win before it is ranked for every tuning shopper.
TUNING_HEAT_SHOPPERS = 300
# Sets of list rules whose gathered candidates the search keeps (per heat and rest): the
# current blend's and the one a step is trying (each set is about candidates x 14 floats per
# shopper: a few hundred MB for 2,000 shoppers of a 50,000-product shop).
_GATHERED_KEPT = 4
# Habit decays tried (the weight of the trip k trips back is decay**k): TIFU-KNN's 0.9 suits
# Complete Journey; a shop of steadier routines does better forgetting faster. A longer memory
# (0.95) is not offered: on Complete Journey it won the basket before the last (+0.003 NDCG@10)
# and lost the last one (-0.003 recall@10), a shift a per-shop search cannot see coming.
TUNING_HABIT_DECAYS = (0.8, 0.9)
# Learned re-ranking (engine/reranking.py) is fitted on half the tuning shoppers and judged on
# the others; it ships only with this many standard errors of paired gain there, more than a
# blend step needs: trees fit much more than a weight does, so a chance win is likelier.
RERANK_MIN_SHOPPERS = 200
# Shoppers the trees learn from and are judged on (a seeded sample when there are more): trees
# need more baskets than a blend step does to carry over to other shoppers.
RERANK_SHOPPERS = 6000
RERANK_MIN_STANDARD_ERRORS = 2.0
# Shoppers the blends are tuned on (a seeded sample when there are more): each trial ranks them
# all, and a couple of thousand already separates blends far beyond what tuning can use.
TUNING_SHOPPERS = 2000
# The kernel gives these only to products in the shopper's history: no weight of theirs can
# change a list that excludes the history.
HISTORY_ONLY_SIGNALS = ("replenishment", "habit", "repurchase", "due_by_next_trip")
# The other start of the search for whole-basket lists: the shopper's habit, popularity to break ties.
HABIT_START = {"habit": 1.0, "popularity": 0.01}

ENGINE_DEFAULT = "OMNIX engine (default weights)"
ENGINE_TUNED = "OMNIX engine (tuned on validation)"
# The tuned blends without their re-ranking trees: what the trees add (evaluate only).
ENGINE_TUNED_BLENDS_ONLY = "OMNIX engine (tuned, blends only)"
# How each method is spelled in a model version's flat metrics: validation_<task>_<key><metric>.
METRIC_KEYS = {
    ENGINE_TUNED: "",
    ENGINE_DEFAULT: "default_",
    baselines.PersonalFrequency.name: "top_frequency_",
    baselines.TifuKNN.name: "tifu_knn_",
    baselines.ItemKNN.name: "item_knn_",
    baselines.GlobalPopularity.name: "popularity_",
}
VALIDATION_K = 10
# Shoppers training's baselines learn from at most (the judged ones and a sample of the others):
# their fit is per shopper in Python, and a big shop would pay more for it than for the tuning.
BASELINE_SHOPPERS = 20_000
# Blocks of the baselines' lists scored at a time (`baseline_lists`).
BASELINE_THREADS = 2
# Shoppers the model tuned on is built from at most (the judged ones and a sample of the others).
# The blends weigh signals on [0, 1], which a quarter of a 200,000-shopper shop already
# estimates; the whole shop would make the tuning build cost as much as the served one.
VALIDATION_SHOPPERS = 50_000

log = logging.getLogger(__name__)

# metrics of each method, per task, per moment of asking
Results = dict[AskedAt, dict[Strategy, dict[str, dict[str, float]]]]


class FixedModel:
    """A model source that always serves one model (a validation or test build)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def reload_if_changed(self, *, force: bool = False) -> None:
        return None


# --- ranking held-out shoppers ---------------------------------------------------------------------


def prepare(recommender: Recommender, split: Split, moments: Sequence[datetime]) -> list[PreparedShopper]:
    """Each shopper's kernel inputs at their moment of asking (from the store: lines before it)."""
    return [recommender.shopper_at(c, at) for c, at in zip(split.customer_ids, moments)]


def rank_all(recommender: Recommender, shoppers: Sequence[PreparedShopper], blend: Blend, k: int) -> list[list[str]]:
    """Every shopper's top k."""
    return in_threads(lambda shopper: recommender.rank_ids(shopper, blend, k), shoppers)


# --- the search ----------------------------------------------------------------------------------


def tune_blends(
    recommender: Recommender,
    split: Split,
    *,
    seed: int = 0,
    start: Mapping[str, Blend] = DEFAULT_BLENDS,
    shoppers: Sequence[PreparedShopper] | None = None,
) -> dict[str, Blend]:
    """Every strategy's blend tuned on the split's held-out baskets, from `start`.

    REPLENISH and BALANCED are judged on the whole basket, DISCOVER on its products new to the
    shopper. BALANCED keeps its per-aisle cap and DISCOVER its exclusion of past purchases: those
    are what the strategies promise, not something for the data to decide. `shoppers`: the
    split's shoppers already prepared by `recommender` at `mixed_moments(split, seed)`."""
    if shoppers is None:
        shoppers = prepare(recommender, split, mixed_moments(split, seed))
    tuned: dict[str, Blend] = {}
    for task in TASKS:
        blend = start[task]
        # The shopper's own habit alone is the strong simple answer for a whole basket (what
        # personal top frequency and TIFU-KNN build on): the search may start there instead.
        habit = [] if blend.exclude_history else [replace(blend, weights=dict(HABIT_START))]
        truth = split.truth(task)
        tuned[task] = tune(recommender, shoppers, truth, blend, also_from=habit, tune_cap=task is not Strategy.BALANCED)
    return tuned


def learn_rerankings(
    recommender: Recommender,
    split: Split,
    blends: Mapping[str, Blend],
    *,
    seed: int = 0,
    shoppers: Sequence[PreparedShopper] | None = None,
) -> dict[str, Blend]:
    """Every strategy's blend with re-ranking trees where they win on the split's held-out
    baskets (`learn_reranking`), judged as `tune_blends` judges blends. `shoppers`: the split's
    shoppers already prepared by `recommender`, each at one of their two moments of asking
    (default: `mixed_moments(split, seed)`)."""
    if shoppers is None:
        shoppers = prepare(recommender, split, mixed_moments(split, seed))
    return {
        task: learn_reranking(recommender, shoppers, split.truth(Strategy(task)), blend, seed=seed)
        for task, blend in blends.items()
    }


def learn_reranking(
    recommender: Recommender,
    shoppers: Sequence[PreparedShopper],
    truth: Sequence[frozenset[str]],
    blend: Blend,
    *,
    seed: int = 0,
) -> Blend:
    """`blend` with re-ranking trees (engine/reranking.py) when they order baskets clearly better
    than the blend alone, else `blend`. The trees are fitted on a seeded half of the shoppers
    whose truth is not empty and judged on the other half by the lists serving would give: they
    must gain NDCG@10 by `RERANK_MIN_STANDARD_ERRORS` and lose no recall@10 (a better order of
    fewer of the basket's products is not what a shopper shown ten products needs). A win ships
    trees refitted on all of them."""
    judged = [i for i, t in enumerate(truth) if t]
    if len(judged) < RERANK_MIN_SHOPPERS:
        return blend
    random.Random(seed).shuffle(judged)
    fit_on, judge_on = judged[: len(judged) // 2], judged[len(judged) // 2 :]
    candidates = dict(zip(judged, head_candidates(recommender, [shoppers[i] for i in judged], blend)))
    trial = replace(blend, reranker=fit_reranker([candidates[i] for i in fit_on], [truth[i] for i in fit_on]))
    k = TUNING_METRIC_K
    # Both lists come from the heads already gathered, as serving would give them: the blend's
    # are their first k (a list of k under any aisle cap is the first k of a longer one); the
    # trees' are the head in their order, but under an aisle cap serving re-orders a head the
    # cap has not thinned, so those are ranked.
    lists = {"blend": [candidates[i][0][:k] for i in judge_on]}
    assert trial.reranker is not None
    if blend.per_category_cap == 0:
        lists["trees"] = [reranked_head(trial.reranker, candidates[i], k) for i in judge_on]
    else:
        lists["trees"] = rank_all(recommender, [shoppers[i] for i in judge_on], trial, k)
    quality = {
        name: np.array([ndcg(r, truth[i], k) for r, i in zip(ranked, judge_on)]) for name, ranked in lists.items()
    }
    found = {
        name: np.array([len(set(r[:k]) & truth[i]) / len(truth[i]) for r, i in zip(ranked, judge_on)])
        for name, ranked in lists.items()
    }
    gain = quality["trees"] - quality["blend"]
    error = float(gain.std(ddof=1) / np.sqrt(len(gain)))
    recall_gain = float(np.mean(found["trees"] - found["blend"]))
    wins = float(gain.mean()) >= max(TUNING_MIN_GAIN, RERANK_MIN_STANDARD_ERRORS * error) and recall_gain >= 0
    log.info(
        "re-ranking trees on %d shoppers: NDCG@%d %.4f -> %.4f (%+.1f standard errors), recall@%d %+.4f: %s",
        len(judge_on),
        k,
        quality["blend"].mean(),
        quality["trees"].mean(),
        float(gain.mean()) / error if error > 0 else 0.0,
        k,
        recall_gain,
        "kept" if wins else "not kept",
    )
    if not wins:
        return blend
    return replace(blend, reranker=fit_reranker([candidates[i] for i in judged], [truth[i] for i in judged]))


@dataclass(frozen=True)
class HabitDecayChoice:
    """The habit decay chosen for a shop, with what choosing it already built: a recommender
    serving at that decay and the split's shoppers prepared with it (at `mixed_moments`), which
    `tune_blends` takes instead of reading every shopper's history again."""

    habit_decay: float
    recommender: Recommender
    shoppers: list[PreparedShopper]


def tune_habit_decay(
    store: Store,
    model: LoadedModel,
    split: Split,
    *,
    seed: int = 0,
    blend: Blend,
    catalog: CatalogCache | None = None,
) -> HabitDecayChoice:
    """The habit decay (of `TUNING_HABIT_DECAYS`) under which `blend`'s lists rank the split's
    held-out baskets best: `HABIT_DECAY` unless another is clearly better (`_Judge`). How fast a
    shopper's older trips should fade is a property of the shop (how steady its shoppers' habits
    are), so the data decides it, before the blends are tuned at the chosen decay. `catalog`:
    the catalog snapshot the recommenders share (default: one each)."""
    truth = split.truth(Strategy.REPLENISH)
    moments = mixed_moments(split, seed)
    judged = [i for i, t in enumerate(truth) if t]
    choices: dict[float, HabitDecayChoice] = {}
    qualities: dict[float, list[float]] = {}
    for decay in TUNING_HABIT_DECAYS if judged else (HABIT_DECAY,):
        recommender = Recommender(store, FixedModel(with_habit_decay(model, decay)), catalog=catalog)
        shoppers = prepare(recommender, split, moments)
        choices[decay] = HabitDecayChoice(decay, recommender, shoppers)
        lists = rank_all(recommender, [shoppers[i] for i in judged], blend, TUNING_METRIC_K)
        qualities[decay] = [ndcg(ranked, truth[i], TUNING_METRIC_K) for ranked, i in zip(lists, judged)]
    best = HABIT_DECAY
    for decay, scores in qualities.items():
        gain = np.array(scores) - np.array(qualities[best])
        error = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
        if judged and float(gain.mean()) >= max(TUNING_MIN_GAIN, TUNING_MIN_STANDARD_ERRORS * error):
            best = decay
    log.info(
        "habit decay for this shop: %s (NDCG@%d by decay: %s)",
        best,
        TUNING_METRIC_K,
        {d: round(float(np.mean(q)), 4) for d, q in qualities.items() if q},
    )
    return choices[best]


def mixed_moments(split: Split, seed: int) -> list[datetime]:
    """Half the shoppers (seeded) asked at the end of their last trip's day, the others one
    second before their next trip: one ranking per shopper, yet the winner is judged at both."""
    order = list(range(len(split)))
    random.Random(seed).shuffle(order)
    after_trip = set(order[: len(order) // 2])
    end_of_day, next_trip = split.asked_at(AskedAt.END_OF_TRIP_DAY), split.asked_at(AskedAt.NEXT_TRIP)
    return [end_of_day[i] if i in after_trip else next_trip[i] for i in range(len(split))]


def tune(
    recommender: Recommender,
    shoppers: Sequence[PreparedShopper],
    truth: Sequence[frozenset[str]],
    start: Blend,
    *,
    also_from: Sequence[Blend] = (),
    tune_cap: bool = True,
) -> Blend:
    """Coordinate ascent from `start` (or from the best of `also_from`, when better): each weight, the neighbours per product and (when
    `tune_cap`) the per-aisle cap in turn, keeping a coordinate's best value when it beats the
    current blend clearly (`_Judge.clearly_better`). Shoppers with empty truth are skipped.

    Most steps make the list worse, so a step is first ranked for a heat of the shoppers
    (`TUNING_HEAT_SHOPPERS`, spread over the sample) and for all of them only when it beats the
    current blend there: the comparison is paired, so a heat already tells a loser."""
    evaluated = [(s, t) for s, t in zip(shoppers, truth) if t]
    if not evaluated:
        return start
    judge = _Judge(recommender, [s for s, _ in evaluated], [t for _, t in evaluated])
    coordinates = [
        *RANK_SIGNALS,
        "neighbours_per_item",
        *(["per_category_cap"] if tune_cap else []),
        *([] if start.exclude_history else ["replaced_weight"]),
    ]
    best_quality, best = max(((judge.quality(b), b) for b in (start, *also_from)), key=lambda pair: pair[0])
    started, trials = judge.quality(start), 0
    for _ in range(TUNING_MAX_PASSES):
        improved = False
        for coordinate in coordinates:
            moves = _moves(best, coordinate)
            trials += len(moves)
            contenders = [m for m in moves if judge.heat(m) > judge.heat(best)]
            if not contenders:
                continue
            q, trial = max(((judge.quality(m), m) for m in contenders), key=lambda pair: pair[0])
            if judge.clearly_better(trial, best):
                best, best_quality, improved = trial, q, True
        if not improved:
            break
    log.info(
        "tuned a blend on %d shoppers: NDCG@%d %.4f -> %.4f (%d steps tried, %d ranked for all)",
        len(evaluated),
        TUNING_METRIC_K,
        started,
        best_quality,
        trials,
        judge.full_rankings,
    )
    return best


class _Judge:
    """Mean NDCG@10 of blends over the tuning shoppers, each blend ranked at most once per
    shopper: a heat (every few shoppers) first, the rest when `quality` asks for all.

    Most steps change weights alone, which leave every shopper's candidates and signals as
    they were: those are gathered once per set of list rules (`Recommender.candidate_signals`,
    the few sets used last kept) and ranked under each weight vector (`rank_candidates`), the
    same lists for a fraction of a ranking's cost."""

    def __init__(self, recommender: Recommender, shoppers: list[PreparedShopper], truth: list[frozenset[str]]) -> None:
        self._recommender = recommender
        step = max(1, len(shoppers) // TUNING_HEAT_SHOPPERS)
        in_heat = [i % step == 0 for i in range(len(shoppers))]
        self._parts = [
            ([s for s, h in zip(shoppers, in_heat) if h], [t for t, h in zip(truth, in_heat) if h]),
            ([s for s, h in zip(shoppers, in_heat) if not h], [t for t, h in zip(truth, in_heat) if not h]),
        ]
        self._scores: dict[tuple[Any, ...], list[list[float]]] = {}
        self._gathered: OrderedDict[tuple[Any, ...], list[CandidateSignals]] = OrderedDict()
        self.full_rankings = 0

    def heat(self, blend: Blend) -> float:
        return float(np.mean(self._ranked(blend, parts=1)[0]))

    def quality(self, blend: Blend) -> float:
        scores = self._ranked(blend, parts=2)
        return float(np.mean(scores[0] + scores[1]))

    def clearly_better(self, trial: Blend, best: Blend) -> bool:
        """Whether `trial` beats `best` over all the shoppers by at least `TUNING_MIN_GAIN` mean
        NDCG@10 and by `TUNING_MIN_STANDARD_ERRORS` standard errors of the paired gain."""
        t, b = self._ranked(trial, parts=2), self._ranked(best, parts=2)
        gain = np.array(t[0] + t[1]) - np.array(b[0] + b[1])
        error = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
        return float(gain.mean()) >= max(TUNING_MIN_GAIN, TUNING_MIN_STANDARD_ERRORS * error)

    def _ranked(self, blend: Blend, *, parts: int) -> list[list[float]]:
        key = (tuple(blend.vector.tolist()), blend.per_category_cap, blend.neighbours_per_item, blend.replaced_weight)
        scores = self._scores.setdefault(key, [])
        while len(scores) < parts:
            shoppers, truth = self._parts[len(scores)]
            lists = self._lists(blend, len(scores))
            scores.append([ndcg(ranked, t, TUNING_METRIC_K) for ranked, t in zip(lists, truth)])
            self.full_rankings += len(scores) == 2
        return scores

    def _lists(self, blend: Blend, part: int) -> list[list[str]]:
        if blend.reranker is not None:  # trees need the whole ranking
            return rank_all(self._recommender, self._parts[part][0], blend, TUNING_METRIC_K)
        rules = (
            part,
            blend.exclude_history,
            blend.neighbours_per_item,
            blend.replaced_weight,
            blend.popularity_discount,
        )
        gathered = self._gathered.get(rules)
        if gathered is None:
            recommender, shoppers = self._recommender, self._parts[part][0]
            gathered = in_threads(lambda shopper: recommender.candidate_signals(shopper, blend), shoppers)
            self._gathered[rules] = gathered
            while len(self._gathered) > _GATHERED_KEPT:
                self._gathered.popitem(last=False)
        self._gathered.move_to_end(rules)
        return self._recommender.rank_candidates(gathered, blend, TUNING_METRIC_K)


def _moves(blend: Blend, coordinate: str) -> list[Blend]:
    """Blends one step away from `blend` along one coordinate (a signal's weight or a list rule)."""
    if coordinate == "neighbours_per_item":
        return [replace(blend, neighbours_per_item=n) for n in TUNING_NEIGHBOURS if n != blend.neighbours_per_item]
    if coordinate == "per_category_cap":
        return [replace(blend, per_category_cap=c) for c in TUNING_CATEGORY_CAPS if c != blend.per_category_cap]
    if coordinate == "replaced_weight":
        return [replace(blend, replaced_weight=w) for w in TUNING_REPLACED_WEIGHTS if w != blend.replaced_weight]
    if blend.exclude_history and coordinate in HISTORY_ONLY_SIGNALS:
        return []
    current = blend.weights.get(coordinate, 0.0)
    values = {current * f for f in TUNING_FACTORS} if current > 0 else set(TUNING_NEW_WEIGHTS)
    moves = []
    for value in sorted(values - {current}):
        weights = {name: w for name, w in {**blend.weights, coordinate: value}.items() if w > 0}
        if weights:
            moves.append(replace(blend, weights=weights))
    return moves


# --- comparing methods on the same baskets ------------------------------------------------------


def compare(
    split: Split,
    trips: Trips,
    engine: Mapping[str, tuple[Recommender, Mapping[str, Blend]]],
    references: Sequence[baselines.Baseline],
    *,
    k_values: Sequence[int],
    catalog_size: int,
    seed: int = 0,
    popularity: ItemPopularity | None = None,
    lists_out: dict[tuple[AskedAt, Strategy, str], list[list[str]]] | None = None,
) -> Results:
    """Metrics of the engine in each named setting (a recommender, whose model fixes how habits
    are summarised, and its blends), asked at each moment, and of the reference methods, on the
    split's held-out baskets (the split must hold out each shopper's latest trip: a baseline
    learns from all of `trips` but those baskets).

    The baselines do not depend on the moment: their lists are scored once and filed under both.
    Their lists pass through the shopper's catalog filters as the engine's do (diet, allergens,
    stock): no method is judged on products it may not show."""
    k_max = max(k_values)
    results: Results = {when: {task: {} for task in TASKS} for when in AskedAt}
    shown: list[np.ndarray] = []
    for when in AskedAt:
        prepared: dict[int, list[PreparedShopper]] = {}  # by recommender: settings may share one
        for name, (recommender, blends) in engine.items():
            shoppers = prepared.get(id(recommender))
            if shoppers is None:
                shoppers = prepared[id(recommender)] = prepare(recommender, split, split.asked_at(when))
            shown = [recommender.shown(s) for s in shoppers]  # the catalog filters: alike in every setting
            for task in TASKS:
                lists = rank_all(recommender, shoppers, blends[task], k_max)
                results[when][task][name] = list_metrics(
                    lists, split.truth(task), k_values, catalog_size, seed, popularity
                )
                if lists_out is not None:
                    lists_out[when, task, name] = lists
    add_baselines(
        results,
        split,
        trips,
        references,
        shown,
        k_values=k_values,
        catalog_size=catalog_size,
        seed=seed,
        popularity=popularity,
        lists_out=lists_out,
    )
    return results


def add_baselines(
    results: Results,
    split: Split,
    trips: Trips,
    references: Sequence[baselines.Baseline],
    shown: Sequence[np.ndarray],
    *,
    k_values: Sequence[int],
    catalog_size: int,
    seed: int = 0,
    leave_out: np.ndarray | None = None,
    learn_from: Sequence[int] | None = None,
    popularity: ItemPopularity | None = None,
    lists_out: dict[tuple[AskedAt, Strategy, str], list[list[str]]] | None = None,
) -> int:
    """File the reference methods' metrics on the split into `results` (see `compare`); returns
    how many shoppers they learnt from. They learn from every basket of `trips` but `leave_out`
    (default: the split's targets), and show each shopper only the items their mask in `shown`
    allows. `learn_from`: the shoppers (codes, ascending, the judged ones among them) they learn
    from, default everyone (see `population_sample`)."""
    n_customers = trips.lines.n_customers
    if not references:
        return n_customers
    customers = range(n_customers) if learn_from is None else learn_from
    histories = trips.histories(split.targets if leave_out is None else leave_out, customers)
    row_of = {c: row for row, c in enumerate(customers)}
    rows = [row_of[c] for c in split.customers.tolist()]
    item_ids = trips.lines.item_ids
    for baseline in references:
        for task, lists in baseline_lists(baseline, histories, rows, shown, item_ids, max(k_values)).items():
            metrics = list_metrics(lists, split.truth(task), k_values, catalog_size, seed, popularity)
            for when in AskedAt:
                results[when][task][baseline.name] = metrics
                if lists_out is not None:
                    lists_out[when, task, baseline.name] = lists
    return len(customers)


def population_sample(among: Sequence[int], judged: Sequence[int], population: int, seed: int) -> Sequence[int]:
    """The shoppers (codes, ascending) a validation learns from, of `among` (ascending, the
    `judged` among them): all, or when there are more than `population`, the judged ones and a
    seeded sample of the others up to it. What a shopper's own history gives is exact; only what
    others add (a neighbour, a co-purchase, a tie-break) is drawn from fewer shoppers."""
    if len(among) <= population:
        return among
    judged_set = set(judged)
    others = [c for c in among if c not in judged_set]
    random.Random(seed).shuffle(others)
    return sorted(judged_set.union(others[: max(0, population - len(judged_set))]))


def baskets_left_out(lines: PurchaseLines, targets: np.ndarray, learn_from: Sequence[int]) -> np.ndarray:
    """The baskets a model learning from the shoppers `learn_from` (`population_sample`) leaves
    out besides the held-out `targets`: every basket of the others (ascending codes)."""
    if len(learn_from) == lines.n_customers:
        return targets
    in_population = np.zeros(lines.n_customers, dtype=bool)
    in_population[np.asarray(learn_from)] = True
    dropped = np.zeros(lines.n_baskets, dtype=bool)
    dropped[targets] = True
    dropped[lines.basket[~in_population[lines.customer]]] = True
    return np.flatnonzero(dropped)


def baseline_lists(
    baseline: baselines.Baseline,
    histories: Sequence[Sequence[np.ndarray]],
    rows: Sequence[int],
    shown: Sequence[np.ndarray],
    item_ids: Sequence[str],
    k: int,
) -> dict[Strategy, list[list[str]]]:
    """Each task's lists for the judged shoppers (their `rows` in `histories`) from a baseline
    fitted on `histories` (shoppers' baskets as item codes; a judged shopper's are their
    history), within each shopper's `shown` mask. DISCOVER leaves out what the shopper bought;
    BALANCED is the REPLENISH list (a baseline has no aisle rules)."""
    baseline.fit(histories, len(item_ids))
    judged = np.asarray(rows, dtype=np.int64)[: len(shown)]  # as many as there are masks
    # A block of shoppers at a time: about 2M scores (8 bytes each) in each block.
    block = max(1, 2_000_000 // max(len(item_ids), 1))

    def block_lists(start: int) -> tuple[list[list[str]], list[list[str]]]:
        block_rows = judged[start : start + block]
        allowed = np.stack([np.asarray(mask, dtype=bool) for mask in shown[start : start + block]])
        scores = np.where(allowed, baseline.scores_of(block_rows).astype(np.float64, copy=False), -np.inf)
        replenish = [[item_ids[i] for i in top.tolist()] for top in baselines.top_k_rows(scores, k)]
        bought = [
            np.concatenate(histories[row]) if len(histories[row]) else np.zeros(0, np.int64) for row in block_rows
        ]
        at = np.repeat(np.arange(len(block_rows)), [len(items) for items in bought])
        scores[at, np.concatenate(bought).astype(np.int64)] = -np.inf
        discover = [[item_ids[i] for i in top.tolist()] for top in baselines.top_k_rows(scores, k)]
        return replenish, discover

    # Blocks side by side: numpy releases the GIL for most of a block's work, and in training
    # the baselines are the validation's last step, when the served build has left a core idle.
    lists: dict[Strategy, list[list[str]]] = {task: [] for task in TASKS}
    with ThreadPoolExecutor(BASELINE_THREADS, thread_name_prefix="omnix-baselines") as pool:
        for replenish, discover in pool.map(block_lists, range(0, len(judged), block)):
            lists[Strategy.REPLENISH] += replenish
            lists[Strategy.DISCOVER] += discover
    lists[Strategy.BALANCED] = lists[Strategy.REPLENISH]
    return lists


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (see `baselines.top_k` for ties)."""
    return baselines.top_k(scores, k)


# --- the validation `omnix train` runs ---------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    """What training learnt on held-out baskets: the tuned blends and how every method scored."""

    blends: dict[str, Blend]  # by strategy
    habit_decay: float  # how fast older trips fade from a shopper's habit (engine/features.py)
    results: Results  # on the validation shoppers
    tuning_customers: int
    customers: int  # validation shoppers
    baseline_customers: int  # shoppers the baselines learnt from
    stage_seconds: dict[str, float]  # where the time went: build, tuning, engine, baselines

    def metrics(self) -> dict[str, float]:
        """Flat metrics for the model version: `validation_<task>_<method><metric>@10`, the mean
        over both moments of asking (method: empty for the tuned engine, `default_`,
        `top_frequency_`, `tifu_knn_`), and the engine's recall at each moment
        (`validation_<task>_<method>recall@10_<moment>`)."""
        out = {
            "validation_customers": float(self.customers),
            "validation_tuning_customers": float(self.tuning_customers),
            "validation_baseline_customers": float(self.baseline_customers),
            "validation_habit_decay": self.habit_decay,
        }
        out["validation_seconds"] = round(sum(self.stage_seconds.values()), 3)
        out.update({f"validation_seconds_{stage}": round(s, 3) for stage, s in self.stage_seconds.items()})
        k = VALIDATION_K
        for task in TASKS:
            rows = self.results[AskedAt.NEXT_TRIP][task]
            out[f"validation_{task}_customers"] = rows[ENGINE_TUNED]["customers"]
            for name, key in METRIC_KEYS.items():
                engine = name in (ENGINE_TUNED, ENGINE_DEFAULT)
                if name not in rows or (task is Strategy.BALANCED and not engine):
                    continue  # a baseline's BALANCED list is its REPLENISH list
                per_moment = {when: self.results[when][task][name] for when in AskedAt}
                for metric in (f"recall@{k}", f"ndcg@{k}"):
                    mean = float(np.mean([m[metric] for m in per_moment.values()]))
                    out[f"validation_{task}_{key}{metric}"] = round(mean, 6)
                if engine:
                    for when, m in per_moment.items():
                        out[f"validation_{task}_{key}recall@{k}_{when}"] = round(m[f"recall@{k}"], 6)
        return out

    def to_json(self) -> dict[str, Any]:
        """The manifest's `validation` section."""
        return {
            "customers": self.customers,
            "tuning_customers": self.tuning_customers,
            "baseline_customers": self.baseline_customers,
            "held_out": "the latest basket of each tuning and validation shopper (two disjoint groups)",
            "asked_at": [str(when) for when in AskedAt],
            "metrics": self.metrics(),
        }


def validate(
    store: Store,
    lines: PurchaseLines,
    products: Sequence[Product],
    build: Callable[[PurchaseLines, np.ndarray], LoadedModel],
    *,
    max_shoppers: int = TUNING_SHOPPERS,
    population: int = VALIDATION_SHOPPERS,
    seed: int = 0,
    start: Mapping[str, Blend] = DEFAULT_BLENDS,
) -> Validation | None:
    """Tune the blends on held-out baskets and judge them on others. None when fewer than two
    shoppers have `MIN_TRIPS` trips.

    The shoppers with enough trips are shuffled (seeded) and dealt into two groups of up to
    `max_shoppers`: the tuning shoppers and the validation shoppers, and the re-ranking trees
    may learn from up to `RERANK_SHOPPERS` - `max_shoppers` more. Their latest baskets are held
    out of a model built from everything else; the blends are tuned on the first group's, the
    trees on the first and third groups' (`learn_rerankings`), and the tuned blends, `start`
    and the baselines (personal top frequency, TIFU-KNN) are all scored on the second group's,
    which the search never saw, so the tuned blend's figures are not flattered by the search.
    The model tuned on is built from everything but those baskets, or in a shop of more than
    `population` shoppers from the baskets of that many (all three groups and a seeded sample
    of the others): `build(lines, judged)`, where `judged` are the customer codes of the three
    groups, the only shoppers the model will rank."""
    clock = _Stages()
    trips = Trips.of(lines)
    eligible = trips.eligible()
    if len(eligible) < 2:
        return None
    random.Random(seed).shuffle(eligible)
    group = min(max_shoppers, len(eligible) // 2)
    tuning_group, validation_group = sorted(eligible[:group]), sorted(eligible[group : 2 * group])
    extra_group = sorted(eligible[2 * group : 2 * group + max(0, RERANK_SHOPPERS - group)])
    split = hold_out(trips, tuning_group + validation_group + extra_group)
    # Shoppers are prepared several times at the same moments (per habit decay, per setting, per
    # moment): their store reads are made once, their order lines come from `lines`, and one
    # catalog snapshot serves every recommender.
    store = repeated_reads(store, known_lines=known_lines(trips, split))
    catalog = CatalogCache(store)
    # Every shopper prepared below, at the moments they are asked at: read concurrently once.
    read_ahead(store, split.customer_ids, list(zip(*(split.asked_at(when) for when in AskedAt))))
    tuning, validation = split.subset(range(group)), split.subset(range(group, 2 * group))
    extra = split.subset(range(2 * group, len(split)))
    learn_from = population_sample(range(lines.n_customers), split.customers.tolist(), population, seed)
    clock.lap("hold_out")
    model = build(lines_without(lines, baskets_left_out(lines, split.targets, learn_from)), split.customers)
    clock.lap("build")
    choice = tune_habit_decay(store, model, tuning, seed=seed, blend=start[Strategy.REPLENISH], catalog=catalog)
    habit_decay, recommender = choice.habit_decay, choice.recommender
    tuned = tune_blends(recommender, tuning, seed=seed, start=start, shoppers=choice.shoppers)
    extra_shoppers = prepare(recommender, extra, mixed_moments(extra, seed))
    rerank_split = split.subset([*range(group), *range(2 * group, len(split))])
    tuned = learn_rerankings(recommender, rerank_split, tuned, seed=seed, shoppers=[*choice.shoppers, *extra_shoppers])
    clock.lap("tuning")
    # At the model's own decay the tuned recommender serves the defaults as well: one set of
    # preparations serves both settings (`compare` prepares per recommender).
    same_decay = habit_decay == model.habit_decay
    default = recommender if same_decay else Recommender(store, FixedModel(model), catalog=catalog)
    engine = {ENGINE_DEFAULT: (default, start), ENGINE_TUNED: (recommender, tuned)}
    k_values, catalog_size = (VALIDATION_K,), len(products)
    results = compare(validation, trips, engine, [], k_values=k_values, catalog_size=catalog_size, seed=seed)
    clock.lap("engine")
    references: list[baselines.Baseline] = [baselines.PersonalFrequency(), baselines.TifuKNN()]
    shown = [recommender.shown(s) for s in prepare(recommender, validation, validation.asked_at(AskedAt.NEXT_TRIP))]
    baselines_learnt_from = add_baselines(
        results,
        validation,
        trips,
        references,
        shown,
        k_values=k_values,
        catalog_size=catalog_size,
        seed=seed,
        leave_out=split.targets,  # the engine's model learnt from the rest of these shoppers' lines
        learn_from=population_sample(learn_from, validation.customers.tolist(), BASELINE_SHOPPERS, seed),
    )
    clock.lap("baselines")
    return Validation(tuned, habit_decay, results, len(tuning), len(validation), baselines_learnt_from, clock.laps)


class _Stages:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now
