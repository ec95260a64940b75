"""Admin work one at a time across processes, over real gRPC: RetrainModel and BatchAnalyze are
refused while another process sharing the store (a sibling worker, another host) holds their
lease, run once it is released, and run again once a crashed holder's lease has lapsed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_support import FuzzServer, trained_shop

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc, insights_pb2, insights_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.leases import BATCH_ANALYZE_LEASE, RETRAIN_LEASE

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
from scale_support import free_port  # noqa: E402

OTHER = "other-host:4242:cafe"  # the holder a sibling process would be


def retrain(server: Any) -> None:
    # Not activated: whether a tiny shop's new version passes the quality gate is not what these
    # tests are about, only whether it was allowed to train.
    request = admin_pb2.RetrainModelRequest(skip_activation=True)
    server.stub(admin_pb2_grpc.AdminServiceStub).RetrainModel(request, timeout=30)


def batch_analyze(server: Any) -> None:
    stub = server.stub(insights_pb2_grpc.InsightsServiceStub)
    list(stub.BatchAnalyze(insights_pb2.BatchAnalyzeRequest(), timeout=30))


WORK: list[tuple[str, Callable[[Any], None], str]] = [
    (RETRAIN_LEASE, retrain, "a model is already being trained by another server process"),
    (BATCH_ANALYZE_LEASE, batch_analyze, "a batch analysis is already running on another server process"),
]
IDS = ["retrain", "batch-analyze"]


def outcome(work: Callable[[Any], None], server: Any) -> tuple[grpc.StatusCode, str]:
    try:
        work(server)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture
def server(running_server: Any, tmp_path: Any) -> Any:
    return running_server(settings=Settings(model_dir=str(tmp_path / "models")))


@pytest.mark.parametrize(("lease", "work", "refusal"), WORK, ids=IDS)
def test_refused_while_another_process_holds_the_lease(server, lease, work, refusal):
    now = datetime.now(UTC)
    assert server.store.acquire_lease(lease, OTHER, now, now + timedelta(seconds=60))

    code, details = outcome(work, server)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith(refusal)
    assert not server.store.acquire_lease(lease, "third", now, now + timedelta(seconds=60))  # still OTHER's

    server.store.release_lease(lease, OTHER)
    code, details = outcome(work, server)  # runs (an empty shop may refuse it for other reasons)
    assert code is not grpc.StatusCode.RESOURCE_EXHAUSTED, details
    now = datetime.now(UTC)
    assert server.store.acquire_lease(lease, "third", now, now + timedelta(seconds=60))  # released after


@pytest.mark.parametrize(("lease", "work", "refusal"), WORK, ids=IDS)
def test_a_crashed_holders_lease_lapses(server, lease, work, refusal):
    now = datetime.now(UTC)
    assert server.store.acquire_lease(lease, OTHER, now, now + timedelta(seconds=0.5))  # then never renewed
    time.sleep(0.6)
    code, details = outcome(work, server)
    assert code is not grpc.StatusCode.RESOURCE_EXHAUSTED, details


HOLD_AND_CRASH = """
import os, sys
from datetime import UTC, datetime, timedelta
from omnix_recs.store import open_store
store = open_store(sys.argv[1])
now = datetime.now(UTC)
until = now + timedelta(seconds=float(sys.argv[3]))
assert store.acquire_lease(sys.argv[2], "crashed-host:1:dead", now, until)
print(until.isoformat(), flush=True)
os._exit(0)  # no release, no renewal: as if the host died mid-build
"""


def test_two_server_processes_and_a_crashed_host_share_one_lease(tmp_path):
    """Two `omnix serve` processes on one store: while a host that died holds the retrain lease,
    both refuse RetrainModel; once it lapses, either trains."""
    store_url, model_dir, _, _ = trained_shop(tmp_path)
    env = {"OMNIX_STORE": store_url, "OMNIX_MODEL_DIR": str(model_dir), "OMNIX_LOG_LEVEL": "WARNING"}
    servers = [FuzzServer(env, free_port(), tmp_path / f"server-{n}.log") for n in range(2)]
    try:
        held = subprocess.run(
            [sys.executable, "-c", HOLD_AND_CRASH, store_url, RETRAIN_LEASE, "5"],
            check=True,
            capture_output=True,
            text=True,
        )
        lapses_at = datetime.fromisoformat(held.stdout.strip())
        for server in servers:
            code, details = outcome(retrain, server)
            assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert details.startswith(WORK[0][2])
        time.sleep(max(0.0, (lapses_at - datetime.now(UTC)).total_seconds() + 0.1))
        code, details = outcome(retrain, servers[1])
        assert code is grpc.StatusCode.OK, details
    finally:
        for server in servers:
            server.stop()
