"""What we know about one customer: the full analysis, and its compact PII-free summary.

`analyse_history` runs the domain pipeline (cycles → patterns → forecast → profile) once;
`customer_facts` condenses it into the JSON both analysts write from. The facts never contain
the customer's id, name, e-mail, postcode, age band or declared dietary restrictions (which can
reveal religion or health): only what the purchases show, products by id and shelf name, and
dates relative to the analysis. Bedrock sees exactly this and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omnix_recs.domain.consumption import CustomerCycles, CustomerHistory, customer_cycles, days_between
from omnix_recs.domain.models import Customer
from omnix_recs.domain.patterns import MONTHS, WEEKDAYS, PurchasePatterns, detect_patterns
from omnix_recs.domain.predictions import ConsumptionForecast, forecast_consumption
from omnix_recs.domain.profiling import CustomerProfile, profile_customer
from omnix_recs.insights.baseline import PopulationBaseline

TOP_PRODUCTS = 8
TOP_DEPARTMENTS = 5
DUE_PRODUCTS = 8
COMING_UP = 5
TRENDS = 6


@dataclass(frozen=True)
class CustomerAnalysis:
    history: CustomerHistory
    cycles: CustomerCycles
    patterns: PurchasePatterns
    forecast: ConsumptionForecast
    profile: CustomerProfile


def analyse_history(
    history: CustomerHistory, baseline: PopulationBaseline, customer: Customer | None = None
) -> CustomerAnalysis:
    cycles = customer_cycles(history, baseline.cycles)
    return CustomerAnalysis(
        history=history,
        cycles=cycles,
        patterns=detect_patterns(history, cycles),
        forecast=forecast_consumption(history, cycles, baseline.cycles),
        profile=profile_customer(history, cycles, baseline.catalog, baseline.profile, customer),
    )


def _r(value: float, digits: int = 1) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def customer_facts(analysis: CustomerAnalysis) -> dict[str, Any]:
    """The compact, PII-free summary of `analysis` (a JSON-ready dict, a few kilobytes)."""
    history, patterns, forecast, profile = analysis.history, analysis.patterns, analysis.forecast, analysis.profile
    as_of = history.as_of
    names = {pid: lines[0].name for pid, lines in history.product_lines.items()}
    visits = analysis.cycles.visits
    rhythm = patterns.rhythm

    def product(pid: str) -> dict[str, Any]:
        cycle = analysis.cycles.products[pid]
        return {
            "product_id": pid,
            "name": names[pid],
            "every_days": _r(cycle.cycle_days),
            "days_since_last": _r(days_between(cycle.last_at, as_of)),
            "cycle_confidence": _r(cycle.confidence, 2),
        }

    due = forecast.due_now[:DUE_PRODUCTS]
    upcoming = [p for p in forecast.products if not p.due_now][:COMING_UP]
    return {
        "as_of": as_of.date().isoformat(),
        "history": {
            "trips": patterns.visits,
            "days": _r(patterns.span_days, 0),
            "items_per_trip": _r(patterns.mean_basket_lines),
            "spend_per_trip": _r(patterns.mean_basket_spend, 2),
            "distinct_products": len(patterns.products),
        },
        "shopping": {
            "every_days": _r(visits.cycle_days) if visits else None,
            "regularity": _r(visits.confidence, 2) if visits else None,
            "usual_weekday": WEEKDAYS[rhythm.habit_weekday] if rhythm.habit_weekday is not None else None,
            "usual_daypart": rhythm.daypart,
            "days_since_last_trip": _r(days_between(history.visits[-1].at, as_of)) if history.visits else None,
            "next_trip": forecast.next_visit_at.date().isoformat() if forecast.next_visit_at else None,
            "seasonal_peak": MONTHS[rhythm.peak_month - 1] if rhythm.peak_month else None,
        },
        "top_departments": [
            {"name": d.name, "share": round(d.share, 2)} for d in patterns.departments[:TOP_DEPARTMENTS]
        ],
        "top_products": [{**product(p.product_id), "trips": p.trips} for p in patterns.products[:TOP_PRODUCTS]],
        "due_now": [product(p.product_id) for p in due],
        "coming_up": [{**product(p.product_id), "expected": p.next_purchase_at.date().isoformat()} for p in upcoming],
        "trends": [
            {"product_id": t.product_id, "name": t.name, "trend": t.trend.value, "evidence": t.evidence}
            for t in patterns.trends[:TRENDS]
        ],
        "profile": {
            "household": {
                "size": profile.household.size,
                "confidence": profile.household.confidence,
                "evidence": list(profile.household.evidence),
            },
            "budget": {
                "tier": profile.budget.tier.value,
                "price_sensitivity": profile.budget.price_sensitivity.value,
                "confidence": profile.budget.confidence,
                "evidence": list(profile.budget.evidence),
            },
            "lifestyle": [
                {"trait": t.trait.value, "confidence": t.confidence, "evidence": list(t.evidence)}
                for t in profile.lifestyle
            ],
            "lifecycle": {
                "segment": profile.lifecycle.segment.value,
                "confidence": profile.lifecycle.confidence,
                "evidence": list(profile.lifecycle.evidence),
            },
        },
    }


def cited_product_ids(facts: dict[str, Any]) -> set[str]:
    """Every product id the facts mention (the only ones an analyst may cite)."""
    ids: set[str] = set()
    for section in ("top_products", "due_now", "coming_up", "trends"):
        ids.update(item["product_id"] for item in facts[section])
    return ids
