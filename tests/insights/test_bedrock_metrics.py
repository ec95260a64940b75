"""Bedrock in the operators' metrics: analyses by outcome, local fallbacks by reason and the
circuit state, scraped as Prometheus text over HTTP from this process (`omnix serve
--metrics-port` serves the same registry)."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from fake_bedrock import Reply, error
from test_bedrock import analyse_within

from omnix_recs import metrics
from omnix_recs.breaker import CircuitBreaker
from omnix_recs.config import Settings
from omnix_recs.insights.analyst import InsightsService


@pytest.fixture(scope="module")
def scrape() -> Iterator[Callable[[], str]]:
    """Metrics on in this process, /metrics served on a free port; yields a scraper."""
    assert metrics.RPC is None, "metrics were left on by an earlier test"
    metrics.enable()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = metrics.serve_http(port, "127.0.0.1", multiprocess=False)

    def read() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    try:
        yield read
    finally:
        server.shutdown()
        server.server_close()
        metrics.disable()


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and (match.group(1) or "") == wanted:
            return float(match.group(2))
    return 0.0


def counts(text: str) -> dict[str, float]:
    calls = {o: sample(text, "omnix_bedrock_calls_total", outcome=o) for o in ("ok", "service_error", "circuit_open")}
    fallbacks = {r: sample(text, "omnix_insight_fallbacks_total", reason=r) for r in ("service_error", "circuit_open")}
    return {**{f"call:{k}": v for k, v in calls.items()}, **{f"local:{k}": v for k, v in fallbacks.items()}}


def test_calls_fallbacks_and_the_circuit_are_counted(scrape, fake_bedrock, make_service) -> None:
    clock = [1000.0]
    service = make_service(
        fake_bedrock.url, breaker=CircuitBreaker(failure_threshold=2, cool_down_s=30.0, clock=lambda: clock[0])
    )
    before = counts(scrape())
    fake_bedrock.script = [Reply(), error(403, "AccessDeniedException"), error(403, "AccessDeniedException")]
    sources = [analyse_within(service, "weekly")[0].source for _ in range(4)]  # ok, fail, fail, circuit open
    assert sources == ["bedrock", "local", "local", "local"]
    text = scrape()
    after = counts(text)
    assert {k: after[k] - before[k] for k in after} == {
        "call:ok": 1,
        "call:service_error": 2,
        "call:circuit_open": 1,
        "local:service_error": 2,
        "local:circuit_open": 1,
    }
    assert sample(text, "omnix_bedrock_circuit_state") == 2  # open
    assert len(fake_bedrock.requests) == 3  # the open circuit sent nothing

    clock[0] += 31.0  # the trial call after the cool-down succeeds and closes the circuit
    assert analyse_within(service, "weekly")[0].source == "bedrock"
    assert sample(scrape(), "omnix_bedrock_circuit_state") == 0


def test_analyses_with_bedrock_disabled_are_counted_as_local(scrape, shop) -> None:
    before = sample(scrape(), "omnix_insight_fallbacks_total", reason="disabled")
    result = InsightsService(shop, Settings()).analyze("weekly")
    assert result.source == "local"
    assert sample(scrape(), "omnix_insight_fallbacks_total", reason="disabled") == before + 1
