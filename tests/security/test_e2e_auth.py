"""Tokens and roles end to end: a real server, real sockets, generated stubs."""

from __future__ import annotations

import json
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from security_support import bearer

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    customer_pb2,
    customer_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from omnix_recs.config import Settings
from omnix_recs.security.audit import read_audit_log


@pytest.fixture
def server(secured_server):
    return secured_server()


@pytest.fixture
def customers(server):
    return server.stub(customer_pb2_grpc.CustomerServiceStub)


def failure(rpc, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        rpc(request, timeout=10, **kwargs)
    return info.value


def register(customers, mint, customer_id: str) -> None:
    customers.RegisterCustomer(
        customer_pb2.RegisterCustomerRequest(customer_id=customer_id),
        metadata=bearer(mint("checkout", "service")),
        timeout=10,
    )


def test_a_call_without_a_token_is_unauthenticated(customers):
    error = failure(customers.GetCustomerProfile, customer_pb2.GetCustomerProfileRequest(customer_id="c1"))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "this server requires a bearer token: send metadata 'authorization: Bearer <JWT>'"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": 1}, "the bearer token has expired"),
        (
            {"role": "root"},
            "the bearer token's 'role' claim must be one of admin, analyst, service, shopper, got 'root'",
        ),
    ],
)
def test_a_bad_token_is_unauthenticated_with_the_reason(customers, mint, claims, message):
    error = failure(
        customers.GetCustomerProfile,
        customer_pb2.GetCustomerProfileRequest(customer_id="c1"),
        metadata=bearer(mint("c1", **claims)),
    )
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, message)


def test_health_and_reflection_need_no_token(server):
    health = server.stub(health_pb2_grpc.HealthStub)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    reflection = server.stub(reflection_pb2_grpc.ServerReflectionStub)
    answers = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert "omnix.v1.CustomerService" in names


def test_a_shopper_reads_their_own_profile_and_nobody_elses(customers, mint):
    register(customers, mint, "c1")
    register(customers, mint, "c2")
    own = customers.GetCustomerProfile(
        customer_pb2.GetCustomerProfileRequest(customer_id="c1"), metadata=bearer(mint("c1", "shopper")), timeout=10
    )
    assert own.customer_id == "c1"
    error = failure(
        customers.GetCustomerProfile,
        customer_pb2.GetCustomerProfileRequest(customer_id="c2"),
        metadata=bearer(mint("c1", "shopper")),
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == (
        "a shopper may act only on their own customer: customer_id 'c2' is not the token's subject"
    )


def test_shoppers_see_non_personal_lists_but_not_admin_rpcs(server, mint):
    recommendations = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    token = bearer(mint("c1", "shopper"))
    try:
        recommendations.GetTrending(recommendation_pb2.GetTrendingRequest(), metadata=token, timeout=10)
    except grpc.RpcError as error:  # no model in this store: any answer but a refusal will do
        assert error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    error = failure(admin.RollbackModel, admin_pb2.RollbackModelRequest(), metadata=token)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "role 'shopper' may not call RollbackModel (allowed: admin)"
    error = failure(admin.RollbackModel, admin_pb2.RollbackModelRequest(), metadata=bearer(mint("ana", "analyst")))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED


def test_an_analyst_reads_reports_and_an_admin_may_do_anything(server, mint):
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    listed = admin.ListModels(admin_pb2.ListModelsRequest(), metadata=bearer(mint("ana", "analyst")), timeout=10)
    assert list(listed.models) == []
    error = failure(admin.RollbackModel, admin_pb2.RollbackModelRequest(), metadata=bearer(mint("ops", "admin")))
    assert error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def test_privacy_actions_are_audited_with_who_what_and_when(server, customers, mint, tmp_path):
    register(customers, mint, "c1")
    before = time.time()
    refused = failure(
        customers.DeleteCustomer,
        customer_pb2.DeleteCustomerRequest(customer_id="c1"),
        metadata=bearer(mint("c2", "shopper")),
    )
    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
    customers.DeleteCustomer(
        customer_pb2.DeleteCustomerRequest(customer_id="c1"), metadata=bearer(mint("c1", "shopper")), timeout=10
    )
    records = read_audit_log(str(tmp_path / "audit.log"))
    assert [(r["who"], r["role"], r["action"], r["customer_id"], r["outcome"]) for r in records] == [
        ("c2", "shopper", "/omnix.v1.CustomerService/DeleteCustomer", "c1", "PERMISSION_DENIED"),
        ("c1", "shopper", "/omnix.v1.CustomerService/DeleteCustomer", "c1", "OK"),
    ]
    for record in records:
        assert record["at"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60))
        assert record["request_id"] and record["peer"]
    # Reads are not audited.
    register(customers, mint, "c3")
    assert len(read_audit_log(str(tmp_path / "audit.log"))) == 2


def test_the_access_log_names_the_caller(customers, mint, caplog):
    register(customers, mint, "c1")
    with caplog.at_level(logging.INFO, logger="omnix.access"):
        customers.GetCustomerProfile(
            customer_pb2.GetCustomerProfileRequest(customer_id="c1"), metadata=bearer(mint("c1", "shopper")), timeout=10
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
    assert lines[-1]["sub"] == "c1" and lines[-1]["role"] == "shopper" and lines[-1]["code"] == "OK"


def test_without_a_secret_or_jwks_auth_is_off(running_server):
    customers = running_server().stub(customer_pb2_grpc.CustomerServiceStub)
    customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id="c1"), timeout=10)


def test_admin_actions_are_audited_allowed_or_refused(server, mint, tmp_path):
    admin = server.stub(admin_pb2_grpc.AdminServiceStub)
    for token in (mint("ana", "analyst"), mint("ops", "admin")):
        with pytest.raises(grpc.RpcError):  # refused, or no model to roll back to
            admin.RollbackModel(admin_pb2.RollbackModelRequest(), metadata=bearer(token), timeout=10)
    records = read_audit_log(str(tmp_path / "audit.log"))
    assert [(r["who"], r["action"], r["outcome"]) for r in records] == [
        ("ana", "/omnix.v1.AdminService/RollbackModel", "PERMISSION_DENIED"),
        ("ops", "/omnix.v1.AdminService/RollbackModel", records[1]["outcome"]),
    ]
    assert records[1]["outcome"] not in ("PERMISSION_DENIED", "UNAUTHENTICATED")


def test_with_auth_off_privacy_actions_are_still_audited(running_server, tmp_path):
    path = tmp_path / "audit-open.log"
    server = running_server(settings=Settings(audit_log_file=str(path)))
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id="c1"), timeout=10)
    customers.DeleteCustomer(customer_pb2.DeleteCustomerRequest(customer_id="c1"), timeout=10)
    (record,) = read_audit_log(str(path))
    assert (record["who"], record["customer_id"], record["outcome"]) == (None, "c1", "OK")
    assert record["peer"].startswith("ipv4:127.0.0.1:")
