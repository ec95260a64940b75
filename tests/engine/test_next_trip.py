"""Lists for the next trip: the shopper's rhythm and the shoppers like them reach the kernel.

A list asked for right after a trip is for the next one, so what will be due by then counts
(`days_to_next_trip`, from the shopper's rhythm); and the model's "shoppers like you" row for the
shopper comes with their history, never without it (no consent, no row).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from omnix_recs.domain.models import Consent
from omnix_recs.engine.blends import Blend
from omnix_recs.engine.features import SECONDS_PER_DAY, days_to_next_trip
from omnix_recs.engine.recommender import Recommender

DAY = SECONDS_PER_DAY


@pytest.mark.parametrize(
    ("trip_days", "as_of_day", "expected"),
    [
        ([0, 7, 14, 21], 21.5, 6.5),  # right after a weekly trip: the next is 6.5 days away
        ([0, 7, 14, 21], 27.0, 1.0),
        ([0, 7, 14, 21], 30.0, 0.0),  # overdue: the next trip is now
        ([0, 7, 14, 15, 22], 22.5, 6.5),  # median rhythm: one extra trip does not halve it
        ([0], 3.0, 0.0),  # one trip: no rhythm yet
        ([0, 7, 30], 10.0, 4.0),  # only the trips before as_of count
    ],
)
def test_days_to_next_trip(trip_days: list[float], as_of_day: float, expected: float) -> None:
    times = np.array(trip_days, dtype=np.float64) * DAY
    assert days_to_next_trip(times, as_of_day * DAY) == pytest.approx(expected)


def test_the_rhythm_reaches_the_history_features(shop, store, fixed_models, hand_made_model) -> None:
    shop.weekly_milk_shopper()  # weekly, last trip 7 days before NOW
    recommender = Recommender(store, fixed_models(hand_made_model))
    right_after = recommender.shopper_at("alice", shop.now - timedelta(days=6, hours=12))
    assert right_after.history.days_to_next_trip == pytest.approx(6.5)
    assert recommender.shopper_at("alice", shop.now).history.days_to_next_trip == 0.0


def test_right_after_a_trip_the_list_is_for_the_next_one(shop, store, fixed_models, hand_made_model) -> None:
    shop.weekly_milk_shopper()  # milk weekly, pasta fortnightly, both on the last trip
    recommender = Recommender(store, fixed_models(hand_made_model))
    an_hour_later = recommender.shopper_at("alice", shop.now - timedelta(days=6, hours=23))
    # Both were bought an hour ago; by the next weekly trip the milk is due, the pasta half-way.
    assert recommender.rank_ids(an_hour_later, Blend({"due_by_next_trip": 1.0}), 2) == ["milk", "pasta"]


def test_shoppers_like_you_come_with_the_history(shop, store, fixed_models, hand_made_model) -> None:
    shop.weekly_milk_shopper()
    shop.customer("bob", consent=Consent(personalization=False))
    shop.trips("bob", [(7, ["milk"]), (14, ["milk"]), (21, ["milk"])])
    items = np.array([hand_made_model.index_of["caviar"]], dtype=np.int32)
    model = replace(
        hand_made_model,
        like_you_customers=np.array(["alice", "bob"]),
        like_you_indptr=np.array([0, 1, 2], dtype=np.int64),
        like_you_items=np.concatenate([items, items]),
        like_you_scores=np.array([0.7, 0.7], dtype=np.float32),
    )
    assert model.shoppers_like("alice")[0].tolist() == items.tolist() and not len(model.shoppers_like("carol")[0])
    recommender = Recommender(store, fixed_models(model))
    only_like_you = Blend({"shoppers_like_you": 1.0})
    alice = recommender.shopper_at("alice", shop.now)
    assert recommender.rank_ids(alice, only_like_you, 5) == ["caviar"]
    assert alice.history.like_you_scores.tolist() == pytest.approx([0.7])
    bob = recommender.shopper_at("bob", shop.now)  # no consent to personalisation: no row either
    assert recommender.rank_ids(bob, only_like_you, 5) == []
