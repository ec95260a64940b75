"""HTTP ⇄ protobuf: requests from path, query and JSON body; responses and errors as JSON.

JSON is protobuf's canonical mapping (`json_format`): lowerCamelCase names out, either name
in, int64 as strings, enums by name. Fields a message does not have are refused with the
dotted path of the first one, before anything is called. Errors are `google.rpc.Status` JSON
(`code`, `message`, `details`) with the HTTP status grpc-gateway uses for the gRPC code.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import code_pb2, error_details_pb2, status_pb2

from omnix_recs.gateway.routes import Route

# grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
# Messages whose JSON form is not an object of their fields (strings, numbers, free-form).
_OPAQUE_PREFIX = "google.protobuf."


class GatewayError(Exception):
    """An error the gateway answers itself (bad HTTP input), shaped like a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str, *, field: str | None = None, http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.http_status = http_status or HTTP_STATUS.get(code, 500)

    @classmethod
    def bad_field(cls, field: str, problem: str) -> GatewayError:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}", field=field)

    def status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.field is not None:
            violation = error_details_pb2.BadRequest.FieldViolation(field=self.field, description=self.message)
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        return status


@dataclass(frozen=True, slots=True)
class ErrorReply:
    http_status: int
    body: bytes


def status_json(status: status_pb2.Status) -> bytes:
    return orjson.dumps(json_format.MessageToDict(status, always_print_fields_with_no_presence=True))


