"""Two server processes sharing one store and one Redis: a purchase or a cart event recorded
through one counts for the next list the other serves, and both keep answering when Redis goes
away."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from scale_support import ServerProcess, free_port

from omnix_recs._proto.omnix.v1 import common_pb2, customer_pb2, customer_pb2_grpc, recommendation_pb2_grpc
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs.config import Settings
from omnix_recs.store.cache import REDIS_KEY_PREFIX


@pytest.fixture
def two_servers(shop_store_url, trained_shop, redis_server):
    settings = Settings(
        store_url=shop_store_url, model_dir=str(trained_shop.model_dir), redis_url=redis_server.url, log_level="WARNING"
    )
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(ServerProcess(replace(settings, grpc_port=free_port())))
        yield started
    finally:
        for server in started:
            server.stop()


def discover(server: ServerProcess, customer_id: str) -> pb.GetRecommendationsResponse:
    stub = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    return stub.GetRecommendations(
        pb.GetRecommendationsRequest(customer_id=customer_id, limit=10, strategy=pb.STRATEGY_DISCOVER), timeout=10
    )


def test_a_purchase_through_one_process_counts_for_the_next_list_of_the_other(two_servers, trained_shop, redis_server):
    serving, recording = two_servers
    customer_id = trained_shop.customers[5]
    first = discover(serving, customer_id)
    assert discover(serving, customer_id).recommendation_id == first.recommendation_id  # served from the cache
    with redis_server.client() as client:
        assert client.exists(f"{REDIS_KEY_PREFIX}:c:{customer_id}")

    bought = first.items[0].product_id
    recording.stub(customer_pb2_grpc.CustomerServiceStub).RecordPurchase(
        customer_pb2.RecordPurchaseRequest(
            customer_id=customer_id,
            purchase=common_pb2.Purchase(
                order_id="o-new", product_id=bought, quantity=1, purchased_at=Timestamp(seconds=int(time.time()) - 1)
            ),
        ),
        timeout=10,
    )
    after = discover(serving, customer_id)
    assert after.recommendation_id != first.recommendation_id
    assert bought not in [item.product_id for item in after.items]  # DISCOVER leaves out what was bought


def test_both_processes_keep_answering_without_redis(two_servers, trained_shop, redis_server):
    for server in two_servers:
        discover(server, trained_shop.customers[6])
    redis_server.stop()
    for server in two_servers:
        for customer_id in trained_shop.customers[6:9]:
            assert discover(server, customer_id).items


def test_a_cart_event_through_one_process_reaches_the_other_and_a_view_changes_nothing(two_servers, trained_shop):
    serving, recording = two_servers
    customer_id = trained_shop.customers[6]
    customers = recording.stub(customer_pb2_grpc.CustomerServiceStub)

    def record(kind: int, product_id: str, quantity: int) -> None:
        interaction = customer_pb2.Interaction(kind=kind, product_id=product_id, quantity=quantity)
        request = customer_pb2.RecordInteractionRequest(customer_id=customer_id, interaction=interaction)
        customers.RecordInteraction(request, timeout=10)

    first = discover(serving, customer_id)
    record(customer_pb2.INTERACTION_KIND_VIEW, first.items[0].product_id, 0)
    assert discover(serving, customer_id).recommendation_id == first.recommendation_id  # nothing to drop

    carted = first.items[0].product_id
    record(customer_pb2.INTERACTION_KIND_CART_ADD, carted, 1)
    after = discover(serving, customer_id)
    assert after.recommendation_id != first.recommendation_id
    assert carted not in [item.product_id for item in after.items]  # what is in the cart is not offered again
