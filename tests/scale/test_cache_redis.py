"""Redis going away, hanging, or out of reach of one process: the service keeps answering."""

from __future__ import annotations

import logging
import time

import pytest
from scale_support import TcpProxy

from omnix_recs.config import DEFAULT_REDIS_FAILURE_THRESHOLD
from omnix_recs.store.cache import REDIS_KEY_PREFIX, Codec, RedisCache

TEXT: Codec[str] = Codec(lambda s: s.encode(), lambda b: b.decode())
RETRY_AFTER_S = 0.2


@pytest.fixture
def make_cache(redis_server):
    made: list[RedisCache] = []

    def make(url: str = redis_server.url, **options: object) -> RedisCache:
        made.append(RedisCache(url, ttl_s=60, timeout_s=0.1, retry_after_s=RETRY_AFTER_S, **options))
        return made[-1]

    yield make
    for cache in made:
        cache.close()


def test_while_redis_is_down_calls_load_uncached_and_it_is_used_again_once_back(make_cache, redis_server, caplog):
    cache = make_cache()
    assert cache.fetch("c1", "profile", TEXT, lambda: "cached") == "cached"
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="omnix.cache"):
        for attempt in range(5):
            uncached = f"uncached {attempt}"
            assert cache.fetch("c1", "profile", TEXT, lambda uncached=uncached: uncached) == uncached
            time.sleep(RETRY_AFTER_S / 2)  # some of these calls probe Redis again, and fail
    assert cache.stats.bypassed == 5
    assert len([r for r in caplog.records if r.name == "omnix.cache"]) == 1  # logged once per interval

    redis_server.start()  # empty: Redis restarted without persistence
    time.sleep(RETRY_AFTER_S)
    assert cache.fetch("c1", "profile", TEXT, lambda: "cached again") == "cached again"
    assert cache.fetch("c1", "profile", TEXT, lambda: "not loaded") == "cached again"


@pytest.mark.parametrize("threshold", [1, DEFAULT_REDIS_FAILURE_THRESHOLD])
def test_a_frozen_redis_costs_threshold_timeouts_then_is_skipped(make_cache, redis_server, threshold):
    cache = make_cache(failure_threshold=threshold)
    redis_server.pause()
    try:
        started = time.perf_counter()
        for customer in range(threshold + 3):
            assert cache.fetch(f"c{customer}", "profile", TEXT, lambda: "from the store") == "from the store"
        elapsed = time.perf_counter() - started
    finally:
        redis_server.resume()
    assert cache.stats.bypassed == threshold + 3
    assert cache.stats.round_trips == cache.stats.failures == threshold  # then the circuit is open
    assert elapsed < threshold * 1.0  # 0.1 s socket timeouts, not redis-py's default of retrying


def test_a_sporadic_timeout_between_successes_does_not_skip_the_cache(make_cache, redis_server, caplog):
    cache = make_cache()
    assert cache.fetch("c1", "profile", TEXT, lambda: "cached") == "cached"
    with caplog.at_level(logging.WARNING, logger="omnix.cache"):
        for _ in range(DEFAULT_REDIS_FAILURE_THRESHOLD):  # as many as open it, were they in a row
            redis_server.pause()  # one call times out, as under a CPU-starved client
            try:
                assert cache.fetch("c1", "profile", TEXT, lambda: "uncached") == "uncached"
            finally:
                redis_server.resume()
            assert cache.fetch("c1", "profile", TEXT, lambda: "not loaded") == "cached"  # Redis used
    assert cache.stats.failures == cache.stats.bypassed == DEFAULT_REDIS_FAILURE_THRESHOLD
    assert not [r for r in caplog.records if r.name == "omnix.cache"]  # no outage reported


def test_invalidations_that_could_not_be_sent_are_sent_when_redis_is_reachable_again(make_cache, redis_server):
    proxy = TcpProxy(redis_server.port)
    try:
        reader = make_cache()  # a process that still reaches Redis
        writer = make_cache(f"redis://127.0.0.1:{proxy.port}/0")  # one cut off from it for a while
        reader.fetch("c1", "profile", TEXT, lambda: "before the purchase")
        writer.fetch("c9", "profile", TEXT, lambda: "connects the writer")
        proxy.cut()
        writer.forget_customer("c1")  # the purchase is recorded while Redis is out of reach
        assert reader.fetch("c1", "profile", TEXT, lambda: "unexpected") == "before the purchase"
        proxy.restore()
        time.sleep(RETRY_AFTER_S)
        writer.fetch("c9", "profile", TEXT, lambda: "anything")  # the first call through sends it
        assert reader.fetch("c1", "profile", TEXT, lambda: "after the purchase") == "after the purchase"
    finally:
        proxy.cut()


def test_erasure_deletes_the_customer_entries_from_redis(make_cache, redis_server):
    cache = make_cache()
    cache.fetch("c1", "profile", TEXT, lambda: "personal data")
    cache.fetch("c1", "served:x", TEXT, lambda: "a list")
    with redis_server.client() as client:
        assert client.hgetall(f"{REDIS_KEY_PREFIX}:c:c1")
        cache.forget_customer("c1")
        assert not client.exists(f"{REDIS_KEY_PREFIX}:c:c1")


def test_redis_keeps_entries_no_longer_than_their_ttl(make_cache, redis_server):
    cache = make_cache()
    cache.fetch("c1", "served:x", TEXT, lambda: "a list", ttl_s=5)
    with redis_server.client() as client:
        assert 0 < client.ttl(f"{REDIS_KEY_PREFIX}:c:c1") <= 5


def test_an_undecodable_entry_is_reloaded(make_cache, redis_server):
    cache = make_cache()
    with redis_server.client() as client:
        client.hset(f"{REDIS_KEY_PREFIX}:c:c1", "profile", b"written by another version")
    assert cache.fetch("c1", "profile", TEXT, lambda: "reloaded") == "reloaded"


def test_a_read_ahead_is_one_round_trip_for_all_its_entries(make_cache):
    cache = make_cache()
    cache.fetch("c1", "served:x", TEXT, lambda: "a served list")
    cache.fetch("c1", "list:x", TEXT, lambda: "a ranking")
    before = cache.stats.round_trips
    with cache.reading_ahead("c1", ["served:x", "list:x"]):
        assert cache.fetch("c1", "served:x", TEXT, lambda: "unexpected") == "a served list"
        assert cache.fetch("c1", "list:x", TEXT, lambda: "unexpected") == "a ranking"
    assert cache.stats.round_trips == before + 1
    with cache.reading_ahead("c1", ["served:y"]):
        cache.fetch("c1", "served:y", TEXT, lambda: "loaded")
    assert cache.stats.round_trips == before + 3  # the read, then the conditional write


def test_a_load_begun_on_a_read_ahead_from_before_a_purchase_is_not_stored(make_cache):
    reader, writer = make_cache(), make_cache()
    with reader.reading_ahead("c1", ["served:x"]):
        writer.forget_customer("c1")  # another process records a purchase after the read
        assert reader.fetch("c1", "served:x", TEXT, lambda: "ranked meanwhile") == "ranked meanwhile"
    assert reader.stats.stale_writes == 1
    assert reader.fetch("c1", "served:x", TEXT, lambda: "after the purchase") == "after the purchase"


def test_while_redis_is_down_a_read_ahead_reads_nothing_and_calls_load_uncached(make_cache, redis_server):
    cache = make_cache()
    redis_server.stop()
    with cache.reading_ahead("c1", ["served:x", "list:x"]):
        assert cache.fetch("c1", "served:x", TEXT, lambda: "from the store") == "from the store"
    assert cache.stats.bypassed == 1
