"""The cache protocol: per-customer entries, invalidated by a generation, loaded once.

What is cached is decided by the reader (`engine.cached_reads`); this module holds what every
cache shares: entries belong to one customer and die with that customer's generation, so a
purchase invalidates everything derived from the history at once; concurrent misses wait for
one load instead of all reading the store; hot entries are refreshed before they expire so
processes do not all miss together (in the background for entries that only read). Where entries
and generations live is up to `local` and `redis`.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from omnix_recs.blocking import ensure_may_block

T = TypeVar("T")

# How long a caller waits for another thread's load of the same entry before loading itself.
SINGLE_FLIGHT_WAIT_S = 2.0
# XFetch's beta: 1 is the paper's recommendation; larger refreshes earlier.
EARLY_REFRESH_BETA = 1.0
# `refresh_ahead` entries are reloaded in the background during the last part of their lifetime
# this long (as a share of it), each from its own moment of its first half (see `_refresh_due`):
# a shopper read at least every quarter of the TTL is reloaded before expiry, and one read on
# average every tenth of it (10,000 shoppers, two workers, 700 calls/s: every 30 s) in more than
# nine cases in ten.
REFRESH_AHEAD_SHARE = 0.5
# Threads reloading entries in the background, per process: a few store round trips overlap (a
# reload from DynamoDB waits on the network); more would contend for the GIL with the calls.
REFRESH_THREADS = 2
# Background reloads a process keeps queued at most: past it a due entry is left to expire and be
# loaded on demand, as without `refresh_ahead`, rather than the queue growing without bound
# while the store is slow or down.
MAX_QUEUED_REFRESHES = 5_000
# A failing background reload is logged at most this often (the store down fails all of them).
REFRESH_FAILURE_LOG_INTERVAL_S = 60.0

log = logging.getLogger(__name__)


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
    refreshes: dict[str, int] = field(default_factory=dict)  # loads in the background (`refresh_ahead`)
    refresh_failures: dict[str, int] = field(default_factory=dict)  # background loads that raised
    bypassed: int = 0  # loads that skipped the cache because Redis was unavailable
    stale_writes: int = 0  # loads not stored because the customer changed meanwhile
    failures: int = 0  # Redis calls that failed
    round_trips: int = 0  # Redis calls made for lookups, writes and invalidations (a pipeline is one)

    def summary(self) -> str:
        kinds = sorted(set(self.hits) | set(self.misses))
        parts = [f"{k} {self.hits.get(k, 0)}/{self.hits.get(k, 0) + self.misses.get(k, 0)} hits" for k in kinds]
        refreshed, failed = sum(self.refreshes.values()), sum(self.refresh_failures.values())
        refreshes = [f"refreshed {refreshed} ({failed} failed)"] if refreshed or failed else []
        redis = [f"redis round trips {self.round_trips}"] if self.round_trips else []
        return ", ".join(parts + refreshes + [f"bypassed {self.bypassed}", f"redis failures {self.failures}", *redis])


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

    Waves: entries loaded together expire together (after a deploy, every shopper's within a
    minute of the first calls), and then each of them is loaded again on a call's way, a wave
    every TTL. Entries whose load only reads (`refresh_ahead`) are instead reloaded by background
    threads while the value they have is still served, each when first read after its own
    moment of the first half of the last `REFRESH_AHEAD_SHARE` of its lifetime, so the reloads of
    one wave are spread over that part and their next expiries over the TTL (Caffeine's
    `refreshAfterWrite`, HTTP's stale-while-revalidate; here nothing is served past its TTL).
    Entries whose load has effects can spread their expiries instead (`expiry_spread`).
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
        # Background reloads queued or running, by entry; the pool is made by the first, so only
        # in the process that serves (a server's workers each make their own).
        self._refreshing: set[tuple[str, str, int]] = set()
        self._refresher: ThreadPoolExecutor | None = None
        self._refreshes_stopped = False
        self._refresh_failure_log = ThrottledLog(log, REFRESH_FAILURE_LOG_INTERVAL_S)

    def fetch(
        self,
        customer_id: str,
        name: str,
        codec: Codec[T],
        load: Callable[[], T],
        *,
        ttl_s: float | None = None,
        refresh_ahead: bool = False,
        expiry_spread: float = 0.0,
    ) -> T:
        """The cached value of the customer's entry `name`, or `load()`'s (then cached for
        `ttl_s`, default `self.ttl_s`; 0 = do not cache). Exceptions from `load` propagate and
        nothing is cached. `refresh_ahead`: `load` only reads (it has no effect of its own and
        may run on another thread, after this call has returned), so once the entry is due for
        a refresh a background thread reloads it while callers get the value it has.
        `expiry_spread`: the entry lives between `ttl_s * (1 - expiry_spread)` and `ttl_s`, at its
        own point from its key, so entries loaded together do not expire together."""
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
            if refresh_ahead and self._refresh_due(key, entry, ttl_s):
                lifetime = _lifetime(key, ttl_s, expiry_spread)
                reload = functools.partial(self._refresh, key, codec, load, lifetime, entry.expires_at)
                self._refresh_in_background(key, reload)
            # A reload in the background serves the entry meanwhile; XFetch's early one loads it here.
            if refresh_ahead or not self._refresh_early(entry) or self._flight_running(key):
                self._count(self.stats.hits, kind)
                return entry.value  # type: ignore[return-value]
        flight, done = self._join_flight(key)
        if done is not None:  # another caller is loading it
            ensure_may_block()  # waiting for another thread's load must not stall the event loop
            if done.wait(SINGLE_FLIGHT_WAIT_S) and flight.ok:
                return flight.value  # type: ignore[return-value]
            return load()  # the leader failed or is slow: do not wait any longer
        return self._lead(key, codec, load, _lifetime(key, ttl_s, expiry_spread), flight, self.stats.misses)

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

    def close(self) -> None:
        """Stop reloading in the background (what is queued is dropped; a reload under way is
        waited for) and release connections (the in-process cache has none)."""
        with self._flights_lock:
            self._refreshes_stopped = True
            refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.shutdown(wait=True, cancel_futures=True)

    # --- what an implementation provides ----------------------------------------------------------

    @abc.abstractmethod
    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[Entry | None, int | None]:
        """(the live entry or None, the customer's current generation); generation None means the
        cache cannot be used right now."""

    @abc.abstractmethod
    def _write(self, customer_id: str, name: str, generation: int, entry: Entry, codec: Codec[T]) -> None:
        """Store the entry unless the customer's generation moved on since `generation`."""

    # --- shared machinery -----------------------------------------------------------------------------

    def _lead(
        self,
        key: tuple[str, str, int],
        codec: Codec[T],
        load: Callable[[], T],
        ttl_s: float,
        flight: _Flight,
        counter: dict[str, int],
    ) -> T:
        """Load the entry as its flight's leader, store it for `ttl_s`, and hand the value to the
        waiters."""
        customer_id, name, generation = key
        try:
            started = time.perf_counter()
            value = load()
            elapsed = time.perf_counter() - started
            # Counted once loaded: an attempt abandoned for a thread (blocking.py) is not a miss yet.
            self._count(counter, name.split(":", 1)[0])
            self._write(customer_id, name, generation, Entry(value, self._clock() + ttl_s, elapsed), codec)
            flight.value, flight.ok = value, True
            return value
        finally:
            with self._flights_lock:
                del self._flights[key]
                done = flight.done  # no waiter can join from now on
            if done is not None:
                done.set()

    def _refresh_due(self, key: tuple[str, str, int], entry: Entry, ttl_s: float) -> bool:
        # Each entry's own moment of the first half of the window: the same on every read (a
        # hot entry is reloaded no earlier than a cold one), the entries of one wave spread over
        # it, and early enough that one read at least that often is reloaded in time.
        point = own_moment(key[0], key[1])
        return self._clock() >= entry.expires_at - ttl_s * REFRESH_AHEAD_SHARE * (1.0 - point / 2)

    def _refresh_in_background(self, key: tuple[str, str, int], reload: Callable[[], None]) -> None:
        """Queue `reload` (a `_refresh` of the entry `key`), unless one is queued already or the
        queue is full."""
        with self._flights_lock:
            if self._refreshes_stopped or key in self._refreshing or len(self._refreshing) >= MAX_QUEUED_REFRESHES:
                return
            self._refreshing.add(key)
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(REFRESH_THREADS, thread_name_prefix="omnix-cache-refresh")
            # Submitted under the lock, so `close` cannot shut the pool down in between.
            self._refresher.submit(reload)

    def _refresh(
        self, key: tuple[str, str, int], codec: Codec[T], load: Callable[[], T], ttl_s: float, expires_at: float
    ) -> None:
        """A background reload: only while the entry it was queued for is still the one stored
        (an invalidation, an expiry or a reload since makes it pointless), and not while a call
        is loading it."""
        customer_id, name, generation = key
        try:
            entry, current = self._read(customer_id, name, codec)
            if entry is None or current != generation or entry.expires_at != expires_at:
                return
            with self._flights_lock:
                if key in self._flights:
                    return
                flight = self._flights[key] = _Flight()
            self._lead(key, codec, load, ttl_s, flight, self.stats.refreshes)
        except Exception as exc:  # the entry is served until it expires, then loaded on demand
            self._count(self.stats.refresh_failures, name.split(":", 1)[0])
            self._refresh_failure_log.warning("could not refresh the cache entry %s of %s: %r", name, customer_id, exc)
        finally:
            with self._flights_lock:
                self._refreshing.discard(key)

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


def _lifetime(key: tuple[str, str, int], ttl_s: float, expiry_spread: float) -> float:
    """How long the entry `key` lives when written: `ttl_s`, shortened by its own share of
    `expiry_spread` (worked out only for a write, never on a hit)."""
    return ttl_s * (1.0 - expiry_spread * own_moment(key[0], key[1])) if expiry_spread else ttl_s


def own_moment(customer_id: str, name: str) -> float:
    """A number in [0, 1) that an entry keeps for the process's life and that spreads entries
    evenly: where within a window of time this entry's expiry or refresh falls."""
    return (hash((customer_id, name)) & 0xFFFF) / 0x10000


class ThrottledLog:
    """A message at most once per interval, saying how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last = -math.inf
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> None:
        self._log(logging.WARNING, message, *args)

    def info(self, message: str, *args: object) -> None:
        self._log(logging.INFO, message, *args)

    def _log(self, level: int, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._logger.log(level, message, *args)
