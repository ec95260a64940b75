"""Household, budget, income, age, lifestyle and lifecycle from hand-made shoppers against a small
population; and the scoring of profiles against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from histories import CATALOG, NO_POPULATION, at, purchases

from omnix_recs.domain.consumption import (
    PurchaseTable,
    customer_cycles,
    enrich_history,
    population_cycles,
    to_day,
)
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.domain.profiling import (
    AgeBand,
    BudgetTier,
    CatalogSignals,
    IncomeBand,
    Lifestyle,
    PriceSensitivity,
    Segment,
    population_profile,
    product_signals,
    profile_customer,
    shopper_metrics,
)
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.insights.evaluate import completejourney_truth, score_attribute

AS_OF_DAY = 84
MIXED = ("milk", "bananas", "coffee", "chicken", "chips", "soap")


def weekly_baskets(customer_id: str, products: tuple[str, ...], *, weeks: int = 12, quantity: int = 1):
    return purchases(customer_id, [(7 * w, products) for w in range(weeks)], quantity=quantity)


def alternating_halves(customer_id: str, *, quantity: int = 1):
    """The population's habit: a weekly trip, each product every other week (a 14-day cycle)."""
    return purchases(customer_id, [(7 * w, MIXED[3 * (w % 2) : 3 * (w % 2) + 3]) for w in range(12)], quantity=quantity)


def table_of(rows) -> PurchaseTable:
    columns = PurchaseColumns(
        customer_ids=[p.customer_id for p in rows],
        order_ids=[p.order_id for p in rows],
        product_ids=[p.product_id for p in rows],
        quantities=[p.quantity for p in rows],
        unit_prices=[p.unit_price for p in rows],
        purchased_at=[int(p.purchased_at.timestamp()) for p in rows],
    )
    return PurchaseTable.from_columns([columns])


def population_of(rows, catalog):
    return population_profile(table_of(rows), catalog, to_day(at(AS_OF_DAY)))


@pytest.fixture(scope="module")
def catalog():
    return CatalogSignals.from_products(CATALOG.values())


@pytest.fixture(scope="module")
def population_rows():
    # 30 ordinary households: three products a week, each product every other week.
    return [p for i in range(30) for p in alternating_halves(f"p{i}")]


@pytest.fixture(scope="module")
def population(population_rows, catalog):
    return population_of(population_rows, catalog)


@pytest.fixture(scope="module")
def priors(population_rows):
    return population_cycles(table_of(population_rows))


def profile(rows, catalog, population, priors=NO_POPULATION, products=CATALOG):
    history = enrich_history("c1", rows, products, as_of=at(AS_OF_DAY))
    return profile_customer(history, customer_cycles(history, priors), catalog, population)


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
    assert catalog.shelf[row["milk"]] == catalog.shelf[row["milk-premium"]] != catalog.shelf[row["oat"]]


def test_the_typical_shopper_is_a_household_of_two(catalog, population, priors):
    result = profile(alternating_halves("c1"), catalog, population, priors)
    assert result.household.size == 2
    assert result.household.evidence == (
        "3 items per trip, 1.0x the typical basket",
        "uses up 6 regular products 1.0x as fast as typical shoppers",
    )


@pytest.mark.parametrize(
    ("baskets", "quantity", "size"),
    [
        # Every product every week: twice the pace and twice the basket (2 × 2^0.56 × 2^0.24 = 3.5).
        ([(7 * w, MIXED) for w in range(12)], 1, 3),
        # Two products a week, each every three weeks (2 × (2/3)^0.56 × (2/3)^0.24 = 1.45).
        ([(7 * w, MIXED[2 * (w % 3) : 2 * (w % 3) + 2]) for w in range(12)], 1, 1),
        # The usual rhythm, four packs of each (2 × 4^0.24 = 2.8).
        ([(7 * w, MIXED[3 * (w % 2) : 3 * (w % 2) + 3]) for w in range(12)], 4, 3),
    ],
)
def test_household_size_follows_pace_and_basket(baskets, quantity, size, catalog, population, priors):
    result = profile(purchases("c1", baskets, quantity=quantity), catalog, population, priors)
    assert result.household.size == size


