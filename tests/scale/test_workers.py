"""`omnix serve --workers N`: one port, N processes, which start and stop together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from scale_support import START_TIMEOUT_S, free_port


def workers_of(pid: int) -> list[int]:
    """The server processes `pid` spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def serve_workers(tmp_path):
    port = free_port()
    env = {**os.environ, "OMNIX_LOG_LEVEL": "WARNING", "OMNIX_MODEL_DIR": str(tmp_path / "models")}
    env.pop("OMNIX_REDIS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnix_recs.cli",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{tmp_path / 'omnix.db'}",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(workers_of(process.pid)) < 2 or not _serving(health):
            assert time.monotonic() < deadline and process.poll() is None, "omnix serve --workers 2 did not start"
            time.sleep(0.1)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stderr.close()


def _serving(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        return health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def test_sigterm_stops_every_worker_cleanly(serve_workers):
    workers = workers_of(serve_workers.pid)
    serve_workers.send_signal(signal.SIGTERM)
    assert serve_workers.wait(START_TIMEOUT_S) == 0
    assert gone(workers)


def test_a_worker_that_dies_is_replaced_while_the_server_keeps_running(serve_workers):
    """(More in tests/security/test_supervision.py: backoff, parent death, busy port.)"""
    workers = workers_of(serve_workers.pid)
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(workers_of(serve_workers.pid)) < 2 or workers[0] in workers_of(serve_workers.pid):
        assert time.monotonic() < deadline and serve_workers.poll() is None, "the dead worker was not replaced"
        time.sleep(0.05)
    serve_workers.send_signal(signal.SIGTERM)
    assert serve_workers.wait(START_TIMEOUT_S) == 0
    assert "exited unexpectedly (exit code -9); restarting it" in serve_workers.stderr.read()
