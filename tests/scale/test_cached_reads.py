"""Recommendations read through the cache answer exactly what they would without it."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from omnix_recs.blocking import guard_store, run_memory_first
from omnix_recs.domain.models import Customer, CustomerChange, Interaction, InteractionKind, Purchase
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.cached_reads import NO_CACHE, ShopperReads, forget
from omnix_recs.engine.features import summarize_purchases
from omnix_recs.engine.recommender import Recommender
from omnix_recs.engine.registry import ModelHolder
from omnix_recs.engine.served_lists import LIST_REUSE_S, SERVED_LIST_TTL_S
from omnix_recs.store import open_store
from omnix_recs.store.cache import LocalCache, RedisCache


@pytest.fixture
def store(shop_store_url):
    s = open_store(shop_store_url)
    yield s
    s.close()


@pytest.fixture
def model(store):
    holder = ModelHolder(store)
    holder.reload_if_changed(force=True)
    return holder


@pytest.fixture(params=["local", "redis"])
def cache(request):
    if request.param == "local":
        yield LocalCache(ttl_s=60, max_entries=1000)
    else:
        remote = RedisCache(request.getfixturevalue("redis_server").url, ttl_s=60, timeout_s=0.5)
        yield remote
        remote.close()


def now() -> datetime:
    return datetime.now(UTC)


def assert_same_history(actual, expected) -> None:
    for name in ("items", "days_since_last", "mean_gap_days", "orders", "habit"):
        np.testing.assert_allclose(getattr(actual, name), getattr(expected, name), rtol=1e-6, err_msg=name)
    assert (actual.trips, actual.trips_last_90_days, actual.last_trip_at) == (
        expected.trips,
        expected.trips_last_90_days,
        expected.last_trip_at,
    )
    assert actual.spend == pytest.approx(expected.spend)


@pytest.mark.parametrize("days_back", [0, 3, 40], ids=["now", "three-days-ago", "forty-days-ago"])
def test_cached_shoppers_equal_the_store_read_ones(store, model, cache, trained_shop, days_back):
    version, index_of = model.model.version, model.model.index_of
    cached, direct = ShopperReads(store, cache), ShopperReads(store, NO_CACHE)
    as_of = now() - timedelta(days=days_back)
    for customer_id in trained_shop.customers[:10]:
        for _ in range(2):  # the first read fills the cache, the second is served from it
            shopper = cached.shopper(customer_id, version, index_of, as_of)
            reference = direct.shopper(customer_id, version, index_of, as_of)
            assert shopper.customer == reference.customer
            assert_same_history(shopper.history(as_of), reference.history(as_of))
            assert shopper.cart(as_of) == reference.cart(as_of)
            expected = summarize_purchases(store.purchases_of(customer_id, before=as_of), index_of).at(as_of)
            assert_same_history(shopper.history(as_of), expected)
    assert cache.stats.hits["shopper"] >= 10


def test_a_purchase_dated_after_the_moment_asked_about_is_left_out(store, model, cache, trained_shop):
    customer_id = trained_shop.customers[0]
    product = trained_shop.products[0]
    tomorrow = now() + timedelta(hours=20)  # shoppers' clocks run ahead; the API allows a day
    store.add_purchases([Purchase(customer_id, "future-order", product, 1, 1.0, tomorrow)])
    reads = ShopperReads(store, cache)
    shopper = reads.shopper(customer_id, model.model.version, model.model.index_of)
    as_of = now()
    expected = summarize_purchases(store.purchases_of(customer_id, before=as_of), model.model.index_of).at(as_of)
    assert_same_history(shopper.history(as_of), expected)


def test_the_cart_follows_interactions_once_the_cache_is_told(store, model, cache, trained_shop):
    customer_id, (bread, milk) = trained_shop.customers[1], trained_shop.products[:2]
    reads = ShopperReads(store, cache)
    version, index_of = model.model.version, model.model.index_of
    assert reads.shopper(customer_id, version, index_of).cart(now()) == []
    for n, (kind, product) in enumerate(
        [(InteractionKind.CART_ADD, bread), (InteractionKind.CART_ADD, milk), (InteractionKind.CART_REMOVE, bread)]
    ):
        store.add_interaction(Interaction(customer_id, f"i{n}", kind, now() - timedelta(minutes=10 - n), product))
    forget(cache, customer_id, CustomerChange.CART)  # what the API's activity hook does after a cart event
    assert reads.shopper(customer_id, version, index_of).cart(now()) == [milk]
    assert reads.shopper(customer_id, version, index_of).cart(now() + timedelta(hours=2)) == [milk]
    assert reads.shopper(customer_id, version, index_of).cart(now() + timedelta(hours=4)) == []  # went stale


def test_a_cart_event_keeps_the_cached_history_and_a_view_keeps_everything(store, model, cache, trained_shop):
    customer_id, bread = trained_shop.customers[4], trained_shop.products[0]
    reads = ShopperReads(store, cache)
    version, index_of = model.model.version, model.model.index_of
    reads.shopper(customer_id, version, index_of)  # fills both entries
    misses = dict(cache.stats.misses)

    store.add_interaction(Interaction(customer_id, "v1", InteractionKind.VIEW, now() - timedelta(minutes=2), bread))
    forget(cache, customer_id, CustomerChange.BROWSING)
    reads.shopper(customer_id, version, index_of)
    assert cache.stats.misses == misses  # nothing was read again

    store.add_interaction(Interaction(customer_id, "c1", InteractionKind.CART_ADD, now() - timedelta(minutes=1), bread))
    forget(cache, customer_id, CustomerChange.CART)
    assert reads.shopper(customer_id, version, index_of).cart(now()) == [bread]
    assert cache.stats.misses == {**misses, "cart": misses["cart"] + 1}  # the history stayed cached

    store.add_purchases([Purchase(customer_id, "o-new", bread, 1, 1.0, now() - timedelta(seconds=30))])
    forget(cache, customer_id, CustomerChange.DATA)
    shopper = reads.shopper(customer_id, version, index_of)
    assert cache.stats.misses == {"shopper": misses["shopper"] + 1, "cart": misses["cart"] + 2}  # both read again
    assert shopper.history(now()).days_since_last[shopper.history(now()).items.tolist().index(index_of[bread])] < 0.01


def test_an_identical_request_gets_the_same_list_until_the_shopper_changes(store, model, cache, trained_shop):
    recommender = Recommender(store, model, cache=cache)
    customer_id = trained_shop.customers[2]
    first = recommender.recommend(customer_id, strategy=Strategy.DISCOVER, limit=5)
    again = recommender.recommend(customer_id, strategy=Strategy.DISCOVER, limit=5)
    assert again == first
    assert (
        recommender.recommend(customer_id, strategy=Strategy.DISCOVER, limit=6).recommendation_id
        != first.recommendation_id
    )

    bought = first.items[0].product_id
    store.add_interaction(
        Interaction(customer_id, "cart-1", InteractionKind.CART_ADD, now() - timedelta(seconds=2), bought)
    )
    forget(cache, customer_id, CustomerChange.CART)
    with_cart = recommender.recommend(customer_id, strategy=Strategy.DISCOVER, limit=5)
    assert with_cart.recommendation_id != first.recommendation_id  # a list follows the cart too

    store.add_purchases([Purchase(customer_id, "new-order", bought, 1, 1.0, now() - timedelta(seconds=1))])
    forget(cache, customer_id, CustomerChange.DATA)
    after = recommender.recommend(customer_id, strategy=Strategy.DISCOVER, limit=5)
    assert after.recommendation_id != first.recommendation_id
    assert bought not in [item.product_id for item in after.items]  # DISCOVER never shows what was bought


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_shopper_near_expiry_is_answered_from_memory_and_read_again_behind_the_call(store, model, trained_shop):
    """A shopper's entries only read the store, so near their expiry a call is still answered
    with what is cached, on the event loop (nothing waits for the store), while a background
    thread reads them again: a profile change nobody told the cache of shows once it is done."""
    clock = Clock()
    cache = LocalCache(ttl_s=100, max_entries=1000, clock=clock)
    try:
        reads = ShopperReads(guard_store(store), cache)
        customer_id = trained_shop.customers[7]
        version, index_of = model.model.version, model.model.index_of
        cached = reads.shopper(customer_id, version, index_of).customer
        store.put_customer(replace(cached, display_name="Renamed", updated_at=now()))
        clock.now += 90  # within the last eighth of the entries' life: both are due

        runs: list[int] = []

        def read() -> Customer:
            runs.append(threading.get_ident())
            return reads.shopper(customer_id, version, index_of).customer

        assert asyncio.run(run_memory_first(read)) == cached
        assert len(runs) == 1  # answered on the loop: no store read made it start again in a thread
        deadline = time.monotonic() + 10
        while cache.stats.refreshes != {"shopper": 1, "cart": 1}:
            assert time.monotonic() < deadline, cache.stats.refreshes
            time.sleep(0.01)
        assert reads.shopper(customer_id, version, index_of).customer.display_name == "Renamed"
        assert cache.stats.misses == {"shopper": 1, "cart": 1}  # the calls' own loads: the first only
    finally:
        cache.close()


def test_a_ranked_list_is_served_again_under_a_new_id_until_its_reuse_window_ends(store, model, trained_shop):
    clock = Clock()
    cache = LocalCache(ttl_s=300, max_entries=1000, clock=clock, rng=lambda: 0.0)
    recommender = Recommender(store, model, cache=cache)
    customer_id = trained_shop.customers[4]
    first = recommender.recommend(customer_id, limit=5)
    assert recommender.recommend(customer_id, limit=5) == first  # a retry: the very same list

    clock.now += SERVED_LIST_TTL_S + 1
    again = recommender.recommend(customer_id, limit=5)
    assert again.items == first.items and again.recommendation_id != first.recommendation_id
    assert recommender.recommend(customer_id, limit=5) == again  # and that one is retried as it is
    for served in (first, again):  # each is a served list of its own, for feedback to refer to
        stored = store.get_recommendation(served.recommendation_id)
        assert (stored.customer_id, stored.items) == (customer_id, first.items)
    assert cache.stats.misses["list"] == 1

    clock.now += LIST_REUSE_S
    recommender.recommend(customer_id, limit=5)
    assert cache.stats.misses["list"] == 2  # ranked again


def test_a_ranking_is_reused_no_longer_than_the_cache_keeps_what_it_read(store, model, trained_shop):
    """A cache whose entries live 60 s ranks again within 60 s, not after `LIST_REUSE_S`: a
    ranking is only reused while the shopper's snapshot it read may be."""
    clock = Clock()
    cache = LocalCache(ttl_s=60, max_entries=1000, clock=clock, rng=lambda: 0.0)
    recommender = Recommender(store, model, cache=cache)
    customer_id = trained_shop.customers[5]
    first = recommender.recommend(customer_id, limit=5)
    clock.now += 44  # within every ranking's reuse: 45 to 60 s (`LIST_REUSE_SPREAD`)
    assert recommender.recommend(customer_id, limit=5).items == first.items
    assert cache.stats.misses["list"] == 1
    clock.now += 17  # 61 s: past every ranking's reuse, and that serving's retry window
    recommender.recommend(customer_id, limit=5)
    assert cache.stats.misses["list"] == 2