def error_from_rpc(error: grpc.aio.AioRpcError) -> ErrorReply:
    """The server's status (with its details, e.g. BadRequest) as HTTP."""
    code = error.code()
    status = status_pb2.Status(code=code.value[0], message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            parsed = status_pb2.Status.FromString(value)
            if parsed.code == status.code:  # the details belong to this status
                status = parsed
    return ErrorReply(HTTP_STATUS.get(code, 500), status_json(status))


def error_from_gateway(error: GatewayError) -> ErrorReply:
    return ErrorReply(error.http_status, status_json(error.status()))


def not_found(path: str) -> ErrorReply:
    return error_from_gateway(GatewayError(grpc.StatusCode.NOT_FOUND, f"no REST route for {path}"))


def method_not_allowed(method: str, path: str) -> ErrorReply:
    status = status_pb2.Status(code=code_pb2.UNIMPLEMENTED, message=f"{method} is not allowed on {path}")
    return ErrorReply(405, status_json(status))


# --- requests -----------------------------------------------------------------------------


def parse_json(raw: bytes, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError.bad_field(where, f"not valid JSON ({exc})") from None


def build_request(
    route: Route,
    path_values: Mapping[tuple[str, ...], str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message for one HTTP call of `route` (body first, then path, then query)."""
    request = GetMessageClass(route.request_type)()
    if route.body == "*":
        if body.strip():
            _merge_json(parse_json(body, "body"), request, "")
    elif route.body:
        if body.strip():
            field = route.request_type.fields_by_name[route.body]
            _merge_json({field.json_name: parse_json(body, route.body)}, request, "")
    elif body.strip():
        raise GatewayError.bad_field("body", f"{route.http_method} {route.template.text} takes no request body")
    for field_path, text in path_values.items():
        set_from_text(request, field_path, text, ".".join(field_path))
    if query:
        if route.body == "*":
            raise GatewayError.bad_field(
                query[0][0], "query parameters are not accepted here: every field goes in the JSON body"
            )
        _apply_query(route, request, query)
    return request


def message_from_json(value: Any, message: Message, where: str) -> Message:
    """Fill `message` from parsed JSON; `where` prefixes field paths in errors (e.g. `rows[3]`)."""
    _merge_json(value, message, where)
    return message


def _merge_json(value: Any, message: Message, where: str) -> None:
    if not isinstance(value, dict):
        raise GatewayError.bad_field(where or "body", f"expected a JSON object for {message.DESCRIPTOR.full_name}")
    unknown = unknown_field(value, _descriptor_of(message), where)
    if unknown is not None:
        raise GatewayError.bad_field(unknown, "unknown field")
    try:
        json_format.ParseDict(value, message)
    except json_format.ParseError as exc:
        # Messages read like 'Failed to parse quantity field: ...'; name where it happened too.
        raise GatewayError.bad_field(where or "body", str(exc).splitlines()[0]) from None


def _fields_by_any_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    fields: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        fields[field.name] = field
        fields[field.json_name] = field
    return fields


def unknown_field(value: Any, descriptor: Descriptor, where: str) -> str | None:
    """The dotted path of the first key of `value` that `descriptor` has no field for."""
    if not isinstance(value, dict) or descriptor.full_name.startswith(_OPAQUE_PREFIX):
        return None  # not an object (json_format reports the type error) or free-form JSON
    fields = _fields_by_any_name(descriptor)
    for key, item in value.items():
        path = f"{where}.{key}" if where else key
        field = fields.get(key)
        if field is None:
            return path
        nested = field.message_type
        if nested is None or item is None:
            continue
        if nested.GetOptions().map_entry:
            value_type = nested.fields_by_name["value"].message_type
            if value_type is not None and isinstance(item, dict):
                for map_key, map_value in item.items():
                    found = unknown_field(map_value, value_type, f"{path}[{map_key!r}]")
                    if found:
                        return found
        elif field.is_repeated and isinstance(item, list):
            for i, element in enumerate(item):
                found = unknown_field(element, nested, f"{path}[{i}]")
                if found:
                    return found
        else:
            found = unknown_field(item, nested, path)
            if found:
                return found
    return None


def _apply_query(route: Route, request: Message, query: Sequence[tuple[str, str]]) -> None:
    seen: set[tuple[str, ...]] = set()
    bound = route.path_fields | ({route.body} if route.body else set())
    for key, text in query:
        field_path = _query_field_path(route.request_type, key)
        if field_path[0] in bound:
            where = "the path" if field_path[0] in route.path_fields else "the body"
            raise GatewayError.bad_field(key, f"set by {where}; do not repeat it in the query")
        leaf = _leaf(route.request_type, field_path)
        if field_path in seen and not leaf.is_repeated:
            raise GatewayError.bad_field(key, "given more than once, but it is not a repeated field")
        seen.add(field_path)
        set_from_text(request, field_path, text, key)


def _query_field_path(descriptor: Descriptor, key: str) -> tuple[str, ...]:
    path: list[str] = []
    current: Descriptor | None = descriptor
    for part in key.split("."):
        field = _fields_by_any_name(current).get(part) if current is not None else None
        if field is None:
            raise GatewayError.bad_field(key, "unknown query parameter (no such request field)")
        path.append(field.name)
        current = field.message_type if not (field.message_type and _is_opaque(field.message_type)) else None
    return tuple(path)


def _leaf(descriptor: Descriptor, path: tuple[str, ...]) -> FieldDescriptor:
    field = descriptor.fields_by_name[path[0]]
    for name in path[1:]:
        assert field.message_type is not None  # _query_field_path only steps into messages
        field = field.message_type.fields_by_name[name]
    return field


def _descriptor_of(message: Message) -> Descriptor:
    # The stubs type a message's DESCRIPTOR as the Python or the upb class; both are this API.
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
    return descriptor


def _is_opaque(descriptor: Descriptor) -> bool:
    return descriptor.full_name.startswith(_OPAQUE_PREFIX)


def set_from_text(request: Message, field_path: tuple[str, ...], text: str, name: str) -> None:
    """Set the field at `field_path` from its text form (path variable or query value);
    repeated fields get the value appended. `name` is what errors call it."""
    target = request
    for step in field_path[:-1]:
        target = getattr(target, step)
    field: FieldDescriptor = _descriptor_of(target).fields_by_name[field_path[-1]]
    repeated = field.is_repeated
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            raise GatewayError.bad_field(name, "map fields cannot be set from the query; use a JSON body")
        if not field.message_type.full_name.startswith(_OPAQUE_PREFIX):
            raise GatewayError.bad_field(name, f"is a message: set its fields ({name}.<field>=...)")
        child = getattr(target, field.name).add() if repeated else getattr(target, field.name)
        inner: FieldDescriptor | None = field.message_type.fields_by_name.get("value")
        json_value: Any = text
        if inner is not None and inner.message_type is None and field.message_type.full_name.endswith("Value"):
            json_value = scalar_from_text(inner, text, name)  # a wrapper such as Int32Value
        try:
            json_format.ParseDict(json_value, child)
        except json_format.ParseError as exc:
            raise GatewayError.bad_field(name, str(exc).splitlines()[0]) from None
        return
    value = scalar_from_text(field, text, name)
    try:
        if repeated:
            getattr(target, field.name).append(value)
        else:
            setattr(target, field.name, value)
    except (TypeError, ValueError) as exc:
        raise GatewayError.bad_field(name, f"cannot hold {text!r} ({exc})") from None


def scalar_from_text(field: FieldDescriptor, text: str, name: str) -> Any:
    kind = field.type
    try:
        if kind == FieldDescriptor.TYPE_STRING:
            return text
        if kind in _INT_TYPES:
            return int(text)
        if kind in _FLOAT_TYPES:
            return float(text)
        if kind == FieldDescriptor.TYPE_BOOL:
            if text.lower() in ("true", "1"):
                return True
            if text.lower() in ("false", "0"):
                return False
            raise ValueError("expected true or false")
        if kind == FieldDescriptor.TYPE_BYTES:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            enum = field.enum_type
            by_name = enum.values_by_name.get(text)
            if by_name is not None:
                return by_name.number
            number = int(text)
            if number not in enum.values_by_number:
                raise ValueError("no such value")
            return number
    except ValueError as exc:
        expected = _type_name(field)
        raise GatewayError.bad_field(name, f"expected {expected}, got {text!r} ({exc})") from None
    raise GatewayError.bad_field(name, "cannot be set from text")


def _type_name(field: FieldDescriptor) -> str:
    if field.enum_type is not None:
        return "one of " + ", ".join(v.name for v in field.enum_type.values)
    if field.type in _INT_TYPES:
        return "an integer"
    if field.type in _FLOAT_TYPES:
        return "a number"
    return {FieldDescriptor.TYPE_BOOL: "true or false", FieldDescriptor.TYPE_BYTES: "base64"}.get(field.type, "text")


# --- uploads (client streaming) -------------------------------------------------------------


def row_from_ndjson(line: bytes, row_type: Descriptor, index: int) -> Message:
    where = f"rows[{index}]"
    return message_from_json(parse_json(line, where), GetMessageClass(row_type)(), where)


def rows_from_csv(text: str, row_type: Descriptor, first_index: int, header: list[str]) -> list[Message]:
    """CSV lines into row messages: each column is a (dotted) field path of the row message,
    e.g. `customer_id,purchase.order_id,purchase.product_id,...`; empty cells stay unset."""
    rows = []
    for offset, cells in enumerate(csv.reader(io.StringIO(text))):
        if not cells:
            continue
        where = f"rows[{first_index + offset}]"
        if len(cells) != len(header):
            raise GatewayError.bad_field(where, f"has {len(cells)} columns, the header has {len(header)}")
        nested: dict[str, Any] = {}
        for column, cell in zip(header, cells):
            if cell == "":
                continue
            node = nested
            parts = column.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = cell
        rows.append(message_from_json(_typed_cells(nested, row_type, where), GetMessageClass(row_type)(), where))
    return rows


def _typed_cells(cells: dict[str, Any], descriptor: Descriptor, where: str) -> dict[str, Any]:
    """CSV text cells as JSON values of the right type (json_format wants numbers as numbers)."""
    fields = _fields_by_any_name(descriptor)
    typed: dict[str, Any] = {}
    for key, value in cells.items():
        field = fields.get(key)
        path = f"{where}.{key}"
        if field is None:
            raise GatewayError.bad_field(path, "unknown column")
        if isinstance(value, dict):
            if field.message_type is None:
                raise GatewayError.bad_field(path, "is not a message")
            typed[key] = _typed_cells(value, field.message_type, path)
        elif field.message_type is None and field.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
            typed[key] = scalar_from_text(field, value, path)
        else:
            typed[key] = value
    return typed


# --- responses ----------------------------------------------------------------------------


def response_json(route: Route, response: Message) -> bytes:
    return orjson.dumps(response_value(route, response))


def response_value(route: Route, response: Message) -> Any:
    whole = message_to_dict(response)
    if not route.response_body:
        return whole
    field = route.response_type.fields_by_name[route.response_body]
    return whole.get(field.json_name)


def message_to_dict(message: Message) -> dict[str, Any]:
    """`json_format.MessageToDict(message, always_print_fields_with_no_presence=True)`, about
    five times faster: the field plan of each message type is worked out once (json_format
    inspects every field of every message on every call, a quarter of a millisecond for a
    list of ten recommendations). Well-known types still go through json_format."""
    descriptor = _descriptor_of(message)
    if descriptor.full_name.startswith(_OPAQUE_PREFIX):
        value: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
        return value
    result: dict[str, Any] = {}
    for name, json_name, has_presence, convert in _plan(descriptor):
        if has_presence and not message.HasField(name):
            continue
        result[json_name] = convert(getattr(message, name))
    return result


_Converter = Callable[[Any], Any]
_PLANS: dict[str, list[tuple[str, str, bool, _Converter]]] = {}
_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _plan(descriptor: Descriptor) -> list[tuple[str, str, bool, _Converter]]:
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = []
        for field in descriptor.fields:
            convert = _converter(field)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field = field.message_type.fields_by_name["key"]
                value_convert = _converter(field.message_type.fields_by_name["value"])
                is_bool = key_field.type == FieldDescriptor.TYPE_BOOL
                convert = _map_converter(value_convert, is_bool)
            elif field.is_repeated:
                convert = _list_converter(convert)
            plan.append((field.name, field.json_name, field.has_presence, convert))
        _PLANS[descriptor.full_name] = plan
    return plan


def _map_converter(value: _Converter, bool_keys: bool) -> _Converter:
    def convert(entries: Any) -> dict[str, Any]:
        return {(str(k).lower() if bool_keys else str(k)): value(v) for k, v in entries.items()}

    return convert


def _list_converter(element: _Converter) -> _Converter:
    def convert(values: Any) -> list[Any]:
        return [element(v) for v in values]

    return convert


def _converter(field: FieldDescriptor) -> _Converter:
    kind = field.type
    if field.message_type is not None:
        return message_to_dict
    if field.enum_type is not None:
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda number: names.get(number, number)
    if kind in _INT64_TYPES:
        return str
    if kind in _FLOAT_TYPES:
        shortest = kind == FieldDescriptor.TYPE_FLOAT
        return lambda value: _float_json(value, shortest=shortest)
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("ascii")
    return _identity


def _identity(value: Any) -> Any:
    return value


def _float_json(value: float, *, shortest: bool) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return type_checkers.ToShortestFloat(value) if shortest else value
