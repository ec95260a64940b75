"""Learned re-ranking: the trees (Rust) against a plain Python walk, how blends keep them, and
how serving and training use them (engine/reranking.py, rust_core/src/engine/rerank.rs)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from omnix_recs._core import RANK_FEATURES, InvalidInputError, Reranker, train_reranker
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy, describe, reranker_from_json, reranker_to_json

N_FEATURES = len(RANK_FEATURES)
BLEND_SCORE = RANK_FEATURES.index("blend_score")


def python_predict(arrays: dict[str, Any], x: np.ndarray) -> float:
    """The reference: walk each tree node by node."""
    total = float(np.dot(arrays["base"], x)) if len(arrays["base"]) else 0.0
    for root in arrays["roots"]:
        node = int(root)
        while arrays["feature"][node] >= 0:
            go_left = x[arrays["feature"][node]] <= arrays["threshold"][node]
            node = int(arrays["left"][node] if go_left else arrays["right"][node])
        total += float(arrays["value"][node])
    return total


def queries(rng: np.random.Generator, n_queries: int, per_query: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose relevance depends on two features non-linearly (what one weight cannot say)."""
    x = rng.random((n_queries * per_query, N_FEATURES), dtype=np.float32)
    relevant = (x[:, 0] > 0.7) & (x[:, 3] < 0.4)
    starts = np.arange(0, n_queries * per_query + 1, per_query, dtype=np.int64)
    return x, relevant.astype(np.float32), starts


def fit(x: np.ndarray, y: np.ndarray, starts: np.ndarray, **overrides: Any) -> Reranker:
    params: dict[str, Any] = dict(
        base=np.zeros(0, np.float32),
        trees=20,
        depth=3,
        learning_rate=0.3,
        min_leaf=5,
        l2=1.0,
        ndcg_k=5,
        bins=32,
    )
    params.update(overrides)
    return train_reranker(x, y, starts, **params)


def test_predictions_match_a_plain_walk_of_the_trees() -> None:
    rng = np.random.default_rng(3)
    x, y, starts = queries(rng, 60)
    base = rng.normal(size=N_FEATURES).astype(np.float32)
    reranker = fit(x, y, starts, base=base)
    arrays = reranker.arrays()
    assert reranker.n_trees == 20 and reranker.n_features == N_FEATURES
    got = reranker.predict(x[:200])
    want = [python_predict(arrays, row) for row in x[:200]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_trees_learn_what_a_weighted_sum_cannot() -> None:
    rng = np.random.default_rng(4)
    x, y, starts = queries(rng, 200)
    scores = fit(x, y, starts).predict(x)
    top = [int(np.argmax(scores[a:b])) + a for a, b in zip(starts[:-1], starts[1:]) if y[a:b].any()]
    assert np.mean(y[top]) > 0.9  # the first row of nearly every query is a relevant one


def test_blends_keep_their_trees_through_the_manifest() -> None:
    rng = np.random.default_rng(5)
    x, y, starts = queries(rng, 40)
    blend = replace(DEFAULT_BLENDS[Strategy.REPLENISH], reranker=fit(x, y, starts))
    stored = json.loads(json.dumps(blend.to_json()))
    back = Blend.from_json(stored)
    assert back.reranker is not None and back.weights == blend.weights
    np.testing.assert_array_equal(back.reranker.predict(x), blend.reranker.predict(x))  # type: ignore[union-attr]
    assert "re-ranked by 20 trees" in describe(back)
    assert "reranker" not in DEFAULT_BLENDS[Strategy.REPLENISH].to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(features=v["features"][:-1]), "other features"),
        (lambda v: v.update(value="many"), "value must be a list of numbers"),
        (lambda v: v.update(left=[True] * len(v["left"])), "left must be a list of numbers"),
        (lambda v: v.update(roots=[10_000]), "root"),
        (lambda v: v.update(left=[0] * len(v["left"])), "children come after their parent"),
        (lambda v: v.update(base=[1.0]), "one weight per feature"),
        (lambda v: v.pop("threshold"), "threshold must be a list"),
    ],
)
def test_a_damaged_reranker_is_refused_by_name(change: Any, message: str) -> None:
    rng = np.random.default_rng(6)
    stored = reranker_to_json(fit(*queries(rng, 20)))
    change(stored)
    with pytest.raises(ValueError, match=message):
        reranker_from_json(stored)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"labels": np.zeros(3, np.float32)}, "labels"),
        ({"query_starts": np.array([0, 5], np.int64)}, "query_starts"),
        ({"depth": 0}, "depth"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"base": np.ones(2, np.float32)}, "base"),
    ],
)
def test_training_refuses_malformed_input(args: dict[str, Any], message: str) -> None:
    rng = np.random.default_rng(7)
    x, y, starts = queries(rng, 4)
    given: dict[str, Any] = {"labels": y, "query_starts": starts, **args}
    labels, query_starts = given.pop("labels"), given.pop("query_starts")
    with pytest.raises(InvalidInputError, match=message):
        fit(x, labels, query_starts, **given)


def reversing_trees() -> Reranker:
    """No trees, a start of -1 x the blend's score: the head upside down."""
    base = np.zeros(N_FEATURES, np.float32)
    base[BLEND_SCORE] = -1.0
    no_i, no_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return Reranker(
        n_features=N_FEATURES, base=base, feature=no_i, threshold=no_f, left=no_i, right=no_i, value=no_f, roots=no_i
    )


def test_served_lists_follow_the_trees_and_keep_their_reasons(
    shop: Any, store: Any, fixed_models: Any, hand_made_model: Any
) -> None:
    from omnix_recs.engine.recommender import Recommender

    shop.weekly_milk_shopper()
    blend = DEFAULT_BLENDS[Strategy.REPLENISH]
    served = {}
    for name, chosen, limit in (("blend", blend, 8), ("trees", replace(blend, reranker=reversing_trees()), 5)):
        recommender = Recommender(store, fixed_models(hand_made_model), blends={s: chosen for s in Strategy})
        served[name] = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=limit, as_of=shop.now)
    whole_head = [i.product_id for i in served["blend"].items]
    reranked = [i.product_id for i in served["trees"].items]
    assert whole_head[0] == "milk" and "milk" not in reranked, "the blend's first is the trees' last"
    assert reranked == whole_head[::-1][:5]
    scores = [i.score for i in served["trees"].items]
    assert scores == sorted(scores, reverse=True), "scores still fall down the list"
    assert all(i.reasons for i in served["trees"].items)
