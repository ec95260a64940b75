"""`repeated_reads` (engine/cached_reads.py): an offline evaluation's repeated shopper reads
reach the store once, answer as the store does, and never keep an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs.engine.cached_reads import read_ahead, repeated_reads
from omnix_recs.engine.recommender import Recommender
from omnix_recs.errors import NotFoundError


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


def test_read_ahead_reads_each_shopper_once_and_leaves_errors_to_their_read(shop, fixed_models, hand_made_model):
    shop.weekly_milk_shopper()
    shop.customer("bob")
    counting = CountingStore(shop.store)
    reads = repeated_reads(counting)
    read_ahead(reads, ["alice", "bob", "nobody", "alice"], threads=3)
    assert counting.calls["get_customer"] == 3 and counting.calls["order_lines_of"] == 2  # nobody's failed first
    recommender = Recommender(reads, fixed_models(hand_made_model))
    recommender.shopper_at("alice", shop.now)
    recommender.shopper_at("bob", shop.now)
    assert counting.calls["get_customer"] == 3 and counting.calls["order_lines_of"] == 2  # answered from memory
    with pytest.raises(NotFoundError):
        reads.get_customer("nobody")  # the error comes where the shopper is read, not ahead
    read_ahead(shop.store, ["alice"])  # a store that is not repeated_reads' is left alone
