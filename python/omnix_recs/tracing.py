"""OpenTelemetry tracing of the gRPC calls: off unless `OMNIX_OTEL_ENDPOINT` names an OTLP/gRPC
collector (`http://collector:4317`; `https://` for TLS).

One server span per call, from opentelemetry-instrumentation-grpc's aio interceptor: the
method, the status code and the peer, continuing the caller's trace when its metadata carries
a `traceparent`. Spans leave in batches from a background thread, so a slow or absent
collector never delays a call (a full queue drops spans, it does not block). The libraries are
imported only when tracing is on.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_ENV = "OMNIX_OTEL_ENDPOINT"
SERVICE_NAME = "omnix-recs"

_providers: dict[str, TracerProvider] = {}  # one per endpoint and process
_lock = threading.Lock()


def server_interceptors(
    endpoint: str | None = None, *, exporter: SpanExporter | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors to put first on a grpc.aio server: none when tracing is off.

    `endpoint` defaults to $OMNIX_OTEL_ENDPOINT; `exporter` (tests) replaces the OTLP one and
    exports each span as it ends."""
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip() if endpoint is None else endpoint
    if exporter is not None:
        provider = _provider(exporter, batch=False)
    elif endpoint:
        try:
            import opentelemetry.sdk  # noqa: F401 - the optional `tracing` extra
        except ImportError:
            raise ValueError(f"{ENDPOINT_ENV} is set but the `tracing` extra is not installed") from None
        with _lock:
            if endpoint not in _providers:
                _providers[endpoint] = _provider(_otlp_exporter(endpoint), batch=True)
            provider = _providers[endpoint]
    else:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: Any = aio_server_interceptor(tracer_provider=provider)  # type: ignore[no-untyped-call]
    return [interceptor]


def _provider(exporter: SpanExporter, *, batch: bool) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Its own provider rather than the global one: the process may host other instrumented code.
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return provider


def _otlp_exporter(endpoint: str) -> SpanExporter:
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"{ENDPOINT_ENV} must start with http:// or https://, got {endpoint!r}")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
