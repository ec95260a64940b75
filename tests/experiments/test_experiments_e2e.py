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


# --- experiments side by side, and on every list ------------------------------------------------


def seed_two_versions(settings: Settings) -> Any:
    """The seeded shop with two model versions (the older one for an arm to pin), and eggs
    bought this week a year ago, so that the seasonal list has something to say."""
    seed = seed_and_train(settings)

    def prepare(store: Any) -> None:
        last_year = NOW - timedelta(days=364)
        store.add_purchases([Purchase(c, f"{c}-last-year", "eggs", 2, 2.8, last_year) for c in CUSTOMERS[:20]])
        seed(store)
        train_model(store, settings)

    return prepare


@pytest.fixture
def two_versions(running_server: Any, tmp_path: Any) -> Any:
    settings = Settings(model_dir=str(tmp_path / "models"))
    return running_server(settings=settings, prepare=seed_two_versions(settings))


def versions(server: Any) -> tuple[str, str]:
    """(the older version, the active one)."""
    models = server.store.list_models()
    active = next(m.version for m in models if m.active)
    return next(m.version for m in models if not m.active), active


def pinned_arms(older: str) -> list[admin_pb2.ExperimentArm]:
    return [
        admin_pb2.ExperimentArm(arm_id="active", traffic_percent=50),
        admin_pb2.ExperimentArm(arm_id="older", traffic_percent=50, model_version=older),
    ]


def buy(server: Any, customer_id: str, product_id: str, order_id: str) -> None:
    purchased_at = timestamp_pb2.Timestamp()
    purchased_at.FromDatetime(datetime.now(UTC))
    server.stub(customer_pb2_grpc.CustomerServiceStub).RecordPurchase(
        customer_pb2.RecordPurchaseRequest(
            customer_id=customer_id,
            purchase=common_pb2.Purchase(
                order_id=order_id, product_id=product_id, quantity=1, unit_price=5.0, purchased_at=purchased_at
            ),
        )
    )


def test_independent_experiments_run_side_by_side(two_versions: Any) -> None:
    server = two_versions
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    recommendations = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    older, active = versions(server)
    admin.CreateExperiment(create_request(holdout_percent=0))  # strategy: the surface's primary
    created = admin.CreateExperiment(
        create_request(experiment_id="older-model", arms=pinned_arms(older), holdout_percent=0, independent=True)
    )
    assert created.independent and created.running
    strategy_exp, model_exp = (server.store.get_experiment(e) for e in ("replenish-first", "older-model"))

    # A third may not set a lever either already sets, nor be a second one not declared independent.
    for changes, named in (
        ({"arms": pinned_arms(older), "independent": True}, "arms[1].model_version"),
        ({"arms": arms(("a", 50, 0), ("b", 50, pb.STRATEGY_DISCOVER)), "independent": True}, "arms[1].strategy"),
        ({"arms": arms(("a", 50, 0), ("b", 50, 0))}, "replenish-first"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            admin.CreateExperiment(create_request(experiment_id="third", holdout_percent=0, **changes))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert named in caught.value.details()

    seen: dict[str, tuple[str, str]] = {}
    listed: dict[str, tuple[tuple[str, str], ...]] = {}
    bought = 0
    for customer_id in CUSTOMERS:
        answer = recommendations.GetRecommendations(pb.GetRecommendationsRequest(customer_id=customer_id))
        strategy_arm, model_arm = assign(strategy_exp, customer_id), assign(model_exp, customer_id)
        assert strategy_arm is not None and model_arm is not None
        assert (answer.experiment_id, answer.arm_id) == ("replenish-first", strategy_arm.arm_id)
        assert [(a.experiment_id, a.arm_id) for a in answer.assignments] == [
            ("replenish-first", strategy_arm.arm_id),
            ("older-model", model_arm.arm_id),
        ]
        # Each experiment's lever applies: the strategy of one, the model version of the other.
        assert answer.model_version == (older if model_arm.arm_id == "older" else active)
        if strategy_arm.arm_id == "replenish":
            assert answer.strategy == pb.STRATEGY_REPLENISH
        listed[answer.recommendation_id] = tuple((a.experiment_id, a.arm_id) for a in answer.assignments)
        seen[customer_id] = (strategy_arm.arm_id, model_arm.arm_id)
        if answer.items:
            recommendations.RecordFeedback(
                pb.RecordFeedbackRequest(
                    recommendation_id=answer.recommendation_id,
                    product_id=answer.items[0].product_id,
                    event=pb.FEEDBACK_EVENT_CLICKED,
                )
            )
            buy(server, customer_id, answer.items[0].product_id, f"{customer_id}-side")
            bought += 1
    assert {arms_of[1] for arms_of in seen.values()} == {"active", "older"} and bought

    # Results per experiment: each counts every customer once, in its own arm.
    for experiment_id, position in (("replenish-first", 0), ("older-model", 1)):
        results = admin.GetExperimentResults(admin_pb2.GetExperimentResultsRequest(experiment_id=experiment_id))
        expected = Counter(arms_of[position] for arms_of in seen.values())
        assert {a.arm_id: a.customers for a in results.arms} == dict(expected)
        assert sum(a.served_lists for a in results.arms) == len(CUSTOMERS)
        assert sum(a.purchases for a in results.arms) == bought
        assert results.experiment.independent == (experiment_id == "older-model")
    # The stored lists record every assignment (the results wrote the queued lists).
    assert {rid: server.store.get_recommendation(rid).assignments for rid in listed} == listed

    # Stopping the primary leaves the independent one serving, now first.
    admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id="replenish-first"))
    after = recommendations.GetRecommendations(pb.GetRecommendationsRequest(customer_id=CUSTOMERS[0]))
    assert [(a.experiment_id, a.arm_id) for a in after.assignments] == [("older-model", seen[CUSTOMERS[0]][1])]
    assert (after.experiment_id, after.arm_id) == ("older-model", seen[CUSTOMERS[0]][1])


