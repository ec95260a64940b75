"""Local AWS stand-ins on 127.0.0.1: moto's server mode (DynamoDB and S3) and dynoxide (DynamoDB).

moto runs in a thread of the test process, dynoxide in a child process (`cargo install
dynoxide-rs`, scripts/setup-system.sh). Both are reached over real HTTP by real boto3 clients, so
requests, errors and pagination go through the same code as against AWS. While it runs, fake
credentials are in the environment (boto3 signs every request, the stand-ins accept any signature) and
endpoint settings a developer's shell may carry are removed, so no real AWS configuration on
the machine is read and nothing is sent elsewhere; the previous values come back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from moto.server import ThreadedMotoServer

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
CLEARED_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_PROFILE",
    "AWS_REGION",
)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1; yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one access-log line per request
    with pytest.MonkeyPatch.context() as environment:
        for name in CLEARED_ENVIRONMENT:
            environment.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            environment.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


DYNOXIDE_START_TIMEOUT_S = 15.0


def dynoxide_binary() -> str | None:
    """The `dynoxide` executable (scripts/setup-system.sh installs it with cargo), or None."""
    found = shutil.which("dynoxide")
    if found:
        return found
    cargo_bin = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin" / "dynoxide"
    return str(cargo_bin) if os.access(cargo_bin, os.X_OK) else None


@contextlib.contextmanager
def dynoxide_server(db_path: Path | None = None) -> Iterator[str]:
    """dynoxide (a DynamoDB emulator over SQLite, in memory, or serving the database file
    `db_path`) in a child process on a free port of 127.0.0.1, with the same fake credentials as
    moto; yields its endpoint URL.

    Skips the calling test when dynoxide is not installed, except in CI (`CI` set), where a
    missing emulator is a broken setup and fails."""
    binary = dynoxide_binary()
    if binary is None:
        message = "dynoxide is not installed (run scripts/setup-system.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as environment:
        for name in CLEARED_ENVIRONMENT:
            environment.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            environment.setenv(name, value)
        port = _free_port()
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would block it
            process = subprocess.Popen(
                [binary, "--host", "127.0.0.1", "--port", str(port), "--log", "quiet"]
                + ([] if db_path is None else ["--db-path", str(db_path)]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            try:
                _wait_for_port(process, port, errors)
                yield f"http://127.0.0.1:{port}"
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(process: subprocess.Popen[bytes], port: int, errors: IO[bytes]) -> None:
    deadline = time.monotonic() + DYNOXIDE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"dynoxide exited with status {process.returncode}: {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dynoxide did not listen on 127.0.0.1:{port} within {DYNOXIDE_START_TIMEOUT_S:.0f} s")
