"""Retention of served lists (`OMNIX_SERVED_LIST_RETENTION_DAYS`): the stores' promise, the
setting, and the pruning job (omnix_recs/served_retention.py).

The store tests run against every implementation opened with a retention (`retained`: SQLite,
DynamoDB on moto, DynamoDB on dynoxide); lists are served relative to the real clock, since a
store judges "past the retention" by it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from moto_server import LocalDynamoDB

from omnix_recs import served_retention
from omnix_recs.config import (
    DEFAULT_SERVED_LIST_RETENTION_DAYS,
    MIN_SERVED_LIST_RETENTION_DAYS,
    Settings,
)
from omnix_recs.domain.models import Feedback, FeedbackEvent, RecommendedItem, ServedRecommendation
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from omnix_recs.experiments.attribution import DEFAULT_WINDOW
from omnix_recs.experiments.registry import MAX_ATTRIBUTION_DAYS
from omnix_recs.experiments.reports import DEFAULT_PERIOD
from omnix_recs.leases import new_holder
from omnix_recs.store import open_store
from omnix_recs.store.base import Store
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.tables import FEEDBACK, RECOMMENDATION_IDS, RECOMMENDATIONS, table_definition
from omnix_recs.store.sqlite import SqliteStore
from omnix_recs.store.sqlite.schema import MIGRATIONS, schema_version
from omnix_recs.store.sqlite.store import OLDEST_SERVED_LISTS

RETENTION = timedelta(days=60)
NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def served(recommendation_id: str, customer_id: str, when: datetime) -> ServedRecommendation:
    return ServedRecommendation(
        recommendation_id, customer_id, when, "balanced", "v1", (RecommendedItem("p1", 0.9, 0.5, ("because",)),)
    )


def clicked(recommendation_id: str, customer_id: str, when: datetime) -> Feedback:
    return Feedback(recommendation_id, customer_id, "p1", FeedbackEvent.CLICKED, when + timedelta(minutes=1))


def _local(request: pytest.FixtureRequest, kind: str) -> LocalDynamoDB:
    return request.getfixturevalue("local_dynamodb" if kind == "dynamodb" else "local_dynoxide")  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "dynamodb", "dynoxide"])
def retained(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind opened with a 60-day retention."""
    store: Store
    if request.param == "sqlite":
        store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}", served_list_retention=RETENTION)
    else:
        local = _local(request, request.param)
        dynamo = DynamoStore.from_url(local.url(), session=local.session, served_list_retention=RETENTION)
        dynamo.create_tables()
        store = dynamo
    try:
        yield store
    finally:
        store.close()


# --- the store contract --------------------------------------------------------------------------


def test_reads_never_return_lists_past_the_retention(retained: Store) -> None:
    old, fresh, recent = served("old", "c1", days_ago(61)), served("fresh", "c1", days_ago(1)), served("r", "c2", NOW)
    retained.save_recommendations([old, fresh])
    retained.save_recommendation(recent)
    retained.save_recommendation(served("old-single", "c2", days_ago(70)))

    with pytest.raises(NotFoundError):
        retained.get_recommendation("old")
    with pytest.raises(NotFoundError):
        retained.get_recommendation("old-single")
    assert retained.get_recommendation("fresh") == fresh
    assert retained.list_recommendations("c1") == [fresh]
    assert retained.list_recommendations("c2", limit=5) == [recent]
    assert [s.recommendation_id for s in retained.served_lists_between(days_ago(59), NOW + timedelta(1))] == [
        "fresh",
        "r",
    ]


@pytest.mark.parametrize("experiment_id", ["", "e1"])
def test_a_period_reaching_past_the_retention_is_refused_naming_the_setting(
    retained: Store, experiment_id: str
) -> None:
    with pytest.raises(FailedPreconditionError, match="OMNIX_SERVED_LIST_RETENTION_DAYS") as refused:
        retained.served_lists_between(days_ago(61), NOW, experiment_id)
    assert "60 days" in str(refused.value)


