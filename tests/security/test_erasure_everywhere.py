"""Erasure over real gRPC with two server processes sharing the store, the model directory and
Redis: after DeleteCustomer through one, nothing of the customer is answered by either (their
caches included), Redis holds no entry of theirs, no table row names them, an id registered
again is not served the erased customer's "shoppers like you" row, and the next model knows
nothing of them."""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from fuzz_support import FuzzServer, trained_shop
from google.protobuf import timestamp_pb2

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    customer_pb2,
    customer_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from omnix_recs.customers import ERASURE_SWEEP_AFTER_S
from omnix_recs.engine.artifact import load_model
from omnix_recs.store import open_store

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
from scale_support import RedisServer, free_port  # noqa: E402

LIKE_YOU_REASON = "bought by shoppers whose baskets look like yours"
SWEEP_MARGIN_S = 10.0


def reads(server: FuzzServer, customer_id: str) -> dict[str, Callable[[], object]]:
    """Every read of one customer's data, by RPC name."""
    customers = customer_pb2_grpc.CustomerServiceStub(server.channel)
    lists = recommendation_pb2_grpc.RecommendationServiceStub(server.channel)
    insights = insights_pb2_grpc.InsightsServiceStub(server.channel)
    return {
        "GetCustomerProfile": lambda: customers.GetCustomerProfile(
            customer_pb2.GetCustomerProfileRequest(customer_id=customer_id), timeout=10
        ),
        "ListPurchases": lambda: customers.ListPurchases(
            customer_pb2.ListPurchasesRequest(customer_id=customer_id), timeout=10
        ),
        "ExportCustomerData": lambda: customers.ExportCustomerData(
            customer_pb2.ExportCustomerDataRequest(customer_id=customer_id), timeout=10
        ),
        "GetRecommendations": lambda: lists.GetRecommendations(
            recommendation_pb2.GetRecommendationsRequest(customer_id=customer_id, limit=10), timeout=10
        ),
        "GetPersonalizedRecommendations": lambda: lists.GetPersonalizedRecommendations(
            recommendation_pb2.GetPersonalizedRecommendationsRequest(customer_id=customer_id, limit=10), timeout=10
        ),
        "GetInsights": lambda: insights.GetInsights(
            insights_pb2.GetInsightsRequest(customer_id=customer_id), timeout=10
        ),
        "GetConsumptionPredictions": lambda: insights.GetConsumptionPredictions(
            insights_pb2.GetConsumptionPredictionsRequest(customer_id=customer_id), timeout=10
        ),
    }


def code_of(read: Callable[[], object]) -> grpc.StatusCode:
    try:
        read()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def sqlite_rows_of(path: Path, customer_id: str) -> list[str]:
    """Rows of every table with a customer column that hold `customer_id` (ids here are numbers
    that products and orders share, so the column is what says whose a row is)."""
    found = []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if "customer" in r[1]]
            for column in columns:
                rows = conn.execute(f'SELECT * FROM "{table}" WHERE "{column}" = ?', (customer_id,)).fetchall()
                found += [f"{table}: {row!r}" for row in rows]
    return found


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[FuzzServer, FuzzServer, RedisServer, Path, Path, list[str], list[str]]]:
    store_url, model_dir, customers, products = trained_shop(tmp_path)
    redis = RedisServer(tmp_path)
    redis.start()
    env = {
        "OMNIX_STORE": store_url,
        "OMNIX_MODEL_DIR": str(model_dir),
        "OMNIX_REDIS_URL": redis.url,
        "OMNIX_LOG_LEVEL": "WARNING",
    }
    servers: list[FuzzServer] = []
    try:
        for name in ("a", "b"):
            servers.append(FuzzServer(env, free_port(), tmp_path / f"server-{name}.log"))
        yield servers[0], servers[1], redis, tmp_path / "omnix.db", model_dir, customers, products
    finally:
        for server in servers:
            server.stop()
        redis.stop()


