"""The Rust ranking kernel against its numpy reference, and its guarantees on hand-built cases."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from reference.rank import rank_reference

from omnix_recs._core import RANK_SIGNALS, InvalidInputError, RankTables


def random_tables(
    rng: np.random.Generator, n: int, k: int = 12, weeks: int = 53, taste_dims: int = 6
) -> dict[str, np.ndarray]:
    def neighbours() -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, n, size=(n, k)).astype(np.int32)
        idx[rng.random((n, k)) < 0.2] = -1
        score = np.sort(rng.random((n, k)).astype(np.float32), axis=1)[:, ::-1].copy()
        return idx, score

    cooc_idx, cooc_sim = neighbours()
    fbt_idx, fbt_score = neighbours()
    content_idx, content_sim = neighbours()
    cycle = rng.uniform(3, 40, n).astype(np.float32)
    cycle[rng.random(n) < 0.3] = np.nan
    return {
        "cooc_idx": cooc_idx,
        "cooc_sim": cooc_sim,
        "fbt_idx": fbt_idx,
        "fbt_score": fbt_score * 4,
        "content_idx": content_idx,
        "content_sim": content_sim,
        "popularity": rng.random(n).astype(np.float32),
        "trending": rng.normal(0, 1, n).astype(np.float32),
        "seasonal_lift": rng.lognormal(0, 0.4, (n, weeks)).astype(np.float32),
        "population_cycle_days": cycle,
        "repurchase_rate": rng.random(n).astype(np.float32),
        "taste_factors": rng.normal(0, 0.3, (n, taste_dims)).astype(np.float32),
    }


def random_request(
    rng: np.random.Generator, n: int, history_size: int, basket_size: int, **overrides: object
) -> dict[str, object]:
    items = rng.choice(n, size=history_size + basket_size, replace=False).astype(np.int32)
    history = history_size
    orders = rng.integers(1, 12, history).astype(np.float32)
    gaps = rng.uniform(2, 30, history).astype(np.float32)
    gaps[orders == 1] = np.nan
    request: dict[str, object] = {
        "history_items": items[:history],
        "days_since_last": rng.uniform(0, 60, history).astype(np.float32),
        "mean_gap_days": gaps,
        "orders": orders,
        "habit": rng.random(history).astype(np.float32),
        "basket": items[history:],
        "allowed": rng.random(n) < 0.8,
        "category_ids": rng.integers(-1, 20, n).astype(np.int32),
        "brand_ids": rng.integers(-1, 50, n).astype(np.int32),
        "extra_candidates": rng.choice(n, size=30, replace=False).astype(np.int32),
        "weights": rng.uniform(0, 2, len(RANK_SIGNALS)).astype(np.float32),
        "week": int(rng.integers(0, 53)),
        "k": 20,
        "exclude_history": False,
        "per_category_cap": 0,
        "neighbours_per_item": 8,
        "days_to_next_trip": float(rng.uniform(0, 10)),
        "like_you_items": rng.choice(n, size=25, replace=False).astype(np.int32),
        "like_you_scores": rng.random(25).astype(np.float32),
        "replaced_weight": float(rng.choice([0.0, 0.5, 1.0])),
        "popularity_discount": 0.0,
    }
    request.update(overrides)
    return request


CASES = [
    pytest.param(dict(history=40, basket=0), id="history-only"),
    pytest.param(dict(history=40, basket=5), id="history-and-basket"),
    pytest.param(dict(history=0, basket=3), id="basket-only"),
    pytest.param(dict(history=0, basket=0), id="new-customer"),
    pytest.param(dict(history=60, basket=2, exclude_history=True), id="discover"),
    pytest.param(dict(history=60, basket=2, per_category_cap=2), id="aisle-cap"),
    pytest.param(dict(history=200, basket=10, k=200), id="long-list"),
    pytest.param(dict(history=60, basket=2, exclude_history=True, taste_dims=0), id="no-taste-factors"),
    pytest.param(
        dict(history=40, basket=2, days_to_next_trip=0.0, like_you_items=None, like_you_scores=None),
        id="no-rhythm-no-shoppers-like-you",
    ),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_numpy_reference(case: dict[str, object], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    params = dict(case)
    tables = random_tables(rng, n, taste_dims=int(params.pop("taste_dims", 6)))  # type: ignore[call-overload]
    request = random_request(rng, n, int(params.pop("history")), int(params.pop("basket")), **params)  # type: ignore[call-overload]
    request["popularity_discount"] = [0.0, 0.3, 1.0][seed]

    items, scores, confidence, reasons, anchors = RankTables(**tables).rank(**request)
    expected = rank_reference(tables, **request)

    np.testing.assert_array_equal(items, expected.items)
    np.testing.assert_allclose(scores, expected.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(confidence, expected.confidence, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(reasons, expected.reasons)
    assert anchors.shape == reasons.shape


def test_hard_rules_hold_on_random_requests() -> None:
    rng = np.random.default_rng(7)
    n = 300
    ranker = RankTables(**random_tables(rng, n))
    for _ in range(50):
        request = random_request(rng, n, 30, 4, exclude_history=True, per_category_cap=1)
        items, scores, *_ = ranker.rank(**request)
        allowed = request["allowed"]
        assert allowed[items].all()  # type: ignore[index]
        assert not set(items) & set(request["basket"])  # type: ignore[arg-type]
        assert not set(items) & set(request["history_items"])  # type: ignore[arg-type]
        categories = request["category_ids"][items]  # type: ignore[index]
        known = categories[categories >= 0]
        assert len(known) == len(set(known))
        assert np.all(np.diff(scores) <= 0)


def test_neighbour_reasons_name_the_anchor() -> None:
    rng = np.random.default_rng(3)
    n = 50
    tables = random_tables(rng, n, k=4)
    tables["fbt_idx"][:] = -1
    tables["fbt_idx"][5, 0] = 9
    tables["fbt_score"][5, 0] = 50.0
    weights = np.zeros(len(RANK_SIGNALS), np.float32)
    weights[RANK_SIGNALS.index("basket_complement")] = 1.0
    request = random_request(rng, n, 0, 0, basket=np.array([5], np.int32), weights=weights, allowed=np.ones(n, bool))
    items, _, _, reasons, anchors = RankTables(**tables).rank(**request)
    assert items.tolist() == [9]
    assert reasons[0, 0] == RANK_SIGNALS.index("basket_complement")
    assert anchors[0, 0] == 5


def test_tables_are_borrowed_not_copied() -> None:
    rng = np.random.default_rng(4)
    tables = {name: np.require(a, requirements="C") for name, a in random_tables(rng, 30).items()}
    for array in tables.values():
        array.flags.writeable = False  # as when memory-mapped read-only
    RankTables(**tables).rank(**random_request(rng, 30, 5, 1))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (dict(basket=np.array([999], np.int32)), "basket item index 999"),
        (dict(history_items=np.array([-3], np.int32)), "history arrays must all have"),
        (dict(allowed=np.ones(10, bool)), "allowed has 10 entries"),
        (dict(weights=np.ones(3, np.float32)), "weights must have"),
        (dict(weights=np.full(len(RANK_SIGNALS), -1, np.float32)), "finite and >= 0"),
        (dict(week=60), "week column 60"),
    ],
)
def test_bad_requests_raise_invalid_input(override: dict[str, object], message: str) -> None:
    rng = np.random.default_rng(5)
    n = 40
    ranker = RankTables(**random_tables(rng, n))
    with pytest.raises(InvalidInputError, match=message):
        ranker.rank(**random_request(rng, n, 4, 1, **override))


@pytest.mark.parametrize(
    ("name", "corrupt", "message"),
    [
        ("cooc_idx", lambda a: a.__setitem__((0, 0), 20), "cooc neighbour index 20"),
        ("taste_factors", lambda a: a.__setitem__((3, 1), np.nan), "taste_factors must be finite"),
    ],
)
def test_inconsistent_tables_are_rejected(name: str, corrupt: Callable[[np.ndarray], None], message: str) -> None:
    rng = np.random.default_rng(6)
    tables = random_tables(rng, 20)
    corrupt(tables[name])
    with pytest.raises(InvalidInputError, match=message):
        RankTables(**tables)


def test_taste_factors_must_cover_every_item() -> None:
    rng = np.random.default_rng(8)
    tables = random_tables(rng, 20)
    tables["taste_factors"] = tables["taste_factors"][:19]
    with pytest.raises(InvalidInputError, match=r"taste_factors must be \[20, 6\]"):
        RankTables(**tables)


def test_taste_reads_the_whole_history() -> None:
    """Two products liked by the shopper's kind of household rank first, whichever history
    product they are closest to: the shopper vector sums the whole history."""
    rng = np.random.default_rng(9)
    n = 40
    tables = random_tables(rng, n, taste_dims=2)
    factors = np.zeros((n, 2), np.float32)
    factors[:10, 0] = 0.3  # the shopper's taste: history 0-7, to discover 8 and 9
    factors[10:, 1] = 0.2
    factors[9, 0] = 0.5
    tables["taste_factors"] = factors
    weights = np.zeros(len(RANK_SIGNALS), np.float32)
    weights[RANK_SIGNALS.index("taste")] = 1.0
    extra = np.arange(8, n, dtype=np.int32)
    request = random_request(rng, n, 0, 0, weights=weights, allowed=np.ones(n, bool), extra_candidates=extra)
    request.update(
        exclude_history=True,
        history_items=np.arange(8, dtype=np.int32),
        days_since_last=np.full(8, 5, np.float32),
        mean_gap_days=np.full(8, np.nan, np.float32),
        orders=np.ones(8, np.float32),
        habit=np.full(8, 0.1, np.float32),
    )
    items, scores, _, reasons, _ = RankTables(**tables).rank(**request)
    assert items.tolist() == [9, 8]
    np.testing.assert_allclose(scores, [1.0, 0.6], rtol=1e-6)
    assert (reasons[:, 0] == RANK_SIGNALS.index("taste")).all()
