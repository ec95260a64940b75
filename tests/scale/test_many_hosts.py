"""Many hosts: three `omnix serve` processes on 127.0.0.2, .3 and .4 sharing DynamoDB (dynoxide),
Redis and a model directory, and a client balancing round robin over them.

What one host is told, every host acts on: a purchase recorded through one host shapes the next
list on every host (within a second: the shared cache is invalidated by the write, not left to
expire), a model activated or rolled back through one host is served by all of them, and an
experiment created through one host puts each customer in the same arm on every host, until it is
stopped through another. The hosts re-read models and experiments every OMNIX_FOLLOW_INTERVAL_S.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import timestamp_pb2
from local_aws import dynoxide_server
from many_hosts import Host, start_hosts
from scale_support import RedisServer

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    customer_pb2,
    customer_pb2_grpc,
)
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs._proto.omnix.v1 import recommendation_pb2_grpc as pb_grpc
from omnix_recs.cli import main
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign
from omnix_recs.loadgen import balanced_channel, parse_targets
from omnix_recs.store import open_store

ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
SHOP = dict(customers=40, products=200, days=120, seed=21)
FOLLOW_INTERVAL_S = 0.5
# A purchase must reach every host's next list within this long.
PURCHASE_REACHES_EVERY_HOST_S = 1.0
# An activation or experiment is re-read by every host within the follow interval; the margin is
# for one check's store read and model load on a shared 2-core machine.
FOLLOWED_WITHIN_S = FOLLOW_INTERVAL_S + 2.0
LISTS = "/omnix.v1.RecommendationService/GetRecommendations"
LAST_BOUGHT = re.compile(r"last bought (.+?) ago")

T = TypeVar("T")


@dataclass
class Cluster:
    hosts: list[Host]
    target: str  # what a client of every host is given: 127.0.0.2:P,127.0.0.3:P,127.0.0.4:P
    store_url: str
    customers: list[str]
    active_version: str
    spare_version: str  # trained, not active


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("many-hosts")
    with dynoxide_server() as endpoint:
        redis = RedisServer(root)
        redis.start()
        hosts: list[Host] = []
        try:
            url = f"dynamodb://?region=us-east-1&endpoint={endpoint}&env=hosts"
            settings = Settings(store_url=url, model_dir=str(root / "models"))
            generate_instacart(root / "shop", **SHOP)  # type: ignore[arg-type]
            store = open_store(url)
            try:
                store.create_tables()  # type: ignore[attr-defined]
                # Every purchase at least three days old: a purchase today is then news.
                import_instacart(store, root / "shop", as_of=date.today() - timedelta(days=3))
                active = train_model(store, settings, tune=False)
                spare = train_model(store, settings, tune=False, activate=False, seed=1)
                customers = list(store.list_customer_ids(page_size=1000).items)
            finally:
                store.close()
            environment = {
                "OMNIX_STORE": url,
                "OMNIX_REDIS_URL": redis.url,
                "OMNIX_MODEL_DIR": settings.model_dir,
                "OMNIX_FOLLOW_INTERVAL_S": str(FOLLOW_INTERVAL_S),
                "OMNIX_LOG_LEVEL": "INFO",
            }
            hosts, port = start_hosts(ADDRESSES, environment, root / "hosts")
            target = ",".join(f"{address}:{port}" for address in ADDRESSES)
            yield Cluster(hosts, target, url, customers, active.version, spare.version)
        finally:
            for host in hosts:
                host.stop()
            redis.stop()


@pytest.fixture
def balanced(cluster: Cluster) -> Iterator[grpc.Channel]:
    """One channel over every host, round robin, as a client of the fleet would hold."""
    target, options = balanced_channel(parse_targets(cluster.target))
    channel = grpc.insecure_channel(target, options=options)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield channel
    channel.close()


def lists(host: Host) -> Any:
    return host.stub(pb_grpc.RecommendationServiceStub)


def admin(host: Host) -> Any:
    return host.stub(admin_pb2_grpc.AdminServiceStub)


def recommend(host: Host, customer_id: str, strategy: int = pb.STRATEGY_BALANCED) -> pb.GetRecommendationsResponse:
    request = pb.GetRecommendationsRequest(customer_id=customer_id, limit=20, strategy=strategy)  # type: ignore[arg-type]
    answer: pb.GetRecommendationsResponse = lists(host).GetRecommendations(request, timeout=10)
    return answer


def eventually(check: Callable[[], T | None], within_s: float, what: str) -> T:
    """Ask `check` until it answers something other than None, for at most `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within_s:g} s: {what}")
        time.sleep(0.05)


def test_one_balanced_channel_spreads_calls_over_every_host(cluster: Cluster, balanced: grpc.Channel) -> None:
    before = [host.calls_answered(LISTS) for host in cluster.hosts]
    stub = pb_grpc.RecommendationServiceStub(balanced)
    calls = 30
    for i in range(calls):
        stub.GetRecommendations(pb.GetRecommendationsRequest(customer_id=cluster.customers[i % 10]), timeout=10)

    def answered_by_host() -> list[float] | None:
        counts = [host.calls_answered(LISTS) - b for host, b in zip(cluster.hosts, before)]
        return counts if sum(counts) == calls else None  # each host publishes its counts every second

    counts = eventually(answered_by_host, 10.0, "every call counted in some host's /metrics")
    assert all(count > 0 for count in counts), counts
    assert max(counts) - min(counts) <= 2, counts  # round robin: near equal shares


def test_omnix_loadgen_spreads_its_load_over_several_targets(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    before = [host.calls_answered(LISTS) for host in cluster.hosts]
    command = [
        "loadgen",
        "--store",
        cluster.store_url,
        "--target",
        cluster.target,
        "--channels",
        "2",
        "--customers",
        "20",
    ]
    assert main([*command, "--rate", "60", "--duration", "1", "--mix", "recommendations=1", "--arrival", "fixed"]) == 0
    printed = capsys.readouterr().out
    assert f"loadgen {cluster.target}: 60/s scheduled" in printed and "errors by status: none" in printed

    def answered_by_host() -> list[float] | None:
        counts = [host.calls_answered(LISTS) - b for host, b in zip(cluster.hosts, before)]
        return counts if sum(counts) == 60 else None

    counts = eventually(answered_by_host, 10.0, "every call counted in some host's /metrics")
    assert all(count > 0 for count in counts), counts


def test_a_purchase_on_one_host_reaches_the_next_list_on_every_host(cluster: Cluster) -> None:
    host_a = cluster.hosts[0]
    customer, due, due_since, discovery = _shopper_with_a_due_item_and_a_discovery(cluster)
    # Every host first answers (and caches, in Redis) the lists before the purchase.
    for host in cluster.hosts:
        assert discovery in _ids(recommend(host, customer, pb.STRATEGY_DISCOVER))
        assert due_since in _last_bought(recommend(host, customer, pb.STRATEGY_REPLENISH), due)

    customers = host_a.stub(customer_pb2_grpc.CustomerServiceStub)
    bought_at = timestamp_pb2.Timestamp()
    bought_at.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    for product_id in (due, discovery):
        purchase = common_pb2.Purchase(
            order_id="many-hosts-1", product_id=product_id, quantity=1, unit_price=2.0, purchased_at=bought_at
        )
        customers.RecordPurchase(customer_pb2.RecordPurchaseRequest(customer_id=customer, purchase=purchase))

    # DISCOVER excludes what the customer has bought; REPLENISH no longer says the due item was
    # last bought days ago: on every host, not only the one that recorded the purchase.
    for host in cluster.hosts:

        def reflected(host: Host = host) -> bool | None:
            discovered = discovery in _ids(recommend(host, customer, pb.STRATEGY_DISCOVER))
            stale = due_since in _last_bought(recommend(host, customer, pb.STRATEGY_REPLENISH), due)
            return True if not discovered and not stale else None

        eventually(reflected, PURCHASE_REACHES_EVERY_HOST_S, f"the purchase through {host_a.target} on {host.target}")


def test_activation_and_rollback_through_one_host_reach_every_host(cluster: Cluster) -> None:
    customer = cluster.customers[0]
    for host in cluster.hosts:
        assert recommend(host, customer).model_version == cluster.active_version

    activated = admin(cluster.hosts[0]).ActivateModel(
        admin_pb2.ActivateModelRequest(version=cluster.spare_version, force=True), timeout=30
    )
    assert activated.active and activated.version == cluster.spare_version
    _every_host_serves(cluster, customer, cluster.spare_version)

    rolled_back = admin(cluster.hosts[1]).RollbackModel(admin_pb2.RollbackModelRequest(), timeout=30)
    assert rolled_back.version == cluster.active_version
    _every_host_serves(cluster, customer, cluster.active_version)


def test_an_experiment_made_on_one_host_assigns_the_same_arm_on_every_host(cluster: Cluster) -> None:
    control = admin_pb2.ExperimentArm(arm_id="control", traffic_percent=50)
    replenish = admin_pb2.ExperimentArm(arm_id="replenish", traffic_percent=50, strategy=pb.STRATEGY_REPLENISH)
    created = admin(cluster.hosts[0]).CreateExperiment(
        admin_pb2.CreateExperimentRequest(
            experiment_id="many-hosts",
            surface=admin_pb2.EXPERIMENT_SURFACE_RECOMMENDATIONS,
            arms=[control, replenish],
            primary_metric=admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE,
            holdout_percent=20,
        ),
        timeout=10,
    )
    assert created.running
    store = open_store(cluster.store_url)
    try:
        record = store.get_experiment("many-hosts")
    finally:
        store.close()
    try:
        seen: dict[str, str] = {}
        for customer in cluster.customers[:20]:
            arm = assign(record, customer)
            expected = ("many-hosts", HOLDOUT_ARM if arm is None else arm.arm_id)
            for host in cluster.hosts:

                def stamped(host: Host = host, customer: str = customer) -> tuple[str, str] | None:
                    answer = recommend(host, customer)
                    return (answer.experiment_id, answer.arm_id) if answer.experiment_id else None

                assert eventually(stamped, FOLLOWED_WITHIN_S, f"the experiment on {host.target}") == expected
            seen[customer] = expected[1]
        assert len(set(seen.values())) >= 2, seen  # more than one arm was served
    finally:
        stopped = admin(cluster.hosts[2]).StopExperiment(
            admin_pb2.StopExperimentRequest(experiment_id="many-hosts"), timeout=10
        )
    assert not stopped.running
    for host in cluster.hosts:
        for customer in cluster.customers[:5]:

            def unstamped(host: Host = host, customer: str = customer) -> bool | None:
                return True if recommend(host, customer).experiment_id == "" else None

            eventually(unstamped, FOLLOWED_WITHIN_S, f"the stop through {cluster.hosts[2].target} on {host.target}")


def test_a_purchase_refused_by_one_host_changes_no_host(cluster: Cluster) -> None:
    customer = cluster.customers[1]
    discovery = _ids(recommend(cluster.hosts[0], customer, pb.STRATEGY_DISCOVER))[0]
    purchase = common_pb2.Purchase(order_id="bad", product_id=discovery, quantity=0, unit_price=1.0)
    purchase.purchased_at.FromDatetime(datetime.now(UTC))
    with pytest.raises(grpc.RpcError) as refused:
        cluster.hosts[0].stub(customer_pb2_grpc.CustomerServiceStub).RecordPurchase(
            customer_pb2.RecordPurchaseRequest(customer_id=customer, purchase=purchase), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quantity" in (refused.value.details() or "")
    for host in cluster.hosts:
        assert discovery in _ids(recommend(host, customer, pb.STRATEGY_DISCOVER))


# --- helpers ----------------------------------------------------------------------------------


def _ids(answer: pb.GetRecommendationsResponse) -> list[str]:
    return [item.product_id for item in answer.items]


def _last_bought(answer: pb.GetRecommendationsResponse, product_id: str) -> list[str]:
    """How long ago the list says `product_id` was last bought ([] when it is not listed so)."""
    return [
        match.group(1)
        for item in answer.items
        if item.product_id == product_id
        for reason in item.reasons
        if (match := LAST_BOUGHT.search(reason))
    ]


def _shopper_with_a_due_item_and_a_discovery(cluster: Cluster) -> tuple[str, str, str, str]:
    """A customer, an item their REPLENISH list says they last bought days ago (and how long it
    says), and an item of their DISCOVER list."""
    host = cluster.hosts[0]
    for customer in reversed(cluster.customers):  # the others' lists are the other tests'
        replenish = recommend(host, customer, pb.STRATEGY_REPLENISH)
        discover = _ids(recommend(host, customer, pb.STRATEGY_DISCOVER))
        for item in replenish.items:
            since = _last_bought(replenish, item.product_id)
            if since and discover:
                return customer, item.product_id, since[0], discover[0]
    pytest.fail("no customer has a replenishment reason and a discovery")


def _every_host_serves(cluster: Cluster, customer: str, version: str) -> None:
    for host in cluster.hosts:

        def serves(host: Host = host) -> bool | None:
            return True if recommend(host, customer).model_version == version else None

        eventually(serves, FOLLOWED_WITHIN_S, f"{host.target} serving model {version}")
