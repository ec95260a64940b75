"""Who the customer is, as their shopping shows it: household, budget, lifestyle, lifecycle.

Every judgement compares the customer with the population of shoppers (`PopulationProfile`):
"buys more than the median household" says something, a bare count does not. One vectorised
function measures the whole population and a single customer alike (`ShopperMetrics`), so the
two always agree. Each inference carries its evidence (short sentences) and a confidence in
[0, 1]: how much history it rests on and how far the customer is from the nearest boundary.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from omnix_recs import _core
from omnix_recs.domain.consumption import (
    CustomerCycles,
    CustomerHistory,
    PopulationCycles,
    PurchaseTable,
    days_between,
    population_cycles,
    to_day,
)
from omnix_recs.domain.models import Customer, Product

# --- what products say about their buyers ----------------------------------------------------

# Catalogs name their departments and aisles differently (Instacart's "babies" department,
# Dunnhumby's "BABY FOODS" and "DIAPERS & DISPOSABLES" commodities): signals match words in
# either, lower-cased.
NON_FOOD_DEPARTMENTS = frozenset(
    {"household", "personal care", "pets", "cosmetics", "floral", "garden center", "fuel", "coupon", "kiosk-gas"}
)
MEAT_DEPARTMENT_WORDS = ("meat", "seafood")
BABY_WORDS = ("babies", "baby food", "babyfood", "infant", "diaper", "nappies")
PET_WORDS = ("pets", "dog food", "cat food", "cat litter", "pet food", "pet care", "pet supplies")
ALCOHOL_DEPARTMENTS = frozenset({"alcohol", "spirits", "liquor"})
MEAT_WORDS = (
    "meat", "poultry", "beef", "pork", "chicken", "turkey", "bacon", "ham ", "sausage", "hot dog",
    "salami", "pepperoni", "seafood", "fish", "salmon", "tuna", "shrimp", "prosciutto",
)  # fmt: skip
ANIMAL_ALLERGENS = frozenset({"milk", "eggs", "fish", "shellfish"})
TREAT_AISLE_WORDS = ("candy", "chocolate", "cookies", "chips", "soft drinks", "ice cream", "desserts", "popcorn")
PARTY_AISLE_WORDS = ("beer", "wine", "spirits", "liquor", "chips", "dips", "party", "grilling", "soft drinks")

# The signals a product line can carry; columns of `CatalogSignals.flags`.
SIGNALS: tuple[str, ...] = (
    "food",  # anything eaten (not household, personal care or pet supplies)
    "meat",  # meat or fish, unless tagged vegetarian
    "animal",  # meat, fish, dairy or eggs, unless tagged vegan
    "baby",  # the babies department
    "kids",  # products named or shelved for children
    "pet",  # the pets department
    "organic",
    "produce",  # fresh fruit and vegetables
    "treat",  # sweets, crisps, soft drinks, ice cream
    "party",  # alcohol and party food
    "value",  # priced well below comparable products (same aisle and pack size)
)
_S = {name: i for i, name in enumerate(SIGNALS)}
# A product is "value" when it costs at most this share of comparable products' median price.
VALUE_PRICE_RATIO = 0.85


def _contains(text: str, words: Iterable[str]) -> bool:
    text = f" {text.lower()} "
    return any(word in text for word in words)


def product_signals(product: Product) -> set[str]:
    """What buying this product suggests (see `SIGNALS`), from catalog fields only."""
    signals: set[str] = set()
    department = product.department.lower()
    where = f"{product.aisle} {product.name}"
    tags = set(product.dietary_tags)
    shelf = f"{department} {product.aisle}"
    baby = _contains(shelf, BABY_WORDS)
    pet = _contains(shelf, PET_WORDS)
    if department not in NON_FOOD_DEPARTMENTS and not pet:
        signals.add("food")
        meaty = _contains(department, MEAT_DEPARTMENT_WORDS) or _contains(where, MEAT_WORDS)
        if meaty and "vegetarian" not in tags and "vegan" not in tags:
            signals.add("meat")
        if ("meat" in signals or ANIMAL_ALLERGENS & set(product.allergens)) and "vegan" not in tags:
            signals.add("animal")
    if baby:
        signals.add("baby")
    if _contains(product.name, ("kids", "kid's", "children", "toddler")):
        signals.add("kids")
    if pet:
        signals.add("pet")
    if "organic" in tags:
        signals.add("organic")
    if department == "produce":
        signals.add("produce")
    if _contains(product.aisle, TREAT_AISLE_WORDS) or department == "snacks":
        signals.add("treat")
    if department in ALCOHOL_DEPARTMENTS or _contains(product.aisle, PARTY_AISLE_WORDS):
        signals.add("party")
    return signals


@dataclass(frozen=True)
class CatalogSignals:
    """Per product: its signals, its shelf and its price relative to comparable products."""

    index_of: Mapping[str, int]
    flags: np.ndarray  # bool [products, len(SIGNALS)]
    price_ratio: np.ndarray  # float64 [products]: shelf price / median of its shelf
    shelf: np.ndarray  # int64 [products]: comparable products share a code (department, aisle, pack size)
    log_price: np.ndarray  # float64 [products]; NaN = no price

    @classmethod
    def from_products(cls, products: Iterable[Product]) -> CatalogSignals:
        products = list(products)
        flags = np.zeros((len(products), len(SIGNALS)), dtype=bool)
        for row, product in enumerate(products):
            for signal in product_signals(product):
                flags[row, _S[signal]] = True
        # Compare like with like: a 4 L milk is not "premium" next to a 1 L one.
        shelf_of: dict[tuple[str, str, str], int] = {}
        shelf = np.array(
            [shelf_of.setdefault((p.department, p.aisle, p.pack_size), len(shelf_of)) for p in products], dtype=np.int64
        )
        price = np.array([p.price for p in products], dtype=np.float64)
        priced = price > 0
        log_price = np.full(len(products), math.nan)
        log_price[priced] = np.log(price[priced])
        medians = np.full(len(shelf_of), math.nan)
        for code in np.unique(shelf[priced]):
            medians[code] = np.median(price[priced & (shelf == code)])
        ratio = np.where(priced, price / medians[shelf], math.nan)
        flags[:, _S["value"]] = ratio <= VALUE_PRICE_RATIO
        return cls(
            index_of={p.product_id: i for i, p in enumerate(products)},
            flags=flags,
            price_ratio=ratio,
            shelf=shelf,
            log_price=log_price,
        )

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Catalog rows of `product_ids` (-1 where the product is unknown)."""
        return np.array([self.index_of.get(pid, -1) for pid in product_ids], dtype=np.int64)


