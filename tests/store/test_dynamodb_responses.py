"""Item reads parsed by orjson (store/dynamodb/responses.py) answer exactly as botocore's own
parse does, on both local servers: every attribute type, pages, batches, missing items, errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from omnix_recs.store.dynamodb.responses import _parse_body, parse_item_reads

_tables = (f"omnix-responses-{n}" for n in itertools.count())

ITEMS = [
    {"pk": {"S": "a"}, "sk": {"N": "1"}, "name": {"S": 'quoted "B": text, ünïcode'}, "price": {"N": "2.50"}},
    {
        "pk": {"S": "a"},
        "sk": {"N": "2"},
        "flags": {"BOOL": True},
        "nothing": {"NULL": True},
        "tags": {"SS": ["vegan", "organic"]},
        "sizes": {"NS": ["1", "2.5"]},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "-3"}, {"M": {}}]}, "empty": {"L": []}}},
    },
    {"pk": {"S": "a"}, "sk": {"N": "3"}, "packed": {"B": b"\x00\x01binary"}, "set": {"BS": [b"\x02", b"\x03"]}},
    {"pk": {"S": "b"}, "sk": {"N": "1"}, "B": {"S": "an attribute named B"}},
]


@pytest.fixture(params=["local_dynamodb", "local_dynoxide"])
def clients(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any, str]]:
    """(botocore's parse, orjson's parse, a table holding ITEMS) on one local server."""
    local = request.getfixturevalue(request.param)

    def client() -> Any:
        return boto3.session.Session().client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=local.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    plain, fast = client(), client()
    parse_item_reads(fast)
    table = next(_tables)
    plain.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for item in ITEMS:
        plain.put_item(TableName=table, Item=item)
    yield plain, fast, table
    plain.delete_table(TableName=table)


def answered(client: Any, operation: str, **parameters: Any) -> dict[str, Any]:
    response: dict[str, Any] = getattr(client, operation)(**parameters)
    response.pop("ResponseMetadata")  # request ids and dates differ
    return response


@pytest.mark.parametrize(
    ("operation", "parameters"),
    [
        ("query", {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "a"}}}),
        ("query", {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "a"}}, "Limit": 1}),
        ("query", {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "zzz"}}}),
        ("scan", {}),
        ("scan", {"Limit": 2, "ReturnConsumedCapacity": "TOTAL"}),
        ("get_item", {"Key": {"pk": {"S": "a"}, "sk": {"N": "2"}}}),
        ("get_item", {"Key": {"pk": {"S": "a"}, "sk": {"N": "3"}}}),  # binary values: botocore's way
        ("get_item", {"Key": {"pk": {"S": "a"}, "sk": {"N": "9"}}}),  # no item
    ],
)
def test_item_reads_answer_as_botocores_parse(
    clients: tuple[Any, Any, str], operation: str, parameters: dict[str, Any]
) -> None:
    plain, fast, table = clients
    assert answered(fast, operation, TableName=table, **parameters) == answered(
        plain, operation, TableName=table, **parameters
    )


def test_batch_gets_answer_as_botocores_parse(clients: tuple[Any, Any, str]) -> None:
    plain, fast, table = clients
    keys = [{"pk": {"S": pk}, "sk": {"N": sk}} for pk, sk in [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")]]
    request = {table: {"Keys": keys, "ConsistentRead": True}}

    def items(client: Any) -> list[dict[str, Any]]:
        found = answered(client, "batch_get_item", RequestItems=request)
        assert not found.get("UnprocessedKeys")
        return sorted(found["Responses"][table], key=lambda item: (item["pk"]["S"], item["sk"]["N"]))

    assert items(fast) == items(plain) and len(items(fast)) == 3


def test_errors_are_botocores(clients: tuple[Any, Any, str]) -> None:
    _, fast, _ = clients
    with pytest.raises(ClientError) as raised:
        fast.query(
            TableName="omnix-responses-missing",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "a"}},
        )
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("status", "body", "parsed"),
    [
        (200, b'{"Items": [{"pk": {"S": "a"}}], "Count": 1}', True),
        (200, b'{"Item": {"blob": {"B" : "AAE="}}}', False),  # binary: botocore decodes it
        (200, b'{"Item": {"blobs": {"BS": ["AAE="]}}}', False),
        (200, b"", False),
        (400, b'{"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}', False),
    ],
)
def test_only_successful_answers_without_binary_values_skip_botocores_parse(
    status: int, body: bytes, parsed: bool
) -> None:
    response = {"status_code": status, "body": body, "headers": {}}
    customized: dict[str, Any] = {}
    _parse_body(response_dict=response, customized_response_dict=customized)
    assert (customized, response["body"]) == ((orjson.loads(body), b"{}") if parsed else ({}, body))
