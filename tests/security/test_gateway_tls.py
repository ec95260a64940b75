"""The REST gateway over TLS, end to end on real sockets with certificates made at test time:
beside its own TLS or mTLS server (`omnix serve --http-port`) it reaches the server over TLS
and serves HTTPS with the same files; alone (`omnix gateway --target`) it gets the CA and its
client certificate from flags. Plain HTTP to an HTTPS port fails; bad files stop start-up
naming the variable."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from security_support import Pki

from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.gateway.app import GatewayConfig
from omnix_recs.gateway.serve import GatewayServer, bind, channel_settings, https_settings, start_beside

START_TIMEOUT_S = 30.0
EMPTY_CATALOG = {"products": [], "nextPageToken": ""}


def write_client(pki: Pki, name: str = "client") -> tuple[Path, Path]:
    cert, key = pki.directory / f"{name}.pem", pki.directory / f"{name}-key.pem"
    cert.write_bytes(pki.client.cert_pem)
    key.write_bytes(pki.client.key_pem)
    return cert, key


def trusting(pki: Pki, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """What an HTTPS client of the gateway uses: the test CA, and a client certificate for mTLS."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


@pytest.fixture
def tls_stack(running_server: Any) -> Iterator[Callable[[Settings], tuple[Any, GatewayServer]]]:
    """A TLS server and the gateway beside it on the server's loop, as `omnix serve --http-port`."""
    started: list[tuple[Any, GatewayServer]] = []

    def start(settings: Settings) -> tuple[Any, GatewayServer]:
        server = running_server(settings=settings)
        gateway = server.call_on_loop(start_beside("127.0.0.1", server.port, "127.0.0.1", 0, settings=settings))
        started.append((server, gateway))
        return server, gateway

    yield start
    for server, gateway in started:
        server.call_on_loop(gateway.stop())


@pytest.mark.parametrize(
    ("case", "mtls", "gateway_cert"),
    [
        ("TLS", False, False),
        ("mTLS, the gateway presents the server's own certificate", True, False),
        ("mTLS, the gateway presents OMNIX_GATEWAY_TLS_CERT_FILE", True, True),
    ],
)
def test_rest_over_https_through_the_gateway_to_a_tls_server(
    tls_stack: Any, pki: Pki, case: str, mtls: bool, gateway_cert: bool
) -> None:
    extra: dict[str, Any] = {"tls_ca_file": str(pki.ca_file)}
    client_cert = write_client(pki)
    if gateway_cert:
        extra |= {"gateway_tls_cert_file": str(client_cert[0]), "gateway_tls_key_file": str(client_cert[1])}
    settings = Settings(**pki.tls_settings(mtls=mtls), **extra)
    _server, gateway = tls_stack(settings)
    assert gateway.scheme == "https"
    https = f"https://127.0.0.1:{gateway.port}"
    with httpx.Client(base_url=https, verify=trusting(pki, client_cert if mtls else None), timeout=10) as client:
        listed = client.get("/v1/products")
        assert listed.status_code == 200 and listed.json() == EMPTY_CATALOG, case
        missing = client.get("/v1/customers/nobody/profile")  # a gRPC status through TLS, as JSON
        assert missing.status_code == 404 and missing.json()["code"] == 5
        assert client.get("/console/").status_code == 200

    with pytest.raises(httpx.TransportError):  # plain HTTP on the HTTPS port: no answer
        httpx.get(f"http://127.0.0.1:{gateway.port}/v1/products", timeout=5)
    if mtls:  # HTTPS without a client certificate is refused too
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{https}/v1/products", verify=trusting(pki), timeout=5)


def test_without_a_ca_the_in_process_gateway_trusts_the_client_ca(tls_stack: Any, pki: Pki) -> None:
    _server, gateway = tls_stack(Settings(**pki.tls_settings(mtls=True)))
    client_cert = write_client(pki)
    with httpx.Client(verify=trusting(pki, client_cert), timeout=10) as client:
        assert client.get(f"https://127.0.0.1:{gateway.port}/v1/products").json() == EMPTY_CATALOG


def served_certificate(port: int, pki: Pki) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with trusting(pki).wrap_socket(raw, server_hostname="localhost") as tls:
            served = tls.getpeercert(binary_form=True)
    assert served is not None
    return served


