"""The experiment statistics: the oracles (scipy, brute force) and the simulations that show
the sequential test holds its false-positive rate under daily peeking and finds a real lift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from omnix_recs.experiments import stats
from omnix_recs.experiments.simulate import Scenario, daily_p_values


@pytest.mark.parametrize(
    ("statistic", "dof"), [(0.5, 1), (3.84, 1), (10.83, 1), (0.1, 3), (7.0, 2), (25.0, 4), (100.0, 9), (1e-6, 2)]
)
def test_chi_square_survival_matches_scipy(statistic: float, dof: int) -> None:
    assert stats.chi_square_survival(statistic, dof) == pytest.approx(scipy_stats.chi2.sf(statistic, dof), rel=1e-9)


@pytest.mark.parametrize(
    ("counts", "shares", "mismatch"),
    [
        ([5000, 5000], [0.5, 0.5], False),
        ([5000, 5150], [0.5, 0.5], False),  # p ~ 0.14
        ([5000, 5400], [0.5, 0.5], True),
        ([900, 4550, 4550], [0.1, 0.45, 0.45], False),
        ([1200, 4400, 4400], [0.1, 0.45, 0.45], True),
        ([0, 0], [0.5, 0.5], False),
    ],
)
def test_sample_ratio_mismatch(counts: list[int], shares: list[float], mismatch: bool) -> None:
    p = stats.sample_ratio_p_value(counts, shares)
    assert (p < stats.SRM_THRESHOLD) is mismatch
    if sum(counts):
        expected = scipy_stats.chisquare(counts, np.array(shares) * sum(counts)).pvalue
        assert p == pytest.approx(expected, rel=1e-6, abs=1e-300)


def test_ratio_variance_is_the_delta_method() -> None:
    rng = np.random.default_rng(3)
    den = rng.integers(0, 30, 500).astype(float)
    num = rng.binomial(den.astype(int), 0.1).astype(float)
    sums = stats.RatioSums.of(num, den)
    present = den > 0
    r = num.sum() / den.sum()
    n = present.sum()
    brute = np.var(num[present] - r * den[present], ddof=1) * n / den.sum() ** 2
    assert float(sums.ratio()) == pytest.approx(r)
    assert float(sums.variance()) == pytest.approx(brute)
    assert float(sums.count) == n


def test_ratio_variance_covers_the_truth_by_resampling() -> None:
    """The delta-method standard error agrees with the spread of the ratio over repeated samples."""
    rng = np.random.default_rng(4)
    ratios, variances = [], []
    for _ in range(400):
        den = rng.poisson(20, 300).astype(float)
        num = rng.binomial(den.astype(int), rng.beta(2, 38, 300)).astype(float)
        s = stats.RatioSums.of(num, den)
        ratios.append(float(s.ratio()))
        variances.append(float(s.variance()))
    assert np.mean(variances) == pytest.approx(np.var(ratios), rel=0.2)


@pytest.mark.parametrize(
    ("difference", "variance", "tau_sq", "expected"),
    [
        (0.0, 1.0, 1.0, 1.0),  # no evidence: Lambda < 1
        (1.0, 0.0, 1.0, 1.0),  # no variance estimate yet: no verdict
        (1.0, 1.0, 0.0, 1.0),
        (5.0, 1.0, 1.0, math.sqrt(2) * math.exp(-25 / 4)),  # 1/Lambda with V = tau^2 = 1
    ],
)
def test_msprt_p_value(difference: float, variance: float, tau_sq: float, expected: float) -> None:
    assert float(stats.msprt_p_value(difference, variance, tau_sq)) == pytest.approx(expected)


def test_confidence_sequence_agrees_with_the_p_value() -> None:
    """0 lies outside the always-valid interval exactly when p < alpha."""
    variance, tau_sq = 1e-6, 4e-6
    half = stats.confidence_sequence_half_width(variance, tau_sq, 0.05)
    for difference in (0.9 * half, 1.1 * half):
        p = float(stats.msprt_p_value(difference, variance, tau_sq))
        assert (p < 0.05) is (difference > half)


def test_always_valid_p_values_never_rise() -> None:
    p = stats.always_valid_p_values(np.array([[0.9, 0.4, 0.6, 0.2, 0.3]]))
    assert p.tolist() == [[0.9, 0.4, 0.4, 0.2, 0.2]]


def test_cuped_keeps_the_mean_and_removes_what_the_covariate_predicts() -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, 50.0, 4000)  # pre-period spend
    y = 0.3 * x + rng.normal(0, 10, 4000)  # in-experiment revenue, driven by habit
    theta = stats.cuped_theta(y, x)
    adjusted = y - theta * (x - x.mean())
    assert theta == pytest.approx(0.3, rel=0.05)
    assert adjusted.mean() == pytest.approx(y.mean())
    assert np.var(adjusted) < 0.2 * np.var(y)
    assert stats.cuped_theta(y, np.ones_like(y)) == 0.0


def test_aa_experiments_keep_false_positives_at_five_percent_while_peeking_daily() -> None:
    """200 A/A experiments (2,000 customers per arm, 14 daily looks): a fixed-horizon z-test
    peeked at daily would reject far more often than 5%; the always-valid p-value does not."""
    p = daily_p_values(Scenario(customers_per_arm=2_000, days=14), 200, np.random.default_rng(11))
    false_positives = float((p[:, -1] < 0.05).mean())
    assert false_positives <= 0.05


def test_a_ten_percent_ctr_lift_is_found() -> None:
    """A planted 10% click-through lift on 5,000 customers per arm, 14 daily looks."""
    p = daily_p_values(Scenario(customers_per_arm=5_000, days=14, lift=0.10), 60, np.random.default_rng(12))
    assert float((p[:, -1] < 0.05).mean()) >= 0.8
