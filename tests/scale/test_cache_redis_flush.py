"""Invalidations queued while Redis was away reach it on their own once it is back."""

from __future__ import annotations

import time

import pytest

from omnix_recs.store.cache import Codec, RedisCache

TEXT: Codec[str] = Codec(lambda s: s.encode(), lambda b: b.decode())
RETRY_AFTER_S = 0.2
FLUSH_EVERY_S = 0.2
# Generous on a loaded machine; the flush itself takes one FLUSH_EVERY_S after Redis answers.
FRESH_WITHIN_S = 5.0


@pytest.fixture
def make_cache(redis_server):
    made: list[RedisCache] = []

    def make(timeout_s: float = 0.1) -> RedisCache:
        made.append(
            RedisCache(
                redis_server.url,
                ttl_s=60,
                timeout_s=timeout_s,
                retry_after_s=RETRY_AFTER_S,
                flush_every_s=FLUSH_EVERY_S,
            )
        )
        return made[-1]

    yield make
    for cache in made:
        cache.close()


def _seconds_until_fresh(reader: RedisCache) -> float:
    """Until the reader, answered by Redis (a call that skipped Redis proves nothing), loads anew."""
    started = time.monotonic()
    while time.monotonic() - started < FRESH_WITHIN_S:
        bypassed = reader.stats.bypassed
        answer = reader.fetch("c1", "profile", TEXT, lambda: "after the purchase")
        if answer == "after the purchase" and reader.stats.bypassed == bypassed:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"the reader still served the entry invalidated during the outage after {FRESH_WITHIN_S} s")


def test_invalidations_queued_during_an_outage_are_sent_without_another_call(make_cache, redis_server):
    reader, writer = make_cache(), make_cache()
    assert reader.fetch("c1", "profile", TEXT, lambda: "before the purchase") == "before the purchase"
    writer.fetch("c9", "profile", TEXT, lambda: "connects the writer")
    with redis_server.client() as admin:
        admin.save()  # Redis comes back with the reader's entry, as a persistent Redis would
    redis_server.stop()

    writer.forget_customer("c1")  # the purchase is recorded while Redis is down
    assert writer.unsent_invalidations == 1
    redis_server.start()

    # The writer serves nothing more; only its background flush can invalidate the entry.
    _seconds_until_fresh(reader)
    assert writer.unsent_invalidations == 0
    with redis_server.client() as admin:
        assert int(admin.get("omnix:v1:g:c1") or 0) >= 1


def test_the_flush_keeps_trying_while_redis_stays_down_and_stops_once_sent(make_cache, redis_server):
    writer = make_cache()
    redis_server.stop()
    writer.forget_customers(["c1", "c2"])
    time.sleep(4 * FLUSH_EVERY_S)  # several failed attempts
    assert writer.unsent_invalidations == 2
    redis_server.start()
    deadline = time.monotonic() + FRESH_WITHIN_S
    while writer.unsent_invalidations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.unsent_invalidations == 0
    with redis_server.client() as admin:
        assert [admin.get(f"omnix:v1:g:{c}") for c in ("c1", "c2")] == [b"1", b"1"]
    # The cache is in use again at once: the flush closed the circuit.
    assert writer.fetch("c1", "profile", TEXT, lambda: "loaded") == "loaded"
    assert writer.fetch("c1", "profile", TEXT, lambda: "not loaded") == "loaded"


def test_invalidations_being_sent_count_as_unsent_until_redis_has_them(make_cache, redis_server):
    # Redis frozen: each send hangs until the socket timeout, so one is under way most of the time.
    writer = make_cache(timeout_s=0.5)
    writer.fetch("c9", "profile", TEXT, lambda: "connects the writer")
    redis_server.pause()
    writer.forget_customers(["c1", "c2"])
    seen = []
    for _ in range(12):
        seen.append(writer.unsent_invalidations)
        time.sleep(0.05)
    assert seen == [2] * 12
    redis_server.resume()
    deadline = time.monotonic() + FRESH_WITHIN_S
    while writer.unsent_invalidations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.unsent_invalidations == 0


def test_close_stops_a_waiting_flush(make_cache, redis_server):
    writer = make_cache()
    redis_server.stop()
    writer.forget_customer("c1")
    writer.close()
    redis_server.start()
    time.sleep(3 * FLUSH_EVERY_S)
    with redis_server.client() as admin:
        assert admin.get("omnix:v1:g:c1") is None
