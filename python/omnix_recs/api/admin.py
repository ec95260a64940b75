"""AdminService: the model lifecycle (retrain, list, activate, roll back) and A/B experiments.

Activating or rolling back also reloads the model in this process at once, so the caller's next
request is served by the version it chose; other processes follow on their own. Activation
(and RetrainModel's) refuses a version whose validation falls short unless the request forces
it (engine/registry.py). Experiments are defined, judged and stopped by omnix_recs.experiments;
creating or stopping one also refreshes this process's view at once. The reports declared in the
contract are computed by omnix_recs.experiments.reports over the requested period.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs._proto.omnix.v1 import recommendation_pb2 as rec_pb
from omnix_recs.api import mapping
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.engine import registry
from omnix_recs.engine.blends import Blend
from omnix_recs.engine.train import train_model
from omnix_recs.errors import InvalidArgumentError, ResourceExhaustedError
from omnix_recs.experiments import registry as experiments
from omnix_recs.experiments import reports
from omnix_recs.experiments.results import Estimate, ExperimentResults, experiment_results
from omnix_recs.leases import RETRAIN_LEASE, held_lease
from omnix_recs.store.base import ExperimentArm, ExperimentRecord, ModelRecord

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


MAX_DESCRIPTION = 1000
_SURFACES: dict[int, str] = {
    admin_pb2.EXPERIMENT_SURFACE_UNSPECIFIED: "recommendations",
    admin_pb2.EXPERIMENT_SURFACE_RECOMMENDATIONS: "recommendations",
    admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED: "personalized",
    admin_pb2.EXPERIMENT_SURFACE_SIMILAR: "similar",
    admin_pb2.EXPERIMENT_SURFACE_FREQUENTLY_BOUGHT_TOGETHER: "frequently_bought_together",
    admin_pb2.EXPERIMENT_SURFACE_TRENDING: "trending",
    admin_pb2.EXPERIMENT_SURFACE_SEASONAL: "seasonal",
}
_SURFACE_TO_PROTO = {
    "recommendations": admin_pb2.EXPERIMENT_SURFACE_RECOMMENDATIONS,
    "personalized": admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED,
    "similar": admin_pb2.EXPERIMENT_SURFACE_SIMILAR,
    "frequently_bought_together": admin_pb2.EXPERIMENT_SURFACE_FREQUENTLY_BOUGHT_TOGETHER,
    "trending": admin_pb2.EXPERIMENT_SURFACE_TRENDING,
    "seasonal": admin_pb2.EXPERIMENT_SURFACE_SEASONAL,
}
_METRICS: dict[int, str] = {
    admin_pb2.EXPERIMENT_METRIC_UNSPECIFIED: "click_through_rate",
    admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE: "click_through_rate",
    admin_pb2.EXPERIMENT_METRIC_CONVERSION_RATE: "conversion_rate",
    admin_pb2.EXPERIMENT_METRIC_REVENUE_PER_CUSTOMER: "revenue_per_customer",
}
_METRIC_TO_PROTO = {
    "click_through_rate": admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE,
    "conversion_rate": admin_pb2.EXPERIMENT_METRIC_CONVERSION_RATE,
    "revenue_per_customer": admin_pb2.EXPERIMENT_METRIC_REVENUE_PER_CUSTOMER,
}
_ARM_STRATEGIES: dict[int, str] = {
    rec_pb.STRATEGY_UNSPECIFIED: "",
    rec_pb.STRATEGY_BALANCED: "balanced",
    rec_pb.STRATEGY_REPLENISH: "replenish",
    rec_pb.STRATEGY_DISCOVER: "discover",
}
_ARM_STRATEGY_TO_PROTO = {
    "": rec_pb.STRATEGY_UNSPECIFIED,
    "balanced": rec_pb.STRATEGY_BALANCED,
    "replenish": rec_pb.STRATEGY_REPLENISH,
    "discover": rec_pb.STRATEGY_DISCOVER,
}


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(app), server)
    return [SERVICE_NAME]


def experiment_to_proto(e: ExperimentRecord) -> admin_pb2.Experiment:
    return admin_pb2.Experiment(
        experiment_id=e.experiment_id,
        description=e.description,
        surface=_SURFACE_TO_PROTO[e.surface],
        arms=[
            admin_pb2.ExperimentArm(
                arm_id=a.arm_id,
                traffic_percent=a.traffic_percent,
                model_version=a.model_version,
                strategy=_ARM_STRATEGY_TO_PROTO[a.strategy],
            )
            for a in e.arms
        ],
        primary_metric=_METRIC_TO_PROTO[e.primary_metric],
        holdout_percent=e.holdout_percent,
        attribution_window_days=e.attribution_window_days,
        created_at=mapping.timestamp_to_proto(e.created_at),
        stopped_at=None if e.stopped_at is None else mapping.timestamp_to_proto(e.stopped_at),
        running=e.running,
        independent=e.independent,
    )


def _choice(field: str, value: int, table: dict[int, str], names: list[str]) -> str:
    """An enum value where unspecified (0) means the default."""
    if value not in table:
        raise InvalidArgumentError(field, f"unknown value {value} (one of {', '.join(names)})")
    return table[value]


def _interval(estimate: Estimate) -> admin_pb2.Interval:
    return admin_pb2.Interval(value=estimate.value, low=estimate.low, high=estimate.high)


def results_to_proto(r: ExperimentResults) -> admin_pb2.GetExperimentResultsResponse:
    compared = {a.arm_id for a in r.experiment.arms[1:]}
    return admin_pb2.GetExperimentResultsResponse(
        experiment=experiment_to_proto(r.experiment),
        arms=[
            admin_pb2.ExperimentArmResult(
                arm_id=a.arm_id,
                customers=a.customers,
                served_lists=a.served_lists,
                impressions=a.impressions,
                clicks=a.clicks,
                add_to_carts=a.add_to_carts,
                purchases=a.purchases,
                revenue=a.revenue,
                click_through_rate=a.click_through_rate.value,
                conversion_rate=a.conversion_rate.value,
                revenue_per_customer=a.revenue_per_customer.value,
                click_through_rate_interval=_interval(a.click_through_rate),
                conversion_rate_interval=_interval(a.conversion_rate),
                revenue_per_customer_interval=_interval(a.revenue_per_customer),
                difference=_interval(a.difference) if a.arm_id in compared else None,
                p_value=a.p_value,
            )
            for a in r.arms
        ],
        p_value=r.p_value,
        winner=r.winner,
        sample_ratio_mismatch=r.sample_ratio_mismatch,
        sample_ratio_p_value=r.sample_ratio_p_value,
        cuped_variance_reduction=r.cuped_variance_reduction,
        looks=r.looks,
        computed_at=mapping.timestamp_to_proto(r.as_of),
    )


def model_to_proto(record: ModelRecord) -> admin_pb2.ModelVersion:
    tuning, blends = registry.tuned_settings(record)
    return admin_pb2.ModelVersion(
        version=record.version,
        created_at=mapping.timestamp_to_proto(record.created_at),
        active=record.active,
        metrics=record.metrics,
        artifact_uri=record.artifact_uri,
        blends={strategy: blend_to_proto(blend) for strategy, blend in blends.items()},
        tuning=tuning,
    )


def blend_to_proto(blend: Blend) -> admin_pb2.Blend:
    return admin_pb2.Blend(
        weights={name: w for name, w in blend.weights.items() if w},
        exclude_history=blend.exclude_history,
        per_category_cap=blend.per_category_cap,
        neighbours_per_item=blend.neighbours_per_item,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.v = Validator(app.settings.limits)
        # One build at a time per process: a second request is refused at once (RESOURCE_EXHAUSTED)
        # rather than queued, so that a burst of calls cannot line up hours of builds.
        self._training = asyncio.Lock()

    async def _switched_to(self, record: ModelRecord) -> admin_pb2.ModelVersion:
        """Serve the newly active version from this process at once (others follow within seconds)."""
        if record.active:
            await asyncio.to_thread(self.app.models.reload_if_changed, force=True)
        return model_to_proto(record)

    async def RetrainModel(
        self,
        request: admin_pb2.RetrainModelRequest,
        context: grpc.aio.ServicerContext[admin_pb2.RetrainModelRequest, admin_pb2.RetrainModelResponse],
    ) -> admin_pb2.RetrainModelResponse:
        if self._training.locked():  # checked and taken with no await between: no race
            raise ResourceExhaustedError(
                "a model is already being trained by this server (RetrainModel runs one at a time); "
                "try again when it finishes"
            )
        # The lease: one build at a time across every process and host sharing the store too.
        async with (
            self._training,
            held_lease(
                self.app.store,
                RETRAIN_LEASE,
                "a model is already being trained by another server process (RetrainModel runs one at "
                "a time across the service); try again when it finishes",
            ),
        ):
            record = await asyncio.to_thread(
                train_model,
                self.app.store,
                self.app.settings,
                activate=not request.skip_activation,
                force=request.force,
            )
            await asyncio.to_thread(registry.prune_after_training, self.app.store, self.app.settings)
        return admin_pb2.RetrainModelResponse(model=await self._switched_to(record))

    async def ListModels(
        self,
        request: admin_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[admin_pb2.ListModelsRequest, admin_pb2.ListModelsResponse],
    ) -> admin_pb2.ListModelsResponse:
        records = await asyncio.to_thread(registry.list_versions, self.app.store)
        return admin_pb2.ListModelsResponse(models=[model_to_proto(r) for r in records])

    async def ActivateModel(
        self,
        request: admin_pb2.ActivateModelRequest,
        context: grpc.aio.ServicerContext[admin_pb2.ActivateModelRequest, admin_pb2.ModelVersion],
    ) -> admin_pb2.ModelVersion:
        version = self.v.require_id("version", request.version)
        record = await asyncio.to_thread(
            registry.activate, self.app.store, version, settings=self.app.settings, force=request.force
        )
        return await self._switched_to(record)

    async def RollbackModel(
        self,
        request: admin_pb2.RollbackModelRequest,
        context: grpc.aio.ServicerContext[admin_pb2.RollbackModelRequest, admin_pb2.ModelVersion],
    ) -> admin_pb2.ModelVersion:
        record = await asyncio.to_thread(registry.rollback, self.app.store, settings=self.app.settings)
        return await self._switched_to(record)

    # --- experiments ----------------------------------------------------------------------------

    async def CreateExperiment(
        self,
        request: admin_pb2.CreateExperimentRequest,
        context: grpc.aio.ServicerContext[admin_pb2.CreateExperimentRequest, admin_pb2.Experiment],
    ) -> admin_pb2.Experiment:
        experiment_id = self.v.optional_id("experiment_id", request.experiment_id)
        description = check.text("description", request.description, max_length=MAX_DESCRIPTION)
        surface = _choice("surface", request.surface, _SURFACES, admin_pb2.ExperimentSurface.keys())
        metric = _choice("primary_metric", request.primary_metric, _METRICS, admin_pb2.ExperimentMetric.keys())
        check.count("arms", request.arms, maximum=experiments.MAX_ARMS)
        arms = [
            ExperimentArm(
                arm_id=self.v.require_id(f"arms[{i}].arm_id", arm.arm_id),
                traffic_percent=arm.traffic_percent,
                model_version=self.v.optional_id(f"arms[{i}].model_version", arm.model_version),
                strategy=_choice(f"arms[{i}].strategy", arm.strategy, _ARM_STRATEGIES, rec_pb.Strategy.keys()),
            )
            for i, arm in enumerate(request.arms)
        ]
        draft = experiments.ExperimentDraft(
            experiment_id=experiment_id,
            surface=surface,
            arms=arms,
            description=description,
            primary_metric=metric,
            holdout_percent=request.holdout_percent,
            attribution_window_days=request.attribution_window_days,
            independent=request.independent,
        )
        record = await asyncio.to_thread(experiments.create_experiment, self.app.store, draft, datetime.now(UTC))
        await self._experiments_changed()
        return experiment_to_proto(record)

    async def GetExperiment(
        self,
        request: admin_pb2.GetExperimentRequest,
        context: grpc.aio.ServicerContext[admin_pb2.GetExperimentRequest, admin_pb2.Experiment],
    ) -> admin_pb2.Experiment:
        experiment_id = self.v.require_id("experiment_id", request.experiment_id)
        return experiment_to_proto(await asyncio.to_thread(self.app.store.get_experiment, experiment_id))

    async def ListExperiments(
        self,
        request: admin_pb2.ListExperimentsRequest,
        context: grpc.aio.ServicerContext[admin_pb2.ListExperimentsRequest, admin_pb2.ListExperimentsResponse],
    ) -> admin_pb2.ListExperimentsResponse:
        records = await asyncio.to_thread(self.app.store.list_experiments)
        return admin_pb2.ListExperimentsResponse(experiments=[experiment_to_proto(e) for e in records])

    async def StopExperiment(
        self,
        request: admin_pb2.StopExperimentRequest,
        context: grpc.aio.ServicerContext[admin_pb2.StopExperimentRequest, admin_pb2.Experiment],
    ) -> admin_pb2.Experiment:
        experiment_id = self.v.require_id("experiment_id", request.experiment_id)
        record = await asyncio.to_thread(self.app.store.stop_experiment, experiment_id, datetime.now(UTC))
        await self._experiments_changed()
        return experiment_to_proto(record)

    async def GetExperimentResults(
        self,
        request: admin_pb2.GetExperimentResultsRequest,
        context: grpc.aio.ServicerContext[
            admin_pb2.GetExperimentResultsRequest, admin_pb2.GetExperimentResultsResponse
        ],
    ) -> admin_pb2.GetExperimentResultsResponse:
        experiment_id = self.v.require_id("experiment_id", request.experiment_id)

        def compute() -> ExperimentResults:
            # Lists served a moment ago may still be queued for writing: count them too.
            self.app.write_served_lists()
            return experiment_results(self.app.store, self.app.store.get_experiment(experiment_id), datetime.now(UTC))

        return results_to_proto(await asyncio.to_thread(compute))

    async def _experiments_changed(self) -> None:
        for refresh in self.app.experiment_listeners:
            await asyncio.to_thread(refresh)

    # --- reports --------------------------------------------------------------------------------

    async def GetRecommendationPerformance(
        self,
        request: admin_pb2.GetRecommendationPerformanceRequest,
        context: grpc.aio.ServicerContext[
            admin_pb2.GetRecommendationPerformanceRequest, admin_pb2.GetRecommendationPerformanceResponse
        ],
    ) -> admin_pb2.GetRecommendationPerformanceResponse:
        start, end = _period(request.period)
        strategy = check.text("strategy", request.strategy, max_length=64)
        if strategy.startswith("STRATEGY_"):
            if strategy not in rec_pb.Strategy.keys():
                raise InvalidArgumentError("strategy", f"unknown strategy {strategy!r}")
            strategy = _ARM_STRATEGIES[rec_pb.Strategy.Value(strategy)] or "balanced"

        def compute() -> reports.PerformanceReport:
            self.app.write_served_lists()
            return reports.recommendation_performance(self.app.store, start, end, strategy)

        report = await asyncio.to_thread(compute)
        total = _slice_to_proto(report.total)
        return admin_pb2.GetRecommendationPerformanceResponse(
            lists_served=total.lists_served,
            impressions=total.impressions,
            click_through_rate=total.click_through_rate,
            conversion_rate=total.conversion_rate,
            total=total,
            slices=[_slice_to_proto(s) for s in report.slices],
            meets_click_through_target=report.meets_click_through_target,
            repeat_purchase_rate=report.repeat_purchase_rate,
        )

    async def GetRecommendationRoi(
        self,
        request: admin_pb2.GetRecommendationRoiRequest,
        context: grpc.aio.ServicerContext[
            admin_pb2.GetRecommendationRoiRequest, admin_pb2.GetRecommendationRoiResponse
        ],
    ) -> admin_pb2.GetRecommendationRoiResponse:
        start, end = _period(request.period)

        def compute() -> reports.RoiReport:
            self.app.write_served_lists()
            return reports.recommendation_roi(self.app.store, start, end)

        report = await asyncio.to_thread(compute)
        return admin_pb2.GetRecommendationRoiResponse(
            attributed_revenue=report.attributed_revenue,
            revenue_share=report.revenue_share,
            total_revenue=report.total_revenue,
            attributed_purchases=report.attributed_purchases,
            attribution_window_days=report.window_days,
        )

    async def GetRecommendationImpact(
        self,
        request: admin_pb2.GetRecommendationImpactRequest,
        context: grpc.aio.ServicerContext[
            admin_pb2.GetRecommendationImpactRequest, admin_pb2.GetRecommendationImpactResponse
        ],
    ) -> admin_pb2.GetRecommendationImpactResponse:
        start, end = _period(request.period)

        def compute() -> reports.ImpactReport:
            self.app.write_served_lists()
            return reports.recommendation_impact(self.app.store, start, end)

        r = await asyncio.to_thread(compute)
        return admin_pb2.GetRecommendationImpactResponse(
            average_order_value_exposed=r.average_order_value_exposed,
            average_order_value_control=r.average_order_value_control,
            basket_size_exposed=r.basket_size_exposed,
            basket_size_control=r.basket_size_control,
            customers_exposed=r.customers_exposed,
            customers_control=r.customers_control,
            order_value_uplift=r.order_value_uplift,
            basket_size_uplift=r.basket_size_uplift,
            retention_exposed=r.retention_exposed,
            retention_control=r.retention_control,
        )


def _period(msg: admin_pb2.ReportPeriod) -> tuple[datetime, datetime]:
    start = check.timestamp("period.start_time", msg, "start_time", required=False)
    end = check.timestamp("period.end_time", msg, "end_time", required=False)
    start, end = reports.period(start, end)
    if start >= end:
        raise InvalidArgumentError(
            "period", f"start_time must be before end_time, got {start.isoformat()} .. {end.isoformat()}"
        )
    return start, end


def _slice_to_proto(s: reports.PerformanceSlice) -> admin_pb2.PerformanceSlice:
    return admin_pb2.PerformanceSlice(
        strategy=s.strategy,
        model_version=s.model_version,
        lists_served=s.lists_served,
        impressions=s.impressions,
        clicks=s.clicks,
        add_to_carts=s.add_to_carts,
        dismissals=s.dismissals,
        purchases=s.purchases,
        revenue=s.revenue,
        click_through_rate=s.click_through_rate,
        conversion_rate=s.conversion_rate,
        dismissal_rate=s.dismissal_rate,
    )
