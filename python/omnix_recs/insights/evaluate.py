"""Offline evaluation of consumption predictions: predict as of a cut-off, compare with what the
customers did in the held-out days after it, next to simple baselines computed in the same run.

Everything before the cut-off (the last `holdout_days`) is the past, and the population baseline
(with the visit settings it tunes on its own last weeks) is rebuilt from it alone, so nothing from
the future leaks in. The next trip is scored for every customer with three trips before the
cut-off and one after it. The next purchase is scored per customer × product bought on two or
more trips before the cut-off: its date on the pairs bought again in the window (every method's
date moved into the window alike, and the window's middle day shown as what knowing the window
alone is worth), and, over all the pairs, how well each method ranks the ones bought again above
the rest (AUC; baselines rank by how soon they expect it, OMNIX by the confidence it serves).
Profiles are checked against households whose answers are known (a survey, or the generator's
truth), each attribute next to always answering its most common value.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from omnix_recs.domain.consumption import (
    PopulationCycles,
    PurchaseTable,
    customer_cycles,
    enrich_history,
    from_day,
    to_day,
)
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.outlook import VISIT_OUTLOOK, OutlookSettings, outlooks, visit_wait_days
from omnix_recs.domain.predictions import (
    SAME_TRIP_DAYS,
    AccuracySummary,
    forecast_consumption,
    product_outlooks,
    score_forecast,
    summarise_scores,
)
from omnix_recs.domain.profiling import CustomerProfile, profile_customer
from omnix_recs.insights.baseline import build_baseline
from omnix_recs.store.base import Store

MIN_TRIPS = 3
DEFAULT_HOLDOUT_DAYS = 28
OMNIX = "OMNIX"
BASELINES = ("mean gap", "median gap", "population cycle")
WINDOW_MIDDLE = "middle of the window"
# What the survival outlook's parts add to the next-trip forecast (same customers, same cut-off).
OWN_GAPS_ONLY = "own gaps only (no population)"
UNTUNED = "default settings (not tuned)"


@dataclass
class _Errors:
    """Absolute errors in days per method, over the same cases."""

    by_method: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, predicted_day: float, actual_day: float) -> None:
        self.by_method.setdefault(method, []).append(abs(predicted_day - actual_day))

    def mae(self, method: str) -> float:
        errors = self.by_method.get(method, [])
        return sum(errors) / len(errors) if errors else math.nan

    def median(self, method: str) -> float:
        errors = self.by_method.get(method, [])
        return statistics.median(errors) if errors else math.nan

    def cases(self) -> int:
        return len(next(iter(self.by_method.values()), []))


@dataclass
class _Ranking:
    """Scores per method (higher = expected sooner) and whether each pair was bought again."""

    scores: dict[str, list[float]] = field(default_factory=dict)
    bought: list[bool] = field(default_factory=list)

    def auc(self, method: str) -> float:
        return rank_auc(np.array(self.scores.get(method, [])), np.array(self.bought, dtype=bool))


def rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Chance that a random positive scores above a random negative (ties count half)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg or len(scores) != len(positive):
        return math.nan
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # average rank of each distinct value
    ranks = mid_rank[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass
class PredictionBacktest:
    """Errors of every method on the same customers and pairs, and the due-now counts."""

    as_of: datetime
    holdout_days: int
    customers: int
    order_lines: int
    seconds: float
    visit_settings: OutlookSettings
    visits: _Errors
    purchases: _Errors  # pairs bought again in the window
    ranking: _Ranking  # every pair bought on two or more trips before the cut-off
    summary: AccuracySummary

    def report(self) -> str:
        return _report(self)


def _purchases(table: PurchaseTable, rows: np.ndarray) -> list[Purchase]:
    """The order lines `rows` of one customer's part of `table`."""
    return [
        Purchase(
            customer_id=table.customer_ids[table.customer[r]],
            order_id=str(table.order[r]),
            product_id=table.product_ids[table.product[r]],
            quantity=int(table.quantity[r]),
            unit_price=float(table.unit_price[r]),
            purchased_at=from_day(float(table.day[r])),
        )
        for r in rows
    ]


def _trip_days(days: np.ndarray) -> list[float]:
    trips: list[float] = []
    for day in np.sort(days):
        if not trips or day - trips[-1] >= SAME_TRIP_DAYS:
            trips.append(float(day))
    return trips


