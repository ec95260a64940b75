"""Attribution: which purchases a served list earned (last touch within a window).

A purchase of a product by a customer is attributed to the latest list served to that
customer that contained the product, when the purchase came after the list and within the
window (default 7 days). Only one list gets the credit, so revenue is never counted twice.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from omnix_recs.domain.models import Purchase, ServedRecommendation

DEFAULT_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class AttributedPurchase:
    recommendation_id: str
    purchase: Purchase

    @property
    def revenue(self) -> float:
        return self.purchase.unit_price * self.purchase.quantity


def attribute_purchases(
    served: Sequence[ServedRecommendation], purchases: Iterable[Purchase], window: timedelta = DEFAULT_WINDOW
) -> list[AttributedPurchase]:
    """The purchases (order lines) some list of `served` earned, each with that list's id."""
    by_customer: dict[str, list[ServedRecommendation]] = defaultdict(list)
    for served_list in sorted(served, key=lambda s: s.generated_at):
        by_customer[served_list.customer_id].append(served_list)
    starts = {customer: [s.generated_at for s in lists] for customer, lists in by_customer.items()}
    contents: dict[str, frozenset[str]] = {}  # built for the lists a purchase is checked against
    attributed = []
    for purchase in purchases:
        lists = by_customer.get(purchase.customer_id)
        if lists is None:
            continue
        # Newest list served at or before the purchase, walking back while inside the window.
        position = bisect.bisect_right(starts[purchase.customer_id], purchase.purchased_at) - 1
        while position >= 0:
            candidate = lists[position]
            if purchase.purchased_at - candidate.generated_at > window:
                break
            listed = contents.get(candidate.recommendation_id)
            if listed is None:
                listed = contents[candidate.recommendation_id] = frozenset(i.product_id for i in candidate.items)
            if purchase.product_id in listed:
                attributed.append(AttributedPurchase(candidate.recommendation_id, purchase))
                break
            position -= 1
    return attributed