def test_an_erased_customer_is_gone_from_every_process_cache_table_and_model(shop):
    a, b, redis, database, model_dir, customers, products = shop
    active = load_model(max((p for p in model_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime))
    known = set(active.like_you_customers.tolist())
    erased = next(c for c in customers if c in known)  # one the model has a "shoppers like you" row for
    assert sqlite_rows_of(database, erased)

    insights = insights_pb2_grpc.InsightsServiceStub(a.channel)
    insights.AnalyzeCustomer(insights_pb2.AnalyzeCustomerRequest(customer_id=erased), timeout=30)
    for server in (a, b):  # fills both processes' caches, and Redis
        for name, read in reads(server, erased).items():
            assert code_of(read) is grpc.StatusCode.OK, name
    with redis.client() as client:
        assert any(erased.encode() in key for key in client.keys("*"))

    customer_pb2_grpc.CustomerServiceStub(a.channel).DeleteCustomer(
        customer_pb2.DeleteCustomerRequest(customer_id=erased), timeout=30
    )

    # Every read in both processes at once: the other process's cache was invalidated too.
    for server in (a, b):
        answers = {name: code_of(read) for name, read in reads(server, erased).items()}
        assert answers == dict.fromkeys(answers, grpc.StatusCode.NOT_FOUND), server.address
    # The other process served lists just before the erasure; its write-behind queue may store
    # one after it: the erasure's second pass removes those (customers.ERASURE_SWEEP_AFTER_S).
    deadline = time.monotonic() + ERASURE_SWEEP_AFTER_S + SWEEP_MARGIN_S
    while (left := sqlite_rows_of(database, erased)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
    with redis.client() as client:
        left = [key for key in client.keys("*") if erased.encode() in key]
        # Only the cache's generation counter (a number, no data: it keeps a load started
        # before the erasure from storing it back) names them, and it expires.
        counter = re.compile(rb"omnix:v1:g:" + re.escape(erased.encode()) + rb"(\|\w+)?")
        assert all(counter.fullmatch(key) for key in left), left
        assert all(client.get(key).isdigit() and client.ttl(key) > 0 for key in left)

    # The id registered again is someone else: the erased customer's row in the active model
    # is not theirs, even once they have a history of their own.
    customers_b = customer_pb2_grpc.CustomerServiceStub(b.channel)
    customers_b.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id=erased), timeout=10)
    now = timestamp_pb2.Timestamp()
    now.FromDatetime(datetime.now(UTC))
    lines = [common_pb2.Purchase(order_id="o-new", product_id=p, quantity=1, purchased_at=now) for p in products[:3]]
    customers_b.RecordPurchases(customer_pb2.RecordPurchasesRequest(customer_id=erased, purchases=lines), timeout=10)
    time.sleep(0.1)
    for server in (a, b):
        lists = recommendation_pb2_grpc.RecommendationServiceStub(server.channel)
        for strategy in (recommendation_pb2.STRATEGY_REPLENISH, recommendation_pb2.STRATEGY_DISCOVER):
            answer = lists.GetRecommendations(
                recommendation_pb2.GetRecommendationsRequest(customer_id=erased, limit=50, strategy=strategy),
                timeout=10,
            )
            assert all(LIKE_YOU_REASON not in reason for item in answer.items for reason in item.reasons)

    # The next model is built from the store alone: it knows the new shopper's three lines and
    # nothing of the erased customer's history.
    customers_b.DeleteCustomer(customer_pb2.DeleteCustomerRequest(customer_id=erased), timeout=30)
    retrained = admin_pb2_grpc.AdminServiceStub(a.channel).RetrainModel(
        admin_pb2.RetrainModelRequest(force=True), timeout=120
    )
    newest = load_model(model_dir / retrained.model.version)
    assert erased not in newest.like_you_customers.tolist()
    store = open_store(f"sqlite:///{database}")
    try:
        assert store.purchases_of(erased) == []
    finally:
        store.close()
