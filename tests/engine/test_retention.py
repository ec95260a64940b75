"""Model retention: old versions go, records and artifacts together, on disk and in S3; the
active version, its rollback target and every version a running experiment serves stay; a
prune cut short leaves no record naming a missing artifact, and the next prune finishes."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from local_s3 import LocalS3

from omnix_recs import cli
from omnix_recs.config import Settings
from omnix_recs.engine import artifact_store, registry
from omnix_recs.engine.artifact_store import ArtifactReader
from omnix_recs.engine.build import BuildParameters
from omnix_recs.engine.train import train_model
from omnix_recs.errors import InvalidArgumentError, UnavailableError
from omnix_recs.experiments.registry import ExperimentDraft, create_experiment
from omnix_recs.s3 import S3Location, s3_client
from omnix_recs.store.base import ExperimentArm, ModelRecord, Store

PARAMS = BuildParameters(neighbours=4, basket_min_support=1)
PREFIX = "omnix/models"


@pytest.fixture
def shoppers(shop: Any) -> Any:
    shop.weekly_milk_shopper("alice")
    shop.customer("bob")
    shop.trips("bob", [(30, ["pasta", "sauce", "bread"]), (16, ["pasta", "sauce"]), (2, ["milk", "bread"])])
    return shop


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"), model_cache_dir=str(tmp_path / "cache"), model_keep=3)


def retrain(store: Store, settings: Settings) -> ModelRecord:
    """What `omnix train` and RetrainModel do: train, then prune."""
    record = train_model(store, settings, parameters=PARAMS, tune=False)
    registry.prune_after_training(store, settings)
    return record


def versions(store: Store) -> list[str]:
    return [r.version for r in store.list_models()]


def on_disk(settings: Settings) -> list[str]:
    return sorted(p.name for p in Path(settings.model_dir).iterdir())


def assert_every_record_loads(store: Store, settings: Settings) -> None:
    reader = ArtifactReader.from_settings(settings)
    for record in store.list_models():
        reader.open(record.artifact_uri)


def test_repeated_retraining_keeps_the_newest_versions_only(shoppers: Any, settings: Settings) -> None:
    trained = [retrain(shoppers.store, settings).version for _ in range(7)]
    assert versions(shoppers.store) == trained[::-1][:3]
    assert on_disk(settings) == sorted(trained[-3:])
    assert shoppers.store.active_model().version == trained[-1]  # type: ignore[union-attr]
    assert_every_record_loads(shoppers.store, settings)


def test_active_rollback_target_and_running_experiment_versions_survive(shoppers: Any, settings: Settings) -> None:
    store = shoppers.store
    v = [train_model(store, settings, parameters=PARAMS, tune=False).version for _ in range(8)]
    registry.activate(store, v[2])  # serving an older version: v[1] is where a rollback goes
    arms = [ExperimentArm("control", 50), ExperimentArm("older", 50, model_version=v[4])]
    create_experiment(store, ExperimentDraft("running", "personalized", arms), datetime.now(UTC))
    stopped = [ExperimentArm("control", 50), ExperimentArm("old", 50, model_version=v[5])]
    create_experiment(store, ExperimentDraft("stopped", "recommendations", stopped), datetime.now(UTC))
    store.stop_experiment("stopped", datetime.now(UTC))

    pruned = registry.prune_versions(store, settings, keep=1)

    assert pruned.kept == {
        v[7]: "newest",
        v[4]: "experiment running",
        v[2]: "active",
        v[1]: "rollback target",
    }
    assert sorted(pruned.deleted) == sorted([v[0], v[3], v[5], v[6]]) and pruned.failed == {}
    assert versions(store) == [v[7], v[4], v[2], v[1]]
    assert on_disk(settings) == sorted([v[1], v[2], v[4], v[7]])
    assert registry.rollback(store, settings=settings).version == v[1]
    assert_every_record_loads(store, settings)


@pytest.mark.parametrize("keep", [0, -2])
def test_keeping_fewer_than_one_version_is_refused_and_deletes_nothing(
    shoppers: Any, settings: Settings, keep: int
) -> None:
    trained = [train_model(shoppers.store, settings, parameters=PARAMS, tune=False).version for _ in range(2)]
    with pytest.raises(InvalidArgumentError, match="keep: must be at least 1"):
        registry.prune_versions(shoppers.store, settings, keep=keep)
    assert versions(shoppers.store) == trained[::-1]
    assert on_disk(settings) == sorted(trained)


def test_a_bad_model_keep_setting_names_the_variable() -> None:
    with pytest.raises(InvalidArgumentError, match="OMNIX_MODEL_KEEP"):
        Settings.from_env({"OMNIX_MODEL_KEEP": "0"})
    assert Settings.from_env({"OMNIX_MODEL_KEEP": "12"}).model_keep == 12
    assert Settings.from_env({}).model_keep == 5


def test_a_prune_whose_artifact_deletion_fails_leaves_no_record_without_its_artifact(
    shoppers: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = shoppers.store
    v = [train_model(store, settings, parameters=PARAMS, tune=False).version for _ in range(4)]
    real_remove = artifact_store._remove_dir

    def failing_remove(path: Path) -> None:
        if path.name == v[1]:
            raise PermissionError(13, "Permission denied", str(path))
        real_remove(path)

    monkeypatch.setattr(artifact_store, "_remove_dir", failing_remove)
    pruned = registry.prune_versions(store, settings, keep=1)  # v[2] stays as the rollback target

    assert pruned.deleted == [v[0]] and list(pruned.failed) == [v[1]]
    assert "Permission denied" in pruned.failed[v[1]]
    assert versions(store) == [v[3], v[2]]  # v[1]'s record went first: nothing names a missing artifact
    assert on_disk(settings) == sorted([v[1], v[2], v[3]])
    assert_every_record_loads(store, settings)

    monkeypatch.setattr(artifact_store, "_remove_dir", real_remove)
    assert registry.prune_versions(store, settings, keep=1).deleted == []  # younger than the grace period
    monkeypatch.setattr(registry, "ORPHAN_GRACE_S", 0.0)
    assert registry.prune_versions(store, settings, keep=1).deleted == [v[1]]
    assert on_disk(settings) == sorted([v[2], v[3]])


def test_a_store_trained_with_another_model_directory_leaves_the_first_ones_artifacts(
    shoppers: Any, settings: Settings, tmp_path: Path
) -> None:
    """A copy of a store, trained with a model directory of its own, prunes the records it copied
    but never the original's artifacts they name."""
    store = shoppers.store
    first = [train_model(store, settings, parameters=PARAMS, tune=False).version for _ in range(3)]
    elsewhere = dataclasses.replace(settings, model_dir=str(tmp_path / "copy-models"))
    newer = [train_model(store, elsewhere, parameters=PARAMS, tune=False).version for _ in range(2)]
    pruned = registry.prune_versions(store, elsewhere, keep=1)  # newer[0] stays as the rollback target

    assert sorted(pruned.failed) == sorted(first) and pruned.deleted == []
    assert all("outside OMNIX_MODEL_DIR: left alone" in why for why in pruned.failed.values())
    assert versions(store) == newer[::-1]
    assert on_disk(settings) == sorted(first)  # the first directory is untouched
    assert on_disk(elsewhere) == sorted(newer)


