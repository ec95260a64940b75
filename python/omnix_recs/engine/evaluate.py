"""`omnix evaluate`: offline quality on each shopper's held-out last basket.

Protocol (no peeking):
- Shoppers with at least 3 trips are evaluated (optionally a seeded sample of them). Their last
  trip is the test basket; the trip before it is the validation basket.
- Test model: built from every order line except the test baskets. Validation model: built
  from every line except the test and the validation baskets. Lines of other shoppers stay in
  (they are the population the model learns from); no evaluated shopper's target is ever seen.
- Answers are given as of one second before the target trip, from the shopper's history before
  it (the serving code path: `Recommender`, request-time features, catalog filters).
- The engine's blend weights are tuned on the validation baskets only (coordinate ascent on
  NDCG@10), then applied unchanged to the test baskets. The untuned defaults are reported too.
- Baselines (engine/baselines.py) see exactly the same histories.

Tasks: REPLENISH predicts the whole next basket; DISCOVER predicts only its products new to the
shopper (shoppers whose basket has none are skipped) and every method excludes past purchases.
Metrics at K: Recall, NDCG (binary relevance), hit rate (at least one right), catalog coverage
(share of the catalog appearing in any list) and personalization (1 − mean overlap of two
shoppers' lists, over sampled pairs).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from omnix_recs.config import Settings
from omnix_recs.domain.models import Product
from omnix_recs.engine import baselines
from omnix_recs._core import RANK_SIGNALS
from omnix_recs.engine.serving import DEFAULT_BLENDS, Blend, Recommender, Strategy
from omnix_recs.store.base import PurchaseColumns, Store

# Builds a model from order lines: (training lines, catalog, settings with a scratch model_dir).
ModelBuilder = Callable[[PurchaseColumns, list[Product], Settings], object]

MIN_TRIPS = 3
PERSONALIZATION_PAIRS = 2000
TUNING_METRIC_K = 10
TUNING_FACTORS = (0.0, 0.5, 2.0)
TUNING_PASSES = 2
TASKS = (Strategy.REPLENISH, Strategy.DISCOVER)


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

    `build` defaults to the production model build (`engine.build`); tests pass their own."""
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
            val_model = train_without(build, store, settings, columns, validation.held_out | test.held_out, Path(workdir) / "validation")
            recommender = Recommender(store, _Fixed(val_model))
            for task in TASKS:
                tuned[task] = _tune(recommender, validation, blends[task], task)
        test_model = train_without(build, store, settings, columns, test.held_out, Path(workdir) / "test")
        recommender = Recommender(store, _Fixed(test_model))
        shoppers = [recommender.shopper_at(c, t.at - timedelta(seconds=1)) for c, t in zip(test.customers, test.targets)]

        results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for task in TASKS:
            truth = _truth(test, task)
            engine_rows = {"OMNIX engine (default weights)": blends[task]}
            if tuned:
                engine_rows["OMNIX engine (tuned on validation)"] = tuned[task]
            for name, blend in engine_rows.items():
                lists = [recommender.rank_ids(s, blend, k_max) for s in shoppers]
                results[task][name] = _metrics(lists, truth, k_values, catalog_size, seed)
            for baseline in _baselines():
                lists = _baseline_lists(baseline, test, task, k_max)
                results[task][baseline.name] = _metrics(lists, truth, k_values, catalog_size, seed)

    header = (
        f"Offline evaluation: {len(eligible)} customers, held-out last basket, "
        f"model {test_model.version}, {time.perf_counter() - started:.0f} s"
    )
    return _table(header, results, k_values)


# --- data --------------------------------------------------------------------------------------


def _all_lines(store: Store) -> PurchaseColumns:
    parts: dict[str, list] = defaultdict(list)
    for batch in store.scan_purchases():
        for name in PurchaseColumns.__slots__:  # type: ignore[attr-defined]
            parts[name] += getattr(batch, name)
    return PurchaseColumns(**{name: parts[name] for name in PurchaseColumns.__slots__})  # type: ignore[attr-defined]


def _trips_by_customer(columns: PurchaseColumns) -> dict[str, list[Trip]]:
    at: dict[tuple[str, str], int] = {}
    items: dict[tuple[str, str], set[str]] = defaultdict(set)
    for customer, order, product, when in zip(columns.customer_ids, columns.order_ids, columns.product_ids, columns.purchased_at):
        key = (customer, order)
        at[key] = min(when, at.get(key, when))
        items[key].add(product)
    trips: dict[str, list[Trip]] = defaultdict(list)
    for (customer, order), when in at.items():
        trips[customer].append(Trip(order, datetime.fromtimestamp(when, tz=timezone.utc), frozenset(items[(customer, order)])))
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


def _truth(split: Split, task: Strategy) -> list[frozenset[str]]:
    if task is Strategy.REPLENISH:
        return [t.products for t in split.targets]
    return [t.products - frozenset().union(*(h.products for h in hist)) for t, hist in zip(split.targets, split.histories)]


