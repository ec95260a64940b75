"""Who the customer is, as their shopping shows it: household, budget, lifestyle, lifecycle.

Every judgement compares the customer with the population of shoppers (`PopulationProfile`):
"buys 40 % more units a week than the median household" says something; "buys 23 units a
week" does not. The per-customer measurements (`ShopperMetrics`) are computed by one vectorised
function for the whole population and for a single customer alike, so the two always agree.

Each inference carries its evidence (short sentences) and a confidence in [0, 1]: how much
history it rests on and how far the customer is from the nearest boundary.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from omnix_recs.domain.consumption import CustomerCycles, CustomerHistory, PurchaseTable, days_between, to_day
from omnix_recs.domain.models import Customer, Product

# --- what products say about their buyers ----------------------------------------------------

NON_FOOD_DEPARTMENTS = frozenset({"household", "personal care", "pets"})
MEAT_DEPARTMENTS = frozenset({"meat seafood"})
MEAT_WORDS = (
    "meat", "poultry", "beef", "pork", "chicken", "turkey", "bacon", "ham ", "sausage", "hot dog",
    "salami", "pepperoni", "seafood", "fish", "salmon", "tuna", "shrimp", "prosciutto",
)  # fmt: skip
ANIMAL_ALLERGENS = frozenset({"milk", "eggs", "fish", "shellfish"})
TREAT_AISLE_WORDS = ("candy", "chocolate", "cookies", "chips", "soft drinks", "ice cream", "desserts", "popcorn")
PARTY_AISLE_WORDS = ("beer", "wine", "spirits", "chips", "dips", "party", "grilling", "soft drinks")

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
    if department not in NON_FOOD_DEPARTMENTS:
        signals.add("food")
        meaty = department in MEAT_DEPARTMENTS or _contains(where, MEAT_WORDS)
        if meaty and "vegetarian" not in tags and "vegan" not in tags:
            signals.add("meat")
        if ("meat" in signals or ANIMAL_ALLERGENS & set(product.allergens)) and "vegan" not in tags:
            signals.add("animal")
    if department == "babies":
        signals.add("baby")
    if _contains(product.name, ("kids", "kid's", "children")):
        signals.add("kids")
    if department == "pets":
        signals.add("pet")
    if "organic" in tags:
        signals.add("organic")
    if department == "produce":
        signals.add("produce")
    if _contains(product.aisle, TREAT_AISLE_WORDS) or department == "snacks":
        signals.add("treat")
    if department == "alcohol" or _contains(product.aisle, PARTY_AISLE_WORDS):
        signals.add("party")
    return signals


@dataclass(frozen=True)
class CatalogSignals:
    """Per product: its signals and its price relative to comparable products."""

    index_of: Mapping[str, int]
    flags: np.ndarray  # bool [products, len(SIGNALS)]
    price_ratio: np.ndarray  # float64 [products]: shelf price / median of its aisle and pack size

    @classmethod
    def from_products(cls, products: Iterable[Product]) -> "CatalogSignals":
        products = list(products)
        flags = np.zeros((len(products), len(SIGNALS)), dtype=bool)
        for row, product in enumerate(products):
            for signal in product_signals(product):
                flags[row, _S[signal]] = True
        # Compare like with like: a 4 L milk is not "premium" next to a 1 L one.
        by_shelf: dict[tuple[str, str, str], list[float]] = {}
        for p in products:
            if p.price > 0:
                by_shelf.setdefault((p.department, p.aisle, p.pack_size), []).append(p.price)
        medians = {key: float(np.median(prices)) for key, prices in by_shelf.items()}
        ratio = np.array(
            [p.price / medians[(p.department, p.aisle, p.pack_size)] if p.price > 0 else math.nan for p in products],
            dtype=np.float64,
        )
        flags[:, _S["value"]] = ratio <= VALUE_PRICE_RATIO
        return cls(index_of={p.product_id: i for i, p in enumerate(products)}, flags=flags, price_ratio=ratio)

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Catalog rows of `product_ids` (-1 where the product is unknown)."""
        return np.array([self.index_of.get(pid, -1) for pid in product_ids], dtype=np.int64)


# --- measurements ----------------------------------------------------------------------------

VIP_WINDOW_DAYS = 90.0