def test_using_things_up_fast_is_the_evidence(catalog, population, priors):
    result = profile(weekly_baskets("c1", MIXED), catalog, population, priors)
    assert result.household.evidence[1] == "uses up 6 regular products 2.0x as fast as typical shoppers"


def test_household_confidence_is_lower_without_a_pace(catalog, population, priors):
    with_pace = profile(alternating_halves("c1"), catalog, population, priors).household
    # Two trips: the same basket, but no product bought often enough to show a pace.
    without = profile(alternating_halves("c1")[:6], catalog, population, priors).household
    assert with_pace.size == without.size == 2
    assert 0 < without.confidence < with_pace.confidence < 0.5


def test_baby_products_mean_at_least_three_people(catalog, population):
    result = profile(weekly_baskets("c1", (*MIXED, "diapers")), catalog, population)
    assert result.household.size >= 3
    assert "buys baby products" in result.household.evidence
    assert Lifestyle.YOUNG_CHILDREN in {t.trait for t in result.lifestyle}


# --- budget: six shelves, each with a cheap, a standard and a dear option -----------------------

SHELVES = 6
OPTIONS = (("cheap", 0.8), ("standard", 1.0), ("dear", 1.3))
SHELF_CATALOG = {
    f"{name}{k}": Product(
        f"{name}{k}", f"{name.title()} Pasta {k}", "pantry", f"pasta {k}", price=round(2.0 * factor, 2)
    )
    for k in range(SHELVES)
    for name, factor in OPTIONS
} | {"loose": Product("loose", "Loose Beans", "pantry", "bulk beans", price=0.0)}  # weighed at the till


def shelf_baskets(customer_id: str, picks: dict[int, str]):
    """Weekly for 12 weeks: on shelf k the option `picks[k]`."""
    basket = [f"{option}{k}" for k, option in picks.items()]
    return [
        Purchase(customer_id, f"{customer_id}-w{w}", pid, 1, SHELF_CATALOG[pid].price, at(7 * w))
        for w in range(12)
        for pid in basket
    ]


@pytest.fixture(scope="module")
def shelf_catalog():
    return CatalogSignals.from_products(SHELF_CATALOG.values())


@pytest.fixture(scope="module")
def shelf_population(shelf_catalog):
    # Ten households lean to each option; each strays to the next option on one shelf.
    rows = []
    for i in range(30):
        leaning, stray = OPTIONS[i % 3][0], OPTIONS[(i % 3 + 1) % 3][0]
        rows += shelf_baskets(f"p{i}", {k: stray if k == i % SHELVES else leaning for k in range(SHELVES)})
    return population_of(rows, shelf_catalog)


def everywhere(option: str) -> dict[int, str]:
    return {k: option for k in range(SHELVES)}


@pytest.mark.parametrize(
    ("picks", "tier", "sensitivity"),
    [
        (everywhere("cheap"), BudgetTier.VALUE, PriceSensitivity.HIGH),
        (everywhere("standard"), BudgetTier.MID, PriceSensitivity.LOW),
        (everywhere("dear"), BudgetTier.PREMIUM, PriceSensitivity.LOW),
    ],
)
def test_budget_tier_from_where_choices_sit_on_the_shelf(picks, tier, sensitivity, shelf_catalog, shelf_population):
    result = profile(shelf_baskets("c1", picks), shelf_catalog, shelf_population, products=SHELF_CATALOG)
    assert (result.budget.tier, result.budget.price_sensitivity) == (tier, sensitivity)
    assert result.budget.confidence > 0.5


