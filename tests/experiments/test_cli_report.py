"""`omnix report`: the three reports, or one experiment's results, as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnix_recs.cli import main
from omnix_recs.domain.models import Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.store import open_store
from omnix_recs.store.base import ExperimentArm, ExperimentRecord


def test_report_prints_the_reports_and_experiment_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    now = datetime.now(UTC)
    store = open_store(url)
    try:
        item = (RecommendedItem("milk", 1.0, 0.5),)
        store.save_recommendation(
            ServedRecommendation("r1", "ann", now - timedelta(days=2), "balanced", "v1", item, "e1", "a")
        )
        store.add_purchases([Purchase("ann", "o1", "milk", 2, 1.5, now - timedelta(days=1))])
        store.create_experiment(
            ExperimentRecord(
                "e1", "recommendations", (ExperimentArm("a", 50), ExperimentArm("b", 50)), "s", now - timedelta(days=3)
            )
        )
    finally:
        store.close()

    assert main(["report", "--store", url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["performance"]["lists_served"] == 1
    assert printed["roi"]["attributed_revenue"] == 3.0 and printed["roi"]["revenue_share"] == 1.0
    assert printed["impact"]["customers_exposed"] == 1

    assert main(["report", "--store", url, "--experiment", "e1"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(a["arm_id"], a["customers"], a["revenue"]) for a in results["arms"]] == [("a", 1, 3.0), ("b", 0, 0.0)]

    assert main(["report", "--store", url, "--experiment", "missing"]) == 2
    assert "experiment 'missing' not found" in capsys.readouterr().err
    assert main(["report", "--store", url, "--start", "2026-03-02", "--end", "2026-03-01"]) == 2
    assert "--start" in capsys.readouterr().err
