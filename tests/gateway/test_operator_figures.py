"""The console overview's service-wide figures, read from the servers' Prometheus text."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from omnix_recs.config import Settings
from omnix_recs.gateway import operator_figures
from omnix_recs.gateway.serve import start_beside


@pytest.fixture
def metrics_port() -> Iterator[int]:
    """A real Prometheus endpoint carrying the metrics `omnix serve --metrics-port` exports."""
    registry = CollectorRegistry()
    cache = Counter("omnix_cache_lookups", "lookups", ["kind", "result"], registry=registry)
    cache.labels("shopper", "hit").inc(3)
    cache.labels("cart", "hit").inc(3)
    cache.labels("shopper", "miss").inc(2)
    Counter("omnix_bedrock_calls", "calls", ["outcome"], registry=registry).labels("ok").inc(5)
    fallbacks = Counter("omnix_insight_fallbacks", "fallbacks", ["reason"], registry=registry)
    fallbacks.labels("timeout").inc(2)
    fallbacks.labels("circuit_open").inc(1)
    Gauge("omnix_bedrock_circuit_state", "state", registry=registry).set(2)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_with_metrics_on(stack: Any, port: int, path: str) -> httpx.Response:
    """GET `path` of a gateway beside the stack's server whose settings export metrics on
    `port`, as `omnix serve --http-port --metrics-port` runs it."""
    host, grpc_port = stack.grpc_address.rsplit(":", 1)
    gateway = stack.on_loop(start_beside(host, int(grpc_port), "127.0.0.1", 0, settings=Settings(metrics_port=port)))
    try:
        return httpx.get(f"http://127.0.0.1:{gateway.port}{path}", timeout=30.0)
    finally:
        stack.on_loop(gateway.stop())


def overview_with_metrics_on(stack: Any, port: int) -> str:
    page = get_with_metrics_on(stack, port, "/console/")
    assert page.status_code == 200
    return page.text


def test_figures_are_summed_over_labels_and_workers(metrics_port: int) -> None:
    figures = operator_figures.fetch(f"http://127.0.0.1:{metrics_port}/metrics")
    assert figures == operator_figures.OperatorFigures(
        cache_hits=6, cache_lookups=8, bedrock_calls=5, fallbacks=3, circuit="open"
    )
    assert figures.cache_hit_rate == pytest.approx(0.75)


def test_no_answer_means_no_figures() -> None:
    assert operator_figures.fetch(f"http://127.0.0.1:{free_port()}/metrics") is None
    assert operator_figures.parse("").cache_hit_rate is None  # no lookups yet: no rate


def test_the_overview_shows_the_servers_figures(stack: Any, metrics_port: int) -> None:
    page = overview_with_metrics_on(stack, metrics_port)
    assert "75.0%" in page and "6 hits of 8 lookups" in page
    assert 'id="bedrock-card"' in page and "5 asked of Bedrock; circuit open" in page


def test_the_overview_says_when_the_metrics_do_not_answer(stack: Any) -> None:
    port = free_port()
    page = overview_with_metrics_on(stack, port)
    assert f"http://127.0.0.1:{port}/metrics" in page and "did not answer" in page


def test_the_gateway_relays_the_servers_metrics(stack: Any, metrics_port: int) -> None:
    relayed = get_with_metrics_on(stack, metrics_port, "/metrics")
    assert relayed.status_code == 200 and relayed.headers["content-type"].startswith("text/plain")
    assert operator_figures.parse(relayed.text).cache_lookups == 8
    silent = get_with_metrics_on(stack, free_port(), "/metrics")
    assert silent.status_code == 503 and "did not answer" in silent.text


def test_without_metrics_the_gateway_has_no_metrics_route(stack: Any) -> None:
    assert stack.http.get("/metrics").status_code == 404
