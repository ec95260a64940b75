"""GetExperimentResults: per-arm figures, intervals and the verdict of an experiment.

The unit is the customer (assignment is per customer): a customer enters the experiment with
the first list it serves them. The figures are re-read from the store each time (served lists
stamped with the experiment, feedback on them, the customers' purchases), so every process
answers alike. Looks are taken at every day boundary since the start and at the end; the
p-value of the primary metric is the minimum of the mSPRT p-values over those looks (stats.py),
which is what an analyst peeking daily would have seen, and stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from omnix_recs.domain.models import Feedback, FeedbackEvent, Purchase, ServedRecommendation
from omnix_recs.experiments import stats
from omnix_recs.experiments.assignment import HOLDOUT_ARM, planned_shares
from omnix_recs.experiments.attribution import attribute_purchases
from omnix_recs.store.base import ExperimentRecord, Store

METRICS = ("click_through_rate", "conversion_rate", "revenue_per_customer")
# Spend before the start that CUPED corrects with.
PRE_PERIOD = timedelta(days=28)
MAX_LOOKS = 400
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ArmResult:
    arm_id: str
    customers: int
    served_lists: int
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    revenue: float
    click_through_rate: Estimate
    conversion_rate: Estimate
    revenue_per_customer: Estimate
    # Against the control arm (the first), on the primary metric; zeros for the control itself.
    difference: Estimate = Estimate(0.0, 0.0, 0.0)
    p_value: float = 1.0


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    experiment: ExperimentRecord
    arms: tuple[ArmResult, ...]
    p_value: float
    winner: str  # an arm id; empty until a difference is significant
    sample_ratio_mismatch: bool
    sample_ratio_p_value: float
    # Share of the primary metric's variance CUPED removed (0 for click-through rate, a ratio
    # of clicks to items, which it does not adjust).
    cuped_variance_reduction: float
    looks: int
    as_of: datetime


@dataclass(slots=True)
class ExperimentData:
    """What the results are computed from, read from the store."""

    lists: list[ServedRecommendation]
    feedback: list[Feedback]
    purchases: list[Purchase] = field(default_factory=list)  # the experiment's customers', pre-period included


def read_experiment_data(store: Store, experiment: ExperimentRecord, now: datetime) -> ExperimentData:
    end = experiment.stopped_at or now
    lists = store.served_lists_between(experiment.created_at, end, experiment.experiment_id)
    feedback = store.feedback_on([s.recommendation_id for s in lists])
    purchases: list[Purchase] = []
    for customer_id in dict.fromkeys(s.customer_id for s in lists):
        token = ""
        while True:
            page = store.list_purchases(
                customer_id, _PAGE, token, start=experiment.created_at - PRE_PERIOD, end=now + timedelta(microseconds=1)
            )
            purchases += page.items
            token = page.next_page_token
            if not token:
                break
    return ExperimentData(lists, feedback, purchases)


def experiment_results(store: Store, experiment: ExperimentRecord, now: datetime) -> ExperimentResults:
    return compute_results(experiment, read_experiment_data(store, experiment, now), now)


def compute_results(
    experiment: ExperimentRecord, data: ExperimentData, now: datetime, alpha: float = stats.DEFAULT_ALPHA
) -> ExperimentResults:
    start = experiment.created_at
    end = experiment.stopped_at or now
    window = timedelta(days=experiment.attribution_window_days)
    looks = _look_times(start, max(now, start))
    n_looks = len(looks)

    # Customers, in order of first list; each is in one arm (assignment is a function of the id).
    first_arm: dict[str, str] = {}
    for served in data.lists:
        first_arm.setdefault(served.customer_id, served.arm_in(experiment.experiment_id))
    customers = list(first_arm)
    index = {c: i for i, c in enumerate(customers)}
    arm_of = np.array([first_arm[c] for c in customers], dtype=object)
    n = len(customers)

    def cumulative(events: Sequence[tuple[str, datetime, float]]) -> np.ndarray:
        """Per customer, per look: the sum of event values before that look."""
        table = np.zeros((n, n_looks + 1))
        if events:
            rows = np.array([index[c] for c, _, _ in events], dtype=np.int64)
            cols = np.searchsorted(looks, np.array([t.timestamp() for _, t, _ in events]), side="right")
            np.add.at(table, (rows, cols), np.array([v for _, _, v in events]))
        return np.cumsum(table, axis=1)[:, :n_looks]

    lists_by_id = {s.recommendation_id: s for s in data.lists}
    served_events = [(s.customer_id, s.generated_at, 1.0) for s in data.lists]
    impression_events = [(s.customer_id, s.generated_at, float(len(s.items))) for s in data.lists]
    first_seen: dict[str, datetime] = {}
    for served in data.lists:
        first_seen.setdefault(served.customer_id, served.generated_at)
    presence_events = [(c, t, 1.0) for c, t in first_seen.items()]
    feedback = [f for f in data.feedback if f.recommendation_id in lists_by_id and f.occurred_at <= now]
    click_events = [
        (lists_by_id[f.recommendation_id].customer_id, f.occurred_at, 1.0)
        for f in feedback
        if f.event == FeedbackEvent.CLICKED
    ]
    cart_events = [
        (lists_by_id[f.recommendation_id].customer_id, f.occurred_at, 1.0)
        for f in feedback
        if f.event == FeedbackEvent.ADDED_TO_CART
    ]
    in_experiment = [p for p in data.purchases if start <= p.purchased_at <= min(now, end + window)]
    attributed = attribute_purchases(data.lists, in_experiment, window)
    purchase_events = [(a.purchase.customer_id, a.purchase.purchased_at, 1.0) for a in attributed]
    revenue_events = [(a.purchase.customer_id, a.purchase.purchased_at, a.revenue) for a in attributed]
    first_conversion: dict[str, datetime] = {}
    for a in sorted(attributed, key=lambda a: a.purchase.purchased_at):
        first_conversion.setdefault(a.purchase.customer_id, a.purchase.purchased_at)
    conversion_events = [(c, t, 1.0) for c, t in first_conversion.items()]
    pre_spend = np.zeros(n)
    for p in data.purchases:
        if p.purchased_at < start and p.customer_id in index:
            pre_spend[index[p.customer_id]] += p.unit_price * p.quantity

    present = cumulative(presence_events)
    impressions = cumulative(impression_events)
    clicks = cumulative(click_events)
    converted = cumulative(conversion_events)
    revenue = cumulative(revenue_events)
    # Per metric: per-customer numerator and denominator at every look.
    metric_values = {
        "click_through_rate": (clicks, impressions),
        "conversion_rate": (converted, present),
        "revenue_per_customer": (revenue, present),
    }
    adjusted, reduction = _cuped(metric_values, pre_spend, present)

    arm_ids = [a.arm_id for a in experiment.arms] + ([HOLDOUT_ARM] if experiment.holdout_percent else [])
    masks = {arm: arm_of == arm for arm in arm_ids}
    sums = {
        (arm, metric): stats.RatioSums.of(num[masks[arm]], den[masks[arm]])
        for arm in arm_ids
        for metric, (num, den) in adjusted.items()
    }
    served_count, carts, bought = cumulative(served_events), cumulative(cart_events), cumulative(purchase_events)
    totals = {
        arm: {
            name: float(values[masks[arm], -1].sum()) if n else 0.0
            for name, values in (
                ("served_lists", served_count),
                ("impressions", impressions),
                ("clicks", clicks),
                ("add_to_carts", carts),
                ("purchases", bought),
                ("revenue", revenue),
            )
        }
        for arm in arm_ids
    }

    primary = experiment.primary_metric
    control = experiment.arms[0].arm_id
    control_sums = sums[(control, primary)]
    tau_sq = stats.tau_squared(control_sums.ratio())
    comparisons: dict[str, tuple[Estimate, float]] = {}
    treatments = [a.arm_id for a in experiment.arms[1:]]
    for arm in treatments:
        arm_sums = sums[(arm, primary)]
        difference = arm_sums.ratio() - control_sums.ratio()
        variance = arm_sums.variance() + control_sums.variance()
        p_looks = stats.always_valid_p_values(stats.msprt_p_value(difference, variance, tau_sq))
        # Bonferroni across the treatment arms, each against the control.
        p_value = min(1.0, float(p_looks[-1]) * len(treatments)) if n_looks else 1.0
        half = stats.confidence_sequence_half_width(float(variance[-1]), float(tau_sq[-1]), alpha / len(treatments))
        d = float(difference[-1])
        comparisons[arm] = (Estimate(d, d - half, d + half), p_value)

    winner = ""
    p_value = min((p for _, p in comparisons.values()), default=1.0)
    significant = {arm: est for arm, (est, p) in comparisons.items() if p < alpha}
    if significant:
        best = max(significant, key=lambda arm: significant[arm].value)
        winner = best if significant[best].value > 0 else control

    arms = []
    for arm in arm_ids:
        estimates = {}
        for metric in METRICS:
            s = sums[(arm, metric)]
            # The interval is around the CUPED-adjusted level (the arm's mean with the part its
            # customers' pre-period spend explains taken out); the figure is the observed level.
            centre, variance = float(s.ratio()[-1]), float(s.variance()[-1])
            num, den = metric_values[metric]
            observed = float(stats.RatioSums.of(num[masks[arm], -1], den[masks[arm], -1]).ratio()) if n else 0.0
            low, high = stats.normal_interval(centre, variance)
            estimates[metric] = Estimate(observed, low, high)
        difference, arm_p = comparisons.get(arm, (Estimate(0.0, 0.0, 0.0), 1.0))
        t = totals[arm]
        arms.append(
            ArmResult(
                arm_id=arm,
                customers=int(masks[arm].sum()),
                served_lists=int(t["served_lists"]),
                impressions=int(t["impressions"]),
                clicks=int(t["clicks"]),
                add_to_carts=int(t["add_to_carts"]),
                purchases=int(t["purchases"]),
                revenue=round(float(t["revenue"]), 2),
                click_through_rate=estimates["click_through_rate"],
                conversion_rate=estimates["conversion_rate"],
                revenue_per_customer=estimates["revenue_per_customer"],
                difference=difference,
                p_value=arm_p,
            )
        )

    shares = planned_shares(experiment)
    srm_p = stats.sample_ratio_p_value([int(masks[a].sum()) for a in arm_ids], [shares[a] for a in arm_ids])
    return ExperimentResults(
        experiment=experiment,
        arms=tuple(arms),
        p_value=p_value,
        winner=winner,
        sample_ratio_mismatch=srm_p < stats.SRM_THRESHOLD,
        sample_ratio_p_value=srm_p,
        cuped_variance_reduction=reduction.get(primary, 0.0),
        looks=n_looks,
        as_of=now,
    )


def _look_times(start: datetime, now: datetime) -> np.ndarray:
    """Epoch seconds of every day boundary after the start, then `now` (at most MAX_LOOKS)."""
    days = int((now - start) / timedelta(days=1))
    step = max(1, -(-days // (MAX_LOOKS - 1)))
    boundaries = [(start + timedelta(days=d)).timestamp() for d in range(step, days + 1, step)]
    return np.array([*[b for b in boundaries if b < now.timestamp()], now.timestamp()])


def _cuped(
    metric_values: dict[str, tuple[np.ndarray, np.ndarray]], pre_spend: np.ndarray, present: np.ndarray
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """Per-customer metrics (denominator 1) adjusted by pre-period spend at every look, and
    the share of variance removed at the last look."""
    adjusted = dict(metric_values)
    reduction: dict[str, float] = {}
    if present.size == 0:
        return adjusted, reduction
    for metric in ("conversion_rate", "revenue_per_customer"):
        num, den = metric_values[metric]
        out = num.copy()
        for look in range(num.shape[1]):
            here = den[:, look] > 0
            if here.sum() < 2:
                continue
            x, y = pre_spend[here], num[here, look]
            theta = stats.cuped_theta(y, x)
            out[here, look] = y - theta * (x - x.mean())
        adjusted[metric] = (out, den)
        last = den[:, -1] > 0
        before = float(np.var(num[last, -1])) if last.sum() > 1 else 0.0
        after = float(np.var(out[last, -1])) if last.sum() > 1 else 0.0
        reduction[metric] = max(0.0, 1 - after / before) if before > 0 else 0.0
    return adjusted, reduction
