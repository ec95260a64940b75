"""Prometheus metrics for operators: `omnix serve --metrics-port P` serves them at /metrics.

What is measured: gRPC calls by method and status code, their latency, calls in flight,
requests shed for overload (also counted under RESOURCE_EXHAUSTED), the per-shopper cache's hits
and misses, served lists written and dropped, purchases and revenue attributed to served lists
as purchases are recorded, the model version each process serves, and
Bedrock: analyses asked of it by outcome, those the local analyst wrote instead, and the state
of its circuit breaker.

With several worker processes the figures must add up across them, so prometheus-client's
multiprocess mode is used: the parent points PROMETHEUS_MULTIPROC_DIR at a fresh directory
before it spawns the workers (the library chooses file-backed values when it is first
imported, which in a spawned worker happens after that), every worker writes its figures there,
and the parent serves /metrics by summing the files. One process alone serves its own registry.
The hot path costs one attribute check when metrics are off, and about a microsecond when on:
calls are tallied in memory and written to the metrics every second.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import grpc

if TYPE_CHECKING:
    from omnix_recs.config import Settings
    from omnix_recs.domain.models import Purchase
    from omnix_recs.engine.recommender import ModelSource
    from omnix_recs.engine.served_lists import ServedListWriter
    from omnix_recs.store.base import Store
    from omnix_recs.store.cache import Cache

log = logging.getLogger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets (s): the service answers in milliseconds; reports and training take longer.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)
# How often each process copies its own counts (calls in flight, cache, served lists) into the metrics.
SYNC_EVERY_S = 1.0


class RpcMetrics:
    """The per-call figures, recorded by the interceptor (api/interceptors.py)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "omnix_grpc_requests", "gRPC calls answered, by method and status code", ["method", "code"]
        )
        self.latency = Histogram(
            "omnix_grpc_request_duration_seconds", "gRPC call latency", ["method"], buckets=LATENCY_BUCKETS
        )
        self.in_flight = Gauge(
            "omnix_grpc_in_flight_requests",
            "gRPC calls being served (sampled every second)",
            multiprocess_mode="livesum",
        )
        self.cache = Counter("omnix_cache_lookups", "per-shopper cache lookups, by kind and result", ["kind", "result"])
        self.cache_refreshes = Counter(
            "omnix_cache_refreshes",
            "per-shopper cache entries reloaded in the background before they expired, by kind and result",
            ["kind", "result"],
        )
        self.served_lists = Counter("omnix_served_lists", "served lists queued for storage")
        self.served_lists_dropped = Counter("omnix_served_lists_dropped", "served lists lost to a full queue")
        self.attributed_purchases = Counter(
            "omnix_attributed_purchases",
            "recorded order lines a served list earned (last touch within 7 days), by kind of list",
            ["list"],
        )
        self.attributed_revenue = Counter(
            "omnix_attributed_revenue",
            "revenue (unit price x quantity) of the recorded order lines a served list earned, by kind of list",
            ["list"],
        )
        self.shed_requests = Counter(
            "omnix_shed_requests",
            "calls refused at once because the process had OMNIX_MAX_INFLIGHT in flight",
            ["method"],
        )
        self.unanswerable_calls = Counter(
            "omnix_unanswerable_calls",
            "calls gRPC core had ended (deadline passed, caller gone) before their answer could be sent",
            ["method"],
        )
        self.active_model = Gauge(
            "omnix_active_model_info",
            "1 for the model version a process serves",
            ["version"],
            multiprocess_mode="livemax",
        )

        # A call is tallied in plain Python numbers and the tallies are written to the metrics
        # every SYNC_EVERY_S (`flush`): each prometheus-client update takes a lock, and in
        # multiprocess mode writes a file-backed value, several microseconds per call in all.
        self._bounds = list(LATENCY_BUCKETS)
        self._tallies: dict[tuple[str, grpc.StatusCode], _Tally] = {}
        self._shed: dict[str, int] = {}
        self._unanswerable: dict[str, int] = {}
        self._lock = threading.Lock()
        self.calls_in_flight = 0  # calls run on the event loop's thread

    def started(self) -> None:
        self.calls_in_flight += 1

    def finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.calls_in_flight -= 1
        self._answered(method, code, seconds)

    def shed(self, method: str, seconds: float) -> None:
        """A call refused for overload before it started (never counted in flight)."""
        with self._lock:
            self._shed[method] = self._shed.get(method, 0) + 1
        self._answered(method, grpc.StatusCode.RESOURCE_EXHAUSTED, seconds)

    def unanswerable(self, method: str) -> None:
        """A call whose answer gRPC core refused: it had already ended there (api/interceptors.py)."""
        with self._lock:
            self._unanswerable[method] = self._unanswerable.get(method, 0) + 1

    def _answered(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        bucket = bisect.bisect_left(self._bounds, seconds)  # the first bound >= seconds, as `observe` picks
        with self._lock:
            tally = self._tallies.get((method, code))
            if tally is None:
                tally = self._tallies[(method, code)] = _Tally(len(self._bounds) + 1)
            tally.calls += 1
            tally.seconds += seconds
            tally.buckets[bucket] += 1

    def flush(self) -> None:
        """Write the tallies since the last flush to the metrics."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            shed, self._shed = self._shed, {}
            unanswerable, self._unanswerable = self._unanswerable, {}
        self.in_flight.set(self.calls_in_flight)
        for method, count in shed.items():
            self.shed_requests.labels(method).inc(count)
        for method, count in unanswerable.items():
            self.unanswerable_calls.labels(method).inc(count)
        for (method, code), tally in tallies.items():
            self.requests.labels(method, code.name).inc(tally.calls)
            histogram = self.latency.labels(method)
            # prometheus-client has no bulk observe: its histogram keeps a sum and one value per
            # bucket (not cumulative; cumulated when collected), which `observe` increments.
            histogram._sum.inc(tally.seconds)
            for value, count in zip(histogram._buckets, tally.buckets, strict=True):
                if count:
                    value.inc(count)


class _Tally:
    __slots__ = ("buckets", "calls", "seconds")

    def __init__(self, buckets: int) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.buckets = [0] * buckets


# Circuit states as numbers, so the worst of several processes is their maximum.
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


class InsightMetrics:
    """Bedrock's share of the analyses (insights/analyst.py). An analysis takes seconds, so
    its figures go straight to prometheus-client, no tallies."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self.bedrock_calls = Counter(
            "omnix_bedrock_calls",
            "analyses asked of Bedrock, by outcome: ok, or why no answer came (circuit_open and no_time: not sent)",
            ["outcome"],
        )
        self.local_analyses = Counter(
            "omnix_insight_fallbacks",
            "analyses written by the local analyst, by why Bedrock did not write them (disabled, or its outcome)",
            ["reason"],
        )
        self.circuit = Gauge(
            "omnix_bedrock_circuit_state",
            "Bedrock circuit breaker after the latest call: 0 closed, 1 half-open, 2 open (worst process)",
            multiprocess_mode="livemax",
        )

    def analysed(self, bedrock_outcome: str | None, circuit_state: str | None) -> None:
        """One analysis: `bedrock_outcome` None when Bedrock is disabled, "ok" when it answered."""
        if bedrock_outcome is not None:
            self.bedrock_calls.labels(bedrock_outcome).inc()
        if bedrock_outcome != "ok":
            self.local_analyses.labels(bedrock_outcome or "disabled").inc()
        if circuit_state is not None:
            self.circuit.set(CIRCUIT_STATES.get(circuit_state, 0))


