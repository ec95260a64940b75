"""Enriched history, consumption cycles and population cycles."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from histories import NO_POPULATION, at, history_of, purchases, weekly

from omnix_recs import _core
from omnix_recs.domain.consumption import (
    UNKNOWN,
    PopulationCycles,
    PurchaseTable,
    customer_cycles,
    population_cycles,
    to_day,
)
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.purchases import PurchaseColumns


def test_history_joins_the_catalog_and_keeps_unknown_products():
    rows = purchases("c1", [(0, ["milk"]), (3, ["milk"])]) + [Purchase("c1", "o9", "gone", 1, 2.0, at(1))]
    history = history_of(rows, as_of_day=2)

    assert [line.product_id for line in history.lines] == ["milk", "gone"]  # day 3 is after as_of
    assert (history.lines[0].name, history.lines[0].department, history.lines[0].aisle) == (
        "Whole Milk",
        "dairy eggs",
        "milk",
    )
    assert (history.lines[1].name, history.lines[1].department) == (UNKNOWN, UNKNOWN)
    assert [v.order_id for v in history.visits] == ["c1-day0", "o9"]


def test_weekly_buyer_gets_a_seven_day_cycle():
    cycles = customer_cycles(history_of(weekly(weeks=12), as_of_day=80), NO_POPULATION)
    milk = cycles.products["milk"]
    assert (milk.trips, milk.own_cycle_days, milk.cycle_days, milk.dispersion) == (12, 7.0, 7.0, 0.0)
    assert milk.confidence == pytest.approx(11 / 13)  # n / (n + k) with perfectly regular gaps
    assert cycles.visits.cycle_days == 7.0


def test_same_day_orders_count_as_one_trip():
    # A forgotten item fetched the same afternoon is not a 0-day cycle.
    rows = purchases("c1", [(0, ["milk"]), (0.2, ["milk"]), (7, ["milk"]), (14, ["milk"]), (14.1, ["milk"])])
    cycles = customer_cycles(history_of(rows, as_of_day=20), NO_POPULATION)
    assert cycles.products["milk"].trips == 3
    assert cycles.products["milk"].own_cycle_days == 7.0
    assert cycles.visits.trips == 3


@pytest.mark.parametrize(
    ("buys", "expected_own_weight"),
    [
        (2, 1 / 3),  # one gap: mostly the population's cycle
        (3, 2 / 4),
        (11, 10 / 12),  # ten gaps: mostly the customer's own
    ],
)
def test_few_purchases_are_shrunk_towards_the_population_cycle(buys, expected_own_weight):
    population = PopulationCycles(product_cycle_days={"milk": 14.0})
    rows = purchases("c1", [(4 * i, ["milk"]) for i in range(buys)])
    milk = customer_cycles(history_of(rows, as_of_day=4 * buys), population).products["milk"]
    expected = math.exp(expected_own_weight * math.log(4.0) + (1 - expected_own_weight) * math.log(14.0))
    assert milk.cycle_days == pytest.approx(expected)
    assert milk.population_cycle_days == 14.0


def test_one_purchase_takes_the_population_cycle_with_low_confidence():
    population = PopulationCycles(product_cycle_days={"coffee": 16.0})
    cycles = customer_cycles(history_of(purchases("c1", [(0, ["coffee", "milk"])]), as_of_day=3), population)
    assert (cycles.products["coffee"].cycle_days, cycles.products["coffee"].confidence) == (16.0, 0.3)
    assert not cycles.products["milk"].known  # no gap and no population cycle


def test_irregular_buyer_is_less_certain_than_a_regular_one():
    regular = purchases("c1", [(7 * i, ["milk"]) for i in range(7)])
    irregular = purchases("c1", [(d, ["milk"]) for d in (0, 3, 15, 20, 34, 38, 48)])
    a = customer_cycles(history_of(regular, as_of_day=50), NO_POPULATION).products["milk"]
    b = customer_cycles(history_of(irregular, as_of_day=50), NO_POPULATION).products["milk"]
    assert b.dispersion > 0.5 > a.dispersion
    assert a.confidence > b.confidence + 0.2


def huber_reference(gaps: np.ndarray, k: float = 1.345) -> float:
    """numpy reference of the core's Huber location (IRLS from the median, MAD scale, floor)."""
    centre = float(np.median(gaps))
    if len(gaps) <= 2:
        return centre
    scale = max(1.482602218505602 * float(np.median(np.abs(gaps - centre))), max(0.05 * centre, 0.25))
    location = centre
    for _ in range(50):
        distance = np.abs(gaps - location)
        weights = np.where(distance <= k * scale, 1.0, k * scale / np.maximum(distance, 1e-300))
        location = float(np.sum(weights * gaps) / np.sum(weights))
    return location


