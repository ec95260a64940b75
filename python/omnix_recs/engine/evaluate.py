"""`omnix evaluate`: offline quality on each shopper's held-out last basket.

What `omnix train` ships must win on the data it was given, so the engine is scored the way it
serves (the `Recommender`, request-time features, catalog filters), on baskets no model saw,
against simple baselines, with its blends tuned by training's own search (engine/tuning.py) on
an earlier basket than the one it is judged on, and asked both right after a trip and just
before the next. `run_evaluation` spells out the protocol.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from omnix_recs import progress
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer, Product
from omnix_recs.engine import baselines
from omnix_recs.engine.artifact import LoadedModel, load_model, with_habit_decay, write_model
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy, describe
from omnix_recs.engine.build import BuildParameters, build_from_lines
from omnix_recs.engine.cached_reads import repeated_reads
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.engine.holdout import (
    BIAS_METRICS,
    MIN_TRIPS,
    AskedAt,
    ItemPopularity,
    Split,
    Trips,
    hold_out,
    known_lines,
    lines_without,
)
from omnix_recs.engine.matrix import PurchaseLines, read_purchase_lines
from omnix_recs.engine.recommender import Recommender
from omnix_recs.engine.tuning import (
    ENGINE_DEFAULT,
    ENGINE_TUNED,
    ENGINE_TUNED_BLENDS_ONLY,
    RERANK_SHOPPERS,
    TASKS,
    TUNING_SHOPPERS,
    FixedModel,
    Results,
    compare,
    learn_rerankings,
    tune_blends,
    tune_habit_decay,
)
from omnix_recs.store.base import Store

# Builds a model from order lines: (training lines, catalog, settings with a scratch model_dir).
ModelBuilder = Callable[[PurchaseLines, list[Product], Settings], LoadedModel]


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
    """Evaluate the engine against the baselines; returns the printable tables.

    Protocol (no peeking):
    - Shoppers with at least `MIN_TRIPS` trips are evaluated (optionally a seeded sample of
      them). Their last trip is the test basket; the trip before it is the validation basket.
    - Test model: built from every order line except the test baskets. Validation model: built
      from every line except the test and the validation baskets. Lines of other shoppers stay
      in (they are the population the model learns from); no evaluated shopper's target is seen.
    - Each method is asked twice per shopper, from their history before the target trip: at the
      end of the day of their last trip (23:59:59 UTC) and one second before the target trip.
      The engine answers through the serving code path.
    - The blends are tuned on the validation baskets only, as `omnix train` tunes them
      (engine/tuning.py: at most `TUNING_SHOPPERS` shoppers, each asked at one of the two
      moments), then applied unchanged to the test baskets. The defaults are reported too.
    - Baselines (engine/baselines.py) learn from exactly the lines the test model is built from
      and answer from the same histories; they ignore the moment, so both tables show the same.

    Tasks: REPLENISH predicts the whole next basket; DISCOVER predicts only its products new to
    the shopper (shoppers whose basket has none are skipped) and every method excludes past
    purchases; BALANCED (the default list) is judged on the whole basket, like REPLENISH.
    Metrics at K: Recall, NDCG (binary relevance), hit rate (at least one right), catalog
    coverage (share of the catalog in any list) and personalization (1 - mean overlap of two
    shoppers' lists, over sampled pairs).

    `build` defaults to the production build (written and loaded back); tests pass their own."""
    build = build or _production_build
    started = time.perf_counter()
    products = list(store.iter_products())
    expected = store.count_purchases()
    batches = progress.counted(store.scan_purchases(), "evaluate: read purchases", total=expected, unit="lines")
    lines = read_purchase_lines(batches, (p.product_id for p in products), expected_rows=expected)
    trips = Trips.of(lines)
    eligible = trips.eligible()
    if max_customers is not None and len(eligible) > max_customers:
        eligible = sorted(random.Random(seed).sample(eligible, max_customers))
    if not eligible:
        return f"nothing to evaluate: no customer has {MIN_TRIPS} or more trips"
    test = hold_out(trips, eligible, back=1)

    with (
        tempfile.TemporaryDirectory(prefix="omnix-eval-") as workdir,
        progress.stages("evaluate", ("tune", "build", "score")) as stage,
    ):
        tuned: dict[str, Blend] = {}
        habit_decay = HABIT_DECAY
        # Each shopper is prepared per setting and moment: read once, their lines from `lines`.
        reads = repeated_reads(store, known_lines=known_lines(trips, test))
        if tune:
            stage.begin("tune")
            validation = hold_out(trips, eligible, back=2)
            held_out = np.concatenate([validation.targets, test.targets])
            val_model = build(
                lines_without(lines, held_out), products, replace(settings, model_dir=str(Path(workdir) / "validation"))
            )
            tuning_split = validation.sample(TUNING_SHOPPERS, seed)
            start = DEFAULT_BLENDS[Strategy.REPLENISH]
            choice = tune_habit_decay(reads, val_model, tuning_split, seed=seed, blend=start)
            habit_decay = choice.habit_decay
            tuned = tune_blends(choice.recommender, tuning_split, seed=seed, shoppers=choice.shoppers)
            tuned = learn_rerankings(choice.recommender, validation.sample(RERANK_SHOPPERS, seed), tuned, seed=seed)
        stage.begin("build")
        test_model = build(
            lines_without(lines, test.targets), products, replace(settings, model_dir=str(Path(workdir) / "test"))
        )
        default = Recommender(reads, FixedModel(test_model))
        engine: dict[str, tuple[Recommender, Mapping[str, Blend]]] = {ENGINE_DEFAULT: (default, DEFAULT_BLENDS)}
        if tuned:
            # One recommender when the decay stays the default: `compare` prepares each once.
            at_decay = default
            if habit_decay != test_model.habit_decay:
                at_decay = Recommender(
                    reads, FixedModel(with_habit_decay(test_model, habit_decay)), catalog=default.catalog
                )
            engine[ENGINE_TUNED] = (at_decay, tuned)
            if any(blend.reranker is not None for blend in tuned.values()):
                engine[ENGINE_TUNED_BLENDS_ONLY] = (at_decay, {s: replace(b, reranker=None) for s, b in tuned.items()})
        stage.begin("score")
        lists: dict[tuple[AskedAt, Strategy, str], list[list[str]]] = {}
        results = compare(
            test,
            trips,
            engine,
            _baselines(),
            k_values=k_values,
            catalog_size=len(products),
            seed=seed,
            popularity=ItemPopularity.of(trips, test.targets),
            lists_out=lists,
        )

    header = (
        f"Offline evaluation: {len(eligible)} customers, held-out last basket, "
        f"model {test_model.version}, {time.perf_counter() - started:.0f} s"
    )
    groups = _table_by_group(store, test, lists, ENGINE_TUNED if tuned else ENGINE_DEFAULT)
    return _table(header, results, k_values, tuned, habit_decay) + groups


# Per-group quality: REPLENISH recall@10 asked at the next trip, for the engine and these references.
GROUP_REFERENCES = ("TIFU-KNN", "personal top frequency")
GROUP_K = 10


def household_group(customer: Customer) -> str:
    """The household-size group a customer's quality is reported under."""
    if customer.household_size <= 0:
        return "size unknown"
    return f"size {customer.household_size}" if customer.household_size < 5 else "size 5+"


def age_group(customer: Customer) -> str:
    return f"age {customer.age_band}" if customer.age_band else "age unknown"


def _table_by_group(
    store: Store, split: Split, lists: Mapping[tuple[AskedAt, Strategy, str], list[list[str]]], engine: str
) -> str:
    """REPLENISH recall@10 per household size and per age band (shoppers whose profile says
    so): whether the engine serves every kind of household, not only the typical one."""
    profiles = [store.get_customer(c) for c in split.customer_ids]
    truth = split.truth(Strategy.REPLENISH)
    methods = [engine, *GROUP_REFERENCES]
    out = [f"REPLENISH recall@{GROUP_K} by customer group (asked at the next trip)"]
    widths = [len(m) + 2 for m in methods]
    out.append(f"  {'group':<16}{'customers':>10}" + "".join(f"{m:>{w}}" for m, w in zip(methods, widths)))
    for grouping in (household_group, age_group):
        members: dict[str, list[int]] = {}
        for i, profile in enumerate(profiles):
            if truth[i]:
                members.setdefault(grouping(profile), []).append(i)
        for group in sorted(members):
            rows = members[group]
            values = []
            for method, width in zip(methods, widths):
                ranked = lists.get((AskedAt.NEXT_TRIP, Strategy.REPLENISH, method))
                if ranked is None:
                    values.append(f"{'-':>{width}}")
                    continue
                recall = np.mean([len(set(ranked[i][:GROUP_K]) & truth[i]) / len(truth[i]) for i in rows])
                values.append(f"{recall:>{width}.4f}")
            out.append(f"  {group:<16}{len(rows):>10}" + "".join(values))
    return "\n" + "\n".join(out) + "\n"


def _baselines() -> list[baselines.Baseline]:
    return [baselines.GlobalPopularity(), baselines.PersonalFrequency(), baselines.ItemKNN(), baselines.TifuKNN()]


def _production_build(lines: PurchaseLines, products: list[Product], settings: Settings) -> LoadedModel:
    """The production build, written under `settings.model_dir` and loaded back: the evaluation
    scores exactly what a server would load."""
    _, path = write_model(build_from_lines(lines, products, BuildParameters()), settings.model_dir)
    return load_model(path)


def _any_row(results: Results) -> Mapping[str, float]:
    return next(iter(next(iter(next(iter(results.values())).values())).values()))


def _table(header: str, results: Results, k_values: Sequence[int], tuned: dict[str, Blend], habit_decay: float) -> str:
    k_max = max(k_values)
    columns = [f"{m}@{k}" for k in k_values for m in ("recall", "ndcg", "hit")]
    columns += [f"coverage@{k_max}", f"personalization@{k_max}"]
    columns += [f"{m}@{k_max}" for m in BIAS_METRICS if f"{m}@{k_max}" in _any_row(results)]
    widths = [max(len(c), 7) + 2 for c in columns]
    method_width = max(len(name) for tasks in results.values() for rows in tasks.values() for name in rows) + 2
    lines = [header, ""]
    for when in AskedAt:
        lines += [f"== {when.heading} ==", ""]
        for task in TASKS:
            rows = results[when][task]
            n = int(next(iter(rows.values()))["customers"])
            lines.append(f"{task.upper()} ({n} customers)")
            lines.append(f"  {'method':<{method_width}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
            for name, metrics in rows.items():
                values = "".join(f"{metrics[c]:>{w}.4f}" for c, w in zip(columns, widths))
                lines.append(f"  {name:<{method_width}}{values}")
            lines.append("")
    for strategy, blend in tuned.items():
        lines.append(f"tuned {strategy} blend: {describe(blend)}")
    if tuned:
        lines.append(f"tuned habit decay: {habit_decay} per trip back")
    return "\n".join(lines).rstrip() + "\n"