def test_one_cheap_choice_is_weaker_evidence_than_six(shelf_catalog, shelf_population):
    one = profile(shelf_baskets("c1", {0: "cheap"}), shelf_catalog, shelf_population, products=SHELF_CATALOG).budget
    six = profile(shelf_baskets("c1", everywhere("cheap")), shelf_catalog, shelf_population, products=SHELF_CATALOG)
    # As cheap a choice as the value shopper's, but one choice could be luck.
    assert one.price_index < 0.8 and six.budget.price_index < 0.8
    assert one.confidence < six.budget.confidence
    assert (
        one.evidence[0] == "chooses products 24% cheaper than shoppers typically choose on the same shelves (1 product)"
    )


def test_population_price_taste_separates_taste_from_luck(shelf_population):
    assert shelf_population.price_taste_spread > 0
    assert shelf_population.choice_price_spread > 0
    assert shelf_population.price_taste_median == pytest.approx(0.0, abs=0.05)


def test_without_prices_the_budget_is_mid_with_no_confidence(shelf_catalog, shelf_population):
    rows = [Purchase("c1", f"c1-w{w}", "loose", 1, 0.0, at(7 * w)) for w in range(12)]
    result = profile(rows, shelf_catalog, shelf_population, products=SHELF_CATALOG)
    assert (result.budget.tier, result.budget.confidence) == (BudgetTier.MID, 0.0)


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
        ([(7 * w, ("milk", "bananas")) for w in range(12)], Segment.REGULAR),
    ],
)
def test_lifecycle_segments(baskets, segment, catalog, population):
    assert profile(purchases("c1", baskets), catalog, population).lifecycle.segment is segment


def test_top_spenders_are_vip(catalog, population):
    result = profile(weekly_baskets("c1", MIXED, quantity=5), catalog, population)
    assert result.lifecycle.segment is Segment.VIP
    assert np.isfinite(population.recent_spend_p90)


# --- other catalogs' taxonomies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "has", "lacks"),
    [
        # Dunnhumby's departments and commodities (The Complete Journey).
        (Product("bf", "BABY FOOD - JARS", "GROCERY", "BABY FOODS"), {"food", "baby"}, {"pet"}),
        (Product("dp", "BABY DIAPERS", "DRUG GM", "DIAPERS & DISPOSABLES"), {"baby"}, {"pet"}),
        (Product("dg", "DRY DOG FOOD", "GROCERY", "DOG FOODS"), {"pet"}, {"food", "meat"}),
        (Product("hd", "HOT DOGS - BEEF", "MEAT-PCKGD", "HOT DOGS"), {"food", "meat", "animal"}, {"pet"}),
        (Product("ws", "WHISKEY", "SPIRITS", "LIQUOR"), {"party"}, set()),
        (Product("gs", "GASOLINE-REG UNLEADED", "FUEL", "GASOLINE"), set(), {"food"}),
        (Product("sp", "Organic Baby Spinach", "produce", "fresh vegetables"), {"produce"}, {"baby"}),
    ],
)
def test_product_signals_read_other_catalogs(product, has, lacks):
    signals = product_signals(product)
    assert has <= signals and not lacks & signals


def test_a_metered_quantity_is_one_item(catalog):
    fuel = Product("fuel", "Gasoline", "fuel", "gasoline", price=0.003)
    rows = purchases("c1", [(7 * w, ("milk",)) for w in range(4)], quantity=2)
    rows += [Purchase("c1", f"c1-day{7 * w}", "fuel", 12_000, 0.003, at(7 * w)) for w in range(4)]
    products = {**CATALOG, "fuel": fuel}
    table = table_of(rows)
    metrics = shopper_metrics(
        table,
        CatalogSignals.from_products(products.values()),
        to_day(at(AS_OF_DAY)),
        price_position=np.zeros(len(products)),
        population_cycle_days=np.full(len(table.product_ids), np.nan),
    )
    assert metrics.units_per_trip[0] == 3.0  # two packs of milk and one tank of fuel


def test_children_count_only_above_what_everyone_buys(catalog):
    # Every household buys nappies every week: nappies say nothing about this one's size.
    everyone = [p for i in range(30) for p in weekly_baskets(f"p{i}", ("milk", "coffee", "diapers"))]
    population = population_of(everyone, catalog)
    result = profile(weekly_baskets("c1", ("milk", "coffee", "diapers")), catalog, population)
    assert result.household.size == 2
    assert "buys baby products" not in result.household.evidence


