"""Per-customer generation counters that every worker process of a server shares.

Without Redis, a purchase recorded by one worker of `omnix serve --workers N` must still
invalidate what the other workers cached. A table of counters mapped from one file into every
worker gives them that at the cost of a memory read, with no server to run. Independent server
processes without Redis do not share a table: run them with Redis.
"""

from __future__ import annotations

import mmap
import zlib
from pathlib import Path

# Slots of a GenerationTable. Customers share a slot by hash: a collision only costs an extra miss.
GENERATION_SLOTS = 1 << 16


class GenerationTable:
    """Per-customer generation counters, hashed into `GENERATION_SLOTS` 32-bit slots.

    `local()` lives in this process; `create_shared(path)` / `attach(path)` map one file into
    every worker of a server so that they see each other's invalidations. A bump is a plain
    read-increment-write: two processes bumping one slot at once may both write the same value,
    which still differs from the value any earlier load read, so no stale entry survives.
    """

    def __init__(self, buffer: mmap.mmap | bytearray) -> None:
        self._slots = memoryview(buffer).cast("I")

    @classmethod
    def local(cls) -> GenerationTable:
        return cls(bytearray(4 * GENERATION_SLOTS))

    @classmethod
    def create_shared(cls, path: Path) -> GenerationTable:
        with open(path, "wb") as fh:
            fh.truncate(4 * GENERATION_SLOTS)
        return cls.attach(path)

    @classmethod
    def attach(cls, path: Path) -> GenerationTable:
        with open(path, "r+b") as fh:
            return cls(mmap.mmap(fh.fileno(), 4 * GENERATION_SLOTS))

    @staticmethod
    def _slot(customer_id: str) -> int:
        # crc32, not hash(): the slot must be the same in every process (hash() is salted).
        return zlib.crc32(customer_id.encode()) % GENERATION_SLOTS

    def current(self, customer_id: str) -> int:
        return self._slots[self._slot(customer_id)]

    def bump(self, customer_id: str) -> None:
        slot = self._slot(customer_id)
        self._slots[slot] = (self._slots[slot] + 1) & 0xFFFF_FFFF
