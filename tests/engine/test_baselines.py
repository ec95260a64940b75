"""The baselines (engine/baselines.py) and their lists (`tuning.baseline_lists`) against the
per-shopper reference they were vectorised from (benches/reference/baselines.py).

Sameness is exact: every score bit for bit, every list item for item, ties included (the
reference's top-k leaves ties across the k-th place to `np.argpartition`; so must the package).
Shops are drawn to tie a lot: few items, small counts, look-alike shoppers, masks that hide
most of the catalog, shoppers with no history at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from generated_shop import generated_shop_db
from reference import baselines as reference

from omnix_recs.engine import baselines, tuning
from omnix_recs.engine.holdout import Trips, hold_out
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.store import open_store

Histories = list[list[np.ndarray]]

BASELINES: dict[str, Callable[[], tuple[baselines.Baseline, reference.Baseline]]] = {
    "popularity": lambda: (baselines.GlobalPopularity(), reference.GlobalPopularity()),
    "top frequency": lambda: (baselines.PersonalFrequency(), reference.PersonalFrequency()),
    "item-knn": lambda: (baselines.ItemKNN(), reference.ItemKNN()),
    "item-knn, 3 neighbours": lambda: (baselines.ItemKNN(neighbours=3), reference.ItemKNN(neighbours=3)),
    "tifu-knn": lambda: (baselines.TifuKNN(), reference.TifuKNN()),
    "tifu-knn, 7 neighbours, 4 groups": lambda: (
        baselines.TifuKNN(neighbours=7, groups=4, within_decay=0.5, group_decay=0.8, alpha=0.6),
        reference.TifuKNN(neighbours=7, groups=4, within_decay=0.5, group_decay=0.8, alpha=0.6),
    ),
    "tifu-knn, 1 neighbour": lambda: (baselines.TifuKNN(neighbours=1), reference.TifuKNN(neighbours=1)),
}


def random_histories(seed: int, n_shoppers: int, n_items: int, max_trips: int, max_basket: int) -> Histories:
    """Skewed item popularity, repeats within a basket, a tenth of shoppers with no trips, and
    pairs of shoppers with the same history (equal distances, equal scores)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    histories: Histories = []
    for _ in range(n_shoppers):
        if histories and rng.random() < 0.15:
            histories.append([b.copy() for b in histories[int(rng.integers(len(histories)))]])
            continue
        trips = 0 if rng.random() < 0.1 else int(rng.integers(1, max_trips + 1))
        histories.append(
            [
                rng.choice(n_items, size=int(rng.integers(1, max_basket + 1)), p=popularity).astype(np.int32)
                for _ in range(trips)
            ]
        )
    return histories


def random_masks(seed: int, n_masks: int, n_items: int) -> list[np.ndarray]:
    """What each judged shopper may be shown: mostly all, some half, some a handful of items."""
    rng = np.random.default_rng(seed + 1000)
    share = rng.choice([1.0, 0.5, 0.01], size=n_masks, p=[0.6, 0.3, 0.1])
    return [rng.random(n_items) < s for s in share]


SHOPS = {
    # (seed, shoppers, items, most trips, largest basket)
    "tiny catalog": (1, 120, 12, 6, 4),
    "many ties": (2, 400, 60, 9, 5),
    "wider catalog": (3, 300, 2_000, 12, 8),
    "one shopper": (4, 1, 30, 5, 5),
}


