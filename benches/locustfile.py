"""Locust: simulated shoppers on the OMNIX gRPC API, each with think time between calls.

    pip install -e '.[bench]'                       # locust is a bench-only dependency
    OMNIX_STORE=sqlite:///./var/omnix.db \\
      locust -f benches/locustfile.py --headless --host 127.0.0.1:50051 -u 2000 -r 200 -t 2m

Each simulated user is one shopper (a customer id drawn from the store at start-up) on a
session: mostly their own list, then product pages (similar products), basket completion and
browsing recorded as interactions, with 1-5 s of think time between calls, so N users make
about N/3 calls per second. The issue's target (10,000 shoppers, one call every few seconds)
is `-u 10000`. Calls are reported to locust through `events.request` like its HTTP users'.

Locust runs users on gevent, so gRPC's gevent integration is switched on before any channel
exists. Users share a small pool of channels (`OMNIX_LOCUST_CHANNELS`, default 32): thousands of
users do not need thousands of connections, and a few dozen spread over the workers of
`omnix serve --workers N`. For an open-loop arrival rate rather than a user count, use
`omnix loadgen` (python/omnix_recs/loadgen.py).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, between, events, task

grpc_gevent.init_gevent()

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc  # noqa: E402  # noqa: E402
from omnix_recs.loadgen import sample_ids  # noqa: E402  (after gevent is set up)
from omnix_recs.store import open_store  # noqa: E402

CALL_TIMEOUT_S = 5.0
CHANNELS = int(os.environ.get("OMNIX_LOCUST_CHANNELS", "32"))
SAMPLE_CUSTOMERS = 20_000
SAMPLE_PRODUCTS = 5_000

_ids: dict[str, list[str]] = {}
_channels: list[grpc.Channel] = []


@events.init.add_listener
def _load_ids(environment: Any, **_kwargs: Any) -> None:
    """Real customer and product ids from the store the server uses (`OMNIX_STORE`)."""
    store = open_store(os.environ.get("OMNIX_STORE", "sqlite:///./var/omnix.db"))
    try:
        _ids["customers"], _ids["products"] = sample_ids(store, customers=SAMPLE_CUSTOMERS, products=SAMPLE_PRODUCTS)
    finally:
        store.close()
    if not _ids["customers"] or not _ids["products"]:
        raise RuntimeError("the store has no customers or products: import data first (omnix demo / omnix import)")


@events.quitting.add_listener
def _close_channels(environment: Any, **_kwargs: Any) -> None:
    for channel in _channels:
        channel.close()


def _channel(host: str, index: int) -> grpc.Channel:
    if not _channels:
        # Separate subchannel pools: otherwise every channel to one target shares one connection.
        _channels.extend(
            grpc.insecure_channel(host, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(CHANNELS)
        )
    return _channels[index % len(_channels)]


class GrpcUser(User):
    """A locust user calling gRPC methods; every call is reported as a locust request."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError("give the server as --host HOST:PORT")
        self.channel = _channel(self.host, random.randrange(1 << 30))

    def call(self, name: str, method: Callable[..., Any], request: Any) -> Any:
        started = time.perf_counter()
        response, exception = None, None
        try:
            response = method(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:  # reported to locust as a failure named by its status
            exception = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=response.ByteSize() if response is not None else 0,
            exception=exception,
            context={},
        )
        return response


class Shopper(GrpcUser):
    """One shopper's session: their list, product pages, basket completion, browsing."""

    wait_time = between(1, 5)

    def on_start(self) -> None:
        self.customer_id = random.choice(_ids["customers"])
        self.recommendations = recommendation_pb2_grpc.RecommendationServiceStub(self.channel)
        self.customers = customer_pb2_grpc.CustomerServiceStub(self.channel)
        self.seen: list[str] = []  # products from the shopper's last list: what they click next

    def _product(self) -> str:
        return random.choice(self.seen or _ids["products"])

    @task(6)
    def recommendations_list(self) -> None:
        response = self.call(
            "GetRecommendations",
            self.recommendations.GetRecommendations,
            recommendation_pb2.GetRecommendationsRequest(customer_id=self.customer_id, limit=20),
        )
        if response is not None and response.items:
            self.seen = [item.product_id for item in response.items]

    @task(2)
    def similar_products(self) -> None:
        self.call(
            "GetSimilarProducts",
            self.recommendations.GetSimilarProducts,
            recommendation_pb2.GetSimilarProductsRequest(
                product_id=self._product(), limit=10, customer_id=self.customer_id
            ),
        )

    @task(1)
    def basket_completion(self) -> None:
        basket = list({self._product() for _ in range(random.randint(1, 4))})
        self.call(
            "GetFrequentlyBoughtTogether",
            self.recommendations.GetFrequentlyBoughtTogether,
            recommendation_pb2.GetFrequentlyBoughtTogetherRequest(
                basket_product_ids=basket, limit=10, customer_id=self.customer_id
            ),
        )

    @task(1)
    def browse(self) -> None:
        to_cart = random.random() < 0.3
        interaction = customer_pb2.Interaction(
            kind=customer_pb2.INTERACTION_KIND_CART_ADD if to_cart else customer_pb2.INTERACTION_KIND_VIEW,
            product_id=self._product(),
            quantity=1 if to_cart else 0,
        )
        self.call(
            "RecordInteraction",
            self.customers.RecordInteraction,
            customer_pb2.RecordInteractionRequest(customer_id=self.customer_id, interaction=interaction),
        )
