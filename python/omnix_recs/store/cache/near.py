"""The near cache: what this process read from Redis, kept in its memory while Redis says it holds.

A Redis read costs a round trip and, for a call answered on the event loop, a hand-off to a
thread; most reads of a shopper's entries return what the last one did. So each process keeps
the customers' hashes it read (a `Snapshot`: the customer's generation and fields), and Redis
tells it about every change (server-assisted client-side caching: `CLIENT TRACKING` in BCAST
mode on the entry and generation prefixes, RESP3 pushes on one connection, `Tracker`).

What an invalidation means follows from the generation scheme (redis.py): a generation change
(`<prefix>:g:<customer>`) makes every entry of the customer invalid, so the snapshot goes. A
change of the entries hash (`<prefix>:c:<customer>`) only ever adds entries valid for the
current generation (or drops the hash when it expires), so the fields held stay valid; only
the knowledge that an absent field is absent in Redis too is lost. The snapshot is marked
incomplete and the tracker reads it again in the background, so the next call finds it whole.

Freshness is a lease: the tracker pings Redis every `heartbeat_s` on the tracking connection,
and the near cache answers only within `lease_s` of the last ping answered. Redis sends on a
connection in order, so a pong proves every invalidation Redis made before that ping has been
applied: a hit is at most `lease_s` behind Redis, also while Redis hangs (SIGSTOP) or the
network does. A lost connection flushes everything: invalidations sent meanwhile are lost.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("omnix.cache")

# Pings on the tracking connection; each answered one extends the lease.
NEAR_HEARTBEAT_S = 0.1
# How far behind Redis a near hit may be, at most (also how long hits go on once Redis hangs).
NEAR_LEASE_S = 0.5
# Without any answer this long the tracking connection is given up (and the near cache flushed).
TRACKING_DEAD_AFTER_S = 2.0
# Writes waiting for the tracker to send them; beyond this new ones are dropped (a cache write).
MAX_QUEUED_WRITES = 10_000
# Snapshots the tracker reads again after another process added to them, at most, and per batch.
MAX_QUEUED_REFRESHES = 10_000
BATCH = 256
# Writes and reads wait this long at most to go out together: one exchange costs more than its
# items (a write lands in Redis that much later; a shopper's next call is seconds away).
BATCH_EVERY_S = 0.02
# A customer whose snapshot would take more than this share of the byte cap is not kept.
MAX_SHARE_PER_CUSTOMER = 8
# Tracking failures are logged at most this often.
LOG_EVERY_S = 30.0
# Every value stored in Redis starts with its expiry (time.time()) and its load time, float64s.
ENTRY_HEADER = struct.Struct("<dd")


@dataclass(frozen=True, slots=True)
class NearField:
    """One entry held: `value` is the encoded body until `decoded` (then the value itself)."""

    expires_at: float
    load_s: float
    value: object
    decoded: bool
    size: int  # bytes it took in Redis: what the byte cap counts


@dataclass(slots=True)
class Snapshot:
    """A customer's entries as Redis held them, plus this process's own writes since."""

    generation: int
    fields: dict[str, NearField]
    complete: bool  # False: Redis may hold fields this does not (another process added some)
    size: int = 0


@dataclass(slots=True, eq=False)  # compared by identity: two reads of a customer are two tickets
class Ticket:
    """A request-path read of one customer from Redis, taken before it is sent: invalidations
    that arrive while it travels (on another connection) mark it, so it cannot store stale data."""

    customer_id: str
    epoch: int
    stale: bool = False  # the generation changed, or everything was flushed
    changed: bool = False  # the entries hash changed: what it read may be incomplete


@dataclass
class NearStats:
    hits: int = 0  # entries answered from memory, absent ones included
    fills: int = 0  # snapshots read into memory (request path and background refreshes)
    invalidations: int = 0  # snapshots dropped because their generation changed
    flushes: int = 0  # times everything was dropped (connection lost, FLUSHALL)
    evictions: int = 0  # snapshots dropped for the entry or byte cap
    dropped_writes: int = 0  # writes not sent (queue full, or the connection failed)


def parse_fields(raw: dict[Any, Any], now: float) -> dict[str, NearField]:
    """The live fields of an HGETALL answer (expired and headless values left out)."""
    fields: dict[str, NearField] = {}
    for name, payload in raw.items():
        if len(payload) < ENTRY_HEADER.size:
            continue
        expires_at, load_s = ENTRY_HEADER.unpack_from(payload)
        if expires_at > now:
            key = name.decode() if isinstance(name, bytes) else str(name)
            fields[key] = NearField(expires_at, load_s, payload[ENTRY_HEADER.size :], False, len(payload))
    return fields


class NearCache:
    """Customers' snapshots in this process: an LRU by customer, at most `max_entries` fields and
    about `max_bytes` bytes (as stored in Redis; decoded objects take more). Thread-safe.

    Used only while a tracking session is live and its lease runs (`usable`); `end_session`
    drops everything. Request-path reads take a `Ticket` first (`begin`) and store what they
    read through it (`fill`), so an invalidation that overtakes their answer wins.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        lease_s: float = NEAR_LEASE_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self.stats = NearStats()
        self._clock = clock
        self._monotonic = monotonic
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._entries = 0
        self._bytes = 0
        self._lock = threading.Lock()
        self._live = False
        self._fresh_until = -1.0
        self._epoch = 0  # moves on with every flush: tickets from before cannot fill
        self._reading: dict[str, list[Ticket]] = {}

    def __len__(self) -> int:
        return len(self._snapshots)

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def bytes(self) -> int:
        return self._bytes

    def usable(self) -> bool:
        return self._monotonic() < self._fresh_until

    # --- the request path ---------------------------------------------------------------------

    def get(self, customer_id: str, name: str) -> tuple[int, NearField | None] | None:
        """(generation, the live field or None when Redis has none either), or None when only
        Redis knows (no usable snapshot, or an incomplete one without the field)."""
        if not self.usable():
            return None
        with self._lock:
            snapshot = self._snapshots.get(customer_id)
            if snapshot is None:
                return None
            near = snapshot.fields.get(name)
            if near is not None and near.expires_at <= self._clock():
                self._drop_field(snapshot, name)
                near = None
            if near is None and not snapshot.complete:
                return None
            self._snapshots.move_to_end(customer_id)
            self.stats.hits += 1
            return snapshot.generation, near

    def decoded(self, customer_id: str, generation: int, name: str, near: NearField, value: object) -> None:
        """Keep `near`'s decoded value in its place, so later hits skip decoding."""
        with self._lock:
            snapshot = self._snapshots.get(customer_id)
            if snapshot is not None and snapshot.generation == generation and snapshot.fields.get(name) is near:
                snapshot.fields[name] = NearField(near.expires_at, near.load_s, value, True, near.size)

    def discard(self, customer_id: str, name: str) -> None:
        with self._lock:
            snapshot = self._snapshots.get(customer_id)
            if snapshot is not None and name in snapshot.fields:
                self._drop_field(snapshot, name)
                snapshot.complete = False  # Redis still holds it

    def begin(self, customer_id: str) -> Ticket:
        with self._lock:
            ticket = Ticket(customer_id, self._epoch)
            self._reading.setdefault(customer_id, []).append(ticket)
        return ticket

    def end(self, ticket: Ticket) -> None:
        with self._lock:
            tickets = self._reading.get(ticket.customer_id)
            if tickets is not None:
                tickets.remove(ticket)
                if not tickets:
                    del self._reading[ticket.customer_id]

    def fill(self, ticket: Ticket, generation: int, raw: dict[Any, Any]) -> None:
        """Keep what a request-path read found, unless an invalidation overtook it."""
        fields = parse_fields(raw, self._clock())
        with self._lock:
            if ticket.stale or ticket.epoch != self._epoch or not self._live:
                return
            self._merge(ticket.customer_id, generation, fields, complete=not ticket.changed)

    def record_write(self, customer_id: str, generation: int, name: str, near: NearField) -> None:
        """This process stored `near` under `generation`: keep it in the customer's snapshot, if
        one of that generation is held (a snapshot is only ever started by a read)."""
        with self._lock:
            snapshot = self._snapshots.get(customer_id)
            if snapshot is None or snapshot.generation != generation:
                return
            self._drop_field(snapshot, name)
            snapshot.fields[name] = near
            snapshot.size += near.size
            self._entries += 1
            self._bytes += near.size
            self._evict()

    def invalidate(self, customer_ids: Iterable[str]) -> None:
        """The customers' generations changed: drop their snapshots, and spoil reads in flight."""
        with self._lock:
            for customer_id in customer_ids:
                self._drop(customer_id)
                for ticket in self._reading.get(customer_id, ()):
                    ticket.stale = True

    # --- what the tracker calls ---------------------------------------------------------------

    def start_session(self, confirmed_at: float) -> None:
        with self._lock:
            self._flush()
            self._live = True
            self._fresh_until = confirmed_at + self.lease_s

    def confirm(self, sent_at: float) -> None:
        """A ping sent at `sent_at` (monotonic) was answered: everything before it is applied."""
        if self._live:
            self._fresh_until = max(self._fresh_until, sent_at + self.lease_s)

    def end_session(self) -> None:
        with self._lock:
            self._live = False
            self._fresh_until = -1.0
            self._flush()

    def flush(self) -> None:
        """Redis was flushed (FLUSHALL / FLUSHDB): drop everything, the session goes on."""
        with self._lock:
            self._flush()

    def changed(self, customer_ids: Iterable[str]) -> list[str]:
        """Another process added entries for these customers: the snapshots held of them (whose
        ids are returned, to be read again) no longer know what is absent."""
        held = []
        with self._lock:
            for customer_id in customer_ids:
                snapshot = self._snapshots.get(customer_id)
                if snapshot is not None:
                    snapshot.complete = False
                    held.append(customer_id)
                for ticket in self._reading.get(customer_id, ()):
                    ticket.changed = True
        return held

    def refreshed(self, customer_id: str, generation: int, raw: dict[Any, Any]) -> None:
        """A background read of a held snapshot, answered on the tracking connection: in order
        with its invalidations, so it is complete as of now."""
        fields = parse_fields(raw, self._clock())
        with self._lock:
            if self._live and customer_id in self._snapshots:
                self._merge(customer_id, generation, fields, complete=True)

    # --- bookkeeping (callers hold the lock) ----------------------------------------------------

    def _merge(self, customer_id: str, generation: int, fields: dict[str, NearField], *, complete: bool) -> None:
        old = self._snapshots.get(customer_id)
        if old is not None:
            if old.generation > generation:  # a read older than what is held
                return
            if old.generation == generation:
                # This process's own writes may not have reached Redis yet: they stay. And an
                # entry held already (same expiry and load time: the same write) stays decoded.
                for name, near in old.fields.items():
                    new = fields.get(name)
                    if new is None or (new.expires_at == near.expires_at and new.load_s == near.load_s):
                        fields[name] = near
            self._drop(customer_id)
        size = sum(near.size for near in fields.values())
        if size > self.max_bytes // MAX_SHARE_PER_CUSTOMER or len(fields) > self.max_entries:
            return
        self._snapshots[customer_id] = Snapshot(generation, fields, complete, size)
        self._entries += len(fields)
        self._bytes += size
        self.stats.fills += 1
        self._evict()

    def _evict(self) -> None:
        while self._snapshots and (self._entries > self.max_entries or self._bytes > self.max_bytes):
            self._drop(next(iter(self._snapshots)))
            self.stats.evictions += 1

    def _drop(self, customer_id: str) -> None:
        snapshot = self._snapshots.pop(customer_id, None)
        if snapshot is not None:
            self._entries -= len(snapshot.fields)
            self._bytes -= snapshot.size

    def _drop_field(self, snapshot: Snapshot, name: str) -> None:
        near = snapshot.fields.pop(name, None)
        if near is not None:
            snapshot.size -= near.size
            self._entries -= 1
            self._bytes -= near.size

    def _flush(self) -> None:
        self._snapshots.clear()
        self._entries = self._bytes = 0
        self._epoch += 1
        for tickets in self._reading.values():
            for ticket in tickets:
                ticket.stale = True
        self.stats.flushes += 1


