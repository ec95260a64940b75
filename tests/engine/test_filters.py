"""The catalog snapshot serving filters with (engine/filters.py `CatalogCache`) over a real store."""

from __future__ import annotations

import time
from dataclasses import replace

from omnix_recs.engine.filters import CatalogCache


def catalog_of(shop):
    """The shop's store, its product ids (as a model's item ids) and products, in one order."""
    return shop.store, list(shop.products), list(shop.products.values())


def test_the_snapshot_is_kept_until_the_catalog_changes(shop):
    store, ids, products = catalog_of(shop)
    catalog = CatalogCache(store)
    milk = ids.index("milk")
    first = catalog.index_for(ids)
    assert catalog.index_for(ids) is first and first.in_stock[milk]
    assert catalog.refresh() is False  # nothing changed: no rebuild

    store.upsert_products([replace(products[milk], in_stock=False)])
    assert catalog.index_for(ids) is first  # requests never rebuild an existing snapshot
    assert catalog.refresh() is True
    assert not catalog.index_for(ids).in_stock[milk]
    assert catalog.refresh() is False


def test_a_new_model_gets_its_own_snapshot(shop):
    store, ids, products = catalog_of(shop)
    catalog = CatalogCache(store)
    old = catalog.index_for(ids)
    fewer = ids[:3]
    assert len(catalog.index_for(fewer).item_ids) == 3
    assert catalog.index_for(ids) is not old


def test_the_background_refresher_picks_up_a_change(shop):
    store, ids, products = catalog_of(shop)
    catalog = CatalogCache(store, check_every_s=0.01)
    catalog.index_for(ids)
    catalog.start()
    try:
        store.upsert_products([replace(products[0], price=0.5)])
        for _ in range(500):
            if catalog.index_for(ids).price[0] == 0.5:
                break
            time.sleep(0.01)
        assert catalog.index_for(ids).price[0] == 0.5
    finally:
        catalog.close()
