"""RecommendationService over real gRPC: hard filters, freshness through the API, bad input.

The server is the real one (`running_server`) and so is the model: trained with `train_model` on
the seeded purchases before the server starts, and switched through AdminService.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
from omnix_recs.engine import recommender as recommender_module
from omnix_recs.engine.train import train_model

NOW = datetime.now(UTC).replace(microsecond=0)
PRODUCTS = [
    Product(
        "milk", "Whole Milk", "dairy eggs", "milk", "Dairyland", 1.2, dietary_tags=("vegetarian",), allergens=("milk",)
    ),
    Product("oat", "Oat Drink", "dairy eggs", "milk", "Oaty", 1.8, dietary_tags=("vegan", "vegetarian")),
    Product(
        "pasta",
        "Spaghetti",
        "pantry",
        "pasta",
        "Roma",
        1.5,
        dietary_tags=("vegan", "vegetarian"),
        allergens=("gluten",),
    ),
    Product("sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0, dietary_tags=("vegan", "vegetarian")),
    Product("steak", "Ribeye Steak", "meat seafood", "beef", "Butcher", 12.0),
    Product("caviar", "Caviar", "meat seafood", "seafood", "Lux", 90.0, allergens=("fish",)),
]
IDS = [p.product_id for p in PRODUCTS]


def seed(store) -> None:
    store.upsert_products(PRODUCTS)
    for customer_id, diet in (("alice", ()), ("vera", ("vegan",))):
        store.create_customer(
            Customer(customer_id, NOW - timedelta(days=90), NOW - timedelta(days=90), dietary_restrictions=diet)
        )
        store.add_purchases(
            [
                Purchase(customer_id, f"{customer_id}-{d}", p, 1, 1.0, NOW - timedelta(days=d))
                for d in (28, 21, 14, 7)
                for p in ("milk", "pasta", "oat")
            ]
        )


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"))


@pytest.fixture
def server(running_server, settings):
    def seed_and_train(store) -> None:
        seed(store)
        train_model(store, settings)

    return running_server(settings=settings, prepare=seed_and_train)


@pytest.fixture
def stub(server):
    return server.stub(recommendation_pb2_grpc.RecommendationServiceStub)


def ids(response) -> list[str]:
    return [item.product_id for item in response.items]


def test_recommendations_carry_model_version_and_are_stored(server, stub):
    active = server.store.active_model().version
    response = stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice", limit=3))
    assert len(response.items) == 3 and response.model_version == active
    assert response.strategy == pb.STRATEGY_BALANCED
    assert all(item.reasons and 0 <= item.confidence < 1 for item in response.items)
    server.app.write_served_lists()  # the server writes served lists behind the answer
    assert server.store.get_recommendation(response.recommendation_id).model_version == active


@pytest.mark.parametrize("strategy", [pb.STRATEGY_BALANCED, pb.STRATEGY_REPLENISH, pb.STRATEGY_DISCOVER])
def test_vegan_basket_and_price_rules_hold(stub, strategy):
    request = pb.GetRecommendationsRequest(
        customer_id="vera",
        limit=10,
        strategy=strategy,
        basket_product_ids=["sauce"],
        filters=pb.RecommendationFilters(max_price=50.0),
    )
    for product_id in ids(stub.GetRecommendations(request)):
        product = PRODUCTS[IDS.index(product_id)]
        assert "vegan" in product.dietary_tags and product.price <= 50.0 and product_id != "sauce"


def test_discover_never_returns_a_purchased_product(stub):
    response = stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice", strategy=pb.STRATEGY_DISCOVER))
    assert response.items and not {"milk", "pasta", "oat"} & set(ids(response))


def test_a_purchase_recorded_through_the_api_counts_at_once(server, stub):
    """Alice buys milk weekly and last bought it a week ago. Buying it now shows in her next list
    at once, without retraining: milk is still what her next trip needs, bought today."""
    request = pb.GetRecommendationsRequest(customer_id="alice", limit=10, strategy=pb.STRATEGY_REPLENISH)

    def milk_reasons() -> list[str]:
        items = {item.product_id: list(item.reasons) for item in stub.GetRecommendations(request).items}
        return items.get("milk", [])

    assert any("last bought 7 days ago" in r for r in milk_reasons())
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(NOW - timedelta(minutes=1))
    customers.RecordPurchase(
        customer_pb2.RecordPurchaseRequest(
            customer_id="alice",
            purchase=common_pb2.Purchase(
                order_id="now", product_id="milk", quantity=1, unit_price=1.2, purchased_at=at
            ),
        )
    )
    assert any("last bought 0 days ago" in r for r in milk_reasons())


def test_models_are_activated_and_rolled_back_through_admin(server, stub, settings):
    first = server.store.active_model().version
    second = train_model(server.store, settings, activate=False).version
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    assert [m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models] == [second, first]

    assert admin.ActivateModel(admin_pb2.ActivateModelRequest(version=second)).active
    assert stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice")).model_version == second
    assert admin.RollbackModel(admin_pb2.RollbackModelRequest()).version == first
    assert stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice")).model_version == first


def test_activating_an_unknown_version_is_not_found_and_changes_nothing(server):
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    before = server.store.active_model().version
    with pytest.raises(grpc.RpcError) as error:
        admin.ActivateModel(admin_pb2.ActivateModelRequest(version="no-such-version"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND and "no-such-version" in error.value.details()
    assert server.store.active_model().version == before


def test_retrain_builds_and_serves_a_new_version(server, stub):
    before = server.store.active_model().version
    built = server.stub(admin_pb2_grpc.AdminServiceStub).RetrainModel(admin_pb2.RetrainModelRequest()).model
    assert built.active and built.version != before and built.metrics["items"] == len(PRODUCTS)
    assert stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice")).model_version == built.version


def test_every_list_rpc_answers(stub):
    assert ids(stub.GetSimilarProducts(pb.GetSimilarProductsRequest(product_id="milk", limit=2)))
    fbt = stub.GetFrequentlyBoughtTogether(pb.GetFrequentlyBoughtTogetherRequest(basket_product_ids=["pasta"]))
    assert fbt.items and "pasta" not in ids(fbt)
    personal = stub.GetPersonalizedRecommendations(pb.GetPersonalizedRecommendationsRequest(customer_id="alice"))
    assert personal.lifecycle == pb.LIFECYCLE_STAGE_REGULAR
    seasonal = stub.GetSeasonal(pb.GetSeasonalRequest())
    assert seasonal.week_of_year == NOW.isocalendar().week
    assert stub.GetTrending(pb.GetTrendingRequest()).window_days == 14


def test_feedback_is_recorded(server, stub):
    served = stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice", limit=2))
    stub.RecordFeedback(
        pb.RecordFeedbackRequest(
            recommendation_id=served.recommendation_id,
            product_id=served.items[0].product_id,
            event=pb.FEEDBACK_EVENT_CLICKED,
        )
    )
    assert len(server.store.list_feedback(served.recommendation_id)) == 1


@pytest.mark.parametrize(
    ("call", "request_message", "code", "field"),
    [
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id="alice", strategy=99),
            grpc.StatusCode.INVALID_ARGUMENT,
            "strategy",
        ),
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id="alice", limit=500),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
        ),
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id="alice", limit=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
        ),
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "customer_id",
        ),
        ("GetRecommendations", pb.GetRecommendationsRequest(customer_id="nobody"), grpc.StatusCode.NOT_FOUND, "nobody"),
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id="alice", filters=pb.RecommendationFilters(allergens=["dust"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "filters.allergens[0]",
        ),
        (
            "GetRecommendations",
            pb.GetRecommendationsRequest(customer_id="alice", filters=pb.RecommendationFilters(max_price=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "filters.max_price",
        ),
        ("GetSimilarProducts", pb.GetSimilarProductsRequest(product_id="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        (
            "GetFrequentlyBoughtTogether",
            pb.GetFrequentlyBoughtTogetherRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "basket_product_ids",
        ),
        ("GetTrending", pb.GetTrendingRequest(window_days=3), grpc.StatusCode.INVALID_ARGUMENT, "window_days"),
        (
            "RecordFeedback",
            pb.RecordFeedbackRequest(recommendation_id="r", product_id="milk"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "event",
        ),
        (
            "RecordFeedback",
            pb.RecordFeedbackRequest(recommendation_id="r", product_id="milk", event=pb.FEEDBACK_EVENT_SHOWN),
            grpc.StatusCode.NOT_FOUND,
            "r",
        ),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(server, stub, call, request_message, code, field):
    before = server.store.list_recommendations("alice")
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, call)(request_message)
    assert error.value.code() == code
    assert field in error.value.details()
    assert server.store.list_recommendations("alice") == before


def test_without_a_model_the_answer_says_how_to_get_one(running_server):
    server = running_server(prepare=seed)  # data, but nothing trained
    stub = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id="alice"))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "run `omnix train`" in error.value.details()


def test_a_ranking_served_again_has_its_own_id_and_each_serving_is_stored(server, stub, monkeypatch):
    """Past the retry window a ranking is served again under a new id (a purchase starts a new
    one: test_a_purchase_recorded_through_the_api_counts_at_once)."""
    # No retry window: every call after the first serves the kept ranking again.
    monkeypatch.setattr(recommender_module, "SERVED_LIST_TTL_S", 0.0)
    request = pb.GetRecommendationsRequest(customer_id="alice", limit=3)
    first, again = stub.GetRecommendations(request), stub.GetRecommendations(request)
    assert again.recommendation_id != first.recommendation_id
    assert pb.GetRecommendationsResponse(
        items=again.items, model_version=again.model_version, strategy=again.strategy
    ) == pb.GetRecommendationsResponse(items=first.items, model_version=first.model_version, strategy=first.strategy)
    server.app.write_served_lists()
    for response in (first, again):
        stored = server.store.get_recommendation(response.recommendation_id)
        assert stored.customer_id == "alice" and [item.product_id for item in stored.items] == ids(first)
