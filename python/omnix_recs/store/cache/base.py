"""The cache protocol: per-customer entries, invalidated by a generation, loaded once.

What is cached is decided by the reader (`engine.cached_reads`); this module holds what every
cache shares: entries belong to one customer and die with that customer's generation, so a
purchase invalidates everything derived from the history at once; concurrent misses wait for
one load instead of all reading the store; hot entries are refreshed just before they expire so
processes do not all miss together. Where entries and generations live is up to `local` and
`redis`.
"""

from __future__ import annotations

import abc
import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from omnix_recs.blocking import ensure_may_block

T = TypeVar("T")

# How long a caller waits for another thread's load of the same entry before loading itself.
SINGLE_FLIGHT_WAIT_S = 2.0
# XFetch's beta: 1 is the paper's recommendation; larger refreshes earlier.
EARLY_REFRESH_BETA = 1.0


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    """How one kind of value travels through Redis. The in-process cache keeps the object itself,
    so cached values must be immutable (frozen dataclasses, read-only arrays), unless
    `encoded_in_process`: then it keeps the encoded bytes and decodes on every hit. That suits
    values made of many small objects that are rarely read again (a served list is some sixty):
    thousands of them held as objects make every full collection of Python's garbage collector
    longer, and a collection stops every call of the process while it runs."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]
    encoded_in_process: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value, when it expires, and how long it took to load."""

    value: object
    expires_at: float  # time.time()
    load_s: float  # how long loading it took: XFetch refreshes slow entries earlier


