"""The interceptor over a real grpc.aio server with small byte-level test handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc._cython import cygrpc

from omnix_recs import metrics, request_context
from omnix_recs.api.interceptors import (
    GRPC_CORE_LOGGER,
    REQUEST_ID_KEY,
    STATUS_DETAILS_KEY,
    Guard,
    InflightLimit,
    ServerInterceptor,
    wrap_handler,
)
from omnix_recs.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)

SERVICE = "test.Shop"


def run_against(
    handlers: dict[str, grpc.RpcMethodHandler],
    client: Callable[[grpc.aio.Channel], Awaitable[Any]],
    *,
    before: tuple[grpc.aio.ServerInterceptor, ...] = (),
) -> Any:
    """Start a server with our interceptor (after `before`), run `client`, stop."""

    async def main() -> Any:
        server = grpc.aio.server(interceptors=[*before, ServerInterceptor()])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await client(channel)
        finally:
            await server.stop(0)

    return asyncio.run(main())


def unary(behavior) -> dict[str, grpc.RpcMethodHandler]:
    return {"Call": grpc.unary_unary_rpc_method_handler(behavior)}


async def call_unary(channel: grpc.aio.Channel, request: bytes = b"", **kwargs: Any) -> tuple[Any, ...]:
    """(code, details, trailing metadata as dict, response or None)."""
    call = channel.unary_unary(f"/{SERVICE}/Call")(request, **kwargs)
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details(), dict(error.trailing_metadata() or ()), None
    return grpc.StatusCode.OK, "", dict(await call.trailing_metadata() or ()), response


def raising(exc: BaseException):
    async def behavior(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise exc

    return behavior


@pytest.mark.parametrize(
    ("exc", "code", "details"),
    [
        (
            InvalidArgumentError("rows[3].purchase.quantity", "must be at least 1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "rows[3].purchase.quantity: must be at least 1",
        ),
        (NotFoundError("customer", "c9"), grpc.StatusCode.NOT_FOUND, "customer 'c9' not found"),
        (AlreadyExistsError("customer", "c1"), grpc.StatusCode.ALREADY_EXISTS, "customer 'c1' already exists"),
        (
            ConflictError("customer", "c1"),
            grpc.StatusCode.ABORTED,
            "customer 'c1' was changed by another request at the same time; try again",
        ),
        (FailedPreconditionError("no trained model yet"), grpc.StatusCode.FAILED_PRECONDITION, "no trained model yet"),
        (ResourceExhaustedError("too many rows"), grpc.StatusCode.RESOURCE_EXHAUSTED, "too many rows"),
        (UnavailableError("database is locked"), grpc.StatusCode.UNAVAILABLE, "database is locked"),
        (
            NotImplementedError("Method not implemented!"),
            grpc.StatusCode.UNIMPLEMENTED,
            "Call is not implemented yet in this server version",
        ),
    ],
)
def test_domain_errors_map_to_status(exc, code, details):
    got_code, got_details, _, _ = run_against(unary(raising(exc)), call_unary)
    assert (got_code, got_details) == (code, details)


def test_invalid_argument_carries_bad_request_details():
    exc = InvalidArgumentError("products[2].dietary_tags[0]", "unknown value 'paleo'")
    _, _, trailing, _ = run_against(unary(raising(exc)), call_unary)
    status = status_pb2.Status.FromString(trailing[STATUS_DETAILS_KEY])
    bad_request = error_details_pb2.BadRequest()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.details[0].Unpack(bad_request)
    violation = bad_request.field_violations[0]
    assert (violation.field, violation.description) == ("products[2].dietary_tags[0]", "unknown value 'paleo'")


def test_internal_error_hides_message_and_logs_traceback(caplog):
    caplog.set_level(logging.INFO)

    def inner_failure() -> None:
        raise KeyError("secret-table-name")

    async def behavior(request: bytes, context) -> bytes:
        inner_failure()
        return b""

    code, details, trailing, _ = run_against(
        unary(behavior), lambda ch: call_unary(ch, metadata=((REQUEST_ID_KEY, "req-42"),))
    )
    assert code is grpc.StatusCode.INTERNAL
    assert details == "internal error (request id req-42)"
    assert "secret" not in details and "Traceback" not in details
    assert STATUS_DETAILS_KEY not in trailing
    [error] = [r for r in caplog.records if r.name == "omnix.server"]
    assert "req-42" in error.getMessage()
    assert error.exc_info is not None and "inner_failure" in caplog.text


async def answer_from_coroutine(request: bytes, context) -> bytes:
    return b"coroutine:" + request


def answer_from_function(request: bytes, context) -> bytes:
    return b"function:" + request


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [(answer_from_coroutine, b"coroutine:hi"), (answer_from_function, b"function:hi")],
    ids=["coroutine", "plain-function"],
)
def test_unary_handlers_answer_whether_coroutines_or_plain_functions(behavior, expected):
    code, _, trailing, response = run_against(unary(behavior), lambda channel: call_unary(channel, b"hi"))
    assert (code, response) == (grpc.StatusCode.OK, expected)
    assert len(trailing[REQUEST_ID_KEY]) == 32


def test_request_id_is_returned_and_generated_when_missing_or_unsafe():
    async def echo_request_id(request: bytes, context) -> bytes:
        return request_context.current_request_id().encode()

    async def client(channel):
        given = await call_unary(channel, metadata=((REQUEST_ID_KEY, "abc-123"),))
        missing = await call_unary(channel)
        unsafe = await call_unary(channel, metadata=((REQUEST_ID_KEY, 'x"; drop table'),))
        return given, missing, unsafe

    given, missing, unsafe = run_against(unary(echo_request_id), client)
    assert given[3] == b"abc-123" and given[2][REQUEST_ID_KEY] == "abc-123"
    for result in (missing, unsafe):
        assert len(result[3]) == 32 and result[2][REQUEST_ID_KEY] == result[3].decode()
    assert missing[3] != unsafe[3]


def test_one_access_log_line_per_call(caplog):
    caplog.set_level(logging.INFO, logger="omnix.access")

    async def client(channel):
        await call_unary(channel, b"ok", metadata=((REQUEST_ID_KEY, "r1"),))
        await call_unary(channel, b"missing", metadata=((REQUEST_ID_KEY, "r2"),))

    async def behavior(request: bytes, context) -> bytes:
        if request == b"missing":
            raise NotFoundError("product", "p1")
        return request

    run_against(unary(behavior), client)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
    assert [(line["request_id"], line["code"]) for line in lines] == [("r1", "OK"), ("r2", "NOT_FOUND")]
    for line in lines:
        assert line["method"] == f"/{SERVICE}/Call"
        assert line["duration_ms"] >= 0
        assert line["peer"].startswith("ipv4:127.0.0.1:")


def test_deadline_is_visible_to_handlers_and_worker_threads():
    async def remaining(request: bytes, context) -> bytes:
        in_thread = await asyncio.to_thread(request_context.time_remaining)
        return json.dumps([request_context.time_remaining(), in_thread]).encode()

    async def client(channel):
        with_deadline = await call_unary(channel, timeout=5.0)
        without = await call_unary(channel)
        return json.loads(with_deadline[3]), json.loads(without[3])

    (on_loop, in_thread), without = run_against(unary(remaining), client)
    # gRPC sends the timeout, not an instant, so the server may see a hair more than 5 s.
    assert 4.0 < on_loop < 5.1 and 4.0 < in_thread < 5.1
    assert without == [None, None]


class SlowToDispatch(grpc.aio.ServerInterceptor):
    """Holds a call back before dispatch, like a server queue under load."""

    async def intercept_service(self, continuation, handler_call_details):
        await asyncio.sleep(0.3)
        return await continuation(handler_call_details)


def test_call_whose_deadline_passed_is_not_run():
    ran = []

    async def behavior(request: bytes, context) -> bytes:
        ran.append(request)
        return request

    code, *_ = run_against(unary(behavior), lambda ch: call_unary(ch, timeout=0.1), before=(SlowToDispatch(),))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert ran == []


def test_call_whose_deadline_passed_while_the_loop_was_busy_ends_quietly(caplog):
    """The deadline passes while the event loop is blocked (a busy server): gRPC core has already
    ended the call, so sending our DEADLINE_EXCEEDED fails. That must not be logged as a handler
    error nor aborted a second time ("Abort already called!")."""
    caplog.set_level(logging.INFO)
    ran = []

    def busy_loop_then_decode(request: bytes) -> bytes:
        time.sleep(0.3)  # blocks the event loop, like CPU-bound work of other calls
        return request

    async def behavior(request: bytes, context) -> bytes:
        ran.append(request)
        return request

    handlers = {"Call": grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=busy_loop_then_decode)}
    code, *_ = run_against(handlers, lambda ch: call_unary(ch, timeout=0.1))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert ran == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
    assert line["code"] == "DEADLINE_EXCEEDED"


class EndedInCore:
    """The servicer context of a call gRPC core has already ended: sending its status fails as it
    then does (`ExecuteBatchError`). Under overload this happens when the deadline passes between
    the event loop's last look at the call and the abort; a socket cannot produce that on demand."""

    def __init__(self, remaining_s: float) -> None:
        self.remaining_s = remaining_s
        self.aborts: list[grpc.StatusCode] = []

    def time_remaining(self) -> float:
        return self.remaining_s

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    def code(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: object = ()) -> None:
        self.aborts.append(code)
        raise cygrpc.ExecuteBatchError("Failed grpc_call_start_batch: 8")


