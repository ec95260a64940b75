"""What the scale tests start: a real redis-server, and OMNIX server processes.

`RedisServer` runs `redis-server` (installed by scripts/setup-system.sh, which CI runs) on
127.0.0.1 and a free port, without persistence, and can stop, restart, pause (SIGSTOP: a Redis
that accepts connections but never answers) and resume it. `TcpProxy` partitions one client
from it. `ServerProcess` runs the OMNIX server
(`omnix_recs.server.serve`, what `omnix serve` runs) in a separate process, so two of them share
nothing but the store file and Redis, like two machines.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs.config import Settings

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed: run scripts/setup-system.sh (CI does)", pytrace=False)
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open, nothing is answered. Returns once the
        kernel has stopped it, so the next call cannot be answered by a not-yet-stopped server."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + START_TIMEOUT_S
        # The state letter follows the parenthesised command name; T = stopped.
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not stop on SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


def _serve(settings: Settings) -> None:
    """The server process (a module-level function, so a spawned process can run it)."""
    from omnix_recs.server import serve

    serve(settings)


class ServerProcess:
    """An OMNIX server in its own process on 127.0.0.1:`port`, up once health says SERVING."""

    def __init__(self, settings: Settings) -> None:
        self.port = settings.grpc_port
        self.address = f"127.0.0.1:{self.port}"
        self.process = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings,), daemon=True)
        self.process.start()
        self.channel = grpc.insecure_channel(self.address)
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or not self.process.is_alive():
                self.stop()
                raise RuntimeError(f"the server on {self.address} did not start (exit code {self.process.exitcode})")
            time.sleep(0.05)

    def stub(self, stub_class):  # type: ignore[no-untyped-def]
        return stub_class(self.channel)

    def stop(self) -> None:
        self.channel.close()
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: graceful shutdown
        self.process.join(START_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class TcpProxy:
    """127.0.0.1:`port` forwarded to `target_port`, with a switch: `cut()` closes every connection
    and refuses new ones (a network partition between one client and the server), `restore()`
    heals it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
            listener.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
