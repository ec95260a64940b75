"""When the next trip, or the next purchase of a product, comes: the survival view of the gaps.

A customer last seen `e` days ago will not take a gap shorter than `e`, so only the gaps longer
than that (theirs, and a population sample moved towards their own scale) say how much longer
they will be; the answer is the median of that remaining wait, because forecasts are judged in
absolute days. The Rust core does the counting (`_core.next_occurrences`); this module holds the
population samples, the settings, and the backtest that chooses the visit settings on the data
the service is given rather than on data it has never seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnix_recs import _core

# Owners' usual gaps are rounded to half-octave steps: the core counts the sample in one sorted
# run per distinct scale, and finer steps made no difference in backtests, only slower ones.
SCALE_STEPS_PER_OCTAVE = 2.0
# A customer overdue beyond every gap anyone took is expected within this share of their cadence.
OVERDUE_FRACTION = 0.25
# The visit backtests: four weeks after each cut-off, customers with three trips before it.
TUNING_HOLDOUT_DAYS = 28
MIN_TUNING_TRIPS = 3
MIN_TUNING_CUSTOMERS = 50


@dataclass(frozen=True)
class OutlookSettings:
    """How a group's own gaps and the population sample are mixed (see `_core.next_occurrences`)."""

    population_weight: float  # the sample's total weight, against one per own gap
    scale_exponent: float  # 0: the population's gaps as they are; 1: fully moved to the group's scale
    recency_half_life: float = 20.0  # in gaps
    horizon_days: float = 28.0  # of `horizon_probability` and `horizon_median_days`


# Defaults when the data is too small to choose; products use theirs always (a backtest over every
# customer × product is too slow to run whenever the population is rebuilt). Both were the best
# of the backtest grid on Complete Journey's earlier months, never on its last four weeks.
VISIT_OUTLOOK = OutlookSettings(population_weight=10.0, scale_exponent=0.3)
PRODUCT_OUTLOOK = OutlookSettings(population_weight=10.0, scale_exponent=0.8)
VISIT_GRID = tuple(
    OutlookSettings(population_weight=k, scale_exponent=b) for b in (0.0, 0.3, 0.6, 1.0) for k in (3.0, 10.0, 30.0)
)


@dataclass(frozen=True, eq=False)
class GapSample:
    """Gaps people took (days) and the usual gap of whoever took each, rounded to the grid."""

    gaps: np.ndarray
    scales: np.ndarray

    @classmethod
    def empty(cls) -> GapSample:
        return cls(np.zeros(0), np.ones(0))

    @classmethod
    def of(cls, population: Mapping[str, Any]) -> GapSample:
        """The sample of a `_core.population_cycles` result."""
        scales = np.asarray(population["sample_scales"], dtype=np.float64)
        steps = SCALE_STEPS_PER_OCTAVE
        return cls(
            np.asarray(population["sample_gaps"], dtype=np.float64),
            np.exp2(np.round(np.log2(scales) * steps) / steps) if len(scales) else scales,
        )

    def __len__(self) -> int:
        return len(self.gaps)


@dataclass(frozen=True, eq=False)
class Outlooks:
    """Per group: trips before `as_of`, days since the last, and the remaining wait (see
    `_core.next_occurrences`; `median_days` is inf when overdue beyond every gap seen)."""

    trips: np.ndarray
    elapsed_days: np.ndarray
    median_days: np.ndarray
    horizon_probability: np.ndarray
    horizon_median_days: np.ndarray


def outlooks(
    group_codes: np.ndarray,
    days: np.ndarray,
    scales: np.ndarray,
    as_of_day: float,
    sample: GapSample,
    settings: OutlookSettings,
) -> Outlooks:
    """Outlooks of groups `0..len(scales)` from their purchase days; `scales[g]` is group g's
    usual gap (NaN = unknown)."""
    out = _core.next_occurrences(
        np.asarray(group_codes, dtype=np.int64),
        np.asarray(days, dtype=np.float64),
        np.asarray(scales, dtype=np.float64),
        float(as_of_day),
        sample.gaps,
        sample.scales,
        population_weight=settings.population_weight,
        scale_exponent=settings.scale_exponent,
        recency_half_life=settings.recency_half_life,
        horizon_days=settings.horizon_days,
    )
    return Outlooks(
        trips=out["trips"],
        elapsed_days=out["elapsed_days"],
        median_days=out["median_days"],
        horizon_probability=out["horizon_probability"],
        horizon_median_days=out["horizon_median_days"],
    )


def visit_wait_days(median_days: np.ndarray, cadence_days: np.ndarray) -> np.ndarray:
    """Days until the next trip: the outlook's median, or, for a customer overdue beyond every gap
    seen, a fraction of their cadence (a late customer is usually about to come back)."""
    fallback = np.where(np.isfinite(cadence_days), OVERDUE_FRACTION * cadence_days, 0.0)
    return np.where(np.isfinite(median_days), median_days, fallback)


def tune_visit_outlook(customer: np.ndarray, day: np.ndarray) -> OutlookSettings:
    """The grid's settings that best predict each customer's first trip after a cut-off from
    their purchases before it (mean absolute error in days, summed over cut-offs 4 and 8 weeks
    before the data ends), among customers with `MIN_TUNING_TRIPS` trips before the cut-off and
    one within 4 weeks after it. `VISIT_OUTLOOK` when fewer than `MIN_TUNING_CUSTOMERS` qualify."""
    if not len(day):
        return VISIT_OUTLOOK
    end = math.floor(float(day.max()))
    backtests = [
        b for b in (_visit_backtest(customer, day, end - k * TUNING_HOLDOUT_DAYS) for k in (1, 2)) if b is not None
    ]
    if not backtests:
        return VISIT_OUTLOOK
    return min(VISIT_GRID, key=lambda settings: sum(backtest(settings) for backtest in backtests))


def _visit_backtest(customer: np.ndarray, day: np.ndarray, cut: float) -> Callable[[OutlookSettings], float] | None:
    """Mean absolute next-trip error as of `cut` for given settings; None when too few customers."""
    past = day < cut
    customers = int(customer.max()) + 1
    first_after = np.full(customers, np.inf)
    window = ~past & (day < cut + TUNING_HOLDOUT_DAYS)
    np.minimum.at(first_after, customer[window], day[window])
    own = _core.consumption_cycles(customer[past], day[past], np.full(customers, math.nan))
    eligible = (own["trips"] >= MIN_TUNING_TRIPS) & np.isfinite(first_after)
    if eligible.sum() < MIN_TUNING_CUSTOMERS:
        return None
    sample = GapSample.of(
        _core.population_cycles(customer[past], np.zeros(int(past.sum()), dtype=np.int64), day[past], 1)
    )
    code = np.cumsum(eligible) - 1  # eligible customers renumbered 0..n-1
    rows = past & eligible[customer]
    scales = own["own_cycle_days"][eligible]
    actual = first_after[eligible]

    def error(settings: OutlookSettings) -> float:
        result = outlooks(code[customer[rows]], day[rows], scales, cut, sample, settings)
        return float(np.mean(np.abs(cut + visit_wait_days(result.median_days, scales) - actual)))

    return error
