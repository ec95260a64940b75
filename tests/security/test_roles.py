"""The roles table covers every RPC the protos declare, and says who may do what."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from google.protobuf.descriptor import MethodDescriptor

import omnix_recs._proto.omnix.v1 as generated
from omnix_recs.security.auth import Authenticator, AuthSettings, PermissionDeniedError, Principal
from omnix_recs.security.roles import ADMIN, ANALYST, ROLES, RULES, SERVICE, SHOPPER, ShopperScope, is_open

ROLES_FILE = "python/omnix_recs/security/roles.py"


def declared_methods() -> dict[str, MethodDescriptor]:
    """Every RPC of every service in the omnix.v1 descriptors, by full name."""
    methods = {}
    for info in pkgutil.iter_modules(generated.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{generated.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                for method in service.methods:
                    methods[f"/{service.full_name}/{method.name}"] = method
    return methods


METHODS = declared_methods()
AUTH = Authenticator(AuthSettings(jwt_secret="x" * 32))


def test_every_declared_rpc_has_an_access_rule():
    missing = sorted(set(METHODS) - set(RULES))
    assert not missing, (
        f"RPCs without an access rule: {missing}. Add one line per RPC to RULES in {ROLES_FILE} "
        "(who may call it; with auth on, an RPC without a rule answers PERMISSION_DENIED to everyone)."
    )


@pytest.mark.parametrize("method", sorted(set(METHODS) & set(RULES)))
def test_rules_are_coherent(method):
    rule = RULES[method]
    assert rule.allows(ADMIN), f"{method}: admin may call everything"
    assert rule.roles <= ROLES
    descriptor = METHODS[method]
    if rule.shopper is not ShopperScope.NONE:
        # A shopper's rights depend on the request's customer_id: one message with one.
        assert not descriptor.client_streaming, f"{method}: a stream of rows cannot be checked per shopper"
        assert "customer_id" in descriptor.input_type.fields_by_name or rule.shopper is ShopperScope.OWN_OR_EMPTY


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m.split("/")[1] == "omnix.v1.AdminService"))
def test_admin_service_writes_need_admin(method):
    rule = RULES[method]
    assert not rule.allows(SHOPPER) and not rule.allows(SERVICE)
    if rule.audited:  # model lifecycle, experiments: operator actions
        assert rule.allowed_roles() == [ADMIN]


@pytest.mark.parametrize(
    ("method", "audited"),
    [
        ("/omnix.v1.CustomerService/DeleteCustomer", True),
        ("/omnix.v1.CustomerService/ExportCustomerData", True),
        ("/omnix.v1.AdminService/RetrainModel", True),
        ("/omnix.v1.AdminService/ActivateModel", True),
        ("/omnix.v1.RecommendationService/GetRecommendations", False),
    ],
)
def test_privacy_and_admin_actions_are_audited(method, audited):
    assert RULES[method].audited is audited


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ],
)
def test_health_and_reflection_are_open(method):
    assert is_open(method)


def _request(method: str, customer_id: str | None):
    descriptor = METHODS[method]
    message_class = importlib.import_module(
        f"{generated.__name__}.{descriptor.input_type.file.name.rsplit('/', 1)[-1][:-6]}_pb2"
    )
    request = getattr(message_class, descriptor.input_type.name)()
    if customer_id is not None and "customer_id" in descriptor.input_type.fields_by_name:
        request.customer_id = customer_id
    return None if descriptor.client_streaming else request


# (method, role, customer_id in the request, allowed?) for a shopper whose sub is "me".
CASES = [
    ("/omnix.v1.CustomerService/GetCustomerProfile", SHOPPER, "me", True),
    ("/omnix.v1.CustomerService/GetCustomerProfile", SHOPPER, "someone-else", False),
    ("/omnix.v1.CustomerService/GetCustomerProfile", SHOPPER, "", False),
    ("/omnix.v1.CustomerService/GetCustomerProfile", SERVICE, "anyone", True),
    ("/omnix.v1.CustomerService/GetCustomerProfile", ANALYST, "anyone", False),
    ("/omnix.v1.CustomerService/DeleteCustomer", SHOPPER, "me", True),
    ("/omnix.v1.CustomerService/DeleteCustomer", SERVICE, "anyone", False),
    ("/omnix.v1.CustomerService/ExportCustomerData", SHOPPER, "someone-else", False),
    ("/omnix.v1.CustomerService/ImportPurchases", SHOPPER, None, False),
    ("/omnix.v1.CustomerService/ImportPurchases", SERVICE, None, True),
    ("/omnix.v1.CustomerService/RecordPurchase", SHOPPER, "me", False),
    ("/omnix.v1.RecommendationService/GetRecommendations", SHOPPER, "me", True),
    ("/omnix.v1.RecommendationService/GetRecommendations", SHOPPER, "someone-else", False),
    ("/omnix.v1.RecommendationService/GetTrending", SHOPPER, "", True),
    ("/omnix.v1.RecommendationService/GetTrending", SHOPPER, "someone-else", False),
    ("/omnix.v1.RecommendationService/GetSimilarProducts", SHOPPER, "", True),
    ("/omnix.v1.CatalogService/ListProducts", SHOPPER, None, True),
    ("/omnix.v1.CatalogService/UpsertProducts", SHOPPER, None, False),
    ("/omnix.v1.CatalogService/UpsertProducts", ANALYST, None, False),
    ("/omnix.v1.InsightsService/GetInsights", ANALYST, "anyone", True),
    ("/omnix.v1.InsightsService/BatchAnalyze", SERVICE, None, False),
    ("/omnix.v1.AdminService/GetRecommendationPerformance", ANALYST, None, True),
    ("/omnix.v1.AdminService/RetrainModel", ANALYST, None, False),
    ("/omnix.v1.AdminService/RetrainModel", SERVICE, None, False),
    ("/omnix.v1.AdminService/RetrainModel", ADMIN, None, True),
    ("/omnix.v1.MarketingService/CreateCampaign", SERVICE, None, False),
]


@pytest.mark.parametrize(("method", "role", "customer_id", "allowed"), CASES)
def test_who_may_call_what(method, role, customer_id, allowed):
    principal = Principal(subject="me", role=role, source="jwt")
    request = _request(method, customer_id)
    if allowed:
        AUTH.authorize(method, principal, request)
    else:
        with pytest.raises(PermissionDeniedError):
            AUTH.authorize(method, principal, request)


@pytest.mark.parametrize("method", sorted(set(METHODS) & set(RULES)))
@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_rpc_answers_every_role(method, role):
    """Every (RPC, role) pair gets a decision, and a denial names the allowed roles."""
    principal = Principal(subject="me", role=role, source="jwt")
    try:
        AUTH.authorize(method, principal, _request(method, "me"))
    except PermissionDeniedError as exc:
        assert "allowed:" in str(exc) or "shopper" in str(exc)


def test_an_rpc_missing_from_the_table_is_denied_to_everyone():
    with pytest.raises(PermissionDeniedError, match="no access rule"):
        AUTH.authorize("/omnix.v1.CustomerService/NotYetInTheTable", Principal("root", ADMIN, "jwt"), None)
