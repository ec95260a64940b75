"""GetExperimentResults' figures from served lists, feedback and purchases (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from omnix_recs.domain.models import Feedback, FeedbackEvent, Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign
from omnix_recs.experiments.results import ExperimentData, compute_results
from omnix_recs.store.base import ExperimentArm, ExperimentRecord

START = datetime(2026, 3, 2, tzinfo=UTC)
NOW = START + timedelta(days=10)
PRODUCTS = tuple(f"p{i}" for i in range(10))


def experiment(metric: str = "click_through_rate", holdout: int = 0) -> ExperimentRecord:
    arms = (ExperimentArm("control", 50), ExperimentArm("treatment", 50))
    return ExperimentRecord(
        "e1", "recommendations", arms, "salt", START, primary_metric=metric, holdout_percent=holdout
    )


def simulate(
    e: ExperimentRecord,
    customers: int,
    ctr: dict[str, float],
    rng: np.random.Generator,
    buy: float = 0.3,
    force_arm: str | None = None,
    prefix: str = "c",
) -> ExperimentData:
    """Every customer is served one list a day for 8 days, clicks at their arm's rate and may buy
    a listed product; habitual spenders (pre-period) also spend more during the experiment."""
    data = ExperimentData([], [], [])
    for c in range(customers):
        customer = f"{prefix}{c}"
        arm = assign(e, customer)
        arm_id = force_arm or (HOLDOUT_ARM if arm is None else arm.arm_id)
        habit = float(rng.gamma(2.0, 20.0))
        data.purchases.append(Purchase(customer, f"{customer}-pre", "p9", 1, habit, START - timedelta(days=5)))
        for day in range(8):
            at = START + timedelta(days=day, hours=9)
            rid = f"{customer}-{day}"
            items = tuple(RecommendedItem(p, 1.0, 0.5) for p in PRODUCTS)
            data.lists.append(ServedRecommendation(rid, customer, at, "balanced", "v1", items, "e1", arm_id))
            for p in PRODUCTS:
                if rng.random() < ctr.get(arm_id, 0.05):
                    data.feedback.append(Feedback(rid, customer, p, FeedbackEvent.CLICKED, at + timedelta(minutes=5)))
            if rng.random() < buy:
                price = 0.05 * habit + float(rng.normal(2.0, 0.5))
                data.purchases.append(Purchase(customer, f"{rid}-o", "p0", 1, price, at + timedelta(hours=2)))
    return data


def test_figures_add_up_and_a_clear_winner_is_named() -> None:
    e = experiment()
    data = simulate(e, 600, {"control": 0.05, "treatment": 0.09}, np.random.default_rng(1))
    results = compute_results(e, data, NOW)
    by_arm = {a.arm_id: a for a in results.arms}
    assert list(by_arm) == ["control", "treatment"]
    assert sum(a.customers for a in results.arms) == 600
    assert sum(a.served_lists for a in results.arms) == len(data.lists)
    assert sum(a.clicks for a in results.arms) == len(data.feedback)
    assert sum(a.impressions for a in results.arms) == 10 * len(data.lists)
    in_experiment = [p for p in data.purchases if p.purchased_at >= START]
    assert sum(a.purchases for a in results.arms) == len(in_experiment)
    assert sum(a.revenue for a in results.arms) == pytest.approx(sum(p.unit_price for p in in_experiment), abs=0.02)
    treatment = by_arm["treatment"]
    assert treatment.click_through_rate.value == pytest.approx(0.09, abs=0.01)
    assert treatment.click_through_rate.low < treatment.click_through_rate.value < treatment.click_through_rate.high
    assert treatment.difference.low > 0
    assert results.winner == "treatment" and results.p_value < 0.05
    assert not results.sample_ratio_mismatch
    assert results.looks == 10


def test_no_difference_names_no_winner() -> None:
    e = experiment()
    results = compute_results(e, simulate(e, 400, {}, np.random.default_rng(2)), NOW)
    assert results.winner == ""
    assert results.p_value > 0.05


def test_a_worse_treatment_makes_the_control_the_winner() -> None:
    e = experiment()
    data = simulate(e, 600, {"control": 0.09, "treatment": 0.04}, np.random.default_rng(3))
    assert compute_results(e, data, NOW).winner == "control"


def test_cuped_narrows_revenue_per_customer() -> None:
    e = experiment("revenue_per_customer")
    results = compute_results(e, simulate(e, 600, {}, np.random.default_rng(4), buy=0.8), NOW)
    assert results.cuped_variance_reduction > 0.3
    for arm in results.arms:
        assert arm.revenue_per_customer.low < arm.revenue_per_customer.value < arm.revenue_per_customer.high


def test_a_broken_split_is_a_sample_ratio_mismatch() -> None:
    """300 customers split by the plan, then 300 more all logged in one arm (a logging bug)."""
    e = experiment()
    data = simulate(e, 300, {}, np.random.default_rng(5))
    extra = simulate(e, 300, {}, np.random.default_rng(6), force_arm="treatment", prefix="x")
    data.lists += extra.lists
    results = compute_results(e, data, NOW)
    assert results.sample_ratio_mismatch
    assert results.sample_ratio_p_value < 0.001


def test_the_holdout_is_reported_as_an_arm() -> None:
    e = experiment(holdout=20)
    results = compute_results(e, simulate(e, 500, {}, np.random.default_rng(7)), NOW)
    by_arm = {a.arm_id: a for a in results.arms}
    assert list(by_arm) == ["control", "treatment", HOLDOUT_ARM]
    assert by_arm[HOLDOUT_ARM].customers / 500 == pytest.approx(0.2, abs=0.06)
    assert not results.sample_ratio_mismatch


def test_an_experiment_without_lists() -> None:
    results = compute_results(experiment(), ExperimentData([], [], []), START + timedelta(hours=1))
    assert [a.customers for a in results.arms] == [0, 0]
    assert results.winner == "" and results.p_value == 1.0 and not results.sample_ratio_mismatch
