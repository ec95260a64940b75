"""The gRPC server: assembly, start-up and graceful shutdown.

`OmnixServer` is the whole assembly (grpc.aio server, health, the shared `AppContext`). Shutdown
turns every health status NOT_SERVING first, so load balancers stop sending traffic, then lets
in-flight calls drain. One Python process uses one core, so `workers > 1` spawns processes on one
port (SO_REUSEPORT), fresh so no gRPC state crosses a fork; they share cache invalidations and
stop together, so a supervisor restarts a whole server. Past `max_inflight` calls a process
answers RESOURCE_EXHAUSTED at once instead of queueing, so latency stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import signal
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from omnix_recs import event_loop
from omnix_recs.api import register_services
from omnix_recs.api.interceptors import ServerInterceptor
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError, UnavailableError
from omnix_recs.store import open_store
from omnix_recs.store.base import Store
from omnix_recs.store.cache import GenerationTable

log = logging.getLogger("omnix.server")

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Clients' keepalive pings closer together than this are answered with GOAWAY (too many pings).
MIN_CLIENT_PING_INTERVAL_MS = 10_000
# Workers still running this long after their grace period are killed.
KILL_AFTER_GRACE_S = 5.0
# Net allocations between young garbage collections (Python's default is 700; see settle_garbage_collector).
GC_YOUNG_THRESHOLD = 5_000


@dataclass(eq=False)
class OmnixServer:
    server: grpc.aio.Server
    port: int
    app: AppContext
    health: health_aio.HealthServicer
    services: list[str]  # the implemented services, each with a health status

    @classmethod
    async def create(
        cls, settings: Settings, store: Store, *, reuse_port: bool = False, generations: GenerationTable | None = None
    ) -> OmnixServer:
        """Build and bind (not start) a server on `settings.grpc_host:grpc_port` (port 0 = any
        free port; the bound one is in `.port`). Call from inside the event loop that will run it.
        `generations`: cache generations shared with sibling workers (without Redis)."""
        limits = settings.limits
        server = grpc.aio.server(
            interceptors=[ServerInterceptor()],
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                # Off unless workers share the port on purpose: a second server started by
                # mistake on a busy port must fail, not silently split the traffic.
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
                ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
                ("grpc.http2.max_pings_without_data", 0),  # keep pinging an idle connection
            ],
            # Health checks count too: a saturated process looks busy to its prober.
            maximum_concurrent_rpcs=settings.max_inflight or None,
        )
        app = AppContext.create(settings, store, generations=generations)
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
        self.app.start()
        await self.server.start()

    async def shutdown(self, grace_s: float | None = None) -> None:
        """Health → NOT_SERVING for every service, then stop, letting calls drain for `grace_s`
        seconds (default `settings.shutdown_grace_s`)."""
        await self.health.enter_graceful_shutdown()
        grace = self.app.settings.shutdown_grace_s if grace_s is None else grace_s
        await self.server.stop(grace)
        await asyncio.to_thread(self.app.close)  # after the last call: writes the queued served lists
        log.info("cache: %s", self.app.cache.stats.summary())
        self.app.cache.close()


async def build_server(settings: Settings, store: Store) -> tuple[grpc.aio.Server, int]:
    """A configured, bound, unstarted server and its port (for tests that manage it themselves)."""
    built = await OmnixServer.create(settings, store)
    return built.server, built.port


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (see module docstring)."""
    _configure_logging(settings)
    if settings.workers == 1:
        event_loop.run(_serve_process(settings, reuse_port=False), use_uvloop=settings.event_loop == "uvloop")
        return
    if settings.grpc_port == 0:
        raise InvalidArgumentError("OMNIX_GRPC_PORT", "several workers need a fixed port, not 0")
    _serve_workers(settings)


async def _serve_process(settings: Settings, *, reuse_port: bool, generations: GenerationTable | None = None) -> None:
    store = open_store(settings.store_url)
    try:
        built = await OmnixServer.create(settings, store, reuse_port=reuse_port, generations=generations)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await built.start()
        settle_garbage_collector()
        log.info(
            "serving %s on %s:%d (%s)", ", ".join(built.services), settings.grpc_host, built.port, event_loop.name()
        )
        await stopping.wait()
        log.info("shutting down: draining in-flight calls for up to %.1f s", settings.shutdown_grace_s)
        await built.shutdown()
        log.info("stopped")
    finally:
        store.close()


def settle_garbage_collector() -> None:
    """Tune Python's cyclic garbage collector for a long-running server, once it has started.

    A collection stops every call of the process, and a full one scans every tracked object.
    The objects made at start-up (modules, the catalog snapshot, the model's ids) live as long
    as the process, so they are frozen out of every later scan; young collections run less
    often, so fewer short-lived objects (a call's) reach the generations full collections scan.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _serve_worker(settings: Settings, generations_path: Path | None) -> None:
    _configure_logging(settings)
    generations = GenerationTable.attach(generations_path) if generations_path else None
    event_loop.run(
        _serve_process(settings, reuse_port=True, generations=generations), use_uvloop=settings.event_loop == "uvloop"
    )


def _serve_workers(settings: Settings) -> None:
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="omnix-serve-") as tmp:
        generations_path = None
        if not settings.redis_url:  # with Redis, the generations live there
            generations_path = Path(tmp) / "cache-generations"
            GenerationTable.create_shared(generations_path)
        group = _WorkerGroup(
            [
                spawn.Process(target=_serve_worker, args=(settings, generations_path), name=f"omnix-worker-{i}")
                for i in range(settings.workers)
            ],
            kill_after_s=settings.shutdown_grace_s + KILL_AFTER_GRACE_S,
        )
        signal.signal(signal.SIGTERM, group.stop)
        signal.signal(signal.SIGINT, group.stop)
        group.start()
        log.info("started %d server processes on port %d", settings.workers, settings.grpc_port)
        failed = group.wait()
    if failed is not None:
        raise UnavailableError(
            f"server process {failed.name} exited unexpectedly (exit code {failed.exitcode}); stopped the others"
        )


class _WorkerGroup:
    """Server processes that live and stop together."""

    def __init__(self, processes: list[BaseProcess], *, kill_after_s: float) -> None:
        self.processes = processes
        self.kill_after_s = kill_after_s
        self.stop_requested_at: float | None = None

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def stop(self, *_signal: object) -> None:
        """Ask every worker to shut down gracefully (SIGTERM); also the parent's signal handler."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    def wait(self) -> BaseProcess | None:
        """Wait until every worker has exited. The first to exit unasked stops the others and is
        returned; None when they all stopped because they were asked to. Workers still running
        `kill_after_s` after the stop request are killed."""
        failed = None
        running = list(self.processes)
        while running:
            multiprocessing.connection.wait([p.sentinel for p in running], timeout=1.0)
            for process in [p for p in running if not p.is_alive()]:
                running.remove(process)
                process.join()
                if self.stop_requested_at is None:
                    log.error(
                        "server process %s exited unexpectedly (exit code %s); stopping the others",
                        process.name,
                        process.exitcode,
                    )
                    failed = process
                    self.stop()
            if (
                running
                and self.stop_requested_at is not None
                and time.monotonic() - self.stop_requested_at > self.kill_after_s
            ):
                for process in running:
                    log.error("server process %s did not stop within its grace period; killing it", process.name)
                    process.kill()
        return failed


def _configure_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level` unless the host program configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
