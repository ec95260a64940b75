"""Experiments declared independent: orthogonal assignment, the surface rules, per-experiment results."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnix_recs.domain.models import Feedback, FeedbackEvent, Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.errors import FailedPreconditionError
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign
from omnix_recs.experiments.registry import running_by_surface
from omnix_recs.experiments.results import ExperimentData, compute_results
from omnix_recs.experiments.stats import chi_square_survival
from omnix_recs.store.base import ExperimentArm, ExperimentRecord
from omnix_recs.store.sqlite import SqliteStore
from omnix_recs.store.sqlite.schema import MIGRATIONS, apply_migrations

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def experiment(
    experiment_id: str, *arms: ExperimentArm, independent: bool = True, holdout: int = 0, created_days: int = 0
) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id,
        "recommendations",
        arms or (ExperimentArm("a", 50), ExperimentArm("b", 50)),
        f"{experiment_id}:salt",
        T0 + timedelta(days=created_days),
        holdout_percent=holdout,
        independent=independent,
    )


def arm_of(e: ExperimentRecord, customer_id: str) -> str:
    arm = assign(e, customer_id)
    return HOLDOUT_ARM if arm is None else arm.arm_id


def independence_p_value(pairs: Counter[tuple[str, str]]) -> float:
    """Pearson's chi-square test that the row and column of each pair are independent."""
    rows, columns = Counter[str](), Counter[str]()
    for (row, column), count in pairs.items():
        rows[row] += count
        columns[column] += count
    total = sum(pairs.values())
    statistic = sum(
        (pairs[(r, c)] - rows[r] * columns[c] / total) ** 2 / (rows[r] * columns[c] / total)
        for r in rows
        for c in columns
    )
    return chi_square_survival(statistic, (len(rows) - 1) * (len(columns) - 1))


def test_assignment_of_one_is_independent_of_the_other() -> None:
    """Simulated: the arm a customer gets in one experiment says nothing about the other."""
    first = experiment("strategy", ExperimentArm("x", 34), ExperimentArm("y", 33), ExperimentArm("z", 33), holdout=10)
    second = experiment("model", ExperimentArm("a", 50), ExperimentArm("b", 50))
    customers = [f"customer-{n}" for n in range(30_000)]
    pairs = Counter((arm_of(first, c), arm_of(second, c)) for c in customers)
    assert independence_p_value(pairs) > 0.001
    # Within every arm of the first, the second splits as planned.
    for row in ("x", "y", "z", HOLDOUT_ARM):
        in_row = pairs[(row, "a")] + pairs[(row, "b")]
        assert pairs[(row, "a")] / in_row == pytest.approx(0.5, abs=0.03)


def test_false_alarms_of_the_independence_check_stay_rare() -> None:
    """Across many pairs of experiments the check fires about as often as chance says."""
    customers = [f"c{n}" for n in range(2_000)]
    p_values = [
        independence_p_value(
            Counter((arm_of(experiment(f"p{k}"), c), arm_of(experiment(f"q{k}"), c)) for c in customers)
        )
        for k in range(100)
    ]
    assert sum(p < 0.05 for p in p_values) <= 12  # 5 expected; 12 is beyond 3 sigma


def test_each_surface_has_its_primary_first_and_no_shared_lever() -> None:
    primary = experiment(
        "primary",
        ExperimentArm("a", 50),
        ExperimentArm("b", 50, strategy="discover"),
        independent=False,
        created_days=2,
    )
    model = experiment("model", ExperimentArm("a", 50), ExperimentArm("b", 50, model_version="v1"), created_days=1)
    clash = experiment("clash", ExperimentArm("a", 50), ExperimentArm("b", 50, model_version="v2"), created_days=3)
    stopped = replace(experiment("stopped", independent=False), stopped_at=T0)
    by_surface = running_by_surface([clash, model, stopped, primary])
    assert [e.experiment_id for e in by_surface["recommendations"]] == ["primary", "model"]


def test_conflicts_name_the_field() -> None:
    primary = experiment("primary", independent=False, holdout=10)
    assert "holdout_percent" in (experiment("h", holdout=5).conflict_with([primary]) or "")
    assert "primary" in (experiment("second", independent=False).conflict_with([primary]) or "")
    assert experiment("free").conflict_with([primary]) is None
    model = experiment("m", ExperimentArm("a", 50), ExperimentArm("b", 50, model_version="v1"))
    other = experiment("o", ExperimentArm("a", 50, model_version="v2"), ExperimentArm("b", 50))
    assert (other.conflict_with([model]) or "").startswith("arms[0].model_version:")


def test_results_per_experiment_from_shared_lists() -> None:
    """Lists stamped with two experiments count for each, in each one's own arm."""
    first, second = experiment("first", independent=False), experiment("second")
    customers = [f"c{n}" for n in range(400)]
    lists, feedback, purchases = [], [], []
    for n, customer_id in enumerate(customers):
        at = T0 + timedelta(hours=1 + n % 24)
        served = ServedRecommendation(
            f"r{n}",
            customer_id,
            at,
            "balanced",
            "v1",
            (RecommendedItem("p1", 1.0, 0.5, ()),),
            "first",
            arm_of(first, customer_id),
            (("second", arm_of(second, customer_id)),),
        )
        lists.append(served)
        if n % 2:
            feedback.append(Feedback(f"r{n}", customer_id, "p1", FeedbackEvent.CLICKED, at + timedelta(minutes=1)))
            purchases.append(Purchase(customer_id, f"o{n}", "p1", 1, 4.0, at + timedelta(hours=1)))
    data = ExperimentData(lists, feedback, purchases)
    now = T0 + timedelta(days=2)
    for record in (first, second):
        results = compute_results(record, data, now)
        planned = Counter(arm_of(record, c) for c in customers)
        assert {a.arm_id: a.customers for a in results.arms} == dict(planned)
        bought = Counter(arm_of(record, customers[n]) for n in range(1, len(customers), 2))
        assert {a.arm_id: a.purchases for a in results.arms} == {arm: bought[arm] for arm in planned}
        assert sum(a.revenue for a in results.arms) == pytest.approx(4.0 * len(purchases))


def test_a_database_from_before_keeps_one_running_experiment_and_admits_independent_ones(tmp_path: Path) -> None:
    """Migration 4 replaces the one-per-surface index with one that leaves independent experiments out."""
    path = tmp_path / "omnix.db"
    body = experiment("old", independent=False).body()
    del body["independent"]  # written before the flag existed
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        apply_migrations(conn, MIGRATIONS[:3])
        conn.execute(
            "INSERT INTO experiments (experiment_id, surface, created_at, stopped_at, body) VALUES (?, ?, ?, NULL, ?)",
            (
                "old",
                "recommendations",
                1,
                json.dumps(body),
            ),
        )
    finally:
        conn.close()
    store = SqliteStore(path)
    try:
        with pytest.raises(FailedPreconditionError, match="old"):
            store.create_experiment(experiment("second", independent=False))
        store.create_experiment(experiment("beside"))
        assert [e.experiment_id for e in store.list_experiments() if e.running] == ["beside", "old"]
    finally:
        store.close()
