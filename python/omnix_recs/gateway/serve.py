"""Running the gateway: alone (`omnix gateway`) or beside the gRPC server (`omnix serve --http-port`).

uvicorn runs on the caller's event loop. It does not touch signals here: the process that
embeds it (the gRPC server, the CLI) owns SIGTERM/SIGINT and stops the gateway itself. Several
server workers share one HTTP port the way they share the gRPC port, through SO_REUSEPORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import uvicorn

from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError, UnavailableError
from omnix_recs.gateway.app import GatewayConfig, create_app
from omnix_recs.gateway.routes import RouteTable
from omnix_recs.security.setup import tls_certificates
from omnix_recs.security.tls import CertificateFiles, ClientTlsSettings, TlsSettings, certificate_name, channel_tls

log = logging.getLogger("omnix.gateway")
CERTIFICATE_CHECK_S = 10.0  # how soon HTTPS serves a renewed certificate


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the host process owns the signals
        yield


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UnavailableError(f"cannot listen on {host}:{port} for HTTP: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def https_settings(settings: Settings) -> TlsSettings | None:
    """The HTTP side's certificate: the gRPC server's files (checked the same way), so one
    renewal covers both; with a client CA, browsers and REST clients need a certificate too."""
    certificates = tls_certificates(settings)
    return certificates.settings if certificates is not None else None


def channel_settings(settings: Settings, *, in_process: bool) -> ClientTlsSettings | None:
    """How the gateway reaches its gRPC server over TLS, or None for plaintext.

    Beside its own server (`in_process`), TLS follows the server's: the gateway trusts
    `OMNIX_TLS_CA_FILE`, else the client CA (one internal CA is the usual set-up), else the
    server's certificate itself (self-signed); it expects the certificate's own name (it dials
    127.0.0.1); under mTLS it presents `OMNIX_GATEWAY_TLS_CERT_FILE`, else the server's pair.
    Alone (`omnix gateway`), `OMNIX_TLS_CA_FILE` turns TLS on."""
    if in_process:
        if not settings.tls_cert_file or not settings.tls_key_file:
            return None
        client_pair = (settings.gateway_tls_cert_file, settings.gateway_tls_key_file)
        if settings.tls_client_ca_file and not any(client_pair):
            client_pair = (settings.tls_cert_file, settings.tls_key_file)
        tls = ClientTlsSettings(
            ca_file=settings.tls_ca_file or settings.tls_client_ca_file or settings.tls_cert_file,
            server_name=settings.tls_server_name or certificate_name(settings.tls_cert_file),
            cert_file=client_pair[0],
            key_file=client_pair[1],
        )
    else:
        if not settings.tls_ca_file:
            if settings.gateway_tls_cert_file or settings.gateway_tls_key_file:
                raise InvalidArgumentError(
                    "OMNIX_TLS_CA_FILE", "is required with a client certificate (mTLS is TLS first)"
                )
            return None
        tls = ClientTlsSettings(
            ca_file=settings.tls_ca_file,
            server_name=settings.tls_server_name,
            cert_file=settings.gateway_tls_cert_file,
            key_file=settings.gateway_tls_key_file,
        )
    channel_tls(tls)  # bad files fail here, naming the variable, not at the first REST call
    return tls


def _ssl_options(https: TlsSettings | None) -> dict[str, Any]:
    if https is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": https.cert_file, "ssl_keyfile": https.key_file}
    if https.client_ca_file:
        options |= {"ssl_ca_certs": https.client_ca_file, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


class _CertificateReloader:
    """Loads a renewed certificate into the live HTTPS context without a restart.

    uvicorn builds one `ssl.SSLContext` at start-up and every new connection is wrapped from
    it, so loading the new pair into that same context serves it to new connections while
    established ones keep theirs (as on the gRPC side). uvicorn has no per-handshake hook (the
    SNI callback only runs when a client sends a name), so the files are checked every
    `every_s`; `CertificateFiles` notices a change and refuses a pair that does not match."""

    def __init__(self, https: TlsSettings, every_s: float) -> None:
        self.files = CertificateFiles(https)
        self.every_s = every_s
        self.reloads = 0

    async def run(self, context: ssl.SSLContext) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            if self.files.fetch() is None:
                continue
            https = self.files.settings
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(https.cert_file, https.key_file)
                context.load_cert_chain(https.cert_file, https.key_file)
                if https.client_ca_file:
                    context.load_verify_locations(https.client_ca_file)
            except (OSError, ssl.SSLError) as exc:  # rewritten again since the check: the next round retries
                log.warning("HTTPS: not reloading the certificate: %s", exc)
                continue
            self.reloads += 1
            log.info("HTTPS: serving the renewed certificate from %s", https.cert_file)


class GatewayServer:
    """A started gateway on a bound socket; `port` is the bound port (useful when asked for 0).
    With `https` it serves HTTPS only (a plain HTTP request on that port fails its handshake),
    and a renewed certificate within `reload_every_s` without a restart."""

    def __init__(
        self,
        config: GatewayConfig,
        sock: socket.socket,
        *,
        routes: RouteTable | None = None,
        https: TlsSettings | None = None,
        reload_every_s: float = CERTIFICATE_CHECK_S,
    ) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.scheme = "https" if https is not None else "http"
        self.reloader = _CertificateReloader(https, reload_every_s) if https is not None else None
        self._reloading: asyncio.Task[None] | None = None
        self._server = _EmbeddedServer(
            uvicorn.Config(
                create_app(config, routes=routes),
                lifespan="on",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=5,
                **_ssl_options(https),
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]), name="omnix-gateway")
        while not self._server.started:
            if self._task.done():  # failed during start-up: raise its error
                await self._task
                raise UnavailableError("the REST gateway stopped during start-up")
            await asyncio.sleep(0.01)
        if self.reloader is not None and self._server.config.ssl is not None:
            self._reloading = asyncio.create_task(
                self.reloader.run(self._server.config.ssl), name="omnix-gateway-certificates"
            )

    async def stop(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self.sock.close()


async def start_beside(
    grpc_host: str,
    grpc_port: int,
    http_host: str,
    http_port: int,
    *,
    reuse_port: bool = False,
    settings: Settings | None = None,
) -> GatewayServer:
    """The gateway for a gRPC server of this process (called by `omnix serve --http-port`);
    `settings` carry the server's TLS files (None: plaintext on both sides)."""
    target_host = "127.0.0.1" if grpc_host in ("0.0.0.0", "", "::", "[::]") else grpc_host
    config = GatewayConfig(target=f"{target_host}:{grpc_port}")
    https = None
    if settings is not None:
        config = replace(config, tls=channel_settings(settings, in_process=True))
        https = https_settings(settings)
        if settings.metrics_port:
            config = replace(config, metrics_url=f"http://{target_host}:{settings.metrics_port}/metrics")
    server = GatewayServer(config, bind(http_host, http_port, reuse_port=reuse_port), https=https)
    await server.start()
    log.info(
        "REST gateway and console on %s://%s:%d/ (docs at /docs, console at /console/)",
        server.scheme,
        http_host,
        server.port,
    )
    return server


async def run_standalone(config: GatewayConfig, host: str, port: int, *, https: TlsSettings | None = None) -> None:
    """Serve until SIGTERM or SIGINT (`omnix gateway`)."""
    server = GatewayServer(config, bind(host, port), https=https)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    log.info("REST gateway for %s on %s://%s:%d/", config.target, server.scheme, host, server.port)
    await stopping.wait()
    await server.stop()
