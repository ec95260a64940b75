"""`omnix serve --http-port` (two workers sharing both ports) and `omnix gateway --target` as
processes, the way an operator starts them: both answer REST and stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def omnix(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnix_recs.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_http(url: str, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}: {process.communicate()[0]}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    return output


def test_serve_with_http_port_and_a_standalone_gateway(tmp_path: Path) -> None:
    grpc_port, http_port, gateway_port = free_port(), free_port(), free_port()
    env = {**os.environ, "OMNIX_STORE": f"sqlite:///{tmp_path / 'omnix.db'}", "OMNIX_MODEL_DIR": str(tmp_path)}
    server = omnix("serve", "--port", str(grpc_port), "--http-port", str(http_port), "--workers", "2", env=env)
    gateway = None
    try:
        docs = wait_for_http(f"http://127.0.0.1:{http_port}/docs", server)
        assert docs.status_code == 200
        for _ in range(4):  # either worker answers, each with its own gateway
            listed = httpx.get(f"http://127.0.0.1:{http_port}/v1/products", timeout=5)
            assert listed.status_code == 200 and listed.json() == {"products": [], "nextPageToken": ""}

        gateway = omnix("gateway", "--target", f"127.0.0.1:{grpc_port}", "--port", str(gateway_port), env=env)
        missing = wait_for_http(f"http://127.0.0.1:{gateway_port}/v1/customers/nobody/profile", gateway)
        assert missing.status_code == 404 and missing.json()["code"] == 5
        assert "REST gateway for" in stop(gateway)
        gateway = None
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.communicate()
        output = stop(server)
    assert output.count("REST gateway and console on") == 2
