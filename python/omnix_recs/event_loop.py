"""The event loop servers and the load generator run on: uvloop where it is installed.

uvloop does the loop's own work (waking up, scheduling callbacks, futures) in C, which takes
less CPU per call than the standard loop (README, "Configuration"); gRPC's asyncio stack runs on
it unchanged. It is a dependency except on Windows; where it is missing, or with
`OMNIX_EVENT_LOOP=asyncio`, the standard loop serves the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """`asyncio.run(main)`, on uvloop when available and wanted (`OMNIX_EVENT_LOOP`)."""
    if not use_uvloop:
        return asyncio.run(main)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def name() -> str:
    """The loop implementation running now ("uvloop" or "asyncio"), for start-up logs."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
