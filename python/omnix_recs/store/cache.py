"""The cache in front of hot per-shopper reads: in-process, or Redis shared by every process.

    cache = open_cache(settings)        # Redis when OMNIX_REDIS_URL is set, else in-process
    value = cache.fetch(customer_id, "shopper:v7", SNAPSHOT_CODEC, load)   # load() on a miss
    cache.forget_customer(customer_id)  # the customer bought, changed or was erased

What is cached is decided by the reader (`engine.cached_reads`); this module only promises:

Freshness. Every entry belongs to one customer, and every customer has a generation.
`forget_customer` moves the generation on and deletes the customer's entries, in every server
process. A load that started before that cannot store its result afterwards: the generation is
read before loading and the write only happens if it is unchanged. So once `forget_customer`
has returned, no process serves what was cached before it.
- `LocalCache` (no Redis): entries live in this process's LRU; generations live in a
  `GenerationTable`, which `omnix serve --workers N` maps into every worker from one shared file,
  so a purchase recorded by one worker invalidates the others at once. Independent server
  processes without Redis do not share generations: run them with Redis.
- `RedisCache`: a customer's entries are the fields of one hash, `<prefix>:c:<customer>`, and the
  generation is a counter beside it, `<prefix>:g:<customer>`. Forgetting is one transaction
  (INCR the counter, DEL the hash); storing is a Lua script that writes only if the counter still
  holds the generation read before loading.

Stampedes. Concurrent misses of one entry in a process wait for a single load (single flight,
keyed by generation too, so a load begun before an invalidation is never shared after it). Hot
entries are refreshed a little before they expire by one caller, with a probability that grows
as expiry nears and with how long the entry took to load ("XFetch": Vattani, Chierichetti and
Lowenstein, VLDB 2015), so processes do not all miss together when it expires.

Redis trouble never fails a request. Every call has a short socket timeout and no retries; a
failure opens a circuit breaker and the cache is skipped (requests read the store directly) for
`REDIS_RETRY_AFTER_S` seconds, then one trial call probes it. Failures are logged at most once per
`FAILURE_LOG_INTERVAL_S`, with a count. Invalidations that could not be sent are kept (bounded)
and sent first once Redis answers again, so another process that could still reach Redis does
not keep serving what this one meant to invalidate.
"""

from __future__ import annotations

import abc
import logging
import math
import mmap
import random
import struct
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Sequence, TypeVar

from omnix_recs.insights.breaker import CircuitBreaker
from omnix_recs.blocking import ensure_may_block
from omnix_recs.config import Settings

log = logging.getLogger("omnix.cache")

T = TypeVar("T")

# How long a caller waits for another thread's load of the same entry before loading itself.
SINGLE_FLIGHT_WAIT_S = 2.0
# XFetch's beta: 1 is the paper's recommendation; larger refreshes earlier.
EARLY_REFRESH_BETA = 1.0
# After a Redis failure the cache is skipped this long before one trial call probes Redis.
REDIS_RETRY_AFTER_S = 5.0
FAILURE_LOG_INTERVAL_S = 30.0
# Invalidations kept while Redis is unreachable; beyond this the oldest are dropped (and logged).
MAX_UNSENT_INVALIDATIONS = 100_000
# A generation counter outlives the entries it guards by far; it only has to outlive a load.
REDIS_GENERATION_TTL_S = 7 * 24 * 3600
REDIS_KEY_PREFIX = "omnix:v1"
# Slots of a GenerationTable. Customers share a slot by hash: a collision only costs an extra miss.
GENERATION_SLOTS = 1 << 16
# How often the in-process cache sweeps out entries that expired or were invalidated elsewhere.
LOCAL_SWEEP_EVERY_S = 30.0
# Entries a sweep checks per hold of the cache's lock.
SWEEP_CHUNK = 1000


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
class _Entry:
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

    def summary(self) -> str:
        kinds = sorted(set(self.hits) | set(self.misses))
        parts = [f"{k} {self.hits.get(k, 0)}/{self.hits.get(k, 0) + self.misses.get(k, 0)} hits" for k in kinds]
        return ", ".join(parts + [f"bypassed {self.bypassed}", f"redis failures {self.failures}"])


