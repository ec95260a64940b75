"""Fuzzing every RPC and the importers: whatever comes in, the answer is a status the caller
can act on (never INTERNAL or UNKNOWN, never a huge message), the server logs no traceback and
keeps serving, and a refused import file changes nothing.

The bulk of the calls (`test_ten_thousand_hostile_calls`, 10,000 over real gRPC to `omnix
serve` in its own process, serving a small trained shop) come from `fuzz_support.Fuzzer`:
seeded, cheap, built from the message descriptors. The Hypothesis tests add a few examples per
RPC where shrinking matters: a failure there reduces to the smallest request that shows it.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import random
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_support import HOSTILE_TEXT, INT_RANGES, Fuzzer, FuzzServer, trained_shop
from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import omnix_recs._proto.omnix.v1 as generated
from omnix_recs.data.completejourney import import_completejourney
from omnix_recs.data.instacart import import_instacart
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
import test_instacart as instacart  # noqa: E402
from scale_support import free_port  # noqa: E402

CALLS = 10_000  # seeded calls per run, spread evenly over every RPC of the protos
THREADS = 8  # calls in flight at once
EXAMPLES = 4  # Hypothesis examples per RPC and kind, on top of CALLS
IMPORT_CASES = 150  # mutated Instacart folders
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
MAX_DETAILS = 1_100
CALL_TIMEOUT_S = 30.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same calls on every run: a failure in CI reproduces locally
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
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


@dataclass(frozen=True)
class Shop:
    server: FuzzServer
    known: list[str]  # real customer and product ids, so some calls reach the code behind the checks


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("fuzz-shop")
    store_url, model_dir, customers, products = trained_shop(root)
    env = {"OMNIX_STORE": store_url, "OMNIX_MODEL_DIR": str(model_dir), "OMNIX_LOG_LEVEL": "WARNING"}
    server = FuzzServer(env, free_port(), root / "server.log")
    try:
        yield Shop(server, customers[:10] + products[:10])
    finally:
        server.stop()


def checked_call(
    channel: grpc.Channel, name: str, method: MethodDescriptor, payloads: list[bytes]
) -> tuple[grpc.StatusCode, str | None]:
    """The answer's status code, and what is wrong with it (None: it is acceptable)."""
    identity = lambda data: data  # noqa: E731
    try:
        if method.client_streaming:
            channel.stream_unary(name, identity, identity)(iter(payloads), timeout=CALL_TIMEOUT_S)
        elif method.server_streaming:
            for _ in channel.unary_stream(name, identity, identity)(payloads[0], timeout=CALL_TIMEOUT_S):
                pass
        else:
            channel.unary_unary(name, identity, identity)(payloads[0], timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
        if code in BAD_CODES:
            return code, f"{code.name} {details[:300]!r}"
        if len(details) > MAX_DETAILS:
            return code, f"{code.name} with a {len(details)}-character message"
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return code, f"no answer within {CALL_TIMEOUT_S:g} s"
        return code, None
    return grpc.StatusCode.OK, None


def describe(method: MethodDescriptor, payloads: list[bytes]) -> str:
    try:
        message = message_factory.GetMessageClass(method.input_type).FromString(payloads[0])
        return text_format.MessageToString(message, as_one_line=True)[:300]
    except Exception:  # noqa: BLE001 - raw bytes: show them as they are
        return repr(payloads[0][:120])


def planned_calls(known: list[str]) -> list[tuple[str, MethodDescriptor, list[bytes]]]:
    """CALLS requests, each RPC's drawn from its own seed (one RPC's plan does not move when
    another RPC is added); two in three are messages, one in three raw bytes."""
    per_method = -(-CALLS // len(METHODS))
    plan = []
    for name, method in METHODS:
        fuzzer = Fuzzer(zlib.crc32(name.encode()), known)
        for n in range(per_method):
            count = fuzzer.rng.randint(1, 3) if method.client_streaming else 1
            if n % 3 == 2:
                payloads = [fuzzer.raw(method.input_type) for _ in range(count)]
            else:
                payloads = [fuzzer.message(method.input_type).SerializeToString() for _ in range(count)]
            plan.append((name, method, payloads))
    # Interleaved, so that writes, reads and admin work of different services overlap.
    plan.sort(key=lambda entry: zlib.crc32(entry[2][0] + entry[0].encode()))
    return plan


def test_ten_thousand_hostile_calls(shop: Shop) -> None:
    started = time.perf_counter()
    plan = planned_calls(shop.known)
    generated_in = time.perf_counter() - started
    failures: list[str] = []
    lock = threading.Lock()
    codes: Counter[str] = Counter()

    def run(entry: tuple[str, MethodDescriptor, list[bytes]]) -> None:
        name, method, payloads = entry
        code, problem = checked_call(shop.server.channel, name, method, payloads)
        with lock:
            codes[code.name] += 1
            if problem is not None:
                failures.append(f"{name}: {problem} for {describe(method, payloads)}")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, plan))
    elapsed = time.perf_counter() - started
    print(
        f"\nfuzz: {len(plan)} calls over {len(METHODS)} RPCs in {elapsed:.1f} s "
        f"({generated_in:.1f} s generating, {len(plan) / elapsed:.0f} calls/s, {THREADS} in flight): "
        + ", ".join(f"{name} {count}" for name, count in codes.most_common())
    )
    assert shop.server.alive(), shop.server.log()[-3000:]
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:20])
    log = shop.server.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:4000]


