"""`heap.reusing_freed_memory`: inside it, large arrays come from the heap and are reused; after
it, they are mmapped again and the heap's free memory has gone back to the kernel.

glibc's own accounting (`mallinfo2`) tells where an allocation came from: `arena` counts the
heaps' bytes, `hblkhd` the bytes in mmapped blocks. Each case runs in a fresh interpreter, as
`omnix train` does: which arena a new thread gets depends on the threads the process had."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from omnix_recs import heap

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="the heap settings are glibc's")

PROBE = textwrap.dedent(
    """
    import ctypes, json, os, sys, threading
    import numpy as np
    from omnix_recs import heap

    BIG = 256 * 1024 * 1024

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    heap._LIBC.mallinfo2.restype = MallInfo2

    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def mmapped_while_alive(in_thread):
        seen = []
        def allocate():
            before = heap._LIBC.mallinfo2().hblkhd
            array = np.ones(BIG // 8)
            seen.append(heap._LIBC.mallinfo2().hblkhd - before)
            del array
        if in_thread:
            worker = threading.Thread(target=allocate)
            worker.start()
            worker.join()
        else:
            allocate()
        return seen[0]

    in_thread = sys.argv[1] == "thread"
    out = {}
    with heap.reusing_freed_memory():
        with heap.reusing_freed_memory():  # nested: the outer block keeps the settings
            out["first"] = mmapped_while_alive(in_thread)
        out["again"] = mmapped_while_alive(in_thread)
        out["resident_inside"] = resident()
    out["resident_after"] = resident()
    out["after"] = mmapped_while_alive(in_thread)
    print(json.dumps(out))
    """
)
BIG = 256 * 1024 * 1024


@pytest.mark.parametrize("where", ["main", "thread"], ids=["main thread", "thread started inside"])
def test_large_arrays_come_from_the_heap_inside_and_from_mmap_after(where: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, where], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    assert seen["first"] == 0  # from the heap, not mmapped
    assert seen["again"] == 0  # freed, then served again from what the heap kept
    # The freed block stayed the process's until the block ended, then went back to the kernel.
    assert seen["resident_after"] < seen["resident_inside"] - BIG // 2
    assert seen["after"] >= BIG  # glibc's usual way again: mmapped
