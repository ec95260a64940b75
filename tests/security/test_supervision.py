"""Supervised workers: a killed worker is replaced, a killed parent takes its workers along,
and a second server on a busy port refuses to start. Real processes, real signals."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs.server import MAX_QUICK_DEATHS, _WorkerGroup

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    return sorted(found)


def listening(port: int) -> set[int]:
    """The processes with a socket listening on `port` (each worker has its own, SO_REUSEPORT)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A = LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # gone, or not ours to look at
            continue
        for fd in descriptors:
            try:
                target = os.readlink(fd)
            except OSError:  # closed while we looked
                continue
            if target in inodes:
                pids.add(int(entry.name))
                break
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def serving(port: int) -> bool:
    # A connection of its own: a pooled one may still be the killed worker's, broken.
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def wait_until(condition, timeout_s: float = START_TIMEOUT_S) -> float:
    """Seconds until `condition()` held; fails the test after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


def serve_command(tmp_path: Path, port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "omnix_recs.cli",
        "serve",
        "--workers",
        str(workers),
        "--port",
        str(port),
        "--store",
        f"sqlite:///{tmp_path / 'omnix.db'}",
    ]


@pytest.fixture
def env(tmp_path):
    environment = {**os.environ, "OMNIX_LOG_LEVEL": "WARNING", "OMNIX_MODEL_DIR": str(tmp_path / "models")}
    environment.pop("OMNIX_REDIS_URL", None)
    return environment


@pytest.fixture
def two_workers(tmp_path, env):
    port = free_port()
    process = subprocess.Popen(serve_command(tmp_path, port), env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(listening(port)) == 2 and serving(port) or process.poll() is not None)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        yield process, port
    finally:
        workers = workers_of(process.pid)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.stderr:
            process.stderr.close()


def test_a_killed_worker_is_replaced_and_the_server_keeps_serving(two_workers):
    process, port = two_workers
    first, second = workers_of(process.pid)
    os.kill(first, signal.SIGKILL)
    # Connections racing the dying worker's socket fail with it (those "it held"); the survivor
    # keeps answering: the server is never down.
    wait_until(lambda: not alive(first), timeout_s=5)
    survivor_in = wait_until(lambda: serving(port), timeout_s=5)
    replaced_in = wait_until(lambda: len(listening(port)) == 2 and first not in listening(port) and serving(port))
    assert process.poll() is None
    assert second in listening(port)  # the survivor was left alone
    print(f"\nsurvivor answering {survivor_in:.2f} s, replacement serving {replaced_in:.2f} s after kill -9")
    # A second death is handled the same way.
    (newest,) = listening(port) - {second}
    os.kill(newest, signal.SIGKILL)
    wait_until(lambda: not alive(newest), timeout_s=5)
    wait_until(lambda: serving(port), timeout_s=5)
    wait_until(lambda: len(listening(port)) == 2 and newest not in listening(port) and serving(port))
    process.send_signal(signal.SIGTERM)
    assert process.wait(START_TIMEOUT_S) == 0


def test_workers_exit_when_their_parent_is_killed(two_workers):
    process, port = two_workers
    workers = workers_of(process.pid)
    process.kill()
    process.wait()
    gone_in = wait_until(lambda: not any(alive(pid) for pid in workers), timeout_s=15)
    print(f"orphaned workers gone {gone_in:.2f} s after the parent's kill -9")
    wait_until(lambda: not serving(port), timeout_s=5)


def test_a_second_server_on_a_busy_port_refuses_to_start(two_workers, tmp_path, env):
    process, port = two_workers
    (tmp_path / "other").mkdir()
    for workers in (2, 1):
        second = subprocess.run(
            serve_command(tmp_path / "other", port, workers), env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, second.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr
    assert len(listening(port)) == 2 and serving(port)


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive free ports."""
    for _ in range(100):
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    pytest.fail(f"no {count} free ports in a row")


def test_each_worker_also_listens_on_its_own_port_and_gets_it_back_when_replaced(tmp_path, env):
    port, base = free_port(), free_ports_in_a_row(2)
    command = [*serve_command(tmp_path, port), "--worker-base-port", str(base)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    own_ports = (base, base + 1)
    try:
        wait_until(
            lambda: (
                (len(listening(port)) == 2 and all(serving(p) for p in (port, *own_ports)))
                or process.poll() is not None
            )
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        workers = set(workers_of(process.pid))
        owners = [listening(own) for own in own_ports]
        assert owners[0] | owners[1] == workers == listening(port)  # one each, and both on the shared port
        (first,) = owners[0]
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: not alive(first), timeout_s=5)
        wait_until(lambda: len(listening(base)) == 1 and first not in listening(base) and serving(base))
        assert listening(base + 1) == owners[1]  # the other worker kept its own
        process.send_signal(signal.SIGTERM)
        assert process.wait(START_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def test_worker_ports_that_clash_or_are_busy_are_refused_before_any_worker_starts(two_workers, tmp_path, env):
    _, busy = two_workers
    port = free_port()
    (tmp_path / "other").mkdir()
    for base, message in (
        (port - 1, f"--worker-base-port: ports {port - 1}-{port} (one per worker) include the gRPC port {port}"),
        (65_535, "--worker-base-port: 65535 + 2 workers runs past port 65535"),
        (-1, "--worker-base-port: must be a port number, got -1"),
        (busy, f"cannot listen on 127.0.0.1:{busy}"),
    ):
        refused = subprocess.run(
            [*serve_command(tmp_path / "other", port), "--worker-base-port", str(base)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not listening(port)


def test_a_worker_that_keeps_dying_at_start_stops_the_server():
    """Restarting forever would hide a broken configuration: after MAX_QUICK_DEATHS quick
    deaths in a row the group gives up and reports the worker."""
    spawn = multiprocessing.get_context("spawn")
    group = _WorkerGroup(
        lambda slot: spawn.Process(target=os._exit, args=(3,), name=f"doomed-{slot}"), 1, kill_after_s=5
    )
    group.start()
    failed = group.wait()
    assert failed is not None and failed.exitcode == 3
    assert group.restarts == MAX_QUICK_DEATHS - 1