# --- Hypothesis: fewer calls, shrunk to the smallest failing request ----------------------------


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
    if cpp in INT_RANGES:
        low, high = INT_RANGES[cpp]
        return st.one_of(st.sampled_from([0, 1, -1 if low < 0 else 2, low, high]), st.integers(low, high))
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


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_every_rpc_survives_hostile_messages(shop: Shop, name: str, method: MethodDescriptor) -> None:
    @FUZZ
    @given(request=messages(method.input_type))
    def fuzz(request: Message) -> None:
        _, problem = checked_call(shop.server.channel, name, method, [request.SerializeToString()])
        assert problem is None, f"{name}: {problem}"

    fuzz()


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_every_rpc_survives_raw_bytes(shop: Shop, name: str, method: MethodDescriptor) -> None:
    @FUZZ
    @given(payload=st.binary(min_size=1, max_size=64))
    def fuzz(payload: bytes) -> None:
        _, problem = checked_call(shop.server.channel, name, method, [payload])
        assert problem is None, f"{name}: {problem}"

    fuzz()


# --- importers: hostile files -------------------------------------------------------------------

CELL_VALUES = [t.encode() for t in HOSTILE_TEXT] + [
    b"-1",
    b"99999999999999999999999",
    b"1e309",
    b"nan",
    b"\xff\xfe",
    b"\xe9",
    b'"unterminated',
    b"a,b",
    b"\r",
]


def mutated(rng: random.Random, files: dict[str, bytes]) -> tuple[dict[str, bytes], str]:
    """`files` with one hostile change, and what it was."""
    files = dict(files)
    name = rng.choice(sorted(files))
    data = bytearray(files[name])
    kind = rng.randrange(6)
    if kind == 0:  # one cell replaced (the header's included)
        lines = bytes(data).split(b"\n")
        row = rng.randrange(max(1, len(lines) - 1))
        cells = lines[row].split(b",")
        column = rng.randrange(len(cells))
        cells[column] = rng.choice(CELL_VALUES)
        lines[row] = b",".join(cells)
        files[name] = b"\n".join(lines)
        return files, f"{name} line {row + 1} cell {column} = {cells[column][:40]!r}"
    if kind == 1 and data:  # a few bits flipped
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        files[name] = bytes(data)
        return files, f"{name} with bits flipped"
    if kind == 2:  # cut short
        files[name] = bytes(data[: rng.randrange(len(data) + 1)])
        return files, f"{name} cut to {len(files[name])} bytes"
    if kind == 3:  # hostile bytes inserted
        at = rng.randrange(len(data) + 1)
        files[name] = bytes(data[:at]) + rng.choice(CELL_VALUES + [b"\x00", b"\n\n", b'"']) + bytes(data[at:])
        return files, f"{name} with bytes inserted at {at}"
    if kind == 4:  # a row twice
        lines = bytes(data).split(b"\n")
        row = rng.randrange(len(lines))
        files[name] = b"\n".join(lines[: row + 1] + lines[row:])
        return files, f"{name} line {row + 1} twice"
    del files[name]
    return files, f"{name} missing"


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


def check_import(store: SqliteStore, run: Any, what: str, snapshot: Any) -> str | None:
    """None when the import succeeded, or failed naming the file and changing nothing."""
    before = snapshot(store)
    try:
        run()
    except InvalidArgumentError as error:
        if not any(part in error.field for part in (".csv", ".parquet", "--as-of")):
            return f"{what}: the error names no file: {error.field!r}: {error.message[:200]!r}"
        if snapshot(store) != before:
            return f"{what}: refused, but the store changed"
    except Exception as error:  # noqa: BLE001 - anything else is the finding
        return f"{what}: {type(error).__name__}: {str(error)[:300]}"
    return None


def test_instacart_import_survives_hostile_files(tmp_path: Path) -> None:
    rng = random.Random(14)
    base = {name: text.encode() for name, text in instacart.BASE.items()}
    store = SqliteStore(tmp_path / "omnix.db")
    failures = []
    try:
        import_instacart(store, write_files(tmp_path / "base", base), as_of=instacart.AS_OF)
        for case in range(IMPORT_CASES):
            files, what = mutated(rng, base)
            directory = write_files(tmp_path / f"case-{case}", files)
            run = functools.partial(import_instacart, store, directory, as_of=instacart.AS_OF)
            problem = check_import(store, run, what, instacart.snapshot)
            if problem is not None:
                failures.append(problem)
    finally:
        store.close()
    assert not failures, f"{len(failures)} of {IMPORT_CASES} imports:\n" + "\n".join(failures[:20])


def test_complete_journey_import_survives_hostile_files(tmp_path: Path) -> None:
    journey = pytest.importorskip("test_completejourney")  # needs pyarrow (the dev extra)
    rng = random.Random(15)
    journey.write(tmp_path / "base", journey.BASE)
    base = {path.name: path.read_bytes() for path in (tmp_path / "base").iterdir()}
    store = SqliteStore(tmp_path / "omnix.db")
    failures = []
    try:
        import_completejourney(store, tmp_path / "base")
        for case in range(IMPORT_CASES // 3):
            files, what = mutated(rng, base)
            directory = write_files(tmp_path / f"case-{case}", files)
            run = functools.partial(import_completejourney, store, directory)
            problem = check_import(store, run, what, journey.snapshot)
            if problem is not None:
                failures.append(problem)
    finally:
        store.close()
    assert not failures, f"{len(failures)} of {IMPORT_CASES // 3} imports:\n" + "\n".join(failures[:20])
