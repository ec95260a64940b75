"""The Bedrock analyst: AWS Bedrock's Converse API writes the insights document.

The PII-free facts are the user message, and one tool whose input schema is `INSIGHTS_SCHEMA` is
forced through `toolChoice`, so the answer is the tool call's `input`, validated like any
untrusted input. Time is the caller's: `analyse(facts, budget_s=...)` never takes longer than
`budget_s` (timeouts are cut from it, a retry comes only after a transient failure it can still
afford, a circuit breaker stops calls after repeated failures). Every failure raises
`BedrockError`; the caller then asks the local analyst. `call_tool` is the same call for any
one forced tool: campaign texts (marketing/writer.py) go through it, sharing client and breaker.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from omnix_recs.breaker import CircuitBreaker
from omnix_recs.config import Settings
from omnix_recs.insights.schema import (
    INSIGHTS_SCHEMA,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    validate_insights,
)

if TYPE_CHECKING:  # type information only (the dev extra's types-boto3)
    from types_boto3_bedrock_runtime.client import BedrockRuntimeClient

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM_PROMPT = (
    "You are a retail analyst at a supermarket. You receive facts about one customer's shopping, "
    "computed from their purchase history. Write insights a store manager can act on: plain, "
    "specific, kind, and based only on the facts. Keep the profile judgements of the facts unless "
    "the facts clearly contradict them; cite products only by the product ids given. Answer by "
    f"calling the {TOOL_NAME} tool."
)
# Error codes (Bedrock's `x-amzn-errortype`) worth one more try after a pause.
TRANSIENT_ERRORS = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "InternalServerException", "ModelNotReadyException"}
)
# Below this, an attempt cannot finish (TLS set-up plus a short answer); do not start one.
MIN_ATTEMPT_S = 0.25
MAX_CONNECT_S = 1.0
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 1.0
# Clients are cached per timeout pair, rounded down to this step so caching works.
TIMEOUT_STEP_S = 0.05
MAX_CLIENTS = 16
MAX_TOKENS = 1500


class BedrockError(Exception):
    """Bedrock did not produce a valid answer. `reason` is short and safe to show and store;
    `kind` is one of a few fixed words (a metrics label: free-text reasons would be unbounded)."""

    def __init__(self, reason: str, *, transient: bool = False, kind: str = "error") -> None:
        self.reason = reason
        self.transient = transient
        self.kind = kind
        super().__init__(reason)


def tool_request(
    model_id: str,
    *,
    system: str,
    user_text: str,
    tool_name: str,
    tool_description: str,
    input_schema: Mapping[str, Any],
    max_tokens: int = MAX_TOKENS,
    temperature: float = 0.2,
) -> dict[str, Any]:
    """A Converse request whose answer must be a call of the one tool `tool_name` (forced
    through `toolChoice`), so the answer is that call's input, shaped by `input_schema`."""
    schema = {k: v for k, v in input_schema.items() if k != "$schema"}
    return {
        "modelId": model_id,
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": user_text}]}],
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": tool_name, "description": tool_description, "inputSchema": {"json": schema}}}
            ],
            "toolChoice": {"tool": {"name": tool_name}},
        },
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
    }