@dataclass(frozen=True)
class ShopperMetrics:
    """Measurements per customer (arrays indexed by the table's customer codes)."""

    lines: np.ndarray
    trips: np.ndarray
    weeks: np.ndarray  # active weeks: first to last trip plus one usual gap, at least one
    units_per_week: np.ndarray
    spend_per_week: np.ndarray
    lines_per_trip: np.ndarray
    spend_per_trip: np.ndarray
    price_index: np.ndarray  # geometric mean of price ratios of priced lines (1 = typical); NaN = none
    recent_spend: np.ndarray  # spend over the last VIP_WINDOW_DAYS
    signal_share: np.ndarray  # [customers, len(SIGNALS)]: share of the customer's lines with each signal

    def share(self, signal: str) -> np.ndarray:
        return self.signal_share[:, _S[signal]]


def shopper_metrics(table: PurchaseTable, catalog: CatalogSignals, as_of_day: float) -> ShopperMetrics:
    customers = len(table.customer_ids)

    def per_customer(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(table.customer, weights=weights, minlength=customers).astype(np.float64)

    lines = per_customer()
    spend = table.quantity * table.unit_price
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
    with np.errstate(invalid="ignore", divide="ignore"):
        signal_share /= lines[:, None]
        ratio = np.full(len(table), np.nan)
        ratio[known] = catalog.price_ratio[rows[known]]
        priced = np.isfinite(ratio) & (ratio > 0)
        log_ratio = np.where(priced, np.log(np.where(priced, ratio, 1.0)), 0.0)
        price_index = np.exp(per_customer(log_ratio) / per_customer(priced.astype(np.float64)))
        recent = table.day >= as_of_day - VIP_WINDOW_DAYS
        return ShopperMetrics(
            lines=lines,
            trips=trips,
            weeks=weeks,
            units_per_week=per_customer(table.quantity.astype(np.float64)) / weeks,
            spend_per_week=per_customer(spend) / weeks,
            lines_per_trip=lines / np.maximum(trips, 1),
            spend_per_trip=per_customer(spend) / np.maximum(trips, 1),
            price_index=price_index,
            recent_spend=per_customer(np.where(recent, spend, 0.0)),
            signal_share=np.nan_to_num(signal_share),
        )


# --- the population --------------------------------------------------------------------------

# Customers with fewer trips say little about habits; they are left out of the reference.
MIN_TRIPS_FOR_REFERENCE = 3


@dataclass(frozen=True)
class PopulationProfile:
    """Reference distributions of shopper metrics across established customers."""

    customers: int
    units_per_week: tuple[float, float, float]  # 25th, 50th, 75th percentiles
    spend_per_week: tuple[float, float, float]
    price_index: tuple[float, float, float]  # value / premium boundaries are the terciles below
    price_index_terciles: tuple[float, float]
    value_share_terciles: tuple[float, float]
    recent_spend_p90: float
    signal_share: Mapping[str, float]  # pooled share of all lines


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


def population_profile(table: PurchaseTable, catalog: CatalogSignals, as_of_day: float) -> PopulationProfile:
    metrics = shopper_metrics(table, catalog, as_of_day)
    established = metrics.trips >= MIN_TRIPS_FOR_REFERENCE
    pooled = (metrics.signal_share * metrics.lines[:, None]).sum(axis=0) / max(1.0, metrics.lines.sum())
    recent = metrics.recent_spend[established]
    return PopulationProfile(
        customers=int(established.sum()),
        units_per_week=_quartiles(metrics.units_per_week[established]),
        spend_per_week=_quartiles(metrics.spend_per_week[established]),
        price_index=_quartiles(metrics.price_index[established]),
        price_index_terciles=_terciles(metrics.price_index[established]),
        value_share_terciles=_terciles(metrics.share("value")[established]),
        recent_spend_p90=float(np.percentile(recent, 90)) if len(recent) else math.nan,
        signal_share={name: float(pooled[i]) for i, name in enumerate(SIGNALS)},
    )


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


@dataclass(frozen=True, slots=True)
class HouseholdEstimate:
    size: int
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BudgetEstimate:
    tier: BudgetTier
    price_sensitivity: PriceSensitivity
    price_index: float  # 1.0 = pays what comparable products typically cost
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
# Products bought on this many trips show the customer's own pace of using things up.
MIN_TRIPS_FOR_PACE = 3
# Children's products (named for kids) bought this often suggest children at home.
MIN_KIDS_LINES = 2


def _history_weight(weeks: float, full_weeks: float = 12.0) -> float:
    """How much a few weeks of history can tell, rising to 1 at `full_weeks`."""
    return min(1.0, weeks / full_weeks)


def estimate_household(
    metrics: ShopperMetrics, cycles: CustomerCycles, population: PopulationProfile, declared_size: int
) -> HouseholdEstimate:
    """Household size from two signals relative to the median household (of about two people):
    - volume: units bought per active week against the population median;
    - pace: how fast the customer uses things up, the median over their repeat products of the
      population cycle over their own (a family of four finishes the milk sooner).
    Both are ratios with a typical household at 1; the estimate is their geometric mean times
    the median household size. Baby or children's products set a floor of three (two adults and
    a child), because a young family's volume is often below its size.
    """
    evidence = []
    ratios = []
    upw = float(metrics.units_per_week[0])
    median = population.units_per_week[1]
    if math.isfinite(median) and median > 0 and upw > 0:
        ratios.append(upw / median)
        evidence.append(f"buys {upw:.1f} units a week, {upw / median:.1f}x the median household")
    paces = [
        c.population_cycle_days / c.own_cycle_days
        for c in cycles.products.values()
        if c.trips >= MIN_TRIPS_FOR_PACE and math.isfinite(c.population_cycle_days) and c.own_cycle_days > 0
    ]
    if paces:
        pace = float(np.median(paces))
        ratios.append(pace)
        evidence.append(f"uses up {len(paces)} regular products {pace:.1f}x as fast as a typical buyer")
    size = (
        MEDIAN_HOUSEHOLD_SIZE * math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        if ratios
        else MEDIAN_HOUSEHOLD_SIZE
    )
    estimate = int(min(MAX_HOUSEHOLD_SIZE, max(1, round(size))))
    if metrics.share("baby")[0] > 0 or metrics.share("kids")[0] * metrics.lines[0] >= MIN_KIDS_LINES:
        if estimate < 3:
            evidence.append("buys baby or children's products")
        estimate = max(estimate, 3)
    # Half-way between two sizes is the least certain place to be; one signal is weaker than two.
    closeness = 1.0 - 2.0 * abs(size - round(size)) if estimate == round(size) else 0.5
    confidence = (0.2 + 0.2 * len(ratios) * (0.5 + 0.5 * closeness)) * _history_weight(float(metrics.weeks[0]))
    if declared_size > 0:
        evidence.append(f"the customer says {declared_size}")
        if declared_size == estimate:
            confidence = min(0.95, confidence + 0.3)
    return HouseholdEstimate(estimate, round(confidence, 3), tuple(evidence))


def _tercile(value: float, bounds: tuple[float, float]) -> int:
    """0, 1 or 2; ties on the lower bound go low (many shoppers share a value share of 0)."""
    return 0 if value <= bounds[0] else 2 if value > bounds[1] else 1


def estimate_budget(metrics: ShopperMetrics, population: PopulationProfile) -> BudgetEstimate:
    """Budget tier from what the customer pays against comparable products (population terciles);
    price sensitivity from how often they pick clearly cheaper options."""
    index = float(metrics.price_index[0])
    value_share = float(metrics.share("value")[0])
    if not math.isfinite(index):
        return BudgetEstimate(BudgetTier.MID, PriceSensitivity.MEDIUM, math.nan, 0.0, ("no priced purchases",))
    tier = (BudgetTier.VALUE, BudgetTier.MID, BudgetTier.PREMIUM)[_tercile(index, population.price_index_terciles)]
    sensitivity = (PriceSensitivity.LOW, PriceSensitivity.MEDIUM, PriceSensitivity.HIGH)[
        _tercile(value_share, population.value_share_terciles)
    ]
    low, high = population.price_index_terciles
    # Distance to the nearest tier boundary, in units of the middle tier's width.
    width = max(high - low, 1e-6)
    margin = min(abs(index - low), abs(index - high)) / width
    confidence = (0.35 + 0.55 * min(1.0, 2.0 * margin)) * min(1.0, float(metrics.lines[0]) / 40.0)
    evidence = (
        f"pays {index:.2f}x what comparable products typically cost",
        f"{value_share:.0%} of items are value-priced options",
        f"spends {float(metrics.spend_per_trip[0]):.2f} per trip",
    )
    return BudgetEstimate(tier, sensitivity, index, round(confidence, 3), evidence)


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
    metrics = shopper_metrics(PurchaseTable.from_history(history), catalog, to_day(history.as_of))
    return CustomerProfile(
        household=estimate_household(metrics, cycles, population, customer.household_size if customer else 0),
        budget=estimate_budget(metrics, population),
        lifestyle=detect_lifestyle(metrics, population, history),
        lifecycle=estimate_lifecycle(history, cycles, metrics, population),
    )
