"""The reports over a store with known lists, feedback and purchases, and over real gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.domain.models import Feedback, FeedbackEvent, Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.experiments import reports
from omnix_recs.store.sqlite import SqliteStore

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=10)


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def served(
    rid: str, customer: str, days: float, products: tuple[str, ...], strategy: str = "balanced", arm: str = ""
) -> ServedRecommendation:
    items = tuple(RecommendedItem(p, 1.0, 0.5) for p in products)
    return ServedRecommendation(rid, customer, at(days), strategy, "v1", items, "e1" if arm else "", arm)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore.temporary()
    s.save_recommendations(
        [
            served("before", "ann", -2, ("milk",)),  # before the period: earns a purchase inside it
            served("r1", "ann", 1, ("milk", "bread", "eggs", "oat")),
            served("r2", "ben", 2, ("pasta", "sauce"), strategy="replenish"),
            served("held", "cat", 2, ("milk", "bread"), strategy="trending", arm="holdout"),
        ]
    )
    s.add_feedback(Feedback("r1", "ann", "bread", FeedbackEvent.CLICKED, at(1.1)))
    s.add_feedback(Feedback("r1", "ann", "eggs", FeedbackEvent.DISMISSED, at(1.1)))
    s.add_feedback(Feedback("r2", "ben", "pasta", FeedbackEvent.CLICKED, at(2.1)))
    s.add_feedback(Feedback("r2", "ben", "sauce", FeedbackEvent.ADDED_TO_CART, at(2.1)))
    s.add_purchases(
        [
            Purchase("ann", "a1", "milk", 1, 2.0, at(0.5)),  # earned by "before"
            Purchase("ann", "a2", "bread", 2, 3.0, at(1.5)),  # earned by r1
            Purchase("ann", "a2", "cheese", 1, 4.0, at(1.5)),  # never recommended
            Purchase("ann", "a3", "bread", 1, 3.0, at(7)),  # r1 again, bought again
            Purchase("ben", "b1", "pasta", 1, 1.5, at(3)),  # earned by r2
            Purchase("ben", "b2", "pasta", 1, 1.5, at(9.5)),  # outside r2's 7 days
            Purchase("cat", "c1", "milk", 1, 2.0, at(3)),  # the holdout's list was trending: still attributed
            Purchase("dan", "d1", "milk", 3, 2.0, at(4)),  # never served
            Purchase("dan", "d0", "milk", 1, 2.0, at(-5)),  # before the period
        ]
    )
    yield s
    s.close()


def test_performance(store: SqliteStore) -> None:
    report = reports.recommendation_performance(store, START, END)
    total = report.total
    assert (total.lists_served, total.impressions, total.clicks, total.add_to_carts, total.dismissals) == (
        3,
        8,
        2,
        1,
        1,
    )
    # r1's bread twice (1.5 and day 7, both within 7 days), r2's pasta, the holdout's milk.
    assert (total.purchases, total.revenue) == (4, 6.0 + 3.0 + 1.5 + 2.0)
    assert total.click_through_rate == pytest.approx(2 / 8)
    assert report.meets_click_through_target
    assert [(s.strategy, s.lists_served) for s in report.slices] == [("balanced", 1), ("replenish", 1), ("trending", 1)]
    # Ann's bread (day 1.5) was bought again on day 7, Ben's pasta on day 9.5; the others not.
    assert report.repeat_purchase_rate == pytest.approx(2 / 4)
    only = reports.recommendation_performance(store, START, END, strategy="replenish")
    assert (only.total.lists_served, only.total.clicks, only.total.purchases) == (1, 1, 1)


def test_roi(store: SqliteStore) -> None:
    report = reports.recommendation_roi(store, START, END)
    assert report.attributed_purchases == 5  # the four above and the milk earned by "before"
    assert report.attributed_revenue == pytest.approx(2.0 + 6.0 + 3.0 + 1.5 + 2.0)
    assert report.total_revenue == pytest.approx(2.0 + 6.0 + 4.0 + 3.0 + 1.5 + 1.5 + 2.0 + 6.0)
    assert report.revenue_share == pytest.approx(report.attributed_revenue / report.total_revenue)


def test_impact(store: SqliteStore) -> None:
    report = reports.recommendation_impact(store, START, END)
    # Exposed: ann and ben (cat was held out); control: cat and dan.
    assert (report.customers_exposed, report.customers_control) == (2, 2)
    assert report.average_order_value_exposed == pytest.approx((2.0 + 10.0 + 3.0 + 1.5 + 1.5) / 5)
    assert report.average_order_value_control == pytest.approx((2.0 + 6.0) / 2)
    assert report.basket_size_control == pytest.approx(2.0)
    assert report.retention_exposed == 1.0 and report.retention_control == 0.0
    assert report.order_value_uplift == pytest.approx(3.6 / 4.0 - 1)


def test_an_empty_period() -> None:
    empty = SqliteStore.temporary()
    try:
        assert reports.recommendation_performance(empty, START, END).total.lists_served == 0
        assert reports.recommendation_roi(empty, START, END).revenue_share == 0.0
        assert reports.recommendation_impact(empty, START, END).order_value_uplift == 0.0
    finally:
        empty.close()


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(moment)
    return t


@pytest.fixture
def admin(running_server: Any) -> admin_pb2_grpc.AdminServiceStub:
    server = running_server()
    return server.stub(admin_pb2_grpc.AdminServiceStub)  # type: ignore[no-any-return]


def test_reports_over_grpc(admin: Any) -> None:
    period = admin_pb2.ReportPeriod(start_time=ts(datetime.now(UTC) - timedelta(days=1)))
    performance = admin.GetRecommendationPerformance(
        admin_pb2.GetRecommendationPerformanceRequest(period=period, strategy="STRATEGY_REPLENISH")
    )
    assert performance.lists_served == 0 and performance.total.strategy == "replenish"
    assert admin.GetRecommendationRoi(admin_pb2.GetRecommendationRoiRequest(period=period)).revenue_share == 0.0
    assert admin.GetRecommendationImpact(admin_pb2.GetRecommendationImpactRequest()).customers_exposed == 0


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (
            admin_pb2.GetRecommendationPerformanceRequest(
                period=admin_pb2.ReportPeriod(start_time=ts(END), end_time=ts(START))
            ),
            "period",
        ),
        (admin_pb2.GetRecommendationPerformanceRequest(strategy="STRATEGY_NOPE"), "strategy"),
    ],
)
def test_bad_report_requests(admin: Any, request_: Any, named: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetRecommendationPerformance(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in caught.value.details()
