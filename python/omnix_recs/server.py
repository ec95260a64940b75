"""The gRPC server: assembly, start-up and graceful shutdown.

`OmnixServer` is the whole assembly (grpc.aio server, health, the shared `AppContext`). Shutdown
turns every health status NOT_SERVING first, so load balancers stop sending traffic, then lets
in-flight calls drain. One Python process uses one core, so `workers > 1` spawns processes on one
port (SO_REUSEPORT), fresh so no gRPC state crosses a fork, and with `worker_base_port` each
also on a port of its own (for clients that balance each call); they share cache invalidations and
are supervised by the parent: a worker that dies is restarted (with backoff), and a worker whose
parent dies exits (parent-death signal), so no orphan keeps serving. Past `max_inflight` calls a process
answers RESOURCE_EXHAUSTED at once instead of queueing, so latency stays bounded.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from omnix_recs import event_loop, metrics, retraining, served_retention, tracing
from omnix_recs.api import register_services
from omnix_recs.api.interceptors import Guard, InflightLimit, ServerInterceptor, install_unanswerable_answer_log
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError, UnavailableError
from omnix_recs.security.setup import Security
from omnix_recs.store import open_store
from omnix_recs.store.base import Store
from omnix_recs.store.cache import GenerationTable

if TYPE_CHECKING:
    from omnix_recs.gateway.serve import GatewayServer

log = logging.getLogger("omnix.server")

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Clients' keepalive pings closer together than this are answered with GOAWAY (too many pings).
MIN_CLIENT_PING_INTERVAL_MS = 10_000
# How long a stopping process waits for calls the grace cut that still run in threads, before
# closing the store (past it, the store is left to the process's exit).
THREADS_WAIT_S = 3.0
# Workers still running this long after their grace period are killed.
KILL_AFTER_GRACE_S = 5.0
# Net allocations between young garbage collections (Python's default is 700; see settle_garbage_collector).
GC_YOUNG_THRESHOLD = 5_000
# A dead worker is restarted after RESTART_BACKOFF_S, doubled for each death in a row up to
# MAX_RESTART_BACKOFF_S; a worker that served STABLE_AFTER_S resets it. A worker that dies
# MAX_QUICK_DEATHS times in a row before STABLE_AFTER_S (a broken config, a full disk) stops
# the server instead of restarting forever.
RESTART_BACKOFF_S = 0.1
MAX_RESTART_BACKOFF_S = 10.0
STABLE_AFTER_S = 30.0
MAX_QUICK_DEATHS = 5
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(eq=False)
class OmnixServer:
    server: grpc.aio.Server
    port: int
    app: AppContext
    health: health_aio.HealthServicer
    services: list[str]  # the implemented services, each with a health status
    security: Security | None = None  # TLS certificates, token checks, audit log

    @classmethod
    async def create(
        cls,
        settings: Settings,
        store: Store,
        *,
        reuse_port: bool = False,
        generations: GenerationTable | None = None,
        worker_port: int | None = None,
    ) -> OmnixServer:
        """Build and bind (not start) a server on `settings.grpc_host:grpc_port` (port 0 = any
        free port; the bound one is in `.port`), and on `worker_port` too when given. Call from
        inside the event loop that will run it. `generations`: cache generations shared with
        sibling workers (without Redis)."""
        limits = settings.limits
        security = Security.from_settings(settings)
        install_unanswerable_answer_log()
        server = grpc.aio.server(
            interceptors=[
                *tracing.server_interceptors(),  # first, so a call's span covers everything else
                ServerInterceptor(
                    Guard(
                        security.authenticator,
                        security.audit,
                        security.limiter,
                        security.stream_idle_timeout_s,
                        security.shared_limiter,
                        # Health checks count too: a saturated process looks busy to its prober.
                        inflight=InflightLimit(settings.max_inflight) if settings.max_inflight else None,
                    )
                ),
            ],
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
        port = _listen(server, security, f"{settings.grpc_host}:{settings.grpc_port}")
        if worker_port is not None:
            _listen(server, security, f"{settings.grpc_host}:{worker_port}")
        return cls(server=server, port=port, app=app, health=health, services=registered.implemented, security=security)

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
        if self.security is not None:
            await self.security.aclose()


def _listen(server: grpc.aio.Server, security: Security, address: str) -> int:
    """Bind `address` (with TLS when configured); the port bound."""
    try:
        if security.certificates is not None:
            return server.add_secure_port(address, security.certificates.server_credentials())
        return server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc raises a bare RuntimeError when it cannot bind
        raise UnavailableError(f"cannot listen on {address}: {exc}") from None


async def build_server(settings: Settings, store: Store) -> tuple[grpc.aio.Server, int]:
    """A configured, bound, unstarted server and its port (for tests that manage it themselves)."""
    built = await OmnixServer.create(settings, store)
    return built.server, built.port


def serve(settings: Settings, *, http_port: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (see module docstring).
    `http_port`: also serve the REST gateway and console there, in every worker. With
    `settings.retrain_every_s`, this process (not the workers) also retrains on schedule; and it
    prunes served lists past `settings.served_list_retention` (omnix_recs/served_retention.py)."""
    with retraining.scheduled(settings), served_retention.scheduled(settings):
        _serve(settings, http_port=http_port)


