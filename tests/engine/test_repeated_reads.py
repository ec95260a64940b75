"""`repeated_reads` (engine/cached_reads.py): an offline evaluation's repeated shopper reads
reach the store once, answer as the store does, and never keep an error; order lines known from
the build's lines (`holdout.Trips.order_lines_of`) summarise as the store's and are not read."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from generated_shop import generated_shop_db

from omnix_recs.domain.models import Interaction, InteractionKind, Purchase
from omnix_recs.engine.cached_reads import read_ahead, repeated_reads
from omnix_recs.engine.features import summarize_lines
from omnix_recs.engine.holdout import AskedAt, Trips, hold_out, known_lines
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.engine.recommender import Recommender
from omnix_recs.errors import NotFoundError
from omnix_recs.store import open_store

SMALL_SHOP = {"customers": 60, "products": 200, "days": 120, "seed": 5}


class CountingStore:
    """Forwards to a real store, counting the calls of each method."""

    def __init__(self, store):
        self.store, self.calls = store, {}

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


def test_a_shopper_prepared_again_is_read_once_and_the_same(shop, fixed_models, hand_made_model):
    shop.weekly_milk_shopper()
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    direct = Recommender(shop.store, fixed_models(hand_made_model)).shopper_at("alice", shop.now)
    recommender = Recommender(reads, fixed_models(hand_made_model))
    first, again = (recommender.shopper_at("alice", shop.now) for _ in range(2))
    for prepared in (first, again):
        assert prepared.customer == direct.customer
        assert prepared.history.items.tolist() == direct.history.items.tolist()
        assert prepared.history.habit.tolist() == direct.history.habit.tolist()
    assert counting.calls["get_customer"] == 1
    assert counting.calls["order_lines_of"] == 1
    # Another moment is answered from the same read, as the store answers it.
    earlier = recommender.shopper_at("alice", shop.now - timedelta(days=10))
    assert counting.calls["order_lines_of"] == 1
    assert len(earlier.history.items) <= len(first.history.items)


def test_lines_before_a_moment_are_the_stores_from_one_read(shop):
    shop.weekly_milk_shopper()
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    bought = sorted(set(shop.store.order_lines_of("alice").purchased_at_s.tolist()))
    moments = [datetime.fromtimestamp(t, UTC) for t in bought]  # exactly at a trip: not before it
    moments += [m + timedelta(microseconds=1) for m in moments] + [shop.now, shop.now - timedelta(days=400)]
    for moment in [*moments, None]:
        ours, theirs = reads.order_lines_of("alice", moment), shop.store.order_lines_of("alice", moment)
        assert list(ours.order_ids) == list(theirs.order_ids) and list(ours.product_ids) == list(theirs.product_ids)
        for column in ("quantities", "unit_prices", "purchased_at_s"):
            assert getattr(ours, column).tolist() == getattr(theirs, column).tolist(), column
    assert 0 < len(reads.order_lines_of("alice", moments[1])) < len(reads.order_lines_of("alice"))
    assert counting.calls["order_lines_of"] == 1


def test_an_unknown_customer_is_an_error_every_time(shop):
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    for _ in range(2):
        with pytest.raises(NotFoundError):
            reads.get_customer("nobody")
    assert counting.calls["get_customer"] == 2
    shop.customer("nobody")
    assert reads.get_customer("nobody").customer_id == "nobody"  # registered since: found


@pytest.mark.parametrize("events_recorded", [True, False])
def test_read_ahead_reads_each_shopper_once_and_leaves_errors_to_their_read(
    shop, fixed_models, hand_made_model, events_recorded
):
    shop.weekly_milk_shopper()
    shop.customer("bob")
    if events_recorded:  # bob has milk in his cart; alice has no events
        shop.store.add_interaction(
            Interaction("bob", "e1", InteractionKind.CART_ADD, shop.now - timedelta(hours=1), "milk")
        )
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    asked_at = [shop.now, shop.now - timedelta(days=3)]
    read_ahead(reads, ["alice", "bob", "nobody", "alice"], [asked_at, asked_at, asked_at, asked_at[:1]], threads=3)
    # One batch of profiles; the lines and one read of the events of each shopper found (not
    # nobody), or none when the store holds no events at all.
    reads_ahead = {"get_customers": 1, "order_lines_of": 2, "has_interactions": 1}
    if events_recorded:
        reads_ahead["list_interactions"] = 2
    assert counting.calls == reads_ahead
    recommender = Recommender(reads, fixed_models(hand_made_model))
    direct = Recommender(shop.store, fixed_models(hand_made_model))
    for moment in asked_at:
        for customer_id in ("alice", "bob"):
            prepared = recommender.shopper_at(customer_id, moment)
            assert prepared.basket.tolist() == direct.shopper_at(customer_id, moment).basket.tolist()
    assert counting.calls == reads_ahead  # from memory
    assert len(recommender.shopper_at("bob", shop.now).basket) == (1 if events_recorded else 0)
    with pytest.raises(NotFoundError):
        reads.get_customer("nobody")  # the error comes where the shopper is read, not ahead
    read_ahead(shop.store, ["alice"])  # a store that is not repeated_reads' is left alone


@pytest.mark.parametrize(("kept_limit", "answered"), [(50, True), (12, True), (11, False)])
def test_events_kept_since_a_moment_answer_later_reads_as_the_store_does(shop, kept_limit, answered):
    shop.customer("alice")
    for minutes in range(0, 11 * 30, 30):  # 11 events, half an hour apart, ending now
        at, kind = (
            shop.now - timedelta(minutes=minutes),
            InteractionKind.CART_ADD if minutes % 60 else InteractionKind.VIEW,
        )
        shop.store.add_interaction(Interaction("alice", f"e{minutes}", kind, at, "milk"))
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    reads.keep_events_since("alice", shop.now - timedelta(hours=6), kept_limit)
    for since_hours, limit in [(6, 200), (4, 200), (2, 3), (1, 1), (0, 200)]:
        since = shop.now - timedelta(hours=since_hours)
        assert reads.list_interactions("alice", since=since, limit=limit) == shop.store.list_interactions(
            "alice", since=since, limit=limit
        )
    # Answered from the one read when it held every event since its moment (fewer than its limit).
    assert counting.calls["list_interactions"] == (1 if answered else 6)
    reads.list_interactions("alice", since=shop.now - timedelta(hours=7), limit=200)  # before it: read
    assert counting.calls["list_interactions"] == (2 if answered else 7)


# --- order lines known from the build's lines ------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated shop (read-only here) and its lines as a build reads them."""
    store = open_store(f"sqlite:///{generated_shop_db(tmp_path_factory.mktemp('known-lines'), **SMALL_SHOP)}")
    catalog = [p.product_id for p in store.iter_products()]
    yield store, read_purchase_lines(store.scan_purchases(), catalog, expected_rows=store.count_purchases())
    store.close()


