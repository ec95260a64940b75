"""`omnix evaluate`: offline quality on each shopper's held-out last basket.

What `omnix train` ships must win on the data it was given, so the engine is scored the way it
serves (the `Recommender`, request-time features, catalog filters), on baskets no model saw,
against simple baselines, with its blends tuned on an earlier basket than the one it is judged
on. `run_evaluation` spells out the protocol.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from omnix_recs._core import RANK_SIGNALS
from omnix_recs.config import Settings
from omnix_recs.domain.models import Product
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.engine import baselines
from omnix_recs.engine.artifact import LoadedModel, load_model, write_model
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy
from omnix_recs.engine.build import BuildParameters, build_from_lines
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.engine.recommender import PreparedShopper, Recommender
from omnix_recs.store.base import Store

# Builds a model from order lines: (training lines, catalog, settings with a scratch model_dir).
ModelBuilder = Callable[[PurchaseColumns, list[Product], Settings], LoadedModel]

MIN_TRIPS = 3
PERSONALIZATION_PAIRS = 2000
TUNING_METRIC_K = 10
# Coordinate ascent: each weight is tried at these multiples of its value (0 drops the signal;
# passes compound, so three reach x8) and an unused signal at these weights (signals are on
# [0, 1]: "a tie-breaker" and "a real say"); passes repeat while any change helped.
TUNING_FACTORS = (0.0, 0.5, 2.0)
TUNING_NEW_WEIGHTS = (0.05, 0.25)
TUNING_MAX_PASSES = 3
TUNING_NEIGHBOURS = (10, 20, 50)
TUNING_CATEGORY_CAPS = (0, 3)
# Validation shoppers the blends are tuned on (a seeded sample when there are more): each trial
# ranks them all, and a thousand already separates blends far beyond what tuning can use.
TUNING_MAX_SHOPPERS = 1000
# The kernel gives these only to products in the shopper's history: no weight of theirs can
# change a list that excludes the history.
HISTORY_ONLY_SIGNALS = ("replenishment", "habit", "repurchase")
TASKS = (Strategy.REPLENISH, Strategy.DISCOVER)
# The kernel releases the GIL: rank the shoppers of one trial blend on every core.
RANKING_THREADS = min(os.cpu_count() or 1, 8)


@dataclass(frozen=True)
class Trip:
    order_id: str
    at: datetime
    products: frozenset[str]


@dataclass
class Split:
    """Targets of one split: per evaluated shopper, the held-out trip and the trips before it."""

    customers: list[str]
    targets: list[Trip]
    histories: list[list[Trip]]
    held_out: set[tuple[str, str]] = field(default_factory=set)  # (customer, order) never trained on


def run_evaluation(
    store: Store,
    settings: Settings,
    *,
    k_values: Sequence[int] = (10, 20),
    max_customers: int | None = None,
    tune: bool = True,
    seed: int = 0,
    build: ModelBuilder | None = None,
) -> str:
    """Evaluate the engine against the baselines; returns the printable table.

    Protocol (no peeking):
    - Shoppers with at least `MIN_TRIPS` trips are evaluated (optionally a seeded sample of
      them). Their last trip is the test basket; the trip before it is the validation basket.
    - Test model: built from every order line except the test baskets. Validation model: built
      from every line except the test and the validation baskets. Lines of other shoppers stay
      in (they are the population the model learns from); no evaluated shopper's target is seen.
    - Answers are given as of one second before the target trip, from the shopper's history
      before it, through the serving code path.
    - The blends are tuned on the validation baskets only (coordinate ascent on NDCG@10 over
      the signal weights, neighbours per history product and the per-aisle cap), then applied
      unchanged to the test baskets. The defaults are reported too.
    - Baselines (engine/baselines.py) learn from exactly the lines the test model is built from
      and answer from the same histories.

    Tasks: REPLENISH predicts the whole next basket; DISCOVER predicts only its products new to
    the shopper (shoppers whose basket has none are skipped) and every method excludes past
    purchases. Metrics at K: Recall, NDCG (binary relevance), hit rate (at least one right),
    catalog coverage (share of the catalog in any list) and personalization (1 − mean overlap
    of two shoppers' lists, over sampled pairs).

    `build` defaults to the production build (written and loaded back); tests pass their own."""
    build = build or _production_build
    started = time.perf_counter()
    columns = _all_lines(store)
    trips = _trips_by_customer(columns)
    eligible = sorted(c for c, t in trips.items() if len(t) >= MIN_TRIPS)
    if max_customers is not None and len(eligible) > max_customers:
        eligible = sorted(random.Random(seed).sample(eligible, max_customers))
    if not eligible:
        return f"nothing to evaluate: no customer has {MIN_TRIPS} or more trips"
    test = _split(trips, eligible, back=1)
    products = list(store.iter_products())
    catalog_size = len(products)
    k_max = max(k_values)

    with tempfile.TemporaryDirectory(prefix="omnix-eval-") as workdir:
        blends = dict(DEFAULT_BLENDS)
        tuned: dict[str, Blend] = {}
        if tune:
            validation = _split(trips, eligible, back=2)
            val_model = train_without(
                build, store, settings, columns, validation.held_out | test.held_out, Path(workdir) / "validation"
            )
            recommender = Recommender(store, _Fixed(val_model))
            tuning = _sample(validation, TUNING_MAX_SHOPPERS, seed)
            prepared = _prepare(recommender, tuning)
            for task in TASKS:
                tuned[task] = _tune(recommender, prepared, _truth(tuning, task), blends[task])
        test_model = train_without(build, store, settings, columns, test.held_out, Path(workdir) / "test")
        recommender = Recommender(store, _Fixed(test_model))
        shoppers = _prepare(recommender, test)

        results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for task in TASKS:
            engine_rows = {"OMNIX engine (default weights)": blends[task]}
            if tuned:
                engine_rows["OMNIX engine (tuned on validation)"] = tuned[task]
            for name, blend in engine_rows.items():
                lists = _rank_all(recommender, shoppers, blend, k_max)
                results[task][name] = _metrics(lists, _truth(test, task), k_values, catalog_size, seed)
        training = {c: [t for t in trips[c] if (c, t.order_id) not in test.held_out] for c in trips}
        for baseline in _baselines():
            for task, lists in _baseline_lists(baseline, training, test, k_max).items():
                results[task][baseline.name] = _metrics(lists, _truth(test, task), k_values, catalog_size, seed)

    header = (
        f"Offline evaluation: {len(eligible)} customers, held-out last basket, "
        f"model {test_model.version}, {time.perf_counter() - started:.0f} s"
    )
    return _table(header, results, k_values, tuned)


# --- data --------------------------------------------------------------------------------------


def _all_lines(store: Store) -> PurchaseColumns:
    parts: dict[str, list[Any]] = defaultdict(list)
    for batch in store.scan_purchases():
        for name in PurchaseColumns.__slots__:
            parts[name] += getattr(batch, name)
    return PurchaseColumns(**{name: parts[name] for name in PurchaseColumns.__slots__})


def _trips_by_customer(columns: PurchaseColumns) -> dict[str, list[Trip]]:
    at: dict[tuple[str, str], int] = {}
    items: dict[tuple[str, str], set[str]] = defaultdict(set)
    for customer, order, product, when in zip(
        columns.customer_ids, columns.order_ids, columns.product_ids, columns.purchased_at
    ):
        key = (customer, order)
        at[key] = min(when, at.get(key, when))
        items[key].add(product)
    trips: dict[str, list[Trip]] = defaultdict(list)
    for (customer, order), when in at.items():
        trips[customer].append(Trip(order, datetime.fromtimestamp(when, tz=UTC), frozenset(items[(customer, order)])))
    for customer_trips in trips.values():
        customer_trips.sort(key=lambda t: (t.at, t.order_id))
    return trips


def _split(trips: dict[str, list[Trip]], customers: list[str], *, back: int) -> Split:
    """Target = the `back`-th trip from the end; history = the trips before it."""
    split = Split(customers=list(customers), targets=[], histories=[])
    for c in customers:
        target = trips[c][-back]
        split.targets.append(target)
        split.histories.append(trips[c][:-back])
        split.held_out.add((c, target.order_id))
    return split


def _sample(split: Split, n: int, seed: int) -> Split:
    """At most `n` of the split's shoppers (seeded); their held-out trips stay held out."""
    if len(split.customers) <= n:
        return split
    keep = sorted(random.Random(seed).sample(range(len(split.customers)), n))
    return Split(
        customers=[split.customers[i] for i in keep],
        targets=[split.targets[i] for i in keep],
        histories=[split.histories[i] for i in keep],
        held_out=split.held_out,
    )


def _truth(split: Split, task: Strategy) -> list[frozenset[str]]:
    if task is Strategy.REPLENISH:
        return [t.products for t in split.targets]
    return [
        t.products - frozenset().union(*(h.products for h in hist)) for t, hist in zip(split.targets, split.histories)
    ]


def train_without(
    build: ModelBuilder,
    store: Store,
    settings: Settings,
    columns: PurchaseColumns,
    held_out: set[tuple[str, str]],
    model_dir: Path,
) -> LoadedModel:
    """Build a model from every order line except the held-out (customer, order) baskets."""
    keep = [i for i, key in enumerate(zip(columns.customer_ids, columns.order_ids)) if key not in held_out]
    train = PurchaseColumns(**{name: [getattr(columns, name)[i] for i in keep] for name in PurchaseColumns.__slots__})
    return build(train, list(store.iter_products()), replace(settings, model_dir=str(model_dir)))


def _production_build(columns: PurchaseColumns, products: list[Product], settings: Settings) -> LoadedModel:
    """The production build, written under `settings.model_dir` and loaded back: the evaluation
    scores exactly what a server would load."""
    lines = read_purchase_lines([columns], (p.product_id for p in products), expected_rows=len(columns))
    _, path = write_model(build_from_lines(lines, products, BuildParameters()), settings.model_dir)
    return load_model(path)


class _Fixed:
    """A model holder that always serves one model (the evaluation's own build)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def reload_if_changed(self, *, force: bool = False) -> None:
        return None


# --- tuning ------------------------------------------------------------------------------------


def _prepare(recommender: Recommender, split: Split) -> list[PreparedShopper]:
    """Each shopper's kernel inputs one second before their target trip."""
    return [recommender.shopper_at(c, t.at - timedelta(seconds=1)) for c, t in zip(split.customers, split.targets)]


def _tune(
    recommender: Recommender, shoppers: Sequence[PreparedShopper], truth: Sequence[frozenset[str]], start: Blend
) -> Blend:
    """Coordinate ascent over the blend's weights and list rules, on validation baskets only."""
    evaluated = [(s, t) for s, t in zip(shoppers, truth) if t]
    if not evaluated:
        return start
    prepared = [s for s, _ in evaluated]

    def quality(blend: Blend) -> float:
        lists = _rank_all(recommender, prepared, blend, TUNING_METRIC_K)
        return float(np.mean([_ndcg(ranked, t, TUNING_METRIC_K) for ranked, (_, t) in zip(lists, evaluated)]))

    best, best_quality = start, quality(start)
    for _ in range(TUNING_MAX_PASSES):
        improved = False
        for trial in _neighbourhood(best):
            q = quality(trial)
            if q > best_quality + 1e-6:
                best, best_quality, improved = trial, q, True
        if not improved:
            break
    return best


def _neighbourhood(blend: Blend) -> list[Blend]:
    """Blends one step away from `blend`: one weight changed, or one list rule."""
    trials = []
    for signal in RANK_SIGNALS:
        if blend.exclude_history and signal in HISTORY_ONLY_SIGNALS:
            continue
        current = blend.weights.get(signal, 0.0)
        weights = {current * f for f in TUNING_FACTORS} if current > 0 else set(TUNING_NEW_WEIGHTS)
        for weight in sorted(weights - {current}):
            trial = replace(blend, weights={**blend.weights, signal: weight})
            if sum(trial.weights.values()) > 0:
                trials.append(trial)
    trials += [replace(blend, neighbours_per_item=n) for n in TUNING_NEIGHBOURS if n != blend.neighbours_per_item]
    trials += [replace(blend, per_category_cap=c) for c in TUNING_CATEGORY_CAPS if c != blend.per_category_cap]
    return trials


def _rank_all(recommender: Recommender, shoppers: Sequence[PreparedShopper], blend: Blend, k: int) -> list[list[str]]:
    """Every shopper's top k, the shoppers dealt out round-robin to the ranking threads."""
    shares = [shoppers[i::RANKING_THREADS] for i in range(RANKING_THREADS)]
    with ThreadPoolExecutor(RANKING_THREADS) as pool:
        ranked = list(pool.map(lambda share: [recommender.rank_ids(s, blend, k) for s in share], shares))
    # Undo the interleaving: shopper i is entry i // threads of share i % threads.
    return [ranked[i % RANKING_THREADS][i // RANKING_THREADS] for i in range(len(shoppers))]


# --- baselines ---------------------------------------------------------------------------------


def _baselines() -> list[baselines.Baseline]:
    return [baselines.GlobalPopularity(), baselines.PersonalFrequency(), baselines.ItemKNN(), baselines.TifuKNN()]


def _baseline_lists(
    baseline: baselines.Baseline, training: dict[str, list[Trip]], split: Split, k: int
) -> dict[Strategy, list[list[str]]]:
    """Each task's lists for the split's shoppers from a baseline fitted on `training` (every
    shopper's trips the model may learn from; an evaluated shopper's are their history)."""
    customers = sorted(training)
    products = sorted({p for trips in training.values() for trip in trips for p in trip.products})
    index = {p: i for i, p in enumerate(products)}
    histories = [[np.array([index[p] for p in trip.products]) for trip in training[c]] for c in customers]
    baseline.fit(histories, len(products))
    row = {c: u for u, c in enumerate(customers)}
    lists: dict[Strategy, list[list[str]]] = {task: [] for task in TASKS}
    for customer, history in zip(split.customers, split.histories):
        scores = baseline.scores(row[customer]).astype(np.float64)
        bought = np.array(sorted({index[p] for trip in history for p in trip.products}), dtype=np.int64)
        for task in TASKS:
            if task is Strategy.DISCOVER:
                scores = scores.copy()
                scores[bought] = -np.inf
            top = _top_k(scores, k)
            lists[task].append([products[i] for i in top if np.isfinite(scores[i])])
    return lists


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties to the lower index."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    head = np.argpartition(-scores, k - 1)[:k]
    return head[np.lexsort((head, -scores[head]))]


# --- metrics -----------------------------------------------------------------------------------


def _ndcg(ranked: Sequence[str], truth: frozenset[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in truth)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(truth))))
    return dcg / ideal if ideal else 0.0


def _metrics(
    lists: list[list[str]], truth: list[frozenset[str]], k_values: Sequence[int], catalog_size: int, seed: int
) -> dict[str, float]:
    pairs = [(ranked, t) for ranked, t in zip(lists, truth) if t]
    out: dict[str, float] = {"customers": float(len(pairs))}
    if not pairs:
        return out | {
            f"{m}@{k}": 0.0 for k in k_values for m in ("recall", "ndcg", "hit", "coverage", "personalization")
        }
    rng = random.Random(seed)
    for k in k_values:
        hits = [len(set(r[:k]) & t) for r, t in pairs]
        out[f"recall@{k}"] = float(np.mean([h / len(t) for h, (_, t) in zip(hits, pairs)]))
        out[f"ndcg@{k}"] = float(np.mean([_ndcg(r, t, k) for r, t in pairs]))
        out[f"hit@{k}"] = float(np.mean([h > 0 for h in hits]))
        out[f"coverage@{k}"] = len({p for r, _ in pairs for p in r[:k]}) / max(catalog_size, 1)
        sample = [rng.sample(range(len(pairs)), 2) for _ in range(PERSONALIZATION_PAIRS)] if len(pairs) > 1 else []
        overlap = [len(set(pairs[a][0][:k]) & set(pairs[b][0][:k])) / k for a, b in sample]
        out[f"personalization@{k}"] = 1.0 - float(np.mean(overlap)) if overlap else 0.0
    return out


def _table(
    header: str, results: dict[str, dict[str, dict[str, float]]], k_values: Sequence[int], tuned: dict[str, Blend]
) -> str:
    k_max = max(k_values)
    columns = [f"{m}@{k}" for k in k_values for m in ("recall", "ndcg", "hit")]
    columns += [f"coverage@{k_max}", f"personalization@{k_max}"]
    widths = [max(len(c), 7) + 2 for c in columns]
    method_width = max(len(name) for rows in results.values() for name in rows) + 2
    lines = [header, ""]
    for task, rows in results.items():
        n = int(next(iter(rows.values()))["customers"])
        lines.append(f"{task.upper()} ({n} customers)")
        lines.append(f"  {'method':<{method_width}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
        for name, metrics in rows.items():
            values = "".join(f"{metrics[c]:>{w}.4f}" for c, w in zip(columns, widths))
            lines.append(f"  {name:<{method_width}}{values}")
        if task in tuned:
            lines.append(f"  tuned blend: {_describe(tuned[task])}")
        lines.append("")
    return "\n".join(lines)


def _describe(blend: Blend) -> str:
    weights = ", ".join(f"{name} {blend.weights[name]:g}" for name in RANK_SIGNALS if blend.weights.get(name, 0) > 0)
    cap = blend.per_category_cap or "none"
    return f"{weights}; {blend.neighbours_per_item} neighbours per product, per-aisle cap {cap}"
