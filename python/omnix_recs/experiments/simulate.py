"""Simulated click-through experiments, vectorised, to check the statistics (tests and
benches/bench_experiments.py).

Each simulated customer has their own click propensity (a beta distribution around the base
rate, since shoppers differ), visits on some days, and is served a list of `items` products per
visit; clicks are binomial. The treatment arm multiplies every propensity by (1 + lift).
The analyst looks every day: the experiment's p-value after day d is the running minimum of
the mSPRT p-values up to d, exactly what GetExperimentResults reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnix_recs.experiments import stats


@dataclass(frozen=True, slots=True)
class Scenario:
    customers_per_arm: int = 5_000
    days: int = 14
    base_ctr: float = 0.05
    lift: float = 0.0  # relative: 0.1 = the treatment's click-through rate is 10% higher
    visit_probability: float = 0.3  # per customer per day
    items: int = 10  # products per served list
    # Spread of customers' propensities: beta(a, b) with mean base_ctr and a + b = concentration.
    concentration: float = 40.0


def daily_p_values(scenario: Scenario, experiments: int, rng: np.random.Generator, chunk: int = 25) -> np.ndarray:
    """Always-valid p-values after each day, shape (experiments, days)."""
    out = np.empty((experiments, scenario.days))
    for begin in range(0, experiments, chunk):
        e = min(chunk, experiments - begin)
        control = arm_sums(scenario, e, 1.0, rng)
        treatment = arm_sums(scenario, e, 1.0 + scenario.lift, rng)
        difference = treatment.ratio() - control.ratio()
        variance = treatment.variance() + control.variance()
        p = stats.msprt_p_value(difference, variance, stats.tau_squared(control.ratio()))
        out[begin : begin + e] = stats.always_valid_p_values(p)
    return out


def arm_sums(scenario: Scenario, experiments: int, multiplier: float, rng: np.random.Generator) -> stats.RatioSums:
    n, days = scenario.customers_per_arm, scenario.days
    a = scenario.base_ctr * scenario.concentration
    b = (1 - scenario.base_ctr) * scenario.concentration
    propensity = np.minimum(rng.beta(a, b, size=(experiments, n, 1)) * multiplier, 1.0)
    impressions = (rng.random((experiments, n, days)) < scenario.visit_probability) * scenario.items
    clicks = rng.binomial(impressions, propensity)
    # Cumulative per customer up to each day; summed over customers (axis 1) per day.
    return stats.RatioSums.of(np.cumsum(clicks, axis=2), np.cumsum(impressions, axis=2), axis=1)
