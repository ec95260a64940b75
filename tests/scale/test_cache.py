"""The cache's promises, held by both implementations (in-process LRU and a real Redis)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omnix_recs.config import Settings
from omnix_recs.store.cache import Cache, Codec, GenerationTable, LocalCache, RedisCache, open_cache
from omnix_recs.store.cache.local import LOCAL_SWEEP_EVERY_S

TEXT: Codec[str] = Codec(lambda s: s.encode(), lambda b: b.decode())


class Loads:
    """A loader that counts its calls and returns "<name>#<call number>"."""

    def __init__(self, name: str = "v", delay_s: float = 0.0) -> None:
        self.name, self.delay_s, self.calls = name, delay_s, 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay_s)
        return f"{self.name}#{n}"


@pytest.fixture(params=["local", "redis"])
def make_cache(request, tmp_path) -> Callable[..., Cache]:
    """Caches of the parametrised kind; several made in one test share their state (one Redis
    database, or one generation table) like the processes of one server."""
    made: list[Cache] = []
    if request.param == "redis":
        redis_server = request.getfixturevalue("redis_server")

        def make(**options: object) -> Cache:
            made.append(RedisCache(redis_server.url, ttl_s=options.pop("ttl_s", 60), timeout_s=0.5, **options))
            return made[-1]
    else:
        generations = GenerationTable.create_shared(tmp_path / "generations")

        def make(**options: object) -> Cache:
            ttl_s = options.pop("ttl_s", 60)
            made.append(LocalCache(ttl_s=ttl_s, max_entries=1000, generations=generations, **options))
            return made[-1]

    yield make
    for cache in made:
        cache.close()


def test_a_value_is_loaded_once_then_served(make_cache):
    cache, load = make_cache(), Loads()
    assert [cache.fetch("c1", "profile", TEXT, load) for _ in range(3)] == ["v#1"] * 3
    assert load.calls == 1
    assert (cache.stats.hits["profile"], cache.stats.misses["profile"]) == (2, 1)


def test_entries_are_per_customer_and_per_name(make_cache):
    cache = make_cache()
    cache.fetch("c1", "profile", TEXT, lambda: "c1 profile")
    cache.fetch("c1", "served:x", TEXT, lambda: "c1 list")
    cache.fetch("c2", "profile", TEXT, lambda: "c2 profile")
    assert cache.fetch("c1", "profile", TEXT, Loads()) == "c1 profile"
    assert cache.fetch("c1", "served:x", TEXT, Loads()) == "c1 list"
    assert cache.fetch("c2", "profile", TEXT, Loads()) == "c2 profile"


def test_forgetting_a_customer_drops_all_their_entries_and_only_theirs(make_cache):
    cache = make_cache()
    for customer in ("c1", "c2"):
        for name in ("profile", "served:x"):
            cache.fetch(customer, name, TEXT, lambda: "old")
    cache.forget_customer("c1")
    assert cache.fetch("c1", "profile", TEXT, lambda: "new") == "new"
    assert cache.fetch("c1", "served:x", TEXT, lambda: "new") == "new"
    assert cache.fetch("c2", "profile", TEXT, lambda: "new") == "old"


def test_forgetting_in_one_process_reaches_the_others(make_cache):
    writer, reader = make_cache(), make_cache()
    assert reader.fetch("c1", "profile", TEXT, lambda: "before the purchase") == "before the purchase"
    writer.forget_customer("c1")
    assert reader.fetch("c1", "profile", TEXT, lambda: "after the purchase") == "after the purchase"


def test_a_load_that_raced_an_invalidation_is_not_stored(make_cache):
    cache = make_cache()

    def load_then_see_a_purchase() -> str:
        value = "read before the purchase"
        cache.forget_customer("c1")  # the purchase commits and invalidates while we were loading
        return value

    assert cache.fetch("c1", "profile", TEXT, load_then_see_a_purchase) == "read before the purchase"
    assert cache.fetch("c1", "profile", TEXT, lambda: "fresh") == "fresh"
    assert cache.stats.stale_writes == 1


def test_a_failed_load_caches_nothing(make_cache):
    cache = make_cache()

    def fail() -> str:
        raise LookupError("no such customer")

    with pytest.raises(LookupError):
        cache.fetch("c1", "profile", TEXT, fail)
    assert cache.fetch("c1", "profile", TEXT, lambda: "loaded") == "loaded"


@pytest.mark.parametrize("ttl_s", [0, None])
def test_ttl_zero_means_no_caching(make_cache, ttl_s):
    cache = make_cache(ttl_s=0) if ttl_s is None else make_cache()
    load = Loads()
    cache.fetch("c1", "profile", TEXT, load, ttl_s=ttl_s)
    cache.fetch("c1", "profile", TEXT, load, ttl_s=ttl_s)
    assert load.calls == 2


def test_entries_expire(make_cache):
    now = [1_000_000.0]
    cache, load = make_cache(clock=lambda: now[0], rng=lambda: 0.0), Loads()
    cache.fetch("c1", "profile", TEXT, load, ttl_s=10)
    now[0] += 9
    assert cache.fetch("c1", "profile", TEXT, load, ttl_s=10) == "v#1"
    now[0] += 2
    assert cache.fetch("c1", "profile", TEXT, load, ttl_s=10) == "v#2"


@pytest.mark.parametrize(
    ("draw", "refreshed"),
    [(0.0, False), (1.0 - 1e-12, True)],
    ids=["unlucky-draw-keeps-the-entry", "lucky-draw-refreshes-early"],
)
def test_slow_entries_are_refreshed_before_they_expire(make_cache, draw, refreshed):
    # XFetch: the refresh probability grows with load time; a draw near 1 refreshes as soon as
    # the entry's load time times -ln(1 - draw) reaches its expiry.
    cache, load = make_cache(rng=lambda: draw), Loads(delay_s=0.05)
    cache.fetch("c1", "profile", TEXT, load, ttl_s=1)
    assert cache.fetch("c1", "profile", TEXT, load, ttl_s=1) == ("v#2" if refreshed else "v#1")


def test_concurrent_misses_share_one_load(make_cache):
    cache, load = make_cache(), Loads(delay_s=0.3)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.fetch("c1", "profile", TEXT, load))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert load.calls == 1
    assert results == ["v#1"] * 8


def test_a_caller_waiting_for_a_load_that_fails_loads_for_itself(make_cache):
    cache = make_cache()
    started, release = threading.Event(), threading.Event()

    def failing_read() -> str:
        started.set()
        release.wait(10)
        raise LookupError("the store went away")

    failures: list[BaseException] = []

    def lead() -> None:
        try:
            cache.fetch("c1", "profile", TEXT, failing_read)
        except LookupError as exc:
            failures.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    started.wait(10)
    waited: list[str] = []
    own = Loads("own")
    waiter = threading.Thread(target=lambda: waited.append(cache.fetch("c1", "profile", TEXT, own)))
    waiter.start()
    time.sleep(0.1)  # the waiter joins the running load
    release.set()
    leader.join(10)
    waiter.join(10)
    assert [str(exc) for exc in failures] == ["the store went away"]
    assert waited == ["own#1"] and own.calls == 1


def test_a_load_in_flight_is_not_shared_after_an_invalidation(make_cache):
    cache = make_cache()
    started, release = threading.Event(), threading.Event()

    def slow_old_read() -> str:
        started.set()
        release.wait(10)
        return "before the purchase"

    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(cache.fetch("c1", "profile", TEXT, slow_old_read)))
    thread.start()
    started.wait(10)
    cache.forget_customer("c1")  # the purchase is recorded while the old read is still running
    assert cache.fetch("c1", "profile", TEXT, lambda: "after the purchase") == "after the purchase"
    release.set()
    thread.join(10)
    assert first == ["before the purchase"]
    assert cache.fetch("c1", "profile", TEXT, lambda: "again") == "after the purchase"


def test_entries_read_ahead_are_what_each_fetch_would_read_and_serve_one_fetch_each(make_cache):
    cache = make_cache()
    cache.fetch("c1", "served:x", TEXT, lambda: "a served list")
    cache.fetch("c1", "list:x", TEXT, lambda: "a ranking")
    cache.fetch("c2", "list:x", TEXT, lambda: "another shopper's ranking")
    with cache.reading_ahead("c1", ["served:x", "list:x", "list:y"]):
        assert cache.fetch("c1", "served:x", TEXT, Loads()) == "a served list"
        assert cache.fetch("c1", "list:x", TEXT, Loads()) == "a ranking"
        assert cache.fetch("c2", "list:x", TEXT, Loads()) == "another shopper's ranking"
        assert cache.fetch("c1", "list:y", TEXT, lambda: "ranked now") == "ranked now"
        assert cache.fetch("c1", "list:y", TEXT, Loads()) == "ranked now"  # read again, not the read-ahead's miss
    with cache.reading_ahead("c1", ["served:x"]):
        pass  # what a block did not use is dropped with it
    cache.forget_customer("c1")
    assert cache.fetch("c1", "served:x", TEXT, lambda: "after the purchase") == "after the purchase"


def test_a_purchase_after_the_read_ahead_counts_for_the_next_fetch(make_cache):
    reader, writer = make_cache(), make_cache()
    reader.fetch("c1", "list:x", TEXT, lambda: "before the purchase")
    with reader.reading_ahead("c1", ["served:x", "list:x"]):
        writer.forget_customer("c1")  # another process records a purchase in between
        reader.fetch("c1", "served:x", TEXT, lambda: "loaded meanwhile")
    assert reader.fetch("c1", "list:x", TEXT, lambda: "after the purchase") == "after the purchase"


def test_open_cache_follows_the_settings(redis_server):
    local = open_cache(Settings(cache_ttl_s=30, cache_max_entries=5))
    remote = open_cache(Settings(redis_url=redis_server.url, cache_ttl_s=30))
    try:
        assert isinstance(local, LocalCache) and (local.ttl_s, local.max_entries) == (30, 5)
        assert isinstance(remote, RedisCache) and remote.ttl_s == 30
    finally:
        remote.close()


# --- in-process specifics ----------------------------------------------------------------------


def test_the_local_cache_keeps_at_most_max_entries_dropping_the_least_recent():
    cache = LocalCache(ttl_s=60, max_entries=2)
    cache.fetch("c1", "profile", TEXT, lambda: "1")
    cache.fetch("c2", "profile", TEXT, lambda: "2")
    cache.fetch("c1", "profile", TEXT, Loads())  # c1 is now the most recent
    cache.fetch("c3", "profile", TEXT, lambda: "3")
    assert len(cache) == 2
    assert cache.fetch("c1", "profile", TEXT, Loads()) == "1"
    assert cache.fetch("c2", "profile", TEXT, lambda: "reloaded") == "reloaded"


def test_the_sweep_removes_what_other_workers_invalidated(tmp_path):
    # An erased customer's data must leave every worker's memory, not just become unreachable.
    now = [0.0]
    generations = GenerationTable.create_shared(tmp_path / "generations")
    worker, other = (
        LocalCache(ttl_s=600, max_entries=100, generations=generations, clock=lambda: now[0]) for _ in range(2)
    )
    worker.fetch("erased", "profile", TEXT, lambda: "personal data")
    other.forget_customer("erased")
    now[0] += LOCAL_SWEEP_EVERY_S
    worker.fetch("someone-else", "profile", TEXT, lambda: "x")  # writes start the sweep, on its own thread
    for _ in range(500):
        if len(worker) == 1:
            break
        time.sleep(0.01)
    assert len(worker) == 1


def test_an_entry_encoded_in_process_is_kept_as_bytes_and_decoded_on_each_hit():
    decoded = []
    codec = Codec(str.encode, lambda raw: decoded.append(raw) or raw.decode(), encoded_in_process=True)
    cache = LocalCache(ttl_s=60, max_entries=10)
    assert cache.fetch("c1", "served:x", codec, lambda: "a list") == "a list"
    assert cache.fetch("c1", "served:x", codec, lambda: "reloaded") == "a list"
    assert decoded == [b"a list"]


def _bump_in_another_process(path: Path, customer_id: str) -> None:
    GenerationTable.attach(path).bump(customer_id)


def test_generation_tables_are_shared_between_processes(tmp_path):
    path = tmp_path / "generations"
    cache = LocalCache(ttl_s=60, max_entries=10, generations=GenerationTable.create_shared(path))
    cache.fetch("c1", "profile", TEXT, lambda: "before")
    child = multiprocessing.get_context("spawn").Process(target=_bump_in_another_process, args=(path, "c1"))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert cache.fetch("c1", "profile", TEXT, lambda: "after") == "after"


# --- refresh ahead: entries whose load only reads are reloaded in the background ------------------


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_entry_due_for_a_refresh_is_served_while_a_background_thread_reloads_it(make_cache):
    now = [1_000_000.0]
    cache, load = make_cache(clock=lambda: now[0]), Loads()
    fetch = lambda: cache.fetch("c1", "profile", TEXT, load, ttl_s=100, refresh_ahead=True)  # noqa: E731
    assert fetch() == "v#1"
    now[0] += 49  # not due yet: every entry's moment lies in the last half of its life
    assert fetch() == "v#1"
    time.sleep(0.1)
    assert load.calls == 1
    now[0] += 27  # 76 s: in the last quarter every entry is due
    assert fetch() == "v#1"  # answered at once with what it has
    wait_until(lambda: cache.stats.refreshes.get("profile") == 1)
    assert fetch() == "v#2" and load.calls == 2
    assert (cache.stats.hits["profile"], cache.stats.misses["profile"]) == (3, 1)
    now[0] += 99  # the reload lives a whole TTL from when it was made
    assert fetch() == "v#2"


def test_an_entry_is_reloaded_once_however_often_it_is_read_meanwhile(make_cache):
    now = [1_000_000.0]
    release = threading.Event()
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        if len(calls) > 1:
            release.wait(10)
        return f"v#{len(calls)}"

    cache = make_cache(clock=lambda: now[0])
    fetch = lambda: cache.fetch("c1", "profile", TEXT, load, ttl_s=100, refresh_ahead=True)  # noqa: E731
    fetch()
    now[0] += 90
    assert [fetch() for _ in range(5)] == ["v#1"] * 5
    release.set()
    wait_until(lambda: cache.stats.refreshes.get("profile") == 1)
    assert fetch() == "v#2" and len(calls) == 2


def test_a_reload_that_raced_an_invalidation_is_not_stored(make_cache):
    now = [1_000_000.0]
    started, release = threading.Event(), threading.Event()
    cache = make_cache(clock=lambda: now[0])

    def slow_old_read() -> str:
        started.set()
        release.wait(10)
        return "before the purchase"

    cache.fetch("c1", "profile", TEXT, lambda: "first", ttl_s=100, refresh_ahead=True)
    now[0] += 90
    assert cache.fetch("c1", "profile", TEXT, slow_old_read, ttl_s=100, refresh_ahead=True) == "first"
    started.wait(10)
    cache.forget_customer("c1")  # a purchase while the reload reads
    release.set()
    wait_until(lambda: cache.stats.stale_writes == 1)
    assert cache.fetch("c1", "profile", TEXT, lambda: "after the purchase", ttl_s=100) == "after the purchase"


def test_a_failing_reload_keeps_the_entry_until_it_expires_and_is_logged(make_cache, caplog):
    now = [1_000_000.0]
    cache = make_cache(clock=lambda: now[0])

    def fail() -> str:
        raise LookupError("the store went away")

    cache.fetch("c1", "profile", TEXT, lambda: "kept", ttl_s=100, refresh_ahead=True)
    now[0] += 90
    assert cache.fetch("c1", "profile", TEXT, fail, ttl_s=100, refresh_ahead=True) == "kept"
    wait_until(lambda: cache.stats.refresh_failures == {"profile": 1})
    assert cache.fetch("c1", "profile", TEXT, Loads(), ttl_s=100) == "kept"
    assert "could not refresh the cache entry profile of c1: LookupError('the store went away')" in caplog.text
    now[0] += 11  # expired: loaded on demand, where a failure reaches the caller
    with pytest.raises(LookupError):
        cache.fetch("c1", "profile", TEXT, fail, ttl_s=100, refresh_ahead=True)


def test_reloads_queue_up_to_a_bound_and_stop_with_the_cache(make_cache, monkeypatch):
    import omnix_recs.store.cache.base as cache_base

    monkeypatch.setattr(cache_base, "MAX_QUEUED_REFRESHES", 2)
    now = [1_000_000.0]
    release = threading.Event()
    cache = make_cache(clock=lambda: now[0])
    reloaded: list[str] = []

    def reload(customer_id: str) -> Callable[[], str]:
        def load() -> str:
            release.wait(10)
            reloaded.append(customer_id)
            return "reloaded"

        return load

    for customer_id in ("c1", "c2", "c3"):
        cache.fetch(customer_id, "profile", TEXT, lambda: "first", ttl_s=100, refresh_ahead=True)
    now[0] += 90
    for customer_id in ("c1", "c2", "c3"):  # c3 finds two reloads queued: it is left to expire
        assert cache.fetch(customer_id, "profile", TEXT, reload(customer_id), ttl_s=100, refresh_ahead=True) == "first"
    release.set()
    wait_until(lambda: sum(cache.stats.refreshes.values()) == 2)
    assert sorted(reloaded) == ["c1", "c2"]

    cache.close()
    now[0] += 5
    assert cache.fetch("c3", "profile", TEXT, reload("c3"), ttl_s=100, refresh_ahead=True) == "first"
    time.sleep(0.1)
    assert sorted(reloaded) == ["c1", "c2"]  # a closed cache reloads nothing in the background


def test_entries_loaded_together_are_reloaded_spread_over_the_first_half_of_the_window():
    # 1,000 entries loaded at one moment, each read every quarter-second from 45 s to 100 s of a
    # 100 s TTL: their reloads start at 50 s and are spread evenly to 75 s, none expires unreloaded.
    now = [1_000_000.0]
    cache = LocalCache(ttl_s=100, max_entries=10_000, clock=lambda: now[0])
    reloaded_at: list[float] = []
    lock = threading.Lock()

    def load() -> str:
        with lock:
            reloaded_at.append(now[0])
        return "v"

    customers = [f"c{n}" for n in range(1000)]
    for customer_id in customers:
        cache.fetch(customer_id, "profile", TEXT, load, ttl_s=100, refresh_ahead=True)
    reloaded_at.clear()
    try:
        for quarter in range(180, 400):
            now[0] = 1_000_000.0 + quarter / 4
            for customer_id in customers:
                cache.fetch(customer_id, "profile", TEXT, load, ttl_s=100, refresh_ahead=True)
            wait_until(lambda: not cache._refreshing)  # noqa: SLF001 (these reloads done before the next read)
    finally:
        cache.close()
    offsets = [at - 1_000_000.0 for at in reloaded_at]
    assert len(offsets) == 1000 and cache.stats.misses["profile"] == 1000  # the first loads only
    assert min(offsets) >= 50 and max(offsets) <= 75.25
    counts = [sum(1 for o in offsets if lo <= o < lo + 5) for lo in (50, 55, 60, 65, 70)]
    assert all(150 <= c <= 250 for c in counts), counts


def test_entries_loaded_together_with_an_expiry_spread_expire_spread_over_it():
    # `expiry_spread=0.25` of a 100 s TTL: each entry lives between 75 and 100 s, at its own point.
    now = [1_000_000.0]
    cache = LocalCache(ttl_s=100, max_entries=10_000, clock=lambda: now[0])
    customers = [f"c{n}" for n in range(1000)]

    def alive_at(second: float) -> int:
        now[0] = 1_000_000.0 + second
        return sum(cache.fetch(c, "list:x", TEXT, lambda: "again", expiry_spread=0.25) == "first" for c in customers)

    for customer_id in customers:
        cache.fetch(customer_id, "list:x", TEXT, lambda: "first", expiry_spread=0.25)
    assert alive_at(74.9) == 1000
    assert 400 <= alive_at(87.5) <= 600  # (entries reloaded there live on: count from the first ones)
