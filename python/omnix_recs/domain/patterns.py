"""Purchase patterns: what a customer buys how often, when they shop, and what is changing.

Inputs are a `CustomerHistory` and its `CustomerCycles` (see `consumption.py`); everything here
is counting and comparing, no I/O. Times are read in UTC: the service runs one store's
customers, whose local weekday and hour shift together.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import dataclass

from omnix_recs.domain.consumption import CustomerCycles, CustomerHistory, Cycle, days_between

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYPARTS = (("night", 0, 6), ("morning", 6, 12), ("afternoon", 12, 17), ("evening", 17, 24))

# A weekday is a habit when it holds half the trips (uniform would be 1/7 = 14 %); weaker
# preferences are not reported. Next-trip forecasts do not need it: a Saturday shopper's gaps
# (7 days, 14 days) already carry the weekday (outlook.py).
HABIT_SHARE = 0.5
MIN_TRIPS_FOR_HABIT = 4
# Seasonality needs most of a year; shorter histories confuse season with trend.
MIN_DAYS_FOR_SEASON = 300
# Trend rules (see `product_trend`).
MIN_TRIPS_FOR_STOPPED = 3
MIN_TRIPS_FOR_PACE = 5
STOPPED_CYCLES = 3.0
GROWING_PACE = 0.67
FADING_PACE = 1.5


class Trend(enum.StrEnum):
    STEADY = "steady"
    GROWING = "growing"  # buying it more often lately
    FADING = "fading"  # buying it less often lately
    STOPPED = "stopped"  # last purchase far past its cycle


@dataclass(frozen=True, slots=True)
class ProductFrequency:
    product_id: str
    name: str
    department: str
    aisle: str
    trips: int  # orders containing it
    units: int
    spend: float
    trip_share: float  # share of the customer's trips that include it
    per_month: float  # trips per 30 days over the customer's history


@dataclass(frozen=True, slots=True)
class CategoryShare:
    name: str
    lines: int
    units: int
    spend: float
    share: float  # of the customer's order lines


@dataclass(frozen=True, slots=True)
class ProductTrend:
    product_id: str
    name: str
    trend: Trend
    evidence: str


@dataclass(frozen=True, slots=True)
class Rhythm:
    """When the customer shops."""

    weekday_share: tuple[float, ...]  # Monday..Sunday, of trips
    habit_weekday: int | None  # 0 = Monday; None = no habit
    hour_share: tuple[float, ...]  # 0..23, of trips
    daypart: str | None  # the part of the day holding most trips; None when times are absent
    month_share: tuple[float, ...]  # Jan..Dec, of spend
    peak_month: int | None  # 1..12 when the history is long enough and a month stands out


@dataclass(frozen=True)
class PurchasePatterns:
    visits: int
    lines: int
    units: int
    spend: float
    span_days: float
    mean_basket_lines: float
    mean_basket_spend: float
    products: tuple[ProductFrequency, ...]  # most frequent first
    departments: tuple[CategoryShare, ...]  # largest first
    aisles: tuple[CategoryShare, ...]  # largest first
    rhythm: Rhythm
    trends: tuple[ProductTrend, ...]  # growing, fading and stopped products only


def product_frequency(history: CustomerHistory) -> tuple[ProductFrequency, ...]:
    trips = max(1, len(history.visits))
    months = max(history.span_days, 1.0) / 30.0
    rows = []
    for pid, lines in history.product_lines.items():
        orders = len({line.order_id for line in lines})
        first = lines[0]
        rows.append(
            ProductFrequency(
                product_id=pid,
                name=first.name,
                department=first.department,
                aisle=first.aisle,
                trips=orders,
                units=sum(line.quantity for line in lines),
                spend=round(sum(line.spend for line in lines), 2),
                trip_share=orders / trips,
                per_month=orders / months,
            )
        )
    rows.sort(key=lambda r: (-r.trips, -r.spend, r.product_id))
    return tuple(rows)


def category_shares(history: CustomerHistory, level: str) -> tuple[CategoryShare, ...]:
    """Shares per `level` ("department" or "aisle") of the customer's order lines."""
    lines: Counter[str] = Counter()
    units: Counter[str] = Counter()
    spend: dict[str, float] = {}
    for line in history.lines:
        key = getattr(line, level)
        lines[key] += 1
        units[key] += line.quantity
        spend[key] = spend.get(key, 0.0) + line.spend
    total = max(1, len(history.lines))
    rows = [
        CategoryShare(name=k, lines=n, units=units[k], spend=round(spend[k], 2), share=n / total)
        for k, n in lines.items()
    ]
    rows.sort(key=lambda r: (-r.lines, r.name))
    return tuple(rows)


