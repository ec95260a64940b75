"""The REST transcoder over a real server: every annotated RPC through its path, query and body,
answers compared with what gRPC returns, and errors as google.rpc.Status JSON with grpc-gateway's
HTTP statuses (bad input names the field and changes nothing)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc
import httpx
import pytest
from google.api import http_pb2
from google.protobuf import json_format

from omnix_recs._proto.omnix.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    customer_pb2,
    customer_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from omnix_recs.gateway.app import GatewayConfig, _call_options
from omnix_recs.gateway.routes import build_route_table, http_rule, omnix_services, parse_template
from omnix_recs.gateway.serve import GatewayServer, bind
from omnix_recs.gateway.transcode import HTTP_STATUS

NOW = "2026-01-05T10:00:00Z"


def status_of(response: httpx.Response) -> dict[str, Any]:
    """The google.rpc.Status body of an error response."""
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert response.headers["content-type"] == "application/json"
    return body


def violated_field(response: httpx.Response) -> str:
    status = status_of(response)
    assert response.status_code == 400 and status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], status
    detail = status["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    field: str = detail["fieldViolations"][0]["field"]
    assert field in status["message"]
    return field


def register(stack: Any, customer_id: str) -> None:
    response = stack.http.post("/v1/customers/register", json={"customerId": customer_id})
    assert response.status_code == 200, response.text


# --- path templates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/products/{product_id}", "/v1/products/p1", {("product_id",): "p1"}),
        ("/v1/products/{product_id}", "/v1/products/a%2Fb", {("product_id",): "a/b"}),
        ("/v1/products/{product_id}", "/v1/products/p1/similar", None),
        ("/v1/admin/models/{version}:activate", "/v1/admin/models/v-1:activate", {("version",): "v-1"}),
        ("/v1/admin/models/{version}:activate", "/v1/admin/models/v-1", None),
        ("/v1/a/{filters.max_price}/b", "/v1/a/2.5/b", {("filters", "max_price"): "2.5"}),
        ("/v1/{name=shelves/*}/books", "/v1/shelves/s1/books", {("name",): "shelves/s1"}),
        ("/v1/{name=files/**}", "/v1/files/a/b/c", {("name",): "files/a/b/c"}),
        ("/v1/products:batchUpsert", "/v1/products:batchUpsert", {}),
    ],
)
def test_path_templates_match_and_decode(template: str, path: str, expected: Any) -> None:
    assert parse_template(template).match(path) == expected


@pytest.mark.parametrize("template", ["v1/no-slash", "/v1/{unclosed", "/v1//empty", "/v1/{bad name}", "/v1/{a={b}}"])
def test_malformed_templates_are_refused_at_start_up(template: str) -> None:
    with pytest.raises(ValueError):
        parse_template(template)


def test_every_annotated_rpc_has_a_route_and_an_openapi_operation(stack: Any) -> None:
    annotated = {m.full_name for s in omnix_services() for m in s.methods if http_rule(m) is not None}
    table = build_route_table()
    assert {r.method.full_name for r in table} == annotated
    spec = stack.http.get("/openapi.json").json()
    operations = {op["x-grpc-method"] for ops in spec["paths"].values() for op in ops.values()}
    assert operations == {r.grpc_path for r in table}


def test_every_route_is_reachable_and_refuses_unknown_fields(stack: Any) -> None:
    """Each route answers through the transcoder (not a routing 404/405) and names an unknown field."""
    for route in build_route_table():
        path = route.template.text
        for variable in route.template.variables:
            path = path.replace("{" + ".".join(variable.field_path) + "}", "x1")
        if route.body:
            response = stack.http.request(
                route.http_method, path, content=b'{"noSuchField": 1}\n', headers={"content-type": "application/json"}
            )
            expected = "rows[0].noSuchField" if route.kind.name == "CLIENT_STREAMING" else "noSuchField"
            if route.body != "*":
                expected = f"{route.request_type.fields_by_name[route.body].json_name}.noSuchField"
        else:
            response = stack.http.request(route.http_method, path, params={"noSuchField": "1"})
            expected = "noSuchField"
        assert violated_field(response) == expected, (route.grpc_path, response.text)


# --- customers ------------------------------------------------------------------------------


def test_register_get_update_and_delete_a_customer(stack: Any) -> None:
    created = stack.http.post(
        "/v1/customers/register",
        json={
            "customerId": "gw-ann",
            "displayName": "Ann",
            "household_size": 3,  # proto names are accepted too
            "preferences": {"favoriteBrands": ["Roma"], "budgetPerTrip": 80},
        },
    )
    assert created.status_code == 200, created.text
    profile = created.json()
    assert profile["customerId"] == "gw-ann" and profile["householdSize"] == 3
    assert profile["preferences"]["favoriteBrands"] == ["Roma"]
    assert "allergens" in profile  # fields without presence are written even when empty

    again = stack.http.post("/v1/customers/register", json={"customerId": "gw-ann"})
    assert again.status_code == 409 and status_of(again)["code"] == grpc.StatusCode.ALREADY_EXISTS.value[0]

    via_grpc = stack.stub(customer_pb2_grpc.CustomerServiceStub).GetCustomerProfile(
        customer_pb2.GetCustomerProfileRequest(customer_id="gw-ann")
    )
    fetched = stack.http.get("/v1/customers/gw-ann/profile")
    assert fetched.json() == json_format.MessageToDict(via_grpc, always_print_fields_with_no_presence=True)

    patched = stack.http.patch(
        "/v1/customers/gw-ann/preferences",
        json={"preferences": {"favoriteBrands": ["Oaty"]}, "updateMask": "favoriteBrands"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["preferences"] == {**profile["preferences"], "favoriteBrands": ["Oaty"]}

    diet = stack.http.post("/v1/customers/gw-ann/dietary-restrictions", json={"restrictions": ["vegan"]})
    assert diet.status_code == 200 and diet.json()["dietaryRestrictions"] == ["vegan"]
    consent = stack.http.post("/v1/customers/gw-ann/consent", json={"consent": {"marketing": True}})
    assert consent.status_code == 200 and consent.json()["consent"]["marketing"] is True
    demographics = stack.http.patch(
        "/v1/customers/gw-ann/demographics", json={"postcode": "AB1 2CD", "updateMask": "postcode"}
    )
    assert demographics.status_code == 200 and demographics.json()["postcode"] == "AB1 2CD"

    exported = stack.http.get("/v1/customers/gw-ann/export")
    assert exported.status_code == 200 and exported.json()["profile"]["customerId"] == "gw-ann"
    deleted = stack.http.delete("/v1/customers/gw-ann")
    assert deleted.status_code == 200 and "erased" in deleted.json()
    gone = stack.http.get("/v1/customers/gw-ann/profile")
    assert gone.status_code == 404 and "gw-ann" in status_of(gone)["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customerId": "gw-bad", "preferences": {"favouriteBrands": ["x"]}}, "preferences.favouriteBrands"),
        ({"customerId": "gw-bad", "nickname": "x"}, "nickname"),
        ({"customerId": "gw-bad", "householdSize": 99}, "household_size"),  # the server's validation
        ({"customerId": "gw-bad", "householdSize": "many"}, "body"),  # json_format's type check
        ({"customerId": "gw-bad", "dietaryRestrictions": ["carnivore"]}, "dietary_restrictions[0]"),
    ],
)
def test_bad_registration_names_the_field_and_creates_nothing(stack: Any, body: Any, field: str) -> None:
    response = stack.http.post("/v1/customers/register", json=body)
    assert violated_field(response) == field
    assert stack.http.get("/v1/customers/gw-bad/profile").status_code == 404


def test_purchases_record_list_and_page(stack: Any) -> None:
    register(stack, "gw-buyer")
    line = {"orderId": "o1", "productId": stack.product_ids[0], "quantity": 2, "unitPrice": 1.5, "purchasedAt": NOW}
    one = stack.http.post("/v1/customers/gw-buyer/purchases", json={"purchase": line})
    assert one.status_code == 200, one.text
    many = stack.http.post(
        "/v1/customers/gw-buyer/purchases:batchRecord",
        json={"purchases": [{**line, "orderId": "o2", "productId": p} for p in stack.product_ids[1:4]]},
    )
    assert many.status_code == 200 and len(many.json()["purchases"]) == 3
    first = stack.http.get("/v1/customers/gw-buyer/purchases", params={"pageSize": 2})
    assert first.status_code == 200 and len(first.json()["purchases"]) == 2
    token = first.json()["nextPageToken"]
    rest = stack.http.get("/v1/customers/gw-buyer/purchases", params={"page_size": 10, "pageToken": token})
    assert len(rest.json()["purchases"]) == 2 and rest.json()["nextPageToken"] == ""

    bad = stack.http.post("/v1/customers/gw-buyer/purchases", json={"purchase": {**line, "quantity": 0}})
    assert violated_field(bad) == "purchase.quantity"


def test_interaction_body_is_the_interaction_field(stack: Any) -> None:
    register(stack, "gw-viewer")
    response = stack.http.post(
        "/v1/customers/gw-viewer/interactions",
        json={"kind": "INTERACTION_KIND_VIEW", "productId": stack.product_ids[0], "occurredAt": NOW},
    )
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "INTERACTION_KIND_VIEW"
    wrapped = stack.http.post("/v1/customers/gw-viewer/interactions", json={"interaction": {"kind": 1}})
    assert violated_field(wrapped) == "interaction.interaction"


@pytest.mark.parametrize("form", ["ndjson", "csv"])
def test_import_purchases_upload(stack: Any, form: str) -> None:
    customer = f"gw-import-{form}"
    register(stack, customer)
    products = stack.product_ids[:3]
    if form == "ndjson":
        content = "\n".join(
            json.dumps(
                {
                    "customerId": customer,
                    "purchase": {"orderId": "i1", "productId": p, "quantity": 1, "unitPrice": 2.0, "purchasedAt": NOW},
                }
            )
            for p in products
        ).encode()
        content_type = "application/x-ndjson"
    else:
        header = "customer_id,purchase.order_id,purchase.product_id,purchase.quantity,purchase.unit_price,purchase.purchased_at"
        content = "\n".join([header, *(f"{customer},i1,{p},1,2.0,{NOW}" for p in products)]).encode()
        content_type = "text/csv"
    response = stack.http.post("/v1/purchases/import", content=content, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["rowsReceived"] == "3"  # int64 is a string in proto3 JSON
    listed = stack.http.get(f"/v1/customers/{customer}/purchases").json()["purchases"]
    assert sorted(p["productId"] for p in listed) == sorted(products)


@pytest.mark.parametrize(
    ("content_type", "rows", "field"),
    [
        (
            "application/x-ndjson",
            ['{"customerId": "gw-imp-bad", "purchase": {}}', '{"customerId": 1, "x": 2}'],
            "rows[1].x",
        ),
        ("application/x-ndjson", ['{"customerId": "gw-imp-bad"', ""], "rows[0]"),
        ("text/csv", ["customer_id,purchase.quantity", "gw-imp-bad,1,2"], "rows[0]"),
        ("text/csv", ["customer_id,purchase.quantity", "gw-imp-bad,lots"], "rows[0].purchase.quantity"),
        # The server's own all-or-nothing validation, after the upload was streamed.
        (
            "application/x-ndjson",
            [
                '{"customerId": "gw-imp-bad", "purchase": {"orderId": "o", "productId": "1", "quantity": 1, '
                f'"purchasedAt": "{NOW}"}}}}',
                '{"customerId": "gw-imp-bad", "purchase": {"orderId": "o", "productId": "2", "quantity": 0, '
                f'"purchasedAt": "{NOW}"}}}}',
            ],
            "rows[1].purchase.quantity",
        ),
    ],
)
def test_a_bad_upload_row_is_named_and_nothing_is_imported(
    stack: Any, content_type: str, rows: list[str], field: str
) -> None:
    if stack.http.get("/v1/customers/gw-imp-bad/profile").status_code == 404:
        register(stack, "gw-imp-bad")
    response = stack.http.post("/v1/purchases/import", content="\n".join(rows), headers={"content-type": content_type})
    assert violated_field(response) == field
    assert stack.http.get("/v1/customers/gw-imp-bad/purchases").json()["purchases"] == []


# --- catalog --------------------------------------------------------------------------------


def test_catalog_upsert_get_and_list_with_repeated_query_keys(stack: Any) -> None:
    product = {"productId": "gw-p1", "name": "Gateway Tea", "department": "beverages", "aisle": "tea", "price": 3.0}
    upserted = stack.http.post("/v1/products:batchUpsert", json={"products": [product]})
    assert upserted.status_code == 200 and upserted.json()["upserted"] == 1
    got = stack.http.get("/v1/products/gw-p1")
    via_grpc = stack.stub(catalog_pb2_grpc.CatalogServiceStub).GetProduct(
        catalog_pb2.GetProductRequest(product_id="gw-p1")
    )
    assert got.json() == json_format.MessageToDict(via_grpc, always_print_fields_with_no_presence=True)
    listed = stack.http.get(
        "/v1/products", params=[("departments", "beverages"), ("departments", "frozen"), ("pageSize", "500")]
    )
    departments = {p["department"] for p in listed.json()["products"]}
    assert listed.status_code == 200 and departments <= {"beverages", "frozen"} and "beverages" in departments
    missing = stack.http.get("/v1/products/no%2Dsuch")  # percent-decoded before the call
    assert missing.status_code == 404 and "no-such" in status_of(missing)["message"]


# --- recommendations ----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["STRATEGY_BALANCED", "STRATEGY_REPLENISH", "STRATEGY_DISCOVER"])
def test_recommendations_match_grpc(stack: Any, strategy: str) -> None:
    customer = stack.customer_ids[0]
    rest = stack.http.get(f"/v1/customers/{customer}/recommendations", params={"limit": 5, "strategy": strategy})
    assert rest.status_code == 200, rest.text
    direct = stack.stub(recommendation_pb2_grpc.RecommendationServiceStub).GetRecommendations(
        recommendation_pb2.GetRecommendationsRequest(
            customer_id=customer, limit=5, strategy=recommendation_pb2.Strategy.Value(strategy)
        )
    )
    items = rest.json()["items"]
    assert [i["productId"] for i in items] == [i.product_id for i in direct.items]
    assert [i["reasons"] for i in items] == [list(i.reasons) for i in direct.items]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"strategy": "STRATEGY_BEST"}, "strategy"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "99999999999"}, "limit"),
        ({"asOf": "yesterday"}, "asOf"),
        ({"filters.maxPrice": "cheap"}, "filters.maxPrice"),
        ({"filters": "x"}, "filters"),
        ({"customerId": "someone-else"}, "customerId"),
        ({"limit": ["1", "2"]}, "limit"),
        ({"limit": "201"}, "limit"),  # the server's range check
    ],
)
def test_bad_query_parameters_name_the_parameter(stack: Any, params: dict[str, Any], field: str) -> None:
    response = stack.http.get(f"/v1/customers/{stack.customer_ids[0]}/recommendations", params=params)
    assert violated_field(response) == field


def test_nested_repeated_and_timestamp_query_parameters_reach_the_server(stack: Any) -> None:
    customer = stack.customer_ids[0]
    response = stack.http.get(
        f"/v1/customers/{customer}/recommendations",
        params=[("filters.maxPrice", "0.01"), ("filters.includeDepartments", "nowhere"), ("as_of", NOW)],
    )
    assert response.status_code == 200 and response.json()["items"] == []


def test_the_other_recommendation_rpcs(stack: Any) -> None:
    customer, product = stack.customer_ids[0], stack.product_ids[0]
    personalized = stack.http.get("/v1/recommendations/personalized", params={"customerId": customer, "limit": 3})
    assert personalized.status_code == 200 and len(personalized.json()["items"]) <= 3
    similar = stack.http.get(f"/v1/products/{product}/similar", params={"limit": 4})
    assert similar.status_code == 200 and similar.json()["items"]
    direct = stack.stub(recommendation_pb2_grpc.RecommendationServiceStub).GetSimilarProducts(
        recommendation_pb2.GetSimilarProductsRequest(product_id=product, limit=4)
    )
    assert [i["productId"] for i in similar.json()["items"]] == [i.product_id for i in direct.items]
    together = stack.http.post(
        "/v1/recommendations/frequently-bought-together", json={"basketProductIds": [product], "limit": 3}
    )
    assert together.status_code == 200
    trending = stack.http.get("/v1/recommendations/trending", params={"limit": 3, "windowDays": 14})
    assert trending.status_code == 200 and trending.json()["windowDays"] == 14
    seasonal = stack.http.get("/v1/recommendations/seasonal", params={"limit": 3, "asOf": NOW})
    assert seasonal.status_code == 200 and seasonal.json()["weekOfYear"] == 2
    served = personalized.json()
    if served["items"]:
        feedback = stack.http.post(
            "/v1/recommendations/feedback",
            json={
                "recommendationId": served["recommendationId"],
                "customerId": customer,
                "productId": served["items"][0]["productId"],
                "event": "FEEDBACK_EVENT_CLICKED",
            },
        )
        assert feedback.status_code in (200, 400), feedback.text  # 400 only if the event enum is named otherwise
        if feedback.status_code == 400:
            assert violated_field(feedback) in ("event", "body")


# --- insights and admin -------------------------------------------------------------------


def test_insights_rpcs(stack: Any) -> None:
    customer = stack.customer_ids[1]
    analysis = stack.http.post(f"/v1/customers/{customer}/ai-analysis", json={})
    assert analysis.status_code == 200 and analysis.json()["source"] == "local"
    latest = stack.http.get(f"/v1/customers/{customer}/ai-insights")
    assert latest.json()["summary"] == analysis.json()["summary"]
    predictions = stack.http.get(f"/v1/customers/{customer}/consumption-predictions", params={"limit": 3})
    assert predictions.status_code == 200 and "nextVisitAt" in predictions.json()
    accuracy = stack.http.get("/v1/ai/prediction-accuracy")
    assert accuracy.status_code == 200, accuracy.text


def test_batch_analysis_streams_ndjson(stack: Any) -> None:
    customers = stack.customer_ids[2:5]
    with stack.http.stream(
        "POST", "/v1/ai/batch-analysis", json={"customerIds": customers, "progressEvery": 1}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(set(line) == {"result"} for line in lines), lines
    assert lines[-1]["result"]["done"] == len(customers) == lines[-1]["result"]["total"]


def test_stream_errors_before_the_first_message_get_their_status(stack: Any) -> None:
    response = stack.http.post("/v1/ai/batch-analysis", json={"customerIds": ["nobody-at-all"] * 2, "concurrency": -1})
    assert violated_field(response) == "concurrency"


def test_admin_models_list_roll_back_and_activate(stack: Any) -> None:
    models = stack.http.get("/v1/admin/models").json()["models"]
    newest, older = models[0]["version"], models[1]["version"]
    assert models[0]["active"]
    rolled = stack.http.post("/v1/admin/models:rollback", json={})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == older and rolled.json()["active"]
    oldest = stack.http.post("/v1/admin/models:rollback", json={})  # FAILED_PRECONDITION is 400
    assert oldest.status_code == 400 and status_of(oldest)["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    activated = stack.http.post(f"/v1/admin/models/{newest}:activate", json={"force": True})
    assert activated.status_code == 200, activated.text
    assert activated.json()["version"] == newest and activated.json()["active"]
    unknown = stack.http.post("/v1/admin/models/no-such-version:activate", json={})
    assert unknown.status_code == 404 and "no-such-version" in status_of(unknown)["message"]
    assert [m["version"] for m in stack.http.get("/v1/admin/models").json()["models"] if m["active"]] == [newest]


def test_retrain_without_activation(stack: Any) -> None:
    before = stack.http.get("/v1/admin/models").json()["models"]
    response = stack.http.post("/v1/admin/recommendations/retrain", json={"skipActivation": True}, timeout=120)
    assert response.status_code == 200, response.text
    assert not response.json()["model"]["active"]
    active = [m for m in stack.http.get("/v1/admin/models").json()["models"] if m["active"]]
    assert [m["version"] for m in active] == [m["version"] for m in before if m["active"]]


@pytest.mark.parametrize(
    "path",
    ["/v1/admin/recommendations/performance", "/v1/admin/recommendations/roi", "/v1/admin/recommendations/impact"],
)
def test_reports_answer_with_the_server_status(stack: Any, path: str) -> None:
    response = stack.http.get(path, params={"period.startTime": "2026-01-01T00:00:00Z"})
    if response.status_code != 200:  # not implemented in this server version yet
        assert response.status_code == 501 and status_of(response)["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]


# --- HTTP-level errors, headers and deadlines -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("GET", "/v1/nowhere", {}, 404, None),
        ("PUT", "/v1/products/p1", {}, 405, None),
        ("POST", "/v1/customers/register", {"content": b"{not json"}, 400, "body"),
        ("POST", "/v1/customers/register", {"content": b"[1, 2]"}, 400, "body"),
        ("POST", "/v1/customers/register", {"params": {"customerId": "x"}}, 400, "customerId"),
        ("GET", "/v1/products/p1", {"content": b'{"a": 1}'}, 400, "body"),
        ("GET", "/v1/products/p1", {"headers": {"grpc-timeout": "soon"}}, 400, "grpc-timeout"),
    ],
)
def test_http_level_errors(
    stack: Any, method: str, path: str, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    response = stack.http.request(method, path, **kwargs)
    assert response.status_code == status
    if field:
        assert violated_field(response) == field
    else:
        status_of(response)
    if status == 405:
        assert response.headers["allow"] == "GET"


def test_deadline_from_grpc_timeout_header(stack: Any) -> None:
    response = stack.http.post(
        "/v1/admin/recommendations/retrain", json={"skipActivation": True}, headers={"grpc-timeout": "1m"}
    )
    assert response.status_code == 504 and status_of(response)["code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def test_request_id_reaches_the_server(stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="omnix.access"):
        response = stack.http.get(f"/v1/products/{stack.product_ids[0]}", headers={"x-request-id": "gw-test-req-1"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "gw-test-req-1"
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
    assert any(entry["request_id"] == "gw-test-req-1" for entry in logged), logged
    generated = stack.http.get(f"/v1/products/{stack.product_ids[0]}", headers={"x-request-id": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces" and len(generated.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("headers", "metadata", "timeout"),
    [
        ({}, [("x-request-id", "r1")], 30.0),
        ({"authorization": "Bearer abc"}, [("x-request-id", "r1"), ("authorization", "Bearer abc")], 30.0),
        ({"grpc-metadata-tenant": "north"}, [("x-request-id", "r1"), ("tenant", "north")], 30.0),
        ({"grpc-timeout": "250m"}, [("x-request-id", "r1")], 0.25),
        ({"grpc-timeout": "2S", "cookie": "c=1"}, [("x-request-id", "r1")], 2.0),
    ],
)
def test_headers_become_metadata_and_deadline(
    headers: dict[str, str], metadata: list[tuple[str, str]], timeout: float
) -> None:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    got_metadata, got_timeout = _call_options(Request(scope), "r1", 30.0)
    assert list(got_metadata) == metadata and got_timeout == pytest.approx(timeout)


def test_http_status_mapping_is_grpc_gateways() -> None:
    assert {code.name: HTTP_STATUS[code] for code in grpc.StatusCode} == {
        "OK": 200,
        "CANCELLED": 499,
        "UNKNOWN": 500,
        "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403,
        "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400,
        "ABORTED": 409,
        "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
        "UNAVAILABLE": 503,
        "DATA_LOSS": 500,
        "UNAUTHENTICATED": 401,
    }


# --- rule shapes the omnix.v1 protos do not use yet -----------------------------------------


def test_additional_bindings_nested_path_fields_and_response_body(stack: Any) -> None:
    """Rules bound in the test: an extra path for GetProduct, and recommendations under a price
    ceiling taken from the path (`{filters.max_price}`) answering just the `items` list."""
    product_rule = http_pb2.HttpRule(
        get="/v1/products/{product_id}",
        additional_bindings=[http_pb2.HttpRule(get="/v1/catalog/{product_id}/details")],
    )
    recommendations_rule = http_pb2.HttpRule(
        get="/v1/customers/{customer_id}/recommendations/under/{filters.max_price}", response_body="items"
    )
    table = build_route_table(
        rules={
            "omnix.v1.CatalogService.GetProduct": product_rule,
            "omnix.v1.RecommendationService.GetRecommendations": recommendations_rule,
        }
    )

    async def start() -> GatewayServer:
        server = GatewayServer(
            GatewayConfig(target=stack.grpc_address, console=False), bind("127.0.0.1", 0), routes=table
        )
        await server.start()
        return server

    server = stack.on_loop(start())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
            product = stack.product_ids[0]
            assert http.get(f"/v1/catalog/{product}/details").json() == http.get(f"/v1/products/{product}").json()
            customer = stack.customer_ids[0]
            cheap = http.get(f"/v1/customers/{customer}/recommendations/under/0.01")
            assert cheap.status_code == 200 and cheap.json() == []
            items = http.get(f"/v1/customers/{customer}/recommendations/under/1000", params={"limit": 3}).json()
            assert isinstance(items, list) and 0 < len(items) <= 3 and "productId" in items[0]
            bad = http.get(f"/v1/customers/{customer}/recommendations/under/cheap")
            assert violated_field(bad) == "filters.max_price"
            spec = http.get("/openapi.json").json()
            assert spec["paths"]["/v1/catalog/{product_id}/details"]["get"]["operationId"].endswith("_2")
    finally:
        stack.on_loop(server.stop())


def test_gateway_without_a_server_answers_unavailable() -> None:
    async def run() -> int:
        server = GatewayServer(GatewayConfig(target="127.0.0.1:1", console=False), bind("127.0.0.1", 0))
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                response = await http.get("/v1/products/p1", headers={"grpc-timeout": "2S"})
                assert status_of(response)["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
                return response.status_code
        finally:
            await server.stop()

    assert asyncio.run(run()) == 503


def _messages_for_json() -> list[Any]:
    from google.protobuf import struct_pb2, timestamp_pb2

    from omnix_recs._proto.omnix.v1 import admin_pb2

    stamp = timestamp_pb2.Timestamp(seconds=1_767_607_200, nanos=5_000)
    body = struct_pb2.Struct()
    body.update({"a": 1, "b": [True, None, "x"], "c": {"d": 2.5}})
    return [
        admin_pb2.ModelVersion(
            version="v1",
            created_at=stamp,
            active=True,
            metrics={"recall@10": 0.5, "nan": float("nan"), "big": float("inf")},
            blends={"replenish": admin_pb2.Blend(weights={"taste": 1.0}, per_category_cap=3)},
        ),
        admin_pb2.ModelVersion(),
        customer_pb2.CustomerProfile(customer_id="c", preferences=customer_pb2.Preferences(budget_per_trip=0.0)),
        customer_pb2.CustomerProfile(customer_id="c", preferences=customer_pb2.Preferences(favorite_brands=["a", "b"])),
        customer_pb2.ImportPurchasesResponse(rows_received=2**40, customers=3),
        customer_pb2.DeleteCustomerResponse(erased={"purchases": 12, "profile": 1}),
        customer_pb2.ExportCustomerDataResponse(
            documents=[customer_pb2.StoredDocument(kind="k", created_at=stamp, body=body)]
        ),
        recommendation_pb2.GetRecommendationsRequest(
            customer_id="c", strategy=7, as_of=stamp
        ),  # an unknown enum number
        customer_pb2.Interaction(kind=customer_pb2.INTERACTION_KIND_CART_ADD, quantity=2),
    ]


@pytest.mark.parametrize("message", _messages_for_json(), ids=lambda m: type(m).__name__)
def test_response_json_is_exactly_json_formats(message: Any) -> None:
    from omnix_recs.gateway.transcode import message_to_dict

    expected = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    assert json.dumps(message_to_dict(message), sort_keys=True) == json.dumps(expected, sort_keys=True)