@dataclass(frozen=True, slots=True)
class QueuedWrite:
    """An entry to store in the customer's hash if the customer's generation is still
    `generation`, keeping the hash at least `keep_s` seconds."""

    entries_key: str
    generation_key: str
    generation: int
    name: str
    payload: bytes
    keep_s: int


@dataclass
class _Exchange:
    """One pipeline the tracker sends: writes, background reads, then a PING."""

    writes: list[QueuedWrite] = field(default_factory=list)
    refreshes: list[str] = field(default_factory=list)


class Tracker:
    """The thread that owns the tracking connection (RESP3, `CLIENT TRACKING ON BCAST NOLOOP`).

    It applies invalidation pushes to the near cache, sends this process's entry writes (through
    this connection, so NOLOOP keeps their echo from invalidating the snapshots they went into),
    reads again the snapshots other processes added to, and pings every `heartbeat_s`. Writes
    check the generation with WATCH and MULTI/EXEC rather than redis.py's Lua script: Redis 7.0
    echoes a script's writes despite NOLOOP. A failed or silent (`dead_after_s`) connection
    ends the session: the near cache is flushed and unused until a new connection tracks
    again, tried at once and then every `retry_after_s`.
    """

    def __init__(
        self,
        near: NearCache,
        connect: Callable[[], Any],
        *,
        entries_key: Callable[[str], str],
        generation_key: Callable[[str], str],
        on_stale_write: Callable[[], None],
        heartbeat_s: float = NEAR_HEARTBEAT_S,
        dead_after_s: float = TRACKING_DEAD_AFTER_S,
        retry_after_s: float = 5.0,
    ) -> None:
        import redis

        self._redis = redis
        self._near = near
        self._connect = connect
        self._entries_prefix = entries_key("")
        self._generation_prefix = generation_key("")
        self._entries_key = entries_key
        self._generation_key = generation_key
        self._on_stale_write = on_stale_write
        self._heartbeat_s = heartbeat_s
        self._dead_after_s = dead_after_s
        self._retry_after_s = retry_after_s
        self._writes: deque[QueuedWrite] = deque()
        self._refreshes: OrderedDict[str, None] = OrderedDict()
        self._refresh_lock = threading.Lock()
        self._asleep = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = threading.Event()
        self.sessions = 0  # tracking sessions started
        self._logged_at = -LOG_EVERY_S
        self._thread = threading.Thread(target=self._run, name="omnix-redis-tracking", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._dead_after_s + 1.0)
        if not self._thread.is_alive():  # else it may still touch them: left to the process's end
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    def enqueue_write(self, write: QueuedWrite) -> None:
        if len(self._writes) >= MAX_QUEUED_WRITES:
            self._near.stats.dropped_writes += 1
            return
        self._writes.append(write)
        if self._asleep:
            self._wake()

    def _wake(self) -> None:
        self._asleep = False
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):  # full (a wake-up is pending anyway) or closed
            pass

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            conn = None
            try:
                conn = self._start()
                failures = 0
                self._serve(conn)
            except self._redis.RedisError as exc:
                failures += 1
                if self._may_log():
                    log.warning(
                        "Redis tracking connection lost (%s: %s); near cache off until it is back",
                        type(exc).__name__,
                        exc,
                    )
            except Exception:  # never let the thread die: the near cache would stay off for good
                failures += 1
                if self._may_log():
                    log.exception("the Redis tracking connection failed")
            finally:
                self._near.end_session()
                self._drop_queued()
                if conn is not None:
                    conn.disconnect()
            if failures > 1:  # the first retry at once: a killed connection is usually replaceable
                self._closed.wait(self._retry_after_s)
        log.debug("Redis tracking stopped")

    def _may_log(self) -> bool:
        """At most one failure logged per `LOG_EVERY_S`: a flapping Redis must not flood the log."""
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_S:
            return False
        self._logged_at = now
        return True

    def _start(self) -> Any:
        conn = self._connect()
        conn.connect()
        conn._parser.set_invalidation_push_handler(self._on_push)
        sent_at = time.monotonic()
        conn.send_command(
            "CLIENT",
            "TRACKING",
            "ON",
            "BCAST",
            "PREFIX",
            self._generation_prefix,
            "PREFIX",
            self._entries_prefix,
            "NOLOOP",
        )
        conn.read_response()
        # Reads that begin from here on are tracked: the near cache may keep what they find.
        self._near.start_session(sent_at)
        self.sessions += 1
        if self.sessions > 1:
            log.info("Redis tracking connection back; near cache in use")
        return conn

    def _serve(self, conn: Any) -> None:
        """Exchanges at most every `BATCH_EVERY_S` (a full batch at once), a ping at least every
        `heartbeat_s`; between them, invalidation pushes as they come."""
        next_ping = next_batch = time.monotonic()
        while not self._closed.is_set():
            now = time.monotonic()
            pending = bool(self._writes or self._refreshes)
            if now >= next_ping or (pending and (now >= next_batch or len(self._writes) >= BATCH)):
                self._exchange(conn, self._take())
                now = time.monotonic()
                next_ping, next_batch = now + self._heartbeat_s, now + BATCH_EVERY_S
                continue
            if conn.can_read(0):  # an invalidation push: read_response hands it to `_on_push`
                conn.read_response(push_request=True)
                continue
            waits_for = [conn._sock]
            until = min(next_ping, next_batch) if pending else next_ping
            if not pending:  # sleep until a write comes (`enqueue_write` wakes it), or the ping
                self._asleep = True
                if self._writes:
                    self._asleep = False
                    continue
                waits_for.append(self._wake_r)
            readable, _, _ = select.select(waits_for, [], [], max(0.0, until - now))
            self._asleep = False
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass

    def _take(self) -> _Exchange:
        exchange = _Exchange()
        while self._writes and len(exchange.writes) < BATCH:
            exchange.writes.append(self._writes.popleft())
        with self._refresh_lock:
            while self._refreshes and len(exchange.refreshes) < BATCH:
                exchange.refreshes.append(self._refreshes.popitem(last=False)[0])
        return exchange

    def _exchange(self, conn: Any, exchange: _Exchange) -> None:
        """One pipeline: the writes' generations and hash lifetimes (under WATCH), the background
        reads, a PING; then, if any write still holds, one MULTI/EXEC storing them. Answers are
        read in order; the pushes between them are applied as they come (`_on_push`)."""
        writes = exchange.writes
        commands: list[tuple[object, ...]] = []
        if writes:
            commands.append(("WATCH", *dict.fromkeys(write.generation_key for write in writes)))
            commands.append(("MGET", *(write.generation_key for write in writes)))
        for customer_id in exchange.refreshes:
            commands.append(("GET", self._generation_key(customer_id)))
            commands.append(("HGETALL", self._entries_key(customer_id)))
        commands.append(("PING",))
        sent_at = time.monotonic()
        conn.send_packed_command(conn.pack_commands(commands))
        deadline = sent_at + self._dead_after_s
        generations: list[Any] = []
        if writes:
            self._reply(conn, deadline)  # WATCH: OK
            generations = self._reply(conn, deadline)
        for customer_id in exchange.refreshes:
            generation = self._reply(conn, deadline)
            fields = self._reply(conn, deadline)
            self._near.refreshed(customer_id, int(generation or 0), fields or {})
        self._reply(conn, deadline)  # PONG
        self._near.confirm(sent_at)
        if writes:
            self._commit(conn, writes, generations)

    def _commit(self, conn: Any, writes: list[QueuedWrite], generations: list[Any]) -> None:
        """Store the writes whose generation is unchanged, in one MULTI/EXEC that fails whole if
        a watched generation moved on since it was read (then they are dropped). A hash lives
        as long as its longest entry: its lifetime is set when it has none (NX) and otherwise
        only ever extended (GT)."""
        keep: dict[str, int] = {}
        stored = 0
        commands: list[tuple[object, ...]] = [("MULTI",)]
        for write, generation in zip(writes, generations, strict=True):
            if int(generation or 0) != write.generation:
                self._on_stale_write()
                continue
            commands.append(("HSET", write.entries_key, write.name, write.payload))
            keep[write.entries_key] = max(keep.get(write.entries_key, 0), write.keep_s)
            stored += 1
        if not stored:
            commands = [("UNWATCH",)]
        else:
            for key, seconds in keep.items():
                commands += [("EXPIRE", key, seconds, "NX"), ("EXPIRE", key, seconds, "GT")]
            commands.append(("EXEC",))
        conn.send_packed_command(conn.pack_commands(commands))
        deadline = time.monotonic() + self._dead_after_s
        for _ in commands[:-1]:
            self._reply(conn, deadline)  # OK, QUEUED...
        if self._reply(conn, deadline) is None and stored:  # EXEC refused: a generation moved on
            self._near.stats.dropped_writes += stored

    def _reply(self, conn: Any, deadline: float) -> Any:
        """The next reply, waiting for it until `deadline` at most (then the connection is dead)."""
        while not conn.can_read(0):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._redis.TimeoutError("no answer on the Redis tracking connection")
            select.select([conn._sock], [], [], left)
        return conn.read_response()

    def _on_push(self, message: Sequence[Any]) -> None:
        """An invalidation: keys whose values changed, or None when the database was flushed."""
        keys = message[1] if len(message) > 1 else None
        if keys is None:
            self._near.flush()
            return
        generations, entries = [], []
        for raw in keys:
            key = _text(raw)
            if key.startswith(self._generation_prefix):
                generations.append(key[len(self._generation_prefix) :])
            elif key.startswith(self._entries_prefix):
                entries.append(key[len(self._entries_prefix) :])
        if generations:
            self._near.invalidate(generations)
            self._near.stats.invalidations += len(generations)
        if entries:
            held = self._near.changed(entries)
            with self._refresh_lock:
                for customer_id in held:
                    self._refreshes[customer_id] = None
                while len(self._refreshes) > MAX_QUEUED_REFRESHES:
                    self._refreshes.popitem(last=False)  # it stays incomplete: Redis is asked on use

    def _drop_queued(self) -> None:
        """Writes and reads queued for a connection that is gone are dropped: a new session
        starts empty, and a cache write may be lost."""
        dropped = len(self._writes)
        self._writes.clear()
        self._near.stats.dropped_writes += dropped
        with self._refresh_lock:
            self._refreshes.clear()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
