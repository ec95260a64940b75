"""Several OMNIX hosts on one machine: `omnix serve` processes on distinct loopback addresses
(127.0.0.2, 127.0.0.3, ...; Linux routes all of 127.0.0.0/8 to the loopback interface), sharing
nothing but DynamoDB (dynoxide), Redis and the model directory, as separate machines behind a
load balancer would.

`Host` is one real `omnix serve` subprocess, up once its health check says SERVING, with a
Prometheus endpoint on the same address so a test can count the calls each host answered.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 60.0  # several servers importing and loading a model at once on 2 shared cores
STOP_TIMEOUT_S = 20.0


def shared_free_port(addresses: Sequence[str]) -> int:
    """A port free on every one of `addresses` (the hosts may then all serve the same port)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")


class Host:
    """`omnix serve --host ADDRESS --port PORT --metrics-port METRICS_PORT` in a subprocess."""

    def __init__(
        self, address: str, port: int, metrics_port: int, environment: Mapping[str, str], directory: Path
    ) -> None:
        self.address = address
        self.target = f"{address}:{port}"
        self.metrics_url = f"http://{address}:{metrics_port}/metrics"
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "server.log"
        command = [sys.executable, "-m", "omnix_recs.cli", "serve", "--host", address, "--port", str(port)]
        command += ["--metrics-port", str(metrics_port)]
        with open(self.log_path, "wb") as log:
            # cwd: each host's own directory, so nothing it writes by default lands in the repository.
            self.process = subprocess.Popen(
                command, env={**os.environ, **environment}, cwd=directory, stdout=log, stderr=subprocess.STDOUT
            )
        self.channel = grpc.insecure_channel(self.target)

    def wait_until_serving(self) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"host {self.target} did not start; its log:\n{self.log()}")
            time.sleep(0.1)

    def stub(self, stub_class):  # type: ignore[no-untyped-def]
        return stub_class(self.channel)

    def calls_answered(self, method: str) -> float:
        """OK answers of `method` (e.g. "/omnix.v1.RecommendationService/GetRecommendations") this
        host has published to /metrics (published about every second)."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("omnix_grpc_requests_total{") and f'method="{method}"' in line and 'code="OK"' in line
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM (a graceful drain), then SIGKILL if it outlives STOP_TIMEOUT_S."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_hosts(addresses: Sequence[str], environment: Mapping[str, str], directory: Path) -> tuple[list[Host], int]:
    """One host per address, all on one port (returned), started together and up on return."""
    port = shared_free_port(addresses)
    metrics_port = port
    while metrics_port == port:  # the first one is not held open, so it could come back
        metrics_port = shared_free_port(addresses)
    hosts: list[Host] = []
    try:
        for address in addresses:
            hosts.append(Host(address, port, metrics_port, environment, directory / address))
        for host in hosts:
            host.wait_until_serving()
    except BaseException:
        for host in hosts:
            host.stop()
        raise
    return hosts, port
