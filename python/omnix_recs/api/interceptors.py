"""The one interceptor every call goes through: request id, deadline, tokens and roles
(`security/`), per-client shares, error mapping, audit and access log.

An interceptor rather than a decorator on servicer methods, because it sees every registered
service (health and reflection included) without their cooperation: no method can forget it.
Domain errors (`omnix_recs.errors`) become their status code and message, INVALID_ARGUMENT with
a BadRequest naming the field; anything unexpected becomes INTERNAL with the request id, and
its traceback goes to the log, never to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import orjson
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from omnix_recs import metrics, request_context
from omnix_recs.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from omnix_recs.limits import MAX_REQUEST_ID_LENGTH
from omnix_recs.security.audit import AuditLog
from omnix_recs.security.auth import Authenticator, PermissionDeniedError, Principal, UnauthenticatedError
from omnix_recs.security.fairness import ClientLimiter, ClientLimitError, IdleStreamError, is_loopback_peer, peer_host
from omnix_recs.security.roles import is_open, rule_for
from omnix_recs.security.shared_limits import SharedClientLimiter, Ticket
from omnix_recs.security.tls import peer_common_name

REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"  # where gRPC's rich error model travels
_REQUEST_ID_RE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")  # a caller's id we are willing to log
# Longest status message sent: messages travel in trailers, and one echoing a huge bad value
# would exceed the metadata limit (and turn INVALID_ARGUMENT into RESOURCE_EXHAUSTED).
MAX_STATUS_MESSAGE = 1_000

access_log = logging.getLogger("omnix.access")
log = logging.getLogger("omnix.server")

# Domain error → status code; the first matching class wins.
STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (ConflictError, grpc.StatusCode.ABORTED),  # gRPC's code for a lost optimistic-concurrency race
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (IdleStreamError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


class InflightLimit:
    """Load shedding: at most `limit` calls served at once by this process; beyond it a call is
    refused at once (RESOURCE_EXHAUSTED) rather than queued, and counted in the metrics.

    Done here rather than by gRPC's `maximum_concurrent_rpcs`, which refuses in the core where
    nothing of ours sees the call. A call holds its place from when its handler starts until it
    ends (try/finally: never leaked); every handler runs on the event loop's thread, so plain
    integers suffice."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.serving = 0

    @property
    def full(self) -> bool:
        return self.serving >= self.limit


@dataclass(frozen=True, slots=True)
class Guard:
    """Who may call (None: authentication off) and where privacy/admin actions are recorded."""

    authenticator: Authenticator | None = None
    audit: AuditLog | None = None
    limiter: ClientLimiter | None = None
    stream_idle_timeout_s: float | None = None
    shared_limiter: SharedClientLimiter | None = None  # with Redis: `limiter` across processes
    inflight: InflightLimit | None = None  # load shedding (None: no bound)

    def identify(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Principal | None:
        """The caller (None when auth is off or the RPC is open); UnauthenticatedError without
        valid credentials."""
        if self.authenticator is None or is_open(method):
            return None
        identity = peer_common_name(context.auth_context()) if self.authenticator.uses_client_certificates else None
        return self.authenticator.principal_for(context.invocation_metadata() or (), identity)

    def client(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], principal: Principal | None
    ) -> str | None:
        """Who this call counts against (security/fairness.py); None when it is not limited."""
        if self.limiter is None or is_open(method):
            return None
        if principal is not None:
            return f"{principal.role}:{principal.subject}"
        peer = context.peer()
        return None if is_loopback_peer(peer) else f"peer:{peer_host(peer)}"

    def authorize(self, method: str, principal: Principal | None, request: object) -> None:
        """PermissionDeniedError unless `principal` may make this call."""
        if self.authenticator is not None and principal is not None:
            self.authenticator.authorize(method, principal, request)


