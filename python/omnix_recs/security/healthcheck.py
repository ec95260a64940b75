"""`omnix healthcheck`: grpc.health.v1 Check over TLS or mTLS, for probes that cannot speak it.

Kubernetes' built-in gRPC probes dial in plaintext, so a server serving TLS needs an exec probe
instead: this check, run inside the server's container with the server's own settings, dials
127.0.0.1 the way the in-process REST gateway does (trusting `OMNIX_TLS_CA_FILE`, else the
client CA, else the server's own certificate; under mTLS presenting
`OMNIX_GATEWAY_TLS_CERT_FILE`, else the server's pair) and exits 0 only on SERVING.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs.security.tls import ClientTlsSettings, channel_tls


@dataclass(frozen=True, slots=True)
class HealthAnswer:
    serving: bool
    detail: str  # the status name, or why there was none


def check_health(
    target: str, tls: ClientTlsSettings | None, *, service: str = "", timeout_s: float = 2.0
) -> HealthAnswer:
    """One Check call to `target` (HOST:PORT), over TLS when `tls` is given."""
    options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
    if tls is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        secure = channel_tls(tls)
        channel = grpc.secure_channel(target, secure.credentials, options=[*options, *secure.options])
    with channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lacks its methods
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as error:
            return HealthAnswer(False, f"{error.code().name}: {error.details()}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return HealthAnswer(answer.status == health_pb2.HealthCheckResponse.SERVING, status)