def price_positions(table: PurchaseTable, catalog: CatalogSignals) -> np.ndarray:
    """Per catalog row: how much dearer (log) the product is than what shoppers choose on its shelf.

    The reference is the mean log price of the shelf's products as the population chooses them
    (each customer's product counted once), not the shelf's list of prices: a shelf whose cheap
    lines nobody wants should not make everyone look premium. Shelves nobody bought from fall
    back on the median shelf price. NaN for products without a price.
    """
    position: np.ndarray = np.log(catalog.price_ratio)
    _, product = _distinct_choices(table)
    chosen = catalog.rows(table.product_ids)[product]
    chosen = chosen[chosen >= 0]
    chosen = chosen[np.isfinite(catalog.log_price[chosen])]
    if not len(chosen):
        return position
    shelves = int(catalog.shelf.max()) + 1
    count = np.bincount(catalog.shelf[chosen], minlength=shelves)
    total = np.bincount(catalog.shelf[chosen], weights=catalog.log_price[chosen], minlength=shelves)
    with np.errstate(invalid="ignore", divide="ignore"):
        shelf_mean = total / count
    known = count[catalog.shelf] > 0
    position[known] = catalog.log_price[known] - shelf_mean[catalog.shelf[known]]
    return position


def _distinct_choices(table: PurchaseTable) -> tuple[np.ndarray, np.ndarray]:
    """(customer, product) codes of every product each customer bought, once each."""
    n_products = max(1, len(table.product_ids))
    pairs = np.unique(table.customer * n_products + table.product)
    return pairs // n_products, pairs % n_products


# --- measurements ----------------------------------------------------------------------------

VIP_WINDOW_DAYS = 90.0
MAX_PACKS_PER_LINE = 24
# Products bought on this many trips show the customer's own pace of using things up.
MIN_TRIPS_FOR_PACE = 3
# A product shows how fast the household uses it up only when it lasts clearly longer than the
# gap between their trips: anything shorter is simply bought on every trip, whatever the size
# of the household. Product cycles must be this many of the customer's trip gaps.
MIN_CYCLE_IN_TRIPS = 1.5


@dataclass(frozen=True)
class ShopperMetrics:
    """Measurements per customer (arrays indexed by the table's customer codes)."""

    lines: np.ndarray
    trips: np.ndarray
    weeks: np.ndarray  # active weeks: first to last trip plus one usual gap, at least one
    units_per_week: np.ndarray
    spend_per_week: np.ndarray
    lines_per_trip: np.ndarray
    units_per_trip: np.ndarray
    spend_per_trip: np.ndarray
    price_position: np.ndarray  # mean over distinct products of `price_positions` (0 = typical); NaN = none
    priced_products: np.ndarray  # distinct products behind `price_position`
    pace: np.ndarray  # median ln(population cycle / own cycle) over `paced_products`; NaN = none
    paced_products: np.ndarray  # repeat products lasting longer than MIN_CYCLE_IN_TRIPS trip gaps
    recent_spend: np.ndarray  # spend over the last VIP_WINDOW_DAYS
    signal_share: np.ndarray  # [customers, len(SIGNALS)]: share of the customer's lines with each signal

    def share(self, signal: str) -> np.ndarray:
        return self.signal_share[:, _S[signal]]


