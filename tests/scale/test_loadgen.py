"""`omnix loadgen` against a small real server for about a second."""

from __future__ import annotations

import json
import random

import pytest
from scale_support import free_port

from omnix_recs import loadgen_native
from omnix_recs.cli import main as omnix
from omnix_recs.domain.models import ProductFilter
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from omnix_recs.loadgen import (
    ENGINES,
    METHOD_PATHS,
    _RequestMaker,
    balanced_channel,
    parse_mix,
    parse_targets,
    run_loadgen,
    sample_ids,
)
from omnix_recs.store import open_store


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_of_load_is_counted_by_kind_and_status(running_server, engine):
    server = running_server()  # no model: lists answer FAILED_PRECONDITION, health answers OK
    report = run_loadgen(
        server.address,
        rate=60,
        duration_s=1.0,
        channels=4,
        arrival="fixed",
        mix={"health": 1, "recommendations": 1},
        customers=["c1", "c2"],
        engine=engine,
    )
    assert report.engine == engine and report.client_cpu_s > 0
    assert report.scheduled == 60 and report.answered == 60 and report.not_sent == 0
    counts = report.codes_by_kind
    assert set(counts) == {"health", "recommendations"}
    assert counts["health"] == {"OK": report.ok}
    assert report.errors == {"FAILED_PRECONDITION": counts["recommendations"]["FAILED_PRECONDITION"]}
    assert report.latency.count == 60 and 0 < report.latency.p50_ms <= report.latency.p99_ms <= report.latency.max_ms
    assert "errors by status: FAILED_PRECONDITION" in report.render()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_command_draws_ids_from_the_store_and_prints_the_report(running_server, trained_shop, capsys, engine):
    server = running_server()
    assert (
        omnix(
            [
                "loadgen",
                "--store",
                f"sqlite:///{trained_shop.database}",
                "--target",
                server.address,
                "--rate",
                "20",
                "--duration",
                "0.5",
                "--mix",
                "health=1,similar=1",
                "--engine",
                engine,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"loadgen {server.address}: 20/s scheduled (poisson)" in printed and f"({engine} client, " in printed
    assert "health" in printed and "similar" in printed  # similar: NOT_FOUND, the server's store is empty


def test_sample_ids_takes_customers_and_in_stock_products(trained_shop):
    store = open_store(f"sqlite:///{trained_shop.database}")
    try:
        customers, products = sample_ids(store, customers=5, products=7)
        in_stock = {p.product_id for p in store.list_products(ProductFilter(in_stock_only=True), page_size=1000).items}
    finally:
        store.close()
    assert len(customers) == 5 and len(products) == 7 and set(products) <= in_stock


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        ("10.0.0.1:50051", {}, "target"),
        ("example.com:443", {}, "target"),
        ("127.0.0.1", {}, "target"),
        ("127.0.0.1:50051", {"rate": 0}, "rate"),
        ("127.0.0.1:50051", {"duration_s": 601}, "duration_s"),
        ("127.0.0.1:50051", {"channels": 0}, "channels"),
        ("127.0.0.1:50051", {"arrival": "bursty"}, "arrival"),
        ("127.0.0.1:50051", {"mix": {"checkout": 1}}, "mix"),
        ("127.0.0.1:50051", {"mix": {"health": 0}}, "mix"),
        ("127.0.0.1:50051", {"mix": {"recommendations": 1}, "customers": []}, "customers"),
        ("127.0.0.1:50051", {"mix": {"similar": 1}, "products": []}, "products"),
        ("127.0.0.1:50051", {"max_requests": 0}, "max_requests"),
        ("127.0.0.1:50051", {"engine": "wrk"}, "engine"),
        ("127.0.0.2:50051,127.0.0.3:50051", {"engine": "native", "channels": 1}, "channels"),
    ],
)
def test_bad_runs_are_refused_naming_the_argument(target, options, field):
    arguments = {"rate": 10, "duration_s": 1, "mix": {"health": 1}, **options}
    with pytest.raises(InvalidArgumentError) as error:
        run_loadgen(target, **arguments)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("text", "targets"),
    [
        ("127.0.0.1:50051", ["127.0.0.1:50051"]),
        ("localhost:1", ["localhost:1"]),
        ("[::1]:50051", ["[::1]:50051"]),
        ("127.0.0.2:7000, 127.0.0.3:7000,127.0.0.4:7000", ["127.0.0.2:7000", "127.0.0.3:7000", "127.0.0.4:7000"]),
    ],
)
def test_parse_targets(text, targets):
    assert parse_targets(text) == targets


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "expected 1 to"),
        ("127.0.0.2:1,10.0.0.1:1", "'10.0.0.1:1'"),
        ("127.0.0.2", "'127.0.0.2'"),
        ("127.0.0.2:0", "'127.0.0.2:0'"),
        ("127.0.0.2:1,[::1]:1", "must be IPv4"),
        ("127.0.0.2:1,127.0.0.2:1", "twice"),
        ("localhost:1,127.0.0.1:1", "twice"),
        (",".join(f"127.0.0.{i}:1" for i in range(2, 80)), "expected 1 to 64"),
    ],
)
def test_bad_targets_are_refused_naming_the_target(text, said):
    with pytest.raises(InvalidArgumentError) as error:
        parse_targets(text)
    assert error.value.field == "target" and said in str(error.value)


