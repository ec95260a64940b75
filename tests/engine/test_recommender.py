"""Recommender (engine/recommender.py) over the real SQLite store and a hand-made model: hard rules, freshness, reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from omnix_recs.domain.models import Feedback, FeedbackEvent, Preferences, Product, Purchase
from omnix_recs.engine.blends import Blend, Strategy
from omnix_recs.engine.recommender import Lifecycle, Recommender, RequestFilters
from omnix_recs.engine.served_lists import new_recommendation_id
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError


@pytest.fixture
def recommender(store, fixed_models, hand_made_model):
    return Recommender(store, fixed_models(hand_made_model))


def ids(answer):
    return [item.product_id for item in answer.items]


def test_due_staple_comes_first_with_a_cycle_reason(shop, recommender):
    shop.weekly_milk_shopper()
    answer = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now)
    assert ids(answer)[0] == "milk"
    assert "you usually buy this every 7 days; last bought 7 days ago" in answer.items[0].reasons
    assert answer.model_version == "v-test-1"
    assert shop.store.get_recommendation(answer.recommendation_id).items == answer.items


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_vegan_never_gets_animal_products(shop, recommender, strategy):
    shop.weekly_milk_shopper(dietary_restrictions=("vegan",))
    for item in recommender.recommend("alice", strategy=strategy, limit=20, as_of=shop.now).items:
        assert "vegan" in shop.products[item.product_id].dietary_tags


@pytest.mark.parametrize(
    ("filters", "profile", "rule"),
    [
        (RequestFilters(allergens=("peanuts",)), {}, lambda p: "peanuts" not in p.allergens),
        (RequestFilters(), {"allergens": ("gluten",)}, lambda p: "gluten" not in p.allergens),
        (RequestFilters(max_price=5.0), {}, lambda p: p.price <= 5.0),
        (RequestFilters(), {"preferences": Preferences(budget_per_trip=10.0)}, lambda p: p.price <= 10.0),
        (RequestFilters(include_departments=("Pantry",)), {}, lambda p: p.department == "pantry"),
        (RequestFilters(exclude_departments=("dairy eggs",)), {}, lambda p: p.department != "dairy eggs"),
        (
            RequestFilters(),
            {"preferences": Preferences(disliked_products=("bread",))},
            lambda p: p.product_id != "bread",
        ),
    ],
    ids=["request-allergen", "profile-allergen", "price-ceiling", "budget", "include-dept", "exclude-dept", "disliked"],
)
def test_hard_filters_hold(shop, recommender, filters, profile, rule):
    shop.weekly_milk_shopper(**profile)
    for strategy in Strategy:
        answer = recommender.recommend("alice", strategy=strategy, limit=20, as_of=shop.now, filters=filters)
        assert all(rule(shop.products[i]) for i in ids(answer))


def test_basket_items_never_come_back_and_steer_the_list(shop, recommender):
    shop.weekly_milk_shopper()
    answer = recommender.recommend("alice", limit=20, as_of=shop.now, basket=["pasta", "milk"])
    assert not {"pasta", "milk"} & set(ids(answer))
    assert ids(answer)[0] == "sauce"
    assert "often bought with Spaghetti" in answer.items[0].reasons


def test_cart_events_count_as_the_basket(shop, recommender):
    from omnix_recs.domain.models import Interaction, InteractionKind

    shop.weekly_milk_shopper()
    shop.store.add_interaction(
        Interaction("alice", "i1", InteractionKind.CART_ADD, shop.now - timedelta(minutes=5), product_id="pasta")
    )
    assert "pasta" not in ids(recommender.recommend("alice", limit=20, as_of=shop.now))


def test_discover_never_returns_a_purchased_product(shop, recommender):
    shop.weekly_milk_shopper()
    answer = recommender.recommend("alice", strategy=Strategy.DISCOVER, limit=20, as_of=shop.now)
    assert answer.items and not {"milk", "pasta"} & set(ids(answer))
    assert not {"milk", "pasta"} & set(
        ids(recommender.recommend("alice", limit=20, as_of=shop.now, exclude_purchased=True))
    )


def test_a_purchase_counts_at_once(shop, store, fixed_models, hand_made_model):
    """Due now (the replenishment signal) resets the moment a purchase is recorded."""
    due_now = Blend({"replenishment": 1.0, "habit": 0.1})
    recommender = Recommender(store, fixed_models(hand_made_model), blends={s: due_now for s in Strategy})
    shop.weekly_milk_shopper()
    before = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now)
    shop.store.add_purchases([Purchase("alice", "today", "milk", 1, 1.2, shop.now - timedelta(minutes=1))])
    after = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now)
    milk_before = next(i for i in before.items if i.product_id == "milk")
    milk_after = next(i for i in after.items if i.product_id == "milk")
    # The replenishment part of the score (weight 1, fully due before) is gone.
    assert milk_after.score < milk_before.score - 0.9
    assert not any(r.startswith("you usually buy this") for r in milk_after.reasons)


def test_a_weekly_staple_just_bought_is_due_by_the_next_trip(shop, recommender):
    """The default REPLENISH list is for the next trip: milk bought weekly, bought a minute ago,
    is still what the shopper will need then, and the reason says the purchase was seen."""
    shop.weekly_milk_shopper()
    shop.store.add_purchases([Purchase("alice", "today", "milk", 1, 1.2, shop.now - timedelta(minutes=1))])
    answer = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now)
    assert ids(answer)[0] == "milk"
    assert "you usually buy this every 7 days; last bought 0 days ago" in answer.items[0].reasons


def test_as_of_hides_later_purchases(shop, recommender):
    shop.weekly_milk_shopper()
    answer = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now - timedelta(days=40))
    milk = next(i for i in answer.items if i.product_id == "milk")
    assert "you usually buy this every 7 days; last bought 2 days ago" in milk.reasons


@pytest.mark.parametrize("path", ["server-refreshes-its-snapshot", "live-catalog-recheck"])
def test_out_of_stock_after_the_snapshot_is_still_excluded(shop, store, fixed_models, hand_made_model, path):
    recheck = path == "live-catalog-recheck"
    recommender = Recommender(store, fixed_models(hand_made_model), recheck_live_catalog=recheck)
    shop.weekly_milk_shopper()
    recommender.recommend("alice", limit=20, as_of=shop.now)  # the catalog snapshot is taken here
    milk = shop.products["milk"]
    shop.store.upsert_products([Product(**{**{f: getattr(milk, f) for f in milk.__slots__}, "in_stock": False})])
    if not recheck:
        assert recommender.catalog.refresh()  # what a server's refresher (and its UpsertProducts) does
    assert "milk" not in ids(recommender.recommend("alice", limit=20, as_of=shop.now))


@pytest.mark.parametrize(
    ("trips", "stage"),
    [
        ([], Lifecycle.NEW),
        ([(30, ["milk"]), (10, ["milk"])], Lifecycle.NEW),
        ([(80, ["milk"]), (50, ["milk"]), (20, ["milk"])], Lifecycle.REGULAR),
        ([(d, ["milk"]) for d in range(1, 85, 6)], Lifecycle.VIP),
    ],
)
def test_personalized_follows_the_lifecycle(shop, recommender, trips, stage):
    shop.customer("bob", preferences=Preferences(favorite_departments=("bakery",)))
    shop.trips("bob", trips)
    answer = recommender.personalized("bob", limit=4, as_of=shop.now)
    assert answer.lifecycle == stage
    assert answer.items
    if stage is Lifecycle.NEW:
        assert ids(answer)[0] == "bread"  # the stated favourite department lifts it


def test_similar_and_complements(shop, recommender):
    assert ids(recommender.similar_products("milk", limit=3))[0] == "oat"
    together = recommender.frequently_bought_together(["pasta"], limit=3)
    assert ids(together)[0] == "sauce" and "pasta" not in ids(together)


def test_trending_and_seasonal(shop, recommender):
    answer, window = recommender.trending(limit=5)
    assert ids(answer)[:2] == ["oat", "peanut"] and window == 14
    assert recommender.trending(limit=5, window_days=14)[1] == 14
    with pytest.raises(InvalidArgumentError, match="window_days"):
        recommender.trending(limit=5, window_days=7)
    assert ids(recommender.trending(limit=5, department="pantry")[0]) == ["peanut", "sauce"]
    december = recommender.seasonal(limit=3, as_of=shop.now.replace(month=12, day=10))
    assert ids(december) == ["caviar", "sauce"]
    assert december.items[0].reasons == ("popular in week 50",)


def test_feedback_is_tied_to_a_served_list(shop, recommender):
    shop.weekly_milk_shopper()
    answer = recommender.recommend("alice", limit=3, as_of=shop.now)
    first = answer.items[0].product_id
    recommender.record_feedback(Feedback(answer.recommendation_id, "", first, FeedbackEvent.CLICKED, shop.now))
    assert [f.event for f in shop.store.list_feedback(answer.recommendation_id)] == [FeedbackEvent.CLICKED]
    with pytest.raises(InvalidArgumentError, match="product_id"):
        recommender.record_feedback(Feedback(answer.recommendation_id, "", "caviar-x", FeedbackEvent.CLICKED, shop.now))
    with pytest.raises(NotFoundError):
        recommender.record_feedback(Feedback("nope", "", first, FeedbackEvent.CLICKED, shop.now))
    assert len(shop.store.list_feedback(answer.recommendation_id)) == 1


def test_errors(store, fixed_models, hand_made_model):
    with pytest.raises(FailedPreconditionError, match="omnix train"):
        Recommender(store, fixed_models(None)).recommend("alice")
    with pytest.raises(NotFoundError):
        Recommender(store, fixed_models(hand_made_model)).recommend("nobody")


@pytest.mark.parametrize("question", ["similar", "basket"])
def test_products_named_by_a_request_are_checked_against_the_catalog(shop, recommender, question):
    ask = {
        "similar": lambda product_id: recommender.similar_products(product_id, limit=3),
        "basket": lambda product_id: recommender.frequently_bought_together(["milk", product_id], limit=3),
    }[question]
    ask("pasta")  # the catalog snapshot is taken here
    with pytest.raises(NotFoundError, match="no-such-product"):
        ask("no-such-product")
    # Added after the model (and after the catalog snapshot): known at once, nothing to say about it yet.
    milk = shop.products["milk"]
    shop.store.upsert_products([replace(milk, product_id="oat-milk", name="Oat milk")])
    answer = ask("oat-milk")
    assert "oat-milk" not in ids(answer)


def test_recommendation_ids_are_unique_and_sort_by_when_they_were_made():
    ids_made = [new_recommendation_id() for _ in range(1000)]
    assert len(set(ids_made)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids_made)
    assert [i[:16] for i in ids_made] == sorted(i[:16] for i in ids_made)
