"""The request being served: its id and how long its caller will wait.

The server's interceptor (`api/interceptors.py`) binds both at the start of every call. Code
below the API (stores, the Bedrock client, the engine) reads them from here instead of taking
a gRPC context, so it stays usable from the CLI and tests, where nothing is bound and
`time_remaining()` is None. Context variables follow the call into `asyncio.to_thread`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass

_request_id: ContextVar[str] = ContextVar("omnix_request_id", default="")
# Absolute deadline on the time.monotonic() clock; None = the caller set no deadline.
_deadline: ContextVar[float | None] = ContextVar("omnix_deadline", default=None)


@dataclass(frozen=True, slots=True)
class Binding:
    """What `bind` changed, to be undone by `unbind` when the call ends."""

    request_id: Token[str]
    deadline: Token[float | None]


def bind(request_id: str, timeout_s: float | None) -> Binding:
    """Make `request_id` and a deadline `timeout_s` seconds from now current."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    return Binding(_request_id.set(request_id), _deadline.set(deadline))


def unbind(binding: Binding) -> None:
    _request_id.reset(binding.request_id)
    _deadline.reset(binding.deadline)


def current_request_id() -> str:
    """The id of the call being served ("" outside a call), for log lines."""
    return _request_id.get()


def time_remaining() -> float | None:
    """Seconds left before the caller gives up (never negative); None = no deadline.

    Use it to bound waits on slow dependencies, e.g. `timeout=min(own_timeout, remaining)`.
    """
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