class _Undecodable:
    """Stands in for a request message whose bytes did not parse; the call answers INVALID_ARGUMENT."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The request deserializer, returning `_Undecodable` instead of raising: gRPC would
    otherwise answer UNKNOWN and log a traceback for each undecodable request."""
    if decode is None:
        return None

    def decode_or_mark(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad bytes
            return _Undecodable(type(exc).__name__)

    return decode_or_mark


def _undecodable_error(method: str) -> InvalidArgumentError:
    return InvalidArgumentError("", f"the request is not a valid {method.rsplit('/', 1)[-1]} request message")


async def _checked_stream(
    requests: AsyncIterator[Any], method: str, idle_timeout_s: float | None = None
) -> AsyncIterator[Any]:
    """The client's messages: undecodable ones end the call, and so does a silence longer than
    `idle_timeout_s` (an idle stream would hold its client's share for ever)."""
    iterator = aiter(requests)
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):  # None: no limit
                request = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise IdleStreamError(
                f"no message from the client for {idle_timeout_s:g} s: the stream was closed"
            ) from None
        if isinstance(request, _Undecodable):
            raise _undecodable_error(method)
        yield request


def _bounded(message: str) -> str:
    if len(message) <= MAX_STATUS_MESSAGE:
        return message
    return f"{message[:MAX_STATUS_MESSAGE]}... ({len(message) - MAX_STATUS_MESSAGE} more characters)"


def status_for(exc: BaseException, method: str, request_id: str) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an exception a handler raised."""
    for error_type, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return code, str(exc)
    if isinstance(exc, NotImplementedError):
        rpc = method.rsplit("/", 1)[-1]
        return grpc.StatusCode.UNIMPLEMENTED, f"{rpc} is not implemented yet in this server version"
    return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})"


def _bad_request_details(code: grpc.StatusCode, message: str, exc: InvalidArgumentError) -> bytes:
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=_bounded(exc.field), description=_bounded(exc.message)
    )
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status: bytes = status_pb2.Status(code=code.value[0], message=message, details=[detail]).SerializeToString()
    return status


def _retry_details(code: grpc.StatusCode, message: str, retry_after_s: float) -> bytes:
    """A google.rpc.RetryInfo: how long the client should wait before retrying."""
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, math.ceil(retry_after_s * 1000)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status: bytes = status_pb2.Status(code=code.value[0], message=message, details=[detail]).SerializeToString()
    return status


def _request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            return value
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID on every call


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, guard: Guard | None = None) -> None:
        self._guard = guard
        # method → (the handler we were given, our wrapper of it)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, wrap_handler(handler, method, self._guard))
            self._wrapped[method] = cached
        return cached[1]


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, guard: Guard | None = None
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with `_served` around every call, for each of the four RPC shapes."""
    decode, encode = _tolerant(handler.request_deserializer), handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, method, guard), decode, encode)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, method, guard), decode, encode)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, method, guard), decode, encode)
    return grpc.unary_unary_rpc_method_handler(
        _unary(handler.unary_unary, method, guard, request_streaming=False), decode, encode
    )


