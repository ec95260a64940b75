"""A shopper's purchase summary is the same whichever way the history is read.

A shopper-cache miss summarises `Store.order_lines_of` with `summarize_lines` (columns, the
Rust core); a list of `Purchase` rows (`Store.purchases_of`) is summarised by
`summarize_purchases`. Random histories with the awkward cases (several lines per order, a
product twice in one order, products outside the model, orders placed at the same moment, an
order whose lines carry different times) must give identical summaries both ways, and agree
with `reference.history.reference_summary`, the per-line Python code serving used before.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from reference.history import reference_summary

from omnix_recs import _core
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.purchases import OrderLines
from omnix_recs.engine.features import HABIT_DECAY, PurchaseSummary, summarize_lines, summarize_purchases
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PRODUCTS = [f"p{k}" for k in range(15)]
# The model knows ten of the fifteen products, at indices unrelated to their names.
INDEX_OF = {product: index for product, index in zip(PRODUCTS[:10], [7, 2, 9, 0, 5, 1, 8, 3, 6, 4])}
SEEDS = range(40)


def random_history(customer_id: str, seed: int) -> list[Purchase]:
    rng = random.Random(seed)
    purchases = []
    for order in range(rng.randint(0, 12)):
        # Few distinct days, so orders often share a moment; microseconds must survive.
        placed_at = T0 + timedelta(days=rng.choice([0, 7, 7, 14, 30, 31]), microseconds=rng.choice([0, 0, 1, 999_999]))
        for product_id in rng.choices(PRODUCTS, k=rng.randint(1, 6)):  # repeats: one product twice
            late = timedelta(minutes=rng.choice([0, 0, 0, 5]))  # a line recorded after the order was placed
            purchases.append(
                Purchase(
                    customer_id,
                    f"o{seed}-{order}",
                    product_id,
                    rng.randint(1, 4),
                    rng.choice([0.99, 2.5, 3.1, 12.75]),
                    placed_at + late,
                )
            )
    return purchases


def assert_identical(actual: PurchaseSummary, expected: PurchaseSummary) -> None:
    for name in PurchaseSummary.__slots__:
        a, e = getattr(actual, name), getattr(expected, name)
        if isinstance(e, np.ndarray):
            assert a.dtype == e.dtype and np.array_equal(a, e, equal_nan=True), name
        else:
            assert a == e, name


@pytest.fixture(scope="module")
def shoppers() -> Iterator[SqliteStore]:
    """A store holding one random history per seed (customer "s<seed>")."""
    store = SqliteStore.temporary()
    store.add_purchases([p for seed in SEEDS for p in random_history(f"s{seed}", seed)])
    yield store
    store.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_both_reads_of_the_store_give_the_same_summary(shoppers: SqliteStore, seed: int) -> None:
    from_lines = summarize_lines(shoppers.order_lines_of(f"s{seed}"), INDEX_OF)
    from_purchases = summarize_purchases(shoppers.purchases_of(f"s{seed}"), INDEX_OF)
    assert_identical(from_lines, from_purchases)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_summary_does_not_depend_on_the_order_of_lines(seed: int) -> None:
    purchases = random_history("c", seed)
    shuffled = random.Random(seed).sample(purchases, len(purchases))
    assert_identical(summarize_purchases(shuffled, INDEX_OF), summarize_purchases(purchases, INDEX_OF))


@pytest.mark.parametrize("habit_decay", [HABIT_DECAY, 0.5, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_the_summary_means_what_the_line_by_line_definition_says(seed: int, habit_decay: float) -> None:
    purchases = random_history("c", seed)
    actual = summarize_purchases(purchases, INDEX_OF, habit_decay=habit_decay)
    expected = reference_summary(purchases, INDEX_OF, habit_decay=habit_decay)
    for name in ("items", "last_bought_s", "mean_gap_days", "orders", "trip_times_s"):
        assert np.array_equal(getattr(actual, name), getattr(expected, name), equal_nan=True), name
        assert getattr(actual, name).dtype == getattr(expected, name).dtype, name
    # Sums in another order (the core adds spend smallest first, numpy's trip weights pairwise).
    np.testing.assert_allclose(actual.habit, expected.habit, rtol=1e-6)
    assert actual.habit.dtype == np.float32
    assert actual.spend == pytest.approx(expected.spend, rel=1e-12)
    assert actual.newest_line_s == expected.newest_line_s


def test_a_shopper_without_purchases_has_an_empty_summary() -> None:
    summary = summarize_purchases([], INDEX_OF)
    assert len(summary.items) == len(summary.trip_times_s) == 0
    assert (summary.spend, summary.newest_line_s) == (0.0, -math.inf)
    assert math.copysign(1.0, summary.spend) == 1.0  # +0.0: nothing spent, not "minus nothing"
    assert summary.covers(T0)


def test_order_lines_with_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        OrderLines(["o1"], ["p1", "p2"], np.ones(1, np.int64), np.ones(1), np.zeros(1))
    assert raised.value.field == "order_lines"


@pytest.mark.parametrize(
    ("purchased_at_s", "habit_decay", "message"),
    [
        (np.array([math.nan]), HABIT_DECAY, "purchased_at_s must be finite"),
        (np.array([math.inf]), HABIT_DECAY, "purchased_at_s must be finite"),
        (np.zeros(1), 0.0, "habit_decay"),
        (np.zeros(1), math.nan, "habit_decay"),
    ],
)
def test_malformed_lines_are_refused_by_the_core(purchased_at_s: np.ndarray, habit_decay: float, message: str) -> None:
    lines = OrderLines(["o1"], ["p1"], np.ones(1, np.int64), np.ones(1), purchased_at_s)
    with pytest.raises(_core.InvalidInputError, match=message):
        summarize_lines(lines, INDEX_OF, habit_decay=habit_decay)
