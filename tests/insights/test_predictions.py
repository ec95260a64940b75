"""Next trip, next purchase per product, due now, scoring forecasts, and the survival outlook's
Rust kernel against a numpy reference."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import numpy as np
import pytest
from histories import NO_POPULATION, at, history_of, purchases, weekly

from omnix_recs import _core
from omnix_recs.domain.consumption import PopulationCycles, PurchaseTable, customer_cycles, population_cycles
from omnix_recs.domain.outlook import (
    OVERDUE_FRACTION,
    SCALE_STEPS_PER_OCTAVE,
    VISIT_OUTLOOK,
    GapSample,
    OutlookSettings,
    tune_visit_outlook,
)
from omnix_recs.domain.predictions import (
    ConsumptionForecast,
    forecast_consumption,
    product_outlooks,
    score_forecast,
    summarise_scores,
)
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.insights.evaluate import rank_auc

# Own gaps only, each weighing the same: answers that can be worked out by hand.
FLAT = OutlookSettings(population_weight=10.0, scale_exponent=1.0, recency_half_life=0.0)


def forecast_of(rows, as_of_day, population=NO_POPULATION):
    history = history_of(rows, as_of_day=as_of_day)
    return forecast_consumption(history, customer_cycles(history, population), population)


def by_product(forecast):
    return {p.product_id: p for p in forecast.products}


def sample_of(gaps, scales) -> GapSample:
    return GapSample(np.asarray(gaps, dtype=float), np.asarray(scales, dtype=float))


# --- next trip ---------------------------------------------------------------------------------


def test_weekly_shopper_is_expected_on_their_next_saturday_with_the_weekly_items_due():
    rows = weekly(weeks=10, products=("milk",)) + purchases("c1", [(7 * w, ["coffee"]) for w in range(0, 10, 2)])
    forecast = forecast_of(rows, as_of_day=65)  # last trip on day 63

    assert forecast.next_visit_at == at(70)
    assert forecast.next_visit_at.weekday() == 5
    assert forecast.visit_confidence == pytest.approx(9 / 11)
    products = by_product(forecast)
    assert products["milk"].next_purchase_at == at(70) and products["milk"].due_now
    # Coffee every 14 days, last on day 56: expected on day 70 too, the next trip.
    assert products["coffee"].next_purchase_at == at(70) and products["coffee"].due_now
    assert products["milk"].confidence == products["coffee"].confidence == 1.0  # both surely within 4 weeks
    assert [p.product_id for p in forecast.due_now] == ["coffee", "milk"]  # ties by id


def test_the_wait_so_far_rules_out_every_shorter_gap():
    # A top-up 3 days after each big shop, the next big shop 11 days later: gaps 3, 11, 3, 11...
    days = [0, 3, 14, 17, 28, 31, 42]
    rows = purchases("c1", [(d, ["milk"]) for d in days])
    population = PopulationCycles(visit_outlook=FLAT)
    # Five days after the big shop on day 42 the 3-day gaps are ruled out: 11 - 5 more days.
    assert forecast_of(rows, as_of_day=47, population=population).next_visit_at == at(53)
    # The mean gap (7 days) would have said day 49; right after the shop, the top-up comes first
    # (half the gaps are 3 days: the lower median of 3, 3, 3, 11, 11, 11 is 3).
    assert forecast_of(rows, as_of_day=42.5, population=population).next_visit_at == at(45)


def test_a_short_history_leans_on_the_population():
    # One 4-day gap of their own, two days ago; everyone else shops every 10 days.
    rows = purchases("c1", [(0, ["milk"]), (4, ["milk"])])
    population = PopulationCycles(
        visit_gaps=sample_of([10.0] * 40, [10.0] * 40), visit_outlook=dataclasses.replace(FLAT, scale_exponent=0.0)
    )
    # Own wait 2 days (weight 1) against the population's 6 days (weight 10).
    assert forecast_of(rows, as_of_day=8, population=population).next_visit_at == at(14)


def test_population_gaps_are_moved_towards_the_customers_own_pace():
    # Ten own gaps of 4 days, the last trip a day ago; a population shopping every 16 days (its
    # weight 30 against 10), whose gaps are rescaled to the customer's own 4 days when β = 1 and
    # left as they are when β = 0.
    rows = purchases("c1", [(4 * k, ["milk"]) for k in range(11)])
    for beta, expected_day in [(1.0, 44), (0.0, 56)]:
        settings = OutlookSettings(population_weight=30.0, scale_exponent=beta, recency_half_life=0.0)
        population = PopulationCycles(visit_gaps=sample_of([16.0] * 50, [16.0] * 50), visit_outlook=settings)
        assert forecast_of(rows, as_of_day=41, population=population).next_visit_at == at(expected_day)


def test_a_customer_late_beyond_every_gap_seen_is_expected_soon_and_with_less_confidence():
    forecast = forecast_of(weekly(weeks=10, products=("milk",)), as_of_day=63 + 11)  # 11 days since day 63
    assert forecast.next_visit_at == at(74) + timedelta(days=OVERDUE_FRACTION * 7)
    assert forecast.visit_confidence < 0.6
    # A population of weekly shoppers who sometimes take a fortnight says how much longer.
    population = PopulationCycles(visit_gaps=sample_of([7.0] * 30 + [14.0] * 10, [7.0] * 40), visit_outlook=FLAT)
    assert forecast_of(weekly(weeks=10, products=("milk",)), as_of_day=74, population=population).next_visit_at == at(
        77
    )


def test_no_history_means_no_forecast():
    forecast = forecast_of([], as_of_day=10)
    assert forecast.next_visit_at is None
    assert forecast.products == ()


# --- next purchase -----------------------------------------------------------------------------


def test_stopped_and_one_off_products_are_not_forecast():
    rows = weekly(weeks=12, products=("milk",)) + purchases("c1", [(7 * w, ["chips"]) for w in range(4)])
    rows += purchases("c1", [(3, ["lager", "soap"])])
    population = PopulationCycles(
        product_gaps=sample_of([20.0, 30.0, 40.0, 60.0, 90.0, 120.0], [30.0] * 6),
        product_cycle_days={"lager": 10.0, "soap": 30.0},
        repeat_rate={"lager": 0.1, "soap": 0.6},
        product_outlook=FLAT,
    )
    products = by_product(forecast_of(rows, as_of_day=80, population=population))

    assert "chips" not in products  # weekly for a month, silent since day 21: stopped
    assert "lager" not in products  # bought once; few people buy it again
    assert "soap" in products  # bought once, but most buyers repeat it (population cycle)
    # 77 days since: only the population's 90- and 120-day gaps remain, waits of 13 and 43 days;
    # one of the two falls within the 28-day horizon, and 60 % of buyers buy soap again.
    assert products["soap"].next_purchase_at == at(80 + 13)
    assert products["soap"].confidence == pytest.approx(0.5 * 0.6)
    assert not products["soap"].due_now  # a population guess is never "due"


def test_a_product_forecast_is_its_date_if_bought_within_the_horizon():
    # Bought after gaps of 10, 10, 40 and 40 days; one day after the last purchase, half of its
    # gaps say "within four weeks" (in 9 days), half say "in 39 days".
    rows = purchases("c1", [(d, ["coffee"]) for d in (0, 10, 20, 60, 100)])
    history = history_of(rows, as_of_day=101)
    population = PopulationCycles(product_outlook=FLAT, visit_outlook=FLAT)
    outlook = product_outlooks(history, customer_cycles(history, population), population)["coffee"]
    assert outlook.horizon_probability == pytest.approx(0.5)
    assert outlook.within_horizon and outlook.next_purchase_at == at(110)


def test_forecast_survives_its_stored_document():
    forecast = forecast_of(weekly(weeks=6), as_of_day=40)
    assert ConsumptionForecast.from_document("c1", forecast.to_document()) == forecast


# --- scoring -----------------------------------------------------------------------------------


def test_scoring_against_what_the_customer_did_next():
    rows = weekly(weeks=10, products=("milk",)) + purchases("c1", [(7 * w, ["coffee"]) for w in range(0, 10, 2)])
    forecast = forecast_of(rows, as_of_day=58)  # next trip day 63: milk due; coffee on day 70
    later = purchases("c1", [(64, ["milk", "bananas"]), (73, ["coffee"])])

    score = score_forecast(forecast, later)
    assert not score.pending
    assert score.visit_error_days == pytest.approx(1.0)
    assert sorted(score.product_errors_days) == pytest.approx([1.0, 3.0])  # milk 64 vs 63, coffee 73 vs 70
    assert (score.due_predicted, score.due_hits, score.next_trip_forecast_products) == (1, 1, 1)


def test_a_forecast_without_a_trip_since_is_pending():
    forecast = forecast_of(weekly(weeks=6), as_of_day=40)
    score = score_forecast(forecast, [])
    assert score.pending and math.isnan(score.visit_error_days)
    summary = summarise_scores([score])
    assert (summary.forecasts, summary.scored) == (1, 0)
    assert math.isnan(summary.next_visit_mae_days) and math.isnan(summary.due_now_precision)


def test_summary_pools_errors_and_due_now_counts():
    rows = weekly(weeks=10, products=("milk", "bananas"))
    forecast = forecast_of(rows, as_of_day=65)  # both due on day 70
    hit = score_forecast(forecast, purchases("c1", [(71, ["milk"])]))
    miss = score_forecast(forecast, purchases("c1", [(70, ["soap"])]))
    summary = summarise_scores([hit, miss])
    assert summary.next_visit_mae_days == pytest.approx(0.5)
    assert summary.due_now_precision == pytest.approx(1 / 4)
    assert summary.due_now_recall == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("scores", "bought", "auc"),
    [
        ([0.9, 0.8, 0.1, 0.2], [True, True, False, False], 1.0),
        ([0.1, 0.2, 0.9, 0.8], [True, True, False, False], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),
        ([0.9, 0.3, 0.5, 0.1], [True, False, True, False], 1.0),
        ([0.9, 0.5, 0.5, 0.1], [True, True, False, False], 0.875),  # one tie counts half
    ],
)
def test_rank_auc_counts_pairs_ranked_right(scores, bought, auc):
    assert rank_auc(np.array(scores), np.array(bought)) == pytest.approx(auc)


# --- the visit settings are chosen on the data -------------------------------------------------


def regular_shoppers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` customers, each perfectly regular at their own cadence of 4 to 20 days and with three
    trips before day 96, the cut-off of the tuning's first backtest (the data ends on day 124)."""
    customers, days = [0], [124.5]
    for c in range(n):
        cadence = 4.0 + 16.0 * c / max(1, n - 1)
        day = 96.0 - 2.5 * cadence
        while day < 124.0:
            customers.append(c)
            days.append(day)
            day += cadence
    return np.array(customers, dtype=np.int64), np.array(days)