@pytest.mark.parametrize("seed", range(5))
def test_core_cycles_match_the_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    groups, days, expected = [], [], []
    for g in range(40):
        gaps = rng.gamma(4.0, rng.uniform(1, 10), size=rng.integers(1, 30))
        trip_days = np.concatenate([[0.0], np.cumsum(np.maximum(gaps, 0.6))])
        groups += [g] * len(trip_days)
        days += list(rng.permutation(trip_days))
        expected.append(huber_reference(np.diff(trip_days)))
    out = _core.consumption_cycles(np.array(groups), np.array(days), np.full(40, np.nan))
    np.testing.assert_allclose(out["own_cycle_days"], expected, rtol=1e-7)
    np.testing.assert_allclose(out["cycle_days"], expected, rtol=1e-7)  # no prior: own estimate


@pytest.mark.parametrize(
    ("codes", "days", "options", "message"),
    [
        ([0, 5], [0.0, 1.0], {}, "outside 0..2"),
        ([0, 1], [0.0, np.inf], {}, "days[1] is not a finite number"),
        ([0, 1], [0.0], {}, "group_codes has 2 rows but days has 1"),
        ([0, 1], [0.0, 1.0], {"prior_strength": -1.0}, "prior_strength must be"),
    ],
)
def test_core_rejects_bad_input_with_its_own_error(codes, days, options, message):
    with pytest.raises(_core.InvalidInputError, match=re.escape(message)):
        _core.consumption_cycles(np.array(codes), np.array(days), np.full(2, np.nan), **options)


def test_population_cycles_count_each_repeat_buyer_once():
    heavy = [("heavy", d) for d in range(0, 60, 2)]  # every 2 days, 30 times
    steady = [(c, d) for c in ("a", "b") for d in (0, 10, 20, 30)]
    rows = heavy + steady + [("a", 5)]
    columns = PurchaseColumns(
        customer_ids=[c for c, _ in rows],
        order_ids=[f"{c}{d}" for c, d in rows],
        product_ids=["milk"] * (len(rows) - 1) + ["coffee"],
        quantities=[1] * len(rows),
        unit_prices=[1.0] * len(rows),
        purchased_at=[int(to_day(at(d)) * 86400) for _, d in rows],
    )
    population = population_cycles(PurchaseTable.from_columns([columns]))
    assert population.product_cycle_days == {"milk": 10.0}  # median of (2, 10, 10)
    assert population.repeat_rate == {"milk": 1.0, "coffee": 0.0}
    assert population.customers == 3
    # Median trip gaps: heavy 2, b 10, a 7.5 (its coffee trip on day 5 splits a gap).
    assert population.visit_cycle_days == 7.5


def test_empty_store_gives_an_empty_population():
    assert population_cycles(PurchaseTable.from_columns([])) == PopulationCycles()


def test_sampling_keeps_whole_customers_and_is_stable():
    rows = [(f"c{c}", d) for c in range(200) for d in (0, 7, 14)]
    columns = PurchaseColumns(
        customer_ids=[c for c, _ in rows],
        order_ids=[f"{c}-{d}" for c, d in rows],
        product_ids=["milk"] * len(rows),
        quantities=[1] * len(rows),
        unit_prices=[1.0] * len(rows),
        purchased_at=[int(to_day(at(d)) * 86400) for _, d in rows],
    )
    half = PurchaseTable.from_columns([columns], customer_share=0.5)
    assert 70 < len(half.customer_ids) < 130
    assert len(half) == 3 * len(half.customer_ids)  # every kept customer with all their trips
    assert PurchaseTable.from_columns([columns], customer_share=0.5).customer_ids == half.customer_ids
