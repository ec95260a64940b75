"""The model build: from order lines and the catalog to every item-side table serving reads.

Neighbour tables (co-purchase, basket complements, content), taste factors and each
customer's "shoppers like you" products come from the Rust core, in parallel with the GIL
released; per-item signals (popularity, trend, seasonal lift, repurchase cycles) from numpy. Everything is measured against `data_as_of`, the newest
purchase used, never the wall clock, so a build as of a past moment sees the shop as it was
then. The output is a `BuiltModel`; engine/artifact.py writes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from omnix_recs import _core
from omnix_recs.domain.models import Product
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.engine.matrix import (
    PurchaseLines,
    SparseMatrix,
    basket_item_matrix,
    customer_item_matrix,
    lines_from_snapshot,
    product_feature_matrix,
    read_purchase_lines,
)
from omnix_recs.errors import FailedPreconditionError
from omnix_recs.store import snapshot as training_snapshot
from omnix_recs.store.base import Store

DAY_SECONDS = 86_400
ISO_WEEKS = 53  # seasonal_lift column w - 1 holds ISO week w
TASTE_SEED = 20_261_125  # random start of the taste factors' subspace iteration


@dataclass(frozen=True, slots=True)
class BuildParameters:
    """Knobs of the build, recorded in the artifact's manifest."""

    neighbours: int = 50  # K: neighbours kept per item in each table
    copurchase_shrink: float = 10.0  # in units of (log-weighted) shared customers
    max_items_per_customer: int = 1000  # customers with more distinct items are left out of co-purchase
    basket_min_support: int = 3  # baskets that must hold both items
    basket_prior: float = 5.0  # pseudo-baskets pulling thin lifts towards 1
    content_shrink: float = 0.0
    max_feature_share: float = 0.2  # features on more of the catalog than this are ignored
    popularity_half_life_days: float = 30.0
    trending_window_days: int = 14  # "recent"...
    trending_baseline_days: int = 28  # ...against the weeks just before it
    trending_prior: float = 5.0  # pseudo-purchases in both windows
    seasonal_prior: float = 5.0  # pseudo-purchases pulling sparse weeks towards lift 1
    same_trip_days: float = 0.5  # purchases this close together are one shopping trip
    taste_dimensions: int = 32  # taste factors per item (0 = none)
    taste_iterations: int = 4  # rounds of subspace iteration: more = closer to the exact SVD
    like_you_neighbours: int = 50  # nearest customers averaged per customer (0 = no table)
    like_you_items: int = 50  # products kept per customer
    like_you_postings_cap: int = 64  # heaviest buyers per product the neighbour search walks (0 = all)
    habit_decay: float = HABIT_DECAY  # per trip back, in the customers' habit vectors


@dataclass(frozen=True, slots=True)
class BuiltModel:
    """A freshly built model, in memory: `arrays` are keyed by their artifact names."""

    item_ids: list[str]
    arrays: dict[str, np.ndarray]
    data_as_of: datetime | None  # the newest purchase used; None when there was none
    counts: dict[str, int]
    parameters: BuildParameters
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A model built without customers (or by hand) has an empty "shoppers like you" table.
        for name, empty in no_shoppers_like_you().items():
            self.arrays.setdefault(name, empty)

    def manifest_parameters(self) -> dict[str, object]:
        return asdict(self.parameters)


def build_model(
    store: Store, *, as_of: datetime | None = None, parameters: BuildParameters = BuildParameters()
) -> BuiltModel:
    """Build from everything in the store (only purchases before `as_of`, when given)."""
    started = time.perf_counter()
    products, lines = read_training_data(store, as_of=as_of)
    read_seconds = round(time.perf_counter() - started, 3)
    built = build_from_lines(lines, products, parameters)
    return replace(built, stage_seconds={"read_purchases": read_seconds, **built.stage_seconds})


