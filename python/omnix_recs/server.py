"""The gRPC server: assembly, start-up and graceful shutdown.

    serve(settings)                    # `omnix serve`: blocks until SIGTERM/SIGINT
    server, port = await build_server(settings, store)   # tests: a configured, unstarted server

`OmnixServer` is the whole assembly (grpc.aio server, health, the shared `AppContext`), with
`start()` and `shutdown()`. Shutdown is graceful: every health status turns NOT_SERVING (load
balancers watching health stop sending traffic), then the server stops accepting calls and
gives in-flight ones `settings.shutdown_grace_s` to finish before cancelling them.

With `settings.workers > 1`, `serve` starts that many server processes on the same port
(SO_REUSEPORT; the kernel spreads connections), each with its own store connection and
caches, because one Python process uses one core. They are spawned fresh, so no gRPC state is
shared across a fork.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from omnix_recs.api import register_services
from omnix_recs.api.interceptors import ServerInterceptor
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError, UnavailableError
from omnix_recs.store.base import Store, open_store

log = logging.getLogger("omnix.server")

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass(eq=False)
class OmnixServer:
    server: grpc.aio.Server
    port: int
    app: AppContext
    health: health_aio.HealthServicer
    services: list[str]  # the implemented services, each with a health status

    @classmethod
    async def create(cls, settings: Settings, store: Store, *, reuse_port: bool = False) -> "OmnixServer":
        """Build and bind (not start) a server on `settings.grpc_host:grpc_port` (port 0 = any
        free port; the bound one is in `.port`). Call from inside the event loop that will run it."""
        limits = settings.limits
        server = grpc.aio.server(
            interceptors=[ServerInterceptor()],
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                # Off unless workers share the port on purpose: a second server started by
                # mistake on a busy port must fail, not silently split the traffic.
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
        )
        app = AppContext.create(settings, store)
        registered = register_services(server, app)
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        for name in registered.implemented:
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [*registered.implemented, *registered.placeholders, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME],
            server,
        )
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc raises a bare RuntimeError when it cannot bind
            raise UnavailableError(f"cannot listen on {address}: {exc}") from None
        return cls(server=server, port=port, app=app, health=health, services=registered.implemented)

    async def start(self) -> None:
        await self.server.start()

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Health → NOT_SERVING for every service, then stop, letting calls drain for `grace_s`
        seconds (default `settings.shutdown_grace_s`)."""
        await self.health.enter_graceful_shutdown()
        grace = self.app.settings.shutdown_grace_s if grace_s is None else grace_s
        await self.server.stop(grace)


async def build_server(settings: Settings, store: Store) -> tuple[grpc.aio.Server, int]:
    """A configured, bound, unstarted server and its port (for tests that manage it themselves)."""
    built = await OmnixServer.create(settings, store)
    return built.server, built.port


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (see module docstring)."""
    _configure_logging(settings)
    if settings.workers == 1:
        asyncio.run(_serve_process(settings, reuse_port=False))
        return
    if settings.grpc_port == 0:
        raise InvalidArgumentError("OMNIX_GRPC_PORT", "several workers need a fixed port, not 0")
    _serve_workers(settings)


async def _serve_process(settings: Settings, *, reuse_port: bool) -> None:
    store = open_store(settings.store_url)
    try:
        built = await OmnixServer.create(settings, store, reuse_port=reuse_port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await built.start()
        log.info("serving %s on %s:%d", ", ".join(built.services), settings.grpc_host, built.port)
        await stopping.wait()
        log.info("shutting down: draining in-flight calls for up to %.1f s", settings.shutdown_grace_s)
        await built.shutdown()
        log.info("stopped")
    finally:
        store.close()


def _serve_worker(settings: Settings) -> None:
    _configure_logging(settings)
    asyncio.run(_serve_process(settings, reuse_port=True))


def _serve_workers(settings: Settings) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_serve_worker, args=(settings,), name=f"omnix-worker-{i}") for i in range(settings.workers)]

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                worker.terminate()  # SIGTERM: each worker shuts down gracefully

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.start()
    log.info("started %d server processes on port %d", settings.workers, settings.grpc_port)
    for worker in workers:
        worker.join()


def _configure_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level` unless the host program configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
