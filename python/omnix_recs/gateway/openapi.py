"""OpenAPI 3.1 from the route table, and the offline `/docs` page that renders it.

Schemas follow protobuf's JSON mapping, so a client generated from the spec sends and reads
exactly what the transcoder accepts: lowerCamelCase properties, 64-bit integers as strings,
enums by name, Timestamps as RFC 3339 strings. Descriptions are the proto comments (see
`comments.py`).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from omnix_recs.gateway.comments import load_comments
from omnix_recs.gateway.routes import CallKind, Route, RouteTable

OPENAPI_VERSION = "3.1.0"
STATUS_SCHEMA = "google.rpc.Status"
# How deep query parameters go into nested request messages (`a.b.c=`).
MAX_QUERY_DEPTH = 3

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # proto3 JSON writes 64-bit integers as strings (and reads either).
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths."},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"]},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}


class _SpecBuilder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {}

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        if descriptor.full_name not in self.schemas:
            self.schemas[descriptor.full_name] = {}  # placeholder first: messages may recurse
            if isinstance(descriptor, EnumDescriptor):
                schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in descriptor.values]}
            else:
                schema = {"type": "object", "properties": {}, "additionalProperties": False}
                for field in descriptor.fields:
                    schema["properties"][field.json_name] = self.field_schema(field)
            self._describe(schema, descriptor.full_name)
            self.schemas[descriptor.full_name] = schema
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}

    def field_schema(self, field: FieldDescriptor, *, element: bool = False) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry and not element:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.field_schema(value)}
        elif field.is_repeated and not element:
            schema = {"type": "array", "items": self.field_schema(field, element=True)}
        elif field.message_type is not None:
            schema = self.ref(field.message_type)
        elif field.enum_type is not None:
            schema = self.ref(field.enum_type)
        else:
            schema = dict(_SCALARS[field.type])
        if not element:
            description = self.comments.get(field.full_name)
            if description:
                # 3.1 allows siblings of $ref; keep the reference intact beside the text.
                schema = {**schema, "description": description}
        return schema

    def _describe(self, schema: dict[str, Any], name: str) -> None:
        description = self.comments.get(name)
        if description:
            schema["description"] = description

    def operation(self, route: Route) -> dict[str, Any]:
        method = route.method
        description = self.comments.get(method.full_name, "")
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "tags": [method.containing_service.name],
            "summary": description.split("\n\n")[0].replace("\n", " ")[:120] if description else method.name,
            "x-grpc-method": route.grpc_path,
        }
        if description:
            operation["description"] = description
        parameters = [self.path_parameter(route, v.field_path) for v in route.template.variables]
        if route.body != "*":
            skip = route.path_fields | ({route.body} if route.body else set())
            parameters += self.query_parameters(route.request_type, (), skip, 0)
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(route)
        if body:
            operation["requestBody"] = body
        operation["responses"] = {
            "200": self.success(route),
            "default": {
                "description": "An error: a google.rpc.Status with the gRPC code, message and details.",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{STATUS_SCHEMA}"}}},
            },
        }
        return operation

    def path_parameter(self, route: Route, field_path: tuple[str, ...]) -> dict[str, Any]:
        descriptor = route.request_type
        field = descriptor.fields_by_name[field_path[0]]
        for name in field_path[1:]:
            assert field.message_type is not None  # checked when the route table was built
            field = field.message_type.fields_by_name[name]
        return {"name": ".".join(field_path), "in": "path", "required": True, "schema": self.field_schema(field)}

    def query_parameters(
        self, descriptor: Descriptor, prefix: tuple[str, ...], skip: frozenset[str] | set[str], depth: int
    ) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = []
        for field in descriptor.fields:
            if not prefix and field.name in skip:
                continue
            name = ".".join((*prefix, field.json_name))
            nested = field.message_type
            if nested is not None and nested.GetOptions().map_entry:
                continue  # maps only travel in JSON bodies
            if nested is not None and nested.full_name not in _WELL_KNOWN:
                if not field.is_repeated and depth < MAX_QUERY_DEPTH:
                    parameters += self.query_parameters(nested, (*prefix, field.json_name), skip, depth + 1)
                continue
            parameter: dict[str, Any] = {"name": name, "in": "query", "schema": self.field_schema(field)}
            if field.is_repeated:
                parameter.update(style="form", explode=True)
            parameters.append(parameter)
        return parameters

    def request_body(self, route: Route) -> dict[str, Any] | None:
        if route.kind is CallKind.CLIENT_STREAMING:
            return {
                "required": True,
                "description": (
                    f"Rows of {route.request_type.full_name}: newline-delimited JSON, one row per line, or CSV "
                    "with a header of (dotted) field names, e.g. customer_id,purchase.order_id,purchase.product_id."
                ),
                "content": {
                    "application/x-ndjson": {"schema": self.ref(route.request_type)},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        if route.body == "*":
            schema = self.ref(route.request_type)
        elif route.body:
            schema = self.field_schema(route.request_type.fields_by_name[route.body])
        else:
            return None
        return {"required": route.body != "*", "content": {"application/json": {"schema": schema}}}

    def success(self, route: Route) -> dict[str, Any]:
        if route.response_body:
            schema = self.field_schema(route.response_type.fields_by_name[route.response_body])
        else:
            schema = self.ref(route.response_type)
        if route.kind is CallKind.SERVER_STREAMING:
            line = {
                "type": "object",
                "properties": {"result": schema, "error": {"$ref": f"#/components/schemas/{STATUS_SCHEMA}"}},
            }
            return {
                "description": 'One JSON object per line: {"result": message}, or a final {"error": status}.',
                "content": {"application/x-ndjson": {"schema": line}},
            }
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def build_spec(routes: RouteTable, *, comments: dict[str, str] | None = None) -> dict[str, Any]:
    builder = _SpecBuilder(load_comments() if comments is None else comments)
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: (r.template.openapi_path, r.http_method)):
        paths.setdefault(route.template.openapi_path, {})[route.http_method.lower()] = builder.operation(route)
    builder.schemas[STATUS_SCHEMA] = {
        "type": "object",
        "description": "The gRPC status of a failed call (google.rpc.Status).",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
        },
    }
    services = sorted({r.method.containing_service for r in routes}, key=lambda s: s.name)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "OMNIX recommendations REST API",
            "version": "v1",
            "description": (
                "REST mapping of the omnix.v1 gRPC services (google.api.http annotations). Errors are "
                "google.rpc.Status JSON; deadlines come from a grpc-timeout header (e.g. 500m, 2S); "
                "x-request-id and authorization are forwarded to the gRPC server."
            ),
        },
        "tags": [{"name": s.name, "description": builder.comments.get(s.full_name, s.full_name)} for s in services],
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.schemas.items()))},
    }


DOCS_PAGE = resources.files("omnix_recs.gateway").joinpath("static/docs.html").read_bytes()
