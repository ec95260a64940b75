"""Demand forecasts per product and reorder advice from them.

A product's demand is its recent daily sales, weighted towards the latest weeks (half-life
`HALF_LIFE_DAYS` over `LOOKBACK_DAYS`), taken as a Poisson rate. The point forecast of a
horizon's sales is the median of that distribution, not its mean: forecasts are judged by WAPE
(absolute errors), which the median minimises, and most products sell a few units a week, where
the two differ. The interval is the 10% and 90% quantiles. Reorder advice uses the same
distribution over the lead time and review period: the reorder point is its `service_level`
quantile, and "stock-outs avoided" is the expected shortfall in units without the order minus
with it. The functions are pure numpy; `InventoryPlanner` reads the store for them.

Forecasts are per store when asked: purchases record their store (`Purchase.store_id`), one
scan keeps the window's lines as arrays (`SalesWindow`), and each store's demand matrix is cut
from them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

import numpy as np

from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import NotFoundError
from omnix_recs.store.base import Store

SECONDS_PER_DAY = 86_400
LOOKBACK_DAYS = 91
HALF_LIFE_DAYS = 28.0
INTERVAL = (0.1, 0.9)
# Poisson quantiles are summed term by term up to this mean, and approximated by the normal above.
EXACT_POISSON_MAX = 200.0
# Per-store demand matrices a planner keeps (each is cut from the kept sales window).
MATRICES_KEPT = 16


@dataclass(frozen=True, eq=False)
class SalesWindow:
    """Every line sold in the `days` before `as_of_s`, as parallel arrays (a line's product and
    store are indexes into `product_ids` and `store_ids`; "" is the store of lines without one)."""

    product_ids: tuple[str, ...]
    store_ids: tuple[str, ...]
    product: np.ndarray  # int64 per line
    store: np.ndarray  # int64 per line
    day: np.ndarray  # int64 per line, 0 = the window's first day
    units: np.ndarray  # float64 per line
    as_of_s: float
    days: int

    @classmethod
    def from_columns(
        cls, batches: Iterable[PurchaseColumns], as_of_s: float, days: int = LOOKBACK_DAYS, exclude: Iterable[str] = ()
    ) -> SalesWindow:
        start = as_of_s - days * SECONDS_PER_DAY
        excluded = set(exclude)
        products: dict[str, int] = {}
        stores: dict[str, int] = {}
        product: list[int] = []
        store: list[int] = []
        day: list[int] = []
        units: list[float] = []
        for batch in batches:
            store_ids = batch.store_ids or [""] * len(batch)
            for product_id, quantity, at, store_id in zip(
                batch.product_ids, batch.quantities, batch.purchased_at, store_ids
            ):
                if start <= at < as_of_s and product_id not in excluded:
                    product.append(products.setdefault(product_id, len(products)))
                    store.append(stores.setdefault(store_id, len(stores)))
                    day.append(int((at - start) // SECONDS_PER_DAY))
                    units.append(float(quantity))
        return cls(
            tuple(products),
            tuple(stores),
            np.array(product, dtype=np.int64),
            np.array(store, dtype=np.int64),
            np.array(day, dtype=np.int64),
            np.array(units, dtype=np.float64),
            as_of_s,
            days,
        )

    def demand(self, store_id: str | None = None) -> DemandMatrix:
        """Daily units per product of one store (None = every store); only products it sold."""
        if store_id is None:
            keep = np.ones(len(self.product), dtype=bool)
        elif store_id in self.store_ids:
            keep = self.store == self.store_ids.index(store_id)
        else:
            keep = np.zeros(len(self.product), dtype=bool)
        sold, rows = np.unique(self.product[keep], return_inverse=True)
        matrix = np.zeros((len(sold), self.days), dtype=np.float64)
        np.add.at(matrix, (rows, self.day[keep]), self.units[keep])
        return DemandMatrix(tuple(self.product_ids[i] for i in sold.tolist()), matrix, self.as_of_s)


@dataclass(frozen=True, eq=False)
class DemandMatrix:
    """Units sold per product (rows) and day (columns), the last column ending at `as_of_s`."""

    product_ids: tuple[str, ...]
    units: np.ndarray  # float64, products x days
    as_of_s: float

    @classmethod
    def from_columns(
        cls, batches: Iterable[PurchaseColumns], as_of_s: float, days: int = LOOKBACK_DAYS, exclude: Iterable[str] = ()
    ) -> DemandMatrix:
        """Daily units of every product sold in the `days` before `as_of_s`, except `exclude`."""
        return SalesWindow.from_columns(batches, as_of_s, days, exclude).demand()


def daily_rate(units: np.ndarray) -> np.ndarray:
    """Recency-weighted mean daily units per row (the last column is the latest day)."""
    days = units.shape[1]
    weights = 0.5 ** (np.arange(days)[::-1] / HALF_LIFE_DAYS)
    return np.asarray(units @ (weights / weights.sum()), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Forecast:
    expected: np.ndarray  # median units over the horizon
    low: np.ndarray
    high: np.ndarray
    mean_daily: np.ndarray


def forecast(units: np.ndarray, horizon_days: int) -> Forecast:
    rate = daily_rate(units)
    mean = rate * horizon_days
    expected, low, high = (_quantile(q, mean) for q in (0.5, *INTERVAL))
    return Forecast(expected, low, high, rate)


def _quantile(q: float, mean: np.ndarray) -> np.ndarray:
    """The `q` quantile of Poisson(mean), element-wise: the smallest k with P(D <= k) >= q."""
    mean = np.asarray(mean, dtype=np.float64)
    out = np.zeros(mean.shape, dtype=np.float64)
    large = mean > EXACT_POISSON_MAX
    if np.any(large):  # the normal approximation, with continuity correction, is exact enough here
        m = mean[large]
        out[large] = np.maximum(0.0, np.ceil(m + _normal_quantile(q) * np.sqrt(m) - 0.5))
    small = (mean > 0) & ~large
    if np.any(small):
        m = mean[small]
        term = np.exp(-m)  # P(D = 0)
        cdf = term.copy()
        k = np.zeros_like(m)
        for step in range(1, int(EXACT_POISSON_MAX * 3 + 50)):
            below = cdf < q
            if not np.any(below):
                break
            term = term * m / step
            cdf = cdf + term
            k = np.where(below, step, k)
        out[small] = k
    return out


def _normal_quantile(q: float) -> float:
    return float(NormalDist().inv_cdf(q))


def _poisson_sf(k: float, mean: float) -> float:
    """P(D > k) for D ~ Poisson(mean)."""
    if mean <= 0:
        return 0.0
    if k < 0:
        return 1.0
    if mean > EXACT_POISSON_MAX:
        return 1.0 - NormalDist(mean, math.sqrt(mean)).cdf(math.floor(k) + 0.5)
    term = cdf = math.exp(-mean)
    for step in range(1, int(math.floor(k)) + 1):
        term *= mean / step
        cdf += term
    return max(0.0, 1.0 - cdf)


def seasonal_naive(units: np.ndarray, horizon_days: int) -> np.ndarray:
    """The last week repeated."""
    return np.asarray(units[:, -7:].sum(axis=1) * horizon_days / 7.0, dtype=np.float64)


def moving_average(units: np.ndarray, horizon_days: int, window_days: int = 28) -> np.ndarray:
    return np.asarray(units[:, -window_days:].mean(axis=1) * horizon_days, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ReorderAdvice:
    reorder_point: float  # order when stock on hand plus on order falls to this
    order_quantity: float  # 0 when no order is needed now
    mean_daily_units: float
    stockout_probability: float  # within lead time + review period, without the order
    expected_units_short_without: float
    expected_units_short_with: float

    @property
    def stock_outs_avoided(self) -> float:
        return self.expected_units_short_without - self.expected_units_short_with


def reorder(
    mean_daily_units: float,
    on_hand: float,
    on_order: float,
    lead_time_days: int,
    review_days: int,
    service_level: float,
) -> ReorderAdvice:
    """Order-up-to advice: the stock must cover demand until the next order can arrive (lead
    time plus review period) with probability `service_level`."""
    cover = mean_daily_units * (lead_time_days + review_days)
    level = float(_quantile(service_level, np.array([cover]))[0])
    position = on_hand + on_order
    quantity = max(0.0, math.ceil(level - position)) if position <= level else 0.0
    return ReorderAdvice(
        reorder_point=level,
        order_quantity=float(quantity),
        mean_daily_units=mean_daily_units,
        stockout_probability=_poisson_sf(position, cover),
        expected_units_short_without=_expected_short(cover, position),
        expected_units_short_with=_expected_short(cover, position + quantity),
    )


def _expected_short(mean: float, stock: float) -> float:
    """E[(D - stock)+] for D ~ Poisson(mean)."""
    if mean <= 0:
        return 0.0
    s = max(0.0, math.floor(stock))
    # E[(D-s)+] = mean * P(D >= s) - s * P(D > s)
    return max(0.0, mean * _poisson_sf(s - 1, mean) - s * _poisson_sf(s, mean))


@dataclass(frozen=True, slots=True)
class BacktestRow:
    method: str
    horizon_days: int
    wape: float
    bias: float  # (forecast - actual) / actual, summed over products


# (method, horizon days) -> [sum of absolute errors, sum of errors, sum of actual units]
BacktestSums = dict[tuple[str, int], list[float]]
# Extra methods for a backtest: (cut-off column, horizon, rows that sold in the 28 days before,
# their history) -> {method: predicted units per row}.
ExtraForecasts = Callable[[int, int, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def backtest_sums(
    units: np.ndarray,
    cutoffs: Sequence[int],
    horizons: Sequence[int] = (7, 14),
    lookback_days: int = LOOKBACK_DAYS,
    *,
    sums: BacktestSums | None = None,
    extra: ExtraForecasts | None = None,
) -> BacktestSums:
    """The error sums of the forecast, the two baselines and any `extra` methods at each horizon,
    over the cut-offs (column indexes of `units`, each the first forecast day) and over the
    products that sold in the 28 days before each cut-off; added to `sums` when given (so that
    several stores' series add up to one figure)."""
    sums = {} if sums is None else sums
    for cut in cutoffs:
        history = units[:, max(0, cut - lookback_days) : cut]
        selling = history[:, -28:].sum(axis=1) > 0
        history = history[selling]
        for h in horizons:
            actual = units[selling, cut : cut + h].sum(axis=1)
            methods = {
                "omnix": forecast(history, h).expected,
                "moving average (28 days)": moving_average(history, h),
                "seasonal naive (last week)": seasonal_naive(history, h),
            }
            if extra is not None:
                methods.update(extra(cut, h, selling, history))
            for method, predicted in methods.items():
                entry = sums.setdefault((method, h), [0.0, 0.0, 0.0])
                entry[0] += float(np.abs(predicted - actual).sum())
                entry[1] += float((predicted - actual).sum())
                entry[2] += float(actual.sum())
    return sums


def backtest_rows(sums: BacktestSums) -> list[BacktestRow]:
    return [
        BacktestRow(method, h, err / total if total else math.nan, bias / total if total else math.nan)
        for (method, h), (err, bias, total) in sums.items()
    ]


def backtest(
    units: np.ndarray, cutoffs: Sequence[int], horizons: Sequence[int] = (7, 14), lookback_days: int = LOOKBACK_DAYS
) -> list[BacktestRow]:
    """WAPE and bias of the forecast and the two baselines at each horizon (`backtest_sums`)."""
    return backtest_rows(backtest_sums(units, cutoffs, horizons, lookback_days))


@dataclass(frozen=True, slots=True)
class ProductForecast:
    product_id: str
    name: str
    expected_units: float
    low_units: float
    high_units: float
    mean_daily_units: float


class InventoryPlanner:
    """Forecasts and reorder advice from a store's purchases. The window's sales are read once
    per as-of day and purchase count (a scan of every order line), then kept, with the demand
    matrices of the last few stores asked for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._window: tuple[tuple[int, float], SalesWindow] | None = None
        self._matrices: OrderedDict[str | None, DemandMatrix] = OrderedDict()

    def demand(self, as_of: datetime, store_id: str | None = None) -> DemandMatrix:
        """Daily units of one store (None = every store) in the 91 days before `as_of`'s day."""
        # Up to the start of the as-of day: requests within one day share one read, and a
        # forecast never counts a day it has only partly seen.
        as_of_s = float(as_of.timestamp() // SECONDS_PER_DAY * SECONDS_PER_DAY)
        key = (self.store.count_purchases(), as_of_s)
        with self._lock:
            if self._window is None or self._window[0] != key:
                self._window = (key, SalesWindow.from_columns(self.store.scan_purchases(), as_of_s))
                self._matrices.clear()
            matrix = self._matrices.get(store_id)
            if matrix is None:
                matrix = self._matrices[store_id] = self._window[1].demand(store_id)
                while len(self._matrices) > MATRICES_KEPT:
                    self._matrices.popitem(last=False)
            return matrix

    def forecast(
        self, product_ids: Sequence[str], horizon_days: int, as_of: datetime, limit: int, store_id: str | None = None
    ) -> list[ProductForecast]:
        """The named products (unknown ones are `NotFoundError`), or the `limit` best sellers,
        of one store (None = every store)."""
        demand = self.demand(as_of, store_id)
        row_of = {p: i for i, p in enumerate(demand.product_ids)}
        if product_ids:
            catalog = self.store.get_products(list(product_ids))
            for product_id in product_ids:
                if product_id not in catalog:
                    raise NotFoundError("product", product_id)
            rows = [row_of.get(p, -1) for p in product_ids]
        else:
            rate = daily_rate(demand.units)
            rows = np.argsort(-rate, kind="stable")[:limit].tolist()
            product_ids = [demand.product_ids[i] for i in rows]
            catalog = self.store.get_products(list(product_ids))
        units = (
            np.vstack([demand.units[r] if r >= 0 else np.zeros(demand.units.shape[1]) for r in rows])
            if rows
            else np.zeros((0, LOOKBACK_DAYS))
        )
        f = forecast(units, horizon_days)
        return [
            ProductForecast(
                product_id=p,
                name=catalog[p].name if p in catalog else "",
                expected_units=float(f.expected[i]),
                low_units=float(f.low[i]),
                high_units=float(f.high[i]),
                mean_daily_units=round(float(f.mean_daily[i]), 4),
            )
            for i, p in enumerate(product_ids)
        ]

    def reorder(
        self,
        positions: Sequence[StockPosition],
        service_level: float,
        review_days: int,
        as_of: datetime,
        store_id: str | None = None,
    ) -> list[tuple[str, ReorderAdvice]]:
        """Advice per position, in request order, from one store's demand (None = every
        store's); an unknown product is `NotFoundError`."""
        catalog = self.store.get_products([p.product_id for p in positions])
        for position in positions:
            if position.product_id not in catalog:
                raise NotFoundError("product", position.product_id)
        demand = self.demand(as_of, store_id)
        row_of = {p: i for i, p in enumerate(demand.product_ids)}
        rows = [row_of.get(p.product_id, -1) for p in positions]
        rates = daily_rate(demand.units)
        rate = [float(rates[r]) if r >= 0 else 0.0 for r in rows]
        return [
            (
                position.product_id,
                reorder(
                    rate[i],
                    position.on_hand,
                    position.on_order,
                    position.lead_time_days,
                    review_days,
                    service_level,
                ),
            )
            for i, position in enumerate(positions)
        ]


@dataclass(frozen=True, slots=True)
class StockPosition:
    product_id: str
    on_hand: float
    on_order: float
    lead_time_days: int