def _baselines(trips: list[float], population_cycle: float) -> dict[str, float]:
    """Naive next-occurrence days from a series of trip days (at least two)."""
    gaps = np.diff(trips)
    last = trips[-1]
    guesses = {"mean gap": last + float(np.mean(gaps)), "median gap": last + float(np.median(gaps))}
    guesses["population cycle"] = last + (
        population_cycle if math.isfinite(population_cycle) else float(np.median(gaps))
    )
    return guesses


def backtest_predictions(
    store: Store,
    *,
    max_customers: int | None = None,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
    progress: Callable[[str], None] | None = None,
) -> PredictionBacktest | None:
    """Backtest next-trip and next-purchase predictions on the store's data (None: no purchases)."""
    started = time.perf_counter()
    table = PurchaseTable.from_columns(store.scan_purchases())
    if len(table) == 0:
        return None
    products = {p.product_id: p for p in store.iter_products()}
    cutoff = float(np.floor(table.day.max())) - holdout_days
    window_end = float(table.day.max())
    as_of = from_day(cutoff)
    population = build_baseline(table.before(cutoff), products.values(), as_of=as_of).cycles

    order = np.argsort(table.customer, kind="stable")
    bounds = np.searchsorted(table.customer[order], np.arange(len(table.customer_ids) + 1))
    eligible: list[int] = []
    for code in range(len(table.customer_ids)):
        days = table.day[order[bounds[code] : bounds[code + 1]]]
        if (days >= cutoff).any() and len(_trip_days(days[days < cutoff])) >= MIN_TRIPS:
            eligible.append(code)
    if max_customers is not None and len(eligible) > max_customers:
        # An even spread over the customer list, not its first N (ids often encode sign-up order).
        eligible = [eligible[i] for i in np.linspace(0, len(eligible) - 1, max_customers).round().astype(int)]

    visits, purchases_, ranking, scores = _Errors(), _Errors(), _Ranking(), []
    visit_days: list[np.ndarray] = []
    visit_scales: list[float] = []
    visit_cadences: list[float] = []
    visit_actual: list[float] = []
    for n, code in enumerate(eligible):
        rows = order[bounds[code] : bounds[code + 1]]
        customer_id = table.customer_ids[code]
        purchases = _purchases(table, rows)
        history = enrich_history(customer_id, purchases, products, as_of=as_of)
        cycles = customer_cycles(history, population)
        forecast = forecast_consumption(history, cycles, population)
        later = [p for p in purchases if p.purchased_at >= as_of]
        scores.append(score_forecast(forecast, later))

        days = table.day[rows]
        first_trip_after = float(days[days >= cutoff].min())
        past_trips = _trip_days(days[days < cutoff])
        assert forecast.next_visit_at is not None  # three trips before the cut-off
        visits.add(OMNIX, to_day(forecast.next_visit_at), first_trip_after)
        for name, day in _baselines(past_trips, population.visit_cycle_days).items():
            visits.add(name, max(day, cutoff), first_trip_after)
        assert cycles.visits is not None
        visit_days.append(np.array(past_trips))
        visit_scales.append(cycles.visits.own_cycle_days)
        visit_cadences.append(cycles.visits.cycle_days)
        visit_actual.append(first_trip_after)

        first_after: dict[str, float] = {}
        for p in sorted(later, key=lambda p: p.purchased_at):
            first_after.setdefault(p.product_id, to_day(p.purchased_at))
        served = {f.product_id: f for f in forecast.products}
        outlook = product_outlooks(history, cycles, population)
        for pid, cycle in cycles.products.items():
            if cycle.trips < 2:
                continue
            if pid in served:
                predicted, confidence = to_day(served[pid].next_purchase_at), served[pid].confidence
            else:  # not served (stopped, or overdue beyond every gap seen): not expected
                expected = outlook[pid].next_purchase_at
                predicted, confidence = (to_day(expected) if expected else math.inf), 0.0
            guesses = _baselines(
                _trip_days(np.array([to_day(line.purchased_at) for line in history.product_lines[pid]])),
                population.prior_for(pid),
            )
            ranking.bought.append(pid in first_after)
            ranking.scores.setdefault(OMNIX, []).append(confidence)
            for name, day in guesses.items():
                ranking.scores.setdefault(name, []).append(-day)
            if pid in first_after:
                actual = first_after[pid]
                purchases_.add(OMNIX, min(max(predicted, cutoff), window_end), actual)
                for name, day in guesses.items():
                    purchases_.add(name, min(max(day, cutoff), window_end), actual)
                purchases_.add(WINDOW_MIDDLE, (cutoff + window_end) / 2.0, actual)
        if progress and (n + 1) % 500 == 0:
            progress(f"{n + 1}/{len(eligible)} customers")

    _ablations(visits, cutoff, population, visit_days, np.array(visit_scales), np.array(visit_cadences), visit_actual)
    return PredictionBacktest(
        as_of=as_of,
        holdout_days=holdout_days,
        customers=len(eligible),
        order_lines=len(table),
        seconds=time.perf_counter() - started,
        visit_settings=population.visit_outlook,
        visits=visits,
        purchases=purchases_,
        ranking=ranking,
        summary=summarise_scores(scores),
    )


