"""The near cache in front of Redis (store/cache/near.py): hits from memory, kept fresh by Redis.

Against a real redis-server: a repeat read makes no Redis call (counted by Redis itself, INFO
commandstats) and runs on the event loop; another client's invalidation reaches it; a lost or
frozen tracking connection turns it off (and flushes it) until tracking is back; it stays
within its bounds. `NearCache` alone (no Redis) for the races an invalidation can win.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scale_support import RedisServer, TcpProxy

from omnix_recs.blocking import run_memory_first
from omnix_recs.config import DEFAULT_REDIS_FAILURE_THRESHOLD, Settings
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.cache import REDIS_KEY_PREFIX, Codec, RedisCache, open_cache
from omnix_recs.store.cache.near import ENTRY_HEADER, NearCache, NearField

TEXT: Codec[str] = Codec(lambda s: s.encode(), lambda b: b.decode())
ENCODED: Codec[str] = Codec(lambda s: s.encode(), lambda b: b.decode(), encoded_in_process=True)
RETRY_AFTER_S = 0.2
LEASE_S = 0.3
DEAD_AFTER_S = 1.0
# Bounds for what travels between threads and processes: generous, a loaded machine is slow.
WITHIN_S = 5.0
# Commands a hit must not cause (PING is the tracker's heartbeat, INFO the test's own).
DATA_COMMANDS = ("get", "mget", "hgetall", "hmget", "hset", "evalsha", "eval", "exec", "incr", "del")


@pytest.fixture
def make_cache(redis_server: RedisServer) -> Iterator[Callable[..., RedisCache]]:
    made: list[RedisCache] = []

    def make(url: str = redis_server.url, **options: Any) -> RedisCache:
        options.setdefault("near_cache_bytes", 1 << 20)
        cache = RedisCache(
            url,
            ttl_s=60,
            timeout_s=0.1,
            retry_after_s=RETRY_AFTER_S,
            near_lease_s=LEASE_S,
            near_dead_after_s=DEAD_AFTER_S,
            **options,
        )
        made.append(cache)
        if cache.near is not None:
            eventually(lambda: cache.near is not None and cache.near.usable(), "tracking to start")
        return cache

    yield make
    for cache in made:
        cache.close()


def eventually(check: Callable[[], object], what: str, within_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {within_s} s for {what}")
        time.sleep(0.01)


def data_calls(redis_server: RedisServer) -> dict[str, int]:
    with redis_server.client() as client:
        stats = client.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in DATA_COMMANDS}


def written(redis_server: RedisServer, customer_id: str, name: str) -> bool:
    with redis_server.client() as client:
        return bool(client.hexists(f"{REDIS_KEY_PREFIX}:c:{customer_id}", name))


def test_a_repeat_read_is_answered_from_memory_without_a_redis_call(make_cache, redis_server):
    cache = make_cache()
    assert cache.in_memory
    assert cache.fetch("c1", "profile", TEXT, lambda: "loaded") == "loaded"
    assert cache.fetch("c1", "served:x", ENCODED, lambda: "a list") == "a list"
    eventually(lambda: written(redis_server, "c1", "served:x"), "the writes to reach Redis")
    before = data_calls(redis_server)
    for _ in range(50):
        assert cache.fetch("c1", "profile", TEXT, lambda: "not loaded") == "loaded"
        assert cache.fetch("c1", "served:x", ENCODED, lambda: "not loaded") == "a list"
    assert data_calls(redis_server) == before
    assert cache.stats.hits == {"profile": 50, "served": 50}


def test_a_hit_is_answered_on_the_event_loop_and_a_miss_in_a_thread(make_cache):
    cache = make_cache()
    threads: list[str] = []

    def read(customer_id: str) -> str:
        threads.append(threading.current_thread().name)
        return cache.fetch(customer_id, "profile", TEXT, lambda: "loaded")

    async def answer(customer_id: str) -> str:
        return await run_memory_first(read, customer_id)

    assert asyncio.run(answer("c1")) == "loaded"
    assert len(threads) == 2 and threads[1] != threads[0]  # tried on the loop, then in a thread
    threads.clear()
    assert asyncio.run(answer("c1")) == "loaded"
    assert threads == [threading.main_thread().name]  # once, on the loop


def test_an_entry_absent_from_a_whole_snapshot_is_known_absent_without_a_redis_call(make_cache, redis_server):
    cache = make_cache()
    cache.fetch("c1", "profile", TEXT, lambda: "loaded")  # reads the customer's whole hash
    before = data_calls(redis_server)
    assert cache.fetch("c1", "served:x", TEXT, lambda: "ranked") == "ranked"
    calls = data_calls(redis_server)
    assert calls["hgetall"] == before["hgetall"] and calls["get"] == before["get"]


FORGET_IN_ANOTHER_PROCESS = """
import sys
from omnix_recs.store.cache import RedisCache
cache = RedisCache(sys.argv[1], ttl_s=60, timeout_s=2, near_cache_bytes=1 << 20)
cache.forget_customer("c1")
cache.close()
"""


@pytest.mark.parametrize("writer_in", ["another client", "another process"])
def test_another_clients_invalidation_reaches_the_near_copy(make_cache, redis_server, writer_in):
    reader = make_cache()
    assert reader.fetch("c1", "profile", TEXT, lambda: "before the purchase") == "before the purchase"
    assert reader.fetch("c1", "profile", TEXT, lambda: "unexpected") == "before the purchase"
    if writer_in == "another client":
        make_cache(near_cache_bytes=0).forget_customer("c1")
    else:
        subprocess.run([sys.executable, "-c", FORGET_IN_ANOTHER_PROCESS, redis_server.url], check=True, timeout=60)
    eventually(
        lambda: reader.fetch("c1", "profile", TEXT, lambda: "after the purchase") == "after the purchase",
        "the invalidation to reach the reader",
    )
    assert reader.near is not None and reader.near.stats.invalidations >= 1


def test_an_entry_another_process_adds_is_read_again_in_the_background(make_cache, redis_server):
    reader, writer = make_cache(), make_cache()
    reader.fetch("c1", "profile", TEXT, lambda: "loaded")
    writer.fetch("c1", "served:x", TEXT, lambda: "served by the writer")
    eventually(lambda: written(redis_server, "c1", "served:x"), "the writer's entry to reach Redis")
    assert reader.near is not None
    eventually(lambda: reader.near.get("c1", "served:x") is not None, "the reader to read the snapshot again")
    before = data_calls(redis_server)
    assert reader.fetch("c1", "served:x", TEXT, lambda: "unexpected") == "served by the writer"
    assert reader.fetch("c1", "profile", TEXT, lambda: "unexpected") == "loaded"  # kept meanwhile
    assert data_calls(redis_server) == before


def test_a_load_overtaken_by_a_purchase_is_not_stored(make_cache, redis_server):
    reader, writer = make_cache(), make_cache(near_cache_bytes=0)

    def load() -> str:
        writer.forget_customer("c1")  # another process records a purchase during the load
        return "ranked before the purchase"

    assert reader.fetch("c1", "served:x", TEXT, load) == "ranked before the purchase"
    eventually(lambda: reader.stats.stale_writes == 1, "the write to be refused")
    assert not written(redis_server, "c1", "served:x")
    assert reader.fetch("c1", "served:x", TEXT, lambda: "after the purchase") == "after the purchase"


def test_reads_racing_invalidations_from_several_threads_end_fresh(make_cache):
    reader, writer = make_cache(), make_cache(near_cache_bytes=0)
    customers = [f"c{n}" for n in range(20)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                for customer in customers:
                    reader.fetch(customer, "profile", TEXT, lambda: "before")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        writer.forget_customers(customers)
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join(WITHIN_S)
    assert not errors and not any(thread.is_alive() for thread in threads)
    writer.forget_customers(customers)  # the last change: every reader must see it
    for customer in customers:
        eventually(lambda c=customer: reader.fetch(c, "profile", TEXT, lambda: "after") == "after", "fresh")


def test_a_flushed_redis_flushes_the_near_cache(make_cache, redis_server):
    cache = make_cache()
    cache.fetch("c1", "profile", TEXT, lambda: "loaded")
    # The write is sent behind the call: flushed before it lands, Redis would hold it again after.
    eventually(lambda: written(redis_server, "c1", "profile"), "the write to reach Redis")
    with redis_server.client() as client:
        client.flushall()
    eventually(lambda: cache.fetch("c1", "profile", TEXT, lambda: "reloaded") == "reloaded", "the flush")


def _tracking_client_ids(redis_server: RedisServer) -> list[int]:
    with redis_server.client() as client:
        return [c["id"] for c in client.client_list() if "t" in c["flags"]]


def test_a_killed_tracking_connection_flushes_the_near_cache_until_tracking_is_back(make_cache, redis_server):
    cache = make_cache()
    assert cache.near is not None
    cache.fetch("c1", "profile", TEXT, lambda: "loaded")
    eventually(lambda: written(redis_server, "c1", "profile"), "the write to reach Redis")  # sent behind the call
    (tracking,) = _tracking_client_ids(redis_server)
    flushes = cache.near.stats.flushes
    with redis_server.client() as client:
        client.client_kill_filter(_id=tracking)
    eventually(lambda: cache.near.stats.flushes > flushes, "the near cache to be flushed")
    eventually(lambda: cache.near.usable() and _tracking_client_ids(redis_server), "tracking to start again")
    assert len(cache.near) == 0
    round_trips = cache.stats.round_trips
    assert cache.fetch("c1", "profile", TEXT, lambda: "unexpected") == "loaded"  # from Redis
    assert cache.stats.round_trips == round_trips + 1


def test_while_tracking_is_cut_off_the_near_copy_is_not_served(make_cache, redis_server):
    proxy = TcpProxy(redis_server.port)
    try:
        reader = make_cache(f"redis://127.0.0.1:{proxy.port}/0")  # partitioned from Redis below
        writer = make_cache(near_cache_bytes=0)
        assert reader.near is not None
        assert reader.fetch("c1", "profile", TEXT, lambda: "before the purchase") == "before the purchase"
        proxy.cut()
        writer.forget_customer("c1")  # reaches Redis, but not the reader
        # Unused once the lease runs out; flushed once the connection is given up.
        eventually(lambda: not reader.near.usable() and len(reader.near) == 0, "the near cache to be flushed")
        assert reader.fetch("c1", "profile", TEXT, lambda: "from the store") == "from the store"
        assert reader.stats.bypassed == 1  # Redis is out of reach: the store answered
        proxy.restore()
        eventually(lambda: reader.near.usable(), "tracking to start again", within_s=WITHIN_S + 5 * RETRY_AFTER_S)
        assert reader.fetch("c1", "profile", TEXT, lambda: "after the purchase") == "after the purchase"
        assert reader.fetch("c1", "profile", TEXT, lambda: "unexpected") == "after the purchase"
    finally:
        proxy.cut()


def test_a_stopped_redis_flushes_the_near_cache_and_calls_load_uncached(make_cache, redis_server):
    cache = make_cache()
    assert cache.near is not None
    cache.fetch("c1", "profile", TEXT, lambda: "cached")
    redis_server.stop()
    eventually(lambda: not cache.near.usable() and len(cache.near) == 0, "the near cache to be flushed")
    assert cache.fetch("c1", "profile", TEXT, lambda: "uncached") == "uncached"
    assert cache.stats.bypassed == 1
    redis_server.start()  # empty: restarted without persistence
    eventually(lambda: cache.near.usable(), "tracking to start again", within_s=WITHIN_S + 5 * RETRY_AFTER_S)
    eventually(lambda: cache.fetch("c1", "profile", TEXT, lambda: "cached again") == "cached again", "Redis in use")
    assert cache.fetch("c1", "profile", TEXT, lambda: "not loaded") == "cached again"


@pytest.mark.parametrize("threshold", [1, DEFAULT_REDIS_FAILURE_THRESHOLD])
def test_a_frozen_redis_stops_near_hits_within_the_lease_then_costs_threshold_timeouts(
    make_cache, redis_server, threshold
):
    cache = make_cache(failure_threshold=threshold)
    assert cache.near is not None
    customers = [f"c{n}" for n in range(threshold + 3)]
    for customer in customers:
        cache.fetch(customer, "profile", TEXT, lambda: "cached")
    round_trips, failures = cache.stats.round_trips, cache.stats.failures
    redis_server.pause()
    try:
        eventually(lambda: not cache.near.usable(), "the lease to run out")
        for customer in customers:
            assert cache.fetch(customer, "profile", TEXT, lambda: "from the store") == "from the store"
    finally:
        redis_server.resume()
    assert cache.stats.bypassed == threshold + 3
    assert cache.stats.round_trips - round_trips == cache.stats.failures - failures == threshold
    eventually(lambda: cache.near.usable(), "tracking to answer again")


def test_the_near_cache_keeps_to_its_entry_and_byte_bounds(make_cache):
    by_entries = make_cache(near_cache_entries=10)
    for n in range(40):
        by_entries.fetch(f"c{n}", "profile", TEXT, lambda: "x")
    assert by_entries.near is not None
    assert by_entries.near.entries <= 10 and by_entries.near.stats.evictions > 0
    assert by_entries.fetch("c39", "profile", TEXT, lambda: "unexpected") == "x"  # the newest stay

    by_bytes = make_cache(near_cache_bytes=64 * 1024)
    for n in range(40):
        by_bytes.fetch(f"d{n}", "profile", TEXT, lambda: "x" * 4000)
    assert by_bytes.near is not None
    assert 0 < by_bytes.near.bytes <= 64 * 1024 and by_bytes.near.stats.evictions > 0


def test_without_a_near_cache_every_read_is_a_redis_call(make_cache, redis_server):
    cache = make_cache(near_cache_bytes=0)
    assert cache.near is None and not cache.in_memory
    cache.fetch("c1", "profile", TEXT, lambda: "loaded")
    round_trips = cache.stats.round_trips
    cache.fetch("c1", "profile", TEXT, lambda: "unexpected")
    assert cache.stats.round_trips == round_trips + 1
    assert not _tracking_client_ids(redis_server)


@pytest.mark.parametrize(
    ("environ", "near"),
    [({}, True), ({"OMNIX_REDIS_NEAR_CACHE_MB": "0"}, False), ({"OMNIX_REDIS_NEAR_CACHE_MB": "8"}, True)],
)
def test_the_setting_turns_the_near_cache_on_and_off(redis_server, environ, near):
    settings = Settings.from_env({"OMNIX_REDIS_URL": redis_server.url, **environ})
    cache = open_cache(settings)
    try:
        assert isinstance(cache, RedisCache)
        assert (cache.near is not None) is near and cache.in_memory is near
    finally:
        cache.close()


@pytest.mark.parametrize("value", ["-1", "65537", "lots"])
def test_a_bad_near_cache_size_is_refused_naming_the_setting(value):
    with pytest.raises(InvalidArgumentError, match="OMNIX_REDIS_NEAR_CACHE_MB"):
        Settings.from_env({"OMNIX_REDIS_NEAR_CACHE_MB": value})


# --- NearCache alone: the races an invalidation can win ----------------------------------------


def _payload(value: bytes, expires_at: float = 1e12) -> bytes:
    return ENTRY_HEADER.pack(expires_at, 0.01) + value


def _live(near: NearCache) -> NearCache:
    near.start_session(time.monotonic())
    return near


def test_a_read_overtaken_by_an_invalidation_is_not_kept():
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20))
    ticket = near.begin("c1")
    near.invalidate(["c1"])  # arrives on the tracking connection before the read's answer
    near.fill(ticket, 3, {b"profile": _payload(b"old")})
    near.end(ticket)
    assert near.get("c1", "profile") is None


def test_a_read_overtaken_by_another_write_is_kept_but_not_trusted_for_absence():
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20))
    ticket = near.begin("c1")
    near.changed(["c1"])
    near.fill(ticket, 3, {b"profile": _payload(b"kept")})
    near.end(ticket)
    found = near.get("c1", "profile")
    assert found is not None and found[0] == 3
    assert near.get("c1", "served:x") is None  # unknown: Redis is asked


def test_a_read_from_before_a_flush_is_not_kept():
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20))
    ticket = near.begin("c1")
    near.end_session()
    near.start_session(time.monotonic())
    near.fill(ticket, 3, {b"profile": _payload(b"old")})
    assert near.get("c1", "profile") is None


def test_an_older_generation_never_replaces_a_newer_one():
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20))
    near.fill(near.begin("c1"), 5, {b"profile": _payload(b"new")})
    near.fill(near.begin("c1"), 4, {b"profile": _payload(b"old")})
    found = near.get("c1", "profile")
    assert found is not None and found[0] == 5 and found[1] is not None and found[1].value == b"new"


def test_own_writes_go_into_a_snapshot_of_their_generation_only():
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20))
    near.fill(near.begin("c1"), 5, {})
    near.record_write("c1", 4, "profile", NearField(1e12, 0.0, "stale", True, 10))
    assert near.get("c1", "profile") == (5, None)
    near.record_write("c1", 5, "profile", NearField(1e12, 0.0, "fresh", True, 10))
    found = near.get("c1", "profile")
    assert found is not None and found[1] is not None and found[1].value == "fresh"
    near.record_write("c2", 5, "profile", NearField(1e12, 0.0, "x", True, 10))  # no snapshot: none made
    assert near.get("c2", "profile") is None


def test_the_lease_runs_out_without_confirmations():
    now = [100.0]
    near = NearCache(max_entries=100, max_bytes=1 << 20, lease_s=0.5, monotonic=lambda: now[0])
    near.start_session(now[0])
    near.fill(near.begin("c1"), 1, {b"profile": _payload(b"v")})
    assert near.get("c1", "profile") is not None
    now[0] += 0.6
    assert near.get("c1", "profile") is None
    near.confirm(now[0] - 0.1)  # a ping sent 0.1 s ago was answered
    assert near.get("c1", "profile") is not None


def test_expired_entries_are_not_answered():
    clock = [1000.0]
    near = _live(NearCache(max_entries=100, max_bytes=1 << 20, clock=lambda: clock[0]))
    near.fill(near.begin("c1"), 1, {b"served:x": _payload(b"v", expires_at=1005.0)})
    assert near.get("c1", "served:x") is not None
    clock[0] = 1006.0
    assert near.get("c1", "served:x") == (1, None)  # known absent: Redis has it expired too
    assert near.entries == 0
