"""Drift monitoring: stored predictions judged on a fixed horizon, and the latest bucket tested
against the earlier ones; the statistics directly, then GetPredictionAccuracy over real gRPC."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from omnix_recs._proto.omnix.v1 import insights_pb2 as pb
from omnix_recs._proto.omnix.v1 import insights_pb2_grpc
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.domain.predictions import ConsumptionForecast, ForecastScore, ProductForecast
from omnix_recs.insights.drift import MIN_FORECASTS, accuracy_drift

NOW = datetime.now(UTC).replace(microsecond=0)
EARLY, LATE = NOW - timedelta(days=60), NOW - timedelta(days=30)
SHOPPERS = [f"weekly-{n}" for n in range(24)]
TRIP_AGES = [1 + 7 * k for k in range(12)]  # days ago: every shopper shops weekly, last yesterday


def score(visit_error: float, product_errors: tuple[float, ...] = ()) -> ForecastScore:
    return ForecastScore(False, visit_error, product_errors or (visit_error,), 0, 0, 0)


def scores(start: datetime, errors: list[float]) -> list[tuple[datetime, ForecastScore]]:
    return [(start, score(e)) for e in errors]


def noisy(level: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [abs(level + rng.gauss(0.0, 0.5)) for _ in range(count)]


@pytest.mark.parametrize(
    ("scored", "drifting", "tested"),
    [
        ([], False, False),
        (scores(EARLY, noisy(1.0, 30, 1)), False, False),  # one bucket: nothing to compare with
        (scores(EARLY, noisy(1.0, 30, 2)) + scores(LATE, noisy(1.0, 30, 3)), False, True),
        (scores(EARLY, noisy(1.0, 30, 4)) + scores(LATE, noisy(3.0, 30, 5)), True, True),
        (scores(EARLY, noisy(3.0, 30, 6)) + scores(LATE, noisy(1.0, 30, 7)), False, True),  # better is not drift
        (scores(EARLY, noisy(1.0, 30, 8)) + scores(LATE, noisy(3.0, MIN_FORECASTS - 1, 9)), False, False),
        (scores(EARLY, noisy(1.0, 30, 10)) + [(LATE, ForecastScore(True, math.nan, (), 1, 0, 0))] * 30, False, False),
    ],
    ids=["none", "one-bucket", "steady", "worse", "better", "too-few", "all-pending"],
)
def test_drift_is_flagged_only_when_the_latest_bucket_errs_more(
    scored: list[tuple[datetime, ForecastScore]], drifting: bool, tested: bool
) -> None:
    drift = accuracy_drift(scored)
    assert drift.drifting is drifting
    assert math.isfinite(drift.p_value) is tested
    if tested and not drifting:
        assert drift.p_value > 0.01


def test_a_steady_predictor_rarely_raises_a_false_alarm() -> None:
    alarms = sum(
        accuracy_drift(scores(EARLY, noisy(2.0, 40, 2 * i)) + scores(LATE, noisy(2.0, 40, 2 * i + 1))).drifting
        for i in range(200)
    )
    assert alarms <= 6  # 1% expected: 2 of 200; the bound leaves room for chance


# --- over gRPC ---------------------------------------------------------------------------------


def seed(store: Any) -> None:
    store.upsert_products([Product("milk", "Whole Milk", "dairy eggs", "milk", price=1.3)])
    for customer_id in SHOPPERS:
        store.create_customer(Customer(customer_id, NOW - timedelta(days=100), NOW - timedelta(days=100)))
        store.add_purchases(
            [
                Purchase(customer_id, f"{customer_id}-{age}", "milk", 1, 1.3, NOW - timedelta(days=age))
                for age in TRIP_AGES
            ]
        )


def noon(days_ago: int) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0)


def store_forecast(store: Any, customer_id: str, as_of: datetime, error_days: float) -> None:
    """A forecast made at `as_of` that misses the shopper's actual next trip by `error_days`."""
    next_trip = min(NOW - timedelta(days=age) for age in TRIP_AGES if NOW - timedelta(days=age) >= as_of)
    predicted = next_trip + timedelta(days=error_days)
    forecast = ConsumptionForecast(
        customer_id,
        as_of,
        predicted,
        0.8,
        7.0,
        (ProductForecast("milk", predicted, 0.8, 7.0, next_trip - timedelta(days=7), False),),
    )
    store.put_document("predictions", customer_id, as_of, forecast.to_document())


def seed_with_drift(store: Any) -> None:
    """Accurate forecasts 45 days ago; 4 days off 17 days ago; one made 3 days ago."""
    seed(store)
    for n, customer_id in enumerate(SHOPPERS):
        store_forecast(store, customer_id, noon(45) + timedelta(minutes=n), 0.2 * (n % 3))
        store_forecast(store, customer_id, noon(17) + timedelta(minutes=n), 4.0 + 0.2 * (n % 3))
    store_forecast(store, SHOPPERS[0], noon(3), 0.0)


@pytest.fixture
def insights(running_server: Any) -> Any:
    server = running_server(prepare=seed_with_drift)
    return server.stub(insights_pb2_grpc.InsightsServiceStub)


def accuracy(insights: Any, **fields: Any) -> pb.GetPredictionAccuracyResponse:
    return insights.GetPredictionAccuracy(pb.GetPredictionAccuracyRequest(bucket=pb.ACCURACY_BUCKET_DAY, **fields))


def test_prediction_accuracy_reports_drift_on_a_fixed_horizon(insights: Any) -> None:
    reply = accuracy(insights, horizon_days=10)
    # The forecast made 3 days ago is too young to be judged on 10 days.
    assert reply.overall.predictions == 2 * len(SHOPPERS)
    assert reply.scored_until.ToDatetime(tzinfo=UTC) <= datetime.now(UTC) - timedelta(days=10)
    assert [b.accuracy.next_visit_mae_days for b in reply.buckets] == pytest.approx([0.2, 4.2], abs=0.01)
    assert reply.drift.latest_bucket.ToDatetime(tzinfo=UTC).date() == noon(17).date()
    assert reply.drift.next_visit_mae_change_days == pytest.approx(4.0, abs=0.01)
    assert reply.drift.next_purchase_mae_change_days == pytest.approx(4.0, abs=0.01)
    assert reply.drift.p_value < 0.01 and reply.drift.drifting


def test_without_a_horizon_young_predictions_count_and_too_few_claim_nothing(insights: Any) -> None:
    reply = accuracy(insights)
    assert reply.overall.predictions == 2 * len(SHOPPERS) + 1
    assert reply.drift.latest_bucket.ToDatetime(tzinfo=UTC).date() == noon(3).date()
    assert not reply.drift.HasField("p_value") and not reply.drift.drifting


def test_a_horizon_longer_than_the_range_leaves_nothing_to_score(insights: Any) -> None:
    since = timestamp_pb2.Timestamp()
    since.FromDatetime(NOW - timedelta(days=20))
    reply = accuracy(insights, horizon_days=30, since=since)
    assert reply.overall.predictions == 0 and not reply.buckets
    assert not reply.drift.HasField("latest_bucket") and not reply.drift.drifting


@pytest.mark.parametrize("horizon_days", [-1, 366])
def test_a_bad_horizon_is_refused_naming_the_field(insights: Any, horizon_days: int) -> None:
    with pytest.raises(grpc.RpcError) as info:
        accuracy(insights, horizon_days=horizon_days)
    error = info.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "horizon_days"
    assert error.details().startswith("horizon_days: must be between 0 and 365")
