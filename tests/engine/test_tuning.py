"""Tuning the blends on held-out baskets (engine/tuning.py), on a small generated shop.

The search must never end below where it started on the baskets it tunes on, keep each
strategy's promises (DISCOVER leaves out past purchases, BALANCED keeps its aisle cap), judge
half the shoppers at each moment of asking, and score every method on the same baskets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pytest

from omnix_recs._core import RANK_SIGNALS
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.domain.models import Product
from omnix_recs.engine import baselines, tuning
from omnix_recs.engine.artifact import LoadedModel, in_memory_model, with_habit_decay
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy
from omnix_recs.engine.build import BuildParameters, build_from_lines
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.engine.holdout import AskedAt, Split, Trips, hold_out, lines_without, ndcg
from omnix_recs.engine.matrix import PurchaseLines, read_purchase_lines
from omnix_recs.engine.recommender import Recommender
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

SMALL_SHOP = {"customers": 80, "products": 200, "days": 120, "seed": 3}
PARAMS = BuildParameters(neighbours=10, taste_dimensions=8)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A small generated shop, imported (read-only for the tests of this module)."""
    root = tmp_path_factory.mktemp("generated-shop")
    generate_instacart(root / "data", **SMALL_SHOP)  # type: ignore[arg-type]
    store = open_store(f"sqlite:///{root / 'omnix.db'}")
    import_instacart(store, root / "data", as_of=date(2026, 11, 1))
    yield store
    store.close()


@pytest.fixture(scope="module")
def lines(generated: Store) -> PurchaseLines:
    catalog = [p.product_id for p in generated.iter_products()]
    return read_purchase_lines(generated.scan_purchases(), catalog, expected_rows=generated.count_purchases())


@pytest.fixture(scope="module")
def products(generated: Store) -> list[Product]:
    return list(generated.iter_products())


def build(lines: PurchaseLines, products: list[Product]) -> LoadedModel:
    return in_memory_model(build_from_lines(lines, products, PARAMS), "validation")


@pytest.fixture(scope="module")
def held_out(generated: Store, lines: PurchaseLines, products: list[Product]) -> tuple[Recommender, Split]:
    """Forty shoppers' latest baskets and a recommender over a model built without them."""
    trips = Trips.of(lines)
    split = hold_out(trips, trips.eligible()[:40])
    model = build(lines_without(lines, split.targets), products)
    return Recommender(generated, tuning.FixedModel(model)), split


def mean_ndcg(recommender: Recommender, split: Split, blend: Blend, task: str) -> float:
    shoppers = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))
    lists = tuning.rank_all(recommender, shoppers, blend, 10)
    return float(np.mean([ndcg(r, t, 10) for r, t in zip(lists, split.truth(Strategy(task))) if t]))


@pytest.mark.parametrize("strategy", list(Strategy))
def test_gathered_candidates_rank_as_the_kernel_does_under_any_blend(
    held_out: tuple[Recommender, Split], strategy: Strategy
) -> None:
    """What makes tuning cheap must not change what it measures: the lists ranked from gathered
    candidates are the kernel's lists, for random weights, aisle caps and list rules."""
    recommender, split = held_out
    shoppers = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))
    rng = np.random.default_rng(7)
    for trial in range(12):
        weights = {
            name: float(w) for name, w in zip(RANK_SIGNALS, rng.choice([0.0, 0.05, 0.3, 1.0], len(RANK_SIGNALS)))
        }
        blend = replace(
            DEFAULT_BLENDS[strategy],
            weights={name: w for name, w in weights.items() if w > 0} or {"popularity": 1.0},
            per_category_cap=int(rng.choice([0, 1, 3])),
            neighbours_per_item=int(rng.choice([5, 20])),
            replaced_weight=float(rng.choice([0.0, 0.5, 1.0])),
            popularity_discount=float(rng.choice([0.0, 0.3])),
        )
        gathered = [recommender.candidate_signals(shopper, blend) for shopper in shoppers]
        assert all(len(g) > 0 for g in gathered)
        for k in (3, 10, 40):
            assert recommender.rank_candidates(gathered, blend, k) == tuning.rank_all(
                recommender, shoppers, blend, k
            ), (
                trial,
                k,
            )


def test_gathered_candidates_refuse_trees(held_out: tuple[Recommender, Split]) -> None:
    recommender, split = held_out
    shopper = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))[0]
    blend = replace(DEFAULT_BLENDS[Strategy.REPLENISH], reranker=_reversing_trees())
    gathered = [recommender.candidate_signals(shopper, blend)]
    with pytest.raises(InvalidArgumentError, match="blend"):
        recommender.rank_candidates(gathered, blend, 10)


