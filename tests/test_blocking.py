"""blocking.py: calls answered from memory stay on the event loop; anything that blocks moves to a thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from omnix_recs.blocking import ensure_may_block, guard_store, run_memory_first
from omnix_recs.store.cache import Codec, LocalCache, RedisCache


class CountingStore:
    """A stand-in for a store: records which thread each read ran on."""

    label = "counting"

    def __init__(self) -> None:
        self.read_threads: list[int] = []

    def get_customer(self, customer_id: str) -> str:
        self.read_threads.append(threading.get_ident())
        return f"customer {customer_id}"


def test_a_call_that_needs_only_memory_runs_on_the_loop() -> None:
    async def main() -> tuple[int, int]:
        return threading.get_ident(), await run_memory_first(threading.get_ident)

    loop_thread, ran_on = asyncio.run(main())
    assert ran_on == loop_thread


def test_a_call_that_reads_the_store_is_run_again_in_a_thread() -> None:
    store = guard_store(CountingStore())
    attempts: list[int] = []

    def answer(customer_id: str) -> str:
        attempts.append(threading.get_ident())
        return store.get_customer(customer_id)

    async def main() -> tuple[int, str]:
        return threading.get_ident(), await run_memory_first(answer, "c1")

    loop_thread, result = asyncio.run(main())
    assert result == "customer c1"
    assert attempts[0] == loop_thread and attempts[1] != loop_thread  # abandoned on the loop, rerun
    assert store.read_threads == [attempts[1]]  # the store was only ever read off the loop


def test_errors_other_than_would_block_come_straight_from_the_loop() -> None:
    attempts = []

    def answer() -> None:
        attempts.append(1)
        raise KeyError("unknown shopper")

    with pytest.raises(KeyError, match="unknown shopper"):
        asyncio.run(run_memory_first(answer))
    assert len(attempts) == 1


def test_outside_a_memory_first_call_the_guard_only_forwards() -> None:
    plain = CountingStore()
    store = guard_store(plain)
    ensure_may_block()  # nothing forbids blocking here
    assert store.get_customer("c2") == "customer c2"
    assert store.label == "counting"  # attributes pass through
    assert guard_store(store) is store  # guarding twice adds nothing


def test_blocking_is_allowed_again_after_a_memory_first_call() -> None:
    async def main() -> None:
        await run_memory_first(lambda: None)
        ensure_may_block()

    asyncio.run(main())


def test_a_local_cache_hit_is_memory_only_and_a_wait_for_another_load_is_not() -> None:
    cache = LocalCache(ttl_s=60, max_entries=10)
    codec = Codec(str.encode, bytes.decode)
    cache.fetch("c1", "shopper:v1", codec, lambda: "snapshot")

    async def main() -> str:
        return await run_memory_first(cache.fetch, "c1", "shopper:v1", codec, lambda: pytest.fail("reloaded"))

    assert asyncio.run(main()) == "snapshot"
    assert cache.stats.hits == {"shopper": 1} and cache.stats.misses == {"shopper": 1}


def test_waiting_for_another_threads_load_happens_off_the_loop() -> None:
    cache = LocalCache(ttl_s=60, max_entries=10)
    started, release = threading.Event(), threading.Event()

    def slow_load() -> str:
        started.set()
        release.wait(5)
        return "loaded by the other thread"

    codec = Codec(str.encode, bytes.decode)
    loader = threading.Thread(target=cache.fetch, args=("c1", "shopper:v1", codec, slow_load))
    loader.start()
    started.wait(5)

    async def main() -> str:
        waiter = asyncio.ensure_future(run_memory_first(cache.fetch, "c1", "shopper:v1", codec, lambda: "loaded again"))
        await asyncio.sleep(0.05)  # runs only because the waiter left the loop for a thread
        assert not waiter.done()
        release.set()
        return await waiter

    try:
        assert asyncio.run(main()) == "loaded by the other thread"  # one load (single flight)
    finally:
        release.set()
        loader.join(5)


def test_only_the_in_process_cache_answers_from_memory() -> None:
    assert LocalCache.in_memory and not RedisCache.in_memory
