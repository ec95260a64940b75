"""Admin work over real gRPC: one at a time per server process, and retraining prunes old versions.

A RetrainModel or BatchAnalyze that arrives while another runs in the same process is refused
at once with RESOURCE_EXHAUSTED and a message saying why; it is not queued (a burst of calls
must not line up hours of builds). Once the first finishes, the next call runs normally. Each
RetrainModel keeps the newest `model_keep` versions (and those a rollback or experiment needs).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from test_admin import seed

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc, insights_pb2_grpc
from omnix_recs._proto.omnix.v1 import insights_pb2 as insights_pb
from omnix_recs.api import admin as admin_api
from omnix_recs.config import Settings
from omnix_recs.insights.analyst import InsightsService

WAIT_S = 20.0


@pytest.fixture
def server(running_server: Any, tmp_path: Any) -> Any:
    return running_server(settings=Settings(model_dir=str(tmp_path / "models"), model_keep=2), prepare=seed)


class Gate:
    """Holds the first call inside the server until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.opened.wait(WAIT_S)


def test_a_second_retrain_is_refused_while_one_runs(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    admin: admin_pb2_grpc.AdminServiceStub = server.stub(admin_pb2_grpc.AdminServiceStub)
    gate = Gate()
    real_train = admin_api.train_model

    def held_train(*args: Any, **kwargs: Any) -> Any:
        gate.hold()
        return real_train(*args, **kwargs)

    monkeypatch.setattr(admin_api, "train_model", held_train)
    first = admin.RetrainModel.future(admin_pb2.RetrainModelRequest(), timeout=WAIT_S * 2)
    try:
        assert gate.entered.wait(WAIT_S)
        with pytest.raises(grpc.RpcError) as refused:
            admin.RetrainModel(admin_pb2.RetrainModelRequest(), timeout=WAIT_S)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "already being trained" in (refused.value.details() or "")
    finally:
        gate.opened.set()
    trained = first.result().model
    assert trained.active
    assert [m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models] == [trained.version]
    # Free again: the next call trains (the gate is open, so it passes straight through).
    assert admin.RetrainModel(admin_pb2.RetrainModelRequest(), timeout=WAIT_S * 2).model.version != trained.version


def test_a_second_batch_analysis_is_refused_while_one_runs(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    insights: insights_pb2_grpc.InsightsServiceStub = server.stub(insights_pb2_grpc.InsightsServiceStub)
    gate = Gate()
    real_batch: Callable[..., AsyncIterator[Any]] = InsightsService.batch_analyze

    async def held_batch(self: InsightsService, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await asyncio.to_thread(gate.hold)
        async for progress in real_batch(self, *args, **kwargs):
            yield progress

    monkeypatch.setattr(InsightsService, "batch_analyze", held_batch)
    first = insights.BatchAnalyze(insights_pb.BatchAnalyzeRequest(), timeout=WAIT_S * 2)
    collected: list[insights_pb.BatchAnalyzeProgress] = []
    reader = threading.Thread(target=lambda: collected.extend(first))
    reader.start()
    try:
        assert gate.entered.wait(WAIT_S)
        with pytest.raises(grpc.RpcError) as refused:
            list(insights.BatchAnalyze(insights_pb.BatchAnalyzeRequest(), timeout=WAIT_S))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "already running" in (refused.value.details() or "")
    finally:
        gate.opened.set()
        reader.join(WAIT_S * 2)
    assert collected and collected[-1].finished
    again = list(insights.BatchAnalyze(insights_pb.BatchAnalyzeRequest(), timeout=WAIT_S * 2))
    assert again[-1].finished


def test_repeated_retraining_keeps_the_newest_versions_and_the_rollback_target(server: Any, tmp_path: Any) -> None:
    admin: admin_pb2_grpc.AdminServiceStub = server.stub(admin_pb2_grpc.AdminServiceStub)
    trained = [admin.RetrainModel(admin_pb2.RetrainModelRequest(), timeout=WAIT_S).model.version for _ in range(5)]
    listed = admin.ListModels(admin_pb2.ListModelsRequest()).models
    assert [m.version for m in listed] == trained[::-1][:2]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(trained[-2:])
    assert admin.RollbackModel(admin_pb2.RollbackModelRequest()).version == trained[-2]
