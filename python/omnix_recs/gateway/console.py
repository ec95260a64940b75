"""The web console at `/console/`: server-rendered pages over the same gRPC API.

Every figure on a page comes from a gRPC call on the gateway's channel (so the server's
validation, errors and, later, authorisation apply; the browser's `authorization` header is
forwarded), except the overview's traffic, which is what this gateway served. Pages work
without JavaScript: actions are HTML forms that POST, then redirect back with a message
(post/redirect/get), so reloading never repeats an activation. A call that fails shows the
server's message in place of its panel; the rest of the page still renders.

Cross-site request forgery: every page sets a random token in a SameSite=Strict, HttpOnly
cookie and in its forms; a POST must carry the cookie's token in its form (double submit) and,
when the browser names it, come from the console's own origin (`Origin`, else `Referer`).
Anything else is refused with 403 before any gRPC call. Workers share nothing for this: the
token lives in the browser, so any worker can check it.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import grpc
import jinja2
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    customer_pb2,
    customer_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    marketing_pb2,
    marketing_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from omnix_recs.experiments.assignment import HOLDOUT_ARM
from omnix_recs.gateway import charts, operator_figures
from omnix_recs.gateway.routes import omnix_services
from omnix_recs.gateway.transcode import HTTP_STATUS

T = TypeVar("T")
CALL_TIMEOUT_S = 15.0
RECOMMENDATIONS_SHOWN = 8
PURCHASE_LINES_READ = 1_000  # the timeline's most recent order lines
PERFORMANCE_WEEKS = 8
# How long after it a prediction is judged on (GetPredictionAccuracy's horizon_days; 0 = all since).
HORIZONS = {0: "everything since", 7: "one week", 14: "two weeks", 28: "four weeks"}
DEFAULT_HORIZON_DAYS = 7
NAV = (
    ("overview", "Overview", "/console/"),
    ("models", "Models", "/console/models"),
    ("customers", "Customers", "/console/customers"),
    ("performance", "Performance", "/console/performance"),
    ("accuracy", "Prediction accuracy", "/console/accuracy"),
    ("experiments", "Experiments", "/console/experiments"),
    ("campaigns", "Campaigns", "/console/campaigns"),
    ("inventory", "Inventory", "/console/inventory"),
)
CAMPAIGNS_LISTED = 50
MESSAGES_SHOWN = 10
CAMPAIGN_KINDS = tuple(
    (name, name.removeprefix("CAMPAIGN_KIND_").lower().replace("_", " "))
    for name in marketing_pb2.CampaignKind.keys()
    if name != "CAMPAIGN_KIND_UNSPECIFIED"
)
FORECAST_ROWS = 20
REORDER_ROWS_SUGGESTED = 5
DEFAULT_LEAD_TIME_DAYS = 2
STRATEGIES = (
    ("STRATEGY_REPLENISH", "Replenish", "what this shopper will buy next, repeats included"),
    ("STRATEGY_BALANCED", "Balanced", "the everyday blend"),
    ("STRATEGY_DISCOVER", "Discover", "products this shopper has never bought"),
)
# Validation metrics a model version records, against the baselines of the same run.
# The primary metric: its label, the result field holding it, and how to print it.
METRIC_LABELS = {
    admin_pb2.EXPERIMENT_METRIC_UNSPECIFIED: ("Click-through rate", "click_through_rate", ".1%"),
    admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE: ("Click-through rate", "click_through_rate", ".1%"),
    admin_pb2.EXPERIMENT_METRIC_CONVERSION_RATE: ("Conversion rate", "conversion_rate", ".1%"),
    admin_pb2.EXPERIMENT_METRIC_REVENUE_PER_CUSTOMER: ("Revenue per customer", "revenue_per_customer", ".2f"),
}
VALIDATION_TASKS = ("replenish", "balanced", "discover")
VALIDATION_COLUMNS = (
    ("OMNIX (tuned)", "validation_{task}_recall@10"),
    ("OMNIX (defaults)", "validation_{task}_default_recall@10"),
    ("Top frequency", "validation_{task}_top_frequency_recall@10"),
    ("TIFU-KNN", "validation_{task}_tifu_knn_recall@10"),
)

CSRF_COOKIE = "omnix_console_csrf"
CSRF_FIELD = "csrf_token"
_CSRF_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("omnix_recs.gateway", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass
class Outcome:
    """A panel's data, or the status the server answered instead."""

    value: Any = None
    error: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Page:
    request: Request
    active: str
    title: str
    context: dict[str, Any] = field(default_factory=dict)

    def render(self, template: str) -> HTMLResponse:
        params = self.request.query_params
        token = self.request.cookies.get(CSRF_COOKIE, "")
        fresh = not _CSRF_TOKEN_RE.fullmatch(token)
        if fresh:
            token = secrets.token_urlsafe(32)
        body = _templates.get_template(template).render(
            nav=NAV,
            active=self.active,
            title=self.title,
            message=params.get("message", ""),
            level="error" if params.get("level") == "error" else "info",
            csrf_token=token,
            **self.context,
        )
        response = HTMLResponse(body)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                path="/console",
                httponly=True,
                samesite="strict",
                secure=self.request.url.scheme == "https",
            )
        return response


