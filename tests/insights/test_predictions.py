"""Next trip, next purchase per product, due now, and scoring forecasts against what happened."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from histories import NO_POPULATION, at, history_of, purchases, weekly

from omnix_recs.domain.consumption import PopulationCycles, customer_cycles
from omnix_recs.domain.predictions import ConsumptionForecast, forecast_consumption, score_forecast, summarise_scores


def forecast_of(rows, as_of_day, population=NO_POPULATION):
    history = history_of(rows, as_of_day=as_of_day)
    return forecast_consumption(history, customer_cycles(history, population), population)


def by_product(forecast):
    return {p.product_id: p for p in forecast.products}


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
    assert [p.product_id for p in forecast.due_now] == ["milk", "coffee"]  # more confident first


def test_a_product_is_placed_on_the_nearest_predicted_trip():
    rows = weekly(weeks=10, products=("milk",)) + purchases("c1", [(7 * w, ["coffee"]) for w in range(0, 10, 2)])
    forecast = forecast_of(rows, as_of_day=58)  # day 56 trip included coffee; next coffee ~ day 70
    coffee = by_product(forecast)["coffee"]
    assert forecast.next_visit_at == at(63)
    assert coffee.next_purchase_at == at(70)  # the trip after next
    assert not coffee.due_now


def test_a_late_customer_is_expected_soon_and_with_less_confidence():
    forecast = forecast_of(weekly(weeks=10, products=("milk",)), as_of_day=63 + 11)  # 11 days since day 63
    assert at(74) <= forecast.next_visit_at <= at(74) + timedelta(days=7)
    assert forecast.next_visit_at.weekday() == 5  # still their Saturday
    assert forecast.visit_confidence < 0.6


def test_stopped_and_one_off_products_are_not_forecast():
    rows = weekly(weeks=12, products=("milk",)) + purchases("c1", [(7 * w, ["chips"]) for w in range(4)])
    rows += purchases("c1", [(3, ["lager", "soap"])])
    population = PopulationCycles(
        product_cycle_days={"lager": 10.0, "soap": 30.0}, repeat_rate={"lager": 0.1, "soap": 0.6}
    )
    products = by_product(forecast_of(rows, as_of_day=80, population=population))

    assert "chips" not in products  # weekly for a month, silent since day 21: stopped
    assert "lager" not in products  # bought once; few people buy it again
    assert "soap" in products  # bought once, but most buyers repeat it (population cycle)
    assert products["soap"].confidence == pytest.approx(0.3 * 0.6 * 1.5 / (77 / 30))
    assert not products["soap"].due_now  # a population guess is never "due"


def test_no_history_means_no_forecast():
    forecast = forecast_of([], as_of_day=10)
    assert forecast.next_visit_at is None
    assert forecast.products == ()


def test_forecast_survives_its_stored_document():
    forecast = forecast_of(weekly(weeks=6), as_of_day=40)
    assert ConsumptionForecast.from_document("c1", forecast.to_document()) == forecast


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