# gRPC sets the one behaviour that matches the handler's shape; the type says any may be None.
def _unary(
    behavior: Callable[..., Any] | None, method: str, guard: Guard | None = None, *, request_streaming: bool = True
) -> Callable[..., Awaitable[Any]]:
    """For handlers returning one response (the request may be a message or a stream;
    `request_streaming=False`: always a message)."""
    if behavior is None:
        raise TypeError(f"{method}: the handler has no behaviour for its shape")
    if not request_streaming and inspect.iscoroutinefunction(behavior):
        # The common shape, without the per-call checks below (an ABC isinstance check and
        # inspect.isawaitable: a microsecond or two a call between them).
        async def serve_message(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with _served(method, context, guard, request):
                return await behavior(request, context)

        return serve_message

    async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _served(method, context, guard, request):
            if isinstance(request, AsyncIterator):
                request = _checked_stream(request, method, guard.stream_idle_timeout_s if guard else None)
            response = behavior(request, context)
            # Generated base servicers are plain functions (they raise NotImplementedError).
            return await response if inspect.isawaitable(response) else response

    return serve


def _streaming(behavior: Callable[..., Any] | None, method: str, guard: Guard | None = None) -> Callable[..., Any]:
    """For handlers streaming responses: either async generators or coroutines that call
    `context.write` (like the health Watch). gRPC treats the two differently, so the wrapper
    takes the same shape as the handler it wraps."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with _served(method, context, guard, request):
                if isinstance(request, AsyncIterator):
                    request = _checked_stream(request, method, guard.stream_idle_timeout_s if guard else None)
                async for response in behavior(request, context):
                    yield response

        return stream
    return _unary(behavior, method, guard)


@contextlib.asynccontextmanager
async def _served(
    method: str, context: grpc.aio.ServicerContext[Any, Any], guard: Guard | None = None, request: object = None
) -> AsyncIterator[None]:
    started = time.perf_counter()
    rpc_metrics = metrics.RPC  # None unless `omnix serve --metrics-port`
    inflight = guard.inflight if guard is not None else None
    if inflight is not None and inflight.full:
        if rpc_metrics is not None:
            rpc_metrics.shed(method, time.perf_counter() - started)
        await _abort(
            context,
            method,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"server busy: {inflight.limit} calls in flight (OMNIX_MAX_INFLIGHT); retry with backoff",
        )
    if rpc_metrics is not None:
        rpc_metrics.started()
    request_id = _request_id(context)
    remaining = context.time_remaining()
    binding = request_context.bind(request_id, remaining)
    trailing: tuple[tuple[str, str | bytes], ...] = ((REQUEST_ID_KEY, request_id),)
    context.set_trailing_metadata(trailing)
    code = grpc.StatusCode.OK
    principal: Principal | None = None
    client: str | None = None  # counted against this client's share while the call runs
    ticket: Ticket | None = None  # the same, counted across processes (Guard.shared_limiter)
    audited = False
    if inflight is not None:  # no await since the check above: no other call got in between
        inflight.serving += 1
    try:
        if remaining is not None and remaining <= 0:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            await _abort(context, method, code, "the deadline expired before the call started", trailing)
        if isinstance(request, _Undecodable):
            raise _undecodable_error(method)
        if guard is not None:
            principal = guard.identify(method, context)
            guard.authorize(method, principal, request)
            counted = guard.client(method, context, principal)
            if counted is not None and guard.shared_limiter is not None:
                ticket = await guard.shared_limiter.acquire(counted)
            elif counted is not None and guard.limiter is not None:
                guard.limiter.acquire(counted)
                client = counted
        yield
    except grpc.aio.AbortError:  # the handler (or we, above) ended the call with a status
        # The stubs say code() is never None; it is None until a status has been set.
        code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[unreachable]
        raise
    except asyncio.CancelledError:  # the caller went away, or `_abort` found the call ended
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.CANCELLED
        raise
    except grpc.aio.InternalError:
        # gRPC core refused to send (`ExecuteBatchError`): the call had already ended there, its
        # deadline passed or the caller gone, often while this process was too busy to notice.
        # Nobody is left to tell and this is no handler failure: aborting again would only fail
        # with "Abort already called!". Ended as cancelled, which gRPC does not log as an error.
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.CANCELLED
        _count_unanswerable(method)
        raise asyncio.CancelledError from None
    except Exception as exc:
        code, message = status_for(exc, method, request_id)
        message = _bounded(message)
        if code is grpc.StatusCode.INTERNAL:
            log.error("unhandled error in %s (request id %s)", method, request_id, exc_info=exc)
        elif isinstance(exc, InvalidArgumentError):
            trailing += ((STATUS_DETAILS_KEY, _bad_request_details(code, message, exc)),)
        elif isinstance(exc, ClientLimitError):
            trailing += ((STATUS_DETAILS_KEY, _retry_details(code, message, exc.retry_after_s)),)
        if guard is not None and guard.audit is not None:
            # Recorded before the caller hears the answer, as on success (below, before the
            # response leaves): whoever saw the outcome can find it in the audit log.
            _audit(guard.audit, method, code, principal, request, context, request_id)
            audited = True
        await _abort(context, method, code, message, trailing)
    finally:
        if inflight is not None:
            inflight.serving -= 1
        if rpc_metrics is not None:
            rpc_metrics.finished(method, code, time.perf_counter() - started)
        request_context.unbind(binding)
        if client is not None and guard is not None and guard.limiter is not None:
            guard.limiter.release(client)
        if ticket is not None and guard is not None and guard.shared_limiter is not None:
            guard.shared_limiter.release(ticket)
        if guard is not None and guard.audit is not None and not audited:
            _audit(guard.audit, method, code, principal, request, context, request_id)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                orjson.dumps(
                    {
                        "method": method,
                        "code": code.name,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "request_id": request_id,
                        "peer": context.peer(),
                        **({"sub": principal.subject, "role": principal.role} if principal else {}),
                    }
                ).decode()
            )


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any],
    method: str,
    code: grpc.StatusCode,
    message: str,
    trailing: tuple[tuple[str, str | bytes], ...] = (),
) -> NoReturn:
    """End the call with `code` (`context.abort`). When gRPC core has already ended it (its
    deadline passed or its caller left while this process was too busy to notice), sending fails
    with `ExecuteBatchError`: the call ends as cancelled, counted, and not logged with a traceback."""
    try:
        await context.abort(code, message, trailing)
    except grpc.aio.InternalError:
        _count_unanswerable(method)
        raise asyncio.CancelledError from None
    raise AssertionError("context.abort returned")  # it always raises; for the type checker


def _count_unanswerable(method: str) -> None:
    log.debug("%s: the call had ended in gRPC core before its answer could be sent", method)
    if metrics.RPC is not None:
        metrics.RPC.unanswerable(method)


class UnanswerableAnswerLog(logging.Filter):
    """The same case after a handler has returned: gRPC sends the answer itself, and when core
    has already ended the call it logs `ExecuteBatchError` at ERROR with a traceback, unless its
    own notice of the end came first (`_handle_exceptions` in grpc's aio server). Under
    overload the deadline often passes between the two (dozens of times a minute at 2,000/s
    offered on two cores), and no handler failed: the record is dropped and the call counted as
    unanswerable, as above (its handler's OK stays in the call metrics and access log: the
    handler did answer). gRPC gives the record no mark but its words: if a release rewords it,
    it passes as before, which is the old behaviour, not a lost error.
    Installed on gRPC's logger by `install_unanswerable_answer_log`."""

    PREFIX = "ExecuteBatchError raised in core by servicer method ["

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()  # this logger speaks rarely: formatting costs nothing here
        if not message.startswith(self.PREFIX):
            return True
        _count_unanswerable(message[len(self.PREFIX) :].rstrip("]"))
        return False


GRPC_CORE_LOGGER = "grpc._cython.cygrpc"
_UNANSWERABLE_ANSWER_LOG = UnanswerableAnswerLog()


def install_unanswerable_answer_log() -> None:
    """Once per process is enough; more is harmless (a logger keeps a filter once)."""
    logging.getLogger(GRPC_CORE_LOGGER).addFilter(_UNANSWERABLE_ANSWER_LOG)


def _audit(
    audit: AuditLog,
    method: str,
    code: grpc.StatusCode,
    principal: Principal | None,
    request: object,
    context: grpc.aio.ServicerContext[Any, Any],
    request_id: str,
) -> None:
    """One audit record for a privacy or admin action (`Rule.audited`), allowed or refused."""
    rule = rule_for(method)
    if rule is None or not rule.audited:
        return
    customer_id = getattr(request, "customer_id", None)
    try:
        audit.record(
            method=method,
            code=code.name,
            subject=principal.subject if principal else None,
            role=principal.role if principal else None,
            customer_id=customer_id if isinstance(customer_id, str) else None,
            peer=context.peer(),
            request_id=request_id,
        )
    except OSError:
        log.exception("cannot write the audit log record for %s (request id %s)", method, request_id)
