"""Last-touch attribution of purchases to served lists within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnix_recs.domain.models import Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.experiments.attribution import attribute_purchases, attribute_recorded
from omnix_recs.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def served(
    recommendation_id: str, hours: float, products: tuple[str, ...], customer: str = "c1"
) -> ServedRecommendation:
    items = tuple(RecommendedItem(p, 1.0, 0.5) for p in products)
    return ServedRecommendation(recommendation_id, customer, T0 + timedelta(hours=hours), "balanced", "v1", items)


LISTS = [
    served("early", 0, ("milk", "bread")),
    served("late", 24, ("milk", "eggs")),
    served("other", 1, ("milk",), customer="c2"),
]


@pytest.mark.parametrize(
    ("customer", "product", "hours", "credited"),
    [
        ("c1", "bread", 2, "early"),  # only the early list had bread
        ("c1", "milk", 2, "early"),  # before the late list was served
        ("c1", "milk", 30, "late"),  # both had milk: the latest list before the purchase
        ("c1", "bread", 30, "early"),  # the late list lacks bread: the one before still counts
        ("c1", "eggs", 23, None),  # bought before the list that had eggs
        ("c1", "bread", 24 * 7 + 1, None),  # more than 7 days after the only list with bread
        ("c1", "milk", 24 * 8, "late"),  # 7 days after the late list: inside the window
        ("c1", "cheese", 2, None),  # never recommended
        ("c3", "milk", 2, None),  # a customer never served
        ("c2", "milk", 2, "other"),  # another customer's list is theirs alone
    ],
)
def test_last_touch_within_the_window(customer: str, product: str, hours: float, credited: str | None) -> None:
    purchase = Purchase(customer, "o1", product, 2, 1.25, T0 + timedelta(hours=hours))
    attributed = attribute_purchases(LISTS, [purchase], timedelta(days=7))
    assert [a.recommendation_id for a in attributed] == ([credited] if credited else [])
    assert all(a.revenue == 2.5 for a in attributed)


def test_a_shorter_window() -> None:
    purchase = Purchase("c1", "o1", "bread", 1, 1.0, T0 + timedelta(days=2))
    assert attribute_purchases(LISTS, [purchase], timedelta(days=1)) == []


def test_a_recorded_purchase_is_credited_to_the_customers_latest_list(tmp_path: Path) -> None:
    """As a purchase arrives (the metrics' path): read from the store, last touch, in the window."""
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}")
    try:
        store.save_recommendations(LISTS)
        bought = [
            Purchase("c1", "o1", "milk", 2, 1.5, T0 + timedelta(hours=30)),  # both lists had milk
            Purchase("c1", "o1", "bread", 1, 3.0, T0 + timedelta(days=8)),  # the early list, too long ago
            Purchase("c1", "o1", "cheese", 1, 4.0, T0 + timedelta(hours=30)),  # never listed
        ]
        credited = attribute_recorded(store, "c1", bought)
        assert [(s.recommendation_id, a.purchase.product_id, a.revenue) for s, a in credited] == [("late", "milk", 3.0)]
        assert attribute_recorded(store, "c3", [Purchase("c3", "o2", "milk", 1, 1.0, T0)]) == []
        assert attribute_recorded(store, "c1", []) == []
    finally:
        store.close()
