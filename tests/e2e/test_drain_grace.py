"""OMNIX_SHUTDOWN_GRACE_S: how long `omnix serve` lets calls in flight finish after SIGTERM.

A real `omnix serve` process, a real client-streaming import held open by the test (a slow
call): sent SIGTERM meanwhile, the server finishes the call when it ends within the grace, and
stops without it when it would not, so a pod's termination is bounded by its grace setting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from e2e_support import purchase
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs._proto.omnix.v1 import customer_pb2 as pb
from omnix_recs._proto.omnix.v1 import customer_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError

START_TIMEOUT_S = 30.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Serve:
    """`omnix serve` on a free port of 127.0.0.1 with `OMNIX_SHUTDOWN_GRACE_S=grace`."""

    def __init__(self, directory: Path, grace: str) -> None:
        env = {
            **os.environ,
            "OMNIX_STORE": f"sqlite:///{directory / 'omnix.db'}",
            "OMNIX_SHUTDOWN_GRACE_S": grace,
            "OMNIX_LOG_LEVEL": "INFO",
        }
        env.pop("OMNIX_REDIS_URL", None)
        command = [sys.executable, "-m", "omnix_recs.cli", "serve", "--port", "0"]
        self.log_path = directory / "serve.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=env, cwd=directory, stderr=log, stdout=log)
        self.port = self._bound_port()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        self.customers = customer_pb2_grpc.CustomerServiceStub(self.channel)

    def _bound_port(self) -> int:
        """The port from the start-up line ("serving ... on 127.0.0.1:PORT (...)")."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = re.search(r"serving .* on 127\.0\.0\.1:(\d+) ", self.log())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.process.kill()
        pytest.fail(f"omnix serve did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], Serve]]:
    started: list[Serve] = []

    def start(grace: str) -> Serve:
        started.append(Serve(tmp_path, grace))
        return started[-1]

    yield start
    for server in started:
        server.close()


def held_import(server: Serve) -> tuple[grpc.Future, threading.Event]:  # type: ignore[type-arg]
    """An ImportPurchases call that has sent one row and waits for the returned event to send
    the second and end: a call as slow as the test wants."""
    server.customers.RegisterCustomer(pb.RegisterCustomerRequest(customer_id="c1"))
    first_row_sent, release = threading.Event(), threading.Event()

    def rows() -> Iterator[pb.ImportPurchasesRow]:
        yield pb.ImportPurchasesRow(customer_id="c1", purchase=purchase("o1"))
        first_row_sent.set()
        release.wait(60)
        yield pb.ImportPurchasesRow(customer_id="c1", purchase=purchase("o2"))

    call = server.customers.ImportPurchases.future(rows())
    assert first_row_sent.wait(10)
    return call, release


def test_a_call_in_flight_at_sigterm_finishes_within_the_grace(serve: Callable[[str], Serve]) -> None:
    server = serve("30")
    call, release = held_import(server)
    # Watched from before the signal: once stopping, the server takes no new call, a watch included.
    watch = health_pb2_grpc.HealthStub(server.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == SERVING
    server.process.send_signal(signal.SIGTERM)
    assert next(watch).status == NOT_SERVING  # draining: new traffic is turned away, this call is not
    watch.cancel()
    assert server.process.poll() is None
    release.set()
    assert call.result(timeout=20).rows_received == 2
    assert server.process.wait(timeout=20) == 0
    assert "draining in-flight calls for up to 30.0 s" in server.log()


def test_a_call_longer_than_the_grace_is_cut_and_the_server_stops(serve: Callable[[str], Serve]) -> None:
    server = serve("0.5")
    call, release = held_import(server)
    server.process.send_signal(signal.SIGTERM)
    try:
        # The server exits while the call is still held open: the grace bounds the drain.
        assert server.process.wait(timeout=30) == 0
        assert not release.is_set()
    finally:
        release.set()
    with pytest.raises(grpc.RpcError) as cut:
        call.result(timeout=20)
    assert cut.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert "draining in-flight calls for up to 0.5 s" in server.log()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OMNIX_SHUTDOWN_GRACE_S", "25", 25.0),
        ("OMNIX_SHUTDOWN_GRACE_S", "0", 0.0),
        ("OMNIX_SHUTDOWN_GRACE_S", "2.5", 2.5),
        ("OMNIX_FOLLOW_INTERVAL_S", "0.5", 0.5),
    ],
)
def test_seconds_settings_are_read(variable: str, value: str, expected: float) -> None:
    settings = Settings.from_env({variable: value})
    field = "shutdown_grace_s" if variable == "OMNIX_SHUTDOWN_GRACE_S" else "follow_interval_s"
    assert getattr(settings, field) == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OMNIX_SHUTDOWN_GRACE_S", "soon", "expected a number of seconds"),
        ("OMNIX_SHUTDOWN_GRACE_S", "-1", "between 0 and 3600"),
        ("OMNIX_SHUTDOWN_GRACE_S", "7200", "between 0 and 3600"),
        ("OMNIX_SHUTDOWN_GRACE_S", "nan", "between 0 and 3600"),
        ("OMNIX_FOLLOW_INTERVAL_S", "0", "between 0.05 and 3600"),
        ("OMNIX_FOLLOW_INTERVAL_S", "inf", "between 0.05 and 3600"),
    ],
)
def test_a_bad_seconds_setting_is_refused_naming_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=variable) as refused:
        Settings.from_env({variable: value})
    assert message in str(refused.value)


def test_omnix_serve_refuses_a_bad_grace_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "OMNIX_SHUTDOWN_GRACE_S": "ten", "OMNIX_STORE": f"sqlite:///{tmp_path / 'omnix.db'}"}
    finished = subprocess.run(
        [sys.executable, "-m", "omnix_recs.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "OMNIX_SHUTDOWN_GRACE_S" in finished.stderr and "Traceback" not in finished.stderr