def converse_request(model_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The Converse request for `facts` (exposed for tests and for logging its size)."""
    return tool_request(
        model_id,
        system=SYSTEM_PROMPT,
        user_text="Facts about one customer (JSON):\n" + json.dumps(facts, sort_keys=True),
        tool_name=TOOL_NAME,
        tool_description=TOOL_DESCRIPTION,
        input_schema=INSIGHTS_SCHEMA,
    )


def tool_input(response: Mapping[str, Any], tool_name: str = TOOL_NAME) -> Any:
    """The input of our tool's call in a Converse response."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    for block in content:
        call = block.get("toolUse")
        if call and call.get("name") == tool_name:
            return call.get("input")
    raise BedrockError(
        f"the answer has no {tool_name} call (stopReason {response.get('stopReason')!r})", kind="invalid_answer"
    )


class BedrockAnalyst:
    def __init__(
        self,
        settings: Settings,
        *,
        breaker: CircuitBreaker | None = None,
        max_attempts: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        self.model_id = settings.bedrock_model_id
        self._settings = settings
        self._breaker = breaker or CircuitBreaker()
        self._max_attempts = max_attempts
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: OrderedDict[tuple[int, int], BedrockRuntimeClient] = OrderedDict()
        # Calls run here so that a hard wait can bound them (see `_call`).
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="bedrock")

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def analyse(self, facts: dict[str, Any], known_product_ids: Collection[str], *, budget_s: float) -> dict[str, Any]:
        """The validated insights document for `facts`, within `budget_s` seconds, or `BedrockError`."""
        return self.call_tool(
            converse_request(self.model_id, facts),
            lambda answer: validate_insights(answer, known_product_ids),
            budget_s=budget_s,
        )

    def call_tool(self, request: dict[str, Any], validate: Callable[[Any], T], *, budget_s: float) -> T:
        """`validate` applied to the tool input Bedrock answers `request` (a `tool_request`) with,
        within `budget_s` seconds, or `BedrockError`. `validate` raises `ValueError` for an
        answer it refuses; that counts as a failure for the circuit breaker like any other."""
        deadline = time.monotonic() + budget_s
        if budget_s < MIN_ATTEMPT_S:
            raise BedrockError("not enough time left for Bedrock", kind="no_time")
        if not self._breaker.allow():
            raise BedrockError("Bedrock circuit open after repeated failures", kind="circuit_open")
        tool_name = request["toolConfig"]["toolChoice"]["tool"]["name"]
        try:
            document = self._attempts(request, deadline)
            answer = validate(tool_input(document, tool_name))
        except ValueError as exc:  # InsightsValidationError among them
            self._breaker.record_failure()
            raise BedrockError(f"invalid tool input: {exc}", kind="invalid_answer") from exc
        except BedrockError:
            self._breaker.record_failure()
            raise
        self._breaker.record_success()
        return answer

    def _attempts(self, request: dict[str, Any], deadline: float) -> Mapping[str, Any]:
        for attempt in range(1, self._max_attempts + 1):
            try:
                return self._call(request, deadline - time.monotonic())
            except BedrockError as exc:
                if not exc.transient or attempt == self._max_attempts:
                    raise
                # Full jitter: spreads the retries of many callers hitting the same throttle.
                pause = self._rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
                if time.monotonic() + pause + MIN_ATTEMPT_S > deadline:
                    raise
                log.info("bedrock attempt failed, retrying", extra={"reason": exc.reason, "attempt": attempt})
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _call(self, request: dict[str, Any], budget_s: float) -> Mapping[str, Any]:
        if budget_s < MIN_ATTEMPT_S:
            raise BedrockError("not enough time left for Bedrock", kind="no_time")
        connect_s = min(MAX_CONNECT_S, budget_s / 3)
        client = self._client(connect_s, budget_s - connect_s)
        future = self._pool.submit(client.converse, **request)
        try:
            return future.result(timeout=budget_s)
        except concurrent.futures.TimeoutError:
            # The worker stops by itself at its read timeout, which is within the same budget.
            raise BedrockError("Bedrock did not answer in time", kind="timeout") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise BedrockError(
                f"Bedrock error {code or status}",
                transient=code in TRANSIENT_ERRORS or status >= 500,
                kind="throttled" if code == "ThrottlingException" else "service_error",
            ) from exc
        except (ReadTimeoutError, ConnectTimeoutError):
            raise BedrockError("Bedrock did not answer in time", kind="timeout") from None
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise BedrockError("cannot reach Bedrock", transient=True, kind="unreachable") from exc
        except BotoCoreError as exc:
            raise BedrockError(f"Bedrock client error: {type(exc).__name__}", kind="client_error") from exc

    def _client(self, connect_s: float, read_s: float) -> BedrockRuntimeClient:
        key = (max(1, int(connect_s / TIMEOUT_STEP_S)), max(1, int(read_s / TIMEOUT_STEP_S)))
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            if self._session is None:
                self._session = boto3.session.Session()
            client = self._session.client(
                "bedrock-runtime",
                region_name=self._settings.aws_region,
                endpoint_url=self._settings.bedrock_endpoint_url,
                config=Config(
                    connect_timeout=key[0] * TIMEOUT_STEP_S,
                    read_timeout=key[1] * TIMEOUT_STEP_S,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    max_pool_connections=8,
                ),
            )
            self._clients[key] = client
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            return client

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
