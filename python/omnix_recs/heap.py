"""The C heap during training: large arrays reused rather than handed back to the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and
unmaps it when freed, and each thread past the first allocates from an arena of its own whose
heaps are at most 64 MiB, so there every large block is mmapped too. Training allocates and
frees arrays of hundreds of MB (one per 34.8M order lines at 200,000 households) over and over,
in numpy's temporaries and in the Rust kernels' vectors, and the kernel faults in and zeroes
every one of them again: 12-17 s of a 60 s training's CPU was system time.

Inside `reusing_freed_memory()` large blocks come from the heap rather than from mmap, and
freed memory stays there for the next allocation. In a process that has no thread arenas yet
(`omnix train`), the threads started inside (the build's worker, the Rust kernels' pools) share
the main heap too: glibc fixes its arena limit when it first needs a second arena. A server
that trains already has its arenas, and its training threads gain less.
On leaving, the thresholds return to where glibc's own dynamic threshold settles and
`malloc_trim` gives the heap's free pages back to the kernel, so a process that trained keeps
no more than it uses. Elsewhere than glibc (musl, macOS) it changes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Within the block: no allocation is too large for the heap, and nothing freed is trimmed.
_UNLIMITED = 2**31 - 1
# On leaving: glibc's dynamic mmap threshold grows to at most 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX
# on 64-bit) and keeps the trim threshold at twice it; 0 arenas means its default (8 per core).
_MMAP_THRESHOLD_AFTER = 32 * 1024 * 1024
_TRIM_THRESHOLD_AFTER = 2 * _MMAP_THRESHOLD_AFTER
_DEFAULT_ARENAS = 0

_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def _set(libc: ctypes.CDLL, parameter: int, value: int) -> None:
    if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
        log.warning("mallopt(%d, %d) was refused; training runs with glibc's defaults", parameter, value)


@contextlib.contextmanager
def reusing_freed_memory() -> Iterator[None]:
    """Large allocations within the block come from the main heap and freed ones are reused;
    afterwards the free heap goes back to the kernel. Blocks may nest and overlap across
    threads: the settings change when the first enters and return when the last leaves."""
    global _depth
    libc = _LIBC
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _set(libc, _M_ARENA_MAX, 1)
            _set(libc, _M_MMAP_THRESHOLD, _UNLIMITED)
            _set(libc, _M_TRIM_THRESHOLD, _UNLIMITED)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, _M_ARENA_MAX, _DEFAULT_ARENAS)
                _set(libc, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_AFTER)
                _set(libc, _M_TRIM_THRESHOLD, _TRIM_THRESHOLD_AFTER)
                libc.malloc_trim(ctypes.c_size_t(0))