def read_training_data(
    store: Store, *, as_of: datetime | None = None, snapshot_at: tuple[Path, str] | None = None
) -> tuple[list[Product], PurchaseLines]:
    """The catalog and every purchase line before `as_of` (all when None), as the build reads
    them: without the lines of customers who refused personalisation, whose history must not
    shape anyone's lists (theirs are not personalised either).

    With `snapshot_at` (directory, source: `store.snapshot.location`) the lines come from the
    training snapshot there, first brought up to date with the store (store/snapshot.py),
    rather than from a scan of the store."""
    # The catalog, the refusals (a scan of the profiles on DynamoDB) and the snapshot wait on
    # different things: read side by side.
    with ThreadPoolExecutor(2, thread_name_prefix="omnix-training-read") as pool:
        catalog = pool.submit(lambda: list(store.iter_products()))
        refusals = pool.submit(store.customers_without_personalization)
        snapshot = training_snapshot.fresh(store, *snapshot_at) if snapshot_at is not None else None
        products, refusing = catalog.result(), refusals.result()
    if snapshot is not None:
        return products, lines_from_snapshot(
            snapshot, (p.product_id for p in products), before=as_of, leave_out=refusing
        )
    batches = store.scan_purchases()
    if refusing:
        batches = (batch.without_customers(refusing) for batch in batches)
    lines = read_purchase_lines(
        batches,
        (p.product_id for p in products),
        before=as_of,
        expected_rows=store.count_purchases(),
    )
    return products, lines


def build_from_lines(
    lines: PurchaseLines,
    products: Sequence[Product],
    parameters: BuildParameters,
    *,
    like_you_for: np.ndarray | None = None,
    content: tuple[np.ndarray, np.ndarray] | None = None,
) -> BuiltModel:
    """The model of `lines`. `like_you_for` (customer codes): fill the "shoppers like you" rows of
    these customers only, the others empty: a model that will only ever rank them (a validation
    model) skips most of the build's largest stage. `content`: `content_neighbours(products,
    lines.item_ids, parameters)` when the caller has it (it depends on the catalog alone, so
    training's validation build and served build share one)."""
    if lines.n_items == 0:
        raise FailedPreconditionError("nothing to train on: the catalog and the purchase history are empty")
    p = parameters
    clock = _StageClock()
    arrays: dict[str, np.ndarray] = {}
    customers = customer_item_matrix(lines, max_items_per_customer=p.max_items_per_customer)
    arrays["cooc_idx"], arrays["cooc_sim"] = copurchase_neighbours(customers, p)
    clock.lap("copurchase")
    arrays["taste_factors"] = taste_factors(customers, p)
    clock.lap("taste")
    arrays.update(shoppers_like_you(lines, p, only=like_you_for))
    clock.lap("shoppers_like_you")
    arrays["fbt_idx"], arrays["fbt_score"] = basket_complements(lines, p)
    clock.lap("basket_complements")
    if content is None:
        content = content_neighbours(products, lines.item_ids, p)
        clock.lap("content")
    arrays["content_idx"], arrays["content_sim"] = content

    as_of = int(lines.purchased_at.max()) if len(lines) else None
    if as_of is None:
        zeros = np.zeros(lines.n_items, dtype=np.float32)
        arrays["popularity"], arrays["trending"] = zeros, zeros.copy()
        arrays["seasonal_lift"] = np.ones((lines.n_items, ISO_WEEKS), dtype=np.float32)
        arrays["population_cycle_days"] = np.full(lines.n_items, np.nan, dtype=np.float32)
        arrays["repurchase_rate"] = zeros.copy()
    else:
        arrays["popularity"] = decayed_popularity(lines, as_of, p.popularity_half_life_days)
        arrays["trending"] = trending_velocity(
            lines, as_of, p.trending_window_days, p.trending_baseline_days, p.trending_prior
        )
        arrays["seasonal_lift"] = seasonal_lift(lines, p.seasonal_prior)
        clock.lap("popularity_trending_seasonal")
        arrays["population_cycle_days"], arrays["repurchase_rate"] = repeat_purchases(lines, p.same_trip_days)
        clock.lap("repeat_purchases")
    return BuiltModel(
        item_ids=lines.item_ids,
        arrays=arrays,
        data_as_of=None if as_of is None else datetime.fromtimestamp(as_of, tz=UTC),
        counts={
            "items": lines.n_items,
            "customers": lines.n_customers,
            "order_lines": len(lines),
            "baskets": lines.n_baskets,
        },
        parameters=p,
        stage_seconds=clock.laps,
    )


