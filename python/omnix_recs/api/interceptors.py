"""The one interceptor every call goes through: request id, deadline, error mapping, access log.

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
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import orjson
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from omnix_recs import request_context
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

REQUEST_ID_KEY = "x-request-id"
STATUS_DETAILS_KEY = "grpc-status-details-bin"  # where gRPC's rich error model travels
_REQUEST_ID_RE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")  # a caller's id we are willing to log

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
)


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
    violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.message)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status: bytes = status_pb2.Status(code=code.value[0], message=message, details=[detail]).SerializeToString()
    return status


def _request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            return value
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID on every call


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
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
            cached = (handler, wrap_handler(handler, method))
            self._wrapped[method] = cached
        return cached[1]


def wrap_handler(handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with `_served` around every call, for each of the four RPC shapes."""
    decode, encode = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, method), decode, encode)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, method), decode, encode)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, method), decode, encode)
    return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, method), decode, encode)


# gRPC sets the one behaviour that matches the handler's shape; the type says any may be None.
def _unary(behavior: Callable[..., Any] | None, method: str) -> Callable[..., Awaitable[Any]]:
    """For handlers returning one response (the request may be a message or a stream)."""
    if behavior is None:
        raise TypeError(f"{method}: the handler has no behaviour for its shape")

    async def serve(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _served(method, context):
            response = behavior(request, context)
            # Generated base servicers are plain functions (they raise NotImplementedError).
            return await response if inspect.isawaitable(response) else response

    return serve


def _streaming(behavior: Callable[..., Any] | None, method: str) -> Callable[..., Any]:
    """For handlers streaming responses: either async generators or coroutines that call
    `context.write` (like the health Watch). gRPC treats the two differently, so the wrapper
    takes the same shape as the handler it wraps."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with _served(method, context):
                async for response in behavior(request, context):
                    yield response

        return stream
    return _unary(behavior, method)


@contextlib.asynccontextmanager
async def _served(method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    started = time.perf_counter()
    request_id = _request_id(context)
    remaining = context.time_remaining()
    binding = request_context.bind(request_id, remaining)
    trailing: tuple[tuple[str, str | bytes], ...] = ((REQUEST_ID_KEY, request_id),)
    context.set_trailing_metadata(trailing)
    code = grpc.StatusCode.OK
    try:
        if remaining is not None and remaining <= 0:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            await context.abort(code, "the deadline expired before the call started", trailing)
        yield
    except grpc.aio.AbortError:  # the handler (or we, above) ended the call with a status
        # The stubs say code() is never None; it is None until a status has been set.
        code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[unreachable]
        raise
    except asyncio.CancelledError:  # the caller went away or its deadline passed
        code = grpc.StatusCode.CANCELLED
        raise
    except grpc.aio.InternalError:
        # gRPC core refused to send (`ExecuteBatchError`): the call had already ended there, its
        # deadline passed or the caller gone, often while this process was too busy to notice.
        # Nobody is left to tell and this is no handler failure: aborting again would only fail
        # with "Abort already called!". gRPC itself treats this error as a closed call.
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.CANCELLED
        raise
    except Exception as exc:
        code, message = status_for(exc, method, request_id)
        if code is grpc.StatusCode.INTERNAL:
            log.error("unhandled error in %s (request id %s)", method, request_id, exc_info=exc)
        elif isinstance(exc, InvalidArgumentError):
            trailing += ((STATUS_DETAILS_KEY, _bad_request_details(code, message, exc)),)
        await context.abort(code, message, trailing)
    finally:
        request_context.unbind(binding)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                orjson.dumps(
                    {
                        "method": method,
                        "code": code.name,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "request_id": request_id,
                        "peer": context.peer(),
                    }
                ).decode()
            )
