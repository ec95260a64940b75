"""The population baseline cache: built once, rebuilt when the store has grown."""

from __future__ import annotations

from datetime import timedelta

from shop import NOW

from omnix_recs.domain.models import Purchase
from omnix_recs.insights.baseline import BaselineCache


def test_baseline_is_reused_until_purchases_drift(shop):
    cache = BaselineCache(shop, check_every_s=0.0)
    first = cache.get()
    assert first.purchases == shop.count_purchases()
    assert first.cycles.product_cycle_days["milk"] == 7.0
    assert cache.get() is first

    shop.add_purchases([Purchase("weekly", f"extra-{i}", "milk", 1, 1.3, NOW - timedelta(hours=i)) for i in range(10)])
    rebuilt = cache.get()
    assert rebuilt is not first and rebuilt.purchases == first.purchases + 10
