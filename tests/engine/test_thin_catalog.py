"""Thin catalogs: a shop whose products carry no taxonomy still gets full lists.

Exports without a taxonomy arrive with every product in one "missing" aisle and department, and
names that say little. The per-aisle caps are a preference for variety, not a reason to answer
short: whenever enough eligible products exist, every list RPC of the recommender, for every
strategy and lifecycle stage, is as long as asked. The model is a real build of the shop (not a
hand-made one), so content similarity is as empty as such a catalog makes it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.engine.artifact import in_memory_model
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.build import BuildParameters, build_from_lines
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.engine.recommender import Lifecycle, Recommender, lifecycle, week_column
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PRODUCTS = [Product(f"p{n:02d}", f"Item {n}", "missing", "missing", "", 1.0 + n % 5) for n in range(60)]
LIMIT = 20
# A regular shopper (weekly for ten weeks, then a quiet spell), a VIP (twice a week), a new one.
REGULAR, VIP, NEWCOMER = "regular", "vip", "newcomer"


def _shop(store: Store) -> None:
    rng = random.Random(5)
    store.upsert_products(PRODUCTS)
    shoppers = {f"c{n}": [7 * w + rng.randint(0, 3) for w in range(2, 10)] for n in range(30)}
    shoppers[REGULAR] = [7 * w for w in range(3, 13)]
    shoppers[VIP] = [3 * d + 1 for d in range(30)]
    shoppers[NEWCOMER] = [2]
    lines = []
    for customer_id, days_ago in shoppers.items():
        store.create_customer(Customer(customer_id, NOW - timedelta(days=400), NOW - timedelta(days=400)))
        # Each shopper sticks to a repertoire of at most 25 products, so DISCOVER has room.
        repertoire = rng.sample(PRODUCTS, 25)
        for days in days_ago:
            at = NOW - timedelta(days=days, hours=1)
            for product in rng.sample(repertoire, rng.randint(3, 8)):
                lines.append(Purchase(customer_id, f"{customer_id}-{days}", product.product_id, 1, product.price, at))
    # A late rush on a third of the shelf: trending products to list.
    for n, product in enumerate(PRODUCTS[:20]):
        for k in range(12):
            at = NOW - timedelta(days=k % 5, hours=2)
            lines.append(Purchase("c0", f"rush-{n}-{k}", product.product_id, 1, product.price, at))
    store.add_purchases(lines)


@pytest.fixture(scope="module")
def recommender(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    path: Path = tmp_path_factory.mktemp("thin") / "omnix.db"
    store = open_store(f"sqlite:///{path}")
    _shop(store)
    lines = read_purchase_lines(store.scan_purchases(), (p.product_id for p in PRODUCTS))
    built = build_from_lines(lines, PRODUCTS, BuildParameters(taste_dimensions=4, like_you_neighbours=5))
    model = in_memory_model(built, "thin-1")

    class Fixed:
        def __init__(self) -> None:
            self.model = model

        def reload_if_changed(self, *, force: bool = False) -> None:
            return None

    return Recommender(store, Fixed())


def test_the_catalog_is_one_aisle(recommender: Recommender) -> None:
    model = recommender._models.model
    assert model is not None
    index = recommender.catalog.index_for(model.item_ids)
    assert len(set(index.aisle_ids.tolist())) == 1 and len(model.item_ids) == len(PRODUCTS)


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("customer_id", [REGULAR, VIP, "c3"])
def test_recommend_fills_every_strategy(recommender: Recommender, strategy: Strategy, customer_id: str) -> None:
    answer = recommender.recommend(customer_id, strategy=strategy, limit=LIMIT, as_of=NOW)
    ids = [item.product_id for item in answer.items]
    assert len(ids) == LIMIT and len(set(ids)) == LIMIT


@pytest.mark.parametrize("strategy", list(Strategy))
def test_recommend_with_a_basket_and_the_cache_path(recommender: Recommender, strategy: Strategy) -> None:
    answer = recommender.recommend(REGULAR, strategy=strategy, limit=LIMIT, basket=["p01", "p02"])
    assert len(answer.items) == LIMIT
    assert not {"p01", "p02"} & {item.product_id for item in answer.items}


def test_discover_fills_with_products_the_shopper_never_bought(recommender: Recommender) -> None:
    bought = {p.product_id for p in recommender._store.purchases_of(REGULAR)}
    answer = recommender.recommend(REGULAR, strategy=Strategy.DISCOVER, limit=LIMIT, as_of=NOW)
    assert len(answer.items) == LIMIT
    assert not bought & {item.product_id for item in answer.items}


@pytest.mark.parametrize(
    ("customer_id", "stage"), [(NEWCOMER, Lifecycle.NEW), (REGULAR, Lifecycle.REGULAR), (VIP, Lifecycle.VIP)]
)
def test_personalized_fills_every_lifecycle_stage(recommender: Recommender, customer_id: str, stage: Lifecycle) -> None:
    answer = recommender.personalized(customer_id, limit=LIMIT, as_of=NOW)
    assert answer.lifecycle == str(stage)
    assert len(answer.items) == LIMIT


@pytest.mark.parametrize("limit", [5, LIMIT, 40])
def test_similar_products_fill(recommender: Recommender, limit: int) -> None:
    answer = recommender.similar_products("p07", limit=limit)
    ids = [item.product_id for item in answer.items]
    assert len(ids) == limit and "p07" not in ids


@pytest.mark.parametrize("limit", [5, LIMIT, 40])
def test_frequently_bought_together_fills(recommender: Recommender, limit: int) -> None:
    answer = recommender.frequently_bought_together(["p03", "p04"], limit=limit, customer_id=REGULAR)
    ids = [item.product_id for item in answer.items]
    assert len(ids) == limit and not {"p03", "p04"} & set(ids)


def test_trending_fills_with_every_rising_product(recommender: Recommender) -> None:
    model = recommender._models.model
    assert model is not None
    rising = int(np.count_nonzero(np.nan_to_num(model.trending) > 0))
    assert rising >= LIMIT
    answer, _ = recommender.trending(limit=LIMIT)
    assert len(answer.items) == LIMIT
    answer, _ = recommender.trending(limit=LIMIT, department="missing")
    assert len(answer.items) == LIMIT


def test_seasonal_fills_with_every_product_above_its_usual(recommender: Recommender) -> None:
    model = recommender._models.model
    assert model is not None
    above = int(np.count_nonzero(np.nan_to_num(model.seasonal_lift[:, week_column(NOW)]) > 1.0))
    answer = recommender.seasonal(limit=LIMIT, as_of=NOW)
    assert len(answer.items) == min(LIMIT, above) and above > 0


def test_lifecycle_stages_are_what_the_shop_was_built_for(recommender: Recommender) -> None:
    for customer_id, stage in ((NEWCOMER, Lifecycle.NEW), (REGULAR, Lifecycle.REGULAR), (VIP, Lifecycle.VIP)):
        assert lifecycle(recommender.shopper_at(customer_id, NOW).history) is stage
