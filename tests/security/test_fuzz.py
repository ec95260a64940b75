"""Fuzzing every RPC: requests built from the message descriptors (hostile strings, huge and
negative numbers, unknown enum values, nested messages) and raw bytes. Whatever comes in, the
answer is a status the caller can act on: never INTERNAL or UNKNOWN, never a huge message."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import omnix_recs._proto.omnix.v1 as generated

EXAMPLES = 12  # per RPC and kind: ~45 RPCs x 2 kinds x 12 = ~1,100 calls per run
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
HOSTILE_TEXT = ["", "c1", "p1", "x" * 300, "a" * 6000, "\x00", "\x1b[2J", "é\u202e", "../../etc/passwd", "1e309"]
INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same calls on every run: a failure in CI reproduces locally
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def declared_methods() -> list[tuple[str, MethodDescriptor]]:
    methods = []
    for info in sorted(pkgutil.iter_modules(generated.__path__), key=lambda m: m.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{generated.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                methods += [(f"/{service.full_name}/{m.name}", m) for m in service.methods]
    return methods


METHODS = declared_methods()


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
    if cpp in INT_RANGES:
        low, high = INT_RANGES[cpp]
        return st.one_of(st.sampled_from([0, 1, -1, low, high]), st.integers(low, high))
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if cpp == FieldDescriptor.CPPTYPE_FLOAT:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-3, 1000))
    raise AssertionError(f"unexpected field type {cpp}")


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` with any subset of their fields set to hostile values."""
    message_class = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if depth >= 2 or field.message_type.GetOptions().map_entry:
                continue
            value = messages(field.message_type, depth + 1)
        else:
            value = scalar(field)
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value

    def build(values: dict[str, Any]) -> Message:
        message = message_class()
        for name, value in values.items():
            target = getattr(message, name)
            if isinstance(value, list):
                target.extend(value)
            elif isinstance(value, Message):
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


def call(channel: grpc.Channel, name: str, method: MethodDescriptor, payload: bytes) -> grpc.StatusCode:
    """Send the request bytes as they are; the status code of the answer."""
    identity = lambda data: data  # noqa: E731
    try:
        if method.client_streaming:
            channel.stream_unary(name, identity, identity)(iter([payload, payload]), timeout=30)
        elif method.server_streaming:
            for _ in channel.unary_stream(name, identity, identity)(payload, timeout=30):
                pass
        else:
            channel.unary_unary(name, identity, identity)(payload, timeout=30)
    except grpc.RpcError as error:
        assert len(error.details() or "") <= 1_100, f"{name}: a {len(error.details())}-character message"
        assert error.code() not in BAD_CODES, f"{name}: {error.code()} {error.details()!r}"
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_every_rpc_survives_hostile_messages(running_server, name, method):
    server = running_server()

    @FUZZ
    @given(request=messages(method.input_type))
    def fuzz(request: Message) -> None:
        call(server.channel, name, method, request.SerializeToString())

    fuzz()


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_every_rpc_survives_raw_bytes(running_server, name, method):
    server = running_server()

    @FUZZ
    @given(payload=st.binary(min_size=1, max_size=64))
    def fuzz(payload: bytes) -> None:
        call(server.channel, name, method, payload)

    fuzz()