# Set by `enable()`; None means metrics are off (the interceptor checks it on every call).
RPC: RpcMetrics | None = None
INSIGHTS: InsightMetrics | None = None
_enable_lock = threading.Lock()


def enable() -> RpcMetrics:
    """Start recording in this process (idempotent)."""
    global RPC, INSIGHTS
    with _enable_lock:
        if RPC is None:
            RPC = RpcMetrics()
            INSIGHTS = InsightMetrics()
        return RPC


def disable() -> None:
    """Stop recording in this process and unregister the figures, so a later `enable` starts
    afresh (a test that enabled metrics leaves the process as it found it)."""
    global RPC, INSIGHTS
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    with _enable_lock:
        for figures in (RPC, INSIGHTS):
            for value in vars(figures).values() if figures is not None else ():
                if isinstance(value, MetricWrapperBase):
                    REGISTRY.unregister(value)
        RPC = INSIGHTS = None


def purchases_recorded(store: Store, customer_id: str, purchases: Sequence[Purchase]) -> None:
    """Count the revenue the customer's served lists earned with these purchases (attribution
    as they arrive: one read of the customer's newest lists); nothing when metrics are off.
    Best effort: a store that cannot be read leaves the figures short, never fails the purchase."""
    figures = RPC
    if figures is None:
        return
    from omnix_recs.experiments.attribution import attribute_recorded

    try:
        attributed = attribute_recorded(store, customer_id, purchases)
    except Exception:
        log.warning(
            "could not attribute %d purchases of %s for the metrics", len(purchases), customer_id, exc_info=True
        )
        return
    for served, line in attributed:
        kind = served.strategy.split(":", 1)[0]  # "personalized:vip" is the personalized list
        figures.attributed_purchases.labels(kind).inc()
        figures.attributed_revenue.labels(kind).inc(line.revenue)