def _ablations(
    visits: _Errors,
    cutoff: float,
    population: PopulationCycles,
    visit_days: list[np.ndarray],
    scales: np.ndarray,
    cadences: np.ndarray,
    actual: list[float],
) -> None:
    """The next-trip forecast without the population sample, and with the settings untuned."""
    if not visit_days:
        return
    codes = np.concatenate([np.full(len(d), i, dtype=np.int64) for i, d in enumerate(visit_days)])
    days = np.concatenate(visit_days)
    for name, settings in [
        (OWN_GAPS_ONLY, replace(population.visit_outlook, population_weight=0.0)),
        (UNTUNED, VISIT_OUTLOOK),
    ]:
        result = outlooks(codes, days, scales, cutoff, population.visit_gaps, settings)
        for wait, day in zip(visit_wait_days(result.median_days, cadences), actual):
            visits.add(name, cutoff + float(wait), day)


def evaluate_predictions(
    store: Store,
    *,
    max_customers: int | None = None,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Backtest next-trip and next-purchase predictions on the store's data; a printable table."""
    backtest = backtest_predictions(store, max_customers=max_customers, holdout_days=holdout_days, progress=progress)
    return backtest.report() if backtest else "no purchases to evaluate"


def _report(b: PredictionBacktest) -> str:
    summary = b.summary
    settings = b.visit_settings
    lines = [
        f"Consumption predictions, backtest as of {b.as_of.date().isoformat()} with {b.holdout_days} days held out",
        f"{b.customers} customers ({b.order_lines} order lines), {b.seconds:.1f} s; visit outlook tuned on the "
        f"weeks before: population weight {settings.population_weight:g}, scale exponent {settings.scale_exponent:g}",
        "",
        f"{'next trip':<52} {'MAE days':>9} {'median':>7}",
    ]
    labels = {
        OMNIX: "OMNIX (survival outlook, tuned)",
        "mean gap": "last trip + mean gap",
        "median gap": "last trip + median gap",
        "population cycle": "last trip + population cadence",
        OWN_GAPS_ONLY: f"OMNIX, {OWN_GAPS_ONLY}",
        UNTUNED: f"OMNIX, {UNTUNED}",
    }
    for method, label in labels.items():
        lines.append(f"  {label:<50} {b.visits.mae(method):>9.2f} {b.visits.median(method):>7.2f}")
    best = min(b.visits.mae("mean gap"), b.visits.mae("median gap"))
    lines.append(f"  OMNIX against the better of mean and median gap: {b.visits.mae(OMNIX) / best - 1:+.1%}")
    pairs, bought = len(b.ranking.bought), sum(b.ranking.bought)
    lines += [
        "",
        f"next purchase per product ({pairs} customer x product pairs bought on 2+ trips before; "
        f"{bought} bought again in the window)",
        f"  {'method':<50} {'MAE days':>9} {'AUC':>7}",
    ]
    product_labels = {
        OMNIX: "OMNIX (survival outlook, served list)",
        "mean gap": "last purchase + mean gap",
        "median gap": "last purchase + median gap",
        "population cycle": "last purchase + population cycle",
        WINDOW_MIDDLE: f"the {WINDOW_MIDDLE} (knows only the window)",
    }
    for method, label in product_labels.items():
        auc = b.ranking.auc(method) if method != WINDOW_MIDDLE else math.nan
        lines.append(f"  {label:<50} {b.purchases.mae(method):>9.2f} {auc:>7.3f}")
    lines += [
        "",
        f"due now (expected on the next trip): precision {summary.due_now_precision:.2f}, "
        f"recall {summary.due_now_recall:.2f}",
    ]
    return "\n".join(lines)


# --- profiles against known answers ------------------------------------------------------------


def profile_households(store: Store, customer_ids: Iterable[str]) -> dict[str, CustomerProfile]:
    """Profiles of `customer_ids` (those with purchases) as of the end of the store's data, from
    purchases alone: what the customers declared is not passed to the profiler."""
    table = PurchaseTable.from_columns(store.scan_purchases())
    if len(table) == 0:
        return {}
    as_of = from_day(float(table.day.max()) + 1e-3)
    baseline = build_baseline(table, store.iter_products(), as_of=as_of)
    products = {p.product_id: p for p in store.iter_products()}
    order = np.argsort(table.customer, kind="stable")
    bounds = np.searchsorted(table.customer[order], np.arange(len(table.customer_ids) + 1))
    code_of = {customer_id: code for code, customer_id in enumerate(table.customer_ids)}
    profiles = {}
    for customer_id in customer_ids:
        code = code_of.get(customer_id)
        if code is None:
            continue
        history = enrich_history(
            customer_id, _purchases(table, order[bounds[code] : bounds[code + 1]]), products, as_of=as_of
        )
        cycles = customer_cycles(history, baseline.cycles)
        profiles[customer_id] = profile_customer(history, cycles, baseline.catalog, baseline.profile)
    return profiles


@dataclass(frozen=True)
class AttributeScore:
    """One profile attribute against the truth, next to always answering the most common value."""

    attribute: str
    households: int
    accuracy: float
    macro_f1: float
    majority: str
    majority_accuracy: float
    majority_macro_f1: float
    predicted: Mapping[str, int]  # how often each value was answered


def macro_f1(actual: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean F1 over every value that occurs in either sequence."""
    scores = []
    for value in sorted(set(actual) | set(predicted)):
        hits = sum(1 for a, p in zip(actual, predicted) if a == p == value)
        answered = sum(1 for p in predicted if p == value)
        present = sum(1 for a in actual if a == value)
        scores.append(2 * hits / (answered + present) if hits else 0.0)
    return sum(scores) / len(scores) if scores else math.nan


def score_attribute(attribute: str, truth: Mapping[str, str], predicted: Mapping[str, str]) -> AttributeScore:
    """Accuracy and macro-F1 over the households in both mappings (empty truths left out)."""
    ids = [h for h in truth if truth[h] and h in predicted]
    actual = [truth[h] for h in ids]
    answered = [predicted[h] for h in ids]
    majority = Counter(actual).most_common(1)[0][0] if actual else ""
    always = [majority] * len(actual)
    return AttributeScore(
        attribute=attribute,
        households=len(ids),
        accuracy=sum(a == p for a, p in zip(actual, answered)) / len(ids) if ids else math.nan,
        macro_f1=macro_f1(actual, answered),
        majority=majority,
        majority_accuracy=sum(a == majority for a in actual) / len(ids) if ids else math.nan,
        majority_macro_f1=macro_f1(actual, always),
        predicted=dict(Counter(answered)),
    )


# The profiler's bands for Complete Journey's survey answers (demographics.parquet).
_INCOME_BANDS = {
    "Under 15K": "lower",
    "15-24K": "lower",
    "25-34K": "lower",
    "35-49K": "middle",
    "50-74K": "middle",
}
_AGE_BANDS = {"19-24": "under 35", "25-34": "under 35", "35-44": "35-54", "45-54": "35-54"}


def completejourney_truth(demographics: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """attribute → household → the profiler's value for it, from `read_demographics()` rows:
    household size 1..4 or "5+"; income under 35K "lower", 35-74K "middle", above "upper"; age
    under 35, 35-54 or 55+."""
    truth: dict[str, dict[str, str]] = {"household size": {}, "income band": {}, "age band": {}}
    for household, row in demographics.items():
        truth["household size"][household] = row.get("household_size", "")
        income = row.get("income", "")
        truth["income band"][household] = _INCOME_BANDS.get(income, "upper") if income else ""
        age = row.get("age", "")
        truth["age band"][household] = _AGE_BANDS.get(age, "55+") if age else ""
    return truth


def profile_answers(profiles: Mapping[str, CustomerProfile]) -> dict[str, dict[str, str]]:
    """attribute → customer → what the profiler answered, in `completejourney_truth`'s values."""
    return {
        "household size": {h: str(p.household.size) if p.household.size < 5 else "5+" for h, p in profiles.items()},
        "income band": {h: p.income.band for h, p in profiles.items()},
        "age band": {h: p.age.band for h, p in profiles.items()},
    }


def profile_report(scores: Sequence[AttributeScore]) -> str:
    lines = [f"  {'attribute':<16} {'households':>10} {'accuracy':>9} {'macro-F1':>9}   always the most common"]
    for s in scores:
        lines.append(
            f"  {s.attribute:<16} {s.households:>10} {s.accuracy:>9.3f} {s.macro_f1:>9.3f}   "
            f"{s.majority!r}: accuracy {s.majority_accuracy:.3f}, macro-F1 {s.majority_macro_f1:.3f}"
        )
    return "\n".join(lines)
