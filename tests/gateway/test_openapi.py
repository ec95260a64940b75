"""`/openapi.json` is a valid OpenAPI 3.1 document that describes what the gateway really does:
a small client driven only by the spec (operation ids, parameters, schemas) calls the server and
every answer validates against the spec's response schema. `/docs` needs nothing from outside."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

NOW = "2026-01-05T10:00:00Z"


@pytest.fixture(scope="module")
def spec(stack: Any) -> dict[str, Any]:
    response = stack.http.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    loaded: dict[str, Any] = response.json()
    return loaded


class SpecClient:
    """Calls operations by operationId, building requests only from what the spec says."""

    def __init__(self, http: Any, spec: dict[str, Any]) -> None:
        self.http = http
        self.spec = spec
        self.operations = {
            op["operationId"]: (path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()
        }
        registry: Registry[Any] = Registry().with_resource("urn:omnix-spec", DRAFT202012.create_resource(spec))
        self.registry = registry

    def call(self, operation_id: str, body: Any = None, **params: Any) -> Any:
        path, method, op = self.operations[operation_id]
        declared = {p["name"]: p for p in op.get("parameters", [])}
        query = []
        for name, value in params.items():
            parameter = declared[name]  # a KeyError here means the spec does not declare it
            if parameter["in"] == "path":
                path = path.replace("{" + name + "}", str(value))
            else:
                query += [(name, v) for v in (value if isinstance(value, list) else [value])]
        missing = [n for n, p in declared.items() if p.get("required") and n not in params]
        assert not missing, missing
        response = self.http.request(method.upper(), path, params=query, json=body)
        assert response.status_code == 200, response.text
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        self.validate(response.json(), schema)
        return response.json()

    def validate(self, instance: Any, schema: dict[str, Any]) -> None:
        rooted = _rooted(schema)
        validator = OAS31Validator({**rooted, "$id": "urn:omnix-operation"}, registry=self.registry)
        validator.validate(instance)


def _rooted(schema: Any) -> Any:
    """Point the spec's local `#/components/...` references at the registered document."""
    if isinstance(schema, dict):
        return {k: ("urn:omnix-spec" + v if k == "$ref" else _rooted(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rooted(v) for v in schema]
    return schema


def test_the_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    validate_spec(spec)
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_descriptions_come_from_the_proto_comments(spec: dict[str, Any]) -> None:
    activate = spec["paths"]["/v1/admin/models/{version}:activate"]["post"]
    assert "FAILED_PRECONDITION" in activate["description"]
    limit = next(
        p
        for p in spec["paths"]["/v1/customers/{customer_id}/recommendations"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert "1..200" in limit["schema"]["description"]
    assert spec["components"]["schemas"]["omnix.v1.Strategy"]["enum"][0] == "STRATEGY_UNSPECIFIED"


def test_json_mapping_in_schemas(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    profile = schemas["omnix.v1.CustomerProfile"]["properties"]
    assert profile["createdAt"]["type"] == "string" and profile["createdAt"]["format"] == "date-time"
    assert schemas["omnix.v1.ImportPurchasesResponse"]["properties"]["rowsReceived"]["type"] == "string"
    import_op = spec["paths"]["/v1/purchases/import"]["post"]["requestBody"]["content"]
    assert set(import_op) == {"application/x-ndjson", "text/csv"}
    stream = spec["paths"]["/v1/ai/batch-analysis"]["post"]["responses"]["200"]["content"]
    assert set(stream) == {"application/x-ndjson"}


def test_a_client_driven_by_the_spec_round_trips(stack: Any, spec: dict[str, Any]) -> None:
    client = SpecClient(stack.http, spec)
    profile = client.call(
        "CustomerService_RegisterCustomer",
        body={"customerId": "spec-client-1", "displayName": "Spec", "preferences": {"favoriteBrands": ["Roma"]}},
    )
    assert client.call("CustomerService_GetCustomerProfile", customer_id="spec-client-1") == profile
    customer = stack.customer_ids[0]
    client.call(
        "RecommendationService_GetRecommendations", customer_id=customer, limit=3, strategy="STRATEGY_REPLENISH"
    )
    client.call("RecommendationService_GetSimilarProducts", product_id=stack.product_ids[0], limit=3)
    client.call("InsightsService_GetConsumptionPredictions", customer_id=customer, asOf=NOW)
    client.call("CatalogService_ListProducts", departments=["frozen", "produce"], pageSize=5)
    client.call("AdminService_ListModels")
    client.call("CustomerService_DeleteCustomer", customer_id="spec-client-1")


def test_errors_match_the_status_schema(stack: Any, spec: dict[str, Any]) -> None:
    client = SpecClient(stack.http, spec)
    response = stack.http.get("/v1/customers/nobody-here/profile")
    assert response.status_code == 404
    schema = spec["paths"]["/v1/customers/{customer_id}/profile"]["get"]["responses"]["default"]["content"]
    client.validate(response.json(), schema["application/json"]["schema"])


def test_docs_page_is_offline(stack: Any) -> None:
    page = stack.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", page.text)
    assert external == [] and "/openapi.json" in page.text
