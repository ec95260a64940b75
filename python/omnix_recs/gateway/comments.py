"""Proto comments by element name, for the OpenAPI descriptions.

The generated `_pb2` modules carry descriptors without source info (protoc leaves comments out
of them), so the comments are read by compiling the `.proto` sources again with
`--include_source_info` when both are at hand: the sources beside the package (a checkout) and
`grpc_tools` (the dev extra). An installed wheel has neither and gets a spec without
descriptions, which is still complete.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

log = logging.getLogger("omnix.gateway")

PROTO_ROOT = Path(__file__).resolve().parents[3] / "proto"
# SourceCodeInfo path numbers (descriptor.proto): where each kind of element sits.
_FILE_MESSAGES, _FILE_ENUMS, _FILE_SERVICES = 4, 5, 6
_MESSAGE_FIELDS, _MESSAGE_NESTED, _MESSAGE_ENUMS = 2, 3, 4
_SERVICE_METHODS = 2
_ENUM_VALUES = 2


@functools.cache
def load_comments(proto_root: Path = PROTO_ROOT) -> dict[str, str]:
    """Leading comments keyed by full name (`omnix.v1.Msg`, `omnix.v1.Msg.field`,
    `omnix.v1.Service.Method`, `omnix.v1.Enum.VALUE`); empty when sources or protoc are absent."""
    if not (proto_root / "omnix").is_dir() or importlib.util.find_spec("grpc_tools") is None:
        return {}
    descriptors = _compile(proto_root)
    comments: dict[str, str] = {}
    for file in descriptors.file:
        if not file.package.startswith("omnix."):
            continue
        by_path = {
            tuple(location.path): _tidy(location.leading_comments)
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }
        _collect(file, by_path, comments)
    return comments


def _compile(proto_root: Path) -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    includes = [str(proto_root), str(Path(protoc.__file__).parent / "_proto")]
    annotations = importlib.util.find_spec("google.api.annotations_pb2")
    if annotations is not None and annotations.origin is not None:
        includes.append(str(Path(annotations.origin).parents[2]))
    protos = sorted(str(p.relative_to(proto_root)) for p in (proto_root / "omnix").rglob("*.proto"))
    with tempfile.TemporaryDirectory(prefix="omnix-protos-") as tmp:
        out = Path(tmp) / "descriptors.binpb"
        args = ["protoc", *(f"-I{d}" for d in includes), "--include_source_info", f"--descriptor_set_out={out}"]
        if protoc.main([*args, *protos]) != 0:
            log.warning("could not compile %s for comments; the API spec has no descriptions", proto_root)
            return descriptor_pb2.FileDescriptorSet()
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _collect(
    file: descriptor_pb2.FileDescriptorProto, by_path: dict[tuple[int, ...], str], out: dict[str, str]
) -> None:
    def put(name: str, path: tuple[int, ...]) -> None:
        if path in by_path:
            out[name] = by_path[path]

    def message(proto: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> None:
        put(name, path)
        for i, field in enumerate(proto.field):
            put(f"{name}.{field.name}", (*path, _MESSAGE_FIELDS, i))
        for i, nested in enumerate(proto.nested_type):
            message(nested, f"{name}.{nested.name}", (*path, _MESSAGE_NESTED, i))
        for i, enum in enumerate(proto.enum_type):
            enum_type(enum, f"{name}.{enum.name}", (*path, _MESSAGE_ENUMS, i))

    def enum_type(proto: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]) -> None:
        put(name, path)
        for i, value in enumerate(proto.value):
            put(f"{name}.{value.name}", (*path, _ENUM_VALUES, i))

    for i, proto in enumerate(file.message_type):
        message(proto, f"{file.package}.{proto.name}", (_FILE_MESSAGES, i))
    for i, enum in enumerate(file.enum_type):
        enum_type(enum, f"{file.package}.{enum.name}", (_FILE_ENUMS, i))
    for i, service in enumerate(file.service):
        put(f"{file.package}.{service.name}", (_FILE_SERVICES, i))
        for j, method in enumerate(service.method):
            put(f"{file.package}.{service.name}.{method.name}", (_FILE_SERVICES, i, _SERVICE_METHODS, j))


def _tidy(comment: str) -> str:
    """Comment text without the space after `//` and without its trailing newline."""
    return "\n".join(line[1:] if line.startswith(" ") else line for line in comment.strip("\n").splitlines()).strip()