def test_https_serves_a_renewed_certificate_without_a_restart(running_server: Any, pki: Pki) -> None:
    settings = Settings(**pki.tls_settings(), tls_ca_file=str(pki.ca_file))
    server = running_server(settings=settings)
    config = GatewayConfig(target=server.address, tls=channel_settings(settings, in_process=True))
    gateway = GatewayServer(config, bind("127.0.0.1", 0), https=https_settings(settings), reload_every_s=0.05)
    server.call_on_loop(gateway.start())
    try:
        first = served_certificate(gateway.port, pki)
        renewed = pki.ca.issue("localhost", server=True)
        # Key first, then certificate: in between, the pair does not match and the old one stays.
        pki.key_file.write_bytes(renewed.key_pem)
        time.sleep(0.3)
        assert served_certificate(gateway.port, pki) == first
        pki.cert_file.write_bytes(renewed.cert_pem)
        stat = os.stat(pki.cert_file)
        os.utime(pki.cert_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a distinct mtime
        wanted = renewed.cert.public_bytes(serialization.Encoding.DER)
        deadline = time.monotonic() + 10
        while served_certificate(gateway.port, pki) != wanted:
            assert time.monotonic() < deadline, "the renewed certificate was not served"
            time.sleep(0.05)
        assert gateway.reloader is not None and gateway.reloader.reloads == 1
        with httpx.Client(verify=trusting(pki), timeout=10) as client:
            assert client.get(f"https://127.0.0.1:{gateway.port}/v1/products").json() == EMPTY_CATALOG
    finally:
        server.call_on_loop(gateway.stop())


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnix_recs.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[str], **client: Any) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}: {process.communicate()[0]}")
        try:
            return httpx.get(url, timeout=5, **client)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer")
            time.sleep(0.2)


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


def test_serve_and_gateway_processes_over_mtls(pki: Pki, tmp_path: Path) -> None:
    """`omnix serve --http-port` with the OMNIX_TLS_* files answers HTTPS through its own mTLS
    server; `omnix gateway --target` reaches that server with a CA and client certificate
    given as flags."""
    client_cert, client_key = write_client(pki)
    grpc_port, http_port, gateway_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIX_")}
    env |= {"OMNIX_STORE": f"sqlite:///{tmp_path / 'omnix.db'}", "OMNIX_MODEL_DIR": str(tmp_path / "models")}
    server_env = env | {
        "OMNIX_TLS_CERT_FILE": str(pki.cert_file),
        "OMNIX_TLS_KEY_FILE": str(pki.key_file),
        "OMNIX_TLS_CLIENT_CA_FILE": str(pki.ca_file),
    }
    server = cli("serve", "--port", str(grpc_port), "--http-port", str(http_port), env=server_env)
    gateway = None
    try:
        listed = wait_for(
            f"https://127.0.0.1:{http_port}/v1/products", server, verify=trusting(pki, (client_cert, client_key))
        )
        assert listed.status_code == 200 and listed.json() == EMPTY_CATALOG

        gateway = cli(
            "gateway",
            "--target",
            f"127.0.0.1:{grpc_port}",
            "--port",
            str(gateway_port),
            "--tls-ca-file",
            str(pki.ca_file),
            "--client-cert-file",
            str(client_cert),
            "--client-key-file",
            str(client_key),
            env=env,
        )
        listed = wait_for(f"http://127.0.0.1:{gateway_port}/v1/products", gateway)
        assert listed.status_code == 200 and listed.json() == EMPTY_CATALOG
        assert "(TLS)" in stop(gateway)
        gateway = None
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.communicate()
        output = stop(server)
    assert "REST gateway and console on https://" in output


def test_a_plaintext_gateway_cannot_reach_a_tls_server(running_server: Any, pki: Pki) -> None:
    server = running_server(settings=Settings(**pki.tls_settings()))
    gateway = GatewayServer(GatewayConfig(target=server.address, default_timeout_s=5), bind("127.0.0.1", 0))
    server.call_on_loop(gateway.start())
    try:
        answer = httpx.get(f"http://127.0.0.1:{gateway.port}/v1/products", timeout=10)
        assert answer.status_code == 503 and answer.json()["code"] == 14  # UNAVAILABLE, not a hang
    finally:
        server.call_on_loop(gateway.stop())


@pytest.mark.parametrize(
    ("in_process", "change", "variable", "message"),
    [
        (False, {"gateway_tls_cert_file": "client"}, "OMNIX_TLS_CA_FILE", "mTLS is TLS first"),
        (False, {"tls_ca_file": "missing"}, "OMNIX_TLS_CA_FILE", "cannot read"),
        (False, {"tls_ca_file": "key"}, "OMNIX_TLS_CA_FILE", "holds no PEM certificate"),
        (
            False,
            {"tls_ca_file": "ca", "gateway_tls_cert_file": "client"},
            "OMNIX_GATEWAY_TLS_KEY_FILE",
            "is required",
        ),
        (
            True,
            {"gateway_tls_cert_file": "client", "gateway_tls_key_file": "key"},
            "OMNIX_GATEWAY_TLS_KEY_FILE",
            "is not the key of the certificate",
        ),
    ],
)
def test_bad_gateway_tls_files_stop_start_up_naming_the_variable(
    pki: Pki, in_process: bool, change: dict[str, str], variable: str, message: str
) -> None:
    client_cert, _client_key = write_client(pki)
    files = {"ca": pki.ca_file, "key": pki.key_file, "client": client_cert, "missing": pki.directory / "nope.pem"}
    settings = dataclasses.replace(
        Settings(**pki.tls_settings(mtls=True)), **{name: str(files[which]) for name, which in change.items()}
    )
    with pytest.raises(InvalidArgumentError) as raised:
        channel_settings(settings, in_process=in_process)
    assert raised.value.field == variable and message in str(raised.value)
