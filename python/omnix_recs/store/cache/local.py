"""The in-process cache: an LRU in this process's memory, the default without Redis.

A hit costs a dictionary look-up, so it is answered on the event loop. Generations come from a
`GenerationTable`, shared by the workers of one server, so an invalidation in one worker is
seen by the others at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from omnix_recs.store.cache.base import Cache, Codec, Entry
from omnix_recs.store.cache.generations import GenerationTable

T = TypeVar("T")

# How often the in-process cache sweeps out entries that expired or were invalidated elsewhere.
LOCAL_SWEEP_EVERY_S = 30.0
# Entries a sweep checks per hold of the cache's lock.
SWEEP_CHUNK = 1000


class LocalCache(Cache):
    """An LRU of at most `max_entries` entries in this process."""

    in_memory = True

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int,
        generations: GenerationTable | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(ttl_s=ttl_s, clock=clock, rng=rng)
        self.max_entries = max_entries
        self.generations = generations or GenerationTable.local()
        self._entries: OrderedDict[tuple[str, str], tuple[int, Entry]] = OrderedDict()
        self._names_of: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._swept_at = clock()
        self._sweeping = False

    def __len__(self) -> int:
        return len(self._entries)

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            self.generations.bump(customer_id)
            with self._lock:
                for name in self._names_of.pop(customer_id, ()):
                    del self._entries[(customer_id, name)]

    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[Entry | None, int]:
        generation = self.generations.current(customer_id)
        key = (customer_id, name)
        with self._lock:
            stored = self._entries.get(key)
            if stored is None:
                return None, generation
            if stored[0] == generation and stored[1].expires_at > self._clock():
                self._entries.move_to_end(key)
                entry = stored[1]
            else:
                self._drop(key)
                return None, generation
        if codec.encoded_in_process:
            entry = Entry(codec.decode(entry.value), entry.expires_at, entry.load_s)  # type: ignore[arg-type]
        return entry, generation

    def _write(self, customer_id: str, name: str, generation: int, entry: Entry, codec: Codec[T]) -> None:
        if self.generations.current(customer_id) != generation:
            self.stats.stale_writes += 1
            return
        key = (customer_id, name)
        if codec.encoded_in_process:
            entry = Entry(codec.encode(entry.value), entry.expires_at, entry.load_s)  # type: ignore[arg-type]
        with self._lock:
            self._entries[key] = (generation, entry)
            self._entries.move_to_end(key)
            names = self._names_of.get(customer_id)
            if names is None:  # not setdefault: that would make a set on every write
                names = self._names_of[customer_id] = set()
            names.add(name)
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))
            sweep_due = self._clock() - self._swept_at >= LOCAL_SWEEP_EVERY_S and not self._sweeping
            if sweep_due:
                self._swept_at, self._sweeping = self._clock(), True
        if sweep_due:
            # On a thread of its own: a sweep of tens of thousands of entries takes tens of
            # milliseconds, and this write may be a call answered on the event loop.
            threading.Thread(target=self._sweep, name="omnix-cache-sweep", daemon=True).start()

    def _drop(self, key: tuple[str, str]) -> None:
        del self._entries[key]
        names = self._names_of.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._names_of[key[0]]

    def _sweep(self) -> None:
        """Drop expired entries and those another worker invalidated (an erased customer's data
        must not linger in memory just because nobody asked for it again). In chunks, taking
        the lock for one chunk at a time, so lookups wait for a chunk at most."""
        try:
            with self._lock:
                keys = list(self._entries)
            current = self.generations.current
            for start in range(0, len(keys), SWEEP_CHUNK):
                now = self._clock()
                with self._lock:
                    for key in keys[start : start + SWEEP_CHUNK]:
                        stored = self._entries.get(key)
                        if stored is not None and (stored[1].expires_at <= now or stored[0] != current(key[0])):
                            self._drop(key)
        finally:
            self._sweeping = False
