"""A tiny supermarket with a hand-made model, for serving tests.

Products (model item index = position in PRODUCTS): pasta and its sauce are bought together,
milk is a weekly staple, steak is meat (not vegan), peanut butter contains peanuts, caviar is
expensive, the oat drink is the vegan twin of milk. The model tables are written by hand so
each test can reason about what should come back. S3 for the artifact tests: a local server per
test module and a bucket per test (local_s3.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from local_s3 import LocalS3, running_local_s3

from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

PRODUCTS = [
    Product(
        "pasta",
        "Spaghetti",
        "pantry",
        "pasta",
        "Roma",
        1.5,
        dietary_tags=("vegan", "vegetarian"),
        allergens=("gluten",),
    ),
    Product(
        "sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0, dietary_tags=("vegan", "vegetarian", "gluten_free")
    ),
    Product(
        "milk",
        "Whole Milk",
        "dairy eggs",
        "milk",
        "Dairyland",
        1.2,
        dietary_tags=("vegetarian", "gluten_free"),
        allergens=("milk",),
    ),
    Product("steak", "Ribeye Steak", "meat seafood", "beef", "Butcher", 12.0, dietary_tags=("gluten_free",)),
    Product(
        "peanut",
        "Peanut Butter",
        "pantry",
        "spreads",
        "Nutty",
        3.0,
        dietary_tags=("vegan", "vegetarian"),
        allergens=("peanuts",),
    ),
    Product(
        "caviar", "Caviar", "meat seafood", "seafood", "Lux", 90.0, dietary_tags=("gluten_free",), allergens=("fish",)
    ),
    Product(
        "oat", "Oat Drink", "dairy eggs", "milk", "Oaty", 1.8, dietary_tags=("vegan", "vegetarian", "lactose_free")
    ),
    Product(
        "bread",
        "Sourdough",
        "bakery",
        "bread",
        "Baker",
        3.5,
        dietary_tags=("vegan", "vegetarian"),
        allergens=("gluten",),
    ),
]
IDS = [p.product_id for p in PRODUCTS]
N = len(PRODUCTS)
K = 4


def _neighbours(pairs: dict[str, list[tuple[str, float]]]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((N, K), -1, dtype=np.int32)
    score = np.zeros((N, K), dtype=np.float32)
    for source, targets in pairs.items():
        for j, (target, value) in enumerate(sorted(targets, key=lambda t: -t[1])):
            idx[IDS.index(source), j] = IDS.index(target)
            score[IDS.index(source), j] = value
    return idx, score


def make_hand_made_model(version: str = "v-test-1") -> LoadedModel:
    """The tiny shop's model, built as `engine.artifact` would load it."""
    cooc_idx, cooc_sim = _neighbours(
        {
            "pasta": [("sauce", 0.9), ("bread", 0.4)],
            "milk": [("bread", 0.6), ("oat", 0.3), ("steak", 0.5)],
            "sauce": [("pasta", 0.9)],
            "bread": [("milk", 0.6), ("steak", 0.5), ("peanut", 0.4), ("caviar", 0.4)],
        }
    )
    fbt_idx, fbt_score = _neighbours(
        {
            "pasta": [("sauce", 5.0), ("steak", 1.0), ("peanut", 0.5)],
            "sauce": [("pasta", 5.0)],
        }
    )
    content_idx, content_sim = _neighbours(
        {
            "milk": [("oat", 0.8)],
            "pasta": [("bread", 0.3)],
            "oat": [("milk", 0.8)],
        }
    )
    seasonal_lift = np.ones((N, 53), dtype=np.float32)
    seasonal_lift[IDS.index("caviar"), 46:52] = 4.0  # before Christmas
    seasonal_lift[IDS.index("sauce"), 46:52] = 1.6
    return LoadedModel(
        version=version,
        manifest={"parameters": {"trending_window_days": 14}},
        item_ids=list(IDS),
        cooc_idx=cooc_idx,
        cooc_sim=cooc_sim,
        fbt_idx=fbt_idx,
        fbt_score=fbt_score,
        content_idx=content_idx,
        content_sim=content_sim,
        popularity=np.array([0.9, 0.7, 1.0, 0.6, 0.5, 0.1, 0.4, 0.8], dtype=np.float32),
        trending=np.array([0.0, 0.1, 0.0, 0.0, 1.5, 0.0, 2.0, 0.0], dtype=np.float32),
        population_cycle_days=np.array([14, 14, 7, 21, 30, np.nan, 7, 5], dtype=np.float32),
        repurchase_rate=np.array([0.5, 0.5, 0.9, 0.3, 0.4, 0.05, 0.8, 0.9], dtype=np.float32),
        seasonal_lift=seasonal_lift,
        # Two tastes: the pasta-and-bread kitchen, and the milk-and-meat one.
        taste_factors=np.array(
            [[0.6, 0.0], [0.5, 0.0], [0.0, 0.6], [0.0, 0.5], [0.3, 0.0], [0.0, 0.2], [0.1, 0.4], [0.5, 0.1]],
            dtype=np.float32,
        ),
    )


class FixedModels:
    """A `ModelHolder` stand-in serving whatever model the test sets."""

    def __init__(self, model: LoadedModel | None) -> None:
        self.model = model

    def reload_if_changed(self, *, force: bool = False) -> None:
        return None


class Shop:
    """The tiny supermarket in a real store, with helpers to add shoppers and their trips."""

    now = NOW
    products = {p.product_id: p for p in PRODUCTS}

    def __init__(self, store: Store) -> None:
        self.store = store

    def customer(self, customer_id: str, **profile: object) -> Customer:
        customer = Customer(customer_id, NOW - timedelta(days=400), NOW - timedelta(days=400), **profile)  # type: ignore[arg-type]
        self.store.create_customer(customer)
        return customer

    def trips(self, customer_id: str, trips: list[tuple[int, list[str]]]) -> None:
        """Trips as (days before NOW, products)."""
        lines = []
        for days_ago, products in trips:
            at = NOW - timedelta(days=days_ago)
            order = f"{customer_id}-{days_ago}"
            lines += [Purchase(customer_id, order, p, 1, self.products[p].price, at) for p in products]
        self.store.add_purchases(lines)

    def weekly_milk_shopper(self, customer_id: str = "alice", **profile: object) -> None:
        """Milk every 7 days for 7 weeks (last 7 days before NOW); pasta every other trip."""
        self.customer(customer_id, **profile)
        self.trips(
            customer_id, [(d, ["milk", "pasta"] if d % 14 == 7 else ["milk"]) for d in (49, 42, 35, 28, 21, 14, 7)]
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'omnix.db'}")
    s.upsert_products(PRODUCTS)
    yield s
    s.close()


@pytest.fixture
def shop(store: Store) -> Shop:
    return Shop(store)


@pytest.fixture
def hand_made_model() -> LoadedModel:
    return make_hand_made_model()


@pytest.fixture
def fixed_models() -> type[FixedModels]:
    return FixedModels


@pytest.fixture(scope="module")
def local_s3() -> Iterator[LocalS3]:
    """A local S3 server for the test module."""
    with running_local_s3() as s3:
        yield s3


@pytest.fixture
def bucket(local_s3: LocalS3) -> str:
    """An empty bucket of the test's own."""
    return local_s3.new_bucket()
