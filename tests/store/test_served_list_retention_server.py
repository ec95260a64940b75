"""End to end: `omnix serve` (as `serve()` runs in its own process) prunes served lists past
`OMNIX_SERVED_LIST_RETENTION_DAYS` at start-up, and a report reaching past the retention is
refused over gRPC with FAILED_PRECONDITION naming the setting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.domain.models import Feedback, FeedbackEvent, RecommendedItem, ServedRecommendation
from omnix_recs.store.sqlite import SqliteStore

NOW = datetime.now(UTC)
WAIT_S = 30.0


def _served(recommendation_id: str, days_ago: float) -> ServedRecommendation:
    when = NOW - timedelta(days=days_ago)
    return ServedRecommendation(recommendation_id, "ann", when, "balanced", "v1", (RecommendedItem("p1", 1.0, 0.5),))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stored_ids(path: Path) -> set[str]:
    store = SqliteStore(path)  # without retention: what the file still holds
    try:
        return {s.recommendation_id for s in store.list_recommendations("ann", limit=100)}
    finally:
        store.close()


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(moment)
    return t


def test_the_server_prunes_old_served_lists_and_refuses_reports_past_them(tmp_path: Path) -> None:
    db = tmp_path / "omnix.db"
    seeded = SqliteStore(db)
    seeded.save_recommendations([_served(f"old{n}", 61 + n) for n in range(5)] + [_served("fresh", 1)])
    seeded.add_feedback(Feedback("old0", "ann", "p1", FeedbackEvent.CLICKED, NOW - timedelta(days=61)))
    seeded.close()

    port = _free_port()
    env = {
        **os.environ,
        "OMNIX_STORE": f"sqlite:///{db}",
        "OMNIX_GRPC_HOST": "127.0.0.1",
        "OMNIX_GRPC_PORT": str(port),
        "OMNIX_LOG_LEVEL": "INFO",
        "OMNIX_SERVED_LIST_RETENTION_DAYS": "60",
    }
    code = "from omnix_recs.config import Settings; from omnix_recs.server import serve; serve(Settings.from_env())"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while _stored_ids(db) != {"fresh"}:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.communicate()[1]}")
            if time.monotonic() > deadline:
                pytest.fail(f"old lists still stored after {WAIT_S:.0f} s: {sorted(_stored_ids(db))}")
            time.sleep(0.2)

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=WAIT_S)
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            recent = admin_pb2.ReportPeriod(start_time=_ts(NOW - timedelta(days=20)))
            performance = admin.GetRecommendationPerformance(
                admin_pb2.GetRecommendationPerformanceRequest(period=recent), timeout=WAIT_S
            )
            assert performance.lists_served == 1
            past = admin_pb2.ReportPeriod(start_time=_ts(NOW - timedelta(days=80)))
            with pytest.raises(grpc.RpcError) as refused:
                admin.GetRecommendationRoi(admin_pb2.GetRecommendationRoiRequest(period=past), timeout=WAIT_S)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "OMNIX_SERVED_LIST_RETENTION_DAYS" in (refused.value.details() or "")

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "pruned 5 served lists older than 60 days" in stderr