def test_tuning_never_ends_below_its_start_and_keeps_the_strategies_promises(
    held_out: tuple[Recommender, Split],
) -> None:
    recommender, split = held_out
    tuned = tuning.tune_blends(recommender, split, seed=0)
    assert set(tuned) == {Strategy.REPLENISH, Strategy.DISCOVER, Strategy.BALANCED}
    for task, blend in tuned.items():
        assert mean_ndcg(recommender, split, blend, task) >= mean_ndcg(recommender, split, DEFAULT_BLENDS[task], task)
    assert tuned[Strategy.DISCOVER].exclude_history
    assert tuned[Strategy.BALANCED].per_category_cap == DEFAULT_BLENDS[Strategy.BALANCED].per_category_cap


def test_habit_decay_is_chosen_among_the_tried_and_never_loses_to_the_default(
    generated: Store, lines: PurchaseLines, products: list[Product]
) -> None:
    trips = Trips.of(lines)
    split = hold_out(trips, trips.eligible()[:40])
    model = build(lines_without(lines, split.targets), products)
    start = DEFAULT_BLENDS[Strategy.REPLENISH]
    choice = tuning.tune_habit_decay(generated, model, split, seed=0, blend=start)
    decay = choice.habit_decay
    assert decay in tuning.TUNING_HABIT_DECAYS
    assert len(choice.shoppers) == len(split)

    def quality(habit_decay: float) -> float:
        recommender = Recommender(generated, tuning.FixedModel(with_habit_decay(model, habit_decay)))
        return mean_ndcg(recommender, split, start, Strategy.REPLENISH)

    assert quality(decay) >= quality(HABIT_DECAY)


def test_a_poor_start_is_left_behind(held_out: tuple[Recommender, Split]) -> None:
    recommender, split = held_out
    poor = Blend({"popularity": 1.0})
    shoppers = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))
    habit = [replace(poor, weights=dict(tuning.HABIT_START))]
    tuned = tuning.tune(recommender, shoppers, split.truth(Strategy.REPLENISH), poor, also_from=habit)
    assert tuned.weights.get("habit", 0) > 0 or tuned.weights.get("replenishment", 0) > 0
    task = Strategy.REPLENISH
    assert mean_ndcg(recommender, split, tuned, task) > mean_ndcg(recommender, split, poor, task) + 0.05


def test_no_truth_means_nothing_to_tune(held_out: tuple[Recommender, Split]) -> None:
    recommender, split = held_out
    shoppers = tuning.prepare(recommender, split, split.asked_at(AskedAt.NEXT_TRIP))
    start = DEFAULT_BLENDS[Strategy.REPLENISH]
    assert tuning.tune(recommender, shoppers, [frozenset()] * len(shoppers), start) is start


def test_steps_change_one_coordinate_and_respect_the_list_rules() -> None:
    discover = DEFAULT_BLENDS[Strategy.DISCOVER]
    for signal in tuning.HISTORY_ONLY_SIGNALS:
        assert tuning._moves(discover, signal) == []  # no weight of theirs can change such a list
    taste = tuning._moves(discover, "taste")
    assert sorted(b.weights.get("taste", 0.0) for b in taste) == [0.0, 0.5, 2.0]
    assert all(
        {k: v for k, v in b.weights.items() if k != "taste"}
        == {k: v for k, v in discover.weights.items() if k != "taste"}
        for b in taste
    )
    assert "trending" not in discover.weights
    assert sorted(b.weights["trending"] for b in tuning._moves(discover, "trending")) == [0.05, 0.25]
    assert sorted(b.neighbours_per_item for b in tuning._moves(discover, "neighbours_per_item")) == [10, 50]
    assert [b.per_category_cap for b in tuning._moves(discover, "per_category_cap")] == [0]
    only = Blend({"habit": 1.0})
    assert sorted(b.weights["habit"] for b in tuning._moves(only, "habit")) == [0.5, 2.0]  # never no weight at all


def test_new_signals_are_tried_as_they_appear() -> None:
    """A signal the ranker adds (`_core.RANK_SIGNALS`) is a coordinate of the search unasked."""
    unused = [s for s in RANK_SIGNALS if s not in DEFAULT_BLENDS[Strategy.REPLENISH].weights]
    for signal in unused:
        assert tuning._moves(DEFAULT_BLENDS[Strategy.REPLENISH], signal)


