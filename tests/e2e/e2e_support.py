"""Small helpers for end-to-end tests: building requests and reading gRPC errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from omnix_recs._proto.omnix.v1 import common_pb2

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def purchase(
    order_id: str = "o1",
    product_id: str = "p1",
    *,
    quantity: int = 1,
    unit_price: float = 1.5,
    at: datetime | None = None,
) -> common_pb2.Purchase:
    return common_pb2.Purchase(
        order_id=order_id,
        product_id=product_id,
        quantity=quantity,
        unit_price=unit_price,
        purchased_at=ts(at or days_ago(1)),
    )


def rpc_error(rpc: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """Call `rpc` expecting a failure; return the error."""
    with pytest.raises(grpc.RpcError) as info:
        rpc(*args, **kwargs)
    return info.value


def bad_field(error: grpc.RpcError) -> str:
    """The field named by the google.rpc.BadRequest in an INVALID_ARGUMENT error's details."""
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]
    bad_request = error_details_pb2.BadRequest()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(bad_request)
    field = bad_request.field_violations[0].field
    assert error.details().startswith(f"{field}: ")  # the readable message names it too
    return field
