"""The native engine of `omnix loadgen`: the planned calls, sent by `omnix-loadgen` (Rust).

The load generator shares the machine with the server it measures, and grpc.aio's client costs
0.2-0.3 ms of CPU a call: at 2,000 calls/s that is a quarter of two cores taken from the server.
So `loadgen.py` plans the run as before (who calls what, when, the requests serialised by the
real protobuf classes) and this module hands the plan to the `omnix-loadgen` binary
(`benches/loadgen/`), which only sends the bytes on schedule over HTTP/2 and times each call.
The file formats are described in `benches/loadgen/src/plan.rs`.

The binary is found as `OMNIX_LOADGEN_BIN`, else `omnix-loadgen` on the PATH, else where
`make loadgen` builds it in this checkout (`benches/loadgen/target/release/`).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from omnix_recs.errors import FailedPreconditionError, UnavailableError

BINARY_NAME = "omnix-loadgen"
MANIFEST = "benches/loadgen/Cargo.toml"  # its own Cargo workspace, beside the product's
BUILT_AT = f"benches/loadgen/target/release/{BINARY_NAME}"
PLAN_MAGIC = b"OMNIXLP1"
OUTCOMES_MAGIC = b"OMNIXLO1"
NOT_SENT = 255  # the status byte of a call dropped at the client (gRPC's codes end at 16)
# Beyond the run itself: connecting every channel (10 s at most) and the last calls' deadline.
EXIT_MARGIN_S = 30.0


def find_binary() -> Path:
    """The `omnix-loadgen` to run, or FailedPreconditionError saying how to get one."""
    configured = os.environ.get("OMNIX_LOADGEN_BIN")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FailedPreconditionError(f"OMNIX_LOADGEN_BIN={configured} is not an executable file")
        return path
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    built = Path(__file__).resolve().parents[2] / BUILT_AT  # python/omnix_recs/ -> the checkout
    if built.is_file():
        return built
    raise FailedPreconditionError(
        "the native load generator is not built: run `make loadgen` in the checkout "
        f"(cargo build --release --manifest-path {MANIFEST}), or set OMNIX_LOADGEN_BIN"
    )


def encode_plan(
    methods: Sequence[str], offsets: np.ndarray, method_of_call: Sequence[int], requests: Sequence[bytes]
) -> bytes:
    parts = [PLAN_MAGIC, struct.pack("<I", len(methods))]
    for method in methods:
        path = method.encode()
        parts += [struct.pack("<I", len(path)), path]
    parts.append(struct.pack("<Q", len(requests)))
    call = struct.Struct("<dII")
    for offset, method_index, request in zip(offsets.tolist(), method_of_call, requests):
        parts += [call.pack(offset, method_index, len(request)), request]
    return b"".join(parts)


def decode_outcomes(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latency in seconds, send lag in seconds, status code) per call, in plan order."""
    if data[:8] != OUTCOMES_MAGIC or len(data) < 16:
        raise UnavailableError(f"{BINARY_NAME} wrote no outcomes it can be trusted with (bad header)")
    (calls,) = struct.unpack_from("<Q", data, 8)
    if len(data) != 16 + calls * 9:
        raise UnavailableError(f"{BINARY_NAME} wrote {len(data)} bytes of outcomes for {calls} calls")
    latency_us = np.frombuffer(data, dtype="<u4", count=calls, offset=16)
    lag_us = np.frombuffer(data, dtype="<u4", count=calls, offset=16 + 4 * calls)
    codes = np.frombuffer(data, dtype=np.uint8, count=calls, offset=16 + 8 * calls)
    return latency_us / 1e6, lag_us / 1e6, codes


def send(
    targets: Sequence[str],
    *,
    channels: int,
    deadline_s: float,
    max_outstanding: int,
    methods: Sequence[str],
    offsets: np.ndarray,
    method_of_call: Sequence[int],
    requests: Sequence[bytes],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the plan through the binary and return its outcomes (`decode_outcomes`)."""
    binary = find_binary()
    run_s = float(offsets[-1]) if len(offsets) else 0.0
    with tempfile.TemporaryDirectory(prefix="omnix-loadgen-") as scratch:
        plan, out = Path(scratch, "plan.bin"), Path(scratch, "outcomes.bin")
        plan.write_bytes(encode_plan(methods, offsets, method_of_call, requests))
        command = [
            str(binary),
            "--target",
            ",".join(targets),
            "--plan",
            str(plan),
            "--out",
            str(out),
            "--channels",
            str(channels),
            "--deadline-ms",
            str(max(1, round(deadline_s * 1000))),
            "--max-outstanding",
            str(max_outstanding),
        ]
        try:
            finished = subprocess.run(
                command, capture_output=True, text=True, timeout=run_s + deadline_s + EXIT_MARGIN_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise UnavailableError(f"{BINARY_NAME} did not finish within the run's time") from None
        if finished.returncode != 0:
            said = finished.stderr.strip() or f"exit status {finished.returncode}"
            raise UnavailableError(f"{BINARY_NAME} failed: {said}")
        return decode_outcomes(out.read_bytes())
