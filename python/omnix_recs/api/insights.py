"""InsightsService: consumption predictions and customer insights (insights/analyst.py).

Each RPC validates, calls one `InsightsService` method in a worker thread and maps back. The
request's deadline follows the call into that thread (`request_context`), which is what lets a
slow Bedrock answer give way to the local analyst in time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from omnix_recs._proto.omnix.v1 import insights_pb2, insights_pb2_grpc
from omnix_recs.api import validation as check
from omnix_recs.api.mapping import timestamp_to_proto
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.domain.models import CustomerChange
from omnix_recs.domain.predictions import AccuracySummary
from omnix_recs.errors import InvalidArgumentError, ResourceExhaustedError
from omnix_recs.insights.analyst import AnalysisResult, InsightsService
from omnix_recs.insights.drift import AccuracyDrift
from omnix_recs.leases import BATCH_ANALYZE_LEASE, held_lease
from omnix_recs.limits import (
    MAX_BATCH_CUSTOMERS,
    MAX_CLOCK_SKEW,
    MAX_CONCURRENCY,
    MAX_PREDICTIONS,
    MAX_PROGRESS_EVERY,
)

SERVICE_NAME = insights_pb2.DESCRIPTOR.services_by_name["InsightsService"].full_name
DEFAULT_PREDICTIONS = 20
DEFAULT_CONCURRENCY = 4
DEFAULT_ACCURACY_WINDOW = timedelta(days=90)
MAX_ACCURACY_HORIZON_DAYS = 365
BUCKETS = {
    insights_pb2.ACCURACY_BUCKET_UNSPECIFIED: "week",
    insights_pb2.ACCURACY_BUCKET_DAY: "day",
    insights_pb2.ACCURACY_BUCKET_WEEK: "week",
    insights_pb2.ACCURACY_BUCKET_MONTH: "month",
}


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    service = InsightsService(app.store, app.settings, bedrock=app.bedrock())

    def forget_analysis(customer_id: str, change: CustomerChange) -> None:
        if change is CustomerChange.DATA:  # analyses read the profile and purchases, not events
            service.forget(customer_id)

    app.subscribe_customer_activity(forget_analysis)
    insights_pb2_grpc.add_InsightsServiceServicer_to_server(
        InsightsServicer(service, Validator(app.settings.limits)), server
    )
    return [SERVICE_NAME]


def _now() -> datetime:
    return datetime.now(UTC)


class InsightsServicer(insights_pb2_grpc.InsightsServiceServicer):
    def __init__(self, service: InsightsService, validator: Validator) -> None:
        self.service = service
        self.v = validator
        # One batch analysis at a time per process: each already runs `concurrency` analyses at
        # once, and a second is refused (RESOURCE_EXHAUSTED) rather than queued behind it.
        self._batch = asyncio.Lock()

    async def AnalyzeCustomer(
        self,
        request: insights_pb2.AnalyzeCustomerRequest,
        context: grpc.aio.ServicerContext[insights_pb2.AnalyzeCustomerRequest, insights_pb2.AnalyzeCustomerResponse],
    ) -> insights_pb2.AnalyzeCustomerResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        result = await asyncio.to_thread(self.service.analyze, customer_id)
        return insights_pb2.AnalyzeCustomerResponse(**_analysis_fields(result))

    async def GetInsights(
        self,
        request: insights_pb2.GetInsightsRequest,
        context: grpc.aio.ServicerContext[insights_pb2.GetInsightsRequest, insights_pb2.GetInsightsResponse],
    ) -> insights_pb2.GetInsightsResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        result = await asyncio.to_thread(self.service.insights, customer_id)
        return insights_pb2.GetInsightsResponse(**_analysis_fields(result))

    async def GetConsumptionPredictions(
        self,
        request: insights_pb2.GetConsumptionPredictionsRequest,
        context: grpc.aio.ServicerContext[
            insights_pb2.GetConsumptionPredictionsRequest, insights_pb2.GetConsumptionPredictionsResponse
        ],
    ) -> insights_pb2.GetConsumptionPredictionsResponse:
        customer_id = self.v.require_id("customer_id", request.customer_id)
        as_of = check.timestamp("as_of", request, "as_of", required=False, not_after=_now() + MAX_CLOCK_SKEW)
        limit = check.integer("limit", request.limit, minimum=0, maximum=MAX_PREDICTIONS) or DEFAULT_PREDICTIONS
        forecast = await asyncio.to_thread(self.service.predictions, customer_id, as_of=as_of)
        products = forecast.due_now if request.due_only else forecast.products
        response = insights_pb2.GetConsumptionPredictionsResponse(
            next_visit_confidence=forecast.visit_confidence,
            visit_cycle_days=forecast.visit_cycle_days if forecast.next_visit_at else 0.0,
            as_of=timestamp_to_proto(forecast.as_of),
            predictions=[
                insights_pb2.ConsumptionPrediction(
                    product_id=p.product_id,
                    next_purchase_at=timestamp_to_proto(p.next_purchase_at),
                    confidence=p.confidence,
                    cycle_days=p.cycle_days,
                    last_purchased_at=timestamp_to_proto(p.last_purchased_at),
                    due_now=p.due_now,
                )
                for p in products[:limit]
            ],
        )
        if forecast.next_visit_at is not None:
            response.next_visit_at.CopyFrom(timestamp_to_proto(forecast.next_visit_at))
        return response

    async def BatchAnalyze(
        self,
        request: insights_pb2.BatchAnalyzeRequest,
        context: grpc.aio.ServicerContext[insights_pb2.BatchAnalyzeRequest, insights_pb2.BatchAnalyzeProgress],
    ) -> AsyncIterator[insights_pb2.BatchAnalyzeProgress]:
        customer_ids = self.v.id_list("customer_ids", request.customer_ids, self.v.limits.max_batch_items)
        max_customers = check.integer("max_customers", request.max_customers, minimum=0, maximum=MAX_BATCH_CUSTOMERS)
        concurrency = check.integer("concurrency", request.concurrency, minimum=0, maximum=MAX_CONCURRENCY)
        every = check.integer("progress_every", request.progress_every, minimum=0, maximum=MAX_PROGRESS_EVERY)
        since = check.timestamp("skip_analyzed_since", request, "skip_analyzed_since", required=False)
        if self._batch.locked():  # checked and taken with no await between: no race
            raise ResourceExhaustedError(
                "a batch analysis is already running on this server (BatchAnalyze runs one at a time); "
                "try again when it finishes, with skip_analyzed_since to resume"
            )
        # The lease: one batch at a time across every process and host sharing the store too.
        async with (
            self._batch,
            held_lease(
                self.service.store,
                BATCH_ANALYZE_LEASE,
                "a batch analysis is already running on another server process (BatchAnalyze runs one at "
                "a time across the service); try again when it finishes, with skip_analyzed_since to resume",
            ),
        ):
            async for progress in self._batch_analyze(customer_ids, since, concurrency, max_customers, every):
                yield progress

    async def _batch_analyze(
        self,
        customer_ids: tuple[str, ...],
        since: datetime | None,
        concurrency: int,
        max_customers: int,
        every: int,
    ) -> AsyncIterator[insights_pb2.BatchAnalyzeProgress]:
        async for progress in self.service.batch_analyze(
            customer_ids,
            skip_analyzed_since=since,
            concurrency=concurrency or DEFAULT_CONCURRENCY,
            max_customers=max_customers or None,
            progress_every=every,
        ):
            yield insights_pb2.BatchAnalyzeProgress(
                started_at=timestamp_to_proto(progress.started_at),
                total=progress.total,
                done=progress.done,
                analyzed=progress.analyzed,
                skipped=progress.skipped,
                failed=progress.failed,
                bedrock=progress.bedrock,
                local=progress.local,
                finished=progress.finished,
                last_error=progress.last_error,
            )

    async def GetPredictionAccuracy(
        self,
        request: insights_pb2.GetPredictionAccuracyRequest,
        context: grpc.aio.ServicerContext[
            insights_pb2.GetPredictionAccuracyRequest, insights_pb2.GetPredictionAccuracyResponse
        ],
    ) -> insights_pb2.GetPredictionAccuracyResponse:
        now = _now()
        since = check.timestamp("since", request, "since", required=False) or now - DEFAULT_ACCURACY_WINDOW
        until = check.timestamp("until", request, "until", required=False)
        check.time_range("since", since, "until", until)
        if request.bucket not in BUCKETS:
            raise InvalidArgumentError("bucket", f"unknown value {request.bucket}")
        horizon_days = check.integer("horizon_days", request.horizon_days, minimum=0, maximum=MAX_ACCURACY_HORIZON_DAYS)
        report = await asyncio.to_thread(
            self.service.prediction_accuracy,
            since=since,
            until=until,
            bucket=BUCKETS[request.bucket],
            horizon=timedelta(days=horizon_days) if horizon_days else None,
        )
        return insights_pb2.GetPredictionAccuracyResponse(
            overall=_accuracy(report.overall),
            buckets=[
                insights_pb2.AccuracyBucketResult(start=timestamp_to_proto(start), accuracy=_accuracy(summary))
                for start, summary in report.buckets
            ],
            drift=_drift(report.drift),
            scored_until=timestamp_to_proto(report.scored_until),
        )


def _analysis_fields(result: AnalysisResult) -> dict[str, Any]:
    doc = result.insights

    def judgement(message: Any, section: dict[str, Any], **fields: Any) -> Any:
        return message(**fields, confidence=section["confidence"], evidence=section["evidence"])

    return {
        "summary": result.summary,
        "source": result.source,
        "analyzed_at": timestamp_to_proto(result.analyzed_at),
        "model": result.model,
        "fallback_reason": result.fallback_reason,
        "insights": insights_pb2.CustomerInsights(
            highlights=doc["highlights"],
            household=judgement(insights_pb2.HouseholdInsight, doc["household"], size=doc["household"]["size"]),
            budget=judgement(
                insights_pb2.BudgetInsight,
                doc["budget"],
                tier=doc["budget"]["tier"],
                price_sensitivity=doc["budget"]["price_sensitivity"],
            ),
            lifestyle=[judgement(insights_pb2.LifestyleInsight, t, trait=t["trait"]) for t in doc["lifestyle"]],
            lifecycle=judgement(insights_pb2.LifecycleInsight, doc["lifecycle"], segment=doc["lifecycle"]["segment"]),
            needs=[insights_pb2.ProductNeed(**need) for need in doc["needs"]],
            actions=[insights_pb2.SuggestedAction(**action) for action in doc["actions"]],
        ),
    }


def _accuracy(summary: AccuracySummary) -> insights_pb2.PredictionAccuracy:
    optional = {
        "next_visit_mae_days": summary.next_visit_mae_days,
        "next_purchase_mae_days": summary.next_purchase_mae_days,
        "due_now_precision": summary.due_now_precision,
        "due_now_recall": summary.due_now_recall,
    }
    return insights_pb2.PredictionAccuracy(
        predictions=summary.forecasts,
        scored=summary.scored,
        product_predictions_scored=summary.product_predictions_scored,
        # NaN means "nothing to measure": leave the optional field unset.
        **{name: value for name, value in optional.items() if math.isfinite(value)},
    )


def _drift(drift: AccuracyDrift) -> insights_pb2.AccuracyDrift:
    optional = {
        "next_visit_mae_change_days": drift.next_visit_mae_change_days,
        "next_purchase_mae_change_days": drift.next_purchase_mae_change_days,
        "p_value": drift.p_value,
    }
    result = insights_pb2.AccuracyDrift(drifting=drift.drifting)
    for name, value in optional.items():
        if math.isfinite(value):  # NaN: not measurable, leave the optional field unset
            setattr(result, name, value)
    if drift.latest_bucket is not None:
        result.latest_bucket.CopyFrom(timestamp_to_proto(drift.latest_bucket))
    return result
