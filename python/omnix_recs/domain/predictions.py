"""Consumption predictions: the next shopping trip, the next purchase of each product, what is due.

Both come from the survival outlook (`outlook.py`): the time already passed since the last trip
(or purchase) rules out every shorter gap, and the forecast is the median of the wait that is
left. A product's forecast is its purchase date if it is bought within the forecast horizon,
with the chance that it is as the confidence; a product the customer buys on most trips is due
on the next one. Forecasts are stored (`to_document`) so that they can be scored later against
what the customer really bought (`score_forecast`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from omnix_recs.domain.consumption import (
    SECONDS_PER_DAY,
    CustomerCycles,
    CustomerHistory,
    Cycle,
    PopulationCycles,
    add_days,
    days_between,
    to_day,
)
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.outlook import outlooks, visit_wait_days
from omnix_recs.domain.patterns import Trend, product_trend

# Written into every stored forecast, so accuracy can be compared across method changes.
METHOD = "survival-v1"
# A customer expected less than half a day ago is on time, not late.
ON_TIME_DAYS = 0.5
# A product expected within this share of the customer's cadence after their next trip is
# bought on that trip: people buy milk when they shop, not on the day the old carton runs out.
NEXT_TRIP_SHARE = 0.5
# A product bought only once is forecast when at least this share of its buyers buy it again.
MIN_REPEAT_RATE = 0.3
# Purchases this close to the first later one belong to the same trip (as in the Rust core).
SAME_TRIP_DAYS = 0.5


@dataclass(frozen=True, slots=True)
class ProductForecast:
    product_id: str
    next_purchase_at: datetime
    confidence: float  # 0..1
    cycle_days: float
    last_purchased_at: datetime
    due_now: bool  # expected on the next trip


@dataclass(frozen=True)
class ConsumptionForecast:
    customer_id: str
    as_of: datetime
    next_visit_at: datetime | None  # None: no purchase history to go on
    visit_confidence: float
    visit_cycle_days: float  # NaN when unknown
    products: tuple[ProductForecast, ...]  # soonest first
    method: str = METHOD

    @property
    def due_now(self) -> tuple[ProductForecast, ...]:
        return tuple(p for p in self.products if p.due_now)

    def to_document(self) -> dict[str, Any]:
        """The JSON body stored with `Store.put_document("predictions", ...)`."""
        return {
            "method": self.method,
            "as_of": self.as_of.isoformat(),
            "next_visit_at": self.next_visit_at.isoformat() if self.next_visit_at else None,
            "visit_confidence": self.visit_confidence,
            "visit_cycle_days": None if math.isnan(self.visit_cycle_days) else self.visit_cycle_days,
            "products": [
                {
                    "product_id": p.product_id,
                    "next_purchase_at": p.next_purchase_at.isoformat(),
                    "confidence": p.confidence,
                    "cycle_days": p.cycle_days,
                    "last_purchased_at": p.last_purchased_at.isoformat(),
                    "due_now": p.due_now,
                }
                for p in self.products
            ],
        }

    @classmethod
    def from_document(cls, customer_id: str, body: Mapping[str, Any]) -> ConsumptionForecast:
        visit_cycle = body.get("visit_cycle_days")
        return cls(
            customer_id=customer_id,
            as_of=datetime.fromisoformat(body["as_of"]),
            next_visit_at=datetime.fromisoformat(body["next_visit_at"]) if body.get("next_visit_at") else None,
            visit_confidence=float(body.get("visit_confidence", 0.0)),
            visit_cycle_days=math.nan if visit_cycle is None else float(visit_cycle),
            products=tuple(
                ProductForecast(
                    product_id=p["product_id"],
                    next_purchase_at=datetime.fromisoformat(p["next_purchase_at"]),
                    confidence=float(p["confidence"]),
                    cycle_days=float(p["cycle_days"]),
                    last_purchased_at=datetime.fromisoformat(p["last_purchased_at"]),
                    due_now=bool(p["due_now"]),
                )
                for p in body.get("products", ())
            ),
            method=str(body.get("method", METHOD)),
        )


def predict_next_visit(
    history: CustomerHistory, visits: Cycle | None, population: PopulationCycles
) -> tuple[datetime | None, float]:
    """When the customer will shop next, and how sure we are."""
    if visits is None or not visits.known:
        return None, 0.0
    as_of = history.as_of
    result = outlooks(
        np.zeros(len(history.visits), dtype=np.int64),
        np.array([to_day(v.at) for v in history.visits]),
        np.array([visits.own_cycle_days]),
        to_day(as_of),
        population.visit_gaps,
        population.visit_outlook,
    )
    cadence = visits.cycle_days
    wait = float(visit_wait_days(result.median_days, np.array([cadence]))[0])
    confidence = visits.confidence
    late_by = days_between(visits.last_at, as_of) - cadence
    if late_by > ON_TIME_DAYS:
        # Every cadence the customer stays away makes the habit a weaker guide.
        confidence *= cadence / (cadence + late_by)
    return add_days(as_of, wait), confidence


@dataclass(frozen=True, slots=True)
class ProductOutlook:
    """When a product will be bought next, as the survival outlook sees it (for every product,
    before `forecast_consumption` leaves out the stopped and the one-off ones)."""

    product_id: str
    next_purchase_at: datetime | None  # None: overdue beyond every gap anyone took
    horizon_probability: float  # chance of a purchase within the forecast horizon
    within_horizon: bool  # `next_purchase_at` is the median date given a purchase within it


def product_outlooks(
    history: CustomerHistory, cycles: CustomerCycles, population: PopulationCycles
) -> dict[str, ProductOutlook]:
    """The outlook of every product in the history, each product's own gaps mixed with the
    population's, moved towards its cycle (`Cycle.cycle_days`)."""
    product_ids = list(history.product_lines)
    if not product_ids:
        return {}
    code_of = {pid: code for code, pid in enumerate(product_ids)}
    result = outlooks(
        np.array([code_of[line.product_id] for line in history.lines], dtype=np.int64),
        np.array([to_day(line.purchased_at) for line in history.lines]),
        np.array([cycles.products[pid].cycle_days for pid in product_ids]),
        to_day(history.as_of),
        population.product_gaps,
        population.product_outlook,
    )
    out = {}
    for code, pid in enumerate(product_ids):
        within = float(result.horizon_median_days[code])
        median = float(result.median_days[code])
        wait = within if math.isfinite(within) else median if math.isfinite(median) else None
        out[pid] = ProductOutlook(
            product_id=pid,
            next_purchase_at=None if wait is None else add_days(history.as_of, wait),
            horizon_probability=float(result.horizon_probability[code]),
            within_horizon=math.isfinite(within),
        )
    return out