def test_a_store_without_retention_keeps_every_list(store: Store) -> None:
    assert store.served_list_retention is None
    old = served("old", "c1", days_ago(400))
    store.save_recommendation(old)
    assert store.get_recommendation("old") == old
    assert store.served_lists_between(days_ago(401), NOW) == [old]
    assert store.prune_served_lists(days_ago(1_000)) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"batch_rows": 0}, "batch_rows"), ({"before": datetime(2026, 1, 1)}, "before")],  # noqa: DTZ001
)
def test_prune_refuses_bad_arguments_naming_them(retained: Store, kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"before": days_ago(60), "batch_rows": 10, **kwargs}
    with pytest.raises(InvalidArgumentError) as refused:
        retained.prune_served_lists(**arguments)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_erasure_still_removes_every_list_of_the_customer(retained: Store) -> None:
    retained.save_recommendations([served("old", "gone", days_ago(61)), served("fresh", "gone", days_ago(1))])
    retained.add_feedback(clicked("fresh", "gone", days_ago(1)))
    retained.save_recommendation(served("other", "stays", days_ago(1)))

    erased = retained.delete_customer("gone")

    assert erased.counts["recommendations"] == 2 and erased.counts["feedback"] == 1
    assert retained.list_recommendations("gone") == [] and retained.list_feedback("fresh") == []
    assert [s.recommendation_id for s in retained.served_lists_between(days_ago(59), NOW)] == ["other"]


# --- SQLite: pruned in bounded batches through the time index -------------------------------------


def _sqlite(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_sqlite_prunes_the_oldest_lists_and_their_feedback_in_bounded_batches(tmp_path: Path) -> None:
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}", served_list_retention=RETENTION)
    try:
        old = [served(f"old{n:02d}", f"c{n % 4}", days_ago(200 - n)) for n in range(25)]
        fresh = [served(f"fresh{n}", f"c{n}", days_ago(59 - n)) for n in range(5)]
        store.save_recommendations(old + fresh)
        for s in old + fresh:
            store.add_feedback(clicked(s.recommendation_id, s.customer_id, s.generated_at))

        deleted = []
        with _sqlite(store.path) as raw:
            while True:
                deleted.append(store.prune_served_lists(days_ago(60), batch_rows=10))
                if len(deleted) == 1:  # the first batch took the ten oldest
                    left = {r[0] for r in raw.execute("SELECT recommendation_id FROM recommendations")}
                    assert left == {s.recommendation_id for s in old[10:] + fresh}
                if deleted[-1] < 10:
                    break
            assert deleted == [10, 10, 5]
            assert store.prune_served_lists(days_ago(60), batch_rows=10) == 0  # idempotent
            assert {r[0] for r in raw.execute("SELECT recommendation_id FROM recommendations")} == {
                s.recommendation_id for s in fresh
            }
            assert {r[0] for r in raw.execute("SELECT recommendation_id FROM feedback")} == {
                s.recommendation_id for s in fresh
            }
    finally:
        store.close()


def test_sqlite_prune_reads_the_time_index_not_the_table(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "omnix.db").close()
    with _sqlite(tmp_path / "omnix.db") as raw:
        plan = " ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {OLDEST_SERVED_LISTS}", (0, 10)))
    assert "USING INDEX recommendations_by_time" in plan or "USING COVERING INDEX recommendations_by_time" in plan
    assert "TEMP B-TREE" not in plan  # no sort of the matching rows either


def test_an_existing_sqlite_store_is_pruned_without_a_migration(tmp_path: Path) -> None:
    """A store written before retention existed (opened without one) already holds the time
    index the prune reads (migration 3): reopening it with a retention changes no schema."""
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    before = SqliteStore.from_url(url)
    before.save_recommendations([served("old", "c1", days_ago(400)), served("fresh", "c1", days_ago(2))])
    before.close()

    store = open_store(url, served_list_retention=RETENTION)
    try:
        assert isinstance(store, SqliteStore)
        with _sqlite(store.path) as raw:
            assert schema_version(raw) == MIGRATIONS[-1].version
        assert [s.recommendation_id for s in store.list_recommendations("c1")] == ["fresh"]
        outcome = served_retention.prune_served_lists(store, RETENTION)
        assert (outcome.deleted, outcome.finished) == (1, True)
    finally:
        store.close()
    reopened = SqliteStore.from_url(url)  # without retention: what is left in the file
    try:
        assert [s.recommendation_id for s in reopened.list_recommendations("c1")] == ["fresh"]
    finally:
        reopened.close()


