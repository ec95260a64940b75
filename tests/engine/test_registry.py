"""Training, model versions and the ModelHolder hot swap (engine/train.py, engine/registry.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from omnix_recs.config import Settings
from omnix_recs.engine import registry
from omnix_recs.engine.build import BuildParameters
from omnix_recs.engine.registry import ModelHolder
from omnix_recs.engine.train import train_model
from omnix_recs.errors import FailedPreconditionError, NotFoundError
from omnix_recs.store.base import Store

PARAMS = BuildParameters(neighbours=4, basket_min_support=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"))


@pytest.fixture
def trained_shop(shop: Any) -> Any:
    """The tiny supermarket of conftest.py with two shoppers' history."""
    shop.weekly_milk_shopper("alice")
    shop.customer("bob")
    shop.trips("bob", [(30, ["pasta", "sauce", "bread"]), (16, ["pasta", "sauce"]), (2, ["milk", "bread"])])
    return shop


def train(store: Store, settings: Settings, **kwargs: object) -> str:
    return train_model(store, settings, parameters=PARAMS, **kwargs).version  # type: ignore[arg-type]


def test_train_saves_and_activates(trained_shop: Any, settings: Settings) -> None:
    record = train_model(trained_shop.store, settings, parameters=PARAMS)
    assert record.active and trained_shop.store.active_model() == record
    assert Path(record.artifact_uri).is_absolute() and (Path(record.artifact_uri) / "manifest.json").exists()
    assert record.metrics["order_lines"] == 18 and record.metrics["items"] == 8
    assert record.metrics["build_seconds"] > 0 and 0 < record.metrics["cooc_coverage"] <= 1
    manifest = json.loads((Path(record.artifact_uri) / "manifest.json").read_text())
    assert manifest["metrics"] == record.metrics and manifest["version"] == record.version


def test_train_without_activating(trained_shop: Any, settings: Settings) -> None:
    first = train(trained_shop.store, settings)
    second = train_model(trained_shop.store, settings, parameters=PARAMS, activate=False)
    assert not second.active and trained_shop.store.active_model().version == first  # type: ignore[union-attr]


def test_list_activate_and_roll_back(trained_shop: Any, settings: Settings) -> None:
    store = trained_shop.store
    v1, v2, v3 = (train(store, settings) for _ in range(3))
    assert [r.version for r in registry.list_versions(store)] == [v3, v2, v1]
    assert registry.rollback(store).version == v2
    assert registry.rollback(store).version == v1
    with pytest.raises(FailedPreconditionError, match="oldest version"):
        registry.rollback(store)
    assert registry.activate(store, v3).active
    assert store.active_model().version == v3  # type: ignore[union-attr]


def test_activate_refuses_unknown_and_broken_versions(trained_shop: Any, settings: Settings) -> None:
    store = trained_shop.store
    good = train(store, settings)
    broken = train(store, settings)
    registry.activate(store, good)
    with pytest.raises(NotFoundError):
        registry.activate(store, "no-such-version")
    (Path(next(r for r in store.list_models() if r.version == broken).artifact_uri) / "popularity.npy").unlink()
    with pytest.raises(FailedPreconditionError, match=f"model {broken} cannot be activated: .*popularity.npy: missing"):
        registry.activate(store, broken)
    assert store.active_model().version == good  # type: ignore[union-attr]


def test_rollback_needs_an_active_model(store: Store) -> None:
    with pytest.raises(FailedPreconditionError, match="no model is active"):
        registry.rollback(store)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_holder_swaps_in_a_newly_activated_version(trained_shop: Any, settings: Settings) -> None:
    store, clock = trained_shop.store, Clock()
    holder = ModelHolder(store, check_every_s=5.0, clock=clock)
    assert holder.reload_if_changed() is False and holder.model is None
    with pytest.raises(FailedPreconditionError, match="omnix train"):
        holder.require()

    v1 = train(store, settings)
    clock.now = 1.0
    assert holder.reload_if_changed() is False  # checked less than 5 s ago
    clock.now = 6.0
    assert holder.reload_if_changed() is True
    first = holder.require()
    assert first.version == v1 and first.item_ids == sorted(trained_shop.products)

    v2 = train(store, settings)
    assert holder.reload_if_changed(force=True) is True and holder.model.version == v2  # type: ignore[union-attr]
    assert first.popularity.shape == (8,)  # a request still holding the old model keeps working
    assert holder.reload_if_changed(force=True) is False  # nothing changed
    registry.rollback(store)
    assert holder.reload_if_changed(force=True) is True and holder.model.version == v1  # type: ignore[union-attr]


def test_holder_keeps_serving_when_the_active_artifact_is_broken(
    trained_shop: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    store = trained_shop.store
    v1 = train(store, settings)
    holder = ModelHolder(store, check_every_s=0.0)
    holder.reload_if_changed()
    record = train_model(store, settings, parameters=PARAMS, activate=False)
    (Path(record.artifact_uri) / "manifest.json").write_text("{")
    store.activate_model(record.version)  # bypassing registry.activate's check, as a bad deploy would
    assert holder.reload_if_changed() is False and holder.model.version == v1  # type: ignore[union-attr]
    assert holder.reload_if_changed() is False
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "cannot be loaded" in r.message)
    ) == 1  # logged once, not on every check


def test_training_writes_under_the_configured_directory(trained_shop: Any, settings: Settings, tmp_path: Path) -> None:
    other = replace(settings, model_dir=str(tmp_path / "elsewhere"))
    record = train_model(trained_shop.store, other, parameters=PARAMS)
    assert Path(record.artifact_uri).parent == (tmp_path / "elsewhere").resolve()
