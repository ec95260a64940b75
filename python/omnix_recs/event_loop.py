"""The event loop servers and the load generator run on: uvloop where it is installed.

uvloop (libuv, in Cython) does the loop's own work (waking up, scheduling callbacks, futures)
in C. Measured with `omnix serve --workers 2` under the shoppers' mix at 600 calls/s
(benches/bench_load.py's set-up): the event-loop thread's CPU per call fell from 1.15 to
0.97 ms, and gRPC's asyncio stack runs on it unchanged. It is a dependency on Linux and macOS;
elsewhere (or if it fails to import) the standard loop serves the same way, only slower.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def name() -> str:
    """The loop implementation running now ("uvloop" or "asyncio"), for start-up logs."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
