"""Attribution: which purchases a served list earned (last touch within a window).

A purchase of a product by a customer is attributed to the latest list served to that
customer that contained the product, when the purchase came after the list and within the
window (default 7 days). Only one list gets the credit, so revenue is never counted twice.
The reports and experiment results attribute a period's purchases at once; a recorded purchase
is also attributed as it arrives, for the operators' metrics (`attribute_recorded`).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from omnix_recs.domain.models import Purchase, ServedRecommendation
from omnix_recs.store.base import Store

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


# A purchase is checked against at most this many of the customer's newest lists: a shopper
# served more than this within the window is rare, and the reports count exactly anyway.
RECENT_LISTS = 200


def attribute_recorded(
    store: Store, customer_id: str, purchases: Sequence[Purchase], window: timedelta = DEFAULT_WINDOW
) -> list[tuple[ServedRecommendation, AttributedPurchase]]:
    """The purchases just recorded for a customer that a list served to them earned, each
    with that list (for the metrics, as the purchase arrives: one read of their newest lists)."""
    if not purchases:
        return []
    earliest = min(p.purchased_at for p in purchases) - window
    lists = [s for s in store.list_recommendations(customer_id, RECENT_LISTS) if s.generated_at >= earliest]
    by_id = {s.recommendation_id: s for s in lists}
    return [(by_id[a.recommendation_id], a) for a in attribute_purchases(lists, purchases, window)]