def forecast_consumption(
    history: CustomerHistory, cycles: CustomerCycles, population: PopulationCycles
) -> ConsumptionForecast:
    """Predict the next trip and the next purchase of every product the customer still buys.

    Products left out: those with no cycle at all, those the customer has stopped buying (or is
    overdue for beyond every gap seen), and one-off purchases of products most people do not buy
    again.
    """
    as_of = history.as_of
    next_visit, visit_confidence = predict_next_visit(history, cycles.visits, population)
    cadence = cycles.visits.cycle_days if cycles.visits else math.nan
    outlook = product_outlooks(history, cycles, population)
    products = []
    for pid, cycle in cycles.products.items():
        if not cycle.known:
            continue
        repeat_rate = population.repeat_rate.get(pid, 0.0)
        if cycle.trips < 2 and repeat_rate < MIN_REPEAT_RATE:
            continue
        if product_trend(cycle, days_between(cycle.last_at, as_of)) is Trend.STOPPED:
            continue
        expected = outlook[pid].next_purchase_at
        if expected is None:
            continue
        on_next_trip = _on_next_trip(expected, next_visit, cadence)
        products.append(
            ProductForecast(
                product_id=pid,
                next_purchase_at=next_visit if on_next_trip and next_visit is not None else expected,
                confidence=outlook[pid].horizon_probability * (repeat_rate if cycle.trips < 2 else 1.0),
                cycle_days=cycle.cycle_days,
                last_purchased_at=cycle.last_at,
                # Only habits the customer showed themselves count as due, not population guesses.
                due_now=on_next_trip and cycle.trips >= 2,
            )
        )
    products.sort(key=lambda p: (p.next_purchase_at, -p.confidence, p.product_id))
    return ConsumptionForecast(
        customer_id=history.customer_id,
        as_of=as_of,
        next_visit_at=next_visit,
        visit_confidence=visit_confidence,
        visit_cycle_days=cadence,
        products=tuple(products),
    )


