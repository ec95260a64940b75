"""A customer's purchase history joined with the catalog, and their consumption cycles.

A consumption cycle is how often a customer buys a product (or shops at all). The Rust core
estimates it robustly from the gaps between trips, shrunk towards the product's population cycle
when the customer has few gaps; this module prepares its inputs and names its outputs.
Population cycles are computed here too, from every customer's purchases, so insights need no
trained recommendation model; with them come the samples of gaps and the settings that the
survival outlook (`outlook.py`) reads, the visit settings chosen by backtesting on the same data.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np

from omnix_recs import _core
from omnix_recs.domain.models import Product, Purchase
from omnix_recs.domain.outlook import PRODUCT_OUTLOOK, VISIT_OUTLOOK, GapSample, OutlookSettings, tune_visit_outlook
from omnix_recs.domain.purchases import PurchaseColumns

SECONDS_PER_DAY = 86_400.0
UNKNOWN = "unknown"  # department / aisle / name of a product missing from the catalog


def to_day(moment: datetime) -> float:
    """Days since the Unix epoch (fractional), the unit every cycle computation uses."""
    return moment.timestamp() / SECONDS_PER_DAY


def from_day(day: float) -> datetime:
    return datetime.fromtimestamp(day * SECONDS_PER_DAY, tz=UTC)


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    """An order line joined with what the catalog says about the product."""

    product_id: str
    order_id: str
    quantity: int
    unit_price: float
    purchased_at: datetime
    name: str
    department: str
    aisle: str
    brand: str
    dietary_tags: tuple[str, ...]

    @property
    def spend(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True, slots=True)
class Visit:
    """One shopping trip as the customer made it: an order."""

    order_id: str
    at: datetime
    lines: int
    units: int
    spend: float


@dataclass(frozen=True)
class CustomerHistory:
    """Everything a customer bought before `as_of`, oldest first, with product details."""

    customer_id: str
    as_of: datetime
    lines: tuple[PurchaseLine, ...]

    @cached_property
    def visits(self) -> tuple[Visit, ...]:
        """Orders in time order (an order is dated by its earliest line)."""
        by_order: dict[str, list[PurchaseLine]] = {}
        for line in self.lines:
            by_order.setdefault(line.order_id, []).append(line)
        visits = [
            Visit(
                order_id=order_id,
                at=min(line.purchased_at for line in lines),
                lines=len(lines),
                units=sum(line.quantity for line in lines),
                spend=sum(line.spend for line in lines),
            )
            for order_id, lines in by_order.items()
        ]
        return tuple(sorted(visits, key=lambda v: (v.at, v.order_id)))

    @cached_property
    def product_lines(self) -> dict[str, tuple[PurchaseLine, ...]]:
        """Lines per product, each oldest first, products in order of first purchase."""
        grouped: dict[str, list[PurchaseLine]] = {}
        for line in self.lines:
            grouped.setdefault(line.product_id, []).append(line)
        return {pid: tuple(lines) for pid, lines in grouped.items()}

    @property
    def span_days(self) -> float:
        """Days from the first purchase to `as_of` (0 without purchases)."""
        if not self.lines:
            return 0.0
        return (self.as_of - self.lines[0].purchased_at).total_seconds() / SECONDS_PER_DAY


def enrich_history(
    customer_id: str,
    purchases: Iterable[Purchase],
    products: Mapping[str, Product],
    *,
    as_of: datetime,
) -> CustomerHistory:
    """Join purchases made before `as_of` with their catalog entries.

    Products missing from the catalog (discontinued, or imported lines without a product row)
    keep their purchases and get `UNKNOWN` for department, aisle and name.
    """
    lines = []
    for p in purchases:
        if p.purchased_at >= as_of:
            continue
        product = products.get(p.product_id)
        lines.append(
            PurchaseLine(
                product_id=p.product_id,
                order_id=p.order_id,
                quantity=p.quantity,
                unit_price=p.unit_price,
                purchased_at=p.purchased_at,
                name=product.name if product else UNKNOWN,
                department=product.department if product else UNKNOWN,
                aisle=product.aisle if product else UNKNOWN,
                brand=product.brand if product else "",
                dietary_tags=product.dietary_tags if product else (),
            )
        )
    lines.sort(key=lambda line: (line.purchased_at, line.order_id, line.product_id))
    return CustomerHistory(customer_id=customer_id, as_of=as_of, lines=tuple(lines))


# --- population cycles ---------------------------------------------------------------------


@dataclass(frozen=True)
class PopulationCycles:
    """How often a typical repeat buyer buys each product, and how often people shop.

    `product_cycle_days` holds products with at least one repeat buyer; `repeat_rate` is the
    share of a product's buyers who bought it on two or more trips. The prior strengths are the
    empirical-Bayes k of the shrinkage weight n / (n + k), estimated from the same data (NaN =
    too little data: the core's default applies). `visit_gaps` and `product_gaps` are samples of
    the gaps people took between trips and between purchases of a product, with the usual gap of
    whoever took each; `visit_outlook` and `product_outlook` say how the survival outlook mixes
    them with a customer's own gaps.
    """

    product_cycle_days: Mapping[str, float] = field(default_factory=dict)
    repeat_rate: Mapping[str, float] = field(default_factory=dict)
    visit_cycle_days: float = math.nan
    product_prior_strength: float = math.nan
    visit_prior_strength: float = math.nan
    customers: int = 0
    visit_gaps: GapSample = field(default_factory=GapSample.empty, compare=False)
    product_gaps: GapSample = field(default_factory=GapSample.empty, compare=False)
    visit_outlook: OutlookSettings = VISIT_OUTLOOK
    product_outlook: OutlookSettings = PRODUCT_OUTLOOK

    def prior_for(self, product_id: str) -> float:
        return self.product_cycle_days.get(product_id, math.nan)


@dataclass(frozen=True)
class PurchaseTable:
    """Order lines in columns, the shape population statistics are computed from.

    `customer` and `product` are codes into `customer_ids` / `product_ids`; `order` codes are
    unique per (customer, order id); `day` is days since the epoch.
    """

    customer: np.ndarray
    product: np.ndarray
    order: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    day: np.ndarray
    customer_ids: tuple[str, ...]
    product_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.day)

    @classmethod
    def from_columns(cls, batches: Iterable[PurchaseColumns], *, customer_share: float = 1.0) -> PurchaseTable:
        """Concatenate scan batches (`Store.scan_purchases`) into one coded table.

        `customer_share` < 1 keeps that share of customers, whole histories, chosen by a stable
        hash of the customer id: population statistics need many shoppers, not every one of
        them, and a store of 30 million order lines should not be held in memory to get them.
        """
        parts: list[tuple[np.ndarray, ...]] = []
        for batch in batches:
            customers = np.array(batch.customer_ids, dtype=str)
            keep = slice(None) if customer_share >= 1.0 else _sampled(batch.customer_ids, customer_share)
            parts.append(
                (
                    customers[keep],
                    np.array(batch.order_ids, dtype=str)[keep],
                    np.array(batch.product_ids, dtype=str)[keep],
                    np.array(batch.quantities, dtype=np.int64)[keep],
                    np.array(batch.unit_prices, dtype=np.float64)[keep],
                    np.array(batch.purchased_at, dtype=np.float64)[keep],
                )
            )
        if not parts:  # an empty store
            parts.append(tuple(np.array([], dtype=t) for t in (str, str, str, np.int64, np.float64, np.float64)))
        customers, orders, products, quantities, prices, seconds = (np.concatenate(column) for column in zip(*parts))
        customer_ids, customer_codes = np.unique(customers, return_inverse=True)
        product_ids, product_codes = np.unique(products, return_inverse=True)
        _, order_codes = np.unique(np.char.add(np.char.add(customers, "\x1f"), orders), return_inverse=True)
        return cls(
            customer=customer_codes.astype(np.int64),
            product=product_codes.astype(np.int64),
            order=order_codes.astype(np.int64),
            quantity=quantities,
            unit_price=prices,
            day=seconds / SECONDS_PER_DAY,
            customer_ids=tuple(customer_ids.tolist()),
            product_ids=tuple(product_ids.tolist()),
        )

    @classmethod
    def from_history(cls, history: CustomerHistory) -> PurchaseTable:
        """One customer's history as a table (product codes in order of first purchase)."""
        product_ids = tuple(history.product_lines)
        code_of = {pid: i for i, pid in enumerate(product_ids)}
        order_code: dict[str, int] = {}
        for line in history.lines:
            order_code.setdefault(line.order_id, len(order_code))
        n = len(history.lines)
        return cls(
            customer=np.zeros(n, dtype=np.int64),
            product=np.array([code_of[line.product_id] for line in history.lines], dtype=np.int64),
            order=np.array([order_code[line.order_id] for line in history.lines], dtype=np.int64),
            quantity=np.array([line.quantity for line in history.lines], dtype=np.int64),
            unit_price=np.array([line.unit_price for line in history.lines], dtype=np.float64),
            day=np.array([to_day(line.purchased_at) for line in history.lines], dtype=np.float64),
            customer_ids=(history.customer_id,),
            product_ids=product_ids,
        )

    def before(self, day: float) -> PurchaseTable:
        """Only the lines bought before `day` (codes and id lists unchanged)."""
        keep = self.day < day
        return PurchaseTable(
            customer=self.customer[keep],
            product=self.product[keep],
            order=self.order[keep],
            quantity=self.quantity[keep],
            unit_price=self.unit_price[keep],
            day=self.day[keep],
            customer_ids=self.customer_ids,
            product_ids=self.product_ids,
        )


def _sampled(customer_ids: Sequence[str], share: float) -> np.ndarray:
    """Rows whose customer falls in the first `share` of the crc32 hash space (stable across
    processes and runs, unlike Python's `hash`)."""
    limit = share * 2**32
    return np.fromiter((zlib.crc32(c.encode()) < limit for c in customer_ids), dtype=bool, count=len(customer_ids))


def population_cycles(table: PurchaseTable, *, tune: bool = True) -> PopulationCycles:
    """Population cycle per product and the population's shopping cadence, in one pass each.

    With `tune`, the visit outlook's settings are the ones that best predicted this same table's
    next trips after cut-offs four and eight weeks before its end (`tune_visit_outlook`).
    """
    if len(table) == 0:
        return PopulationCycles()
    per_product = _core.population_cycles(table.customer, table.product, table.day, len(table.product_ids))
    cycles = per_product["cycle_days"]
    buyers = per_product["buyers"]
    repeaters = per_product["repeat_buyers"]
    product_cycle_days = {pid: float(cycles[i]) for i, pid in enumerate(table.product_ids) if math.isfinite(cycles[i])}
    repeat_rate = {pid: float(repeaters[i] / buyers[i]) for i, pid in enumerate(table.product_ids) if buyers[i]}
    # The shopping cadence is the same computation with every trip counted as one "item".
    trips = _core.population_cycles(table.customer, np.zeros(len(table), dtype=np.int64), table.day, 1)
    return PopulationCycles(
        product_cycle_days=product_cycle_days,
        repeat_rate=repeat_rate,
        visit_cycle_days=float(trips["cycle_days"][0]),
        product_prior_strength=float(per_product["prior_strength"]),
        visit_prior_strength=float(trips["prior_strength"]),
        customers=len(np.unique(table.customer)),
        visit_gaps=GapSample.of(trips),
        product_gaps=GapSample.of(per_product),
        visit_outlook=tune_visit_outlook(table.customer, table.day) if tune else VISIT_OUTLOOK,
    )


# --- customer cycles -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cycle:
    """How often something recurs for one customer (a product bought, or a shopping trip)."""

    trips: int  # occasions, same-day repeats merged
    cycle_days: float  # blended own/population estimate; NaN = unknown
    own_cycle_days: float  # the customer's own robust estimate; NaN below two trips
    population_cycle_days: float  # the prior it was shrunk towards; NaN = none
    confidence: float  # 0..1
    dispersion: float  # robust coefficient of variation of the gaps; NaN below two gaps
    first_at: datetime
    last_at: datetime
    recent_cycle_days: float  # median of the latest three gaps; NaN below two trips

    @property
    def known(self) -> bool:
        return math.isfinite(self.cycle_days)


@dataclass(frozen=True)
class CustomerCycles:
    """A customer's shopping cadence and their cycle for every product they bought."""

    visits: Cycle | None  # None without any purchase
    products: Mapping[str, Cycle]


def _cycles(
    groups: Sequence[int], days: Sequence[float], priors: Sequence[float], prior_strength: float
) -> list[Cycle]:
    options = {"prior_strength": prior_strength} if math.isfinite(prior_strength) else {}
    out = _core.consumption_cycles(
        np.asarray(groups, dtype=np.int64),
        np.asarray(days, dtype=np.float64),
        np.asarray(priors, dtype=np.float64),
        **options,
    )
    return [
        Cycle(
            trips=int(out["trips"][g]),
            cycle_days=float(out["cycle_days"][g]),
            own_cycle_days=float(out["own_cycle_days"][g]),
            population_cycle_days=float(priors[g]),
            confidence=float(out["confidence"][g]),
            dispersion=float(out["dispersion"][g]),
            first_at=from_day(out["first_day"][g]),
            last_at=from_day(out["last_day"][g]),
            recent_cycle_days=float(out["recent_cycle_days"][g]),
        )
        for g in range(len(priors))
    ]


def customer_cycles(history: CustomerHistory, population: PopulationCycles) -> CustomerCycles:
    """Cycles of every product the customer bought, and of their shopping trips."""
    if not history.lines:
        return CustomerCycles(visits=None, products={})
    product_ids = list(history.product_lines)
    code_of = {pid: code for code, pid in enumerate(product_ids)}
    product_cycles = _cycles(
        [code_of[line.product_id] for line in history.lines],
        [to_day(line.purchased_at) for line in history.lines],
        [population.prior_for(pid) for pid in product_ids],
        population.product_prior_strength,
    )
    visits = history.visits
    (visit_cycle,) = _cycles(
        [0] * len(visits),
        [to_day(v.at) for v in visits],
        [population.visit_cycle_days],
        population.visit_prior_strength,
    )
    return CustomerCycles(visits=visit_cycle, products=dict(zip(product_ids, product_cycles)))


def days_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / SECONDS_PER_DAY


def add_days(moment: datetime, days: float) -> datetime:
    return moment + timedelta(days=days)