def shopper_metrics(
    table: PurchaseTable,
    catalog: CatalogSignals,
    as_of_day: float,
    *,
    price_position: np.ndarray,
    population_cycle_days: np.ndarray,
) -> ShopperMetrics:
    """`price_position` per catalog row (`price_positions`); `population_cycle_days` per product
    of the table (`table.product_ids`; NaN = unknown)."""
    customers = len(table.customer_ids)

    def per_customer(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(table.customer, weights=weights, minlength=customers).astype(np.float64)

    lines = per_customer()
    spend = table.quantity * table.unit_price
    # A quantity beyond a few dozen is a measure (grams, hundredths of a gallon of fuel), not a
    # number of packs: such a line is one item.
    units = np.where(table.quantity > MAX_PACKS_PER_LINE, 1, table.quantity).astype(np.float64)
    first = np.full(customers, np.inf)
    last = np.full(customers, -np.inf)
    np.minimum.at(first, table.customer, table.day)
    np.maximum.at(last, table.customer, table.day)
    order_owner = np.zeros(int(table.order.max()) + 1 if len(table) else 0, dtype=np.int64)
    order_owner[table.order] = table.customer
    trips = np.bincount(order_owner[np.unique(table.order)], minlength=customers).astype(np.float64)
    # Volume is measured over the weeks the customer actually shopped (first to last trip, plus
    # one average gap for the last basket to be used up): a customer who left months ago did
    # not buy for a smaller household in the meantime.
    with np.errstate(invalid="ignore", divide="ignore"):
        active_days = np.where(trips >= 2, (last - first) * trips / np.maximum(trips - 1, 1), 7.0)
    weeks = np.maximum(np.nan_to_num(active_days) / 7.0, 1.0)

    rows = catalog.rows(table.product_ids)[table.product]
    known = rows >= 0
    line_flags = np.zeros((len(table), len(SIGNALS)), dtype=np.float64)
    line_flags[known] = catalog.flags[rows[known]]
    signal_share = np.stack([per_customer(line_flags[:, s]) for s in range(len(SIGNALS))], axis=1)

    # Each product the customer chose counts once: the weekly milk is one decision, not fifty.
    chooser, product = _distinct_choices(table)
    choice_rows = catalog.rows(table.product_ids)[product]
    position = np.where(choice_rows >= 0, price_position[np.maximum(choice_rows, 0)], math.nan)
    priced = np.isfinite(position)
    priced_products = np.bincount(chooser[priced], minlength=customers).astype(np.float64)
    pace, paced_products = _consumption_pace(table, population_cycle_days, customers)
    with np.errstate(invalid="ignore", divide="ignore"):
        signal_share /= lines[:, None]
        recent = table.day >= as_of_day - VIP_WINDOW_DAYS
        return ShopperMetrics(
            lines=lines,
            trips=trips,
            weeks=weeks,
            units_per_week=per_customer(units) / weeks,
            spend_per_week=per_customer(spend) / weeks,
            lines_per_trip=lines / np.maximum(trips, 1),
            units_per_trip=per_customer(units) / np.maximum(trips, 1),
            spend_per_trip=per_customer(spend) / np.maximum(trips, 1),
            price_position=np.bincount(chooser[priced], weights=position[priced], minlength=customers)
            / priced_products,
            priced_products=priced_products,
            pace=pace,
            paced_products=paced_products,
            recent_spend=per_customer(np.where(recent, spend, 0.0)),
            signal_share=np.nan_to_num(signal_share),
        )


def _consumption_pace(
    table: PurchaseTable, population_cycle_days: np.ndarray, customers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: how much faster than a typical buyer they use up their regular products
    (median of ln(population cycle / own cycle)), and over how many products.

    Only products bought on at least MIN_TRIPS_FOR_PACE trips whose population cycle is at
    least MIN_CYCLE_IN_TRIPS of the customer's own trip gaps count (see MIN_CYCLE_IN_TRIPS).
    """
    pace = np.full(customers, math.nan)
    if not len(table):
        return pace, np.zeros(customers)
    n_products = max(1, len(table.product_ids))
    pairs, group = np.unique(table.customer * n_products + table.product, return_inverse=True)
    owner, product = pairs // n_products, pairs % n_products
    no_prior = np.full(len(pairs), math.nan)
    own = _core.consumption_cycles(group.astype(np.int64), table.day, no_prior)
    # The customer's trip gap: the same estimate over the days of their orders.
    order_day = np.full(int(table.order.max()) + 1, np.inf)
    np.minimum.at(order_day, table.order, table.day)
    order_owner = np.zeros(len(order_day), dtype=np.int64)
    order_owner[table.order] = table.customer
    orders = np.unique(table.order)
    trip_gap = _core.consumption_cycles(order_owner[orders], order_day[orders], np.full(customers, math.nan))
    prior = population_cycle_days[product]
    with np.errstate(invalid="ignore", divide="ignore"):
        usable = (
            (own["trips"] >= MIN_TRIPS_FOR_PACE)
            & (own["own_cycle_days"] > 0)
            & (prior >= MIN_CYCLE_IN_TRIPS * trip_gap["own_cycle_days"][owner])
        )
        ratio = np.log(prior[usable] / own["own_cycle_days"][usable])
    owner = owner[usable]
    counts = np.bincount(owner, minlength=customers)
    # Grouped median: sort by (customer, ratio), then take the middle one or two of each group.
    order = np.lexsort((ratio, owner))
    ratio = ratio[order]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    low = start[has] + (counts[has] - 1) // 2
    high = start[has] + counts[has] // 2
    pace[has] = (ratio[low] + ratio[high]) / 2
    return pace, counts.astype(np.float64)


# --- the population --------------------------------------------------------------------------

# Customers with fewer trips say little about habits; they are left out of the reference.
MIN_TRIPS_FOR_REFERENCE = 3


@dataclass(frozen=True)
class PopulationProfile:
    """Reference distributions of shopper metrics across established customers."""

    customers: int
    units_per_week: tuple[float, float, float]  # 25th, 50th, 75th percentiles
    spend_per_week: tuple[float, float, float]
    units_per_trip: tuple[float, float, float]
    pace_median: float  # the typical customer's `ShopperMetrics.pace`
    value_share_terciles: tuple[float, float]
    recent_spend_p90: float
    signal_share: Mapping[str, float]  # pooled share of all lines
    # Price taste: per catalog row the product's price position (`price_positions`); across
    # customers, the median and spread of their true taste (the spread of their mean positions
    # less what the scatter of single choices explains), and that scatter itself.
    price_position: np.ndarray
    price_taste_median: float
    price_taste_spread: float
    choice_price_spread: float
    # Income and age: per signal of `household_signals`, the population's median and robust
    # spread; and the scores (`income_score`, `age_score`) bounding its lower and upper quarters.
    signal_reference: Mapping[str, tuple[float, float]]
    income_bounds: tuple[float, float]
    age_bounds: tuple[float, float]


def _quartiles(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return (math.nan, math.nan, math.nan)
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return (float(q1), float(q2), float(q3))


def _terciles(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return (math.nan, math.nan)
    low, high = np.percentile(values, [100 / 3, 200 / 3])
    return (float(low), float(high))


def population_profile(
    table: PurchaseTable, catalog: CatalogSignals, as_of_day: float, cycles: PopulationCycles | None = None
) -> PopulationProfile:
    """The reference every customer is compared with; `cycles` are the population cycles of the
    same table (computed here when not given)."""
    cycles = population_cycles(table) if cycles is None else cycles
    position = price_positions(table, catalog)
    metrics = shopper_metrics(
        table,
        catalog,
        as_of_day,
        price_position=position,
        population_cycle_days=np.array([cycles.prior_for(pid) for pid in table.product_ids], dtype=np.float64),
    )
    established = metrics.trips >= MIN_TRIPS_FOR_REFERENCE
    pooled = (metrics.signal_share * metrics.lines[:, None]).sum(axis=0) / max(1.0, metrics.lines.sum())
    recent = metrics.recent_spend[established]
    taste_median, taste_spread, choice_spread = _price_taste(table, catalog, position, metrics, established)
    shares = {name: float(pooled[i]) for i, name in enumerate(SIGNALS)}
    signals = household_signals(metrics, shares)
    reference = {name: _robust_centre(values[established]) for name, values in signals.items()}
    return PopulationProfile(
        customers=int(established.sum()),
        units_per_week=_quartiles(metrics.units_per_week[established]),
        spend_per_week=_quartiles(metrics.spend_per_week[established]),
        units_per_trip=_quartiles(metrics.units_per_trip[established]),
        pace_median=(
            float(np.nanmedian(metrics.pace[established])) if np.isfinite(metrics.pace[established]).any() else math.nan
        ),
        value_share_terciles=_terciles(metrics.share("value")[established]),
        recent_spend_p90=float(np.percentile(recent, 90)) if len(recent) else math.nan,
        signal_share=shares,
        price_position=position,
        price_taste_median=taste_median,
        price_taste_spread=taste_spread,
        choice_price_spread=choice_spread,
        signal_reference=reference,
        income_bounds=_quarters(_score(signals, reference, INCOME_SIGNALS)[established]),
        age_bounds=_quarters(_score(signals, reference, AGE_SIGNALS)[established]),
    )


def _robust_centre(values: np.ndarray) -> tuple[float, float]:
    """(median, spread) of the finite values: the spread is the interquartile range over 1.349
    (the standard deviation of normal data), or the standard deviation when most values tie."""
    values = values[np.isfinite(values)]
    if not len(values):
        return (math.nan, math.nan)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    spread = (q3 - q1) / 1.349
    if spread <= 0:
        spread = float(np.std(values))
    return (float(median), float(spread))


def _quarters(scores: np.ndarray) -> tuple[float, float]:
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        return (math.nan, math.nan)
    low, high = np.percentile(scores, [100 * LOWER_BAND_SHARE, 100 * (1 - UPPER_BAND_SHARE)])
    return (float(low), float(high))


def _price_taste(
    table: PurchaseTable,
    catalog: CatalogSignals,
    position: np.ndarray,
    metrics: ShopperMetrics,
    established: np.ndarray,
) -> tuple[float, float, float]:
    """(median taste, spread of taste, spread of single choices) in log price units.

    A customer's mean price position mixes their taste with the luck of which products they
    happened to choose; with n choices of spread s the luck adds s² / n to the variance across
    customers, so the taste's own variance is what remains (method of moments).
    """
    chooser, product = _distinct_choices(table)
    rows = catalog.rows(table.product_ids)[product]
    choice = np.where(rows >= 0, position[np.maximum(rows, 0)], math.nan)
    priced = np.isfinite(choice)
    chooser, choice = chooser[priced], choice[priced]
    n = metrics.priced_products
    degrees = float(n.sum() - (n > 0).sum())
    reference = established & (n > 0)
    if degrees <= 0 or reference.sum() < 2:
        return (math.nan, math.nan, math.nan)
    choice_var = float(np.sum((choice - metrics.price_position[chooser]) ** 2)) / degrees
    means = metrics.price_position[reference]
    taste_var = float(np.var(means)) - choice_var * float(np.mean(1.0 / n[reference]))
    return (float(np.median(means)), math.sqrt(max(taste_var, 0.0)), math.sqrt(choice_var))


# --- what says something about income and age ----------------------------------------------

# Bands are relative to the store's shoppers: the quarter of households whose score is lowest,
# the middle half, the highest quarter (the middle band is the most common one, as for budgets).
LOWER_BAND_SHARE = 0.25
UPPER_BAND_SHARE = 0.25
# Each signal counts in units of its population spread, with the sign that says which way it
# points; the weights are equal because nothing but the demographics themselves could say
# otherwise, and the profiler never sees them.
INCOME_SIGNALS: Mapping[str, float] = {
    "price taste": 1.0,  # chooses the dearer products on a shelf
    "spend per week": 1.0,
    "fresh produce": 1.0,  # fresh food is what budgets cut first
    "value options": -1.0,  # the cheapest option on a shelf
}
AGE_SIGNALS: Mapping[str, float] = {  # a higher score is an older household
    "fresh produce": 1.0,
    "children": -1.0,  # baby and children's products
}


def household_signals(metrics: ShopperMetrics, signal_share: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Per customer of `metrics`, the signals `INCOME_SIGNALS` and `AGE_SIGNALS` read (NaN =
    unknown); shares are taken relative to the population's `signal_share`."""

    def lift(signal: str) -> np.ndarray:
        base = signal_share.get(signal, 0.0)
        if base <= 0:
            return np.zeros(len(metrics.lines))
        lifted: np.ndarray = np.log(np.maximum(metrics.share(signal), 0.05 * base) / base)
        return lifted

    children = (metrics.share("baby") + metrics.share("kids")) / max(
        1e-9, signal_share.get("baby", 0.0) + signal_share.get("kids", 0.0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "price taste": metrics.price_position.astype(np.float64),
            "spend per week": np.where(metrics.spend_per_week > 0, np.log(metrics.spend_per_week), math.nan),
            "fresh produce": lift("produce"),
            "value options": metrics.share("value").astype(np.float64),
            "children": np.log1p(children),
        }


def _score(
    signals: Mapping[str, np.ndarray], reference: Mapping[str, tuple[float, float]], weights: Mapping[str, float]
) -> np.ndarray:
    """Σ weight × (signal - population median) / population spread; unknown signals count as typical."""
    total = np.zeros(len(next(iter(signals.values()))))
    for name, weight in weights.items():
        median, spread = reference.get(name, (math.nan, math.nan))
        if not (math.isfinite(spread) and spread > 0):
            continue
        total += weight * np.nan_to_num((signals[name] - median) / spread)
    return total


# --- inferences ------------------------------------------------------------------------------


class BudgetTier(enum.StrEnum):
    VALUE = "value"
    MID = "mid"
    PREMIUM = "premium"


class PriceSensitivity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Segment(enum.StrEnum):
    NEW = "new"
    REGULAR = "regular"
    VIP = "vip"
    AT_RISK = "at_risk"  # late for their usual trip by a wide margin


class Lifestyle(enum.StrEnum):
    YOUNG_CHILDREN = "young_children"
    PETS = "pets"
    VEGETARIAN = "vegetarian"
    VEGAN = "vegan"
    HEALTH_FOCUSED = "health_focused"
    ENTERTAINS_OFTEN = "entertains_often"


class IncomeBand(enum.StrEnum):
    LOWER = "lower"  # the store's lower-income quarter
    MIDDLE = "middle"
    UPPER = "upper"


class AgeBand(enum.StrEnum):
    UNDER_35 = "under 35"
    FROM_35_TO_54 = "35-54"
    FROM_55 = "55+"


@dataclass(frozen=True, slots=True)
class BandEstimate:
    """A relative band (income or age) and how sure the profiler is of it."""

    band: str  # an `IncomeBand` or `AgeBand` value
    score: float  # the signals' weighted sum, in population spreads (0 = typical)
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HouseholdEstimate:
    size: int
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BudgetEstimate:
    tier: BudgetTier
    price_sensitivity: PriceSensitivity
    price_index: float  # exp(price position): 1.04 = chooses products 4 % dearer than shoppers typically do
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LifestyleTrait:
    trait: Lifestyle
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LifecycleEstimate:
    segment: Segment
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class CustomerProfile:
    household: HouseholdEstimate
    budget: BudgetEstimate
    lifestyle: tuple[LifestyleTrait, ...]  # only traits that were detected
    lifecycle: LifecycleEstimate
    income: BandEstimate  # an `IncomeBand`
    age: BandEstimate  # an `AgeBand`


# The typical household the population median stands for (most households are 1-3 people;
# the population median buys for about two).
MEDIAN_HOUSEHOLD_SIZE = 2.0
MAX_HOUSEHOLD_SIZE = 6
NEW_CUSTOMER_DAYS = 30.0
NEW_CUSTOMER_TRIPS = 3
AT_RISK_CYCLES = 2.5
MIN_LINES_FOR_DIET = 25
# A diet is reported only when a meat eater would have shown meat by now with 99 % odds
# (lower bars mistook light meat eaters for vegetarians in backtests).
MIN_DIET_CONFIDENCE = 0.99
# Children's products (named for kids) bought this often suggest children at home, when baby
# and children's products together are at least this many times their share of all lines.
MIN_KIDS_LINES = 2
CHILDREN_LIFT = 2.0


def _history_weight(weeks: float, full_weeks: float = 12.0) -> float:
    """How much a few weeks of history can tell, rising to 1 at `full_weeks`."""
    return min(1.0, weeks / full_weeks)


# Household size, ln(size / MEDIAN_HOUSEHOLD_SIZE), as a sum of the signals below. The weights
# are least-squares elasticities fitted on a generated population (seed 3, 2,000 households; never
# the one the benchmark reports) and are far below one because every signal is mostly personal
# habit: a bigger basket says a little about the number of people and a lot about the shopper.
BASKET_WEIGHT = 0.24  # per ln(units per trip / the median customer's)
PACE_WEIGHT = 0.56  # per ln(own pace / the median customer's), see `ShopperMetrics.pace`
CHILDREN_WEIGHT = 0.36  # baby or children's products bought
BABY_WEIGHT = 0.12  # baby products too (a baby is one more person, a child's snack may be a treat)
# Spread of ln(true size) around the estimate on that population, with and without a pace
# (the pace is the strongest signal; a customer without enough repeat products lacks it).
SIZE_SPREAD_WITH_PACE = 0.44
SIZE_SPREAD_WITHOUT_PACE = 0.51
_NORMAL = NormalDist()


def estimate_household(metrics: ShopperMetrics, population: PopulationProfile, declared_size: int) -> HouseholdEstimate:
    """Household size from what scales with the number of people, each signal relative to the
    median customer (who stands for a household of about two):
    - pace: how fast the customer uses up products that last longer than their trip gap (a
      family of four finishes the cereal sooner); the strongest signal;
    - basket: units per trip (more people, more different needs and more packs of each);
    - baby or children's products, clearly more than most shoppers buy (a child means at least
      one more person).
    The confidence is the chance that the true size rounds to the estimate, given the spread of
    sizes around such estimates in a generated population.
    """
    evidence = []
    log_size = math.log(MEDIAN_HOUSEHOLD_SIZE)
    per_trip = float(metrics.units_per_trip[0])
    typical_trip = population.units_per_trip[1]
    if per_trip > 0 and math.isfinite(typical_trip) and typical_trip > 0:
        log_size += BASKET_WEIGHT * math.log(per_trip / typical_trip)
        evidence.append(f"{per_trip:.0f} items per trip, {per_trip / typical_trip:.1f}x the typical basket")
    pace, paced = float(metrics.pace[0]), int(metrics.paced_products[0])
    has_pace = math.isfinite(pace) and math.isfinite(population.pace_median)
    if has_pace:
        relative = pace - population.pace_median
        log_size += PACE_WEIGHT * relative
        evidence.append(
            f"uses up {paced} regular product{'s' if paced > 1 else ''} {math.exp(relative):.1f}x as fast as typical shoppers"
        )
    lines = float(metrics.lines[0])
    baby = metrics.share("baby")[0] * lines >= 1
    # Where everyone buys the odd baby wipe or children's snack, only a share well above the
    # population's says there is a child at home.
    children = float(household_signals(metrics, population.signal_share)["children"][0])
    if (baby or metrics.share("kids")[0] * lines >= MIN_KIDS_LINES) and children >= math.log1p(CHILDREN_LIFT):
        log_size += CHILDREN_WEIGHT + (BABY_WEIGHT if baby else 0.0)
        evidence.append("buys baby products" if baby else "buys children's products")
    size = math.exp(log_size)
    estimate = int(min(MAX_HOUSEHOLD_SIZE, max(1, round(size))))
    spread = SIZE_SPREAD_WITH_PACE if has_pace else SIZE_SPREAD_WITHOUT_PACE
    low = -math.inf if estimate == 1 else math.log(estimate - 0.5)
    high = math.inf if estimate == MAX_HOUSEHOLD_SIZE else math.log(estimate + 0.5)
    confidence = _NORMAL.cdf((high - log_size) / spread) - _NORMAL.cdf((low - log_size) / spread)
    if declared_size > 0:
        evidence.append(f"the customer says {declared_size}")
        if declared_size == estimate:
            confidence = min(0.95, confidence + 0.3)
    return HouseholdEstimate(estimate, round(confidence, 3), tuple(evidence))


def _tercile(value: float, bounds: tuple[float, float]) -> int:
    """0, 1 or 2; ties on the lower bound go low (many shoppers share a value share of 0)."""
    return 0 if value <= bounds[0] else 2 if value > bounds[1] else 1


# Budget tiers are relative: the quarter of shoppers whose taste runs cheapest is "value", the
# dearest quarter "premium", the middle half "mid".
VALUE_QUANTILE = 0.25
PREMIUM_QUANTILE = 0.75


def estimate_budget(metrics: ShopperMetrics, population: PopulationProfile) -> BudgetEstimate:
    """Budget tier from where the customer's choices sit on each shelf's price range; price
    sensitivity from how often they pick clearly cheaper options.

    A customer's mean price position is their taste plus the luck of a few choices, so it is
    shrunk towards the population's median taste as much as their number of choices warrants
    (empirical Bayes): a dozen choices say little, two hundred say a lot. The tier is the most
    probable one under that posterior, and its probability is the confidence.
    """
    position, choices = float(metrics.price_position[0]), float(metrics.priced_products[0])
    value_share = float(metrics.share("value")[0])
    median, taste, scatter = (
        population.price_taste_median,
        population.price_taste_spread,
        population.choice_price_spread,
    )
    if not math.isfinite(position):
        return BudgetEstimate(BudgetTier.MID, PriceSensitivity.MEDIUM, math.nan, 0.0, ("no priced purchases",))
    sensitivity = (PriceSensitivity.LOW, PriceSensitivity.MEDIUM, PriceSensitivity.HIGH)[
        _tercile(value_share, population.value_share_terciles)
    ]
    evidence = (
        f"chooses products {_percent_dearer(position)} than shoppers typically choose on the same shelves "
        f"({choices:.0f} product{'' if choices == 1 else 's'})",
        f"{value_share:.0%} of items are value-priced options",
        f"spends {float(metrics.spend_per_trip[0]):.2f} per trip",
    )
    if not (math.isfinite(taste) and taste > 0 and math.isfinite(scatter)):
        # Shoppers' choices differ no more than luck explains: no tier can be told apart.
        return BudgetEstimate(BudgetTier.MID, sensitivity, math.exp(position), 0.0, evidence)
    noise = scatter**2 / choices
    shrink = taste**2 / (taste**2 + noise)
    centre, spread = median + shrink * (position - median), math.sqrt(shrink * noise)

    def below(bound: float) -> float:  # posterior probability that the taste is below `bound`
        return _NORMAL.cdf((bound - centre) / spread) if spread > 0 else float(centre < bound)

    low = below(median + taste * _NORMAL.inv_cdf(VALUE_QUANTILE))
    high = below(median + taste * _NORMAL.inv_cdf(PREMIUM_QUANTILE))
    odds = {BudgetTier.VALUE: low, BudgetTier.MID: high - low, BudgetTier.PREMIUM: 1.0 - high}
    tier = max(odds, key=odds.__getitem__)
    return BudgetEstimate(tier, sensitivity, math.exp(position), round(odds[tier], 3), evidence)


def _band_estimate(
    score: float, bounds: tuple[float, float], bands: tuple[str, str, str], weeks: float, evidence: tuple[str, ...]
) -> BandEstimate:
    """The band `score` falls in between the population's quarter bounds. Confidence: how much
    history there is, and how far the score sits from the nearest bound (in bound widths)."""
    low, high = bounds
    if not (math.isfinite(low) and math.isfinite(high)):
        return BandEstimate(bands[1], score, 0.0, ("no population to compare with",))
    band = bands[0] if score < low else bands[2] if score > high else bands[1]
    margin = min(abs(score - low), abs(score - high)) / max(high - low, 1e-9)
    confidence = _history_weight(weeks) * (0.35 + 0.5 * min(1.0, margin))
    return BandEstimate(band, round(score, 3), round(confidence, 3), evidence)


def _signal_evidence(
    metrics: ShopperMetrics, population: PopulationProfile, weights: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    """The customer's score over `weights`, and a sentence for each signal, strongest first."""
    signals = household_signals(metrics, population.signal_share)
    reference = population.signal_reference
    score = float(_score(signals, reference, weights)[0])
    said = []
    for name, weight in weights.items():
        value = float(signals[name][0])
        median, spread = reference.get(name, (math.nan, math.nan))
        if not (math.isfinite(value) and math.isfinite(spread) and spread > 0):
            continue
        pull = weight * (value - median) / spread
        said.append((abs(pull), _describe_signal(name, value, median, metrics)))
    said.sort(key=lambda item: -item[0])
    return score, tuple(text for _, text in said)


def _describe_signal(name: str, value: float, median: float, metrics: ShopperMetrics) -> str:
    if name == "price taste":
        return f"chooses products {_percent_dearer(value)} than shoppers typically choose"
    if name == "spend per week":
        return f"spends {math.exp(value):.2f} a week against a typical {math.exp(median):.2f}"
    if name == "fresh produce":
        return f"fresh produce {math.exp(value):.1f}x the typical share of items"
    if name == "value options":
        return f"{value:.0%} of items are value-priced options (typically {median:.0%})"
    return f"baby and children's products {math.expm1(value):.1f}x the typical share"


def estimate_income(metrics: ShopperMetrics, population: PopulationProfile) -> BandEstimate:
    """Income band relative to the store's shoppers, from `INCOME_SIGNALS`: what they choose on
    the shelf, how much they spend, how much fresh food they buy."""
    score, evidence = _signal_evidence(metrics, population, INCOME_SIGNALS)
    bands = (IncomeBand.LOWER.value, IncomeBand.MIDDLE.value, IncomeBand.UPPER.value)
    return _band_estimate(score, population.income_bounds, bands, float(metrics.weeks[0]), evidence[:2])


def estimate_age(metrics: ShopperMetrics, population: PopulationProfile, declared_band: str = "") -> BandEstimate:
    """Age band from `AGE_SIGNALS`: the youngest quarter of scores is "under 35", the oldest
    "55+". Weak evidence (shopping says little about age): confidences stay low."""
    score, evidence = _signal_evidence(metrics, population, AGE_SIGNALS)
    bands = (AgeBand.UNDER_35.value, AgeBand.FROM_35_TO_54.value, AgeBand.FROM_55.value)
    estimate = _band_estimate(score, population.age_bounds, bands, float(metrics.weeks[0]), evidence[:2])
    if declared_band:
        estimate = dataclasses.replace(estimate, evidence=(*estimate.evidence, f"the customer says {declared_band}"))
    return estimate


def _percent_dearer(position: float) -> str:
    change = math.exp(position) - 1.0
    return f"{abs(change):.0%} {'dearer' if change >= 0 else 'cheaper'}"


def _lift(metrics: ShopperMetrics, population: PopulationProfile, signal: str) -> float:
    """The customer's share of lines with `signal` over the population's, floored at 0.05 (so
    logs stay finite); 1 (no information) when the population has none at all."""
    base = population.signal_share.get(signal, 0.0)
    return max(0.05, float(metrics.share(signal)[0]) / base) if base > 0 else 1.0


def detect_lifestyle(
    metrics: ShopperMetrics, population: PopulationProfile, history: CustomerHistory
) -> tuple[LifestyleTrait, ...]:
    traits: list[LifestyleTrait] = []
    lines = float(metrics.lines[0])
    weight = _history_weight(float(metrics.weeks[0]))

    def share(signal: str) -> float:
        return float(metrics.share(signal)[0])

    # Nobody buys nappies or pet food for someone else's household: one item is evidence,
    # a few make it near certain.
    baby_items = share("baby") * lines
    kids_items = share("kids") * lines
    if baby_items >= 1 or kids_items >= MIN_KIDS_LINES:
        evidence = []
        if baby_items >= 1:
            evidence.append(f"{baby_items:.0f} baby-care items bought")
        if kids_items >= 1:
            evidence.append(f"{kids_items:.0f} children's products bought")
        conf = min(0.95, 0.4 + 0.1 * baby_items + 0.05 * kids_items) * max(weight, 0.5)
        traits.append(LifestyleTrait(Lifestyle.YOUNG_CHILDREN, round(conf, 3), tuple(evidence)))
    pet_items = share("pet") * lines
    if pet_items >= 1:
        conf = min(0.95, 0.5 + 0.1 * pet_items) * max(weight, 0.5)
        traits.append(LifestyleTrait(Lifestyle.PETS, round(conf, 3), (f"{pet_items:.0f} pet-food or pet-care items",)))

    # No meat among N food lines, when a typical food line is meat with probability p: the
    # chance a meat eater shows no meat in N lines is (1 - p)^N.
    food_lines = share("food") * lines
    food_share = max(population.signal_share.get("food", 1.0), 1e-9)
    meat_rate = population.signal_share.get("meat", 0.0) / food_share
    animal_rate = population.signal_share.get("animal", 0.0) / food_share
    if food_lines >= MIN_LINES_FOR_DIET and share("meat") == 0 and meat_rate > 0:
        vegan = share("animal") == 0 and animal_rate > 0
        conf = 1.0 - (1.0 - (animal_rate if vegan else meat_rate)) ** food_lines
        if conf >= MIN_DIET_CONFIDENCE:
            trait, missing = (
                (Lifestyle.VEGAN, "meat, fish, dairy or eggs") if vegan else (Lifestyle.VEGETARIAN, "meat or fish")
            )
            traits.append(LifestyleTrait(trait, round(conf, 3), (f"no {missing} in {food_lines:.0f} food items",)))

    produce, organic, treat = (_lift(metrics, population, s) for s in ("produce", "organic", "treat"))
    health_score = math.log(produce) + 0.5 * math.log(organic) - math.log(treat)
    if lines >= MIN_LINES_FOR_DIET and health_score >= 0.6:
        conf = min(0.9, 0.4 + 0.3 * (health_score - 0.6)) * weight
        traits.append(
            LifestyleTrait(
                Lifestyle.HEALTH_FOCUSED,
                round(conf, 3),
                (
                    f"fresh produce {produce:.1f}x the typical share",
                    f"organic {organic:.1f}x, treats {treat:.1f}x the typical share",
                ),
            )
        )

    party = _lift(metrics, population, "party")
    big_baskets = _big_trip_share(history)
    if lines >= MIN_LINES_FOR_DIET and party >= 1.6 and big_baskets >= 0.1:
        conf = min(0.85, 0.35 + 0.15 * (party - 1.6) + big_baskets) * weight
        traits.append(
            LifestyleTrait(
                Lifestyle.ENTERTAINS_OFTEN,
                round(conf, 3),
                (f"drinks and party food {party:.1f}x the typical share", f"{big_baskets:.0%} of trips are big shops"),
            )
        )
    return tuple(traits)


def _big_trip_share(history: CustomerHistory) -> float:
    """Share of trips at least 1.75 times the customer's median basket (in lines)."""
    sizes = sorted(v.lines for v in history.visits)
    if not sizes:
        return 0.0
    median = sizes[len(sizes) // 2]
    return sum(1 for n in sizes if n >= 1.75 * median) / len(sizes)


def estimate_lifecycle(
    history: CustomerHistory, cycles: CustomerCycles, metrics: ShopperMetrics, population: PopulationProfile
) -> LifecycleEstimate:
    """New (first purchase within 30 days, or under 3 trips), at risk (away for more than 2.5
    usual gaps, or further when their gaps vary a lot), VIP (recent spend in the population's
    top 10 %), else regular."""
    trips = len(history.visits)
    if not trips:
        return LifecycleEstimate(Segment.NEW, 0.9, ("no purchases yet",))
    tenure = days_between(history.visits[0].at, history.as_of)
    if tenure < NEW_CUSTOMER_DAYS or trips < NEW_CUSTOMER_TRIPS:
        return LifecycleEstimate(Segment.NEW, 0.9, (f"first trip {tenure:.0f} days ago", f"{trips} trips so far"))
    visits = cycles.visits
    away = days_between(history.visits[-1].at, history.as_of)
    if visits is not None and visits.known:
        spread = visits.dispersion if math.isfinite(visits.dispersion) else 0.5
        threshold = visits.cycle_days * max(AT_RISK_CYCLES, 1.0 + 3.0 * spread)
        if away > threshold:
            confidence = min(0.95, 0.5 + 0.15 * (away - threshold) / visits.cycle_days)
            return LifecycleEstimate(
                Segment.AT_RISK,
                round(confidence, 3),
                (f"usually shops every {visits.cycle_days:.0f} days", f"last trip {away:.0f} days ago"),
            )
    recent = float(metrics.recent_spend[0])
    p90 = population.recent_spend_p90
    if math.isfinite(p90) and p90 > 0 and recent >= p90:
        confidence = min(0.95, 0.6 + 0.3 * (recent / p90 - 1.0))
        return LifecycleEstimate(
            Segment.VIP,
            round(confidence, 3),
            (f"spent {recent:.2f} in the last {VIP_WINDOW_DAYS:.0f} days, in the top 10 % of shoppers",),
        )
    regularity = visits.confidence if visits is not None else 0.0
    return LifecycleEstimate(
        Segment.REGULAR,
        round(0.5 + 0.4 * regularity, 3),
        (f"{trips} trips over {tenure:.0f} days", f"last trip {away:.0f} days ago"),
    )


def profile_customer(
    history: CustomerHistory,
    cycles: CustomerCycles,
    catalog: CatalogSignals,
    population: PopulationProfile,
    customer: Customer | None = None,
) -> CustomerProfile:
    table = PurchaseTable.from_history(history)
    metrics = shopper_metrics(
        table,
        catalog,
        to_day(history.as_of),
        price_position=population.price_position,
        population_cycle_days=np.array(
            [cycles.products[pid].population_cycle_days for pid in table.product_ids], dtype=np.float64
        ),
    )
    return CustomerProfile(
        household=estimate_household(metrics, population, customer.household_size if customer else 0),
        budget=estimate_budget(metrics, population),
        lifestyle=detect_lifestyle(metrics, population, history),
        lifecycle=estimate_lifecycle(history, cycles, metrics, population),
        income=estimate_income(metrics, population),
        age=estimate_age(metrics, population, customer.age_band if customer else ""),
    )
