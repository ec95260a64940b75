"""A small shop whose customers each fit one campaign rule (seeded into a store by `seed`).

Customers (all trips end at a fixed offset before NOW):
- weekly: a weekly shopper gone 21 days (lapsed by their own rhythm); marketing consent.
- monthly: a monthly shopper gone 21 days (not lapsed); marketing consent.
- regular: weekly, last trip 3 days ago; marketing consent.
- quiet: like weekly, but no marketing consent: never selected.
- private: like weekly, marketing consent but no personalisation consent.
- carter: weekly, last trip 3 days ago, coffee put in the cart 6 hours ago and not bought.
- vip: every 6 days for 90 days (15 trips), last 2 days ago.
The first four shop in store "north", the others in "south" (the extra basket has no store).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnix_recs.domain.models import Consent, Customer, Interaction, InteractionKind, Product, Purchase
from omnix_recs.store.base import Store

NOW = datetime.now(UTC).replace(microsecond=0)
PRODUCTS = [
    Product("milk", "Whole Milk", "dairy eggs", "milk", "Dairyland", 1.2),
    Product("bread", "Sourdough Bread", "bakery", "bread", "Baker", 2.5),
    Product("eggs", "Free Range Eggs", "dairy eggs", "eggs", "Hen", 3.0),
    Product("pasta", "Spaghetti", "pantry", "pasta", "Roma", 1.5),
    Product("sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0),
    Product("coffee", "Ground Coffee", "beverages", "coffee", "Bean", 6.0),
    Product("tea", "Green Tea", "beverages", "tea", "Leaf", 3.5),
    Product("apples", "Apples", "produce", "fruit", "Orchard", 2.2),
    Product("caviar", "Caviar", "meat seafood", "seafood", "Lux", 90.0, in_stock=False),
]
BASKET = ("milk", "bread", "eggs")
NORTH = ("weekly", "monthly", "regular", "quiet")


def trips(customer_id: str, last_days_ago: float, gap_days: float, count: int) -> list[Purchase]:
    lines = []
    for n in range(count):
        at = NOW - timedelta(days=last_days_ago + n * gap_days)
        store = "north" if customer_id in NORTH else "south"
        lines += [Purchase(customer_id, f"{customer_id}-{n}", p, 1, 0.0, at, store) for p in BASKET]
    return lines


SHOPPERS = {
    # customer id: (consent, last trip days ago, gap days, trips, display name)
    "weekly": (Consent(marketing=True), 21, 7, 10, "Wendy Weekly"),
    "monthly": (Consent(marketing=True), 21, 30, 6, "Mo"),
    "regular": (Consent(marketing=True), 3, 7, 10, ""),
    "quiet": (Consent(marketing=False), 21, 7, 10, ""),
    "private": (Consent(personalization=False, marketing=True), 21, 7, 10, ""),
    "carter": (Consent(marketing=True), 3, 7, 10, "Carter"),
    "vip": (Consent(marketing=True), 2, 6, 15, ""),
}


def seed(store: Store) -> None:
    store.upsert_products(PRODUCTS)
    for customer_id, (consent, last, gap, count, name) in SHOPPERS.items():
        store.create_customer(
            Customer(
                customer_id, NOW - timedelta(days=200), NOW - timedelta(days=200), display_name=name, consent=consent
            )
        )
        store.add_purchases([p for p in trips(customer_id, last, gap, count)])
    # Some variety so discovery and co-purchase have something to offer.
    store.add_purchases(
        [
            Purchase("regular", "regular-extra", p, 1, 0.0, NOW - timedelta(days=10))
            for p in ("pasta", "sauce", "coffee", "tea", "apples")
        ]
    )
    store.add_interaction(
        Interaction(
            "carter", "cart-1", InteractionKind.CART_ADD, NOW - timedelta(hours=6), product_id="coffee", quantity=1
        )
    )
