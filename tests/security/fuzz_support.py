"""Cheap hostile requests for the fuzz suite, built from the message descriptors.

Hypothesis is the right tool where a failure must shrink to a readable example, but drawing
through it costs about a millisecond per message: 10,000 calls would spend most of CI's budget
generating. `Fuzzer` walks the same descriptors with a seeded `random.Random` instead (every
field kind, hostile strings, extreme and out-of-range numbers, unknown enum values, nested and
repeated messages) and mutates valid encodings into raw bytes a parser must refuse (truncated,
bit-flipped, wrong wire types, absurd lengths). The same seed gives the same requests.

`FuzzServer` runs the real server (`omnix serve`) in its own process over a small trained shop,
with its log in a file, so the suite can also check that nothing logged a traceback.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 30.0
SMALL_SHOP = dict(customers=60, products=200, days=90, seed=11)

HOSTILE_TEXT = [
    "",
    " ",
    "c1",
    "p1",
    "x" * 300,
    "a" * 6000,
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "é\u202e",
    "\u200b",
    "../../etc/passwd",
    "1e309",
    "-1",
    "NaN",
    "2026-02-30",
    "9999-12-31T23:59:59Z",
    "' OR 1=1 --",
    "%s%s%n",
    "🛒" * 50,
    "ｃ１",  # full-width: looks like an id, is not one
]
INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
DOUBLES = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 5e-324, 1e308, -1e308, float("inf"), float("-inf"), float("nan")]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-38, 3.4e38, -3.4e38, float("inf"), float("-inf"), float("nan")]
# Code points for random text: ASCII, control characters, Latin-1, bidi controls, CJK, emoji
# (no surrogates: a string holding one cannot be encoded as protobuf UTF-8 at all).
CODE_POINTS = [(0x00, 0x7F), (0x80, 0xFF), (0x2000, 0x206F), (0x4E00, 0x4E80), (0x1F300, 0x1F64F)]


class Fuzzer:
    """Hostile messages of any request type; `known` strings (real ids of the shop served)
    are mixed in so that some calls get past the id checks to the code behind them."""

    def __init__(self, seed: int, known: Sequence[str] = ()) -> None:
        self.rng = random.Random(seed)
        self.texts = HOSTILE_TEXT + list(known)
        self.known = list(known) or ["c1"]

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = message_factory.GetMessageClass(descriptor)()
        rng = self.rng
        for field in descriptor.fields:
            if rng.random() < 0.35:  # any subset of fields, the empty message included
                continue
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                if depth >= 3:
                    continue
                if field.message_type.GetOptions().map_entry:
                    self._fill_map(message, field)
                    continue
                if field.is_repeated:
                    target = getattr(message, field.name)
                    for _ in range(self._count()):
                        target.add().CopyFrom(self.message(field.message_type, depth + 1))
                else:
                    getattr(message, field.name).CopyFrom(self.message(field.message_type, depth + 1))
                continue
            try:
                if field.is_repeated:
                    getattr(message, field.name).extend(self.scalar(field) for _ in range(self._count()))
                else:
                    setattr(message, field.name, self.scalar(field))
            except (TypeError, ValueError):
                pass  # a value this field's type cannot hold (e.g. float32 overflow): leave it unset
        return message

    def raw(self, descriptor: Descriptor) -> bytes:
        """Bytes that are not (or barely) a valid encoding of `descriptor`."""
        rng = self.rng
        kind = rng.randrange(7)
        if kind == 0:
            return rng.randbytes(rng.randint(1, 64))
        valid = bytearray(self.message(descriptor).SerializeToString() or b"\x0a\x02c1")
        if kind == 1:  # cut short, mid-field
            return bytes(valid[: rng.randrange(len(valid))] or b"\x0a")
        if kind == 2:  # a few bits flipped
            for _ in range(rng.randint(1, 4)):
                valid[rng.randrange(len(valid))] ^= 1 << rng.randrange(8)
            return bytes(valid)
        if kind == 3:  # a field of the first number with every wire type, including the invalid ones
            return bytes([(1 << 3) | rng.choice([0, 1, 2, 3, 4, 5, 6, 7])]) + rng.randbytes(rng.randint(0, 12))
        if kind == 4:  # a length prefix far beyond the message
            return b"\x0a\xff\xff\xff\xff\x0f" + rng.randbytes(8)
        if kind == 5:  # deeply nested groups / messages
            depth = rng.choice([50, 200, 2000])
            return b"\x0b" * depth if rng.random() < 0.5 else (b"\x0a\x80\x01" * depth)
        # a valid message followed by unknown fields and garbage
        return bytes(valid) + bytes([(rng.randint(16, 2000) << 3 | 2) & 0x7F]) + b"\x03abc" + rng.randbytes(4)

    def scalar(self, field: FieldDescriptor) -> Any:
        rng = self.rng
        cpp = field.cpp_type
        if cpp == FieldDescriptor.CPPTYPE_STRING:
            if field.type == FieldDescriptor.TYPE_BYTES:
                return rng.randbytes(rng.randint(0, 64))
            return self.text()
        if cpp in INT_RANGES:
            low, high = INT_RANGES[cpp]
            roll = rng.random()
            if roll < 0.4:
                return rng.choice([0, 1, -1 if low < 0 else 2, low, high, 10, 100, 1000, 10_001, 1_000_001])
            if roll < 0.7:
                return rng.randint(max(low, -100), min(high, 1000))
            return rng.randint(low, high)
        if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
            pool = DOUBLES if cpp == FieldDescriptor.CPPTYPE_DOUBLE else FLOATS
            return rng.choice(pool) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)
        if cpp == FieldDescriptor.CPPTYPE_BOOL:
            return rng.random() < 0.5
        if cpp == FieldDescriptor.CPPTYPE_ENUM:
            if rng.random() < 0.8:
                return rng.choice(field.enum_type.values).number
            return rng.choice([-1, -3, 99, 1000, 2**31 - 1])
        raise AssertionError(f"unexpected field type {cpp}")

    def text(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(self.known)
        if roll < 0.7:
            return rng.choice(self.texts)
        low, high = rng.choice(CODE_POINTS)
        return "".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 40)))

    def _count(self) -> int:
        return self.rng.choice([0, 1, 1, 2, 3, 5, 20])

    def _fill_map(self, message: Message, field: FieldDescriptor) -> None:
        entry = field.message_type
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        target = getattr(message, field.name)
        for _ in range(self._count()):
            try:
                key = self.scalar(key_field)
                if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                    target[key].CopyFrom(self.message(value_field.message_type, 3))
                else:
                    target[key] = self.scalar(value_field)
            except (TypeError, ValueError):
                pass


class FuzzServer:
    """`omnix serve` in its own process on 127.0.0.1:`port`, its log written to `log_file`."""

    def __init__(self, env: dict[str, str], port: int, log_file: Path) -> None:
        self.address = f"127.0.0.1:{port}"
        self.log_file = log_file
        with log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "omnix_recs.cli", "serve", "--port", str(port)],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.channel = grpc.insecure_channel(
            self.address,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stub(self, stub_class: Any) -> Any:
        return stub_class(self.channel)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def trained_shop(root: Path) -> tuple[str, Path, list[str], list[str]]:
    """A small generated shop imported into SQLite under `root`, with a model trained and
    active: (store URL, model directory, customer ids, product ids)."""
    from omnix_recs.config import Settings
    from omnix_recs.data.generate import generate_instacart
    from omnix_recs.data.instacart import import_instacart
    from omnix_recs.engine.train import train_model
    from omnix_recs.store import open_store

    store_url = f"sqlite:///{root / 'omnix.db'}"
    model_dir = root / "models"
    generate_instacart(root / "data", **SMALL_SHOP)  # type: ignore[arg-type]
    store = open_store(store_url)
    try:
        import_instacart(store, root / "data", as_of=date.today())
        train_model(store, Settings(store_url=store_url, model_dir=str(model_dir)), tune=False)
        customers = list(store.list_customer_ids(page_size=1000).items)
        products = [p.product_id for p in store.iter_products()]
    finally:
        store.close()
    return store_url, model_dir, customers, products