# --- income and age bands ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("picks", "band"),
    [
        (everywhere("cheap"), IncomeBand.LOWER),
        (everywhere("standard"), IncomeBand.MIDDLE),
        (everywhere("dear"), IncomeBand.UPPER),
    ],
)
def test_income_band_from_shelf_choices_and_spend(picks, band, shelf_catalog, shelf_population):
    result = profile(shelf_baskets("c1", picks), shelf_catalog, shelf_population, products=SHELF_CATALOG)
    assert result.income.band == band
    assert 0 < result.income.confidence <= 0.85
    assert result.income.evidence  # the strongest signals, in words


def household_mix(customer_id: str, kind: str, strength: int) -> list[Purchase]:
    """Weekly baskets of milk and coffee plus, on `strength` of 12 weeks, the kind's products."""
    extra = {"family": ("diapers", "chips"), "fresh": ("bananas", "spinach"), "plain": ("chips",)}[kind]
    return purchases(customer_id, [(7 * w, ("milk", "coffee", *(extra if w < strength else ()))) for w in range(12)])


@pytest.fixture(scope="module")
def mixed_population(catalog):
    rows = []
    for i in range(36):
        kind = ("family", "fresh", "plain")[i % 3]
        rows += household_mix(f"p{i}", kind, 2 + i % 10)
    return population_of(rows, catalog)


@pytest.mark.parametrize(
    ("kind", "band"),
    [("family", AgeBand.UNDER_35), ("plain", AgeBand.FROM_35_TO_54), ("fresh", AgeBand.FROM_55)],
)
def test_age_band_from_children_and_fresh_food(kind, band, catalog, mixed_population):
    result = profile(household_mix("c1", kind, 12 if kind != "plain" else 6), catalog, mixed_population)
    assert result.age.band == band


def test_a_declared_age_band_is_mentioned_not_used(catalog, mixed_population):
    history = enrich_history("c1", household_mix("c1", "family", 12), CATALOG, as_of=at(AS_OF_DAY))
    customer = Customer("c1", at(0), at(0), age_band="65+")
    result = profile_customer(history, customer_cycles(history, NO_POPULATION), catalog, mixed_population, customer)
    assert result.age.band == AgeBand.UNDER_35
    assert result.age.evidence[-1] == "the customer says 65+"


# --- checking profiles against known answers (insights/evaluate.py) ------------------------------


def test_attribute_scores_next_to_the_most_common_answer():
    truth = {"a": "2", "b": "2", "c": "1", "d": "3", "e": ""}  # e did not answer
    predicted = {"a": "2", "b": "1", "c": "1", "d": "2", "e": "2"}
    score = score_attribute("household size", truth, predicted)
    assert (score.households, score.accuracy, score.majority, score.majority_accuracy) == (4, 0.5, "2", 0.5)
    # F1: "1" 2/3, "2" 1/2, "3" 0 → 7/18; always "2": "2" 2/3, "1" 0, "3" 0 → 2/9.
    assert score.macro_f1 == pytest.approx(7 / 18)
    assert score.majority_macro_f1 == pytest.approx(2 / 9)
    assert score.predicted == {"2": 2, "1": 2}


def test_completejourney_answers_map_to_the_profilers_bands():
    truth = completejourney_truth(
        {
            "1": {"household_size": "5+", "income": "Under 15K", "age": "19-24"},
            "2": {"household_size": "2", "income": "50-74K", "age": "45-54"},
            "3": {"household_size": "1", "income": "250K+", "age": "65+"},
            "4": {"household_size": "", "income": "", "age": ""},
        }
    )
    assert truth["household size"] == {"1": "5+", "2": "2", "3": "1", "4": ""}
    assert truth["income band"] == {"1": "lower", "2": "middle", "3": "upper", "4": ""}
    assert truth["age band"] == {"1": "under 35", "2": "35-54", "3": "55+", "4": ""}
