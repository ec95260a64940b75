"""GetRecommendations answered as wire bytes: each ranking serialised once, then re-used.

A shopper's list is ranked once and served many times (engine/served_lists.py: `SERVED_LIST_TTL_S`
and `LIST_REUSE_S`); each serving differs from the others only in its `recommendation_id`.
So the response is serialised once per ranking without the id, and every serving appends its
own id to those bytes: a protobuf message may carry its fields in any order, so the result is
the same message a full serialisation gives. The RPC's handler sends bytes as they are
(`send_as_is`), so no response message is built per call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from omnix_recs._proto.omnix.v1 import recommendation_pb2 as pb
from omnix_recs.engine.served_lists import LIST_REUSE_S, SERVED_LIST_TTL_S, Recommendations

# How long a body is kept: as long as its ranking may be served (engine/served_lists.py).
KEEP_S = LIST_REUSE_S + SERVED_LIST_TTL_S
# Bytes of serialised bodies kept per process: a body is about 1.6 KB for 20 items, so this
# holds some 20,000 rankings, every shopper of a busy server's last five minutes (past it the
# oldest go, and their next serving serialises its ranking again).
MAX_BODY_BYTES = 32 * 1024 * 1024
# GetRecommendationsResponse.recommendation_id: field 3, length-delimited (wire type 2).
_RECOMMENDATION_ID_TAG = bytes([3 << 3 | 2])
_ID_FIELD = pb.GetRecommendationsResponse.DESCRIPTOR.fields_by_name["recommendation_id"]
assert _ID_FIELD.number == 3 and _ID_FIELD.type == _ID_FIELD.TYPE_STRING  # what the tag above says

# What the body of a ranking depends on besides the ranking: the experiments' stamps and the
# strategy it is reported under.
Stamp = tuple[tuple[tuple[str, str], ...], int]


class ResponseBodies:
    """Serialised `GetRecommendationsResponse`s without their id, per ranking and stamp, kept
    in the order they were made for as long as their ranking may be served (`keep_s`) and
    within `max_bytes`. Old ones go as new ones come, so a shopper's lists (an erased one's too)
    leave memory within `keep_s` of any traffic. Used from the event loop's thread only: no lock."""

    def __init__(
        self,
        build: Callable[[Recommendations, Stamp], bytes],
        *,
        keep_s: float = KEEP_S,
        max_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        self._clock = clock
        self.size = 0  # bytes of the bodies kept
        self._bodies: OrderedDict[tuple[str, Stamp], tuple[bytes, float]] = OrderedDict()  # oldest first
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._bodies)

    def response(self, answer: Recommendations, stamp: Stamp) -> bytes:
        """The wire bytes of the response serving `answer` (its own recommendation id)."""
        if not answer.ranking_id:  # not a ranking that is served again: nothing worth keeping
            return with_recommendation_id(self._build(answer, stamp), answer.recommendation_id)
        now = self._clock()
        self._drop_old(now)
        key = (answer.ranking_id, stamp)
        kept = self._bodies.get(key)
        if kept is None:
            self.misses += 1
            body = self._build(answer, stamp)
            self._bodies[key] = (body, now + self.keep_s)
            self.size += len(body)
            self._drop_old(now)
        else:
            self.hits += 1
            body = kept[0]
        return with_recommendation_id(body, answer.recommendation_id)

    def _drop_old(self, now: float) -> None:
        while self._bodies:
            body, expires_at = next(iter(self._bodies.values()))
            if expires_at > now and self.size <= self.max_bytes:
                return
            self._bodies.popitem(last=False)
            self.size -= len(body)


def with_recommendation_id(body: bytes, recommendation_id: str) -> bytes:
    """`body` (a serialised response without an id) with `recommendation_id` set."""
    encoded = recommendation_id.encode()
    return b"".join((body, _RECOMMENDATION_ID_TAG, _varint(len(encoded)), encoded))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def send_as_is(response: bytes | Message) -> bytes:
    """A response serializer for handlers that return wire bytes (a message is serialised)."""
    if isinstance(response, bytes):
        return response
    return response.SerializeToString()


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, sent_as_is: Sequence[str] = ()
) -> None:
    """Register `servicer`'s unary methods for `service`, as the generated `add_*_to_server`
    does, except that the methods named in `sent_as_is` return their responses' wire bytes."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise ValueError(f"{method.full_name}: only unary methods are registered here")
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=send_as_is if method.name in sent_as_is else response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
