"""`omnix serve --metrics-port`: Prometheus text at /metrics, summed over the worker processes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    customer_pb2,
    customer_pb2_grpc,
    recommendation_pb2_grpc,
)
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as rec_pb
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer, Product, Purchase, ServedRecommendation
from omnix_recs.engine.train import train_model
from omnix_recs.metrics import SYNC_EVERY_S
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

START_TIMEOUT_S = 30.0
CALLS = 40
LISTED = "/omnix.v1.AdminService/ListExperiments"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, int]]:
    with serving(tmp_path, request.param) as ports:
        yield ports


@contextlib.contextmanager
def serving(tmp_path: Path, workers: int, **env_changes: str) -> Iterator[tuple[int, int]]:
    """`omnix serve` with metrics, once it answers and its figures show the start-up call."""
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "OMNIX_LOG_LEVEL": "WARNING", "OMNIX_MODEL_DIR": str(tmp_path / "models"), **env_changes}
    env.pop("OMNIX_REDIS_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "omnix_recs.cli", "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--metrics-port", str(metrics_port)]
    command += ["--store", f"sqlite:///{tmp_path / 'omnix.db'}"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, "omnix serve exited"
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    admin_pb2_grpc.AdminServiceStub(channel).ListExperiments(
                        admin_pb2.ListExperimentsRequest(), timeout=1
                    )
                # Started once the start-up call above shows in the figures (written every second).
                if sample(scrape(metrics_port), "omnix_grpc_requests_total", method=LISTED, code="OK"):
                    break
                time.sleep(0.2)
            except (grpc.RpcError, OSError):
                assert time.monotonic() < deadline, "omnix serve did not start"
                time.sleep(0.2)
        yield port, metrics_port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_calls_are_counted_by_method_and_code_across_processes(served: tuple[int, int]) -> None:
    port, metrics_port = served
    # The start-up calls, once every process has written them (tallies are written every second).
    listed = -1.0
    while (now := sample(scrape(metrics_port), "omnix_grpc_requests_total", method=LISTED, code="OK")) != listed:
        listed = now
        time.sleep(SYNC_EVERY_S * 1.5)
    # New connections each time, so that with two workers both get calls (SO_REUSEPORT spreads them).
    for n in range(CALLS):
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            admin.ListExperiments(admin_pb2.ListExperimentsRequest(), timeout=5)
            if n % 4 == 0:
                with pytest.raises(grpc.RpcError):
                    admin.GetExperiment(admin_pb2.GetExperimentRequest(), timeout=5)
    method = "/omnix.v1.AdminService/ListExperiments"
    # Each process writes its tallies every second: wait for them.
    deadline = time.monotonic() + 10
    while True:
        text = scrape(metrics_port)
        if sample(text, "omnix_grpc_request_duration_seconds_count", method=method) >= listed + CALLS:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert sample(text, "omnix_grpc_requests_total", method=method, code="OK") == listed + CALLS
    assert (
        sample(
            text, "omnix_grpc_requests_total", method="/omnix.v1.AdminService/GetExperiment", code="INVALID_ARGUMENT"
        )
        == CALLS // 4
    )
    assert sample(text, "omnix_grpc_request_duration_seconds_count", method=method) == listed + CALLS
    assert sample(text, "omnix_grpc_request_duration_seconds_bucket", method=method, le="+Inf") == listed + CALLS
    buckets = [
        sample(text, "omnix_grpc_request_duration_seconds_bucket", method=method, le=le)
        for le in ("0.001", "0.01", "0.1", "1.0", "+Inf")
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert 0 < sample(text, "omnix_grpc_request_duration_seconds_sum", method=method) < CALLS
    # Calls in flight are sampled every second: none once the calls have ended.
    deadline = time.monotonic() + 5
    while sample(scrape(metrics_port), "omnix_grpc_in_flight_requests") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)


SHED = 5
CHECK = "/grpc.health.v1.Health/Check"


def test_shed_requests_are_counted(tmp_path: Path) -> None:
    """Calls refused for overload reach the figures, under their method."""
    with (
        serving(tmp_path, 1, OMNIX_MAX_INFLIGHT="1") as (port, metrics_port),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest())  # holds the only place until cancelled
        next(watch)
        for _ in range(SHED):
            with pytest.raises(grpc.RpcError) as refused:
                health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "OMNIX_MAX_INFLIGHT" in str(refused.value.details())
        watch.cancel()
        deadline = time.monotonic() + 10
        while sample(text := scrape(metrics_port), "omnix_shed_requests_total", method=CHECK) < SHED:
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert sample(text, "omnix_shed_requests_total", method=CHECK) == SHED
        assert sample(text, "omnix_grpc_requests_total", method=CHECK, code="RESOURCE_EXHAUSTED") == SHED
        assert sample(text, "omnix_shed_requests_total", method=LISTED) == 0


def seed_shop(tmp_path: Path, customers: list[str]) -> None:
    """A store with a trained model, where `omnix serve` (`serving`) finds them."""
    products = [Product(f"p{n}", f"Product {n}", "pantry", "staples", "Brand", 1.0 + n) for n in range(8)]
    now = datetime.now(UTC)
    store = open_store(f"sqlite:///{tmp_path / 'omnix.db'}")
    try:
        store.upsert_products(products)
        for n, customer_id in enumerate(customers):
            store.create_customer(Customer(customer_id, now - timedelta(days=60), now - timedelta(days=60)))
            store.add_purchases(
                [
                    Purchase(
                        customer_id,
                        f"{customer_id}-{d}",
                        products[(n + k) % 8].product_id,
                        1,
                        2.0,
                        now - timedelta(days=d),
                    )
                    for d in (30, 20, 10)
                    for k in range(3)
                ]
            )
        train_model(store, Settings(model_dir=str(tmp_path / "models")))
    finally:
        store.close()


def stored_lists(store: Store, customers: list[str]) -> list[ServedRecommendation]:
    return [s for c in customers for s in store.list_recommendations(c)]


def test_attributed_purchases_and_revenue_add_up_across_workers(tmp_path: Path) -> None:
    customers = [f"shopper-{n}" for n in range(12)]
    seed_shop(tmp_path, customers)
    with serving(tmp_path, 2) as (port, metrics_port):
        lists = {}
        for customer_id in customers:
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                answer = recommendation_pb2_grpc.RecommendationServiceStub(channel).GetRecommendations(
                    rec_pb.GetRecommendationsRequest(customer_id=customer_id, limit=3), timeout=10
                )
            assert answer.items
            lists[customer_id] = answer
        # The lists are written behind the answers: wait until the store has them all.
        store = open_store(f"sqlite:///{tmp_path / 'omnix.db'}")
        try:
            deadline = time.monotonic() + 10
            wanted = {a.recommendation_id for a in lists.values()}
            while not wanted <= {s.recommendation_id for s in stored_lists(store, customers)}:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            store.close()
        revenue = 0.0
        purchased_at = timestamp_pb2.Timestamp()
        purchased_at.FromDatetime(datetime.now(UTC))
        for n, (customer_id, answer) in enumerate(lists.items()):
            listed = {item.product_id for item in answer.items}
            bought = answer.items[0].product_id
            not_listed = next(f"p{k}" for k in range(8) if f"p{k}" not in listed)
            lines = [
                common_pb2.Purchase(
                    order_id=f"o{n}", product_id=bought, quantity=2, unit_price=1.25 + n, purchased_at=purchased_at
                )
            ]
            lines.append(
                common_pb2.Purchase(
                    order_id=f"o{n}", product_id=not_listed, quantity=1, unit_price=9.0, purchased_at=purchased_at
                )
            )
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                customer_pb2_grpc.CustomerServiceStub(channel).RecordPurchases(
                    customer_pb2.RecordPurchasesRequest(customer_id=customer_id, purchases=lines), timeout=10
                )
            revenue += 2 * (1.25 + n)
        deadline = time.monotonic() + 10
        while sample(text := scrape(metrics_port), "omnix_attributed_purchases_total", list="balanced") < len(lists):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert sample(text, "omnix_attributed_purchases_total", list="balanced") == len(lists)
        assert sample(text, "omnix_attributed_revenue_total", list="balanced") == pytest.approx(revenue)


def test_background_cache_reloads_are_counted_by_kind_and_their_failures_apart() -> None:
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from omnix_recs import metrics
    from omnix_recs.store.cache import LocalCache

    cache = LocalCache(ttl_s=60, max_entries=10)
    cache.stats.refreshes.update(shopper=3, cart=2)  # what `Cache` counts (tests/scale/test_cache.py)
    cache.stats.refresh_failures.update(shopper=1)
    app = SimpleNamespace(cache=cache, served_lists=None, models=SimpleNamespace(model=None))
    figures = metrics.ProcessFigures(app, metrics.enable())  # type: ignore[arg-type]
    try:
        figures.sync()
        figures.sync()  # copied as differences: each counted once

        def value(kind: str, result: str) -> float | None:
            return REGISTRY.get_sample_value("omnix_cache_refreshes_total", {"kind": kind, "result": result})

        assert (value("shopper", "ok"), value("cart", "ok"), value("shopper", "failed")) == (3.0, 2.0, 1.0)
    finally:
        metrics.disable()
