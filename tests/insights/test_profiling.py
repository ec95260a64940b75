"""Household, budget, lifestyle and lifecycle from hand-made shoppers against a small population."""

from __future__ import annotations

import numpy as np
import pytest

from histories import CATALOG, NO_POPULATION, at, history_of, purchases
from omnix_recs.domain.consumption import PopulationCycles, PurchaseTable, customer_cycles, to_day
from omnix_recs.domain.models import Product
from omnix_recs.domain.profiling import (
    BudgetTier,
    CatalogSignals,
    Lifestyle,
    PriceSensitivity,
    Segment,
    population_profile,
    product_signals,
    profile_customer,
)
from omnix_recs.store.base import PurchaseColumns

AS_OF_DAY = 84
MIXED = ("milk", "bananas", "coffee", "chicken", "chips", "soap")


def weekly_baskets(customer_id: str, products: tuple[str, ...], *, weeks: int = 12, quantity: int = 1):
    return purchases(customer_id, [(7 * w, products) for w in range(weeks)], quantity=quantity)


def population_of(rows, catalog):
    columns = PurchaseColumns(
        customer_ids=[p.customer_id for p in rows],
        order_ids=[p.order_id for p in rows],
        product_ids=[p.product_id for p in rows],
        quantities=[p.quantity for p in rows],
        unit_prices=[p.unit_price for p in rows],
        purchased_at=[int(p.purchased_at.timestamp()) for p in rows],
    )
    return population_profile(PurchaseTable.from_columns([columns]), catalog, to_day(at(AS_OF_DAY)))


@pytest.fixture(scope="module")
def catalog():
    return CatalogSignals.from_products(CATALOG.values())


@pytest.fixture(scope="module")
def population(catalog):
    # 30 ordinary households: two units of each mixed product a week.
    rows = [p for i in range(30) for p in weekly_baskets(f"p{i}", MIXED, quantity=2)]
    return population_of(rows, catalog)


def profile(rows, catalog, population):
    history = history_of(rows, as_of_day=AS_OF_DAY)
    return profile_customer(history, customer_cycles(history, NO_POPULATION), catalog, population)


def test_product_signals_follow_the_catalog():
    assert product_signals(CATALOG["chicken"]) == {"food", "meat", "animal"}
    assert product_signals(CATALOG["milk"]) == {"food", "animal"}
    assert product_signals(CATALOG["oat"]) == {"food", "organic"}
    assert product_signals(CATALOG["dogfood"]) == {"pet"}
    assert product_signals(CATALOG["lager"]) == {"food", "party"}
    assert "meat" not in product_signals(
        Product("tofu", "Firm Tofu", "meat seafood", "meat alternatives", dietary_tags=("vegan", "vegetarian"))
    )


def test_value_flag_compares_like_with_like(catalog):
    row = catalog.index_of
    assert catalog.flags[row["milk-value"], 10] and not catalog.flags[row["milk-premium"], 10]
    assert catalog.price_ratio[row["milk"]] == pytest.approx(1.0)  # the median of 0.9, 1.3, 2.2


@pytest.mark.parametrize(("quantity", "size"), [(1, 1), (2, 2), (4, 4), (6, 6)])
def test_household_size_scales_with_volume(quantity, size, catalog, population):
    result = profile(weekly_baskets("c1", MIXED, quantity=quantity), catalog, population)
    assert result.household.size == size
    assert result.household.confidence == pytest.approx(0.4)  # one signal (no population cycles)


def test_using_things_up_fast_raises_the_estimate(catalog, population):
    # Ordinary volume, but products everyone else buys fortnightly go every week: pace 2.
    history = history_of(weekly_baskets("c1", MIXED, quantity=2), as_of_day=AS_OF_DAY)
    cycles = customer_cycles(history, PopulationCycles(product_cycle_days={pid: 14.0 for pid in MIXED}))
    result = profile_customer(history, cycles, catalog, population)
    assert result.household.size == 3  # 2 × √(1 × 2) = 2.8
    assert result.household.evidence[1] == "uses up 6 regular products 2.0x as fast as a typical buyer"
    assert result.household.confidence > 0.4  # two signals agree


def test_baby_products_mean_at_least_three_people(catalog, population):
    result = profile(weekly_baskets("c1", (*MIXED, "diapers")), catalog, population)
    assert result.household.size == 3
    assert Lifestyle.YOUNG_CHILDREN in {t.trait for t in result.lifestyle}


@pytest.mark.parametrize(
    ("milk", "tier", "sensitivity"),
    [
        ("milk-value", BudgetTier.VALUE, PriceSensitivity.HIGH),
        ("milk-premium", BudgetTier.PREMIUM, PriceSensitivity.LOW),
    ],
)
def test_budget_tier_from_prices_paid(milk, tier, sensitivity, catalog):
    # A population where households pick each of the three milks.
    rows = [
        p
        for i, m in enumerate(["milk-value", "milk", "milk-premium"] * 10)
        for p in weekly_baskets(f"p{i}", (m, "bananas"))
    ]
    result = profile(weekly_baskets("c1", (milk, "bananas")), catalog, population_of(rows, catalog))
    assert (result.budget.tier, result.budget.price_sensitivity) == (tier, sensitivity)


def test_no_meat_in_many_food_items_reads_as_vegetarian(catalog, population):
    result = profile(weekly_baskets("c1", ("milk", "bananas", "coffee", "spinach")), catalog, population)
    (trait,) = [t for t in result.lifestyle if t.trait is Lifestyle.VEGETARIAN]
    assert trait.confidence > 0.9
    assert trait.evidence == ("no meat or fish in 48 food items",)


def test_no_animal_products_reads_as_vegan(catalog, population):
    result = profile(weekly_baskets("c1", ("oat", "bananas", "coffee", "spinach")), catalog, population)
    assert Lifestyle.VEGAN in {t.trait for t in result.lifestyle}
    assert Lifestyle.VEGETARIAN not in {t.trait for t in result.lifestyle}


def test_a_few_items_are_not_enough_to_call_a_diet(catalog, population):
    result = profile(weekly_baskets("c1", ("bananas", "coffee"), weeks=3), catalog, population)
    assert not {Lifestyle.VEGETARIAN, Lifestyle.VEGAN} & {t.trait for t in result.lifestyle}


def test_pets_and_health_focus(catalog, population):
    result = profile(weekly_baskets("c1", ("spinach", "bananas", "oat", "chicken", "dogfood")), catalog, population)
    traits = {t.trait for t in result.lifestyle}
    assert {Lifestyle.PETS, Lifestyle.HEALTH_FOCUSED} <= traits


@pytest.mark.parametrize(
    ("baskets", "segment"),
    [
        ([(70, MIXED), (80, MIXED)], Segment.NEW),
        ([(7 * w, MIXED) for w in range(6)], Segment.AT_RISK),  # weekly, silent for 49 days
        ([(7 * w, MIXED) for w in range(12)], Segment.REGULAR),
    ],
)
def test_lifecycle_segments(baskets, segment, catalog, population):
    assert profile(purchases("c1", baskets), catalog, population).lifecycle.segment is segment


def test_top_spenders_are_vip(catalog, population):
    result = profile(weekly_baskets("c1", MIXED, quantity=5), catalog, population)
    assert result.lifecycle.segment is Segment.VIP
    assert np.isfinite(population.recent_spend_p90)