@pytest.mark.parametrize("shop", SHOPS.values(), ids=SHOPS.keys())
@pytest.mark.parametrize("make", BASELINES.values(), ids=BASELINES.keys())
def test_lists_and_scores_are_the_reference_ones(
    shop: tuple[int, int, int, int, int], make: Callable[[], tuple[baselines.Baseline, reference.Baseline]]
) -> None:
    seed, n_shoppers, n_items, max_trips, max_basket = shop
    histories = random_histories(seed, n_shoppers, n_items, max_trips, max_basket)
    rows = sorted(np.random.default_rng(seed).permutation(n_shoppers)[: max(1, n_shoppers // 2)].tolist())
    shown = random_masks(seed, len(rows), n_items)
    item_ids = [f"p{i:05d}" for i in range(n_items)]
    new, old = make()
    for k in (1, 10):
        assert tuning.baseline_lists(new, histories, rows, shown, item_ids, k) == reference.baseline_lists(
            old, histories, rows, shown, item_ids, k
        )
    expected = np.stack([old.scores(row) for row in range(n_shoppers)])
    for row in range(n_shoppers):
        np.testing.assert_array_equal(new.scores(row), expected[row], err_msg=f"shopper {row}")
    everyone = np.arange(n_shoppers, dtype=np.int64)
    np.testing.assert_array_equal(new.scores_of(everyone), expected)
    np.testing.assert_array_equal(new.scores_of(everyone[::-1]), expected[::-1])


def test_tifu_scores_a_block_of_shoppers_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    histories = random_histories(8, 300, 50, 10, 6)
    new, old = baselines.TifuKNN(neighbours=20), reference.TifuKNN(neighbours=20)
    new.fit(histories, 50)
    old.fit(histories, 50)
    monkeypatch.setattr(baselines, "TIFU_CELLS", 1000)  # a few shoppers a block
    shoppers = np.arange(300, dtype=np.int64)
    np.testing.assert_array_equal(new.scores_of(shoppers), np.stack([old.scores(row) for row in range(300)]))


TOP_K_CASES = {
    # (seed, rows, items, k, distinct scores, share of -inf, share of NaN)
    "few distinct scores": (1, 50, 3_000, 10, 5, 0.0, 0.0),
    "many distinct scores": (2, 50, 3_000, 10, 10**9, 0.0, 0.0),
    "mostly hidden": (3, 50, 3_000, 10, 50, 0.999, 0.0),
    "everything hidden": (4, 5, 300, 10, 50, 1.0, 0.0),
    "not a number": (5, 20, 500, 10, 7, 0.1, 0.05),
    "k above the catalog": (6, 10, 7, 10, 3, 0.2, 0.0),
    "k of one": (7, 30, 1_000, 1, 4, 0.0, 0.0),
}


@pytest.mark.parametrize("case", TOP_K_CASES.values(), ids=TOP_K_CASES.keys())
def test_top_k_rows_is_top_k_row_by_row(case: tuple[int, int, int, int, int, float, float]) -> None:
    seed, n_rows, n_items, k, distinct, hidden, nan = case
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, distinct, size=(n_rows, n_items)).astype(np.float64) / 7.0
    scores[rng.random((n_rows, n_items)) < hidden] = -np.inf
    scores[rng.random((n_rows, n_items)) < nan] = np.nan
    expected = [reference.top_k(row, k) for row in scores]
    tops = baselines.top_k_rows(scores, k)
    for row, top, want in zip(scores, tops, expected):
        np.testing.assert_array_equal(top, want[np.isfinite(row[want])])
    for row in scores:
        np.testing.assert_array_equal(tuning.top_k(row, k), reference.top_k(row, k))


def test_tifu_user_vectors_are_the_reference_ones() -> None:
    histories = random_histories(5, 200, 40, 30, 6)
    tifu, old = baselines.TifuKNN(groups=3), reference.TifuKNN(groups=3)
    tifu.fit(histories, 40)
    old.fit(histories, 40)
    for row, baskets in enumerate(histories):
        np.testing.assert_array_equal(tifu.user_vector(baskets, 40), old.user_vector(baskets, 40))
        np.testing.assert_array_equal(tifu.scores(row), old.scores(row), err_msg=f"shopper {row}")


def test_incidence_is_the_reference_one() -> None:
    histories = random_histories(6, 150, 25, 8, 6)
    new, old = baselines.incidence(histories, 25), reference.incidence(histories, 25)
    np.testing.assert_array_equal(new.indptr, old.indptr)
    np.testing.assert_array_equal(new.indices, old.indices)
    np.testing.assert_array_equal(new.data, old.data)
    assert new.indices.dtype == old.indices.dtype and new.data.dtype == old.data.dtype


@pytest.mark.parametrize("make", BASELINES.values(), ids=BASELINES.keys())
def test_no_history_at_all(make: Callable[[], tuple[baselines.Baseline, reference.Baseline]]) -> None:
    histories: Histories = [[], []]
    new, old = make()
    shown = [np.ones(5, dtype=bool)] * 2
    item_ids = list("abcde")
    assert tuning.baseline_lists(new, histories, [0, 1], shown, item_ids, 3) == reference.baseline_lists(
        old, histories, [0, 1], shown, item_ids, 3
    )


@pytest.fixture(scope="module")
def generated_histories(tmp_path_factory: pytest.TempPathFactory) -> tuple[Histories, list[int], list[str]]:
    """A small generated shop's histories without each eligible shopper's latest trip."""
    db: Path = generated_shop_db(
        tmp_path_factory.mktemp("baselines-shop"), customers=150, products=300, days=120, seed=11
    )
    store = open_store(f"sqlite:///{db}")
    try:
        catalog = [p.product_id for p in store.iter_products()]
        lines = read_purchase_lines(store.scan_purchases(), catalog, expected_rows=store.count_purchases())
    finally:
        store.close()
    trips = Trips.of(lines)
    split = hold_out(trips, trips.eligible())
    return trips.histories(split.targets), split.customers.tolist(), lines.item_ids


@pytest.mark.parametrize("make", BASELINES.values(), ids=BASELINES.keys())
def test_lists_on_a_generated_shop_are_the_reference_ones(
    generated_histories: tuple[Histories, list[int], list[str]],
    make: Callable[[], tuple[baselines.Baseline, reference.Baseline]],
) -> None:
    histories, rows, item_ids = generated_histories
    shown = random_masks(7, len(rows), len(item_ids))
    new, old = make()
    lists = tuning.baseline_lists(new, histories, rows, shown, item_ids, 10)
    assert lists == reference.baseline_lists(old, histories, rows, shown, item_ids, 10)
    assert sum(map(len, lists[tuning.Strategy.REPLENISH])) > 5 * len(rows)  # the shop gives real lists