@dataclass
class CacheStats:
    """Counters per kind of entry (the part of its name before the first ':')."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    bypassed: int = 0  # loads that skipped the cache because Redis was unavailable
    stale_writes: int = 0  # loads not stored because the customer changed meanwhile
    failures: int = 0  # Redis calls that failed
    round_trips: int = 0  # Redis calls made for lookups, writes and invalidations (a pipeline is one)

    def summary(self) -> str:
        kinds = sorted(set(self.hits) | set(self.misses))
        parts = [f"{k} {self.hits.get(k, 0)}/{self.hits.get(k, 0) + self.misses.get(k, 0)} hits" for k in kinds]
        redis = [f"redis round trips {self.round_trips}"] if self.round_trips else []
        return ", ".join(parts + [f"bypassed {self.bypassed}", f"redis failures {self.failures}", *redis])


class _Flight:
    """One load in progress, which concurrent callers for the same entry wait for.

    `done` is made by the first caller that waits (under the flights' lock), not with the flight:
    nearly every load has no waiter, and an Event (a Condition and its locks) costs several
    microseconds to make and set."""

    __slots__ = ("done", "value", "ok")

    def __init__(self) -> None:
        self.done: threading.Event | None = None
        self.value: object = None
        self.ok = False


class Cache(abc.ABC):
    """Per-customer entries with invalidation, single-flight loads and early refresh.

    Freshness: every customer has a generation. `forget_customer` moves it on and deletes the
    customer's entries, in every server process. The generation is read before loading and the
    result is stored only if it is unchanged, so a load that started before `forget_customer`
    cannot store its result afterwards: once it has returned, no process serves what was
    cached before it.

    Stampedes: concurrent misses of one entry in a process wait for a single load (single
    flight, keyed by generation too, so a load begun before an invalidation is never shared
    after it). Hot entries are refreshed a little before they expire by one caller, with a
    probability that grows as expiry nears and with how long the entry took to load ("XFetch":
    Vattani, Chierichetti and Lowenstein, VLDB 2015).
    """

    # Whether a hit is answered from this process's memory without waiting (see blocking.py:
    # servers answer such calls on the event loop). Misses may still block: loads read the store.
    in_memory: bool = False

    def __init__(
        self, *, ttl_s: float, clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random
    ) -> None:
        self.ttl_s = ttl_s
        self.stats = CacheStats()
        self._clock = clock
        self._rng = rng
        self._flights: dict[tuple[str, str, int], _Flight] = {}
        self._flights_lock = threading.Lock()

    def fetch(
        self, customer_id: str, name: str, codec: Codec[T], load: Callable[[], T], *, ttl_s: float | None = None
    ) -> T:
        """The cached value of the customer's entry `name`, or `load()`'s (then cached for
        `ttl_s`, default `self.ttl_s`; 0 = do not cache). Exceptions from `load` propagate and
        nothing is cached."""
        ttl_s = self.ttl_s if ttl_s is None else ttl_s
        if ttl_s <= 0:
            return load()
        if not self.in_memory:
            ensure_may_block()
        kind = name.split(":", 1)[0]
        entry, generation = self._read(customer_id, name, codec)
        if generation is None:  # the cache is unavailable: go to the source
            self.stats.bypassed += 1
            return load()
        key = (customer_id, name, generation)
        if entry is not None:
            if not self._refresh_early(entry) or self._flight_running(key):
                self._count(self.stats.hits, kind)
                return entry.value  # type: ignore[return-value]
        flight, done = self._join_flight(key)
        if done is not None:  # another caller is loading it
            ensure_may_block()  # waiting for another thread's load must not stall the event loop
            if done.wait(SINGLE_FLIGHT_WAIT_S) and flight.ok:
                return flight.value  # type: ignore[return-value]
            return load()  # the leader failed or is slow: do not wait any longer
        try:
            started = time.perf_counter()
            value = load()
            elapsed = time.perf_counter() - started
            # Counted once loaded: an attempt abandoned for a thread (blocking.py) is not a miss yet.
            self._count(self.stats.misses, kind)
            self._write(customer_id, name, generation, Entry(value, self._clock() + ttl_s, elapsed), codec)
            flight.value, flight.ok = value, True
            return value
        finally:
            with self._flights_lock:
                del self._flights[key]
                done = flight.done  # no waiter can join from now on
            if done is not None:
                done.set()

    @contextlib.contextmanager
    def reading_ahead(self, customer_id: str, names: Sequence[str]) -> Iterator[None]:
        """Within the block, this thread's `fetch`es of the customer's entries `names` use one
        read of all of them together (with Redis, one round trip instead of one per entry). Each
        is used by one `fetch` at most (a later one reads again), and what is left is dropped when
        the block ends. A cache whose reads cost no round trip reads nothing ahead."""
        yield

    def forget_customer(self, customer_id: str) -> None:
        """Invalidate every entry of the customer, in every process, and delete them."""
        self.forget_customers([customer_id])

    @abc.abstractmethod
    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        """`forget_customer` for each of them, at once (one Redis transaction)."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the cache holds connections)
        """Release connections (the in-process cache has none)."""

    # --- what an implementation provides ----------------------------------------------------------

    @abc.abstractmethod
    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[Entry | None, int | None]:
        """(the live entry or None, the customer's current generation); generation None means the
        cache cannot be used right now."""

    @abc.abstractmethod
    def _write(self, customer_id: str, name: str, generation: int, entry: Entry, codec: Codec[T]) -> None:
        """Store the entry unless the customer's generation moved on since `generation`."""

    # --- shared machinery -----------------------------------------------------------------------------

    def _refresh_early(self, entry: Entry) -> bool:
        # XFetch: refresh when now - load_s * beta * ln(u) >= expiry, u uniform in (0, 1].
        u = 1.0 - self._rng()
        return self._clock() - entry.load_s * EARLY_REFRESH_BETA * math.log(u) >= entry.expires_at

    def _flight_running(self, key: tuple[str, str, int]) -> bool:
        return key in self._flights  # one dictionary look-up: atomic under the GIL

    def _join_flight(self, key: tuple[str, str, int]) -> tuple[_Flight, threading.Event | None]:
        """(the flight, None) when this caller leads a new load; (the flight, the event its
        leader sets when done) when another caller's load of the entry is running."""
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                return flight, None
            if flight.done is None:
                flight.done = threading.Event()
            return flight, flight.done

    @staticmethod
    def _count(counter: dict[str, int], kind: str) -> None:
        counter[kind] = counter.get(kind, 0) + 1  # under the GIL; approximate under races, which is fine