def _serve(settings: Settings, *, http_port: int | None = None) -> None:
    _configure_logging(settings)
    Security.from_settings(settings).close()  # refuse bad TLS/auth settings once, before any worker starts
    if http_port is not None:
        from omnix_recs.gateway.serve import channel_settings

        channel_settings(settings, in_process=True)  # and the gateway's client certificate
    ports = worker_ports(settings, http_port)
    for port in ports:
        refuse_busy_port(settings.grpc_host, port)
    if settings.workers == 1:
        event_loop.run(
            _serve_process(settings, reuse_port=False, http_port=http_port, worker_port=ports[0] if ports else None),
            use_uvloop=settings.event_loop == "uvloop",
        )
        return
    if settings.grpc_port == 0:
        raise InvalidArgumentError("OMNIX_GRPC_PORT", "several workers need a fixed port, not 0")
    refuse_busy_port(settings.grpc_host, settings.grpc_port)
    if http_port is not None:
        refuse_busy_port(settings.grpc_host, http_port)
    with metrics.exported_for_workers(settings):  # before the workers spawn: they inherit its directory
        _serve_workers(settings, http_port, ports)


def worker_ports(settings: Settings, http_port: int | None = None) -> list[int]:
    """Each worker's own port (`settings.worker_base_port` + its slot), or none when that is 0.

    Beside the shared port, because the kernel hashes each connection to it to one worker
    (SO_REUSEPORT) and HTTP/2 keeps a connection for hours: 32 connections split two ways 18/14
    or worse six times in ten, 21/11 or worse one time in nine (a binomial), and the busier
    worker queues while the other idles (README, Throughput). A client
    that balances each call over the workers' own ports (gRPC's round_robin over the list of
    addresses, as `omnix loadgen` does with several targets) loads them evenly."""
    base = settings.worker_base_port
    if not base:
        return []
    if base < 0:
        raise InvalidArgumentError("--worker-base-port", f"must be a port number, got {base}")
    ports = list(range(base, base + settings.workers))
    if ports[-1] > 65_535:
        raise InvalidArgumentError("--worker-base-port", f"{base} + {settings.workers} workers runs past port 65535")
    for name, taken in (
        ("the gRPC port", settings.grpc_port),
        ("the HTTP port", http_port),
        ("the metrics port", settings.metrics_port),
    ):
        if taken and taken in ports:
            raise InvalidArgumentError(
                "--worker-base-port", f"ports {base}-{ports[-1]} (one per worker) include {name} {taken}"
            )
    return ports