def train_without(
    build: ModelBuilder,
    store: Store,
    settings: Settings,
    columns: PurchaseColumns,
    held_out: set[tuple[str, str]],
    model_dir: Path,
) -> object:
    """Build a model from every order line except the held-out (customer, order) baskets."""
    keep = [i for i, key in enumerate(zip(columns.customer_ids, columns.order_ids)) if key not in held_out]
    train = PurchaseColumns(**{
        name: [getattr(columns, name)[i] for i in keep] for name in PurchaseColumns.__slots__  # type: ignore[attr-defined]
    })
    return build(train, list(store.iter_products()), replace(settings, model_dir=str(model_dir)))


def _production_build(lines: PurchaseColumns, products: list[Product], settings: Settings) -> object:
    from omnix_recs.engine.build import build_model_from_columns  # the build side's entry point

    return build_model_from_columns(lines, products, settings)


class _Fixed:
    """A model holder that always serves one model (the evaluation's own build)."""

    def __init__(self, model: object) -> None:
        self.model = model

    def reload_if_changed(self) -> None:
        return None


# --- tuning ------------------------------------------------------------------------------------


def _tune(recommender: Recommender, split: Split, start: Blend, task: Strategy) -> Blend:
    """Coordinate ascent over the blend's weights, on validation baskets only."""
    shoppers = [recommender.shopper_at(c, t.at - timedelta(seconds=1)) for c, t in zip(split.customers, split.targets)]
    truth = _truth(split, task)
    evaluated = [(s, t) for s, t in zip(shoppers, truth) if t]
    if not evaluated:
        return start

    def quality(blend: Blend) -> float:
        return float(np.mean([_ndcg(recommender.rank_ids(s, blend, TUNING_METRIC_K), t, TUNING_METRIC_K) for s, t in evaluated]))

    best, best_quality = start, quality(start)
    for _ in range(TUNING_PASSES):
        for signal in RANK_SIGNALS:
            current = best.weights.get(signal, 0.0)
            candidates = {current * f for f in TUNING_FACTORS} | ({0.1} if current == 0 else set())
            for weight in sorted(candidates - {current}):
                trial = replace(best, weights={**best.weights, signal: weight})
                if sum(trial.weights.values()) <= 0:
                    continue
                q = quality(trial)
                if q > best_quality + 1e-6:
                    best, best_quality = trial, q
    return best


# --- baselines ---------------------------------------------------------------------------------


def _baselines() -> list[baselines.Baseline]:
    return [baselines.GlobalPopularity(), baselines.PersonalFrequency(), baselines.ItemKNN(), baselines.TifuKNN()]


def _baseline_lists(baseline: baselines.Baseline, split: Split, task: Strategy, k: int) -> list[list[str]]:
    products = sorted({p for hist in split.histories for trip in hist for p in trip.products})
    index = {p: i for i, p in enumerate(products)}
    histories = [[np.array([index[p] for p in trip.products]) for trip in hist] for hist in split.histories]
    baseline.fit(histories, len(products))
    lists = []
    for u, hist in enumerate(histories):
        scores = baseline.scores(u).astype(np.float64).copy()
        if task is Strategy.DISCOVER:
            for basket in hist:
                scores[basket] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        lists.append([products[i] for i in top if np.isfinite(scores[i])])
    return lists


# --- metrics -----------------------------------------------------------------------------------


def _ndcg(ranked: Sequence[str], truth: frozenset[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in truth)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(truth))))
    return dcg / ideal if ideal else 0.0


def _metrics(lists: list[list[str]], truth: list[frozenset[str]], k_values: Sequence[int], catalog_size: int, seed: int) -> dict[str, float]:
    pairs = [(ranked, t) for ranked, t in zip(lists, truth) if t]
    out: dict[str, float] = {"customers": float(len(pairs))}
    if not pairs:
        return out | {f"{m}@{k}": 0.0 for k in k_values for m in ("recall", "ndcg", "hit", "coverage", "personalization")}
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


def _table(header: str, results: dict[str, dict[str, dict[str, float]]], k_values: Sequence[int]) -> str:
    k_max = max(k_values)
    columns = [f"{m}@{k}" for k in k_values for m in ("recall", "ndcg", "hit")]
    columns += [f"coverage@{k_max}", f"personalization@{k_max}"]
    lines = [header, ""]
    for task, rows in results.items():
        n = int(next(iter(rows.values()))["customers"])
        lines.append(f"{task.upper()} ({n} customers)")
        lines.append(f"  {'method':<36}" + "".join(f"{c:>12}" for c in columns))
        for name, metrics in rows.items():
            lines.append(f"  {name:<36}" + "".join(f"{metrics[c]:>12.4f}" for c in columns))
        lines.append("")
    return "\n".join(lines)

