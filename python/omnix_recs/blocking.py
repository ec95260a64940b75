"""Answer from memory on the event loop; hand a call to a thread only when it has to wait.

Store reads block, but most recommendation calls need only what is already in memory (the
cached shopper, the catalog snapshot, the memory-mapped model), and for them a thread hand-off
costs more than the answer. `run_memory_first` runs the call on the loop with blocking forbidden:
anything that may block calls `ensure_may_block()` first (the whole store through `guard_store`),
which raises `WouldBlock`, and the call is run again from the start in a thread. So a function run
this way must have no effect before its first blocking operation that a second run would repeat.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_blocking_forbidden: ContextVar[bool] = ContextVar("omnix_blocking_forbidden", default=False)


class WouldBlock(Exception):
    """A call being answered on the event loop reached an operation that may block."""


def ensure_may_block() -> None:
    """Raise `WouldBlock` when the current call runs on the event loop with blocking forbidden."""
    if _blocking_forbidden.get():
        raise WouldBlock


async def run_memory_first(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on the loop if it needs nothing but memory, else in a thread.

    The first attempt is wasted work when the call does block, so callers whose reads always
    block (a Redis cache, a remote store) go to a thread directly instead.
    """
    token = _blocking_forbidden.set(True)
    try:
        return fn(*args, **kwargs)
    except WouldBlock:
        pass
    finally:
        _blocking_forbidden.reset(token)
    # The context (request id, deadline) is copied into the thread, with blocking allowed again.
    return await asyncio.to_thread(fn, *args, **kwargs)


class _GuardedStore:
    """The store with `ensure_may_block()` in front of every method (see `guard_store`)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            ensure_may_block()
            return value(*args, **kwargs)

        self.__dict__[name] = guarded  # found directly from now on: no __getattr__ per call
        return guarded

    def __repr__(self) -> str:
        return f"guard_store({self._store!r})"


def guard_store(store: T) -> T:
    """`store` behind a guard: any method called with blocking forbidden raises `WouldBlock`.
    Outside `run_memory_first` (threads, the CLI, tests) the guard only forwards."""
    if isinstance(store, _GuardedStore):
        return store
    return _GuardedStore(store)  # type: ignore[return-value]
