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
from collections.abc import Iterator

import uvicorn

from omnix_recs.errors import UnavailableError
from omnix_recs.gateway.app import GatewayConfig, create_app
from omnix_recs.gateway.routes import RouteTable

log = logging.getLogger("omnix.gateway")


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


class GatewayServer:
    """A started gateway on a bound socket; `port` is the bound port (useful when asked for 0)."""

    def __init__(self, config: GatewayConfig, sock: socket.socket, *, routes: RouteTable | None = None) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self._server = _EmbeddedServer(
            uvicorn.Config(
                create_app(config, routes=routes),
                lifespan="on",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=5,
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

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self.sock.close()


async def start_beside(
    grpc_host: str, grpc_port: int, http_host: str, http_port: int, *, reuse_port: bool = False
) -> GatewayServer:
    """The gateway for a gRPC server of this process (called by `omnix serve --http-port`)."""
    target_host = "127.0.0.1" if grpc_host in ("0.0.0.0", "", "::", "[::]") else grpc_host
    server = GatewayServer(
        GatewayConfig(target=f"{target_host}:{grpc_port}"), bind(http_host, http_port, reuse_port=reuse_port)
    )
    await server.start()
    log.info("REST gateway and console on http://%s:%d/ (docs at /docs, console at /console/)", http_host, server.port)
    return server


async def run_standalone(config: GatewayConfig, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (`omnix gateway`)."""
    server = GatewayServer(config, bind(host, port))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    log.info("REST gateway for %s on http://%s:%d/", config.target, host, server.port)
    await stopping.wait()
    await server.stop()
