"""The gateway's ASGI application: REST transcoding, `/openapi.json`, `/docs` and the console.

Every REST call becomes one gRPC call on a `grpc.aio` channel to the OMNIX server, so the
server's interceptor (validation, error mapping, access log, and whatever is added later)
applies exactly as for any gRPC client. Request ids and `authorization` travel as metadata;
the deadline comes from a `grpc-timeout` header (gRPC's own format, e.g. `500m`, `2S`) or the
default. Server streaming answers newline-delimited JSON, one `{"result": ...}` per message and
a final `{"error": ...}` if the stream fails midway (grpc-gateway's shape); the client-streaming
import reads an NDJSON or CSV upload line by line and cancels the call on the first bad line,
so the server (all or nothing) writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from omnix_recs.gateway import transcode
from omnix_recs.gateway.routes import CallKind, RouteTable, build_route_table
from omnix_recs.gateway.routes import Route as RestRoute
from omnix_recs.gateway.traffic import TrafficStats
from omnix_recs.limits import MAX_REQUEST_ID_LENGTH, Limits
from omnix_recs.security.tls import ClientTlsSettings, channel_tls

log = logging.getLogger("omnix.gateway")

DEFAULT_TIMEOUT_S = 30.0
REQUEST_ID_HEADER = "x-request-id"
TIMEOUT_HEADER = "grpc-timeout"
# Headers forwarded as gRPC metadata as they are; `grpc-metadata-NAME: v` becomes `NAME: v`.
FORWARDED_HEADERS = ("authorization",)
METADATA_HEADER_PREFIX = "grpc-metadata-"
_REQUEST_ID_RE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")
_TIMEOUT_RE = re.compile(r"(\d{1,8})([HMSmun])")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    target: str  # HOST:PORT of the gRPC server
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    max_body_bytes: int = Limits().max_message_bytes
    console: bool = True
    tls: ClientTlsSettings | None = None  # None: a plaintext channel to the gRPC server
    # The servers' Prometheus text (omnix serve --metrics-port), for the console's overview figures.
    metrics_url: str | None = None


class Gateway:
    """The route table, the channel to the server, and what has been served."""

    def __init__(self, config: GatewayConfig, routes: RouteTable | None = None) -> None:
        self.config = config
        self.routes = routes if routes is not None else build_route_table()
        self.traffic = TrafficStats()
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise RuntimeError("the gateway is not started (its channel opens in the ASGI lifespan)")
        return self._channel

    async def open(self) -> None:
        """Open the channel (inside the event loop that serves the gateway)."""
        limit = self.config.max_body_bytes
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
        if self.config.tls is None:
            self._channel = grpc.aio.insecure_channel(self.config.target, options=options)
        else:
            tls = channel_tls(self.config.tls)
            self._channel = grpc.aio.secure_channel(
                self.config.target, tls.credentials, options=options + [*tls.options]
            )
        for route in self.routes:
            self._calls.setdefault(route.grpc_path, self._multicallable(route))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._calls.clear()

    def _multicallable(self, route: RestRoute) -> Any:
        serialize = GetMessageClass(route.request_type).SerializeToString
        deserialize = GetMessageClass(route.response_type).FromString
        factory = {
            CallKind.UNARY: self.channel.unary_unary,
            CallKind.SERVER_STREAMING: self.channel.unary_stream,
            CallKind.CLIENT_STREAMING: self.channel.stream_unary,
        }[route.kind]
        return factory(route.grpc_path, request_serializer=serialize, response_deserializer=deserialize)

    # --- the transcoder (ASGI) --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websocket routes: refuse the handshake
            await send({"type": "websocket.close", "code": 1000})
            return
        request = Request(scope, receive)
        started = time.perf_counter()
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        found = self.routes.match(request.method, raw_path)
        if found is None:
            await _error_response(transcode.not_found(request.url.path))(scope, receive, send)
            return
        if isinstance(found, str):
            response = _error_response(transcode.method_not_allowed(request.method, request.url.path))
            response.headers["allow"] = found
            await response(scope, receive, send)
            return
        route = found.route
        request_id = _request_id(request)
        try:
            metadata, timeout = _call_options(request, request_id, self.config.default_timeout_s)
            if route.kind is CallKind.CLIENT_STREAMING:
                response = await self._upload(route, request, metadata, timeout)
            else:
                body = await _read_body(request, self.config.max_body_bytes)
                message = transcode.build_request(route, found.path_values, request.query_params.multi_items(), body)
                if route.kind is CallKind.SERVER_STREAMING:
                    response = await self._server_stream(route, message, metadata, timeout)
                else:
                    response = await self._unary(route, message, metadata, timeout)
        except transcode.GatewayError as error:
            response = _error_response(transcode.error_from_gateway(error))
        except grpc.aio.AioRpcError as error:
            response = _error_response(transcode.error_from_rpc(error))
        except Exception:  # a gateway bug: the client gets a status with the request id, the log the traceback
            log.exception("REST call %s %s failed (request id %s)", request.method, raw_path, request_id)
            internal = transcode.GatewayError(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")
            response = _error_response(transcode.error_from_gateway(internal))
        response.headers[REQUEST_ID_HEADER] = request_id
        await response(scope, receive, send)
        self.traffic.record(route.method.full_name, response.status_code, time.perf_counter() - started)

    async def _unary(self, route: RestRoute, message: Message, metadata: Metadata, timeout: float) -> Response:
        response = await self._calls[route.grpc_path](message, timeout=timeout, metadata=metadata)
        return Response(transcode.response_json(route, response), media_type=JSON)

    async def _server_stream(self, route: RestRoute, message: Message, metadata: Metadata, timeout: float) -> Response:
        call = self._calls[route.grpc_path](message, timeout=timeout, metadata=metadata)
        try:
            first = await call.read()  # errors before the first message still get their HTTP status
        except BaseException:
            call.cancel()
            raise

        async def lines() -> AsyncIterator[bytes]:
            try:
                item = first
                while item is not grpc.aio.EOF:
                    yield orjson.dumps({"result": transcode.response_value(route, item)}) + b"\n"
                    item = await call.read()
            except grpc.aio.AioRpcError as error:
                yield b'{"error":' + transcode.error_from_rpc(error).body + b"}\n"
            finally:
                call.cancel()  # no-op once finished; stops the server's work if the client left

        return StreamingResponse(lines(), media_type=NDJSON)

    async def _upload(self, route: RestRoute, request: Request, metadata: Metadata, timeout: float) -> Response:
        """A client-streaming RPC fed from an NDJSON (one message per line) or CSV upload."""
        if request.query_params:
            key = next(iter(request.query_params.keys()))
            raise transcode.GatewayError.bad_field(key, "query parameters are not accepted here: upload rows")
        is_csv = request.headers.get("content-type", "").split(";")[0].strip().lower() in (
            "text/csv",
            "application/csv",
        )
        call = self._calls[route.grpc_path](timeout=timeout, metadata=metadata)
        try:
            index = 0
            header: list[str] | None = None
            async for line in _lines(request, self.config.max_body_bytes):
                if not line.strip():
                    continue
                if is_csv:
                    text = line.decode("utf-8", errors="strict")
                    if header is None:
                        header = [h.strip() for h in next(csv.reader([text]))]
                        continue
                    rows = transcode.rows_from_csv(text, route.request_type, index, header)
                else:
                    rows = [transcode.row_from_ndjson(line, route.request_type, index)]
                for row in rows:
                    await call.write(row)
                    index += 1
            await call.done_writing()
            response = await call
        except BaseException:
            call.cancel()  # the server imports nothing from a cancelled stream
            raise
        return Response(transcode.response_json(route, response), media_type=JSON)


Metadata = tuple[tuple[str, str], ...]


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID_RE.fullmatch(given) else os.urandom(16).hex()


def _call_options(request: Request, request_id: str, default_timeout_s: float) -> tuple[Metadata, float]:
    metadata: list[tuple[str, str]] = [(REQUEST_ID_HEADER, request_id)]
    timeout: float | None = None
    for key, value in request.headers.items():
        if key in FORWARDED_HEADERS:
            metadata.append((key, value))
        elif key.startswith(METADATA_HEADER_PREFIX) and len(key) > len(METADATA_HEADER_PREFIX):
            metadata.append((key[len(METADATA_HEADER_PREFIX) :], value))
        elif key == TIMEOUT_HEADER:
            matched = _TIMEOUT_RE.fullmatch(value.strip())
            if matched is None:
                raise transcode.GatewayError.bad_field(
                    TIMEOUT_HEADER, f"expected digits and a unit H, M, S, m, u or n (e.g. 500m), got {value!r}"
                )
            timeout = int(matched.group(1)) * _TIMEOUT_UNITS[matched.group(2)]
    return tuple(metadata), default_timeout_s if timeout is None else timeout


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _lines(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The upload's lines as they arrive; `limit` bounds one line, not the whole upload."""
    pending = b""
    async for chunk in request.stream():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line
        if len(pending) > limit:
            raise _too_large(limit)
    if pending:
        yield pending


