"""The statistics of an A/B experiment, over numpy arrays so one code path serves both the
results of a real experiment and thousands of simulated ones (tests/experiments).

Every metric is a ratio over customers, the unit of assignment: the sum of a per-customer
numerator over the sum of a per-customer denominator (clicks over items shown; a customer's
attributed revenue over 1). Its variance comes from the delta method, which accounts for one
customer's lists being alike. Comparisons use the mixture sequential probability ratio test
(mSPRT, Johari et al., "Always Valid Inference", 2017) with a normal mixing distribution:
its p-value stays valid however often it is looked at, so the running minimum over daily
looks is the experiment's p-value and checking every day does not inflate false positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95%: the per-arm confidence intervals.
Z_95 = 1.959963984540054
DEFAULT_ALPHA = 0.05
# The mixing distribution's spread, relative to the control arm's level: the size of effect
# the test is most sensitive to (a 10% relative change).
DEFAULT_RELATIVE_TAU = 0.1
SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class RatioSums:
    """Sufficient statistics of a ratio metric over a group of customers (any array shape:
    one group, or groups x looks, or experiments x looks)."""

    count: np.ndarray  # customers with a positive denominator
    num: np.ndarray
    den: np.ndarray
    num_sq: np.ndarray
    den_sq: np.ndarray
    num_den: np.ndarray

    @classmethod
    def of(cls, num: np.ndarray, den: np.ndarray, axis: int = 0) -> RatioSums:
        """Sums over `axis` of per-customer values; customers with den == 0 count for nothing."""
        num = np.asarray(num, dtype=np.float64)
        den = np.asarray(den, dtype=np.float64)
        present = den > 0
        num = np.where(present, num, 0.0)
        return cls(
            count=present.sum(axis=axis).astype(np.float64),
            num=num.sum(axis=axis),
            den=den.sum(axis=axis),
            num_sq=(num * num).sum(axis=axis),
            den_sq=(den * den).sum(axis=axis),
            num_den=(num * den).sum(axis=axis),
        )

    def ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.den > 0, self.num / np.where(self.den > 0, self.den, 1.0), 0.0)

    def variance(self) -> np.ndarray:
        """Delta-method variance of `ratio()`: var(num - R den) * n / den_total^2 (0 below 2 customers)."""
        r = self.ratio()
        n = self.count
        spread = self.num_sq - 2 * r * self.num_den + r * r * self.den_sq  # sum of (num - R den)^2
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(
                (n > 1) & (self.den > 0),
                spread / np.maximum(n - 1, 1) * n / np.where(self.den > 0, self.den, 1.0) ** 2,
                0.0,
            )
        return np.maximum(var, 0.0)


def msprt_p_value(difference: np.ndarray, variance: np.ndarray, tau_sq: np.ndarray) -> np.ndarray:
    """One look's mSPRT p-value, min(1, 1/Lambda), for an estimated difference of means with
    that variance, under a normal mixture N(0, tau_sq) over the true difference."""
    difference, variance, tau_sq = np.broadcast_arrays(
        np.asarray(difference, np.float64), np.asarray(variance, np.float64), np.asarray(tau_sq, np.float64)
    )
    valid = (variance > 0) & (tau_sq > 0)
    v = np.where(valid, variance, 1.0)
    t = np.where(valid, tau_sq, 1.0)
    log_lambda = 0.5 * np.log(v / (v + t)) + difference * difference * t / (2 * v * (v + t))
    return np.where(valid, np.exp(-np.maximum(log_lambda, 0.0)), 1.0)


def always_valid_p_values(p_per_look: np.ndarray) -> np.ndarray:
    """Running minimum over the last axis (looks in time order): the p-value after each look."""
    return np.minimum.accumulate(np.asarray(p_per_look, np.float64), axis=-1)


def confidence_sequence_half_width(variance: float, tau_sq: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Half-width of the always-valid (1 - alpha) interval for the difference that matches
    `msprt_p_value`: the differences it would not reject at this look."""
    if variance <= 0 or tau_sq <= 0:
        return math.inf if variance > 0 else 0.0
    v, t = variance, tau_sq
    return math.sqrt(v * (v + t) / t * (2 * math.log(1 / alpha) + math.log((v + t) / v)))


def tau_squared(control_level: np.ndarray, relative_tau: float = DEFAULT_RELATIVE_TAU) -> np.ndarray:
    return (relative_tau * np.abs(np.asarray(control_level, np.float64))) ** 2


def normal_interval(value: float, variance: float, z: float = Z_95) -> tuple[float, float]:
    half = z * math.sqrt(max(variance, 0.0))
    return value - half, value + half


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """The CUPED coefficient cov(y, x) / var(x) over all customers of every arm (0 when x is
    constant); y - theta (x - mean x) keeps y's mean per arm and sheds the part x predicts."""
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return 0.0
    var_x = float(np.var(x))
    if var_x <= 0:
        return 0.0
    return float(np.mean((x - x.mean()) * (y - y.mean())) / var_x)


def sample_ratio_p_value(counts: list[int], planned_shares: list[float]) -> float:
    """Pearson's chi-square goodness of fit of the customers per arm to the planned split."""
    total = sum(counts)
    cells = [(c, s) for c, s in zip(counts, planned_shares, strict=True) if s > 0]
    if total == 0 or len(cells) < 2:
        return 1.0
    share_total = sum(s for _, s in cells)
    statistic = sum((c - total * s / share_total) ** 2 / (total * s / share_total) for c, s in cells)
    return chi_square_survival(statistic, len(cells) - 1)


def chi_square_survival(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof): the regularized upper incomplete gamma Q(dof/2, statistic/2)."""
    if statistic <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, statistic / 2.0)


def _gamma_q(a: float, x: float) -> float:
    # Numerical Recipes 6.2: the series for P when x < a + 1, the continued fraction for Q otherwise.
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
