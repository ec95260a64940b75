"""Fixtures of the scale tests: a real Redis, and a small trained store to serve from."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from scale_support import RedisServer

from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.store import open_store

SMALL_SHOP = dict(customers=80, products=200, days=120, seed=3)


@dataclass(frozen=True)
class TrainedShop:
    database: Path  # a SQLite store with the shop imported and a model active (copy it to write)
    model_dir: Path
    customers: list[str]
    products: list[str]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> TrainedShop:
    root = tmp_path_factory.mktemp("trained-shop")
    generate_instacart(root / "data", **SMALL_SHOP)  # type: ignore[arg-type]
    settings = Settings(store_url=f"sqlite:///{root / 'omnix.db'}", model_dir=str(root / "models"))
    store = open_store(settings.store_url)
    try:
        import_instacart(store, root / "data", as_of=date.today())
        # These tests are about serving across processes, not quality: the defaults are enough.
        train_model(store, settings, tune=False)
        customers = list(store.list_customer_ids(page_size=1000).items)
        products = [p.product_id for p in store.iter_products()]
    finally:
        store.close()
    return TrainedShop(root / "omnix.db", root / "models", customers, products)


@pytest.fixture
def shop_store_url(trained_shop: TrainedShop, tmp_path: Path) -> str:
    """A private copy of the trained shop's store, for tests that write."""
    copy = tmp_path / "omnix.db"
    shutil.copyfile(trained_shop.database, copy)
    return f"sqlite:///{copy}"
