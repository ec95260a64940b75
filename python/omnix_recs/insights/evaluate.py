"""Offline evaluation of consumption predictions: predict as of a cut-off, compare with what the
customers did in the held-out days after it, next to simple baselines.

Everything before the cut-off (the last `holdout_days`) is the past, and the population baseline
is rebuilt from it alone, so nothing from the future leaks in. Errors are in days: the next trip,
and the next purchase of each product bought on two or more trips and again after the cut-off.
The baselines (mean gap, median gap, population cycle) answer for the same customers and
products, and a prediction before the cut-off is moved to it for every method alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from omnix_recs.domain.consumption import (
    PurchaseTable,
    customer_cycles,
    enrich_history,
    from_day,
    to_day,
)
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.predictions import (
    SAME_TRIP_DAYS,
    ForecastScore,
    forecast_consumption,
    score_forecast,
    summarise_scores,
)
from omnix_recs.insights.baseline import build_baseline
from omnix_recs.store.base import Store

MIN_TRIPS = 3
DEFAULT_HOLDOUT_DAYS = 28


@dataclass
class _Errors:
    """Absolute errors in days per method, over the same cases."""

    by_method: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, predicted_day: float, actual_day: float) -> None:
        self.by_method.setdefault(method, []).append(abs(predicted_day - actual_day))

    def mae(self, method: str) -> float:
        errors = self.by_method.get(method, [])
        return sum(errors) / len(errors) if errors else float("nan")

    def cases(self) -> int:
        return len(next(iter(self.by_method.values()), []))


def _trip_days(days: np.ndarray) -> list[float]:
    trips: list[float] = []
    for day in np.sort(days):
        if not trips or day - trips[-1] >= SAME_TRIP_DAYS:
            trips.append(float(day))
    return trips


def _baselines(trips: list[float], population_cycle: float, cutoff: float) -> dict[str, float]:
    """Naive next-occurrence days from a series of trip days (at least two)."""
    gaps = np.diff(trips)
    last = trips[-1]
    guesses = {"mean gap": last + float(np.mean(gaps)), "median gap": last + float(np.median(gaps))}
    if np.isfinite(population_cycle):
        guesses["population cycle"] = last + population_cycle
    return {name: max(day, cutoff) for name, day in guesses.items()}


def evaluate_predictions(
    store: Store,
    *,
    max_customers: int | None = None,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Backtest next-trip and next-purchase predictions on the store's data; a printable table."""
    started = time.perf_counter()
    table = PurchaseTable.from_columns(store.scan_purchases())
    if len(table) == 0:
        return "no purchases to evaluate"
    products = {p.product_id: p for p in store.iter_products()}
    cutoff = float(np.floor(table.day.max())) - holdout_days
    as_of = from_day(cutoff)
    past = table.before(cutoff)
    baseline = build_baseline(past, products.values(), as_of=as_of)
    population = baseline.cycles

    order = np.argsort(table.customer, kind="stable")
    bounds = np.searchsorted(table.customer[order], np.arange(len(table.customer_ids) + 1))
    visits, purchases_, scores = _Errors(), _Errors(), []
    eligible: list[int] = []
    for code in range(len(table.customer_ids)):
        rows = order[bounds[code] : bounds[code + 1]]
        days = table.day[rows]
        if (days >= cutoff).any() and len(_trip_days(days[days < cutoff])) >= MIN_TRIPS:
            eligible.append(code)
    if max_customers is not None and len(eligible) > max_customers:
        # An even spread over the customer list, not its first N (ids often encode sign-up order).
        eligible = [eligible[i] for i in np.linspace(0, len(eligible) - 1, max_customers).round().astype(int)]

    for n, code in enumerate(eligible):
        rows = order[bounds[code] : bounds[code + 1]]
        customer_id = table.customer_ids[code]
        purchases = [
            Purchase(
                customer_id=customer_id,
                order_id=str(table.order[r]),
                product_id=table.product_ids[table.product[r]],
                quantity=int(table.quantity[r]),
                unit_price=float(table.unit_price[r]),
                purchased_at=from_day(float(table.day[r])),
            )
            for r in rows
        ]
        history = enrich_history(customer_id, purchases, products, as_of=as_of)
        cycles = customer_cycles(history, population)
        forecast = forecast_consumption(history, cycles, population)
        later = [p for p in purchases if p.purchased_at >= as_of]
        scores.append(score_forecast(forecast, later))

        past_days = table.day[rows][table.day[rows] < cutoff]
        first_trip_after = float(table.day[rows][table.day[rows] >= cutoff].min())
        guesses = _baselines(_trip_days(past_days), population.visit_cycle_days, cutoff)
        visits.add("OMNIX", to_day(forecast.next_visit_at), first_trip_after)
        for name, day in guesses.items():
            visits.add(name, day, first_trip_after)

        first_after: dict[str, float] = {}
        for p in sorted(later, key=lambda p: p.purchased_at):
            first_after.setdefault(p.product_id, to_day(p.purchased_at))
        for product_forecast in forecast.products:
            pid = product_forecast.product_id
            cycle = cycles.products[pid]
            if cycle.trips < 2 or pid not in first_after or pid not in population.product_cycle_days:
                continue
            product_days = np.array([to_day(line.purchased_at) for line in history.product_lines[pid]])
            actual = first_after[pid]
            purchases_.add("OMNIX", to_day(product_forecast.next_purchase_at), actual)
            for name, day in _baselines(_trip_days(product_days), population.prior_for(pid), cutoff).items():
                purchases_.add(name, day, actual)
        if progress and (n + 1) % 500 == 0:
            progress(f"{n + 1}/{len(eligible)} customers")

    return _report(
        as_of=as_of,
        holdout_days=holdout_days,
        customers=len(eligible),
        visits=visits,
        purchases=purchases_,
        scores=scores,
        seconds=time.perf_counter() - started,
        order_lines=len(table),
    )


