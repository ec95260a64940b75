"""AdminService: the model lifecycle (retrain, list, activate, roll back).

Activating or rolling back also reloads the model in this process at once, so the caller's next
request is served by the version it chose; other processes follow on their own. Activation
(and RetrainModel's) refuses a version whose validation falls short unless the request forces
it (engine/registry.py). The reports declared in the contract are not overridden and answer
UNIMPLEMENTED through the interceptor.
"""

from __future__ import annotations

import asyncio

import grpc

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.api import mapping
from omnix_recs.api.validation import Validator
from omnix_recs.app import AppContext
from omnix_recs.engine import registry
from omnix_recs.engine.blends import Blend
from omnix_recs.engine.train import train_model
from omnix_recs.store.base import ModelRecord

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


def register(server: grpc.aio.Server, app: AppContext) -> list[str]:
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(app), server)
    return [SERVICE_NAME]


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
        # One build at a time per process: a second request waits rather than doubling the
        # memory a build needs.
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
        async with self._training:
            record = await asyncio.to_thread(
                train_model,
                self.app.store,
                self.app.settings,
                activate=not request.skip_activation,
                force=request.force,
            )
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
