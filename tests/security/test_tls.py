"""TLS and mTLS over real sockets, with certificates made at test time, and reload on renewal."""

from __future__ import annotations

import dataclasses
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from security_support import Authority, secure_channel

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.security.setup import tls_certificates


def healthy(channel: grpc.Channel) -> bool:
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), error
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def test_tls_serves_clients_that_trust_the_ca_only(running_server, pki):
    server = running_server(settings=Settings(**pki.tls_settings()))
    with secure_channel(server.address, pki.ca.cert_pem) as channel:
        assert healthy(channel)
    with secure_channel(server.address, pki.stranger.cert_pem) as channel:
        assert not healthy(channel)
    with grpc.insecure_channel(server.address) as channel:
        assert not healthy(channel)


def test_mtls_requires_a_client_certificate_from_the_client_ca(running_server, pki):
    server = running_server(settings=Settings(**pki.tls_settings(mtls=True)))
    with secure_channel(server.address, pki.ca.cert_pem, pki.client) as channel:
        assert healthy(channel)
    with secure_channel(server.address, pki.ca.cert_pem) as channel:
        assert not healthy(channel)
    with secure_channel(server.address, pki.ca.cert_pem, pki.stranger_client) as channel:
        assert not healthy(channel)


def test_an_mtls_identity_can_carry_a_role(running_server, pki, mint):
    settings = Settings(**pki.tls_settings(mtls=True), auth_mtls_roles="pos-service=service")
    server = running_server(settings=settings)
    with secure_channel(server.address, pki.ca.cert_pem, pki.client) as channel:
        customers = customer_pb2_grpc.CustomerServiceStub(channel)
        profile = customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id="c1"), timeout=10)
        assert profile.customer_id == "c1"


def test_a_renewed_certificate_is_served_without_a_restart(running_server, pki):
    server = running_server(settings=Settings(**pki.tls_settings()))
    with secure_channel(server.address, pki.ca.cert_pem) as channel:
        assert healthy(channel)
    renewed_ca = Authority("Renewed CA")
    renewed = renewed_ca.issue("localhost", server=True)
    # Key first, then certificate: in between, the pair does not match and the old one stays.
    pki.key_file.write_bytes(renewed.key_pem)
    with secure_channel(server.address, pki.ca.cert_pem) as channel:
        assert healthy(channel)
    pki.cert_file.write_bytes(renewed.cert_pem)
    stat = os.stat(pki.cert_file)
    os.utime(pki.cert_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a distinct mtime
    with secure_channel(server.address, renewed_ca.cert_pem) as channel:
        assert healthy(channel)
    with secure_channel(server.address, pki.ca.cert_pem) as channel:
        assert not healthy(channel)


@pytest.mark.parametrize(
    ("change", "variable", "message"),
    [
        ({"tls_key_file": None}, "OMNIX_TLS_KEY_FILE", "is required when the other TLS file is set"),
        ({"tls_cert_file": "/nonexistent/cert.pem"}, "OMNIX_TLS_CERT_FILE", "cannot read /nonexistent/cert.pem"),
        ({"swap": True}, "OMNIX_TLS_KEY_FILE", "is not the key of the certificate"),
        ({"garbage_key": True}, "OMNIX_TLS_KEY_FILE", "holds no unencrypted PEM private key"),
    ],
)
def test_bad_tls_files_stop_start_up_naming_the_variable(pki, change, variable, message):
    if change.pop("swap", False):
        pki.key_file.write_bytes(pki.client.key_pem)
    if change.pop("garbage_key", False):
        pki.key_file.write_bytes(b"not a key")
    settings = dataclasses.replace(Settings(**pki.tls_settings()), **change)
    with pytest.raises(InvalidArgumentError, match=message) as info:
        tls_certificates(settings)
    assert info.value.field == variable