def test_with_redis_a_list_served_again_costs_one_read_and_one_write(store, model, trained_shop, redis_server):
    clock = Clock()
    cache = RedisCache(redis_server.url, ttl_s=300, timeout_s=0.5, clock=clock, rng=lambda: 0.0)
    try:
        recommender = Recommender(store, model, cache=cache)
        customer_id = trained_shop.customers[6]
        first = recommender.recommend(customer_id, limit=5)
        # A first list: both list entries read together, the shopper and the cart read, and the
        # four stored (shopper, cart, ranking, served list).
        assert cache.stats.round_trips == 7
        trips = cache.stats.round_trips
        assert recommender.recommend(customer_id, limit=5) == first  # a retry: the same list and id
        assert cache.stats.round_trips == trips + 1

        clock.now += SERVED_LIST_TTL_S + 1
        trips = cache.stats.round_trips
        again = recommender.recommend(customer_id, limit=5)
        # The served and ranked entries read together, then the new served list stored.
        assert cache.stats.round_trips == trips + 2
        assert again.items == first.items and again.recommendation_id != first.recommendation_id
        assert recommender.recommend(customer_id, limit=5) == again
        for served in (first, again):
            stored = store.get_recommendation(served.recommendation_id)
            assert (stored.customer_id, stored.items) == (customer_id, first.items)
        assert cache.stats.misses["list"] == 1
    finally:
        cache.close()


def test_a_catalog_change_starts_a_new_list(store, model, trained_shop):
    clock = Clock()
    cache = LocalCache(ttl_s=300, max_entries=1000, clock=clock, rng=lambda: 0.0)
    recommender = Recommender(store, model, cache=cache)
    customer_id = trained_shop.customers[5]
    first = recommender.recommend(customer_id, limit=5)
    gone = first.items[0].product_id
    store.upsert_products([replace(store.get_products([gone])[gone], in_stock=False)])
    assert recommender.catalog.refresh()

    clock.now += SERVED_LIST_TTL_S + 1
    after = recommender.recommend(customer_id, limit=5)
    assert gone not in [item.product_id for item in after.items]


def test_a_backtest_is_never_answered_from_the_served_list_cache(store, model, cache, trained_shop):
    recommender = Recommender(store, model, cache=cache)
    customer_id = trained_shop.customers[3]
    as_of = now() - timedelta(days=5)
    first = recommender.recommend(customer_id, limit=5, as_of=as_of)
    assert recommender.recommend(customer_id, limit=5, as_of=as_of).recommendation_id != first.recommendation_id
