"""The REST route table, read from the `google.api.http` options of the omnix.v1 services.

Nothing here is written per RPC: every annotated method becomes one route per binding (its
main rule and each of its `additional_bindings`), with the path template compiled to a regular
expression. Templates follow google/api/http.proto: literal segments, `*`, `**`, variables
`{field}` or `{a.b}` optionally with their own segments (`{name=shelves/*}`), and a final
`:verb`. A malformed annotation stops start-up with the method named, not a request later.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

import omnix_recs._proto.omnix.v1 as generated

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


class RouteTableError(ValueError):
    """An annotation that cannot be served (bad template, unknown field)."""


class CallKind(Enum):
    UNARY = "unary"
    SERVER_STREAMING = "server_streaming"
    CLIENT_STREAMING = "client_streaming"
    BIDI_STREAMING = "bidi_streaming"


@dataclass(frozen=True, slots=True)
class PathVariable:
    group: str  # the regex group capturing it
    field_path: tuple[str, ...]  # proto field names from the request message down


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    pattern: re.Pattern[str]
    variables: tuple[PathVariable, ...]
    literal_chars: int  # how specific the template is: more literal text wins a tie

    def match(self, raw_path: str) -> dict[tuple[str, ...], str] | None:
        """The variables' values (percent-decoded) when `raw_path` (still percent-encoded) fits."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        return {v.field_path: unquote(found.group(v.group)) for v in self.variables}

    @property
    def openapi_path(self) -> str:
        """The template as an OpenAPI path: `{a.b}` stays, `{name=x/*}` becomes `{name}`."""
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", self.text)


def parse_template(text: str) -> PathTemplate:
    """Compile a google.api.http path template (see module docstring)."""
    if not text.startswith("/"):
        raise RouteTableError(f"path template {text!r} must start with '/'")
    body, verb = _split_verb(text)
    variables: list[PathVariable] = []
    regex_parts: list[str] = []
    literal_chars = len(verb)
    for segment in _split_segments(body[1:], text):
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise RouteTableError(f"path template {text!r}: unclosed variable in {segment!r}")
            name, _, sub = segment[1:-1].partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
                raise RouteTableError(f"path template {text!r}: bad variable name {name!r}")
            group = f"v{len(variables)}"
            sub_regex, sub_literals = _segments_regex(_split_segments(sub, text) if sub else ["*"], text)
            literal_chars += sub_literals
            variables.append(PathVariable(group, tuple(name.split("."))))
            regex_parts.append(f"(?P<{group}>{sub_regex})")
        else:
            part, chars = _segments_regex([segment], text)
            literal_chars += chars
            regex_parts.append(part)
    regex = "/" + "/".join(regex_parts) + (re.escape(":" + verb) if verb else "")
    return PathTemplate(text, re.compile(regex), tuple(variables), literal_chars)


def _split_verb(text: str) -> tuple[str, str]:
    last = text.rsplit("/", 1)[-1]
    depth = 0
    for i, char in enumerate(last):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == ":" and depth == 0:
            return text[: len(text) - len(last) + i], last[i + 1 :]
    return text, ""


def _split_segments(text: str, template: str) -> list[str]:
    """Split on '/' outside braces."""
    segments, current, depth = [], "", 0
    for char in text:
        if char == "/" and depth == 0:
            segments.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth not in (0, 1):
            raise RouteTableError(f"path template {template!r}: nested or unbalanced braces")
        current += char
    segments.append(current)
    if any(s == "" for s in segments):
        raise RouteTableError(f"path template {template!r}: empty segment")
    return segments


def _segments_regex(segments: list[str], template: str) -> tuple[str, int]:
    parts, literal_chars = [], 0
    for segment in segments:
        if segment == "*":
            parts.append("[^/]+")
        elif segment == "**":
            parts.append(".+")
        elif re.fullmatch(r"[A-Za-z0-9._~\-]+", segment):
            parts.append(re.escape(segment))
            literal_chars += len(segment)
        else:
            raise RouteTableError(f"path template {template!r}: bad segment {segment!r}")
    return "/".join(parts), literal_chars


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str  # upper case: GET, POST, ...
    template: PathTemplate
    body: str  # "" (no body), "*" (the whole request) or a top-level request field
    response_body: str  # "" (the whole response) or a top-level response field
    method: MethodDescriptor
    kind: CallKind
    binding: int = 0  # 0 for the rule itself, i for its i-th additional binding
    grpc_path: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grpc_path", f"/{self.method.containing_service.full_name}/{self.method.name}")

    @property
    def request_type(self) -> Descriptor:
        return self.method.input_type

    @property
    def response_type(self) -> Descriptor:
        return self.method.output_type

    @property
    def path_fields(self) -> frozenset[str]:
        """Top-level request fields bound (wholly or partly) by the path."""
        return frozenset(v.field_path[0] for v in self.template.variables)

    @property
    def operation_id(self) -> str:
        name = f"{self.method.containing_service.name}_{self.method.name}"
        return f"{name}_{self.binding + 1}" if self.binding else name


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    path_values: dict[tuple[str, ...], str]