class _Flight:
    """One load in progress, which concurrent callers for the same entry wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.ok = False


class Cache(abc.ABC):
    """Per-customer entries with invalidation, single-flight loads and early refresh."""

    # Whether a hit is answered from this process's memory without waiting (see blocking.py:
    # servers answer such calls on the event loop). Misses may still block: loads read the store.
    in_memory: bool = False

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random) -> None:
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
        flight, leader = self._join_flight(key)
        if not leader:
            ensure_may_block()  # waiting for another thread's load must not stall the event loop
            if flight.done.wait(SINGLE_FLIGHT_WAIT_S) and flight.ok:
                return flight.value  # type: ignore[return-value]
            return load()  # the leader failed or is slow: do not wait any longer
        try:
            started = time.perf_counter()
            value = load()
            elapsed = time.perf_counter() - started
            # Counted once loaded: an attempt abandoned for a thread (blocking.py) is not a miss yet.
            self._count(self.stats.misses, kind)
            self._write(customer_id, name, generation, _Entry(value, self._clock() + ttl_s, elapsed), codec)
            flight.value, flight.ok = value, True
            return value
        finally:
            with self._flights_lock:
                del self._flights[key]
            flight.done.set()

    def forget_customer(self, customer_id: str) -> None:
        """Invalidate every entry of the customer, in every process, and delete them."""
        self.forget_customers([customer_id])

    @abc.abstractmethod
    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        """`forget_customer` for each of them, at once (one Redis transaction)."""

    def close(self) -> None:
        """Release connections (the in-process cache has none)."""

    # --- what an implementation provides ----------------------------------------------------------

    @abc.abstractmethod
    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[_Entry | None, int | None]:
        """(the live entry or None, the customer's current generation); generation None means the
        cache cannot be used right now."""

    @abc.abstractmethod
    def _write(self, customer_id: str, name: str, generation: int, entry: _Entry, codec: Codec[T]) -> None:
        """Store the entry unless the customer's generation moved on since `generation`."""

    # --- shared machinery -----------------------------------------------------------------------------

    def _refresh_early(self, entry: _Entry) -> bool:
        # XFetch: refresh when now - load_s * beta * ln(u) >= expiry, u uniform in (0, 1].
        u = 1.0 - self._rng()
        return self._clock() - entry.load_s * EARLY_REFRESH_BETA * math.log(u) >= entry.expires_at

    def _flight_running(self, key: tuple[str, str, int]) -> bool:
        with self._flights_lock:
            return key in self._flights

    def _join_flight(self, key: tuple[str, str, int]) -> tuple[_Flight, bool]:
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    @staticmethod
    def _count(counter: dict[str, int], kind: str) -> None:
        counter[kind] = counter.get(kind, 0) + 1  # under the GIL; approximate under races, which is fine


# --- in-process ---------------------------------------------------------------------------------------


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
    def local(cls) -> "GenerationTable":
        return cls(bytearray(4 * GENERATION_SLOTS))

    @classmethod
    def create_shared(cls, path: Path) -> "GenerationTable":
        with open(path, "wb") as fh:
            fh.truncate(4 * GENERATION_SLOTS)
        return cls.attach(path)

    @classmethod
    def attach(cls, path: Path) -> "GenerationTable":
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
        self._entries: OrderedDict[tuple[str, str], tuple[int, _Entry]] = OrderedDict()
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

    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[_Entry | None, int]:
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
            entry = _Entry(codec.decode(entry.value), entry.expires_at, entry.load_s)  # type: ignore[arg-type]
        return entry, generation

    def _write(self, customer_id: str, name: str, generation: int, entry: _Entry, codec: Codec[T]) -> None:
        if self.generations.current(customer_id) != generation:
            self.stats.stale_writes += 1
            return
        key = (customer_id, name)
        if codec.encoded_in_process:
            entry = _Entry(codec.encode(entry.value), entry.expires_at, entry.load_s)  # type: ignore[arg-type]
        with self._lock:
            self._entries[key] = (generation, entry)
            self._entries.move_to_end(key)
            self._names_of.setdefault(customer_id, set()).add(name)
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


# --- Redis ------------------------------------------------------------------------------------------

# KEYS: entries hash, generation counter. ARGV: generation read before loading, field, payload,
# seconds the hash should live at least. Writes only if the generation is unchanged.
_STORE_IF_CURRENT = """
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""
# Every stored value starts with its expiry (time.time()) and its load time, both float64.
_ENTRY_HEADER = struct.Struct("<dd")


class RedisCache(Cache):
    """Entries in Redis, shared by every process that uses the same Redis."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float,
        timeout_s: float,
        retry_after_s: float = REDIS_RETRY_AFTER_S,
        key_prefix: str = REDIS_KEY_PREFIX,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        import redis  # only servers configured with Redis need the package loaded
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        super().__init__(ttl_s=ttl_s, clock=clock, rng=rng)
        self._redis_errors = redis.RedisError
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a retry would double the time a failing call costs
        )
        self._store_if_current = self._client.register_script(_STORE_IF_CURRENT)
        self._prefix = key_prefix
        self._retry_after_s = retry_after_s
        self._breaker = CircuitBreaker(failure_threshold=1, cool_down_s=retry_after_s)
        self._failure_log = _ThrottledLog(log, FAILURE_LOG_INTERVAL_S)
        self._unsent: OrderedDict[str, None] = OrderedDict()  # customers whose invalidation failed
        self._unsent_lock = threading.Lock()
        self._outage = False

    def close(self) -> None:
        self._client.close()

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        """One Redis transaction, so at most one socket timeout when Redis is slow (the activity
        hook calls this on the event loop, before the write's answer goes out)."""
        if self._call(lambda: self._invalidate(list(customer_ids))) is None:
            with self._unsent_lock:
                for customer_id in customer_ids:
                    self._unsent[customer_id] = None
                    self._unsent.move_to_end(customer_id)
                while len(self._unsent) > MAX_UNSENT_INVALIDATIONS:
                    dropped, _ = self._unsent.popitem(last=False)
                    self._failure_log.warning("too many invalidations waiting for Redis; dropped %s's", dropped)

    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[_Entry | None, int | None]:
        def read() -> list[bytes | None]:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.get(self._generation_key(customer_id))
                pipe.hget(self._entries_key(customer_id), name)
                return pipe.execute()

        answer = self._call(read)
        if answer is None:
            return None, None
        generation_raw, payload = answer
        generation = int(generation_raw or 0)
        if payload is None:
            return None, generation
        try:
            expires_at, load_s = _ENTRY_HEADER.unpack_from(payload)
            if expires_at <= self._clock():
                return None, generation
            value = codec.decode(payload[_ENTRY_HEADER.size:])
        except Exception as exc:  # a value written by another version of the code: just reload it
            self._failure_log.warning("undecodable cache entry %s of %s: %s", name, customer_id, exc)
            return None, generation
        return _Entry(value, expires_at, load_s), generation

    def _write(self, customer_id: str, name: str, generation: int, entry: _Entry, codec: Codec[T]) -> None:
        payload = _ENTRY_HEADER.pack(entry.expires_at, entry.load_s) + codec.encode(entry.value)  # type: ignore[arg-type]
        keep_s = max(1, math.ceil(entry.expires_at - self._clock()))
        stored = self._call(
            lambda: self._store_if_current(
                keys=[self._entries_key(customer_id), self._generation_key(customer_id)],
                args=[generation, name, payload, keep_s],
            )
        )
        if stored == 0:
            self.stats.stale_writes += 1

    def _invalidate(self, customer_ids: list[str]) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            for customer_id in customer_ids:
                pipe.incr(self._generation_key(customer_id))
                pipe.expire(self._generation_key(customer_id), REDIS_GENERATION_TTL_S)
                pipe.delete(self._entries_key(customer_id))
            pipe.execute()

    def _call(self, operation: Callable[[], T]) -> T | None:
        """`operation()`, or None when Redis is skipped (circuit open) or fails."""
        if not self._breaker.allow():
            return None
        try:
            self._send_unsent()
            result = operation()
        except self._redis_errors as exc:
            self._breaker.record_failure()
            self.stats.failures += 1
            self._outage = True
            self._failure_log.warning(
                "Redis unavailable (%s: %s); serving without the cache, retrying in %g s",
                type(exc).__name__, exc, self._retry_after_s,
            )
            return None
        self._breaker.record_success()
        if self._outage:
            self._outage = False
            log.info("Redis reachable again; cache in use")
        return result

    def _send_unsent(self) -> None:
        with self._unsent_lock:
            if not self._unsent:
                return
            pending = list(self._unsent)
            self._unsent.clear()
        try:
            self._invalidate(pending)
        except BaseException:
            with self._unsent_lock:
                for customer_id in pending:
                    self._unsent.setdefault(customer_id, None)
            raise

    def _entries_key(self, customer_id: str) -> str:
        return f"{self._prefix}:c:{customer_id}"

    def _generation_key(self, customer_id: str) -> str:
        return f"{self._prefix}:g:{customer_id}"


class _ThrottledLog:
    """A warning at most once per interval, saying how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last = -math.inf
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._logger.warning(message, *args)


def open_cache(settings: Settings, *, generations: GenerationTable | None = None) -> Cache:
    """The cache the settings ask for: Redis at `settings.redis_url`, else in-process (sharing
    `generations` with sibling workers when given)."""
    if settings.redis_url:
        return RedisCache(settings.redis_url, ttl_s=settings.cache_ttl_s, timeout_s=settings.redis_timeout_ms / 1000)
    return LocalCache(ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries, generations=generations)