def _on_next_trip(expected: datetime, next_visit: datetime | None, cadence: float) -> bool:
    """Whether a purchase expected at `expected` will happen on the next predicted trip."""
    if next_visit is None or not math.isfinite(cadence):
        return False
    return expected <= next_visit + timedelta(days=NEXT_TRIP_SHARE * cadence)


# --- scoring against what happened ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForecastScore:
    """How one forecast compares with the purchases made after it."""

    pending: bool  # no trip since the forecast yet: nothing to compare with
    visit_error_days: float  # |predicted - actual| next trip; NaN when pending or not predicted
    product_errors_days: tuple[float, ...]  # forecast products bought since, |predicted - actual|
    due_predicted: int  # products flagged due now
    due_hits: int  # ... that were bought on the next trip
    next_trip_forecast_products: int  # forecast products bought on the next trip


def score_forecast(forecast: ConsumptionForecast, purchases_after: Iterable[Purchase]) -> ForecastScore:
    """Compare a forecast with the purchases made at or after its `as_of` (any order)."""
    later = sorted((p for p in purchases_after if p.purchased_at >= forecast.as_of), key=lambda p: p.purchased_at)
    due = {p.product_id for p in forecast.due_now}
    if not later:
        return ForecastScore(True, math.nan, (), len(due), 0, 0)
    first_trip = later[0].purchased_at
    visit_error = (
        abs(days_between(forecast.next_visit_at, first_trip)) if forecast.next_visit_at is not None else math.nan
    )
    first_purchase: dict[str, datetime] = {}
    for p in later:
        first_purchase.setdefault(p.product_id, p.purchased_at)
    errors = tuple(
        abs(days_between(f.next_purchase_at, first_purchase[f.product_id]))
        for f in forecast.products
        if f.product_id in first_purchase
    )
    next_trip = {
        p.product_id for p in later if (p.purchased_at - first_trip).total_seconds() < SAME_TRIP_DAYS * SECONDS_PER_DAY
    }
    forecast_ids = {f.product_id for f in forecast.products}
    return ForecastScore(
        pending=False,
        visit_error_days=visit_error,
        product_errors_days=errors,
        due_predicted=len(due),
        due_hits=len(due & next_trip),
        next_trip_forecast_products=len(next_trip & forecast_ids),
    )


@dataclass(frozen=True, slots=True)
class AccuracySummary:
    """Scores of many forecasts pooled together."""

    forecasts: int  # forecasts considered
    scored: int  # ... with at least one trip since
    next_visit_mae_days: float  # NaN when nothing scored
    next_purchase_mae_days: float
    product_predictions_scored: int
    due_now_precision: float  # NaN when nothing was flagged
    due_now_recall: float  # NaN when no forecast product was bought on the next trip


def summarise_scores(scores: Sequence[ForecastScore]) -> AccuracySummary:
    scored = [s for s in scores if not s.pending]
    visit_errors = [s.visit_error_days for s in scored if math.isfinite(s.visit_error_days)]
    product_errors = [e for s in scored for e in s.product_errors_days]
    flagged = sum(s.due_predicted for s in scored)
    hits = sum(s.due_hits for s in scored)
    relevant = sum(s.next_trip_forecast_products for s in scored)
    return AccuracySummary(
        forecasts=len(scores),
        scored=len(scored),
        next_visit_mae_days=_mean(visit_errors),
        next_purchase_mae_days=_mean(product_errors),
        product_predictions_scored=len(product_errors),
        due_now_precision=hits / flagged if flagged else math.nan,
        due_now_recall=hits / relevant if relevant else math.nan,
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