class RouteTable:
    """Every route; `match` finds the one for a request, most specific template first."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: (-r.template.literal_chars, r.template.text, r.http_method))
        seen: dict[tuple[str, str], Route] = {}
        for route in self.routes:
            key = (route.http_method, route.template.pattern.pattern)
            if key in seen:
                raise RouteTableError(
                    f"{route.http_method} {route.template.text} is bound twice "
                    f"({seen[key].grpc_path} and {route.grpc_path})"
                )
            seen[key] = route

    def match(self, http_method: str, raw_path: str) -> RouteMatch | None | str:
        """The route and path values; else the allowed methods joined by ", " when the path
        exists under other methods (HTTP 405); else None (404)."""
        allowed: list[str] = []
        for route in self.routes:
            values = route.template.match(raw_path)
            if values is None:
                continue
            if route.http_method == http_method:
                return RouteMatch(route, values)
            allowed.append(route.http_method)
        return ", ".join(sorted(set(allowed))) if allowed else None

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)


def omnix_services() -> list[ServiceDescriptor]:
    """Every service declared in the generated omnix.v1 modules."""
    services: list[ServiceDescriptor] = []
    for info in sorted(pkgutil.iter_modules(generated.__path__), key=lambda m: m.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{generated.__name__}.{info.name}")
            services += module.DESCRIPTOR.services_by_name.values()
    return services


def http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return rule


def build_route_table(
    services: Iterable[ServiceDescriptor] | None = None,
    *,
    rules: dict[str, http_pb2.HttpRule] | None = None,
) -> RouteTable:
    """Routes of every annotated RPC of `services` (default: all of omnix.v1). `rules` maps a
    method's full name to a rule used instead of its annotation (tests bind extra shapes)."""
    routes: list[Route] = []
    for service in omnix_services() if services is None else services:
        for method in service.methods:
            rule = (rules or {}).get(method.full_name) or http_rule(method)
            if rule is not None:
                routes += routes_for(method, rule)
    return RouteTable(routes)


def routes_for(method: MethodDescriptor, rule: http_pb2.HttpRule) -> list[Route]:
    kind = _call_kind(method)
    routes = [_route(method, rule, kind)]
    for i, extra in enumerate(rule.additional_bindings, start=1):
        if extra.additional_bindings:
            raise RouteTableError(f"{method.full_name}: additional_bindings cannot nest")
        routes.append(_route(method, extra, kind, binding=i))
    return routes


def _call_kind(method: MethodDescriptor) -> CallKind:
    client, server = method.client_streaming, method.server_streaming
    if client and server:
        return CallKind.BIDI_STREAMING
    if client:
        return CallKind.CLIENT_STREAMING
    return CallKind.SERVER_STREAMING if server else CallKind.UNARY


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule, kind: CallKind, *, binding: int = 0) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise RouteTableError(f"{method.full_name}: google.api.http rule without a path")
    if pattern == "custom":
        http_method, path = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, path = pattern.upper(), getattr(rule, pattern)
    try:
        template = parse_template(path)
    except RouteTableError as exc:
        raise RouteTableError(f"{method.full_name}: {exc}") from None
    request = method.input_type
    for variable in template.variables:
        leaf = resolve_field_path(request, variable.field_path)
        if leaf is None or leaf.is_repeated or leaf.message_type is not None:
            raise RouteTableError(
                f"{method.full_name}: path variable {'.'.join(variable.field_path)} is not a singular scalar "
                f"field of {request.full_name}"
            )
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise RouteTableError(f"{method.full_name}: body field {rule.body!r} is not in {request.full_name}")
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise RouteTableError(
            f"{method.full_name}: response_body {rule.response_body!r} is not in {method.output_type.full_name}"
        )
    if kind is CallKind.BIDI_STREAMING:
        raise RouteTableError(f"{method.full_name}: bidirectional streaming has no REST mapping here")
    if kind is CallKind.CLIENT_STREAMING and (rule.body != "*" or template.variables):
        raise RouteTableError(f"{method.full_name}: a client-streaming upload needs body '*' and no path variables")
    return Route(http_method, template, rule.body, rule.response_body, method, kind, binding)


def resolve_field_path(message: Descriptor, path: tuple[str, ...]) -> FieldDescriptor | None:
    """The field at `path` (proto names), or None when a step does not exist."""
    current: Descriptor | None = message
    leaf: FieldDescriptor | None = None
    for name in path:
        if current is None:
            return None
        leaf = current.fields_by_name.get(name)
        if leaf is None:
            return None
        current = leaf.message_type
    return leaf
