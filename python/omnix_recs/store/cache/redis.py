"""The cache in Redis, shared by every process that uses the same Redis.

Independent servers can only invalidate each other's entries through a shared place; Redis is
that place. Redis trouble must never fail a request: a failing Redis is skipped and requests
read the store directly until it answers again. With a near cache (near.py) each process also
keeps what it read, and Redis tells it what changed, so a repeat read costs no round trip.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from omnix_recs.blocking import ensure_may_block
from omnix_recs.breaker import CircuitBreaker
from omnix_recs.config import DEFAULT_REDIS_FAILURE_THRESHOLD
from omnix_recs.store.cache.base import Cache, Codec, Entry, ThrottledLog
from omnix_recs.store.cache.near import (
    ENTRY_HEADER,
    NEAR_HEARTBEAT_S,
    NEAR_LEASE_S,
    TRACKING_DEAD_AFTER_S,
    NearCache,
    NearField,
    QueuedWrite,
    Tracker,
)

log = logging.getLogger("omnix.cache")

T = TypeVar("T")

# After `failure_threshold` consecutive Redis failures the cache is skipped this long before one
# trial call probes Redis.
REDIS_RETRY_AFTER_S = 5.0
FAILURE_LOG_INTERVAL_S = 30.0
# Invalidations kept while Redis is unreachable; beyond this the oldest are dropped (and logged).
MAX_UNSENT_INVALIDATIONS = 100_000
# While invalidations wait, a background thread tries to send them this often: another process
# must stop serving what they invalidate soon after Redis returns, even if this one goes idle.
UNSENT_FLUSH_EVERY_S = 0.5
# A generation counter outlives the entries it guards by far; it only has to outlive a load.
REDIS_GENERATION_TTL_S = 7 * 24 * 3600
REDIS_KEY_PREFIX = "omnix:v1"

# KEYS: entries hash, generation counter. ARGV: generation read before loading, field, payload,
# seconds the hash should live at least. Writes only if the generation is unchanged.
_STORE_IF_CURRENT = """
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


@dataclass(slots=True)
class _ReadAhead:
    """Entries of one customer read together (`RedisCache.reading_ahead`), not yet used."""

    customer_id: str
    generation: int
    payloads: dict[str, bytes | None]


