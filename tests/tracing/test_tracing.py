"""OpenTelemetry tracing of gRPC calls (omnix_recs/tracing.py): off by default; when on, one
server span per call over a real socket, with its status code, continuing the caller's trace.
Spans go to the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from omnix_recs import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
CHECK = "/grpc.health.v1.Health/Check"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_tracing_is_off_unless_an_endpoint_is_set(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    else:
        monkeypatch.setenv(tracing.ENDPOINT_ENV, value)
    assert tracing.server_interceptors() == []


def test_an_endpoint_without_a_scheme_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracing.ENDPOINT_ENV, "collector:4317")
    with pytest.raises(ValueError, match="OMNIX_OTEL_ENDPOINT must start with http:// or https://"):
        tracing.server_interceptors()


def test_an_endpoint_gives_one_tracing_interceptor_per_server() -> None:
    # Nothing listens there: spans would be dropped in the background, calls are not delayed.
    (interceptor,) = tracing.server_interceptors("http://127.0.0.1:9")
    assert isinstance(interceptor, grpc.aio.ServerInterceptor)


async def traced_calls(exporter: InMemorySpanExporter) -> list[Any]:
    server = grpc.aio.server(interceptors=tracing.server_interceptors(exporter=exporter))
    servicer = health.aio.HealthServicer()
    await servicer.set("omnix.v1.CatalogService", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(service="omnix.v1.CatalogService"), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
            assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
            traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=[("traceparent", traceparent)])
    finally:
        await server.stop(None)
    return list(exporter.get_finished_spans())


def test_each_call_is_one_server_span_with_its_status_and_the_callers_trace() -> None:
    exporter = InMemorySpanExporter()
    ok, not_found, continued = asyncio.run(traced_calls(exporter))

    for span in (ok, not_found, continued):
        assert span.name == CHECK and span.kind is SpanKind.SERVER
        assert span.resource.attributes["service.name"] == tracing.SERVICE_NAME
    assert ok.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert ok.status.status_code is not StatusCode.ERROR
    assert not_found.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    # The semantic conventions leave a server span's status unset for a client's mistake.
    assert not_found.status.status_code is StatusCode.UNSET
    assert ok.context.trace_id != not_found.context.trace_id  # separate calls, separate traces
    assert format(continued.context.trace_id, "032x") == TRACE_ID
    assert continued.parent is not None and format(continued.parent.span_id, "016x") == PARENT_SPAN_ID