def _median(errors: _Errors, method: str) -> float:
    values = errors.by_method.get(method, [])
    return statistics.median(values) if values else float("nan")


def _report(
    *,
    as_of: datetime,
    holdout_days: int,
    customers: int,
    visits: _Errors,
    purchases: _Errors,
    scores: list[ForecastScore],
    seconds: float,
    order_lines: int,
) -> str:
    summary = summarise_scores(scores)
    lines = [
        f"Consumption predictions, backtest as of {as_of.date().isoformat()} with {holdout_days} days held out",
        f"{customers} customers ({order_lines} order lines), {seconds:.1f} s",
        "",
        f"{'next trip':<40} {'MAE days':>9}",
    ]
    labels = {
        "OMNIX": "OMNIX (shrunk cadence + weekday habit)",
        "mean gap": "last trip + mean gap",
        "median gap": "last trip + median gap",
        "population cycle": "last trip + population cadence",
    }
    for method, label in labels.items():
        lines.append(f"  {label:<38} {visits.mae(method):>9.2f}")
    lines += ["", f"{'next purchase per product':<40} {'MAE days':>9}   ({purchases.cases()} products bought again)"]
    product_labels = {
        "OMNIX": "OMNIX (shrunk robust cycle, on a trip)",
        "mean gap": "last purchase + mean gap",
        "median gap": "last purchase + median gap",
        "population cycle": "last purchase + population cycle",
    }
    for method, label in product_labels.items():
        lines.append(f"  {label:<38} {purchases.mae(method):>9.2f}")
    lines += [
        "",
        f"due now (expected on the next trip): precision {summary.due_now_precision:.2f}, "
        f"recall {summary.due_now_recall:.2f}",
        f"median OMNIX error: next trip {_median(visits, 'OMNIX'):.2f} days, "
        f"next purchase {_median(purchases, 'OMNIX'):.2f} days",
    ]
    return "\n".join(lines)
