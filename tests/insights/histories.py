"""Hand-made purchase histories for the consumption, pattern, prediction and profiling tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from omnix_recs.domain.consumption import CustomerHistory, PopulationCycles, enrich_history
from omnix_recs.domain.models import Product, Purchase

# A Saturday, 10:00 UTC: weekly shoppers in these tests shop on Saturdays.
START = datetime(2025, 1, 4, 10, 0, tzinfo=UTC)

CATALOG = {
    p.product_id: p
    for p in (
        Product(
            "milk",
            "Whole Milk",
            "dairy eggs",
            "milk",
            price=1.3,
            pack_size="1 L",
            dietary_tags=("vegetarian",),
            allergens=("milk",),
        ),
        Product(
            "milk-value",
            "Value Milk",
            "dairy eggs",
            "milk",
            price=0.9,
            pack_size="1 L",
            dietary_tags=("vegetarian",),
            allergens=("milk",),
        ),
        Product(
            "milk-premium",
            "Jersey Milk",
            "dairy eggs",
            "milk",
            price=2.2,
            pack_size="1 L",
            dietary_tags=("vegetarian",),
            allergens=("milk",),
        ),
        Product(
            "oat",
            "Oat Milk",
            "dairy eggs",
            "plant milk",
            price=2.8,
            pack_size="1 L",
            dietary_tags=("vegan", "vegetarian", "organic"),
        ),
        Product("bananas", "Bananas", "produce", "fresh fruits", price=0.3, dietary_tags=("vegan", "vegetarian")),
        Product(
            "spinach",
            "Organic Baby Spinach",
            "produce",
            "fresh vegetables",
            price=2.5,
            dietary_tags=("vegan", "vegetarian", "organic"),
        ),
        Product("coffee", "Ground Coffee", "breakfast", "coffee", price=8.5, dietary_tags=("vegan", "vegetarian")),
        Product("chicken", "Chicken Thighs", "meat seafood", "poultry", price=6.5),
        Product("salmon", "Salmon Fillet", "meat seafood", "seafood", price=9.0, allergens=("fish",)),
        Product("lager", "Premium Lager", "alcohol", "beer", price=10.0),
        Product(
            "chips", "Sea Salt Chips", "snacks", "chips & pretzels", price=3.9, dietary_tags=("vegan", "vegetarian")
        ),
        Product("diapers", "Diapers Size 3", "babies", "diapers & wipes", price=14.0),
        Product("dogfood", "Dry Dog Food", "pets", "dog food & treats", price=15.0),
        Product("soap", "Dish Soap", "household", "dish detergents", price=4.5),
    )
}


def at(day: float, hour: int = 10) -> datetime:
    return START + timedelta(days=day, hours=hour - 10)


def purchases(customer_id: str, baskets: Iterable[tuple[float, Iterable[str]]], *, quantity: int = 1) -> list[Purchase]:
    """One order per (day, product ids) basket, priced at the catalog price."""
    rows = []
    for day, product_ids in baskets:
        for pid in product_ids:
            rows.append(Purchase(customer_id, f"{customer_id}-day{day}", pid, quantity, CATALOG[pid].price, at(day)))
    return rows


def history_of(rows: list[Purchase], *, as_of_day: float, customer_id: str = "c1") -> CustomerHistory:
    return enrich_history(customer_id, rows, CATALOG, as_of=at(as_of_day))


def weekly(
    customer_id: str = "c1", *, weeks: int = 12, products: tuple[str, ...] = ("milk", "bananas")
) -> list[Purchase]:
    return purchases(customer_id, [(7 * w, products) for w in range(weeks)])


NO_POPULATION = PopulationCycles()