# --- neighbour tables (Rust) -------------------------------------------------------------------


def copurchase_neighbours(customers: SparseMatrix, p: BuildParameters) -> tuple[np.ndarray, np.ndarray]:
    """Items bought by the same customers: cosine with shrinkage over customer × item."""
    return _core.cosine_item_neighbours(
        customers.indptr, customers.indices, customers.data, customers.n_cols, p.neighbours, p.copurchase_shrink
    )


def taste_factors(customers: SparseMatrix, p: BuildParameters) -> np.ndarray:
    """Which kinds of households buy each item: factors of who bought it at all (binary; how
    often is the replenishment signals' business). Seeded, so a rebuild gives the same model."""
    return _core.item_taste_factors(
        customers.indptr, customers.indices, customers.n_cols, p.taste_dimensions, p.taste_iterations, TASTE_SEED
    )


def no_shoppers_like_you() -> dict[str, np.ndarray]:
    """The "shoppers like you" table of a model that knows no customers."""
    return {
        "like_you_customers": np.zeros(0, dtype="<U1"),
        "like_you_indptr": np.zeros(1, dtype=np.int64),
        "like_you_items": np.zeros(0, dtype=np.int32),
        "like_you_scores": np.zeros(0, dtype=np.float32),
    }


def shoppers_like_you(
    lines: PurchaseLines, p: BuildParameters, *, only: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per customer, the products of the shoppers whose habits are nearest theirs (cosine over
    habit vectors; the other half of TIFU-KNN): candidates and a signal for their lists. `only`
    (customer codes): just these customers' rows, the others empty."""
    if p.like_you_neighbours <= 0 or p.like_you_items <= 0 or lines.n_customers == 0:
        return no_shoppers_like_you()
    indptr, items, scores = _core.shoppers_like_you_table(
        lines.customer,
        lines.basket,
        lines.item,
        lines.purchased_at,
        lines.n_customers,
        lines.n_items,
        habit_decay=p.habit_decay,
        neighbours=p.like_you_neighbours,
        items=p.like_you_items,
        postings_cap=p.like_you_postings_cap,
        only=None if only is None else np.ascontiguousarray(only, dtype=np.int32),
    )
    return {
        "like_you_customers": np.array(lines.customer_ids, dtype=str),
        "like_you_indptr": indptr,
        "like_you_items": items,
        "like_you_scores": scores,
    }


def basket_complements(lines: PurchaseLines, p: BuildParameters) -> tuple[np.ndarray, np.ndarray]:
    """ "Frequently bought together": items in the same baskets more often than chance (shrunk
    lift over basket × item), which puts pasta sauce, not another pasta, next to pasta."""
    matrix = basket_item_matrix(lines)
    return _core.basket_complements(
        matrix.indptr, matrix.indices, matrix.n_cols, p.neighbours, p.basket_min_support, p.basket_prior
    )


def content_neighbours(
    products: Sequence[Product], item_ids: Sequence[str], p: BuildParameters
) -> tuple[np.ndarray, np.ndarray]:
    """Items that look alike on the shelf: cosine over department, aisle, brand, price band,
    dietary tags and name words."""
    matrix = product_feature_matrix(products, item_ids, max_feature_share=p.max_feature_share)
    return _core.cosine_item_neighbours(
        matrix.indptr, matrix.indices, matrix.data, matrix.n_cols, p.neighbours, p.content_shrink
    )


# --- per-item signals (numpy) ------------------------------------------------------------------


def decayed_popularity(lines: PurchaseLines, as_of: int, half_life_days: float) -> np.ndarray:
    """Order lines per item, each weighted 2^(-age / half-life), scaled so the top item is 1."""
    age_days = (as_of - lines.purchased_at) / DAY_SECONDS
    weight = np.exp2(-age_days / half_life_days)
    popularity = np.bincount(lines.item, weights=weight, minlength=lines.n_items)
    top = popularity.max(initial=0.0)
    return (popularity / top if top > 0 else popularity).astype(np.float32)


def trending_velocity(
    lines: PurchaseLines, as_of: int, window_days: int, baseline_days: int, prior: float
) -> np.ndarray:
    """ln of the item's purchase rate in the last `window_days` over its rate in the
    `baseline_days` before, both counts padded with `prior` pseudo-purchases so that going from 1
    sale to 3 is not a trend. 0 = steady, > 0 = rising."""
    window_start = as_of - window_days * DAY_SECONDS
    baseline_start = window_start - baseline_days * DAY_SECONDS
    in_window = lines.purchased_at > window_start
    in_baseline = (lines.purchased_at > baseline_start) & ~in_window
    recent = np.bincount(lines.item[in_window], minlength=lines.n_items)
    before = np.bincount(lines.item[in_baseline], minlength=lines.n_items) * (window_days / baseline_days)
    return np.log((recent + prior) / (before + prior)).astype(np.float32)


def iso_week_columns(purchased_at: np.ndarray) -> np.ndarray:
    """Column of `seasonal_lift` (ISO week - 1) of each epoch-seconds timestamp."""
    day = purchased_at // DAY_SECONDS
    first = int(day.min())
    epoch = date(1970, 1, 1).toordinal()
    week_of_day = np.array(
        [date.fromordinal(epoch + first + d).isocalendar().week - 1 for d in range(int(day.max()) - first + 1)],
        dtype=np.int64,
    )
    columns: np.ndarray = week_of_day[day - first]
    return columns


def seasonal_lift(lines: PurchaseLines, prior: float) -> np.ndarray:
    """Per item and ISO week: the item's sales that week over what its share of the week's
    total sales predicts. Dividing by the week's total cancels weeks the data barely covers;
    counts are smoothed over neighbouring weeks (seasons are not one week wide) and padded with
    `prior` pseudo-purchases, which pulls sparse items towards 1."""
    week = iso_week_columns(lines.purchased_at)
    counts = np.bincount(lines.item.astype(np.int64) * ISO_WEEKS + week, minlength=lines.n_items * ISO_WEEKS)
    counts = counts.reshape(lines.n_items, ISO_WEEKS).astype(np.float64)
    week_share = counts.sum(axis=0) / counts.sum()
    expected = np.outer(counts.sum(axis=1), week_share)
    return ((_smooth_weeks(counts) + prior) / (_smooth_weeks(expected) + prior)).astype(np.float32)


def _smooth_weeks(per_week: np.ndarray) -> np.ndarray:
    """Weights 1-2-1 over each week and its neighbours; the year wraps around."""
    smoothed: np.ndarray = (np.roll(per_week, 1, axis=1) + 2 * per_week + np.roll(per_week, -1, axis=1)) / 4
    return smoothed


def repeat_purchases(lines: PurchaseLines, same_trip_days: float) -> tuple[np.ndarray, np.ndarray]:
    """(population cycle in days: median over repeat buyers of their median gap, NaN when
    nobody bought twice; repurchase rate: share of buyers who bought on two or more trips).

    The same estimator (`_core.population_cycles`) gives the consumption insights their priors,
    so the model and the insights agree on what "usually every 9 days" means.
    """
    days = (lines.purchased_at - lines.purchased_at.min()) / DAY_SECONDS
    cycles = _core.population_cycles(
        lines.customer.astype(np.int64),
        lines.item.astype(np.int64),
        days,
        lines.n_items,
        same_trip_days=same_trip_days,
        max_gap_sample=0,  # the survival outlook's sample is the insights' business
    )
    buyers = cycles["buyers"].astype(np.float64)
    rate = np.divide(cycles["repeat_buyers"], buyers, out=np.zeros_like(buyers), where=buyers > 0)
    return cycles["cycle_days"].astype(np.float32), rate.astype(np.float32)


class _StageClock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 3)
        self._last = now
