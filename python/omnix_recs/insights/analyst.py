"""`InsightsService`: consumption predictions and customer insights over the store.

For one customer: the consumption forecast (stored, so it can be scored later), and an insights
document written by Bedrock when it is enabled and answers in time with a valid document, else
by the local analyst. For many: `batch_analyze` and `prediction_accuracy`. A stored or cached
analysis stays fresh while the customer's newest purchase is the one it was built from; that is
read from the store on every request, so every server process sees new purchases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from omnix_recs import metrics, progress, request_context
from omnix_recs.config import Settings
from omnix_recs.domain.consumption import CustomerHistory, customer_cycles, enrich_history
from omnix_recs.domain.models import Customer, Purchase
from omnix_recs.domain.predictions import (
    AccuracySummary,
    ConsumptionForecast,
    ForecastScore,
    forecast_consumption,
    score_forecast,
    summarise_scores,
)
from omnix_recs.errors import FailedPreconditionError, NotFoundError
from omnix_recs.insights.baseline import BaselineCache
from omnix_recs.insights.bedrock import BedrockAnalyst, BedrockError
from omnix_recs.insights.drift import AccuracyDrift, accuracy_drift
from omnix_recs.insights.facts import CustomerAnalysis, analyse_history, cited_product_ids, customer_facts
from omnix_recs.insights.local import write_insights
from omnix_recs.store.base import Store

log = logging.getLogger(__name__)

ANALYSES = "analyses"
PREDICTIONS = "predictions"
SOURCE_BEDROCK = "bedrock"
SOURCE_LOCAL = "local"
# Time kept back from the caller's deadline for the local analyst and the reply.
LOCAL_RESERVE_S = 0.3
# A live forecast is stored again only after this long, or when new purchases arrived.
FORECAST_REFRESH = timedelta(hours=12)
CACHE_SIZE = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AnalysisResult:
    customer_id: str
    summary: str
    source: str  # "bedrock" or "local"
    insights: dict[str, Any]  # the validated insights document (see insights/schema.py)
    analyzed_at: datetime
    data_version: str  # newest purchase time it saw ("" = none)
    model: str  # the Bedrock model id, or "local"
    fallback_reason: str = ""  # why the local analyst answered ("" when Bedrock did)

    def to_document(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "source": self.source,
            "insights": self.insights,
            "data_version": self.data_version,
            "model": self.model,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_document(cls, customer_id: str, created_at: datetime, body: dict[str, Any]) -> AnalysisResult:
        return cls(
            customer_id=customer_id,
            summary=body["summary"],
            source=body["source"],
            insights=body["insights"],
            analyzed_at=created_at,
            data_version=body.get("data_version", ""),
            model=body.get("model", ""),
            fallback_reason=body.get("fallback_reason", ""),
        )


@dataclass(frozen=True, slots=True)
class BatchProgress:
    started_at: datetime  # pass as `skip_analyzed_since` to resume an interrupted batch
    total: int
    done: int
    analyzed: int
    skipped: int  # analysed since `skip_analyzed_since` already, or no consent
    failed: int
    bedrock: int
    local: int
    finished: bool
    last_error: str = ""


@dataclass(frozen=True)
class AccuracyReport:
    overall: AccuracySummary
    buckets: tuple[tuple[datetime, AccuracySummary], ...]  # (bucket start, summary), oldest first
    drift: AccuracyDrift
    scored_until: datetime  # forecasts made before this moment were considered


@dataclass
class _BatchCounts:
    """Outcome counters shared by a batch's worker threads."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    bedrock: int = 0
    local: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: str, error: str = "") -> None:
        with self.lock:
            self.done += 1
            setattr(self, outcome, getattr(self, outcome) + 1)
            if error:
                self.last_error = error

    def progress(self, started_at: datetime, total: int, finished: bool) -> BatchProgress:
        with self.lock:
            return BatchProgress(
                started_at=started_at,
                total=total,
                done=self.done,
                analyzed=self.bedrock + self.local,
                skipped=self.skipped,
                failed=self.failed,
                bedrock=self.bedrock,
                local=self.local,
                finished=finished,
                last_error=self.last_error,
            )


