"""A small shop for the AI tests: a catalog, three customers and their weekly histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnix_recs.domain.models import Consent, Customer, Product, Purchase
from omnix_recs.store.base import Store

NOW = datetime.now(UTC).replace(microsecond=0)
MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
PRODUCTS = (
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
    Product("bananas", "Bananas", "produce", "fresh fruits", price=0.3, dietary_tags=("vegan", "vegetarian")),
    Product("coffee", "Ground Coffee", "breakfast", "coffee", price=8.5, dietary_tags=("vegan", "vegetarian")),
    Product("chicken", "Chicken Thighs", "meat seafood", "poultry", price=6.5),
    Product("lager", "Premium Lager", "alcohol", "beer", price=10.0),
)
PRIVATE_DETAILS = ("Jane Example", "jane@example.com", "AB1 2CD")


def weekly_history(customer_id: str, weeks: int, *, last_days_ago: float) -> list[Purchase]:
    """Milk and bananas every week, coffee every other week, chicken for the first 8 weeks."""
    purchases = []
    for week in range(weeks):
        at = NOW - timedelta(days=last_days_ago + 7 * (weeks - 1 - week))
        order = f"{customer_id}-{week}"
        purchases += [
            Purchase(customer_id, order, "milk", 2, 1.3, at),
            Purchase(customer_id, order, "bananas", 6, 0.3, at),
        ]
        if week % 2 == 0:
            purchases.append(Purchase(customer_id, order, "coffee", 1, 8.5, at))
        if week < 8:
            purchases.append(Purchase(customer_id, order, "chicken", 1, 6.5, at))
    return purchases


def seed_shop(store: Store) -> None:
    store.upsert_products(list(PRODUCTS))
    name, email, postcode = PRIVATE_DETAILS
    for customer_id, consent in [
        ("weekly", Consent()),
        ("lapsed", Consent()),
        ("private", Consent(analytics=False, personalization=False)),
    ]:
        store.create_customer(
            Customer(customer_id, NOW, NOW, display_name=name, email=email, postcode=postcode, consent=consent)
        )
    store.add_purchases(
        weekly_history("weekly", 20, last_days_ago=6)
        + weekly_history("lapsed", 10, last_days_ago=60)
        + weekly_history("private", 5, last_days_ago=3)
    )
