"""The business reports: recommendation performance, return (attributed revenue) and sales impact.

All three read one period: the lists served in it (and, for attribution, those served up to a
window before it), the feedback on them, and every purchase of the period, read through the
store's time index (`Store.purchases_between`): a report costs what its period holds, not a
pass over the whole purchase history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from omnix_recs.domain.models import Feedback, FeedbackEvent, Purchase, ServedRecommendation
from omnix_recs.experiments.assignment import HOLDOUT_ARM
from omnix_recs.experiments.attribution import DEFAULT_WINDOW, AttributedPurchase, attribute_purchases
from omnix_recs.store.base import Store

DEFAULT_PERIOD = timedelta(days=30)
# The plan's KPI: click-through above 5%.
CLICK_THROUGH_TARGET = 0.05


@dataclass(frozen=True, slots=True)
class PerformanceSlice:
    strategy: str
    model_version: str
    lists_served: int = 0
    impressions: int = 0  # items in the served lists
    clicks: int = 0
    add_to_carts: int = 0
    dismissals: int = 0
    purchases: int = 0  # attributed order lines
    revenue: float = 0.0  # attributed

    @property
    def click_through_rate(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def conversion_rate(self) -> float:
        return self.purchases / self.impressions if self.impressions else 0.0

    @property
    def dismissal_rate(self) -> float:
        return self.dismissals / self.impressions if self.impressions else 0.0


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    start: datetime
    end: datetime
    total: PerformanceSlice
    slices: tuple[PerformanceSlice, ...]  # by strategy and model version, most lists first
    # Customer satisfaction: of the recommended products bought, the share bought again later
    # in the period.
    repeat_purchase_rate: float

    @property
    def meets_click_through_target(self) -> bool:
        return self.total.click_through_rate > CLICK_THROUGH_TARGET


@dataclass(frozen=True, slots=True)
class RoiReport:
    start: datetime
    end: datetime
    attributed_revenue: float
    total_revenue: float
    attributed_purchases: int
    window_days: int

    @property
    def revenue_share(self) -> float:
        return self.attributed_revenue / self.total_revenue if self.total_revenue else 0.0


@dataclass(frozen=True, slots=True)
class ImpactReport:
    start: datetime
    end: datetime
    customers_exposed: int  # shoppers served a personalised list in the period
    customers_control: int  # shoppers who bought without one (held out, or never asked)
    average_order_value_exposed: float
    average_order_value_control: float
    basket_size_exposed: float  # units per order
    basket_size_control: float
    # Share of the period's customers who ordered in both of its halves.
    retention_exposed: float
    retention_control: float

    @property
    def order_value_uplift(self) -> float:
        control = self.average_order_value_control
        return self.average_order_value_exposed / control - 1 if control else 0.0

    @property
    def basket_size_uplift(self) -> float:
        control = self.basket_size_control
        return self.basket_size_exposed / control - 1 if control else 0.0


def period(start: datetime | None, end: datetime | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The report's [start, end): unset ends mean the last 30 days up to now."""
    end = end or now or datetime.now(UTC)
    return start or end - DEFAULT_PERIOD, end


@dataclass(slots=True)
class _PeriodData:
    lists: list[ServedRecommendation]  # served in [start - window, end)
    feedback: list[Feedback]
    purchases: list[Purchase]  # made in [start, end)


def _read(store: Store, start: datetime, end: datetime, window: timedelta) -> _PeriodData:
    lists = store.served_lists_between(start - window, end)
    feedback = [f for f in store.feedback_on([s.recommendation_id for s in lists]) if start <= f.occurred_at < end]
    return _PeriodData(lists, feedback, list(store.purchases_between(start, end)))