def test_known_lines_summarise_as_the_stores_at_every_moment_of_asking(generated):
    store, lines = generated
    trips = Trips.of(lines)
    split = hold_out(trips, trips.eligible())
    known = known_lines(trips, split)
    index_of = {p: i for i, p in enumerate(lines.item_ids)}
    compared = 0
    for customer_id, moments in zip(split.customer_ids, zip(*(split.asked_at(w) for w in AskedAt))):
        whole = known(customer_id)
        assert whole is not None  # generated trips never share a second
        for moment in moments:
            ours = summarize_lines(whole.bought_before(moment), index_of)
            theirs = summarize_lines(store.order_lines_of(customer_id, before=moment), index_of)
            for field in ("items", "last_bought_s", "mean_gap_days", "orders", "habit", "trip_times_s"):
                np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field), err_msg=field)
            assert ours.newest_line_s == theirs.newest_line_s
            assert math.isnan(ours.spend) and theirs.spend > 0  # no prices in the build's lines
            compared += 1
    assert compared == 2 * len(split) > 50
    assert known("not-judged") is None


def test_a_shopper_with_two_trips_in_one_second_is_read_from_the_store(shop):
    shop.customer("carol")
    at = shop.now - timedelta(days=3)
    # Order ids rank trips placed in the same second; the build's basket codes need not agree.
    shop.store.add_purchases(
        [Purchase("carol", "z-order", "milk", 1, 1.0, at), Purchase("carol", "a-order", "pasta", 1, 1.0, at)]
    )
    shop.trips("carol", [(10, ["milk"]), (1, ["pasta"])])
    lines = read_purchase_lines(shop.store.scan_purchases(), list(shop.products))
    trips = Trips.of(lines)
    split = hold_out(trips, [lines.customer_ids.index("carol")])
    assert known_lines(trips, split)("carol") is None
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting, known_lines=known_lines(trips, split))
    assert list(reads.order_lines_of("carol").order_ids) == list(shop.store.order_lines_of("carol").order_ids)
    assert counting.calls["order_lines_of"] == 1


def test_known_lines_are_not_read_ahead(generated):
    store, lines = generated
    trips = Trips.of(lines)
    split = hold_out(trips, trips.eligible()[:5])
    counting = CountingStore(store)
    reads = repeated_reads(counting, known_lines=known_lines(trips, split))
    read_ahead(reads, [*split.customer_ids, lines.customer_ids[-1]])
    assert counting.calls == {"get_customers": 1, "order_lines_of": 1}  # the lines of the shopper not judged