# --- DynamoDB: TTL on the items and the tables ----------------------------------------------------


@pytest.mark.parametrize("kind", ["dynamodb", "dynoxide"])
def test_dynamodb_items_carry_their_expiry_and_the_tables_expire_by_it(
    request: pytest.FixtureRequest, kind: str
) -> None:
    local = _local(request, kind)
    store = DynamoStore.from_url(local.url(), session=local.session, served_list_retention=RETENTION)
    try:
        store.create_tables()
        when = days_ago(3)
        store.save_recommendations([served("batch", "c1", when)])
        store.save_recommendation(served("single", "c1", when))
        store.add_feedback(clicked("single", "c1", when))
        expected = math.ceil((when + RETENTION).timestamp())

        for spec in (RECOMMENDATIONS, RECOMMENDATION_IDS, FEEDBACK):
            name = store.table_names[spec.table]
            ttl = store.db.call("describe_time_to_live", TableName=name)["TimeToLiveDescription"]
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")
            items = store.db.call("scan", TableName=name)["Items"]
            assert items and {int(item["expiresAt"]["N"]) for item in items} <= {
                expected,
                math.ceil((when + timedelta(minutes=1) + RETENTION).timestamp()),  # the feedback's own time
            }
        assert store.prune_served_lists(NOW) == 0  # TTL deletes them; nothing to do here
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["dynamodb", "dynoxide"])
def test_dynamodb_reads_skip_items_whose_ttl_passed_before_dynamodb_deleted_them(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """Written under a shorter retention than the store now has: expired by its own TTL."""
    local = _local(request, kind)
    url = local.url()
    short = DynamoStore.from_url(url, session=local.session, served_list_retention=timedelta(days=1))
    short.create_tables()
    short.save_recommendations([served("expired", "c1", days_ago(2)), served("kept", "c1", NOW)])
    short.close()

    store = DynamoStore.from_url(url, session=local.session, served_list_retention=RETENTION)
    try:
        assert [s.recommendation_id for s in store.list_recommendations("c1")] == ["kept"]
        with pytest.raises(NotFoundError):
            store.get_recommendation("expired")
        assert [s.recommendation_id for s in store.served_lists_between(days_ago(30), NOW + timedelta(1))] == ["kept"]
    finally:
        store.close()


def test_init_tables_turns_ttl_on_for_tables_made_before_it(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store(create_tables=False)
    try:
        name = store.table_names[RECOMMENDATIONS.table]
        store.db.call("create_table", **table_definition(RECOMMENDATIONS, name))  # as an older omnix made it

        created = store.create_tables()

        assert f"{name}/ttl:expiresAt" in created and name not in created
        ttl = store.db.call("describe_time_to_live", TableName=name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert store.create_tables() == []  # idempotent
    finally:
        store.close()


# --- the setting ----------------------------------------------------------------------------------


def test_the_retention_floor_covers_what_the_readers_read() -> None:
    """Reports read the default 30-day period plus the attribution window before it; an
    experiment attributes purchases up to 30 days after a list."""
    readers_need = DEFAULT_PERIOD + max(DEFAULT_WINDOW, timedelta(days=MAX_ATTRIBUTION_DAYS))
    assert timedelta(days=MIN_SERVED_LIST_RETENTION_DAYS) >= readers_need
    assert DEFAULT_SERVED_LIST_RETENTION_DAYS >= MIN_SERVED_LIST_RETENTION_DAYS


@pytest.mark.parametrize(
    ("raw", "days", "retention"),
    [
        (None, 90, timedelta(days=90)),
        ("60", 60, timedelta(days=60)),
        (" 365 ", 365, timedelta(days=365)),
        ("0", 0, None),
    ],
)
def test_retention_setting(raw: str | None, days: int, retention: timedelta | None) -> None:
    settings = Settings.from_env({} if raw is None else {"OMNIX_SERVED_LIST_RETENTION_DAYS": raw})
    assert (settings.served_list_retention_days, settings.served_list_retention) == (days, retention)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("30", "between 60 and 3660"),
        ("59", "between 60 and 3660"),
        ("-1", "between 60 and 3660"),
        ("99999", "between 60 and 3660"),
        ("90d", "whole number of days"),
        ("1.5", "whole number of days"),
    ],
)
def test_a_bad_retention_is_refused_naming_the_setting(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as refused:
        Settings.from_env({"OMNIX_SERVED_LIST_RETENTION_DAYS": raw})
    assert refused.value.field == "OMNIX_SERVED_LIST_RETENTION_DAYS"


def test_a_retention_from_the_toml_file_is_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "omnix.toml"
    config.write_text("served_list_retention_days = 120\n")
    assert Settings.from_env({}, toml_path=config).served_list_retention == timedelta(days=120)
    config.write_text("served_list_retention_days = 7\n")
    with pytest.raises(InvalidArgumentError) as refused:
        Settings.from_env({}, toml_path=config)
    assert refused.value.field == "OMNIX_SERVED_LIST_RETENTION_DAYS"


# --- the pruning job ------------------------------------------------------------------------------


@pytest.fixture
def filled() -> Iterator[SqliteStore]:
    store = SqliteStore.temporary(served_list_retention=RETENTION)
    store.save_recommendations(
        [served(f"old{n}", "c1", days_ago(90 + n)) for n in range(7)] + [served("fresh", "c1", days_ago(1))]
    )
    try:
        yield store
    finally:
        store.close()


def _kept_ids(store: SqliteStore) -> set[str]:
    with _sqlite(store.path) as raw:
        return {r[0] for r in raw.execute("SELECT recommendation_id FROM recommendations")}


def test_a_pruning_run_deletes_every_old_list_batch_by_batch(filled: SqliteStore) -> None:
    pruning = served_retention.ServedListPruning(filled, RETENTION, batch_rows=3)
    outcome = pruning.run_once()
    assert outcome is not None and (outcome.deleted, outcome.batches, outcome.finished) == (7, 3, True)
    assert _kept_ids(filled) == {"fresh"}
    # The lease was given back: the next run takes it again (and finds nothing to do).
    again = pruning.run_once()
    assert again is not None and (again.deleted, again.finished) == (0, True)


def test_a_pruning_run_waits_for_another_process_holding_the_lease(filled: SqliteStore) -> None:
    other = new_holder()
    assert filled.acquire_lease(served_retention.PRUNE_LEASE, other, NOW, NOW + timedelta(minutes=1))
    pruning = served_retention.ServedListPruning(filled, RETENTION, clock=lambda: NOW)
    assert pruning.run_once() is None
    assert len(_kept_ids(filled)) == 8  # nothing deleted
    filled.release_lease(served_retention.PRUNE_LEASE, other)
    assert pruning.run_once() is not None and _kept_ids(filled) == {"fresh"}


def test_a_prune_stops_between_batches_when_asked(filled: SqliteStore) -> None:
    outcome = served_retention.prune_served_lists(filled, RETENTION, batch_rows=2, keep_going=lambda: False)
    assert (outcome.deleted, outcome.finished) == (2, False)
    assert len(_kept_ids(filled)) == 6


def test_no_schedule_when_lists_are_kept_forever() -> None:
    with served_retention.scheduled(Settings(served_list_retention_days=0)) as pruning:
        assert pruning is None


def test_the_prune_command_deletes_old_lists_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from omnix_recs.cli import main

    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    seeded = SqliteStore.from_url(url)
    seeded.save_recommendations([served("old", "c1", days_ago(100)), served("fresh", "c1", days_ago(1))])
    seeded.close()
    monkeypatch.setenv("OMNIX_SERVED_LIST_RETENTION_DAYS", "60")

    assert main(["prune-served-lists", "--store", url]) == 0

    assert '"deleted": 1' in capsys.readouterr().out
    kept = SqliteStore.from_url(url)
    try:
        assert [s.recommendation_id for s in kept.list_recommendations("c1")] == ["fresh"]
    finally:
        kept.close()
