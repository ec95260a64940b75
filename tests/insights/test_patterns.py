"""Purchase frequency, shopping rhythm and trends."""

from __future__ import annotations

import pytest
from histories import NO_POPULATION, history_of, purchases, weekly

from omnix_recs.domain.consumption import customer_cycles
from omnix_recs.domain.patterns import Trend, detect_patterns


def patterns_of(rows, as_of_day):
    history = history_of(rows, as_of_day=as_of_day)
    return detect_patterns(history, customer_cycles(history, NO_POPULATION))


def test_frequency_per_product_and_category():
    rows = weekly(weeks=8, products=("milk", "bananas")) + purchases("c1", [(1, ["coffee"])])
    patterns = patterns_of(rows, as_of_day=56)

    assert [p.product_id for p in patterns.products] == ["milk", "bananas", "coffee"]  # most trips, then most spend
    milk = next(p for p in patterns.products if p.product_id == "milk")
    assert (milk.trips, milk.units, milk.trip_share) == (8, 8, pytest.approx(8 / 9))
    assert milk.per_month == pytest.approx(8 / (56 / 30))
    assert [(d.name, d.lines) for d in patterns.departments] == [("dairy eggs", 8), ("produce", 8), ("breakfast", 1)]
    assert patterns.visits == 9
    assert patterns.mean_basket_lines == pytest.approx(17 / 9)


def test_a_saturday_habit_is_found_and_midnight_imports_have_no_daypart():
    patterns = patterns_of(weekly(weeks=6), as_of_day=40)
    assert patterns.rhythm.habit_weekday == 5  # Saturday
    assert patterns.rhythm.weekday_share[5] == 1.0
    assert patterns.rhythm.daypart is None  # every trip at the same time of day: no signal
    assert patterns.rhythm.peak_month is None  # six weeks say nothing about seasons


def test_no_habit_when_trips_spread_over_the_week():
    rows = purchases("c1", [(d, ["milk"]) for d in (0, 8, 16, 24, 32, 40, 48)])  # a different day each time
    assert patterns_of(rows, as_of_day=50).rhythm.habit_weekday is None


@pytest.mark.parametrize(
    ("days", "as_of_day", "expected"),
    [
        ([0, 7, 14, 21, 28, 35], 40, Trend.STEADY),
        ([0, 7, 14, 21], 90, Trend.STOPPED),  # a weekly habit, silent for 69 days
        ([0, 7], 90, Trend.STEADY),  # two purchases are not a habit to stop
        ([0, 14, 28, 42, 56, 63, 67, 71], 72, Trend.GROWING),  # from fortnightly to every 4 days
        ([0, 4, 8, 12, 16, 20, 34, 48, 62], 63, Trend.FADING),  # from every 4 days to fortnightly
    ],
)
def test_trends(days, as_of_day, expected):
    patterns = patterns_of(purchases("c1", [(d, ["coffee"]) for d in days]), as_of_day=as_of_day)
    found = {t.product_id: t.trend for t in patterns.trends}
    assert found.get("coffee", Trend.STEADY) is expected


def test_stopped_product_evidence_names_the_cycle_and_the_silence():
    patterns = patterns_of(purchases("c1", [(d, ["coffee"]) for d in (0, 7, 14, 21)]), as_of_day=90)
    (trend,) = patterns.trends
    assert trend.evidence == "usually every 7 days; last bought 69 days ago"
