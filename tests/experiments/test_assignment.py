"""Sticky assignment: a pure function of the customer id and the experiment's salt."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from omnix_recs.experiments.assignment import BUCKETS, HOLDOUT_ARM, assign, bucket, planned_shares
from omnix_recs.store.base import ExperimentArm, ExperimentRecord

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def experiment(traffic: tuple[int, ...] = (50, 50), holdout: int = 0, salt: str = "s1") -> ExperimentRecord:
    arms = tuple(ExperimentArm(f"arm{i}", t) for i, t in enumerate(traffic))
    return ExperimentRecord("e1", "recommendations", arms, salt, T0, holdout_percent=holdout)


def arm_of(e: ExperimentRecord, customer_id: str) -> str:
    arm = assign(e, customer_id)
    return HOLDOUT_ARM if arm is None else arm.arm_id


def test_the_bucket_is_the_same_in_another_process() -> None:
    """Python's own `hash` is salted per process; the bucket must not be."""
    code = "from omnix_recs.experiments.assignment import bucket; print(bucket('customer-42', 'salt'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(other) == bucket("customer-42", "salt")
    assert 0 <= bucket("customer-42", "salt") < BUCKETS


@pytest.mark.parametrize(
    ("traffic", "holdout"), [((50, 50), 0), ((90, 10), 0), ((34, 33, 33), 0), ((50, 50), 10), ((20, 80), 50)]
)
def test_the_split_follows_the_plan(traffic: tuple[int, ...], holdout: int) -> None:
    e = experiment(traffic, holdout)
    n = 40_000
    counts = Counter(arm_of(e, f"c{i}") for i in range(n))
    for arm, share in planned_shares(e).items():
        assert counts[arm] / n == pytest.approx(share, abs=0.01), arm
    assert sum(planned_shares(e).values()) == pytest.approx(1.0)


def test_customers_keep_their_arm_and_salts_split_independently() -> None:
    first, second = experiment(salt="a"), experiment(salt="b")
    customers = [f"c{i}" for i in range(20_000)]
    assert [arm_of(first, c) for c in customers] == [arm_of(first, c) for c in customers]
    pairs = Counter((arm_of(first, c), arm_of(second, c)) for c in customers)
    # Independent: each of the four combinations holds about a quarter of the customers.
    assert all(count / len(customers) == pytest.approx(0.25, abs=0.015) for count in pairs.values())
    assert len(pairs) == 4
