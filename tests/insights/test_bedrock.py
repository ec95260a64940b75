"""Bedrock through a local Converse-compatible server: the request we send, the answer we take,
and every failure ending in a correct local answer within the caller's deadline."""

from __future__ import annotations

import json
import socket
import time

import pytest
from fake_bedrock import VALID_INSIGHTS, Reply, error
from shop import MODEL_ID, PRIVATE_DETAILS

from omnix_recs import request_context
from omnix_recs.breaker import CircuitBreaker, CircuitState
from omnix_recs.insights.analyst import AnalysisResult
from omnix_recs.insights.schema import INSIGHTS_SCHEMA, TOOL_NAME

DEADLINE_S = 1.5
# Scheduling noise on a shared 2-core machine; the behaviour under test is "well before the
# caller gives up", not a latency figure. The slow fake answers 2 s after the deadline, so a
# 1 s margin still tells "did not wait for Bedrock" from "waited" (0.5 s was seen exceeded
# under load: 2.17 s).
SLACK_S = 1.0


def analyse_within(service, customer_id: str, deadline_s: float = DEADLINE_S) -> tuple[AnalysisResult, float]:
    binding = request_context.bind("test-request", deadline_s)
    try:
        started = time.monotonic()
        result = service.analyze(customer_id)
        return result, time.monotonic() - started
    finally:
        request_context.unbind(binding)


def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bedrock_answer_is_the_validated_tool_input(fake_bedrock, make_service, shop):
    service = make_service(fake_bedrock.url)
    result, _ = analyse_within(service, "weekly")

    assert result.source == "bedrock"
    assert result.model == MODEL_ID
    assert result.insights == VALID_INSIGHTS
    assert result.summary == VALID_INSIGHTS["summary"]
    assert shop.latest_document("analyses", "weekly")[1]["source"] == "bedrock"

    (request,) = fake_bedrock.requests
    assert request.path.startswith("/model/") and request.path.endswith("/converse")
    assert request.model_id == MODEL_ID
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEFORTESTS0000/")
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["Authorization"]
    (message,) = request.body["messages"]
    assert message["role"] == "user"
    facts = json.loads(message["content"][0]["text"].split("\n", 1)[1])
    assert facts["history"]["trips"] == 20
    assert {p["product_id"] for p in facts["due_now"]} <= {"milk", "bananas", "coffee"}
    tool_config = request.body["toolConfig"]
    (tool,) = tool_config["tools"]
    assert tool["toolSpec"]["name"] == TOOL_NAME
    assert tool["toolSpec"]["inputSchema"]["json"]["properties"] == INSIGHTS_SCHEMA["properties"]
    assert tool_config["toolChoice"] == {"tool": {"name": TOOL_NAME}}


def test_nothing_personal_is_sent_to_bedrock(fake_bedrock, make_service):
    analyse_within(make_service(fake_bedrock.url), "weekly")
    sent = json.dumps(fake_bedrock.requests[0].body)
    for private in (*PRIVATE_DETAILS, "weekly"):
        assert private not in sent


def fault_replies():
    slow = Reply(delay_s=DEADLINE_S + 2.0)
    return {
        "server error 500": [error(500, "InternalServerException")] * 3,
        "unavailable 503": [error(503, "ServiceUnavailableException")] * 3,
        "throttled 429": [error(429, "ThrottlingException", "Too many requests")] * 3,
        "throttled 400": [error(400, "ThrottlingException", "Rate exceeded")] * 3,
        "slower than the deadline": [slow] * 3,
        "tool input breaks the schema": [Reply(tool_input={**VALID_INSIGHTS, "household": {"size": 0}})],
        "tool input cites an unknown product": [
            Reply(tool_input={**VALID_INSIGHTS, "needs": [{"product_id": "caviar", "when": "due_now", "reason": "x"}]})
        ],
        "tool input is not an object": [Reply(tool_input="a poem about milk")],
        "text instead of a tool call": [
            Reply(
                body={
                    "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                    "stopReason": "end_turn",
                }
            )
        ],
        "access denied": [error(403, "AccessDeniedException")],
    }


@pytest.mark.parametrize("fault", list(fault_replies()))
def test_every_bedrock_failure_ends_in_a_local_answer_within_the_deadline(fault, fake_bedrock, make_service, shop):
    fake_bedrock.script = list(fault_replies()[fault])
    result, elapsed = analyse_within(make_service(fake_bedrock.url), "weekly")

    assert result.source == "local"
    assert result.fallback_reason
    assert result.insights["summary"].startswith("20 trips")
    assert elapsed < DEADLINE_S + SLACK_S
    assert shop.latest_document("analyses", "weekly")[1]["source"] == "local"
    assert 1 <= len(fake_bedrock.requests) <= 2  # at most one retry, and only for transient faults


def test_connection_refused_ends_in_a_local_answer(make_service):
    result, elapsed = analyse_within(make_service(f"http://127.0.0.1:{closed_port()}"), "weekly")
    assert result.source == "local"
    assert result.fallback_reason == "cannot reach Bedrock"
    assert elapsed < DEADLINE_S + SLACK_S


def test_a_throttled_call_is_retried_once_and_can_succeed(fake_bedrock, make_service):
    fake_bedrock.script = [error(429, "ThrottlingException")]
    # A roomy deadline: this is about the retry, and under 1.5 s a busy machine left no time for
    # one after the first attempt (the analyst then rightly answers locally).
    result, _ = analyse_within(make_service(fake_bedrock.url), "weekly", deadline_s=10.0)
    assert result.source == "bedrock"
    assert len(fake_bedrock.requests) == 2


def test_invalid_answers_are_not_retried(fake_bedrock, make_service):
    fake_bedrock.script = [Reply(tool_input={"summary": "too thin"})]
    result, _ = analyse_within(make_service(fake_bedrock.url), "weekly")
    assert result.source == "local"
    assert result.fallback_reason.startswith("invalid tool input: ")
    assert len(fake_bedrock.requests) == 1


def test_a_deadline_too_short_for_bedrock_skips_it(fake_bedrock, make_service):
    result, _ = analyse_within(make_service(fake_bedrock.url), "weekly", deadline_s=0.4)
    assert result.source == "local"
    assert fake_bedrock.requests == []


def test_the_circuit_opens_after_repeated_failures_and_recovers(fake_bedrock, make_service):
    clock = [1000.0]
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=30.0, clock=lambda: clock[0])
    service = make_service(fake_bedrock.url, breaker=breaker)
    fake_bedrock.script = [error(403, "AccessDeniedException")] * 2

    for _ in range(2):
        assert analyse_within(service, "weekly")[0].source == "local"
    assert breaker.state is CircuitState.OPEN
    result, elapsed = analyse_within(service, "weekly")
    assert result.fallback_reason == "Bedrock circuit open after repeated failures"
    assert len(fake_bedrock.requests) == 2  # the open circuit sent nothing

    clock[0] += 31.0  # cool-down over: one trial call goes through and succeeds
    assert analyse_within(service, "weekly")[0].source == "bedrock"
    assert breaker.state is CircuitState.CLOSED
