"""Consumption predictions: the next shopping trip, the next purchase of each product, what is due.

Built on `CustomerCycles`. A product's next purchase is moved onto the nearest predicted trip,
because people buy milk when they shop, not on the day the old carton runs out; a customer who
is late for their usual trip is expected soon, not a whole cadence later. Forecasts are stored
(`to_document`) so that they can be scored later against what the customer really bought
(`score_forecast`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omnix_recs.domain.consumption import (
    SECONDS_PER_DAY,
    CustomerCycles,
    CustomerHistory,
    Cycle,
    PopulationCycles,
    add_days,
    days_between,
)
from omnix_recs.domain.models import Purchase
from omnix_recs.domain.patterns import Trend, product_trend, shopping_rhythm

# Written into every stored forecast, so accuracy can be compared across method changes.
METHOD = "cycles-v1"
# When a trip is overdue we expect the customer within this fraction of their cadence: a late
# customer is usually about to come back. Of 0, 0.25 and 0.5, 0.25 gave the lowest backtest
# error on generated data (benches/bench_insights.py).
OVERDUE_FRACTION = 0.25
# A customer expected less than half a day ago is on time, not late.
ON_TIME_DAYS = 0.5
MAX_HABIT_SHIFT_DAYS = 3
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


def _usual_time_of_day(history: CustomerHistory) -> timedelta | None:
    """The median time of day of the customer's trips (None without trips)."""
    seconds = [v.at.hour * 3600 + v.at.minute * 60 + v.at.second for v in history.visits]
    return timedelta(seconds=statistics.median_low(seconds)) if seconds else None


def predict_next_visit(history: CustomerHistory, visits: Cycle | None) -> tuple[datetime | None, float]:
    """When the customer will shop next, and how sure we are."""
    if visits is None or not visits.known:
        return None, 0.0
    as_of = history.as_of
    cadence = visits.cycle_days
    late_by = days_between(visits.last_at, as_of) - cadence
    if late_by <= ON_TIME_DAYS:
        expected = max(add_days(visits.last_at, cadence), as_of)
    else:
        expected = add_days(as_of, OVERDUE_FRACTION * cadence)
    confidence = visits.confidence
    if late_by > ON_TIME_DAYS:
        # Every cadence the customer stays away makes the habit a weaker guide.
        confidence *= cadence / (cadence + late_by)

    rhythm = shopping_rhythm(history)
    if rhythm.habit_weekday is not None:
        expected = _nearest_habit_day(expected, as_of, rhythm.weekday_share, cadence, visits.dispersion)
    time_of_day = _usual_time_of_day(history)
    if time_of_day is not None:
        at_time = expected.replace(hour=0, minute=0, second=0, microsecond=0) + time_of_day
        # Keep the day; only move within it, and never before `as_of`.
        expected = max(at_time, as_of)
    return expected, confidence


def _nearest_habit_day(
    expected: datetime, as_of: datetime, weekday_share: Sequence[float], cadence: float, dispersion: float
) -> datetime:
    """Move `expected` to the day nearby the customer most likes to shop on.

    Each candidate day within ±min(3, cadence/3) days scores its weekday's share of trips times
    a Gaussian of its distance from `expected` (width: the customer's own spread, at least a
    day), so a strong habit wins over a small shift and a weak one does not.
    """
    reach = int(min(MAX_HABIT_SHIFT_DAYS, cadence / 3.0))
    spread = cadence * (dispersion if math.isfinite(dispersion) else 0.5)
    width = max(1.0, spread)
    best, best_score = expected, -1.0
    for offset in range(-reach, reach + 1):
        candidate = expected + timedelta(days=offset)
        if candidate < as_of:
            continue
        score = weekday_share[candidate.weekday()] * math.exp(-0.5 * (offset / width) ** 2)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _onto_trip(
    expected: datetime, next_visit: datetime | None, cadence: float, as_of: datetime
) -> tuple[datetime, bool]:
    """The predicted trip nearest to `expected`, and whether it is the next one."""
    if next_visit is None or not math.isfinite(cadence) or cadence <= 0:
        return max(expected, as_of), expected <= as_of
    trips_ahead = max(0, round(days_between(next_visit, expected) / cadence))
    return add_days(next_visit, trips_ahead * cadence), trips_ahead == 0


def forecast_consumption(
    history: CustomerHistory, cycles: CustomerCycles, population: PopulationCycles
) -> ConsumptionForecast:
    """Predict the next trip and the next purchase of every product the customer still buys.

    Products left out: those with no cycle at all, those the customer has stopped buying, and
    one-off purchases of products most people do not buy again.
    """
    as_of = history.as_of
    next_visit, visit_confidence = predict_next_visit(history, cycles.visits)
    cadence = cycles.visits.cycle_days if cycles.visits else math.nan
    products = []
    for pid, cycle in cycles.products.items():
        if not cycle.known:
            continue
        repeat_rate = population.repeat_rate.get(pid, 0.0)
        if cycle.trips < 2 and repeat_rate < MIN_REPEAT_RATE:
            continue
        since = days_between(cycle.last_at, as_of)
        if product_trend(cycle, since) is Trend.STOPPED:
            continue
        expected = add_days(cycle.last_at, cycle.cycle_days)
        next_purchase, on_next_trip = _onto_trip(expected, next_visit, cadence, as_of)
        confidence = cycle.confidence * (repeat_rate if cycle.trips < 2 else 1.0)
        overdue = since / cycle.cycle_days
        if overdue > 1.5:
            confidence *= 1.5 / overdue
        products.append(
            ProductForecast(
                product_id=pid,
                next_purchase_at=next_purchase,
                confidence=confidence,
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
