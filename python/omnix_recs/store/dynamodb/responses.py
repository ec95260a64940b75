"""DynamoDB's item reads parsed by orjson rather than by botocore's walk of the output shape.

botocore parses a JSON response by walking the operation's output shape value by value, in
Python: for a Query page of a thousand items that walk is most of the call's CPU, in the server's
requests and in training's reads alike. For the item reads (Query, Scan, GetItem, BatchGetItem)
the low-level client's answer is the JSON body itself, with one exception: binary values, base64
on the wire, which botocore decodes to bytes. So `parse_item_reads` has orjson parse the
successful answers without a binary value and hands botocore an empty body to walk (it still
adds the response metadata from the headers); errors and answers with binary values (the
purchase journal's) take botocore's way.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

ITEM_READS = ("Query", "Scan", "GetItem", "BatchGetItem")

# A binary (B) or binary set (BS) value's type key. An attribute named B or BS also matches:
# that answer only takes the slower way.
_BINARY_TYPE = re.compile(rb'"BS?"\s*:')


def parse_item_reads(client: Any) -> None:
    """Have `client` (a boto3 DynamoDB client) parse its item reads' answers with orjson."""
    for operation in ITEM_READS:
        client.meta.events.register(f"before-parse.dynamodb.{operation}", _parse_body)


def _parse_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    # botocore updates what it parses with `customized_response_dict`.
    body = response_dict["body"]
    if response_dict["status_code"] >= 300 or not body or _BINARY_TYPE.search(body):
        return
    customized_response_dict.update(orjson.loads(body))
    response_dict["body"] = b"{}"