def test_several_targets_make_one_round_robin_channel():
    assert balanced_channel(["127.0.0.1:5"]) == ("127.0.0.1:5", [])
    target, options = balanced_channel(["127.0.0.2:5", "localhost:5"])
    assert target == "ipv4:127.0.0.2:5,127.0.0.1:5"
    assert json.loads(dict(options)["grpc.service_config"]) == {"loadBalancingConfig": [{"round_robin": {}}]}


@pytest.mark.parametrize(
    ("text", "mix"),
    [("recommendations=6,similar=2", {"recommendations": 6.0, "similar": 2.0}), ("health", {"health": 1.0}), ("", {})],
)
def test_parse_mix(text, mix):
    assert parse_mix(text) == mix


def test_parse_mix_names_a_bad_weight():
    with pytest.raises(InvalidArgumentError) as error:
        parse_mix("health=lots")
    assert error.value.field == "mix"


@pytest.mark.parametrize("in_turn", [False, True])
def test_shoppers_in_turn_each_come_once_per_round(in_turn):
    shoppers = [f"c{i}" for i in range(50)]
    maker = _RequestMaker(shoppers, ["p1"], random.Random(3), in_turn=in_turn)
    rounds = [[maker.make("recommendations").customer_id for _ in shoppers] for _ in range(4)]
    if in_turn:
        assert all(sorted(r) == sorted(shoppers) for r in rounds)
        # In a fresh order each round: with the calls balanced over two servers in turn, most
        # shoppers reach both within four rounds (in one order, each would reach one alone).
        reached: dict[str, set[int]] = {}
        for r in rounds:
            for position, shopper in enumerate(r):
                reached.setdefault(shopper, set()).add(position % 2)
        assert sum(len(servers) == 2 for servers in reached.values()) >= 0.7 * len(shoppers)
    else:
        assert len(set(rounds[0])) < len(shoppers)  # random picks repeat some and miss others


@pytest.mark.parametrize("engine", ENGINES)
def test_calls_due_while_too_many_are_in_flight_are_not_sent(running_server, engine):
    server = running_server()
    # 5,000 calls/s with one allowed in flight: arrivals closer than a round trip are dropped.
    report = run_loadgen(
        server.address, rate=5000, duration_s=0.4, channels=2, mix={"health": 1}, max_outstanding=1, engine=engine
    )
    assert report.not_sent > 0 and report.answered + report.not_sent == report.scheduled
    assert report.ok == report.answered == report.latency.count


def test_the_native_engine_says_when_it_cannot_reach_the_server():
    with pytest.raises(UnavailableError, match="cannot connect to 127.0.0.1"):
        run_loadgen(f"127.0.0.1:{free_port()}", rate=10, duration_s=0.2, mix={"health": 1}, engine="native")


def test_the_native_binary_must_exist_where_it_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNIX_LOADGEN_BIN", str(tmp_path / "missing"))
    with pytest.raises(FailedPreconditionError, match="OMNIX_LOADGEN_BIN=.*missing is not an executable file"):
        loadgen_native.find_binary()


def test_the_method_paths_are_the_stubs_paths():
    assert METHOD_PATHS == {
        "recommendations": "/omnix.v1.RecommendationService/GetRecommendations",
        "similar": "/omnix.v1.RecommendationService/GetSimilarProducts",
        "basket": "/omnix.v1.RecommendationService/GetFrequentlyBoughtTogether",
        "interaction": "/omnix.v1.CustomerService/RecordInteraction",
        "health": "/grpc.health.v1.Health/Check",
    }


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"OMNIXLO0" + bytes(8), "bad header"),
        (b"OMNIXLO1", "bad header"),
        (b"OMNIXLO1" + (2).to_bytes(8, "little") + bytes(9), "25 bytes of outcomes for 2 calls"),
    ],
)
def test_outcomes_that_do_not_add_up_are_refused(data, said):
    with pytest.raises(UnavailableError, match=said):
        loadgen_native.decode_outcomes(data)
