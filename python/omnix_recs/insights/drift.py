"""Drift of the consumption predictions: are the latest predictions worse than the earlier ones?

The unit is one stored forecast: its next-trip error, and the mean error of its products bought
since. The latest time bucket is compared with all earlier buckets pooled, one-sided (only
getting worse is drift), with Welch's statistic under the normal approximation (buckets hold
tens to thousands of forecasts); the two metrics are tested separately and the smaller p-value
is doubled (Bonferroni). Without at least MIN_FORECASTS on each side nothing is claimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from omnix_recs.domain.predictions import ForecastScore

MIN_FORECASTS = 10
# Drift is flagged below this p-value: a false alarm in one look out of a hundred.
DRIFT_P_VALUE = 0.01


@dataclass(frozen=True, slots=True)
class AccuracyDrift:
    latest_bucket: datetime | None  # the bucket compared with the ones before it; None = fewer than two
    next_visit_mae_change_days: float  # latest minus earlier MAE; NaN when a side has nothing scored
    next_purchase_mae_change_days: float
    p_value: float  # NaN when either side has fewer than MIN_FORECASTS scored forecasts
    drifting: bool


def accuracy_drift(scored: Sequence[tuple[datetime, ForecastScore]]) -> AccuracyDrift:
    """`scored`: (bucket start, score) of every forecast considered, any order."""
    starts = sorted({start for start, _ in scored})
    if len(starts) < 2:
        return AccuracyDrift(None, math.nan, math.nan, math.nan, False)
    latest = starts[-1]
    recent = [s for start, s in scored if start == latest and not s.pending]
    earlier = [s for start, s in scored if start != latest and not s.pending]
    visit = _compare(_visit_errors(recent), _visit_errors(earlier))
    purchase = _compare(_purchase_errors(recent), _purchase_errors(earlier))
    tested = [p for _, p in (visit, purchase) if math.isfinite(p)]
    p_value = min(1.0, 2 * min(tested)) if tested else math.nan
    return AccuracyDrift(
        latest_bucket=latest,
        next_visit_mae_change_days=visit[0],
        next_purchase_mae_change_days=purchase[0],
        p_value=p_value,
        drifting=bool(tested) and p_value < DRIFT_P_VALUE,
    )


def _visit_errors(scores: Sequence[ForecastScore]) -> list[float]:
    return [s.visit_error_days for s in scores if math.isfinite(s.visit_error_days)]


def _purchase_errors(scores: Sequence[ForecastScore]) -> list[float]:
    # One figure per forecast: its products are bought on the same trips, so not independent.
    return [sum(s.product_errors_days) / len(s.product_errors_days) for s in scores if s.product_errors_days]


def _compare(recent: Sequence[float], earlier: Sequence[float]) -> tuple[float, float]:
    """(mean change, one-sided p-value that `recent` errs more); NaN where undefined."""
    if not recent or not earlier:
        return math.nan, math.nan
    change = _mean(recent) - _mean(earlier)
    if len(recent) < MIN_FORECASTS or len(earlier) < MIN_FORECASTS:
        return change, math.nan
    standard_error = math.sqrt(_variance(recent) / len(recent) + _variance(earlier) / len(earlier))
    if standard_error == 0.0:
        return change, 0.0 if change > 0 else 1.0
    return change, 0.5 * math.erfc(change / standard_error / math.sqrt(2.0))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _variance(values: Sequence[float]) -> float:
    mean = _mean(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)
