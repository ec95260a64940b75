"""Hostile requests: undecodable bytes, huge values, control characters. Each gets a clear
INVALID_ARGUMENT, one access-log line, no traceback, and changes nothing."""

from __future__ import annotations

import json
import logging
import time

import grpc
import pytest

from omnix_recs._proto.omnix.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2, customer_pb2, customer_pb2_grpc


@pytest.fixture
def server(running_server):
    return running_server()


def raw_call(server, method: str, payload: bytes, *, stream: bool = False) -> grpc.RpcError:
    """Send bytes that are not the request message (no serializer: they go out as they are)."""
    if stream:
        rpc = server.channel.stream_unary(method)
        call = lambda: rpc(iter([payload]), timeout=10)  # noqa: E731
    else:
        rpc = server.channel.unary_unary(method)
        call = lambda: rpc(payload, timeout=10)  # noqa: E731
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def access_lines(caplog, count: int = 1, timeout_s: float = 5.0) -> list[dict]:
    """The access-log lines so far, waiting for `count` of them: the server writes its line
    just after the status has gone out, so the client may see the status first."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            time.sleep(0.05)  # and a moment more, to see a second line if there were one
            return [json.loads(r.getMessage()) for r in caplog.records if r.name == "omnix.access"]
        time.sleep(0.01)


# Truncated varint, a field with wire type 7, a length running past the end.
GARBAGE = [b"\x08", b"\x0f\x01", b"\x0a\xff\xff\x03abc"]


@pytest.mark.parametrize("payload", GARBAGE)
@pytest.mark.parametrize(
    ("method", "stream"),
    [
        ("/omnix.v1.CustomerService/RegisterCustomer", False),
        ("/omnix.v1.RecommendationService/GetRecommendations", False),
        ("/omnix.v1.CustomerService/ImportPurchases", True),
    ],
)
def test_undecodable_requests_are_invalid_argument_with_one_log_line(server, caplog, method, stream, payload):
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="omnix.access"):
        error = raw_call(server, method, payload, stream=stream)
        access = access_lines(caplog)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"the request is not a valid {method.rsplit('/', 1)[1]} request message")
    assert [(a["method"], a["code"]) for a in access] == [(method, "INVALID_ARGUMENT")]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("size", [6_000, 1_000_000])
def test_a_huge_bad_value_is_quoted_in_at_most_100_characters(server, size):
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id="c1"), timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        customers.SetDietaryRestrictions(
            customer_pb2.SetDietaryRestrictionsRequest(customer_id="c1", restrictions=["v" * size]),
            timeout=10,
        )
    error = info.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"restrictions[0]: unknown value '{'v' * 100}'... ({size} characters)")
    assert len(error.details()) < 400
    assert sum(len(v) for _, v in error.trailing_metadata()) < 2_000


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Milk\x00", "must not contain control characters (U+0000 at position 4)"),
        ("\x1b[31mRED\x1b[0m Milk", "must not contain control characters (U+001B at position 0)"),
        ("Milk\x9b", "must not contain control characters (U+009B at position 4)"),
        ("Two\nlines", "must not contain control characters (U+000A at position 3)"),
    ],
)
def test_control_characters_in_names_are_refused_and_nothing_is_written(server, name, message):
    catalog = server.stub(catalog_pb2_grpc.CatalogServiceStub)
    product = common_pb2.Product(product_id="p1", name=name, department="dairy", aisle="milk")
    with pytest.raises(grpc.RpcError) as info:
        catalog.UpsertProducts(catalog_pb2.UpsertProductsRequest(products=[product]), timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"products[0].name: {message}"
    assert server.store.get_products(["p1"]) == {}


@pytest.mark.parametrize("customer_id", ["c\x00", "c\x1b[2J", "c 1", "c\u202e1"])
def test_control_characters_in_ids_are_refused(server, customer_id):
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    with pytest.raises(grpc.RpcError) as info:
        customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id=customer_id), timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("customer_id: may only contain letters, digits")


def test_list_purchases_of_an_unknown_customer_is_not_found(server):
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    with pytest.raises(grpc.RpcError) as info:
        customers.ListPurchases(customer_pb2.ListPurchasesRequest(customer_id="nobody"), timeout=10)
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.NOT_FOUND, "customer 'nobody' not found")