def test_a_prune_cut_short_by_the_store_deletes_nothing_it_did_not_unrecord(
    shoppers: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = shoppers.store
    v = [train_model(store, settings, parameters=PARAMS, tune=False).version for _ in range(5)]
    real_delete = store.delete_model
    calls: list[str] = []

    def failing_delete(version: str) -> None:
        calls.append(version)
        if len(calls) == 2:
            raise UnavailableError("the store is unreachable")
        real_delete(version)

    monkeypatch.setattr(store, "delete_model", failing_delete)
    with pytest.raises(UnavailableError):
        registry.prune_versions(store, settings, keep=1)
    assert versions(store) == [v[4], v[3], v[2], v[1]]
    assert on_disk(settings) == sorted(v[1:])
    assert_every_record_loads(store, settings)

    assert registry.prune_after_training(store, settings) is not None  # the next one finishes the job
    assert versions(store) == [v[4], v[3], v[2]]


def test_a_leftover_of_a_crashed_training_is_swept_once_old(shoppers: Any, settings: Settings) -> None:
    retrain(shoppers.store, settings)
    staging = Path(settings.model_dir) / ".20260101T000000Z-abcd.x1y2z3"
    staging.mkdir()
    (staging / "item_ids.json").write_text("[]")
    unrelated = Path(settings.model_dir) / "notes"
    unrelated.mkdir()
    assert registry.prune_versions(shoppers.store, settings).deleted == []  # maybe still being written
    os.utime(staging, (0, 0))
    assert registry.prune_versions(shoppers.store, settings).deleted == ["20260101T000000Z-abcd"]
    assert not staging.exists() and unrelated.is_dir()


def test_pruning_deletes_the_versions_objects_from_s3_and_the_cached_copies(
    shoppers: Any, local_s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    settings = Settings(
        model_dir=local_s3.url(bucket, PREFIX), model_cache_dir=str(tmp_path / "trainer-cache"), model_keep=2
    )
    trained = [retrain(shoppers.store, settings).version for _ in range(4)]
    assert versions(shoppers.store) == trained[::-1][:2]
    assert sorted({key.split("/")[2] for key in local_s3.keys(bucket)}) == sorted(trained[-2:])
    assert not {p.name for p in Path(settings.model_cache_dir).iterdir()} & set(trained[:2])
    assert_every_record_loads(shoppers.store, settings)


def test_omnix_models_prune(
    shoppers: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = [train_model(shoppers.store, settings, parameters=PARAMS, tune=False).version for _ in range(3)]
    monkeypatch.setenv("OMNIX_MODEL_DIR", settings.model_dir)
    monkeypatch.setenv("OMNIX_MODEL_CACHE_DIR", settings.model_cache_dir)
    store_url = f"sqlite:///{shoppers.store.path}"
    assert cli.main(["models", "--store", store_url, "prune", "--keep", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "kept": {trained[2]: "newest, active", trained[1]: "rollback target"},
        "deleted": [trained[0]],
        "failed": {},
    }
    assert cli.main(["models", "--store", store_url, "prune", "--keep", "0"]) != 0
    assert "keep" in capsys.readouterr().err


def test_an_s3_deletion_that_fails_is_reported_and_finished_by_the_next_prune(
    shoppers: Any, local_s3: LocalS3, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        model_dir=local_s3.url(bucket, PREFIX), model_cache_dir=str(tmp_path / "trainer-cache"), model_keep=1
    )
    v = [train_model(shoppers.store, settings, parameters=PARAMS, tune=False).version for _ in range(3)]
    events = s3_client(S3Location.parse(settings.model_dir)).meta.events

    def refuse(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=local_s3.endpoint)

    events.register("before-call.s3.DeleteObjects", refuse)
    try:
        pruned = registry.prune_versions(shoppers.store, settings)
    finally:
        events.unregister("before-call.s3.DeleteObjects", refuse)

    assert pruned.deleted == [] and list(pruned.failed) == [v[0]]
    assert "could not delete the version" in pruned.failed[v[0]]
    assert versions(shoppers.store) == [v[2], v[1]]  # v[1] is the rollback target
    assert_every_record_loads(shoppers.store, settings)
    monkeypatch.setattr(registry, "ORPHAN_GRACE_S", 0.0)
    assert registry.prune_versions(shoppers.store, settings).deleted == [v[0]]
    assert sorted({key.split("/")[2] for key in local_s3.keys(bucket)}) == sorted(v[1:])
