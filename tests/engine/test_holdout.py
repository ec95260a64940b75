"""Held-out baskets (engine/holdout.py): trips from order lines, splits, moments of asking, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.holdout import (
    AskedAt,
    ItemPopularity,
    Trips,
    end_of_day,
    hold_out,
    lines_without,
    list_metrics,
    popularity_bias,
)
from omnix_recs.engine.matrix import PurchaseLines, read_purchase_lines
from omnix_recs.store.base import Store


def lines_of(store: Store) -> PurchaseLines:
    catalog = [p.product_id for p in store.iter_products()]
    return read_purchase_lines(store.scan_purchases(), catalog, expected_rows=store.count_purchases())


@pytest.fixture
def trips(shop: Any) -> Trips:
    """Ann shops three times (written out of order), Bob twice."""
    shop.customer("ann")
    shop.trips("ann", [(2, ["pasta", "milk"]), (30, ["milk", "bread"]), (16, ["sauce", "milk"])])
    shop.customer("bob")
    shop.trips("bob", [(9, ["steak"]), (5, ["caviar", "steak"])])
    return Trips.of(lines_of(shop.store))


def code(trips: Trips, customer_id: str) -> int:
    return trips.lines.customer_ids.index(customer_id)


def products(trips: Trips, basket: int) -> set[str]:
    return {trips.lines.item_ids[i] for i in trips.items_of(basket).tolist()}


def test_trips_are_each_shoppers_baskets_oldest_first(trips: Trips, shop: Any) -> None:
    ann = trips.of_shopper(code(trips, "ann"))
    assert [products(trips, b) for b in ann.tolist()] == [{"milk", "bread"}, {"sauce", "milk"}, {"pasta", "milk"}]
    assert [trips.at[b] for b in ann.tolist()] == [int((shop.now - timedelta(days=d)).timestamp()) for d in (30, 16, 2)]
    assert trips.counts()[code(trips, "bob")] == 2
    assert trips.eligible() == [code(trips, "ann")]
    assert sorted(trips.eligible(2)) == sorted([code(trips, "ann"), code(trips, "bob")])


def test_hold_out_the_latest_basket_and_what_was_new_in_it(trips: Trips, shop: Any) -> None:
    split = hold_out(trips, [code(trips, "ann")])
    assert split.customer_ids == ["ann"] and len(split) == 1
    assert split.bought == [frozenset({"pasta", "milk"})] and split.new == [frozenset({"pasta"})]
    assert split.target_at == [shop.now - timedelta(days=2)]
    assert split.last_trip_at == [shop.now - timedelta(days=16)]
    assert split.truth(Strategy.REPLENISH) == split.truth(Strategy.BALANCED) == split.bought
    assert split.truth(Strategy.DISCOVER) == split.new


def test_hold_out_further_back_sees_only_the_trips_before(trips: Trips) -> None:
    split = hold_out(trips, [code(trips, "ann")], back=2)
    assert split.bought == [frozenset({"sauce", "milk"})] and split.new == [frozenset({"sauce"})]


def test_hold_out_needs_a_trip_before_the_target(trips: Trips) -> None:
    with pytest.raises(ValueError, match="bob has 2 trips, needs 3"):
        hold_out(trips, [code(trips, "bob")], back=2)


def test_the_two_moments_of_asking(trips: Trips, shop: Any) -> None:
    split = hold_out(trips, [code(trips, "ann")])
    last_trip_day = (shop.now - timedelta(days=16)).date()
    end = datetime(last_trip_day.year, last_trip_day.month, last_trip_day.day, 23, 59, 59, tzinfo=UTC)
    assert split.asked_at(AskedAt.END_OF_TRIP_DAY) == [end]
    assert split.asked_at(AskedAt.NEXT_TRIP) == [shop.now - timedelta(days=2, seconds=1)]


def test_end_of_day_is_capped_before_a_second_trip_the_same_day(shop: Any) -> None:
    shop.customer("cy")
    # NOW is noon: trips at 07:12 and 09:36 the same day
    shop.trips("cy", [(20, ["milk"]), (0.2, ["bread"]), (0.1, ["pasta"])])
    trips = Trips.of(lines_of(shop.store))
    split = hold_out(trips, [code(trips, "cy")])
    assert split.asked_at(AskedAt.END_OF_TRIP_DAY) == [shop.now - timedelta(days=0.1, seconds=1)]
    assert end_of_day(shop.now) == datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)


def test_lines_without_drops_exactly_the_held_out_baskets(trips: Trips) -> None:
    lines = trips.lines
    split = hold_out(trips, [code(trips, "ann")])
    kept = lines_without(lines, split.targets)
    assert len(kept) == len(lines) - 2 and kept.n_baskets == lines.n_baskets - 1
    assert sorted(set(kept.basket.tolist())) == list(range(kept.n_baskets))
    assert kept.item_ids == lines.item_ids and kept.customer_ids == lines.customer_ids
    ann_latest = int(split.target_at[0].timestamp())
    assert ann_latest not in kept.purchased_at[kept.customer == code(trips, "ann")].tolist()


def test_histories_leave_out_the_held_out_baskets(trips: Trips) -> None:
    split = hold_out(trips, [code(trips, "ann")])
    histories = trips.histories(split.targets)
    ann = [{trips.lines.item_ids[i] for i in basket.tolist()} for basket in histories[code(trips, "ann")]]
    assert ann == [{"milk", "bread"}, {"sauce", "milk"}]
    assert len(histories[code(trips, "bob")]) == 2 and len(histories) == trips.lines.n_customers


def test_sample_keeps_the_order_and_is_seeded(shop: Any) -> None:
    for n in range(6):
        shop.customer(f"c{n}")
        shop.trips(f"c{n}", [(30, ["milk"]), (20, ["bread"]), (10, ["pasta"])])
    trips = Trips.of(lines_of(shop.store))
    split = hold_out(trips, trips.eligible())
    sample = split.sample(3, seed=1)
    assert len(sample) == 3 and sample.customer_ids == [c for c in split.customer_ids if c in sample.customer_ids]
    assert split.sample(3, seed=1).customer_ids == sample.customer_ids
    assert split.sample(10, seed=1) is split


@pytest.mark.parametrize(
    ("lists", "truth", "expected"),
    [
        ([["a", "b"]], [{"a", "c"}], {"recall@2": 0.5, "hit@2": 1.0, "coverage@2": 0.2, "customers": 1.0}),
        ([["x", "y"], ["a", "b"]], [{"a"}, {"a"}], {"recall@2": 0.5, "hit@2": 0.5, "personalization@2": 1.0}),
        ([["a", "b"], ["a", "b"]], [{"a"}, set()], {"customers": 1.0, "recall@2": 1.0, "ndcg@2": 1.0}),
        ([["a", "b"], ["a", "b"]], [{"b"}, {"a"}], {"personalization@2": 0.0, "ndcg@2": (1 / np.log2(3) + 1) / 2}),
        ([["a"]], [set()], {"customers": 0.0, "recall@2": 0.0}),
    ],
)
def test_list_metrics(lists: list[list[str]], truth: list[set[str]], expected: dict[str, float]) -> None:
    metrics = list_metrics(lists, [frozenset(t) for t in truth], (2,), catalog_size=10)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value), name


def test_popularity_counts_shoppers_not_lines_and_leaves_out_the_held_out_baskets(trips: Trips) -> None:
    everything = ItemPopularity.of(trips, np.zeros(0, dtype=np.int64))
    split = hold_out(trips, trips.eligible())
    learnt = ItemPopularity.of(trips, split.targets)
    for product, share in everything.share.items():
        assert 0 < share <= 1
        assert learnt.share.get(product, 0.0) <= share  # fewer baskets, never more shoppers
    assert everything.head and everything.head <= set(trips.lines.item_ids)


@pytest.mark.parametrize(
    ("lists", "expected_gini"),
    [
        ([["a"], ["b"], ["c"], ["d"]], 0.0),  # every product of the catalog shown once
        ([["a"], ["a"], ["a"], ["a"]], 0.75),  # one product of four shown, every time
    ],
)
def test_popularity_bias_of_lists(lists: list[list[str]], expected_gini: float) -> None:
    popularity = ItemPopularity(share={"a": 0.8, "b": 0.1, "c": 0.1, "d": 0.1}, head=frozenset({"a"}))
    bias = popularity_bias(lists, 1, catalog_size=4, popularity=popularity)
    assert bias["gini@1"] == pytest.approx(expected_gini)
    shown = [p for ranked in lists for p in ranked]
    assert bias["popularity@1"] == pytest.approx(np.mean([popularity.share[p] for p in shown]))
    assert bias["long_tail@1"] == pytest.approx(np.mean([p != "a" for p in shown]))
    metrics = list_metrics(lists, [frozenset({"a"})] * len(lists), (1,), 4, popularity=popularity)
    assert {"popularity@1", "long_tail@1", "gini@1"} <= set(metrics)