SURFACE_CALLS: list[tuple[int, str, Any]] = [
    (
        admin_pb2.EXPERIMENT_SURFACE_SIMILAR,
        "GetSimilarProducts",
        lambda customer_id: pb.GetSimilarProductsRequest(product_id="milk", customer_id=customer_id),
    ),
    (
        admin_pb2.EXPERIMENT_SURFACE_FREQUENTLY_BOUGHT_TOGETHER,
        "GetFrequentlyBoughtTogether",
        lambda customer_id: pb.GetFrequentlyBoughtTogetherRequest(
            basket_product_ids=["pasta"], customer_id=customer_id
        ),
    ),
    (
        admin_pb2.EXPERIMENT_SURFACE_TRENDING,
        "GetTrending",
        lambda customer_id: pb.GetTrendingRequest(customer_id=customer_id),
    ),
    (
        admin_pb2.EXPERIMENT_SURFACE_SEASONAL,
        "GetSeasonal",
        lambda customer_id: pb.GetSeasonalRequest(customer_id=customer_id),
    ),
]


@pytest.mark.parametrize(("surface", "method", "request_for"), SURFACE_CALLS, ids=[c[1] for c in SURFACE_CALLS])
def test_arms_on_the_other_lists(two_versions: Any, surface: int, method: str, request_for: Any) -> None:
    server = two_versions
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    call = getattr(server.stub(recommendation_pb2_grpc.RecommendationServiceStub), method)
    older, active = versions(server)
    admin.CreateExperiment(
        create_request(experiment_id="lists", surface=surface, arms=pinned_arms(older), holdout_percent=0)
    )
    record = server.store.get_experiment("lists")

    clicked: Counter[str] = Counter()
    served_arms: dict[str, str] = {}
    for customer_id in CUSTOMERS:
        answer = call(request_for(customer_id))
        arm = assign(record, customer_id)
        assert arm is not None
        assert (answer.experiment_id, answer.arm_id) == ("lists", arm.arm_id)
        assert [(a.experiment_id, a.arm_id) for a in answer.assignments] == [("lists", arm.arm_id)]
        assert answer.model_version == (older if arm.arm_id == "older" else active)
        served_arms[answer.recommendation_id] = arm.arm_id
        if answer.items:
            server.stub(recommendation_pb2_grpc.RecommendationServiceStub).RecordFeedback(
                pb.RecordFeedbackRequest(
                    recommendation_id=answer.recommendation_id,
                    product_id=answer.items[0].product_id,
                    event=pb.FEEDBACK_EVENT_CLICKED,
                )
            )
            buy(server, customer_id, answer.items[0].product_id, f"{customer_id}-{method}")
            clicked[arm.arm_id] += 1

    # Anonymous requests are outside the experiment.
    anonymous = call(request_for(""))
    assert (anonymous.experiment_id, anonymous.arm_id, list(anonymous.assignments)) == ("", "", [])
    assert anonymous.model_version == active

    assert clicked  # some lists had items to react to
    results = admin.GetExperimentResults(admin_pb2.GetExperimentResultsRequest(experiment_id="lists"))
    by_arm = {a.arm_id: a for a in results.arms}
    assert sum(a.customers for a in results.arms) == len(CUSTOMERS)
    assert {arm: by_arm[arm].clicks for arm in clicked} == dict(clicked)
    assert {arm: by_arm[arm].purchases for arm in clicked} == dict(clicked)
    assert {rid: server.store.get_recommendation(rid).arm_in("lists") for rid in served_arms} == served_arms


@pytest.mark.parametrize(
    ("surface", "changes", "named"),
    [
        (
            admin_pb2.EXPERIMENT_SURFACE_TRENDING,
            {"arms": arms(("a", 50, 0), ("b", 50, pb.STRATEGY_DISCOVER))},
            "arms[1].strategy",
        ),
        (admin_pb2.EXPERIMENT_SURFACE_SIMILAR, {"holdout_percent": 10}, "holdout_percent"),
    ],
)
def test_levers_a_list_does_not_have_are_refused(admin: Any, surface: int, changes: dict[str, Any], named: str) -> None:
    fields = {"arms": arms(("a", 50, 0), ("b", 50, 0)), "holdout_percent": 0, **changes}
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateExperiment(create_request(surface=surface, **fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in caught.value.details()
    assert list(admin.ListExperiments(admin_pb2.ListExperimentsRequest()).experiments) == []
