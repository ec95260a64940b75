"""A/B experiments end to end over real gRPC: define, serve by arm, record, judge, stop.

The server is the real one (`running_server`, tests/conftest.py) with a model trained on seeded
shoppers; the arms differ in strategy, and a fifth of the customers are held out.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    customer_pb2,
    customer_pb2_grpc,
    recommendation_pb2_grpc,
)
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.engine.train import train_model
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign

NOW = datetime.now(UTC).replace(microsecond=0)
PRODUCTS = [
    Product("milk", "Whole Milk", "dairy eggs", "milk", "Dairyland", 1.2),
    Product("oat", "Oat Drink", "dairy eggs", "milk", "Oaty", 1.8),
    Product("pasta", "Spaghetti", "pantry", "pasta", "Roma", 1.5),
    Product("sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0),
    Product("bread", "Sourdough", "bakery", "bread", "Baker", 3.5),
    Product("eggs", "Free Range Eggs", "dairy eggs", "eggs", "Hen", 2.8),
]
CUSTOMERS = [f"shopper-{n}" for n in range(30)]


def seed_and_train(settings: Settings) -> Any:
    def prepare(store: Any) -> None:
        store.upsert_products(PRODUCTS)
        for n, customer_id in enumerate(CUSTOMERS):
            store.create_customer(Customer(customer_id, NOW - timedelta(days=90), NOW - timedelta(days=90)))
            basket = [PRODUCTS[(n + k) % len(PRODUCTS)].product_id for k in range(3)]
            store.add_purchases(
                [
                    Purchase(customer_id, f"{customer_id}-{d}", p, 1, 2.0, NOW - timedelta(days=d, hours=n % 5))
                    for d in (35, 28, 21, 14, 7)
                    for p in basket
                ]
            )
        train_model(store, settings)

    return prepare


@pytest.fixture
def server(running_server: Any, tmp_path: Any) -> Any:
    settings = Settings(model_dir=str(tmp_path / "models"))
    return running_server(settings=settings, prepare=seed_and_train(settings))


@pytest.fixture
def admin(server: Any) -> admin_pb2_grpc.AdminServiceStub:
    return server.stub(admin_pb2_grpc.AdminServiceStub)  # type: ignore[no-any-return]


@pytest.fixture
def recommendations(server: Any) -> recommendation_pb2_grpc.RecommendationServiceStub:
    return server.stub(recommendation_pb2_grpc.RecommendationServiceStub)  # type: ignore[no-any-return]


def arms(*spec: tuple[str, int, int]) -> list[admin_pb2.ExperimentArm]:
    return [admin_pb2.ExperimentArm(arm_id=a, traffic_percent=t, strategy=s) for a, t, s in spec]  # type: ignore[arg-type]


def create_request(**changes: Any) -> admin_pb2.CreateExperimentRequest:
    fields: dict[str, Any] = {
        "experiment_id": "replenish-first",
        "description": "does replenishment first earn more clicks?",
        "surface": admin_pb2.EXPERIMENT_SURFACE_RECOMMENDATIONS,
        "arms": arms(("control", 50, pb.STRATEGY_UNSPECIFIED), ("replenish", 50, pb.STRATEGY_REPLENISH)),
        "primary_metric": admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE,
        "holdout_percent": 20,
    }
    fields.update(changes)
    return admin_pb2.CreateExperimentRequest(**fields)


def test_an_experiment_from_creation_to_results(server: Any, admin: Any, recommendations: Any) -> None:
    created = admin.CreateExperiment(create_request())
    assert (created.experiment_id, created.running, created.attribution_window_days) == ("replenish-first", True, 7)
    assert [a.arm_id for a in created.arms] == ["control", "replenish"]
    record = server.store.get_experiment("replenish-first")

    seen: dict[str, str] = {}
    lists: dict[str, pb.GetRecommendationsResponse] = {}
    served_ids: set[str] = set()
    for customer_id in CUSTOMERS:
        first = recommendations.GetRecommendations(pb.GetRecommendationsRequest(customer_id=customer_id))
        again = recommendations.GetRecommendations(
            pb.GetRecommendationsRequest(customer_id=customer_id, strategy=pb.STRATEGY_DISCOVER)
        )
        arm = assign(record, customer_id)
        expected = HOLDOUT_ARM if arm is None else arm.arm_id
        assert (first.experiment_id, first.arm_id) == ("replenish-first", expected)
        assert again.arm_id == expected  # sticky
        if expected == "replenish":  # the arm's strategy overrides the request's
            assert first.strategy == again.strategy == pb.STRATEGY_REPLENISH
        if expected == "control":
            assert again.strategy == pb.STRATEGY_DISCOVER
        seen[customer_id], lists[customer_id] = expected, first
        # An identical request within seconds gets the same list back (and it is stored once).
        served_ids |= {first.recommendation_id, again.recommendation_id}
    assert set(seen.values()) == {"control", "replenish", HOLDOUT_ARM}

    # Reactions: every customer with a list clicks its first item and buys it.
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    bought = 0
    for customer_id, answer in lists.items():
        if not answer.items:
            continue
        product = answer.items[0].product_id
        recommendations.RecordFeedback(
            pb.RecordFeedbackRequest(
                recommendation_id=answer.recommendation_id, product_id=product, event=pb.FEEDBACK_EVENT_CLICKED
            )
        )
        purchased_at = timestamp_pb2.Timestamp()
        purchased_at.FromDatetime(datetime.now(UTC))
        customers.RecordPurchase(
            customer_pb2.RecordPurchaseRequest(
                customer_id=customer_id,
                purchase=common_pb2.Purchase(
                    order_id=f"{customer_id}-today",
                    product_id=product,
                    quantity=2,
                    unit_price=3.0,
                    purchased_at=purchased_at,
                ),
            )
        )
        bought += 1

    results = admin.GetExperimentResults(admin_pb2.GetExperimentResultsRequest(experiment_id="replenish-first"))
    by_arm = {a.arm_id: a for a in results.arms}
    assert list(by_arm) == ["control", "replenish", HOLDOUT_ARM]
    counts = Counter(seen.values())
    assert {arm: r.customers for arm, r in by_arm.items()} == dict(counts)
    assert sum(r.served_lists for r in by_arm.values()) == len(served_ids)
    assert sum(r.clicks for r in by_arm.values()) == bought
    assert sum(r.purchases for r in by_arm.values()) == bought
    assert sum(r.revenue for r in by_arm.values()) == pytest.approx(6.0 * bought)
    assert by_arm["replenish"].HasField("difference") and not by_arm["control"].HasField("difference")
    assert 0 <= results.p_value <= 1 and results.looks >= 1
    assert results.experiment.experiment_id == "replenish-first"

    # The stored lists say which arm made them.
    stored = server.store.get_recommendation(lists[CUSTOMERS[0]].recommendation_id)
    assert (stored.experiment_id, stored.arm_id) == ("replenish-first", seen[CUSTOMERS[0]])

    stopped = admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id="replenish-first"))
    assert not stopped.running and stopped.HasField("stopped_at")
    assert (
        admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id="replenish-first")).stopped_at
        == stopped.stopped_at
    )
    after = recommendations.GetRecommendations(pb.GetRecommendationsRequest(customer_id=CUSTOMERS[0]))
    assert (after.experiment_id, after.arm_id) == ("", "")
    listed = admin.ListExperiments(admin_pb2.ListExperimentsRequest())
    assert [(e.experiment_id, e.running) for e in listed.experiments] == [("replenish-first", False)]


def test_one_running_experiment_per_surface(admin: Any, recommendations: Any) -> None:
    admin.CreateExperiment(create_request())
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateExperiment(create_request(experiment_id="second"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "replenish-first" in caught.value.details()
    # Another surface is free, and the id is assigned when left empty.
    other = admin.CreateExperiment(
        create_request(
            experiment_id="",
            surface=admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED,
            arms=arms(("a", 50, 0), ("b", 50, 0)),
        )
    )
    assert other.experiment_id.startswith("exp-")
    answer = recommendations.GetPersonalizedRecommendations(
        pb.GetPersonalizedRecommendationsRequest(customer_id=CUSTOMERS[1])
    )
    assert answer.experiment_id == other.experiment_id and answer.arm_id in ("a", "b", HOLDOUT_ARM)
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateExperiment(
            create_request(
                experiment_id="third",
                surface=admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED,
                arms=arms(("a", 50, 0), ("b", 50, 0)),
            )
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("changes", "code", "named"),
    [
        ({"arms": arms(("a", 50, 0), ("b", 40, 0))}, grpc.StatusCode.INVALID_ARGUMENT, "arms"),
        ({"arms": arms(("a", 100, 0))}, grpc.StatusCode.INVALID_ARGUMENT, "arms"),
        ({"arms": arms(("a", 50, 0), ("a", 50, 0))}, grpc.StatusCode.INVALID_ARGUMENT, "arms[1].arm_id"),
        ({"arms": arms(("a", 50, 0), ("holdout", 50, 0))}, grpc.StatusCode.INVALID_ARGUMENT, "arms[1].arm_id"),
        ({"arms": arms(("a", 50, 0), ("", 50, 0))}, grpc.StatusCode.INVALID_ARGUMENT, "arms[1].arm_id"),
        ({"arms": arms(("a", 50, 0), ("b", 50, 9))}, grpc.StatusCode.INVALID_ARGUMENT, "arms[1].strategy"),
        ({"holdout_percent": 60}, grpc.StatusCode.INVALID_ARGUMENT, "holdout_percent"),
        ({"attribution_window_days": 31}, grpc.StatusCode.INVALID_ARGUMENT, "attribution_window_days"),
        ({"surface": 7}, grpc.StatusCode.INVALID_ARGUMENT, "surface"),
        ({"primary_metric": 9}, grpc.StatusCode.INVALID_ARGUMENT, "primary_metric"),
        ({"experiment_id": "bad id!"}, grpc.StatusCode.INVALID_ARGUMENT, "experiment_id"),
        (
            {"surface": admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED},
            grpc.StatusCode.INVALID_ARGUMENT,
            "arms[1].strategy",
        ),
        (
            {
                "arms": [
                    admin_pb2.ExperimentArm(arm_id="a", traffic_percent=50, model_version="nope"),
                    *arms(("b", 50, 0)),
                ]
            },
            grpc.StatusCode.NOT_FOUND,
            "nope",
        ),
    ],
)
def test_a_bad_definition_is_refused_and_nothing_is_created(
    admin: Any, changes: dict[str, Any], code: grpc.StatusCode, named: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateExperiment(create_request(**changes))
    assert caught.value.code() == code
    assert named in caught.value.details()
    assert list(admin.ListExperiments(admin_pb2.ListExperimentsRequest()).experiments) == []


def test_taken_and_unknown_ids(admin: Any) -> None:
    admin.CreateExperiment(create_request())
    admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id="replenish-first"))
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateExperiment(create_request())
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for call, request in (
        (admin.GetExperiment, admin_pb2.GetExperimentRequest(experiment_id="missing")),
        (admin.StopExperiment, admin_pb2.StopExperimentRequest(experiment_id="missing")),
        (admin.GetExperimentResults, admin_pb2.GetExperimentResultsRequest(experiment_id="missing")),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetExperiment(admin_pb2.GetExperimentRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "experiment_id" in caught.value.details()
