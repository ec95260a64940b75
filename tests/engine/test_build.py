"""The model build (engine/build.py and the Rust neighbour kernels), against numpy/scipy references."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from reference.shoppers import habit_weights, shoppers_like_you

from omnix_recs import _core
from omnix_recs.domain.models import Product, Purchase
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.engine.build import (
    DAY_SECONDS,
    BuildParameters,
    build_from_lines,
    build_model,
    content_neighbours,
    decayed_popularity,
    iso_week_columns,
    read_training_data,
    repeat_purchases,
    seasonal_lift,
    trending_velocity,
)
from omnix_recs.engine.holdout import lines_without
from omnix_recs.engine.matrix import PurchaseLines, read_purchase_lines
from omnix_recs.errors import FailedPreconditionError
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

# --- references --------------------------------------------------------------------------------


def random_matrix(seed: int, n_rows: int = 300, n_items: int = 60, density: float = 0.08) -> sp.csr_matrix:
    """Groups × items with positive float weights and a popularity skew (some items empty)."""
    rng = np.random.default_rng(seed)
    popularity = np.linspace(2.0, 0.0, n_items) ** 2
    mask = rng.random((n_rows, n_items)) < density * popularity
    weights = np.where(mask, rng.uniform(0.5, 3.0, (n_rows, n_items)), 0.0).astype(np.float32)
    return sp.csr_matrix(weights)


def cosine_reference(x: sp.csr_matrix, shrink: float) -> np.ndarray:
    """Full item × item shrunk-cosine matrix; -inf where items share no group, and on the diagonal."""
    dots = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(dots))
    with np.errstate(invalid="ignore"):  # 0/0 for items nobody bought; masked below
        scores = dots / (np.outer(norms, norms) + shrink)
    scores[dots == 0] = -np.inf
    np.fill_diagonal(scores, -np.inf)
    return scores


def lift_reference(baskets: sp.csr_matrix, min_support: int, prior: float) -> np.ndarray:
    together = (baskets.T @ baskets).toarray().astype(np.float64)
    holding = np.diag(together)
    expected = np.outer(holding, holding) / baskets.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):  # items in no basket; masked below
        scores = (together + prior) / (expected + prior)
    scores[(together < min_support) | (scores <= 1)] = -np.inf
    np.fill_diagonal(scores, -np.inf)
    return scores


def assert_top_k_matches(idx: np.ndarray, score: np.ndarray, reference: np.ndarray, k: int) -> None:
    """Each row holds the k best reference scores, best first, with the right item for each
    (checked via the reference score of the item returned, so exact ties may go either way)."""
    n = reference.shape[0]
    assert idx.shape == score.shape == (n, k) and idx.dtype == np.int32 and score.dtype == np.float32
    padding = np.full((n, max(0, k - n)), -np.inf)  # k may exceed the number of other items
    expected = np.hstack([-np.sort(-reference, axis=1), padding])[:, :k]
    valid = np.isfinite(expected)
    np.testing.assert_array_equal(idx >= 0, valid)
    np.testing.assert_allclose(score[valid], expected[valid], rtol=1e-5)
    np.testing.assert_array_equal(score[~valid], 0.0)
    rows, cols = np.nonzero(valid)
    np.testing.assert_allclose(reference[rows, idx[rows, cols]], score[rows, cols], rtol=1e-5)


def csr_args(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data.astype(np.float32)


# --- Rust kernels ------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "k", "shrink"), [(0, 5, 0.0), (1, 10, 2.0), (2, 80, 10.0), (3, 1, 0.5)])
def test_cosine_neighbours_match_scipy(seed: int, k: int, shrink: float) -> None:
    x = random_matrix(seed)
    idx, sim = _core.cosine_item_neighbours(*csr_args(x), x.shape[1], k, shrink)
    assert_top_k_matches(idx, sim, cosine_reference(x, shrink), k)


@pytest.mark.parametrize(("seed", "min_support", "prior"), [(0, 1, 0.0), (1, 2, 1.0), (2, 3, 5.0)])
def test_basket_complements_match_scipy(seed: int, min_support: int, prior: float) -> None:
    baskets = random_matrix(seed, n_rows=600, density=0.15)
    baskets.data[:] = 1.0
    indptr, indices, _ = csr_args(baskets)
    idx, lift = _core.basket_complements(indptr, indices, baskets.shape[1], 8, min_support, prior)
    assert_top_k_matches(idx, lift, lift_reference(baskets, min_support, prior), 8)


def test_complements_outrank_substitutes() -> None:
    """Pasta goes in baskets with sauce; two milks are bought by the same households, but on
    different trips. Co-purchase pairs the milks; basket lift pairs pasta with sauce only."""
    pasta, sauce, milk_a, milk_b = range(4)
    baskets, customers = [], []
    for household in range(20):
        baskets += [[pasta, sauce], [milk_a], [milk_b]]
        customers.append([pasta, sauce, milk_a, milk_b] if household % 2 else [milk_a, milk_b])

    def as_csr(rows: list[list[int]]) -> sp.csr_matrix:
        return sp.csr_matrix(
            (
                np.ones(sum(map(len, rows)), dtype=np.float32),
                np.concatenate(rows),
                np.cumsum([0] + [len(r) for r in rows]),
            ),
            shape=(len(rows), 4),
        )

    fbt_idx, _ = _core.basket_complements(*csr_args(as_csr(baskets))[:2], 4, 3, 1, 1.0)
    cooc_idx, _ = _core.cosine_item_neighbours(*csr_args(as_csr(customers)), 4, 3, 0.0)
    assert fbt_idx[pasta].tolist() == [sauce, -1, -1]
    assert fbt_idx[milk_a].tolist() == [-1, -1, -1]
    assert cooc_idx[milk_a][0] == milk_b


def test_kernels_run_concurrently_from_threads() -> None:
    """The GIL is released during the work; concurrent calls neither deadlock nor interfere."""
    x = random_matrix(7, n_rows=2000, n_items=300)
    expected = _core.cosine_item_neighbours(*csr_args(x), 300, 20, 1.0)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    threads = [
        threading.Thread(target=lambda: results.append(_core.cosine_item_neighbours(*csr_args(x), 300, 20, 1.0)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    for idx, sim in results:
        np.testing.assert_array_equal(idx, expected[0])
        np.testing.assert_array_equal(sim, expected[1])


GOOD = dict(
    indptr=np.array([0, 2, 3], dtype=np.int64),
    indices=np.array([0, 1, 1], dtype=np.int32),
    data=np.ones(3, dtype=np.float32),
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indices": np.array([0, 1], dtype=np.int32)}, "indptr ends at 3 but indices has 2"),
        ({"data": np.ones(2, dtype=np.float32)}, "data has 2 entries but indices has 3"),
        ({"indices": np.array([0, -1, 1], dtype=np.int32)}, "indices[1] = -1 is outside 0..2"),
        ({"indices": np.array([0, 2, 1], dtype=np.int32)}, "indices[1] = 2 is outside 0..2"),
        ({"indptr": np.array([1, 2, 3], dtype=np.int64)}, "indptr must start with 0"),
        ({"indptr": np.array([0, 3, 2], dtype=np.int64)}, "indptr must be non-decreasing"),
        ({"indices": np.array([1, 1, 1], dtype=np.int32)}, "row 0 lists column 1 more than once"),
        ({"data": np.array([1, -1, 1], dtype=np.float32)}, "data[1] = -1 must be a finite positive weight"),
        ({"data": np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)[::2]}, "data must be a contiguous 1-d array"),
        ({"n_items": -1}, "n_items must be between 0"),
        ({"k": 0}, "k must be between 1 and 1000"),
        ({"shrink": -1.0}, "shrink must be a finite number >= 0"),
    ],
)
def test_cosine_rejects_bad_input(change: dict, message: str) -> None:
    args = {**GOOD, "n_items": 2, "k": 2, "shrink": 0.0, **change}
    with pytest.raises(
        _core.InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        _core.cosine_item_neighbours(**args)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"min_support": 0}, "min_support must be at least 1"), ({"prior": float("nan")}, "prior must be a finite")],
)
def test_basket_complements_reject_bad_input(change: dict, message: str) -> None:
    args = {
        "indptr": GOOD["indptr"],
        "indices": GOOD["indices"],
        "n_items": 2,
        "k": 2,
        "min_support": 1,
        "prior": 1.0,
        **change,
    }
    with pytest.raises(_core.InvalidInputError, match=message):
        _core.basket_complements(**args)


# --- per-item signals --------------------------------------------------------------------------

AS_OF = 1_790_000_000


def lines_of(rows: list[tuple[int, int, float]], n_items: int = 3) -> PurchaseLines:
    """(customer, item, days before AS_OF) per line; every line its own basket."""
    rows_array = np.array(rows, dtype=np.float64).reshape(-1, 3)
    n_customers = int(rows_array[:, 0].max()) + 1 if rows else 0
    return PurchaseLines(
        customer=rows_array[:, 0].astype(np.int32),
        item=rows_array[:, 1].astype(np.int32),
        basket=np.arange(len(rows), dtype=np.int32),
        purchased_at=(AS_OF - rows_array[:, 2] * DAY_SECONDS).astype(np.int64),
        customer_ids=[f"c{n}" for n in range(n_customers)],
        item_ids=[f"i{n}" for n in range(n_items)],
        n_baskets=len(rows),
    )


def test_popularity_halves_every_half_life() -> None:
    lines = lines_of([(0, 0, 0), (0, 1, 30), (1, 1, 30), (0, 2, 60)])
    np.testing.assert_allclose(decayed_popularity(lines, AS_OF, 30.0), [1.0, 1.0, 0.25])


def test_trending_compares_recent_rate_with_the_weeks_before() -> None:
    # Item 0: 10 sales in the last 14 days, none before; item 1: steady 1 a day; item 2: fading.
    rows = [(0, 0, d) for d in range(10)] + [(0, 1, d) for d in range(42)] + [(0, 2, 20 + d) for d in range(10)]
    trending = trending_velocity(lines_of(rows), AS_OF, 14, 28, prior=5.0)
    np.testing.assert_allclose(trending, [np.log(15 / 5), np.log(19 / 19), np.log(5 / 10)], rtol=1e-6)


def test_iso_week_columns() -> None:
    moments = [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2027, 1, 4, tzinfo=UTC),
    ]
    seconds = np.array([int(m.timestamp()) for m in moments], dtype=np.int64)
    assert iso_week_columns(seconds).tolist() == [m.isocalendar().week - 1 for m in moments]


def test_seasonal_lift_is_shrunk_towards_one() -> None:
    # Item 0 sells 50 a week but 200 in one week; item 1 sells once, in that week; item 2 is
    # the rest of the shop, 500 a week.
    peak = datetime(2025, 12, 17, tzinfo=UTC)
    days_before = (datetime.fromtimestamp(AS_OF, tz=UTC) - peak).days
    rows = [(0, 0, days_before - 7 * w) for w in range(-20, 30) for _ in range(50) if w != 0]
    rows += [(0, 2, days_before - 7 * w) for w in range(-20, 30) for _ in range(500)]
    rows += [(0, 0, days_before)] * 200 + [(1, 1, days_before)]
    lift = seasonal_lift(lines_of(rows), prior=5.0)
    week = peak.isocalendar().week - 1
    assert lift.shape == (3, 53) and lift.dtype == np.float32
    assert lift[0, week] > 2.0 > lift[0, week - 1] > 1.0  # the peak, smoothed into its neighbours
    assert 0.8 < lift[1, week] < 1.3  # one sale proves nothing
    assert np.all(lift > 0)


def test_repeat_purchases() -> None:
    # Item 0: customer 0 every 7 days, customer 1 every 9 days, customer 2 once. Item 1: once.
    rows = [(0, 0, d) for d in (0, 7, 14, 21)] + [(1, 0, d) for d in (0, 9, 18)] + [(2, 0, 3), (2, 1, 3)]
    cycle, rate = repeat_purchases(lines_of(rows), same_trip_days=0.5)
    np.testing.assert_allclose(cycle[:2], [8.0, np.nan])
    assert np.isnan(cycle[2])
    np.testing.assert_allclose(rate, [2 / 3, 0.0, 0.0])


# --- the whole build ---------------------------------------------------------------------------

PRODUCTS = [
    Product("pasta", "Spaghetti", "pantry", "pasta", "Roma", 1.5),
    Product("penne", "Penne Pasta", "pantry", "pasta", "Roma", 1.6),
    Product("sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0),
    Product("milk", "Whole Milk", "dairy", "milk", "Dairyland", 1.2),
    Product("oat", "Oat Milk", "dairy", "milk", "Oaty", 1.8),
    Product("never", "Never Bought", "dairy", "milk", "Oaty", 1.9),
]
NOW = datetime(2026, 11, 20, tzinfo=UTC)
PARAMS = BuildParameters(neighbours=3, basket_min_support=2, basket_prior=1.0, copurchase_shrink=1.0)


@pytest.fixture
def pasta_shop(tmp_path: Path) -> Iterator[Store]:
    """Ten households over eight weeks: pasta with sauce weekly, milk or oat milk alternately."""
    store = open_store(f"sqlite:///{tmp_path / 'shop.db'}")
    store.upsert_products(PRODUCTS)
    lines = []
    for h in range(10):
        for week in range(8):
            at = NOW - timedelta(days=7 * week, hours=h)
            basket = ["pasta" if week % 2 else "penne", "sauce", "milk" if (week + h) % 2 else "oat"]
            lines += [Purchase(f"c{h}", f"c{h}-w{week}", p, 1, 1.0, at) for p in basket]
    lines.append(Purchase("c0", "late", "extra", 1, 1.0, NOW + timedelta(days=1)))  # not in the catalog
    store.add_purchases(lines)
    yield store
    store.close()


def test_build_from_the_store(pasta_shop: Store) -> None:
    built = build_model(pasta_shop, parameters=PARAMS)
    ids = built.item_ids
    assert ids == sorted({p.product_id for p in PRODUCTS} | {"extra"})  # catalog plus history
    assert built.counts["order_lines"] == 241 and built.counts["customers"] == 10 and built.counts["baskets"] == 81
    assert built.data_as_of == NOW + timedelta(days=1)
    a = built.arrays
    n = len(ids)
    for name in ("cooc", "fbt", "content"):
        index, score = a[f"{name}_idx"], a[f"{name}_sim" if name != "fbt" else "fbt_score"]
        assert index.shape == score.shape == (n, 3)
    fbt_of_pasta = [ids[j] for j in a["fbt_idx"][ids.index("pasta")] if j >= 0]
    assert fbt_of_pasta[0] == "sauce" and "penne" not in fbt_of_pasta
    content_of_milk = a["content_idx"][ids.index("milk")]
    assert content_of_milk[0] >= 0 and ids[content_of_milk[0]] == "oat"  # same aisle, shares "milk"
    assert a["popularity"].max() == pytest.approx(1.0) and a["popularity"][ids.index("never")] == 0
    assert a["population_cycle_days"][ids.index("sauce")] == pytest.approx(7.0)
    assert a["repurchase_rate"][ids.index("sauce")] == pytest.approx(1.0)
    assert np.isnan(a["population_cycle_days"][ids.index("never")])
    assert a["seasonal_lift"].shape == (n, 53)
    customers = a["like_you_customers"].tolist()
    assert sorted(customers) == sorted(f"c{n}" for n in range(10)) and len(a["like_you_indptr"]) == 11
    assert (np.diff(a["like_you_indptr"]) > 0).all(), "every shopper has fellow shoppers here"


def test_the_content_table_depends_on_the_catalog_alone(pasta_shop: Store) -> None:
    """Training computes it once for its validation build (fewer lines) and its served build."""
    products, lines = read_training_data(pasta_shop)
    content = content_neighbours(products, lines.item_ids, PARAMS)
    for some in (lines, lines_without(lines, np.arange(0, lines.n_baskets, 2))):
        own, shared = (
            build_from_lines(some, products, PARAMS),
            build_from_lines(some, products, PARAMS, content=content),
        )
        assert own.arrays.keys() == shared.arrays.keys()
        for name, array in own.arrays.items():
            np.testing.assert_array_equal(shared.arrays[name], array, err_msg=name)
        assert "content" in own.stage_seconds and "content" not in shared.stage_seconds


def test_a_build_on_the_background_pool_is_the_same_build(pasta_shop: Store) -> None:
    """Training's served build runs on the core's background pool (rust_core/src/gil.rs): only
    where the work runs changes, for the thread that asked and only until it stops asking."""
    products, lines = read_training_data(pasta_shop)
    shared = build_from_lines(lines, products, PARAMS)

    def in_background() -> dict[str, np.ndarray]:
        _core.use_background_pool(True)
        try:
            return build_from_lines(lines, products, PARAMS).arrays
        finally:
            _core.use_background_pool(False)

    with ThreadPoolExecutor(1) as pool:
        background = pool.submit(in_background).result()
    for name, array in shared.arrays.items():
        np.testing.assert_array_equal(background[name], array, err_msg=name)


def test_build_as_of_a_past_moment_ignores_later_purchases(pasta_shop: Store) -> None:
    as_of = NOW - timedelta(days=20)
    built = build_model(pasta_shop, as_of=as_of, parameters=PARAMS)
    assert "extra" not in built.item_ids
    assert built.data_as_of is not None and built.data_as_of < as_of
    assert built.counts["order_lines"] == 10 * 5 * 3  # weeks 3..7 before NOW


def random_lines(seed: int, n_customers: int = 40, n_items: int = 30) -> tuple[np.ndarray, ...]:
    """Order lines of a small shop with two tastes: (customer, basket, item, purchased_at)."""
    rng = np.random.default_rng(seed)
    customer, basket, item, at = [], [], [], []
    code = 0
    for c in range(n_customers):
        shelf = np.arange(n_items // 2) + (n_items // 2 if c % 2 else 0)
        for _ in range(int(rng.integers(1, 7))):
            when = int(rng.integers(0, 10**6))
            for i in rng.choice(shelf, size=int(rng.integers(1, 6))):  # repeats: a product twice in a trip
                customer.append(c), basket.append(code), item.append(i), at.append(when + int(rng.integers(0, 60)))
            code += 1
    order = rng.permutation(len(item))  # lines in any order
    return tuple(
        np.asarray(column, dtype=dtype)[order]
        for column, dtype in ((customer, np.int32), (basket, np.int32), (item, np.int32), (at, np.int64))
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_customer_habit_weights_match_numpy(seed: int) -> None:
    customer, basket, item, at = random_lines(seed)
    indptr, indices, data = _core.customer_habit_weights(customer, basket, item, at, 40, 30, habit_decay=0.8)
    got = sp.csr_matrix((data, indices, indptr), shape=(40, 30)).toarray()
    np.testing.assert_allclose(got, habit_weights(customer, basket, item, at, 40, 30, 0.8), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("neighbours", "items"), [(3, 5), (10, 20)])
def test_shoppers_like_you_match_numpy(seed: int, neighbours: int, items: int) -> None:
    customer, basket, item, at = random_lines(seed)
    indptr, got_items, got_scores = _core.shoppers_like_you_table(
        customer, basket, item, at, 40, 30, habit_decay=0.9, neighbours=neighbours, items=items, postings_cap=0
    )
    expected = shoppers_like_you(habit_weights(customer, basket, item, at, 40, 30, 0.9), neighbours, items)
    for c, row in enumerate(expected):
        start, stop = indptr[c], indptr[c + 1]
        np.testing.assert_allclose(got_scores[start:stop], [s for _, s in row], rtol=1e-4)
        # Items in the same order, except where scores tie to within rounding.
        assert sorted(got_items[start:stop].tolist()) == sorted(i for i, _ in row) or len(row) == items
        assert all(i // 15 == c % 2 for i in got_items[start:stop]), "a neighbour's products share their taste"


def test_a_capped_index_still_finds_close_neighbours() -> None:
    customer, basket, item, at = random_lines(3, n_customers=120)
    exact = _core.shoppers_like_you_table(
        customer, basket, item, at, 120, 30, habit_decay=0.9, neighbours=5, items=10, postings_cap=0
    )
    capped = _core.shoppers_like_you_table(
        customer, basket, item, at, 120, 30, habit_decay=0.9, neighbours=5, items=10, postings_cap=8
    )
    assert len(capped[0]) == 121 and (np.diff(capped[0]) > 0).all()
    for c in range(120):  # the same taste on either side, whatever the cap left out
        assert all(i // 15 == c % 2 for i in capped[1][capped[0][c] : capped[0][c + 1]])
    assert not np.array_equal(exact[1], capped[1]) or np.array_equal(exact[2], capped[2])


def test_shoppers_like_you_for_some_customers_are_their_rows_of_the_whole_table() -> None:
    customer, basket, item, at = random_lines(4)
    args = dict(habit_decay=0.9, neighbours=5, items=10, postings_cap=8)
    whole = _core.shoppers_like_you_table(customer, basket, item, at, 40, 30, **args)
    only = np.array([3, 17, 39], dtype=np.int32)
    some = _core.shoppers_like_you_table(customer, basket, item, at, 40, 30, only=only, **args)
    for c in range(40):
        rows = [table[1][table[0][c] : table[0][c + 1]].tolist() for table in (whole, some)]
        assert rows[1] == (rows[0] if c in only else [])
    with pytest.raises(_core.InvalidInputError, match="only: customer code 40 outside 0..40"):
        _core.shoppers_like_you_table(customer, basket, item, at, 40, 30, only=np.array([40], dtype=np.int32), **args)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"item": np.array([99], dtype=np.int32)}, "item codes"), ({"basket": np.array([], dtype=np.int32)}, "length")],
)
def test_shoppers_like_you_rejects_bad_lines(change: dict, message: str) -> None:
    args = {
        "customer": np.array([0], dtype=np.int32),
        "basket": np.array([0], dtype=np.int32),
        "item": np.array([1], dtype=np.int32),
        "purchased_at": np.array([5], dtype=np.int64),
    } | change
    with pytest.raises(_core.InvalidInputError, match=message):
        _core.shoppers_like_you_table(*args.values(), 1, 2, habit_decay=0.9, neighbours=2, items=2, postings_cap=0)


def test_build_with_a_catalog_but_no_purchases() -> None:
    lines = read_purchase_lines([PurchaseColumns([], [], [], [], [], [])], ["b", "a"])
    built = build_from_lines(lines, [], PARAMS)
    assert built.data_as_of is None
    assert (built.arrays["cooc_idx"] == -1).all() and (built.arrays["seasonal_lift"] == 1).all()


def test_nothing_to_build_from() -> None:
    with pytest.raises(FailedPreconditionError, match="nothing to train on"):
        build_from_lines(read_purchase_lines([]), [], PARAMS)