def _too_large(limit: int) -> transcode.GatewayError:
    return transcode.GatewayError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body larger than {limit} bytes", http_status=413
    )


def _error_response(reply: transcode.ErrorReply) -> Response:
    return Response(reply.body, status_code=reply.http_status, media_type=JSON)


def _metrics_relay(url: str) -> Callable[[Request], Awaitable[Response]]:
    """`/metrics` of the gateway: the servers' Prometheus text, relayed, so that a scraper that
    reaches only the gateway (the REST side of a deployment) sees the servers' figures."""
    from omnix_recs.gateway import operator_figures

    async def relay(_request: Request) -> Response:
        text = await asyncio.to_thread(operator_figures.fetch_text, url)
        if text is None:
            return Response(f"the servers' metrics at {url} did not answer\n", status_code=503, media_type="text/plain")
        return Response(text, media_type=PROMETHEUS_TEXT)

    return relay


def create_app(config: GatewayConfig, *, routes: RouteTable | None = None) -> Starlette:
    """The whole gateway: REST routes, `/openapi.json`, `/docs` and (unless off) `/console/`."""
    from omnix_recs.gateway import openapi

    gateway = Gateway(config, routes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    spec = orjson.dumps(openapi.build_spec(gateway.routes))
    http_routes: list[Route | Mount] = [
        Route("/openapi.json", lambda _request: Response(spec, media_type=JSON)),
        Route("/docs", lambda _request: Response(openapi.DOCS_PAGE, media_type="text/html; charset=utf-8")),
    ]
    if config.metrics_url:
        http_routes.append(Route("/metrics", _metrics_relay(config.metrics_url)))
    if config.console:
        from omnix_recs.gateway import console

        http_routes += [
            Route("/", lambda _request: RedirectResponse("/console/")),
            Mount("/console", app=console.console_app(gateway)),
        ]
    app = Starlette(routes=http_routes, lifespan=lifespan)
    app.state.gateway = gateway
    app.router.default = gateway  # everything else is a REST route, or a 404 in google.rpc.Status JSON
    return app