class Tally:
    """Stands in for `metrics.RPC` (prometheus counters are registered once per process)."""

    def __init__(self) -> None:
        self.codes: list[grpc.StatusCode] = []
        self.unanswerable_methods: list[str] = []

    def started(self) -> None:
        pass

    def finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.codes.append(code)

    def shed(self, method: str, seconds: float) -> None:
        self.codes.append(grpc.StatusCode.RESOURCE_EXHAUSTED)

    def unanswerable(self, method: str) -> None:
        self.unanswerable_methods.append(method)


@pytest.mark.parametrize(
    ("remaining_s", "behavior", "inflight", "aborted_with"),
    [
        (0.0, raising(AssertionError("never run")), None, grpc.StatusCode.DEADLINE_EXCEEDED),
        (1.0, raising(NotFoundError("customer", "c9")), None, grpc.StatusCode.NOT_FOUND),
        (1.0, raising(AssertionError("never run")), InflightLimit(0), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=["deadline-passed", "handler-error", "shed"],
)
def test_an_answer_grpc_core_refuses_ends_the_call_as_cancelled_counted_and_quiet(
    remaining_s, behavior, inflight, aborted_with, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    tally = Tally()
    monkeypatch.setattr(metrics, "RPC", tally)
    method = f"/{SERVICE}/Call"
    serve = wrap_handler(grpc.unary_unary_rpc_method_handler(behavior), method, Guard(inflight=inflight))
    context = EndedInCore(remaining_s)
    with pytest.raises(asyncio.CancelledError):  # which gRPC logs at DEBUG only
        asyncio.run(serve.unary_unary(b"", context))
    assert context.aborts == [aborted_with]  # tried once, never "Abort already called!"
    assert tally.unanswerable_methods == [method]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert tally.codes == [aborted_with]  # the metrics (and access log) say what was meant


def test_grpc_core_refusing_a_returned_answer_is_counted_not_logged_as_an_error(running_server, caplog, monkeypatch):
    """After a handler returns, gRPC sends the answer and, when core has already ended the call,
    logs `ExecuteBatchError` at ERROR itself (grpc's aio `_handle_exceptions`). That race needs an
    overloaded loop to happen, so the record is emitted here as gRPC words it, on gRPC's logger,
    after the server's own set-up."""
    caplog.set_level(logging.DEBUG)
    tally = Tally()
    monkeypatch.setattr(metrics, "RPC", tally)
    running_server()
    method = "/omnix.v1.RecommendationService/GetRecommendations"
    grpc_log = logging.getLogger(GRPC_CORE_LOGGER)
    try:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch": (...)')
    except cygrpc.ExecuteBatchError:
        # gRPC formats its messages before logging them, as here.
        grpc_log.exception(f"ExecuteBatchError raised in core by servicer method [{method}]")
        grpc_log.exception(f"Unexpected [ValueError] raised by servicer method [{method}]")
    assert tally.unanswerable_methods == [method]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [f"Unexpected [ValueError] raised by servicer method [{method}]"]  # the rest still heard


# --- every RPC shape is wrapped -----------------------------------------------------------------


async def two_then_fail(request: bytes, context) -> AsyncIterator[bytes]:
    yield b"1"
    yield b"2"
    raise UnavailableError("shelf scanner offline")


async def write_then_fail(request: bytes, context) -> None:
    await context.write(b"1")
    raise NotFoundError("customer", "c1")


async def count_then_check(requests: AsyncIterator[bytes], context) -> bytes:
    n = 0
    async for request in requests:
        if request == b"bad":
            raise InvalidArgumentError(f"rows[{n}]", "is bad")
        n += 1
    return str(n).encode()


async def echo_until_bad(requests: AsyncIterator[bytes], context) -> AsyncIterator[bytes]:
    async for request in requests:
        if request == b"bad":
            raise InvalidArgumentError("rows", "is bad")
        yield request


async def collect(call) -> tuple[list[bytes], grpc.StatusCode, str]:
    received = []
    try:
        async for response in call:
            received.append(response)
    except grpc.aio.AioRpcError as error:
        return received, error.code(), error.details()
    return received, grpc.StatusCode.OK, ""


def test_streaming_shapes_map_errors():
    handlers = {
        "Generate": grpc.unary_stream_rpc_method_handler(two_then_fail),
        "Write": grpc.unary_stream_rpc_method_handler(write_then_fail),
        "Count": grpc.stream_unary_rpc_method_handler(count_then_check),
        "Echo": grpc.stream_stream_rpc_method_handler(echo_until_bad),
    }

    async def client(channel):
        async def rows(*items: bytes) -> AsyncIterator[bytes]:
            for item in items:
                yield item

        generated = await collect(channel.unary_stream(f"/{SERVICE}/Generate")(b""))
        written = await collect(channel.unary_stream(f"/{SERVICE}/Write")(b""))
        counted = await channel.stream_unary(f"/{SERVICE}/Count")(rows(b"a", b"b"))
        try:
            await channel.stream_unary(f"/{SERVICE}/Count")(rows(b"a", b"bad"))
        except grpc.aio.AioRpcError as error:
            count_error = (error.code(), error.details())
        echoed = await collect(channel.stream_stream(f"/{SERVICE}/Echo")(rows(b"x", b"bad")))
        return generated, written, counted, count_error, echoed

    generated, written, counted, count_error, echoed = run_against(handlers, client)
    assert generated == ([b"1", b"2"], grpc.StatusCode.UNAVAILABLE, "shelf scanner offline")
    assert written == ([b"1"], grpc.StatusCode.NOT_FOUND, "customer 'c1' not found")
    assert counted == b"2"
    assert count_error == (grpc.StatusCode.INVALID_ARGUMENT, "rows[1]: is bad")
    assert echoed == ([b"x"], grpc.StatusCode.INVALID_ARGUMENT, "rows: is bad")