def test_tuning_keeps_each_customer_at_their_own_pace_when_everyone_is_regular():
    customers, days = regular_shoppers(80)
    chosen = tune_visit_outlook(customers, days)
    # Two gaps of their own weigh less than the population's: only population gaps fully
    # rescaled to each customer's own pace (β = 1) keep every prediction on it.
    assert chosen.scale_exponent == 1.0


def test_too_few_customers_keep_the_default_visit_settings():
    customers, days = regular_shoppers(10)
    assert tune_visit_outlook(customers, days) == VISIT_OUTLOOK
    assert tune_visit_outlook(np.zeros(0, dtype=np.int64), np.zeros(0)) == VISIT_OUTLOOK


def test_population_cycles_carry_rounded_gap_samples_and_tuned_settings():
    customers, days = regular_shoppers(80)
    columns = PurchaseColumns(
        customer_ids=[f"c{c}" for c in customers],
        order_ids=[f"o{i}" for i in range(len(days))],
        product_ids=["milk"] * len(days),
        quantities=[1] * len(days),
        unit_prices=[1.0] * len(days),
        purchased_at=[int(d * 86_400) for d in days],
    )
    population = population_cycles(PurchaseTable.from_columns([columns]))
    assert len(population.visit_gaps) > 0 and len(population.product_gaps) > 0
    steps = np.log2(population.visit_gaps.scales) * SCALE_STEPS_PER_OCTAVE
    assert np.allclose(steps, np.round(steps))
    assert population.visit_outlook.scale_exponent == 1.0
    assert population_cycles(PurchaseTable.from_columns([columns]), tune=False).visit_outlook == VISIT_OUTLOOK