def recommendation_performance(
    store: Store, start: datetime, end: datetime, strategy: str = "", window: timedelta = DEFAULT_WINDOW
) -> PerformanceReport:
    data = _read(store, start, end, window)
    attributed = attribute_purchases(data.lists, data.purchases, window)
    in_period = {s.recommendation_id: s for s in data.lists if s.generated_at >= start}
    if strategy:
        in_period = {rid: s for rid, s in in_period.items() if s.strategy == strategy}
    slices: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(recommendation_id: str, name: str, value: float) -> None:
        served = in_period.get(recommendation_id)
        if served is not None:
            slices[(served.strategy, served.model_version)][name] += value

    for served in in_period.values():
        add(served.recommendation_id, "lists_served", 1)
        add(served.recommendation_id, "impressions", len(served.items))
    events = {
        FeedbackEvent.CLICKED: "clicks",
        FeedbackEvent.ADDED_TO_CART: "add_to_carts",
        FeedbackEvent.DISMISSED: "dismissals",
    }
    for f in data.feedback:
        if f.event in events:
            add(f.recommendation_id, events[FeedbackEvent(f.event)], 1)
    for a in attributed:
        add(a.recommendation_id, "purchases", 1)
        add(a.recommendation_id, "revenue", a.revenue)
    rows = [_slice(strategy_name, version, figures) for (strategy_name, version), figures in slices.items()]
    rows.sort(key=lambda s: (-s.lists_served, s.strategy, s.model_version))
    total = _slice(strategy, "", {name: sum(getattr(r, name) for r in rows) for name in _SLICE_FIGURES})
    return PerformanceReport(
        start,
        end,
        total,
        tuple(rows),
        _repeat_rate([a for a in attributed if a.recommendation_id in in_period], data.purchases),
    )


_SLICE_FIGURES = ("lists_served", "impressions", "clicks", "add_to_carts", "dismissals", "purchases", "revenue")


def _slice(strategy: str, model_version: str, figures: dict[str, float]) -> PerformanceSlice:
    counts = {name: int(figures.get(name, 0)) for name in _SLICE_FIGURES if name != "revenue"}
    return PerformanceSlice(strategy, model_version, **counts, revenue=round(figures.get("revenue", 0.0), 2))


def _repeat_rate(attributed: list[AttributedPurchase], purchases: list[Purchase]) -> float:
    if not attributed:
        return 0.0
    bought: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for p in purchases:
        bought[(p.customer_id, p.product_id)].append(p.purchased_at)
    again = sum(
        any(t > a.purchase.purchased_at for t in bought[(a.purchase.customer_id, a.purchase.product_id)])
        for a in attributed
    )
    return again / len(attributed)


def recommendation_roi(store: Store, start: datetime, end: datetime, window: timedelta = DEFAULT_WINDOW) -> RoiReport:
    data = _read(store, start, end, window)
    attributed = attribute_purchases(data.lists, data.purchases, window)
    return RoiReport(
        start,
        end,
        attributed_revenue=round(sum(a.revenue for a in attributed), 2),
        total_revenue=round(sum(p.unit_price * p.quantity for p in data.purchases), 2),
        attributed_purchases=len(attributed),
        window_days=window.days,
    )


def recommendation_impact(store: Store, start: datetime, end: datetime) -> ImpactReport:
    data = _read(store, start, end, timedelta(0))
    exposed_ids = {s.customer_id for s in data.lists if all(arm != HOLDOUT_ARM for _, arm in s.assignments)}
    orders: dict[tuple[str, str], list[Purchase]] = defaultdict(list)
    for p in data.purchases:
        orders[(p.customer_id, p.order_id)].append(p)
    middle = start + (end - start) / 2
    groups: dict[bool, list[list[Purchase]]] = {True: [], False: []}
    for (customer_id, _), lines in orders.items():
        groups[customer_id in exposed_ids].append(lines)

    def order_value(group: list[list[Purchase]]) -> float:
        return sum(sum(p.unit_price * p.quantity for p in lines) for lines in group) / len(group) if group else 0.0

    def basket_size(group: list[list[Purchase]]) -> float:
        return sum(sum(p.quantity for p in lines) for lines in group) / len(group) if group else 0.0

    def retention(group: list[list[Purchase]]) -> float:
        halves: dict[str, set[bool]] = defaultdict(set)
        for lines in group:
            halves[lines[0].customer_id].add(lines[0].purchased_at >= middle)
        return sum(len(h) == 2 for h in halves.values()) / len(halves) if halves else 0.0

    exposed, control = groups[True], groups[False]
    return ImpactReport(
        start,
        end,
        customers_exposed=len({lines[0].customer_id for lines in exposed}),
        customers_control=len({lines[0].customer_id for lines in control}),
        average_order_value_exposed=round(order_value(exposed), 2),
        average_order_value_control=round(order_value(control), 2),
        basket_size_exposed=round(basket_size(exposed), 3),
        basket_size_control=round(basket_size(control), 3),
        retention_exposed=round(retention(exposed), 4),
        retention_control=round(retention(control), 4),
    )