def analysis_done(bedrock_outcome: str | None, circuit_state: str | None) -> None:
    """Count an analysis (see `InsightMetrics.analysed`); nothing when metrics are off."""
    if INSIGHTS is not None:
        INSIGHTS.analysed(bedrock_outcome, circuit_state)


def serve_http(port: int, host: str, *, multiprocess: bool) -> Any:
    """Serve /metrics on a daemon thread; returns the HTTP server (call `.shutdown()` to stop)."""
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client import multiprocess as mp

    registry = REGISTRY
    if multiprocess:
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _ = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


@contextlib.contextmanager
def exported_for_workers(settings: Settings) -> Iterator[None]:
    """Around spawning workers: their figures go to a fresh directory, summed at /metrics here."""
    if not settings.metrics_port:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="omnix-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR_ENV] = directory
        server = serve_http(settings.metrics_port, settings.grpc_host, multiprocess=True)
        try:
            yield
        finally:
            server.shutdown()
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)


def worker_exited(pid: int | None) -> None:
    """Drop a dead worker's live gauges (in flight, model version) from the sums."""
    if pid is None or not os.environ.get(MULTIPROCESS_DIR_ENV):
        return
    from prometheus_client import multiprocess as mp

    mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class ServingProcess(Protocol):
    """What `ProcessFigures` reads of a serving process (`app.AppContext` is one): named here
    rather than imported, since the service layer below the app records figures too."""

    @property
    def cache(self) -> Cache: ...
    @property
    def served_lists(self) -> ServedListWriter | None: ...
    @property
    def models(self) -> ModelSource: ...


class ProcessFigures:
    """Copies what the process keeps count of itself (cache statistics, served lists, the
    model version) into the metrics every few seconds, on a daemon thread."""

    def __init__(self, app: ServingProcess, metrics: RpcMetrics, every_s: float = SYNC_EVERY_S) -> None:
        self._app = app
        self._metrics = metrics
        self._every_s = every_s
        self._seen: dict[tuple[str, str], int] = {}
        self._version = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omnix-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sync()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.sync()
            except Exception:  # figures are best effort: never take the server down
                log.warning("could not update the metrics", exc_info=True)

    def sync(self) -> None:
        self._metrics.flush()
        stats = self._app.cache.stats
        for result, counts in (("hit", dict(stats.hits)), ("miss", dict(stats.misses))):
            for kind, count in counts.items():
                self._add(self._metrics.cache.labels(kind, result), ("cache", f"{kind}:{result}"), count)
        for result, counts in (("ok", dict(stats.refreshes)), ("failed", dict(stats.refresh_failures))):
            for kind, count in counts.items():
                self._add(self._metrics.cache_refreshes.labels(kind, result), ("refresh", f"{kind}:{result}"), count)
        writer = self._app.served_lists
        if writer is not None:
            self._add(self._metrics.served_lists, ("served", ""), writer.queued)
            self._add(self._metrics.served_lists_dropped, ("dropped", ""), writer.dropped)
        model = self._app.models.model
        version = model.version if model is not None else ""
        if version != self._version:
            if self._version:
                self._metrics.active_model.labels(self._version).set(0)
            if version:
                self._metrics.active_model.labels(version).set(1)
            self._version = version

    def _add(self, counter: Any, key: tuple[str, str], total: int) -> None:
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[key] = total


def start_for_process(settings: Settings, app: ServingProcess) -> ProcessFigures | None:
    """In a serving process: record, and (one process alone) serve /metrics too."""
    if not settings.metrics_port:
        return None
    figures = ProcessFigures(app, enable())
    figures.start()
    if settings.workers == 1:
        serve_http(settings.metrics_port, settings.grpc_host, multiprocess=False)
    return figures