def _shares(counts: list[float]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(c / total if total else 0.0 for c in counts)


def shopping_rhythm(history: CustomerHistory) -> Rhythm:
    visits = history.visits
    weekdays = [0.0] * 7
    hours = [0.0] * 24
    for visit in visits:
        weekdays[visit.at.weekday()] += 1
        hours[visit.at.hour] += 1
    weekday_share = _shares(weekdays)
    best_day = max(range(7), key=lambda d: weekday_share[d])
    habit = best_day if len(visits) >= MIN_TRIPS_FOR_HABIT and weekday_share[best_day] >= HABIT_SHARE else None

    # Imports without a time of day put every order at midnight: no daypart to report then.
    times_known = len({(v.at.hour, v.at.minute) for v in visits}) > 1
    daypart = None
    if times_known:
        daypart = max(DAYPARTS, key=lambda part: sum(hours[part[1] : part[2]]))[0]

    months = [0.0] * 12
    for line in history.lines:
        months[line.purchased_at.month - 1] += line.spend
    month_share = _shares(months)
    peak = None
    if history.span_days >= MIN_DAYS_FOR_SEASON:
        best_month = max(range(12), key=lambda m: month_share[m])
        # Stands out: half again as much as an average month.
        if month_share[best_month] >= 1.5 / 12:
            peak = best_month + 1
    return Rhythm(
        weekday_share=weekday_share,
        habit_weekday=habit,
        hour_share=_shares(hours),
        daypart=daypart,
        month_share=month_share,
        peak_month=peak,
    )


def product_trend(cycle: Cycle, days_since_last: float) -> Trend:
    """Classify a product's recent pace against its usual cycle.

    - stopped: an established habit (3+ trips) whose last purchase is more than 3 cycles ago,
      or further still when the customer's gaps are irregular (cycle × (1 + 3 × dispersion));
    - growing / fading: with 5+ trips, the median of the latest three gaps is under 2/3 or over
      1.5 times the usual cycle (fading also when the current gap is already twice the cycle).
    """
    if not cycle.known or cycle.trips < MIN_TRIPS_FOR_STOPPED:
        return Trend.STEADY
    spread = cycle.dispersion if math.isfinite(cycle.dispersion) else 0.0
    if days_since_last > cycle.cycle_days * max(STOPPED_CYCLES, 1.0 + 3.0 * spread):
        return Trend.STOPPED
    if cycle.trips < MIN_TRIPS_FOR_PACE:
        return Trend.STEADY
    usual = cycle.own_cycle_days
    if cycle.recent_cycle_days < GROWING_PACE * usual:
        return Trend.GROWING
    if cycle.recent_cycle_days > FADING_PACE * usual or days_since_last > 2.0 * cycle.cycle_days:
        return Trend.FADING
    return Trend.STEADY


def _trend_evidence(trend: Trend, cycle: Cycle, days_since_last: float) -> str:
    if trend is Trend.STOPPED:
        return f"usually every {cycle.cycle_days:.0f} days; last bought {days_since_last:.0f} days ago"
    return f"lately every {cycle.recent_cycle_days:.0f} days against a usual {cycle.own_cycle_days:.0f}" + (
        f"; last bought {days_since_last:.0f} days ago" if trend is Trend.FADING else ""
    )


def product_trends(history: CustomerHistory, cycles: CustomerCycles) -> tuple[ProductTrend, ...]:
    """Products whose pace changed, stopped first, then fading, then growing."""
    order = {Trend.STOPPED: 0, Trend.FADING: 1, Trend.GROWING: 2}
    rows = []
    for pid, cycle in cycles.products.items():
        since = days_between(cycle.last_at, history.as_of)
        trend = product_trend(cycle, since)
        if trend is Trend.STEADY:
            continue
        name = history.product_lines[pid][0].name
        rows.append(ProductTrend(pid, name, trend, _trend_evidence(trend, cycle, since)))
    rows.sort(key=lambda r: (order[r.trend], r.product_id))
    return tuple(rows)


def detect_patterns(history: CustomerHistory, cycles: CustomerCycles) -> PurchasePatterns:
    visits = history.visits
    n_visits = len(visits)
    spend = sum(line.spend for line in history.lines)
    return PurchasePatterns(
        visits=n_visits,
        lines=len(history.lines),
        units=sum(line.quantity for line in history.lines),
        spend=round(spend, 2),
        span_days=history.span_days,
        mean_basket_lines=len(history.lines) / n_visits if n_visits else 0.0,
        mean_basket_spend=spend / n_visits if n_visits else 0.0,
        products=product_frequency(history),
        departments=category_shares(history, "department"),
        aisles=category_shares(history, "aisle"),
        rhythm=shopping_rhythm(history),
        trends=product_trends(history, cycles),
    )