class RedisCache(Cache):
    """Entries in Redis, shared by every process that uses the same Redis.

    A customer's entries are the fields of one hash, `<prefix>:c:<customer>`, and the
    generation is a counter beside it, `<prefix>:g:<customer>`. Forgetting is one transaction
    (INCR the counter, DEL the hash); storing is a Lua script that writes only if the counter
    still holds the generation read before loading.

    Every call has a short socket timeout and no retries; a failed call goes to the store, and
    `failure_threshold` failures in a row open a circuit breaker: the cache is skipped for
    `retry_after_s`, then one trial call probes Redis (its failure skips it again at once). A
    lone failure does not open it: under CPU overload a timeout may be this process's own
    starvation, and skipping the cache would then cost CPU when it is shortest. Failures are
    logged at most once per `FAILURE_LOG_INTERVAL_S`, with a count. Invalidations that could not
    be sent are kept (bounded) and sent as soon as Redis answers again, by a background thread
    that tries every `flush_every_s` (and before any call that reaches Redis first), so another
    process does not keep serving what this one meant to invalidate, whether or not this one
    serves another call.

    `near_cache_bytes` > 0 adds the near cache (near.py): customers' hashes read are kept in
    this process (at most `near_cache_entries` entries and about `near_cache_bytes` bytes), so
    hits are answered from memory (`in_memory`: on the event loop), and entry writes go out
    behind the call through the tracking connection. Invalidations, the breaker and the
    outage queue work as without it; the near cache answers only while Redis confirms, every
    `NEAR_HEARTBEAT_S`, that it has told this process every change (near.py).
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float,
        timeout_s: float,
        retry_after_s: float = REDIS_RETRY_AFTER_S,
        failure_threshold: int = DEFAULT_REDIS_FAILURE_THRESHOLD,
        flush_every_s: float = UNSENT_FLUSH_EVERY_S,
        key_prefix: str = REDIS_KEY_PREFIX,
        near_cache_bytes: int = 0,
        near_cache_entries: int = 50_000,
        near_lease_s: float = NEAR_LEASE_S,
        near_heartbeat_s: float = NEAR_HEARTBEAT_S,
        near_dead_after_s: float = TRACKING_DEAD_AFTER_S,
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
        self._breaker = CircuitBreaker(failure_threshold=failure_threshold, cool_down_s=retry_after_s)
        self._failure_log = ThrottledLog(log, FAILURE_LOG_INTERVAL_S)
        self._lone_failure_log = ThrottledLog(log, FAILURE_LOG_INTERVAL_S)
        self._unsent: OrderedDict[str, None] = OrderedDict()  # customers whose invalidation failed
        self._sending: list[frozenset[str]] = []  # taken from `_unsent` by the sends under way
        self._unsent_lock = threading.Lock()
        self._outage = False
        self._flush_every_s = flush_every_s
        self._flusher: threading.Thread | None = None  # alive while invalidations wait
        self._closed = threading.Event()
        self._ahead = threading.local()  # .read: this thread's `_ReadAhead`, or None
        self.near: NearCache | None = None
        self._tracker: Tracker | None = None
        if near_cache_bytes > 0 and ttl_s > 0:
            self.near = NearCache(
                max_entries=near_cache_entries, max_bytes=near_cache_bytes, lease_s=near_lease_s, clock=clock
            )
            pool = self._client.connection_pool
            tracking_options = {**pool.connection_kwargs, "protocol": 3, "socket_timeout": near_dead_after_s}
            self._tracker = Tracker(
                self.near,
                lambda: pool.connection_class(**tracking_options),
                entries_key=self._entries_key,
                generation_key=self._generation_key,
                on_stale_write=self._count_stale_write,
                heartbeat_s=near_heartbeat_s,
                dead_after_s=near_dead_after_s,
                retry_after_s=retry_after_s,
            )
            self.in_memory = True  # hits are; a miss calls ensure_may_block() before Redis

    def close(self) -> None:
        super().close()  # background reloads first: they read and write Redis
        self._closed.set()
        if self._tracker is not None:
            self._tracker.close()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=max(1.0, 4 * self._flush_every_s))
        self._client.close()

    @property
    def unsent_invalidations(self) -> int:
        """Customers whose invalidation waits for Redis, those of a send under way included
        (they are not sent until it succeeds)."""
        with self._unsent_lock:
            return len(set(self._unsent).union(*self._sending))

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        """One Redis transaction, so at most one socket timeout when Redis is slow (the activity
        hook calls this on the event loop, before the write's answer goes out)."""
        if self.near is not None:  # this process stops serving them at once, Redis or not
            self.near.invalidate(customer_ids)
        if self._call(lambda: self._invalidate(list(customer_ids))) is None:
            with self._unsent_lock:
                for customer_id in customer_ids:
                    self._unsent[customer_id] = None
                    self._unsent.move_to_end(customer_id)
                while len(self._unsent) > MAX_UNSENT_INVALIDATIONS:
                    dropped, _ = self._unsent.popitem(last=False)
                    self._failure_log.warning("too many invalidations waiting for Redis; dropped %s's", dropped)
                self._start_flusher()

    def _start_flusher(self) -> None:
        """Caller holds `_unsent_lock`, so at most one flusher runs."""
        if self._closed.is_set() or (self._flusher is not None and self._flusher.is_alive()):
            return
        self._flusher = threading.Thread(target=self._flush_unsent, name="omnix-redis-flush", daemon=True)
        self._flusher.start()

    def _flush_unsent(self) -> None:
        """Send waiting invalidations once Redis answers, then stop. Tried directly, not through
        the breaker: the breaker spares requests a slow Redis; this thread has no caller to spare,
        and its success closes the breaker, so requests use the cache again at once."""
        while not self._closed.wait(self._flush_every_s):
            try:
                self._send_unsent()
            except self._redis_errors:
                continue
            except Exception:  # never let the thread die with invalidations still waiting
                log.exception("sending the invalidations queued during a Redis outage failed")
                continue
            self._breaker.record_success()
            if self._outage:
                self._outage = False
                log.info("Redis reachable again; queued invalidations sent, cache in use")
            with self._unsent_lock:
                if not self._unsent:
                    self._flusher = None
                    return

    @contextlib.contextmanager
    def reading_ahead(self, customer_id: str, names: Sequence[str]) -> Iterator[None]:
        """One round trip for the generation and every entry of `names` (GET and HMGET in one
        pipeline), used by this thread's `fetch`es of them within the block (`Cache.reading_ahead`).
        The generation read with them guards their loads' writes, as a `fetch`'s own read does.
        With the near cache, a `fetch` reads the customer's whole hash itself: nothing to read ahead."""
        if self.near is not None:
            yield
            return
        ensure_may_block()
        fields = list(dict.fromkeys(names))
        answer = self._read_fields(customer_id, fields) if fields and self.ttl_s > 0 else None
        outer = getattr(self._ahead, "read", None)
        if answer is not None:  # else each `fetch` tries Redis itself (the breaker skips it fast)
            generation, payloads = answer
            self._ahead.read = _ReadAhead(customer_id, generation, dict(zip(fields, payloads)))
        try:
            yield
        finally:
            self._ahead.read = outer

    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[Entry | None, int | None]:
        if self.near is not None:
            return self._read_near(self.near, customer_id, name, codec)
        ahead: _ReadAhead | None = getattr(self._ahead, "read", None)
        if ahead is not None and ahead.customer_id == customer_id and name in ahead.payloads:
            return self._entry(customer_id, name, codec, ahead.payloads.pop(name)), ahead.generation

        answer = self._read_fields(customer_id, [name])
        if answer is None:
            return None, None
        generation, (payload,) = answer
        return self._entry(customer_id, name, codec, payload), generation

    def _read_near(
        self, near: NearCache, customer_id: str, name: str, codec: Codec[T]
    ) -> tuple[Entry | None, int | None]:
        """From memory when the near cache knows the answer; else the customer's generation and
        whole hash in one round trip (its other entries are usually read next), kept."""
        known = near.get(customer_id, name)
        if known is not None:
            generation, held = known
            if held is None:
                return None, generation
            if held.decoded:
                return Entry(held.value, held.expires_at, held.load_s), generation
            try:
                value = codec.decode(held.value)  # type: ignore[arg-type]
            except Exception as exc:  # written by another version of the code: reload it
                self._failure_log.warning("undecodable cache entry %s of %s: %s", name, customer_id, exc)
                near.discard(customer_id, name)
                return None, generation
            if not codec.encoded_in_process:
                near.decoded(customer_id, generation, name, held, value)
            return Entry(value, held.expires_at, held.load_s), generation

        ensure_may_block()
        ticket = near.begin(customer_id)
        try:

            def read() -> list[Any]:
                with self._client.pipeline(transaction=False) as pipe:
                    pipe.get(self._generation_key(customer_id))
                    pipe.hgetall(self._entries_key(customer_id))
                    return pipe.execute()

            answer = self._call(read)
            if answer is None:
                return None, None
            generation_raw, payloads = answer
            generation = int(generation_raw or 0)
            near.fill(ticket, generation, payloads)
        finally:
            near.end(ticket)
        return self._entry(customer_id, name, codec, payloads.get(name.encode())), generation

    def _count_stale_write(self) -> None:
        self.stats.stale_writes += 1

    def _read_fields(self, customer_id: str, fields: list[str]) -> tuple[int, list[bytes | None]] | None:
        """The customer's generation and the stored payloads of `fields`, in one round trip (GET
        and HMGET in one pipeline); None when Redis is skipped or fails."""

        def read() -> list[Any]:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.get(self._generation_key(customer_id))
                pipe.hmget(self._entries_key(customer_id), fields)
                return pipe.execute()

        answer = self._call(read)
        if answer is None:
            return None
        generation_raw, payloads = answer
        return int(generation_raw or 0), payloads

    def _entry(self, customer_id: str, name: str, codec: Codec[T], payload: bytes | None) -> Entry | None:
        """The live entry a stored payload holds, or None (absent, expired or undecodable)."""
        if payload is None:
            return None
        try:
            expires_at, load_s = ENTRY_HEADER.unpack_from(payload)
            if expires_at <= self._clock():
                return None
            value = codec.decode(payload[ENTRY_HEADER.size :])
        except Exception as exc:  # a value written by another version of the code: just reload it
            self._failure_log.warning("undecodable cache entry %s of %s: %s", name, customer_id, exc)
            return None
        return Entry(value, expires_at, load_s)

    def _write(self, customer_id: str, name: str, generation: int, entry: Entry, codec: Codec[T]) -> None:
        body = codec.encode(entry.value)  # type: ignore[arg-type]
        payload = ENTRY_HEADER.pack(entry.expires_at, entry.load_s) + body
        keep_s = max(1, math.ceil(entry.expires_at - self._clock()))
        if self.near is not None and self._tracker is not None:
            # Behind the call, through the tracking connection: no round trip on the way, and
            # Redis (NOLOOP) does not echo the write back to invalidate the snapshot it went into.
            held = entry.value if not codec.encoded_in_process else body
            near_field = NearField(entry.expires_at, entry.load_s, held, not codec.encoded_in_process, len(payload))
            self.near.record_write(customer_id, generation, name, near_field)
            self._tracker.enqueue_write(
                QueuedWrite(
                    self._entries_key(customer_id), self._generation_key(customer_id), generation, name, payload, keep_s
                )
            )
            return
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
        self.stats.round_trips += 1
        try:
            self._send_unsent()
            result = operation()
        except self._redis_errors as exc:
            self.stats.failures += 1
            if self._breaker.record_failure():
                self._outage = True
                self._failure_log.warning(
                    "Redis unavailable (%s: %s); serving without the cache, retrying in %g s",
                    type(exc).__name__,
                    exc,
                    self._retry_after_s,
                )
            else:  # tolerated: not an outage yet, so info, throttled on its own
                self._lone_failure_log.info("a Redis call failed (%s: %s); served uncached", type(exc).__name__, exc)
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
            sending = frozenset(pending)
            self._sending.append(sending)
        try:
            self._invalidate(pending)
        except BaseException:
            with self._unsent_lock:
                for customer_id in pending:
                    self._unsent.setdefault(customer_id, None)
            raise
        finally:
            with self._unsent_lock:
                self._sending.remove(sending)

    def _entries_key(self, customer_id: str) -> str:
        return f"{self._prefix}:c:{customer_id}"

    def _generation_key(self, customer_id: str) -> str:
        return f"{self._prefix}:g:{customer_id}"