def refuse_busy_port(host: str, port: int) -> None:
    """UnavailableError when something already listens on `host:port`. Workers share their port
    (SO_REUSEPORT), so without this check a second server would bind beside the first one and
    split its traffic; a socket without SO_REUSEPORT cannot bind a port anyone listens on."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidArgumentError("--host", f"cannot resolve {host!r}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UnavailableError(
                    f"cannot listen on {host}:{port}: another server is already listening there"
                ) from None
            raise UnavailableError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def exit_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a killed supervisor leaves no
    orphan serving stale data); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    parent = multiprocessing.parent_process()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot set the parent-death signal (errno %d)", ctypes.get_errno())
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


async def _serve_process(
    settings: Settings,
    *,
    reuse_port: bool,
    generations: GenerationTable | None = None,
    http_port: int | None = None,
    worker_port: int | None = None,
) -> None:
    store = open_store(settings.store_url, served_list_retention=settings.served_list_retention)
    threads_done = True
    try:
        built = await OmnixServer.create(
            settings, store, reuse_port=reuse_port, generations=generations, worker_port=worker_port
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await built.start()
        figures = metrics.start_for_process(settings, built.app)
        settle_garbage_collector()
        own = f" and {settings.grpc_host}:{worker_port} (this process's own)" if worker_port else ""
        log.info(
            "serving %s on %s:%d%s (%s)",
            ", ".join(built.services),
            settings.grpc_host,
            built.port,
            own,
            event_loop.name(),
        )
        gateway = await _start_gateway(settings, built.port, http_port, reuse_port) if http_port is not None else None
        await stopping.wait()
        log.info("shutting down: draining in-flight calls for up to %.1f s", settings.shutdown_grace_s)
        if gateway is not None:
            await gateway.stop()  # REST calls in flight finish first: they are gRPC calls to drain
        await built.shutdown()
        if figures is not None:
            figures.close()
        threads_done = await _worker_threads_done(loop)
        log.info("stopped")
    finally:
        if threads_done:
            store.close()
        else:  # the process's exit closes it, after those threads
            log.warning("calls still running in threads %.0f s after the drain: the store is left open", THREADS_WAIT_S)


async def _worker_threads_done(loop: asyncio.AbstractEventLoop) -> bool:
    """Wait (up to `THREADS_WAIT_S`) for the work handlers handed to threads (`asyncio.to_thread`)
    to end. The grace cancels a call's handler but not its thread, which goes on with the store:
    closing a SQLite connection while another thread uses it can crash the process."""
    try:
        await asyncio.wait_for(loop.shutdown_default_executor(), THREADS_WAIT_S)
    except TimeoutError:
        return False
    return True


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


async def _start_gateway(settings: Settings, grpc_port: int, http_port: int, reuse_port: bool) -> GatewayServer:
    from omnix_recs.gateway.serve import start_beside  # starlette and uvicorn load only when asked for

    return await start_beside(
        settings.grpc_host, grpc_port, settings.grpc_host, http_port, reuse_port=reuse_port, settings=settings
    )


def _serve_worker(
    settings: Settings, generations_path: Path | None, http_port: int | None = None, worker_port: int | None = None
) -> None:
    exit_with_parent()
    _configure_logging(settings)
    generations = GenerationTable.attach(generations_path) if generations_path else None
    event_loop.run(
        _serve_process(
            settings, reuse_port=True, generations=generations, http_port=http_port, worker_port=worker_port
        ),
        use_uvloop=settings.event_loop == "uvloop",
    )


def _serve_workers(settings: Settings, http_port: int | None = None, ports: list[int] | None = None) -> None:
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="omnix-serve-") as tmp:
        generations_path = None
        if not settings.redis_url:  # with Redis, the generations live there
            generations_path = Path(tmp) / "cache-generations"
            GenerationTable.create_shared(generations_path)

        def new_worker(slot: int) -> BaseProcess:
            # A restarted worker takes its slot's own port again: clients balancing over it reconnect.
            own = ports[slot] if ports else None
            return spawn.Process(
                target=_serve_worker, args=(settings, generations_path, http_port, own), name=f"omnix-worker-{slot}"
            )

        group = _WorkerGroup(new_worker, settings.workers, kill_after_s=settings.shutdown_grace_s + KILL_AFTER_GRACE_S)
        signal.signal(signal.SIGTERM, group.stop)
        signal.signal(signal.SIGINT, group.stop)
        group.start()
        own = f" and each on its own, {ports[0]}-{ports[-1]}" if ports else ""
        log.info("started %d server processes on port %d%s", settings.workers, settings.grpc_port, own)
        failed = group.wait()
    if failed is not None:
        raise UnavailableError(
            f"server process {failed.name} kept exiting right after it started (exit code {failed.exitcode}); "
            "stopped the others"
        )


@dataclass(eq=False)
class _Slot:
    """One worker position: its current process and its recent deaths."""

    index: int
    process: BaseProcess
    started_at: float = 0.0
    quick_deaths: int = 0  # deaths in a row, each before the worker served STABLE_AFTER_S
    restart_at: float | None = None  # when the dead worker is due to be replaced


class _WorkerGroup:
    """Server processes on one port, restarted when they die, stopped together when asked."""

    def __init__(self, new_worker: Callable[[int], BaseProcess], count: int, *, kill_after_s: float) -> None:
        self.new_worker = new_worker
        self.slots = [_Slot(i, new_worker(i)) for i in range(count)]
        self.kill_after_s = kill_after_s
        self.stop_requested_at: float | None = None
        self.restarts = 0

    @property
    def processes(self) -> list[BaseProcess]:
        return [slot.process for slot in self.slots]

    def start(self) -> None:
        for slot in self.slots:
            slot.process.start()
            slot.started_at = time.monotonic()

    def stop(self, *_signal: object) -> None:
        """Ask every worker to shut down gracefully (SIGTERM); also the parent's signal handler."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    def wait(self) -> BaseProcess | None:
        """Supervise until every worker has exited after a stop request (None), or until a worker
        died MAX_QUICK_DEATHS times in a row right after starting (that process, the others
        stopped). A worker that dies otherwise is replaced after its backoff. Workers still
        running `kill_after_s` after the stop request are killed."""
        failed: BaseProcess | None = None
        while True:
            alive = [s.process for s in self.slots if s.process.pid is not None and s.process.is_alive()]
            if not alive and (self.stop_requested_at is not None or failed is not None):
                return failed
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = min([1.0, *(max(0.0, t - now) for t in due)])
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=timeout)
            now = time.monotonic()
            for slot in self.slots:
                process = slot.process
                if slot.restart_at is None and process.pid is not None and not process.is_alive():
                    process.join()
                    metrics.worker_exited(process.pid)
                    if self.stop_requested_at is not None or failed is not None:
                        continue
                    failed = self._schedule_restart(slot, now)
                    if failed is not None:
                        self.stop()
                elif slot.restart_at is not None and now >= slot.restart_at:
                    if self.stop_requested_at is not None or failed is not None:
                        slot.restart_at = None
                        continue
                    slot.restart_at = None
                    slot.process = self.new_worker(slot.index)
                    slot.process.start()
                    slot.started_at = now
                    self.restarts += 1
                    log.warning("restarted server process %s (pid %s)", slot.process.name, slot.process.pid)
            if (
                alive
                and self.stop_requested_at is not None
                and time.monotonic() - self.stop_requested_at > self.kill_after_s
            ):
                for process in alive:
                    if process.is_alive():
                        log.error("server process %s did not stop within its grace period; killing it", process.name)
                        process.kill()

    def _schedule_restart(self, slot: _Slot, now: float) -> BaseProcess | None:
        """Plan the replacement of a worker that died unasked; the process when it is hopeless."""
        process = slot.process
        slot.quick_deaths = slot.quick_deaths + 1 if now - slot.started_at < STABLE_AFTER_S else 1
        if slot.quick_deaths >= MAX_QUICK_DEATHS:
            log.error(
                "server process %s exited %d times in a row right after starting (exit code %s); stopping the server",
                process.name,
                slot.quick_deaths,
                process.exitcode,
            )
            return process
        backoff = min(MAX_RESTART_BACKOFF_S, RESTART_BACKOFF_S * 2 ** (slot.quick_deaths - 1))
        slot.restart_at = now + backoff
        log.error(
            "server process %s exited unexpectedly (exit code %s); restarting it in %.1f s",
            process.name,
            process.exitcode,
            backoff,
        )
        return None


def _configure_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level` unless the host program configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