def test_half_the_shoppers_are_asked_at_each_moment(held_out: tuple[Recommender, Split]) -> None:
    _, split = held_out
    moments = tuning.mixed_moments(split, seed=4)
    end_of_day, next_trip = split.asked_at(AskedAt.END_OF_TRIP_DAY), split.asked_at(AskedAt.NEXT_TRIP)
    after_trip = [i for i, m in enumerate(moments) if m == end_of_day[i] and m != next_trip[i]]
    assert len(after_trip) in (len(split) // 2 - 1, len(split) // 2)  # a shopper may shop twice in a day
    assert tuning.mixed_moments(split, seed=4) == moments


def test_compare_scores_every_method_at_both_moments(held_out: tuple[Recommender, Split], lines: PurchaseLines) -> None:
    recommender, split = held_out
    results = tuning.compare(
        split,
        Trips.of(lines),
        {tuning.ENGINE_DEFAULT: (recommender, DEFAULT_BLENDS)},
        [baselines.PersonalFrequency()],
        k_values=(10,),
        catalog_size=200,
    )
    for when in AskedAt:
        for task in tuning.TASKS:
            assert set(results[when][task]) == {tuning.ENGINE_DEFAULT, "personal top frequency"}
            assert 0 < results[when][task][tuning.ENGINE_DEFAULT]["recall@10"] <= 1
    assert (
        results[AskedAt.NEXT_TRIP][Strategy.REPLENISH]["personal top frequency"]
        == (results[AskedAt.END_OF_TRIP_DAY][Strategy.REPLENISH]["personal top frequency"])
    )


def test_baselines_show_only_what_the_shopper_may_see_and_discover_only_the_new(
    held_out: tuple[Recommender, Split], lines: PurchaseLines
) -> None:
    _, split = held_out
    split = split.subset([0])
    trips = Trips.of(lines)
    histories = trips.histories(split.targets)
    bought = {lines.item_ids[i] for basket in histories[int(split.customers[0])] for i in basket.tolist()}
    shown = np.ones(lines.n_items, dtype=bool)
    favourite = baselines.PersonalFrequency()
    rows = split.customers.tolist()  # every shopper's history: rows are customer codes
    first = tuning.baseline_lists(favourite, histories, rows, [shown], lines.item_ids, 10)
    hidden = lines.item_ids.index(first[Strategy.REPLENISH][0][0])
    shown[hidden] = False
    lists = tuning.baseline_lists(favourite, histories, rows, [shown], lines.item_ids, 10)
    assert lines.item_ids[hidden] not in lists[Strategy.REPLENISH][0]
    assert lists[Strategy.BALANCED] == lists[Strategy.REPLENISH]
    assert not set(lists[Strategy.DISCOVER][0]) & bought


def test_baselines_may_learn_from_a_sample_of_the_population(
    held_out: tuple[Recommender, Split], lines: PurchaseLines
) -> None:
    """Personal top frequency's lists come from the shopper's own history: the same whether it
    learns from everyone or from a sample that includes the judged shoppers."""
    recommender, split = held_out
    trips = Trips.of(lines)
    shown = [recommender.shown(s) for s in tuning.prepare(recommender, split, split.asked_at(AskedAt.NEXT_TRIP))]
    everyone: tuning.Results = {when: {task: {} for task in tuning.TASKS} for when in AskedAt}
    sampled: tuning.Results = {when: {task: {} for task in tuning.TASKS} for when in AskedAt}
    options: dict[str, Any] = {"k_values": (10,), "catalog_size": 200}
    reference = [baselines.PersonalFrequency()]
    assert tuning.add_baselines(everyone, split, trips, reference, shown, **options) == lines.n_customers
    sample = tuning.population_sample(range(lines.n_customers), split.customers.tolist(), 50, seed=0)
    assert tuning.add_baselines(sampled, split, trips, reference, shown, learn_from=sample, **options) == 50
    name = "personal top frequency"
    everyone_recall = everyone[AskedAt.NEXT_TRIP][Strategy.REPLENISH][name]["recall@10"]
    assert sampled[AskedAt.NEXT_TRIP][Strategy.REPLENISH][name]["recall@10"] == pytest.approx(everyone_recall, abs=0.02)


def test_validate_tunes_on_some_shoppers_and_judges_on_others(
    generated: Store, lines: PurchaseLines, products: list[Product]
) -> None:
    built: list[PurchaseLines] = []
    ranked: list[np.ndarray] = []

    def counting_build(kept: PurchaseLines, judged: np.ndarray) -> LoadedModel:
        built.append(kept)
        ranked.append(judged)
        return build(kept, products)

    validation = tuning.validate(generated, lines, products, counting_build, max_shoppers=25, seed=2)
    assert validation is not None
    assert validation.tuning_customers == 25 and validation.customers == 25
    # Held out: both groups' latest baskets, and those of the shoppers only the trees learn from.
    eligible = len(Trips.of(lines).eligible())
    held_out = min(eligible, 50 + tuning.RERANK_SHOPPERS - 25)
    assert len(built) == 1 and built[0].n_baskets == lines.n_baskets - held_out and held_out > 50
    # The model is told whom it will rank: the shoppers whose baskets were held out.
    assert len(ranked[0]) == len(set(ranked[0].tolist())) == held_out
    metrics = validation.metrics()
    for key in (
        "validation_replenish_recall@10",
        "validation_replenish_default_recall@10",
        "validation_replenish_top_frequency_recall@10",
        "validation_replenish_tifu_knn_recall@10",
        "validation_replenish_recall@10_end_of_trip_day",
        "validation_replenish_recall@10_next_trip",
        "validation_discover_recall@10",
        "validation_discover_default_ndcg@10",
        "validation_discover_tifu_knn_recall@10",
        "validation_balanced_recall@10",
        "validation_balanced_default_recall@10",
    ):
        assert 0 <= metrics[key] <= 1, key
    assert "validation_balanced_top_frequency_recall@10" not in metrics  # the REPLENISH list again
    assert metrics["validation_customers"] == 25 and metrics["validation_seconds"] > 0
    assert metrics["validation_habit_decay"] == validation.habit_decay in tuning.TUNING_HABIT_DECAYS
    tuned = validation.results
    mean = np.mean([tuned[w][Strategy.REPLENISH][tuning.ENGINE_TUNED]["recall@10"] for w in AskedAt])
    assert metrics["validation_replenish_recall@10"] == pytest.approx(mean, abs=1e-6)
    assert validation.to_json()["metrics"] == metrics


def test_validate_judges_alike_whether_histories_come_from_the_lines_or_the_store(
    generated: Store, lines: PurchaseLines, products: list[Product], monkeypatch: pytest.MonkeyPatch
) -> None:
    def judged() -> dict[str, float]:
        validation = tuning.validate(generated, lines, products, lambda kept, _: build(kept, products), max_shoppers=20)
        assert validation is not None
        return {k: v for k, v in validation.metrics().items() if "seconds" not in k}

    from_lines = judged()
    monkeypatch.setattr(tuning, "known_lines", lambda trips, split: lambda customer_id: None)
    assert judged() == from_lines


def test_validate_tunes_a_big_shop_on_a_model_of_a_sample_of_its_shoppers(
    generated: Store, lines: PurchaseLines, products: list[Product], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "RERANK_SHOPPERS", 10)  # judged: the two groups alone
    built: list[PurchaseLines] = []

    def counting_build(kept: PurchaseLines, judged: np.ndarray) -> LoadedModel:
        built.append(kept)
        return build(kept, products)

    validation = tuning.validate(generated, lines, products, counting_build, max_shoppers=10, population=30, seed=2)
    assert validation is not None and validation.tuning_customers == 10
    learnt_from = set(np.unique(built[0].customer).tolist())
    assert len(learnt_from) == 30 < lines.n_customers
    # The model keeps every shopper's and product's code, so serving indexes it like the full one.
    assert built[0].customer_ids == lines.customer_ids and built[0].item_ids == lines.item_ids
    # The baselines learnt from the same shoppers (a shop this small is within their bound).
    assert validation.baseline_customers == 30


@pytest.mark.parametrize(("judged", "population"), [([0, 1], 5), ([3, 40, 77], 50), ([], 1), ([5, 6], 2)])
def test_population_samples_keep_the_judged(judged: list[int], population: int) -> None:
    assert list(tuning.population_sample(range(80), judged, 80, seed=4)) == list(range(80))
    sample = tuning.population_sample(range(80), judged, population, seed=4)
    assert list(sample) == sorted(set(sample)) and set(judged) <= set(sample)
    assert len(sample) == max(population, len(judged))
    assert sample == tuning.population_sample(range(80), judged, population, seed=4)
    inner = tuning.population_sample(sample, judged[:1], max(1, population // 2), seed=4)
    assert set(inner) <= set(sample) and set(judged[:1]) <= set(inner)


def test_validate_needs_two_shoppers_with_enough_trips(shop: Any, products: list[Product]) -> None:
    shop.weekly_milk_shopper("alice")
    shop.customer("bob")
    shop.trips("bob", [(9, ["milk"]), (2, ["bread"])])
    store = shop.store
    few = read_purchase_lines(store.scan_purchases(), [p.product_id for p in store.iter_products()])
    assert tuning.validate(store, few, list(store.iter_products()), lambda kept, judged: pytest.fail("built")) is None


def _reversing_trees() -> Any:
    """A re-ranker that turns the blend's head upside down: no trees, a start of -1 x its score."""
    from omnix_recs._core import RANK_FEATURES, Reranker

    base = np.zeros(len(RANK_FEATURES), np.float32)
    base[RANK_FEATURES.index("blend_score")] = -1.0
    empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return Reranker(
        n_features=len(RANK_FEATURES),
        base=base,
        feature=empty_i,
        threshold=empty_f,
        left=empty_i,
        right=empty_i,
        value=empty_f,
        roots=empty_i,
    )


def test_a_blend_with_trees_is_served_in_their_order(held_out: tuple[Recommender, Split]) -> None:
    from omnix_recs._core import RANK_FEATURES

    recommender, split = held_out
    blend = DEFAULT_BLENDS[Strategy.REPLENISH]
    upside_down = replace(blend, reranker=_reversing_trees())
    shopper = tuning.prepare(recommender, split, split.asked_at(AskedAt.NEXT_TRIP))[0]
    head, features = recommender.listed_with_features(shopper, blend, 64)
    served = recommender.rank_ids(shopper, upside_down, 10)
    score = dict(zip(head, features[:, RANK_FEATURES.index("blend_score")]))
    assert len(served) == 10 and set(served) <= set(head)
    assert [score[p] for p in served] == sorted(score[p] for p in served), "the head's weakest first"
    assert served != head[:10]


@pytest.mark.parametrize("cap", [0, 2])
def test_lists_judged_from_the_heads_are_the_served_lists(held_out: tuple[Recommender, Split], cap: int) -> None:
    """Judging trees from the heads already gathered must not change what is judged: a blend's
    first ten of its head are its served ten under any aisle cap, and without a cap the head in
    the trees' order is what serving lists with the trees."""
    from omnix_recs.engine.reranking import fit_reranker, head_candidates, reranked_head

    recommender, split = held_out
    shoppers = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))
    truth = split.truth(Strategy.REPLENISH)
    blend = replace(Blend({"popularity": 1.0, "habit": 0.3, "co_purchase": 0.2}), per_category_cap=cap)
    heads = head_candidates(recommender, shoppers, blend)
    trees = fit_reranker(heads, truth, trees=10)
    with_trees = replace(blend, reranker=trees)
    for shopper, head in zip(shoppers, heads):
        assert head[0][:10] == recommender.rank_ids(shopper, blend, 10)
        if cap == 0:
            assert reranked_head(trees, head, 10) == recommender.rank_ids(shopper, with_trees, 10)
    if cap == 0:
        assert any(reranked_head(trees, h, 10) != h[0][:10] for h in heads), "the trees changed some order"
    with pytest.raises(ValueError, match="head"):
        reranked_head(trees, heads[0], 20)


def test_trees_ship_only_when_they_beat_the_blend_on_other_shoppers(
    held_out: tuple[Recommender, Split], monkeypatch: pytest.MonkeyPatch
) -> None:
    recommender, split = held_out
    monkeypatch.setattr(tuning, "RERANK_MIN_SHOPPERS", 10)
    shoppers = tuning.prepare(recommender, split, tuning.mixed_moments(split, seed=0))
    truth = split.truth(Strategy.REPLENISH)
    # Popularity alone is a poor whole-basket list; trees that see the shopper's habit beat it.
    poor = Blend({"popularity": 1.0})
    learned = tuning.learn_reranking(recommender, shoppers, truth, poor)
    assert learned.reranker is not None and learned.weights == poor.weights
    assert mean_ndcg(recommender, split, learned, "replenish") > mean_ndcg(recommender, split, poor, "replenish")
    # Trees that only make the list worse are left out, and so are too few shoppers.
    monkeypatch.setattr(tuning, "fit_reranker", lambda *args, **kwargs: _reversing_trees())
    assert tuning.learn_reranking(recommender, shoppers, truth, DEFAULT_BLENDS[Strategy.REPLENISH]).reranker is None
    monkeypatch.setattr(tuning, "RERANK_MIN_SHOPPERS", 41)
    assert tuning.learn_reranking(recommender, shoppers, truth, poor).reranker is None