class InsightsService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        bedrock: BedrockAnalyst | None = None,
        baseline: BaselineCache | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.bedrock = (
            bedrock if bedrock is not None else (BedrockAnalyst(settings) if settings.bedrock_enabled else None)
        )
        self.baseline = baseline or BaselineCache(store)
        self._cache: OrderedDict[str, AnalysisResult] = OrderedDict()
        self._cache_lock = threading.Lock()

    # --- one customer ------------------------------------------------------------------------

    def _history(self, customer_id: str, as_of: datetime) -> CustomerHistory:
        purchases = self.store.purchases_of(customer_id, before=as_of)
        products = self.store.get_products(sorted({p.product_id for p in purchases}))
        return enrich_history(customer_id, purchases, products, as_of=as_of)

    def _customer(self, customer_id: str, *, purpose: str) -> Customer:
        customer = self.store.get_customer(customer_id)
        allowed = customer.consent.analytics if purpose == "analysis" else customer.consent.personalization
        if not allowed:
            raise FailedPreconditionError(f"customer {customer_id!r} has not consented to {purpose}")
        return customer

    def analysis(self, customer_id: str, *, as_of: datetime | None = None) -> CustomerAnalysis:
        """The full analysis (cycles, patterns, forecast, profile) of one customer."""
        customer = self._customer(customer_id, purpose="analysis")
        history = self._history(customer_id, as_of or _now())
        return analyse_history(history, self.baseline.get(), customer)

    def predictions(self, customer_id: str, *, as_of: datetime | None = None) -> ConsumptionForecast:
        """The consumption forecast; live ones (no `as_of`) are stored for later scoring."""
        self._customer(customer_id, purpose="personalization")
        history = self._history(customer_id, as_of or _now())
        population = self.baseline.get().cycles
        forecast = forecast_consumption(history, customer_cycles(history, population), population)
        if as_of is None and history.lines:
            self._store_forecast(forecast, _version_of(history))
        return forecast

    def _store_forecast(self, forecast: ConsumptionForecast, version: str) -> None:
        latest = self.store.latest_document(PREDICTIONS, forecast.customer_id)
        if latest is not None:
            created_at, body = latest
            if body.get("data_version") == version and forecast.as_of - created_at < FORECAST_REFRESH:
                return
        self.store.put_document(
            PREDICTIONS, forecast.customer_id, forecast.as_of, {**forecast.to_document(), "data_version": version}
        )

    def analyze(self, customer_id: str) -> AnalysisResult:
        """A fresh analysis: Bedrock within the caller's deadline if enabled, else local."""
        analysis = self.analysis(customer_id)
        facts = customer_facts(analysis)
        known = cited_product_ids(facts)
        source, model, reason = SOURCE_LOCAL, SOURCE_LOCAL, "Bedrock is disabled"
        insights: dict[str, Any] | None = None
        outcome: str | None = None  # for the metrics: None = Bedrock disabled
        if self.bedrock is not None:
            try:
                insights = self.bedrock.analyse(facts, known, budget_s=self._bedrock_budget())
                source, model, reason, outcome = SOURCE_BEDROCK, self.bedrock.model_id, "", "ok"
            except BedrockError as exc:
                reason, outcome = exc.reason, exc.kind
                log.warning("bedrock fell back to the local analyst", extra={"reason": exc.reason})
        metrics.analysis_done(outcome, self.bedrock.breaker.state if self.bedrock is not None else None)
        if insights is None:
            insights = write_insights(facts)
        result = AnalysisResult(
            customer_id=customer_id,
            summary=insights["summary"],
            source=source,
            insights=insights,
            analyzed_at=analysis.history.as_of,
            data_version=_version_of(analysis.history),
            model=model,
            fallback_reason=reason,
        )
        self.store.put_document(ANALYSES, customer_id, result.analyzed_at, result.to_document())
        self._remember(result)
        return result

    def _bedrock_budget(self) -> float:
        remaining = request_context.time_remaining()
        budget = self.settings.bedrock_timeout_s
        return budget if remaining is None else min(budget, remaining - LOCAL_RESERVE_S)

    def insights(self, customer_id: str) -> AnalysisResult:
        """The latest analysis when the customer has bought nothing since; else a fresh one."""
        self._customer(customer_id, purpose="analysis")
        version = self._current_version(customer_id)
        with self._cache_lock:
            cached = self._cache.get(customer_id)
        if cached is not None and cached.data_version == version:
            return cached
        stored = self.store.latest_document(ANALYSES, customer_id)
        if stored is not None and stored[1].get("data_version") == version:
            result = AnalysisResult.from_document(customer_id, *stored)
            self._remember(result)
            return result
        return self.analyze(customer_id)

    def _current_version(self, customer_id: str) -> str:
        page = self.store.list_purchases(customer_id, 1, "", None, _now())
        return page.items[0].purchased_at.isoformat() if page.items else ""

    def _remember(self, result: AnalysisResult) -> None:
        with self._cache_lock:
            self._cache[result.customer_id] = result
            self._cache.move_to_end(result.customer_id)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def forget(self, customer_id: str) -> None:
        """Drop the customer's cached analysis (their data changed or was erased)."""
        with self._cache_lock:
            self._cache.pop(customer_id, None)

    # --- many customers ----------------------------------------------------------------------

    def _all_customer_ids(self, limit: int | None) -> Iterator[str]:
        token, seen = "", 0
        while True:
            page = self.store.list_customer_ids(1000, token)
            for customer_id in page.items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield customer_id
            token = page.next_page_token
            if not token:
                return

    async def batch_analyze(
        self,
        customer_ids: Sequence[str] = (),
        *,
        skip_analyzed_since: datetime | None = None,
        concurrency: int = 4,
        max_customers: int | None = None,
        progress_every: int = 0,
    ) -> AsyncIterator[BatchProgress]:
        """Analyse many customers (`customer_ids`, or everyone up to `max_customers`), at most
        `concurrency` at a time, yielding progress every `progress_every` customers (0 = about
        every 1 %) and once at the end.

        Resumable: every analysis is stored as soon as it is done, and customers analysed at or
        after `skip_analyzed_since` are skipped, so re-running an interrupted batch with its
        `started_at` does only the remaining work.
        """
        started_at = _now()
        ids = list(customer_ids) or await asyncio.to_thread(lambda: list(self._all_customer_ids(max_customers)))
        total = len(ids)
        every = progress_every or max(1, total // 100)
        counts = _BatchCounts()
        queue: asyncio.Queue[None] = asyncio.Queue()

        def one(customer_id: str) -> None:
            try:
                if skip_analyzed_since is not None:
                    latest = self.store.latest_document(ANALYSES, customer_id)
                    if latest is not None and latest[0] >= skip_analyzed_since:
                        counts.record("skipped")
                        return
                counts.record(self.analyze(customer_id).source)
            except (FailedPreconditionError, NotFoundError):
                counts.record("skipped")  # no consent, or erased while the batch ran
            except Exception as exc:  # one customer's failure must not stop the batch
                log.exception("batch analysis failed", extra={"customer_id": customer_id})
                counts.record("failed", f"{customer_id}: {type(exc).__name__}")

        pending = iter(ids)

        async def worker() -> None:
            for customer_id in pending:
                await asyncio.to_thread(one, customer_id)
                await queue.put(None)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, total)))]
        yield counts.progress(started_at, total, False)
        # Shown only when a command reports progress (`omnix batch-analyze`), never in a server.
        with progress.track("batch analysis", total=total, unit="customers") as shown:
            try:
                for i in range(1, total + 1):
                    await queue.get()
                    shown.advance()
                    if i % every == 0 and i < total:
                        yield counts.progress(started_at, total, False)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        yield counts.progress(started_at, total, True)

    def prediction_accuracy(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        bucket: str = "week",
        max_forecasts: int = 10_000,
        horizon: timedelta | None = None,
    ) -> AccuracyReport:
        """Score stored forecasts made in [since, until) against the purchases that followed,
        overall and per time bucket ("day", "week" starting Monday, or calendar "month").

        With a `horizon`, each forecast is judged on the purchases of that long after it, and
        only forecasts at least that old count: every bucket has had the same time to come
        true, so a trend over buckets is drift, not young forecasts judged on quick returners."""
        now = _now()
        until = min(until or now, now - horizon) if horizon else until or now
        documents = [
            d for d in self.store.list_documents(PREDICTIONS, since=since, limit=max_forecasts) if d[1] < until
        ]
        by_customer: dict[str, list[ConsumptionForecast]] = {}
        for customer_id, _, body in documents:
            by_customer.setdefault(customer_id, []).append(ConsumptionForecast.from_document(customer_id, body))
        scored: list[tuple[datetime, ForecastScore]] = []
        for customer_id, forecasts in by_customer.items():
            later = self._purchases_since(customer_id, min(f.as_of for f in forecasts))
            for forecast in forecasts:
                seen = [p for p in later if p.purchased_at < forecast.as_of + horizon] if horizon else later
                scored.append((_bucket_start(forecast.as_of, bucket), score_forecast(forecast, seen)))
        buckets: dict[datetime, list[Any]] = {}
        for start, score in scored:
            buckets.setdefault(start, []).append(score)
        return AccuracyReport(
            overall=summarise_scores([s for _, s in scored]),
            buckets=tuple((start, summarise_scores(buckets[start])) for start in sorted(buckets)),
            drift=accuracy_drift(scored),
            scored_until=until,
        )

    def _purchases_since(self, customer_id: str, start: datetime) -> list[Purchase]:
        purchases: list[Purchase] = []
        token = ""
        while True:
            page = self.store.list_purchases(customer_id, 1000, token, start, None)
            purchases += page.items
            token = page.next_page_token
            if not token:
                return purchases


def _version_of(history: CustomerHistory) -> str:
    return history.lines[-1].purchased_at.isoformat() if history.lines else ""


def _bucket_start(moment: datetime, bucket: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def analyze_customer_cli(store: Store, settings: Settings, customer_id: str) -> str:
    """`omnix analyze CUSTOMER_ID`: a fresh analysis as readable text plus the structured JSON."""
    started = time.perf_counter()
    result = InsightsService(store, settings).analyze(customer_id)
    elapsed = time.perf_counter() - started
    header = f"customer {customer_id} · source {result.source}"
    if result.fallback_reason:
        header += f" ({result.fallback_reason})"
    return "\n".join(
        [
            header + f" · {elapsed:.2f} s",
            "",
            result.summary,
            "",
            json.dumps(result.insights, indent=2, ensure_ascii=False),
        ]
    )
