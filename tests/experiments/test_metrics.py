"""`omnix serve --metrics-port`: Prometheus text at /metrics, summed over the worker processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.metrics import SYNC_EVERY_S

START_TIMEOUT_S = 30.0
CALLS = 40
LISTED = "/omnix.v1.AdminService/ListExperiments"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, int]]:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "OMNIX_LOG_LEVEL": "WARNING", "OMNIX_MODEL_DIR": str(tmp_path / "models")}
    env.pop("OMNIX_REDIS_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "omnix_recs.cli", "serve", "--port", str(port)]
    command += ["--workers", str(request.param), "--metrics-port", str(metrics_port)]
    command += ["--store", f"sqlite:///{tmp_path / 'omnix.db'}"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, "omnix serve exited"
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    admin_pb2_grpc.AdminServiceStub(channel).ListExperiments(
                        admin_pb2.ListExperimentsRequest(), timeout=1
                    )
                # Started once the start-up call above shows in the figures (written every second).
                if sample(scrape(metrics_port), "omnix_grpc_requests_total", method=LISTED, code="OK"):
                    break
                time.sleep(0.2)
            except (grpc.RpcError, OSError):
                assert time.monotonic() < deadline, "omnix serve did not start"
                time.sleep(0.2)
        yield port, metrics_port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_calls_are_counted_by_method_and_code_across_processes(served: tuple[int, int]) -> None:
    port, metrics_port = served
    # The start-up calls, once every process has written them (tallies are written every second).
    listed = -1.0
    while (now := sample(scrape(metrics_port), "omnix_grpc_requests_total", method=LISTED, code="OK")) != listed:
        listed = now
        time.sleep(SYNC_EVERY_S * 1.5)
    # New connections each time, so that with two workers both get calls (SO_REUSEPORT spreads them).
    for n in range(CALLS):
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            admin.ListExperiments(admin_pb2.ListExperimentsRequest(), timeout=5)
            if n % 4 == 0:
                with pytest.raises(grpc.RpcError):
                    admin.GetExperiment(admin_pb2.GetExperimentRequest(), timeout=5)
    method = "/omnix.v1.AdminService/ListExperiments"
    # Each process writes its tallies every second: wait for them.
    deadline = time.monotonic() + 10
    while True:
        text = scrape(metrics_port)
        if sample(text, "omnix_grpc_request_duration_seconds_count", method=method) >= listed + CALLS:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert sample(text, "omnix_grpc_requests_total", method=method, code="OK") == listed + CALLS
    assert (
        sample(
            text, "omnix_grpc_requests_total", method="/omnix.v1.AdminService/GetExperiment", code="INVALID_ARGUMENT"
        )
        == CALLS // 4
    )
    assert sample(text, "omnix_grpc_request_duration_seconds_count", method=method) == listed + CALLS
    assert sample(text, "omnix_grpc_request_duration_seconds_bucket", method=method, le="+Inf") == listed + CALLS
    buckets = [
        sample(text, "omnix_grpc_request_duration_seconds_bucket", method=method, le=le)
        for le in ("0.001", "0.01", "0.1", "1.0", "+Inf")
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert 0 < sample(text, "omnix_grpc_request_duration_seconds_sum", method=method) < CALLS
    # Calls in flight are sampled every second: none once the calls have ended.
    deadline = time.monotonic() + 5
    while sample(scrape(metrics_port), "omnix_grpc_in_flight_requests") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
