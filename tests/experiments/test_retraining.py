"""Scheduled retraining: when a build is due, and what each kind of build leaves serving."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnix_recs.config import Settings, parse_interval
from omnix_recs.engine.registry import ActivationRefusedError
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.retraining import RetrainingSchedule
from omnix_recs.store.base import ModelRecord, Store
from omnix_recs.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86_400.0), ("30m", 1_800.0), ("7d", 604_800.0), ("3600s", 3_600.0), ("90", 90.0)]
)
def test_intervals(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "24x", "-1h", "10s", "1.5.2h"])
def test_bad_intervals_name_the_flag(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="--retrain-every"):
        parse_interval(text)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore.temporary()
    yield s
    s.close()


def record(version: str, age: timedelta, active: bool = False) -> ModelRecord:
    return ModelRecord(version, NOW - age, f"/models/{version}", {}, active=active)


class Builds:
    """Stands in for the training pipeline's outcome (the real one is below): saves a version."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.calls = 0

    def __call__(self, store: Store, settings: Settings) -> ModelRecord:
        self.calls += 1
        if self.outcome == "failed":
            raise RuntimeError("disk full")
        built = record(f"v{self.calls + 10}", timedelta(0), active=self.outcome == "activated")
        store.save_model(built)
        if self.outcome == "refused":
            raise ActivationRefusedError(built, "validation recall below personal top frequency")
        return built


def schedule(store: Store, builds: Builds, now: list[datetime]) -> RetrainingSchedule:
    return RetrainingSchedule(store, Settings(), 86_400, train=builds, clock=lambda: now[0])


def test_a_build_is_due_when_the_newest_version_is_older_than_the_interval(store: SqliteStore) -> None:
    store.save_model(record("v1", timedelta(hours=30), active=True))
    store.save_model(record("v2", timedelta(hours=2)))  # a refused build two hours ago
    now = [NOW]
    builds = Builds("activated")
    s = schedule(store, builds, now)
    assert s.run_once() is None and builds.calls == 0
    now[0] = NOW + timedelta(hours=22)
    assert s.run_once() == "activated"
    assert store.active_model().version == "v11"  # type: ignore[union-attr]
    assert s.run_once() is None  # the new version resets the clock


def test_a_refused_build_leaves_the_active_version_and_waits_an_interval(store: SqliteStore) -> None:
    store.save_model(record("v1", timedelta(days=2), active=True))
    now = [NOW]
    builds = Builds("refused")
    s = schedule(store, builds, now)
    assert s.run_once() == "refused"
    assert store.active_model().version == "v1"  # type: ignore[union-attr]
    assert s.run_once() is None and builds.calls == 1


def test_a_failed_build_is_retried_after_an_hour(store: SqliteStore) -> None:
    store.save_model(record("v1", timedelta(days=2), active=True))
    now = [NOW]
    builds = Builds("failed")
    s = schedule(store, builds, now)
    assert s.run_once() == "failed"
    assert s.run_once() is None
    now[0] = NOW + timedelta(minutes=61)
    assert s.run_once() == "failed"
    assert builds.calls == 2 and s.builds == ["failed", "failed"]
    assert store.active_model().version == "v1"  # type: ignore[union-attr]


def test_the_real_pipeline_builds_and_activates(tmp_path: Path) -> None:
    from test_experiments_e2e import seed_and_train

    settings = Settings(model_dir=str(tmp_path / "models"))
    store = SqliteStore.temporary()
    try:
        seed_and_train(settings)(store)  # seeds shoppers and trains a first version
        first = store.active_model()
        assert first is not None
        later = [datetime.now(UTC) + timedelta(days=2)]
        s = RetrainingSchedule(store, settings, 86_400, clock=lambda: later[0])
        assert s.run_once() in ("activated", "refused")
        assert len(store.list_models()) == 2
        assert store.active_model() is not None
    finally:
        store.close()