class Console:
    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway  # omnix_recs.gateway.app.Gateway (its channel opens at start-up)

    def stub(self, stub_class: Callable[[grpc.aio.Channel], T]) -> T:
        return stub_class(self.gateway.channel)

    async def call(self, request: Request, rpc: Callable[..., Awaitable[T]], message: Any) -> Outcome:
        metadata = [("authorization", v) for v in request.headers.getlist("authorization")]
        try:
            return Outcome(await rpc(message, timeout=CALL_TIMEOUT_S, metadata=metadata))
        except grpc.aio.AioRpcError as error:
            return Outcome(error=error.details() or error.code().name, code=error.code().name)

    # --- pages --------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        traffic = self.gateway.traffic
        minutes = traffic.minutes()
        labels = [datetime.fromtimestamp(m.start, UTC).strftime("%H:%M") for m in minutes]
        traffic_chart = charts.line_chart(
            "traffic-chart",
            "REST calls per minute, last hour",
            labels,
            [charts.Series("calls", [m.calls for m in minutes]), charts.Series("errors", [m.errors for m in minutes])],
            fmt=".0f",
        )
        rpcs = sorted(traffic.by_rpc.items(), key=lambda kv: -kv[1].calls)
        latency_chart = charts.bar_chart(
            "latency-chart",
            "Latency per RPC through the gateway, ms",
            [name.rsplit(".", 1)[-1] for name, _ in rpcs[:8]],
            [
                charts.Series("p50", [t.percentile(0.5) for _, t in rpcs[:8]]),
                charts.Series("p99", [t.percentile(0.99) for _, t in rpcs[:8]]),
            ],
        )
        url = self.gateway.config.metrics_url
        figures = await asyncio.to_thread(operator_figures.fetch, url) if url else None
        health_stub: Any = self.stub(health_pb2_grpc.HealthStub)  # typeshed's stub lacks its methods
        services = [s.full_name for s in omnix_services()]
        checks = await asyncio.gather(
            *(self.call(request, health_stub.Check, health_pb2.HealthCheckRequest(service=s)) for s in services)
        )
        health = [
            (name, health_pb2.HealthCheckResponse.ServingStatus.Name(c.value.status) if c.ok else c.code)
            for name, c in zip(services, checks)
        ]
        models = await self.call(
            request, self.stub(admin_pb2_grpc.AdminServiceStub).ListModels, admin_pb2.ListModelsRequest()
        )
        active = next((m for m in models.value.models if m.active), None) if models.ok else None
        return Page(
            request,
            "overview",
            "Overview",
            {
                "traffic": traffic,
                "rpcs": rpcs,
                "traffic_chart": traffic_chart,
                "latency_chart": latency_chart,
                "health": health,
                "models": models,
                "active_model": active,
                "figures": figures,
                "metrics_url": url,
            },
        ).render("overview.html")

    async def models(self, request: Request) -> Response:
        outcome = await self.call(
            request, self.stub(admin_pb2_grpc.AdminServiceStub).ListModels, admin_pb2.ListModelsRequest()
        )
        rows = []
        chart = None
        if outcome.ok:
            for model in outcome.value.models:
                validation = [
                    (task, [(name, model.metrics.get(key.format(task=task))) for name, key in VALIDATION_COLUMNS])
                    for task in VALIDATION_TASKS
                ]
                rows.append({"model": model, "created": _when(model.created_at), "validation": validation})
            chart_model = next((m for m in outcome.value.models if m.active), None)
            if chart_model is not None:
                chart = charts.bar_chart(
                    "validation-chart",
                    f"Validation recall@10 of {chart_model.version} against baselines",
                    [task for task in VALIDATION_TASKS],
                    [
                        charts.Series(
                            name, [chart_model.metrics.get(key.format(task=t), 0.0) for t in VALIDATION_TASKS]
                        )
                        for name, key in VALIDATION_COLUMNS
                    ],
                )
        return Page(request, "models", "Models", {"outcome": outcome, "rows": rows, "chart": chart}).render(
            "models.html"
        )

    async def activate(self, request: Request) -> Response:
        form = await _form(request)
        version = form.get("version", "")
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        outcome = await self.call(
            request,
            stub.ActivateModel,
            admin_pb2.ActivateModelRequest(version=version, force=form.get("force") == "on"),
        )
        if outcome.ok:
            return _back("/console/models", f"Version {outcome.value.version} is active.")
        return _back("/console/models", f"Could not activate {version}: {outcome.error}", error=True)

    async def rollback(self, request: Request) -> Response:
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        outcome = await self.call(request, stub.RollbackModel, admin_pb2.RollbackModelRequest())
        if outcome.ok:
            return _back("/console/models", f"Rolled back: version {outcome.value.version} is active.")
        return _back("/console/models", f"Could not roll back: {outcome.error}", error=True)

    async def customers(self, request: Request) -> Response:
        wanted = request.query_params.get("customer_id", "").strip()
        if wanted:
            return RedirectResponse(f"/console/customers/{quote(wanted, safe='')}", status_code=303)
        return Page(request, "customers", "Customers").render("customers.html")

    async def customer(self, request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        customers = self.stub(customer_pb2_grpc.CustomerServiceStub)
        recommendations = self.stub(recommendation_pb2_grpc.RecommendationServiceStub)
        insights = self.stub(insights_pb2_grpc.InsightsServiceStub)
        profile, predictions, insight, purchases, *lists = await asyncio.gather(
            self.call(
                request, customers.GetCustomerProfile, customer_pb2.GetCustomerProfileRequest(customer_id=customer_id)
            ),
            self.call(
                request,
                insights.GetConsumptionPredictions,
                insights_pb2.GetConsumptionPredictionsRequest(customer_id=customer_id, limit=10),
            ),
            self.call(request, insights.GetInsights, insights_pb2.GetInsightsRequest(customer_id=customer_id)),
            self._purchases(request, customer_id),
            *(
                self.call(
                    request,
                    recommendations.GetRecommendations,
                    recommendation_pb2.GetRecommendationsRequest(
                        customer_id=customer_id,
                        limit=RECOMMENDATIONS_SHOWN,
                        strategy=strategy,
                    ),
                )
                for strategy, _, _ in STRATEGIES
            ),
        )
        if not profile.ok and profile.code == "NOT_FOUND":
            page = Page(
                request, "customers", "Customer not found", {"customer_id": customer_id, "error": profile.error}
            )
            response = page.render("customers.html")
            response.status_code = 404
            return response
        recommended = [item.product_id for outcome in lists if outcome.ok for item in outcome.value.items]
        similar_to = request.query_params.get("similar_to", "").strip() or (recommended[0] if recommended else "")
        similar = (
            await self.call(
                request,
                recommendations.GetSimilarProducts,
                recommendation_pb2.GetSimilarProductsRequest(product_id=similar_to, limit=RECOMMENDATIONS_SHOWN),
            )
            if similar_to
            else Outcome()
        )
        product_ids = set(recommended)
        if similar.ok and similar.value is not None:
            product_ids |= {i.product_id for i in similar.value.items}
        if predictions.ok:
            product_ids |= {p.product_id for p in predictions.value.predictions}
        if similar_to:
            product_ids.add(similar_to)
        names = await self._product_names(request, product_ids)
        next_visit = _when(predictions.value.next_visit_at) if predictions.ok else None
        trips = _trips(purchases.value) if purchases.ok else []
        timeline = charts.timeline("timeline-chart", "Shopping trips and the predicted next trip", trips, next_visit)
        return Page(
            request,
            "customers",
            f"Customer {customer_id}",
            {
                "customer_id": customer_id,
                "profile": profile,
                "lists": list(zip(STRATEGIES, lists)),
                "similar": similar,
                "similar_to": similar_to,
                "insight": insight,
                "analyzed_at": _when(insight.value.analyzed_at) if insight.ok else None,
                "predictions": predictions,
                "next_visit": next_visit,
                "prediction_rows": [
                    (p, _when(p.next_purchase_at)) for p in (predictions.value.predictions if predictions.ok else [])
                ],
                "purchases": purchases,
                "trips": trips[-12:][::-1],
                "trip_count": len(trips),
                "timeline": timeline,
                "names": names,
                "recommended": sorted(set(recommended)),
            },
        ).render("customer.html")

    async def analyze(self, request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        stub = self.stub(insights_pb2_grpc.InsightsServiceStub)
        outcome = await self.call(
            request, stub.AnalyzeCustomer, insights_pb2.AnalyzeCustomerRequest(customer_id=customer_id)
        )
        target = f"/console/customers/{quote(customer_id, safe='')}"
        if outcome.ok:
            return _back(target, f"Analysed {customer_id} ({outcome.value.source}).")
        return _back(target, f"Could not analyse {customer_id}: {outcome.error}", error=True)

    async def performance(self, request: Request) -> Response:
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        now = datetime.now(UTC)
        weeks = [now - timedelta(weeks=PERFORMANCE_WEEKS - i) for i in range(PERFORMANCE_WEEKS + 1)]
        periods = [admin_pb2.ReportPeriod(start_time=_ts(a), end_time=_ts(b)) for a, b in zip(weeks, weeks[1:])]
        weekly = await asyncio.gather(
            *(
                self.call(
                    request, stub.GetRecommendationPerformance, admin_pb2.GetRecommendationPerformanceRequest(period=p)
                )
                for p in periods
            )
        )
        revenue = await asyncio.gather(
            *(
                self.call(request, stub.GetRecommendationRoi, admin_pb2.GetRecommendationRoiRequest(period=p))
                for p in periods
            )
        )
        # The last 30 days as a whole (the server's default period): per strategy and model version.
        impact, whole, roi = await asyncio.gather(
            self.call(request, stub.GetRecommendationImpact, admin_pb2.GetRecommendationImpactRequest()),
            self.call(request, stub.GetRecommendationPerformance, admin_pb2.GetRecommendationPerformanceRequest()),
            self.call(request, stub.GetRecommendationRoi, admin_pb2.GetRecommendationRoiRequest()),
        )
        failed = next((o for o in [*weekly, *revenue] if not o.ok), None)
        labels = [f"{w:%m-%d}" for w in weeks[:-1]]
        context: dict[str, Any] = {
            "failure": failed,
            "impact": impact,
            "whole": whole,
            "roi": roi,
            "labels": labels,
            "rows": [],
            "strategy_chart": None,
        }
        if whole.ok and whole.value.slices:
            slices = list(whole.value.slices)[:8]
            names = [f"{s.strategy or 'all'} {s.model_version}".strip() for s in slices]
            context["strategy_chart"] = charts.bar_chart(
                "strategy-chart",
                "Click-through and conversion per strategy and model version, last 30 days",
                names,
                [
                    charts.Series("click-through", [s.click_through_rate for s in slices]),
                    charts.Series("conversion", [s.conversion_rate for s in slices]),
                    charts.Series("dismissals", [s.dismissal_rate for s in slices]),
                ],
                fmt=".1%",
            )
        if failed is None:
            context["rows"] = [(label, w.value, r.value) for label, w, r in zip(labels, weekly, revenue)]
            context["rate_chart"] = charts.line_chart(
                "rates-chart",
                "Click-through and conversion per week",
                labels,
                [
                    charts.Series("click-through", [w.value.click_through_rate for w in weekly]),
                    charts.Series("conversion", [w.value.conversion_rate for w in weekly]),
                ],
            )
            context["volume_chart"] = charts.bar_chart(
                "impressions-chart",
                "Impressions per week",
                labels,
                [charts.Series("impressions", [float(w.value.impressions) for w in weekly])],
                fmt=".0f",
            )
            context["revenue_chart"] = charts.bar_chart(
                "revenue-chart",
                "Revenue attributed to recommendations per week",
                labels,
                [charts.Series("attributed revenue", [r.value.attributed_revenue for r in revenue])],
                fmt=".2f",
            )
        return Page(request, "performance", "Recommendation performance", context).render("performance.html")

    async def accuracy(self, request: Request) -> Response:
        stub = self.stub(insights_pb2_grpc.InsightsServiceStub)
        wanted = request.query_params.get("horizon_days", str(DEFAULT_HORIZON_DAYS))
        horizon = int(wanted) if wanted.isdigit() and int(wanted) in HORIZONS else DEFAULT_HORIZON_DAYS
        outcome = await self.call(
            request,
            stub.GetPredictionAccuracy,
            insights_pb2.GetPredictionAccuracyRequest(bucket=insights_pb2.ACCURACY_BUCKET_WEEK, horizon_days=horizon),
        )
        chart = None
        buckets = []
        if outcome.ok:
            buckets = [(f"{_when(b.start):%m-%d}", b.accuracy) for b in outcome.value.buckets]
            chart = charts.line_chart(
                "accuracy-chart",
                "Mean absolute error of predictions per week, days",
                [label for label, _ in buckets] or ["-"],
                [
                    charts.Series("next trip", [_measured(a, "next_visit_mae_days") for _, a in buckets] or [0.0]),
                    charts.Series(
                        "next purchase", [_measured(a, "next_purchase_mae_days") for _, a in buckets] or [0.0]
                    ),
                ],
            )
        drift = outcome.value.drift if outcome.ok else None
        return Page(
            request,
            "accuracy",
            "Prediction accuracy",
            {
                "outcome": outcome,
                "buckets": buckets,
                "chart": chart,
                "drift": drift,
                "latest_bucket": _when(drift.latest_bucket) if drift is not None else None,
                "horizon": horizon,
                "horizons": HORIZONS,
                "scored_until": _when(outcome.value.scored_until) if outcome.ok else None,
            },
        ).render("accuracy.html")

    async def experiments(self, request: Request) -> Response:
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        outcome = await self.call(request, stub.ListExperiments, admin_pb2.ListExperimentsRequest())
        rows = []
        if outcome.ok:
            for experiment in sorted(outcome.value.experiments, key=lambda e: (not e.running, -e.created_at.seconds)):
                rows.append(
                    {
                        "experiment": experiment,
                        "created": _when(experiment.created_at),
                        "stopped": _when(experiment.stopped_at),
                        "surface": _enum_label(admin_pb2.ExperimentSurface, experiment.surface, "EXPERIMENT_SURFACE_"),
                        "metric": METRIC_LABELS[experiment.primary_metric][0],
                    }
                )
        return Page(request, "experiments", "Experiments", {"outcome": outcome, "rows": rows}).render(
            "experiments.html"
        )

    async def experiment(self, request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        outcome = await self.call(
            request, stub.GetExperimentResults, admin_pb2.GetExperimentResultsRequest(experiment_id=experiment_id)
        )
        if not outcome.ok:
            # Without results the definition still shows, with its Stop button: an experiment
            # whose figures cannot be computed must still be stoppable from here.
            found = (
                await self.call(
                    request, stub.GetExperiment, admin_pb2.GetExperimentRequest(experiment_id=experiment_id)
                )
                if outcome.code != "NOT_FOUND"
                else outcome
            )
            experiment = found.value if found.ok else None
            page = Page(
                request,
                "experiments",
                f"Experiment {experiment_id}",
                {
                    "outcome": outcome,
                    "experiment_id": experiment_id,
                    "experiment": experiment,
                    "created": _when(experiment.created_at) if experiment is not None else None,
                    "stopped": _when(experiment.stopped_at) if experiment is not None else None,
                },
            )
            response = page.render("experiment.html")
            response.status_code = HTTP_STATUS.get(grpc.StatusCode[outcome.code], 500)
            return response
        results = outcome.value
        experiment = results.experiment
        # The other experiments running on its surface: every list it serves is in an arm of each.
        listed = await self.call(request, stub.ListExperiments, admin_pb2.ListExperimentsRequest())
        beside = [
            e
            for e in (listed.value.experiments if listed.ok else ())
            if e.running and e.surface == experiment.surface and e.experiment_id != experiment.experiment_id
        ]
        metric, field_name, fmt = METRIC_LABELS[experiment.primary_metric]
        plan = _planned_shares(experiment)
        total_customers = sum(a.customers for a in results.arms)
        arms = [
            {
                "result": a,
                "planned": plan.get(a.arm_id, 0.0),
                "observed": a.customers / total_customers if total_customers else 0.0,
                "primary": getattr(a, f"{field_name}_interval"),
                "compared": a.HasField("difference"),
            }
            for a in results.arms
        ]
        primary_chart = charts.interval_chart(
            "primary-chart",
            f"{metric} per arm with 95% intervals",
            [
                charts.Estimate(r["result"].arm_id, r["primary"].value, r["primary"].low, r["primary"].high)
                for r in arms
            ],
            fmt=fmt,
        )
        compared = [r["result"] for r in arms if r["compared"]]
        difference_chart = (
            charts.interval_chart(
                "difference-chart",
                f"{metric}: each arm minus the control, always-valid 95% intervals",
                [charts.Estimate(a.arm_id, a.difference.value, a.difference.low, a.difference.high) for a in compared],
                fmt=fmt,
            )
            if compared
            else None
        )
        split_chart = charts.bar_chart(
            "split-chart",
            "Share of customers per arm: planned and observed",
            [r["result"].arm_id for r in arms],
            [
                charts.Series("planned", [r["planned"] for r in arms]),
                charts.Series("observed", [r["observed"] for r in arms]),
            ],
            fmt=".0%",
        )
        return Page(
            request,
            "experiments",
            f"Experiment {experiment.experiment_id}",
            {
                "outcome": outcome,
                "experiment_id": experiment_id,
                "results": results,
                "experiment": experiment,
                "arms": arms,
                "metric": metric,
                "created": _when(experiment.created_at),
                "stopped": _when(experiment.stopped_at),
                "computed": _when(results.computed_at),
                "primary_chart": primary_chart,
                "difference_chart": difference_chart,
                "split_chart": split_chart,
                "surface": _enum_label(admin_pb2.ExperimentSurface, experiment.surface, "EXPERIMENT_SURFACE_"),
                "beside": beside if experiment.running else [],
                "beside_known": listed.ok,
                "strategy_names": {v: _enum_label(recommendation_pb2.Strategy, v, "STRATEGY_") for v in range(4)},
            },
        ).render("experiment.html")

    async def stop_experiment(self, request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        target = f"/console/experiments/{quote(experiment_id, safe='')}"
        stub = self.stub(admin_pb2_grpc.AdminServiceStub)
        outcome = await self.call(
            request, stub.StopExperiment, admin_pb2.StopExperimentRequest(experiment_id=experiment_id)
        )
        if outcome.ok:
            return _back(target, f"Experiment {experiment_id} is stopped: every customer gets the usual list again.")
        return _back(target, f"Could not stop {experiment_id}: {outcome.error}", error=True)

    async def campaigns(self, request: Request) -> Response:
        stub = self.stub(marketing_pb2_grpc.MarketingServiceStub)
        outcome = await self.call(
            request, stub.ListCampaigns, marketing_pb2.ListCampaignsRequest(limit=CAMPAIGNS_LISTED)
        )
        rows = [
            {"campaign": c, "created": _when(c.created_at), "send_at": _when(c.scheduled_at), "kind": _kind(c.kind)}
            for c in (outcome.value.campaigns if outcome.ok else [])
        ]
        return Page(
            request, "campaigns", "Campaigns", {"outcome": outcome, "rows": rows, "kinds": CAMPAIGN_KINDS}
        ).render("campaigns.html")

    async def campaign(self, request: Request) -> Response:
        campaign_id = request.path_params["campaign_id"]
        stub = self.stub(marketing_pb2_grpc.MarketingServiceStub)
        found, performance, messages = await asyncio.gather(
            self.call(request, stub.GetCampaign, marketing_pb2.GetCampaignRequest(campaign_id=campaign_id)),
            self.call(
                request,
                stub.GetCampaignPerformance,
                marketing_pb2.GetCampaignPerformanceRequest(campaign_id=campaign_id),
            ),
            self.call(
                request,
                stub.ListCampaignMessages,
                marketing_pb2.ListCampaignMessagesRequest(campaign_id=campaign_id, page_size=MESSAGES_SHOWN),
            ),
        )
        campaign = found.value if found.ok else None
        page = Page(
            request,
            "campaigns",
            f"Campaign {campaign.name if campaign is not None else campaign_id}",
            {
                "campaign_id": campaign_id,
                "found": found,
                "campaign": campaign,
                "kind": _kind(campaign.kind) if campaign is not None else "",
                "send_at": _when(campaign.scheduled_at) if campaign is not None else None,
                "performance": performance,
                "messages": messages,
                "chart": _campaign_chart(performance.value) if performance.ok else None,
            },
        )
        response = page.render("campaign.html")
        if not found.ok:
            response.status_code = HTTP_STATUS.get(grpc.StatusCode[found.code], 500)
        return response

    async def create_campaign(self, request: Request) -> Response:
        form = await _form(request)
        kind = form.get("kind", "")
        holdout = form.get("holdout_percent", "").strip()
        if kind not in marketing_pb2.CampaignKind.keys() or (holdout and not holdout.isdigit()):
            return _back("/console/campaigns", "Choose a campaign kind and a whole holdout percentage.", error=True)
        message = marketing_pb2.CreateCampaignRequest(
            name=form.get("name", "").strip(),
            kind=kind,
            offer=form.get("offer", "").strip(),
        )
        if holdout:
            message.holdout_percent = int(holdout)
        stub = self.stub(marketing_pb2_grpc.MarketingServiceStub)
        outcome = await self.call(request, stub.CreateCampaign, message)
        if not outcome.ok:
            return _back("/console/campaigns", f"Could not create the campaign: {outcome.error}", error=True)
        c = outcome.value
        return _back(
            f"/console/campaigns/{quote(c.campaign_id, safe='')}",
            f"Campaign created: {c.audience_size} messages ({c.bedrock_messages} written by Bedrock), "
            f"{c.holdout_size} customers held out.",
        )

    async def inventory(self, request: Request) -> Response:
        params = request.query_params
        store_id = params.get("store_id", "").strip()
        product_id = params.get("product_id", "").strip()
        wanted = params.get("horizon_days", "14")
        horizon = int(wanted) if wanted.isdigit() else 0
        stub = self.stub(inventory_pb2_grpc.InventoryServiceStub)
        forecast = await self.call(
            request,
            stub.GetInventoryForecast,
            inventory_pb2.GetInventoryForecastRequest(
                product_ids=[product_id] if product_id else [],
                horizon_days=horizon,
                limit=FORECAST_ROWS,
                store_id=store_id,
            ),
        )
        positions_text = params.get("positions", "")
        if not positions_text.strip() and forecast.ok:  # suggest the best sellers, from empty shelves
            positions_text = "\n".join(
                f"{f.product_id} 0 {DEFAULT_LEAD_TIME_DAYS}" for f in forecast.value.forecasts[:REORDER_ROWS_SUGGESTED]
            )
        positions, problem = _positions(positions_text)
        reorder = (
            await self.call(
                request,
                stub.GetReorderRecommendations,
                inventory_pb2.GetReorderRecommendationsRequest(positions=positions, store_id=store_id),
            )
            if positions and not problem
            else Outcome(error=problem, code="INVALID_ARGUMENT" if problem else "")
        )
        names = {f.product_id: f.name for f in forecast.value.forecasts} if forecast.ok else {}
        chart = None
        if forecast.ok and forecast.value.forecasts:
            shown = list(forecast.value.forecasts)[:8]
            chart = charts.bar_chart(
                "forecast-chart",
                f"Units expected over the next {forecast.value.horizon_days} days, with the 10–90% range",
                [f.name or f.product_id for f in shown],
                [
                    charts.Series("low (10%)", [f.low_units for f in shown]),
                    charts.Series("expected", [f.expected_units for f in shown]),
                    charts.Series("high (90%)", [f.high_units for f in shown]),
                ],
                fmt=".0f",
            )
        return Page(
            request,
            "inventory",
            f"Inventory{' of store ' + store_id if store_id else ''}",
            {
                "store_id": store_id,
                "product_id": product_id,
                "horizon": horizon or 14,
                "forecast": forecast,
                "chart": chart,
                "positions_text": positions_text,
                "reorder": reorder,
                "positions": {p.product_id: p for p in positions},
                "names": names,
            },
        ).render("inventory.html")

    async def stylesheet(self, _request: Request) -> Response:
        return Response(_STYLESHEET, media_type="text/css", headers={"cache-control": "max-age=3600"})

    # --- helpers ------------------------------------------------------------------------------

    async def _purchases(self, request: Request, customer_id: str) -> Outcome:
        stub = self.stub(customer_pb2_grpc.CustomerServiceStub)
        lines: list[Any] = []
        token = ""
        while len(lines) < PURCHASE_LINES_READ:
            page = await self.call(
                request,
                stub.ListPurchases,
                customer_pb2.ListPurchasesRequest(customer_id=customer_id, page_size=500, page_token=token),
            )
            if not page.ok:
                return page
            lines += page.value.purchases
            token = page.value.next_page_token
            if not token:
                break
        return Outcome(lines)

    async def _product_names(self, request: Request, product_ids: set[str]) -> dict[str, str]:
        stub = self.stub(catalog_pb2_grpc.CatalogServiceStub)
        ordered = sorted(product_ids)
        found = await asyncio.gather(
            *(self.call(request, stub.GetProduct, catalog_pb2.GetProductRequest(product_id=p)) for p in ordered)
        )
        return {p: (f.value.name if f.ok else p) for p, f in zip(ordered, found)}


def _kind(kind: int) -> str:
    return _enum_label(marketing_pb2.CampaignKind, kind, "CAMPAIGN_KIND_")


def _campaign_chart(p: Any) -> str:
    return charts.bar_chart(
        "campaign-chart",
        f"Recipients against the holdout, within {p.attribution_days} days of the send",
        ["opened", "clicked", "bought"],
        [
            charts.Series("recipients", [p.open_rate, p.click_rate, p.conversion_rate]),
            charts.Series("holdout (sent nothing)", [0.0, 0.0, p.holdout_conversion_rate]),
        ],
        fmt=".1%",
    )


def _positions(text: str) -> tuple[list[Any], str]:
    """Stock positions from lines "product_id on_hand [lead_time_days [on_order]]", or why not."""
    positions = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        try:
            on_hand = float(words[1]) if len(words) > 1 else 0.0
            lead = int(words[2]) if len(words) > 2 else DEFAULT_LEAD_TIME_DAYS
            on_order = float(words[3]) if len(words) > 3 else 0.0
        except ValueError:
            return [], f"line {number}: expected a product id, units on hand, lead time days and units on order"
        if len(words) > 4:
            return [], f"line {number}: at most four values (product id, on hand, lead time days, on order)"
        positions.append(
            inventory_pb2.StockPosition(product_id=words[0], on_hand=on_hand, on_order=on_order, lead_time_days=lead)
        )
    return positions, ""


def _measured(message: Any, name: str) -> float:
    """An optional figure, NaN (a gap in a chart) when the server left it unset."""
    return float(getattr(message, name)) if message.HasField(name) else math.nan


def _enum_label(enum: Any, value: int, prefix: str) -> str:
    """An enum value as words (EXPERIMENT_SURFACE_PERSONALIZED -> "personalized"), else its number."""
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower().replace("_", " ")
    except ValueError:
        return str(value)


def _planned_shares(experiment: Any) -> dict[str, float]:
    """The split the experiment planned: the holdout first, the arms share the rest."""
    holdout = experiment.holdout_percent / 100
    shares = {arm.arm_id: (1 - holdout) * arm.traffic_percent / 100 for arm in experiment.arms}
    if experiment.holdout_percent:
        shares[HOLDOUT_ARM] = holdout
    return shares


def _when(timestamp: timestamp_pb2.Timestamp) -> datetime | None:
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return None
    return timestamp.ToDatetime(tzinfo=UTC)


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def _trips(lines: list[Any]) -> list[charts.Trip]:
    by_order: dict[str, list[Any]] = {}
    for line in lines:
        by_order.setdefault(line.order_id, []).append(line)
    trips = [
        charts.Trip(
            at=min(line.purchased_at.ToDatetime(tzinfo=UTC) for line in order),
            lines=len(order),
            spend=sum(line.quantity * line.unit_price for line in order),
        )
        for order in by_order.values()
    ]
    return sorted(trips, key=lambda t: t.at)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the console's forms post nothing else)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def forgery_refusal(request: Request) -> str:
    """Why this POST may not be the console's own form (empty: it is)."""
    own = _own_origin(request)
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None and origin.lower() != own:
        return f"Refused: the form was sent from another site ({origin[:100]}), not from this console."
    if origin is None and referer and _origin_of(referer) != own:
        return f"Refused: the form was sent from another site ({_origin_of(referer)[:100]}), not from this console."
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = (await _form(request)).get(CSRF_FIELD, "")
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return "Refused: the form's security token is missing or stale. Reload the page and try again."
    return ""


def _guarded(action: Callable[[Request], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """`action` runs only for the console's own forms; anything else is a 403 page."""

    async def guarded(request: Request) -> Response:
        reason = await forgery_refusal(request)
        if not reason:
            return await action(request)
        response = Page(request, "overview", "Request refused", {"reason": reason}).render("refused.html")
        response.status_code = 403
        return response

    return guarded


def _back(path: str, message: str, *, error: bool = False) -> RedirectResponse:
    query = {"message": message, **({"level": "error"} if error else {})}
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


_STYLESHEET = resources.files("omnix_recs.gateway").joinpath("static/console.css").read_bytes()


def console_app(gateway: Any) -> Starlette:
    console = Console(gateway)
    return Starlette(
        routes=[
            Route("/", console.overview),
            Route("/models", console.models),
            Route("/models/activate", _guarded(console.activate), methods=["POST"]),
            Route("/models/rollback", _guarded(console.rollback), methods=["POST"]),
            Route("/customers", console.customers),
            Route("/customers/{customer_id}", console.customer),
            Route("/customers/{customer_id}/analyze", _guarded(console.analyze), methods=["POST"]),
            Route("/performance", console.performance),
            Route("/accuracy", console.accuracy),
            Route("/experiments", console.experiments),
            Route("/experiments/{experiment_id}", console.experiment),
            Route("/experiments/{experiment_id}/stop", _guarded(console.stop_experiment), methods=["POST"]),
            Route("/campaigns", console.campaigns),
            Route("/campaigns/create", _guarded(console.create_campaign), methods=["POST"]),
            Route("/campaigns/{campaign_id}", console.campaign),
            Route("/inventory", console.inventory),
            Route("/static/console.css", console.stylesheet),
        ]
    )