# --- the Rust kernels against numpy ------------------------------------------------------------


def outlook_reference(days, as_of, scale, gaps, scales, weight, beta, half_life, horizon):
    """numpy version of one group's `_core.next_occurrences` (median, chance within the horizon,
    median within it)."""
    trips: list[float] = []
    for day in np.sort(days[days < as_of]):
        if not trips or day - trips[-1] >= 0.5:
            trips.append(day)
    if not trips:
        return math.nan, 0.0, math.nan
    elapsed = as_of - trips[-1]
    own_gaps = np.diff(trips)
    keep = own_gaps - elapsed > -1e-6
    age = len(own_gaps) - 1 - np.arange(len(own_gaps))
    own_weight = (0.5 ** (age / half_life) if half_life > 0 else np.ones(len(own_gaps)))[keep]
    factor = (scale / scales) ** beta if math.isfinite(scale) and scale > 0 and beta > 0 else np.ones(len(gaps))
    moved = gaps * factor
    taken = moved - elapsed > -1e-6
    waits = np.maximum(np.concatenate([own_gaps[keep], moved[taken]]) - elapsed, 0.0)
    weights = np.concatenate([own_weight, np.full(int(taken.sum()), weight / max(1, int(taken.sum())))])
    if not len(waits) or weights.sum() <= 0:
        return math.inf, 0.0, math.nan
    order = np.argsort(waits, kind="stable")
    waits, cumulative = waits[order], np.cumsum(weights[order])

    def quantile(target):
        return float(waits[min(np.searchsorted(cumulative, target * (1 - 1e-12)), len(waits) - 1)])

    within = float(weights[order][waits <= horizon].sum())
    total = float(cumulative[-1])
    return quantile(0.5 * total), within / total, quantile(0.5 * within) if within > 0 else math.nan


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("uniform_scales", [True, False])
def test_next_occurrences_matches_numpy(beta, uniform_scales):
    rng = np.random.default_rng(11)
    groups = 60
    codes = rng.integers(0, groups, size=1500)
    days = rng.uniform(0.0, 200.0, size=1500)
    scales = np.where(rng.random(groups) < 0.2, np.nan, rng.uniform(2.0, 30.0, groups))
    gaps = rng.lognormal(np.log(8.0), 0.8, size=400)
    owners = np.ones(400) * 8.0 if uniform_scales else np.exp2(rng.integers(1, 6, size=400) / 2.0)
    as_of, weight, half_life, horizon = 180.0, 7.3, 6.0, 12.0
    out = _core.next_occurrences(
        codes, days, scales, as_of, gaps, owners,
        population_weight=weight, scale_exponent=beta, recency_half_life=half_life, horizon_days=horizon,
    )  # fmt: skip
    expected = np.array(
        [
            outlook_reference(days[codes == g], as_of, scales[g], gaps, owners, weight, beta, half_life, horizon)
            for g in range(groups)
        ]
    )
    np.testing.assert_allclose(out["median_days"], expected[:, 0], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(out["horizon_probability"], expected[:, 1], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out["horizon_median_days"], expected[:, 2], rtol=1e-9, atol=1e-6)
    # Days since the last trip, dated by its first purchase (purchases half a day apart are one trip).
    assert np.all(
        out["elapsed_days"] >= as_of - np.array([days[(codes == g) & (days < as_of)].max() for g in range(groups)])
    )
    assert np.all(
        out["elapsed_days"] < as_of - np.array([days[(codes == g) & (days < as_of)].max() for g in range(groups)]) + 0.5
    )


def test_next_occurrences_rejects_bad_input_naming_it():
    with pytest.raises(_core.InvalidInputError, match="population_scales"):
        _core.next_occurrences(np.zeros(1, dtype=np.int64), np.zeros(1), np.ones(1), 5.0, np.ones(2), np.ones(1))
    with pytest.raises(_core.InvalidInputError, match="scale_exponent"):
        _core.next_occurrences(
            np.zeros(1, dtype=np.int64), np.zeros(1), np.ones(1), 5.0, np.ones(1), np.ones(1), scale_exponent=2.0
        )


def test_population_gap_sample_matches_numpy():
    # Three buyers of one item: every gap of buyers with two gaps or more, with their median gap.
    customers = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2], dtype=np.int64)
    days = np.array([0.0, 2.0, 7.0, 8.0, 0.0, 5.0, 1.0, 4.0, 10.0])
    out = _core.population_cycles(customers, np.zeros(9, dtype=np.int64), days, 1)
    expected_gaps, expected_scales = [], []
    for c in range(3):
        gaps = np.diff(np.sort(days[customers == c]))
        if len(gaps) >= 2:
            expected_gaps += list(gaps)
            expected_scales += [float(np.median(gaps))] * len(gaps)
    np.testing.assert_allclose(out["sample_gaps"], expected_gaps)
    np.testing.assert_allclose(out["sample_scales"], expected_scales)
    assert (
        len(_core.population_cycles(customers, np.zeros(9, dtype=np.int64), days, 1, max_gap_sample=2)["sample_gaps"])
        == 2
    )
