"""The synthetic supermarket's catalogue: concrete products built from the shelf plan.

`build_catalog` fills every aisle of `taxonomy.AISLES` with products carrying what a shelf label
shows (name, brand, price, pack size, dietary tags, allergens) and what the simulation needs
(consumption cycle, season, launch day, appeal). Dietary tags are derived from the recipe flags,
never drawn at random, so a tag cannot lie: a customer's restriction keeps exactly the products
carrying it. Every aisle draws from its own seeded generator, so the catalogue depends only on
`(n_products, days, seed)`.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnix_recs.data.taxonomy import (
    AISLES,
    BRAND_SUFFIXES,
    DEPARTMENTS,
    SEASONS,
    STORE_BRAND,
    Aisle,
    aisle_index,
)
from omnix_recs.domain.models import ALLERGENS

PRODUCTS_HEADER = (
    "product_id",
    "product_name",
    "aisle_id",
    "department_id",
    "brand",
    "price",
    "pack_size",
    "dietary_tags",
    "allergens",
    "in_stock",
)

# Bits shared with rust_core/src/synth (household diet and allergy filters).
DIET_VEGAN = 1
DIET_VEGETARIAN = 2
ANIMAL_FLAGS = frozenset({"meat", "pork", "fish", "shellfish", "milk", "eggs", "honey", "gelatin"})
FLESH_FLAGS = frozenset({"meat", "pork", "fish", "shellfish", "gelatin"})

# Brand tiers: price multiplier and how often shoppers reach for them.
_TIERS = (("value", 0.8, 1.0), ("standard", 1.0, 1.0), ("premium", 1.35, 0.6))
_STORE_BRAND_PRICE = 0.72
_SYLLABLES = (
    "ka", "lo", "mi", "ra", "ve", "ti", "no", "sa", "be", "lu", "do", "ri", "za", "fe", "po",
    "ni", "ma", "el", "an", "or", "ta", "ve", "so", "li", "ca", "de", "mo", "ar", "vi", "na",
)  # fmt: skip
_PREFIXES = (
    "Green", "Golden", "Blue", "Silver", "Maple", "Oak", "River", "Meadow", "Harvest", "Valley",
    "Prairie", "Coastal", "Mountain", "North", "Old Mill", "Happy", "Little", "Wild", "True",
    "Pure", "Simple", "Honest", "Bright", "Red Barn", "Fresh", "Good", "Family", "Urban",
    "Heritage", "Sunny", "Cedar", "Willow", "Stone", "Clear", "Evergreen", "Summit",
)  # fmt: skip
# Product-line names used only when an aisle needs more products than brand × variant × pack.
_LINES = (
    "Signature", "Simply", "Classic", "Select", "Everyday", "Reserve", "Homestyle", "Original",
    "Deluxe", "Farmhouse", "Artisan", "Family", "Essential", "Gourmet", "Heritage", "Country",
)  # fmt: skip
_NEW_PRODUCT_SHARE = 0.12  # launched during the simulated period, not before it
_OUT_OF_STOCK_SHARE = 0.03
_KOSHER_SHARE = 0.3
_HALAL_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class Catalog:
    """Column-oriented catalogue; row i is product_id i + 1."""

    departments: tuple[str, ...]
    aisles: tuple[Aisle, ...]
    names: list[str]
    brands: list[str]
    pack_sizes: list[str]
    dietary_tags: list[tuple[str, ...]]
    allergens: list[tuple[str, ...]]
    aisle: np.ndarray  # int32, 0-based aisle index
    department: np.ndarray  # int32, 0-based department index
    brand_index: np.ndarray  # int32, index into the sorted list of distinct brands
    price: np.ndarray  # float64, cents precision
    in_stock: np.ndarray  # bool
    cycle_days: np.ndarray  # float32, days a household of two takes to use one pack
    season: np.ndarray  # uint8, index into taxonomy.SEASONS
    launch_day: np.ndarray  # int32, first simulated day it is on the shelf (0 = always there)
    popularity: np.ndarray  # float32, relative appeal before taste segments
    relative_price: np.ndarray  # float32, log(price / the aisle's standard price for that pack)
    diet_bits: np.ndarray  # uint8, DIET_VEGAN | DIET_VEGETARIAN
    allergen_bits: np.ndarray  # uint16, bit i = ALLERGENS[i]
    organic: np.ndarray  # uint8
    kids: np.ndarray  # uint8, aimed at children
    plant: np.ndarray  # uint8, plant-based alternative (vegan/vegetarian households seek them)

    def __len__(self) -> int:
        return len(self.names)


@dataclass(slots=True)
class _Draft:
    aisle: int
    brand: str
    tier_price: float
    line: str
    variant: int
    pack: int
    organic: bool
    weight: float


def build_catalog(n_products: int, days: int, seed: int) -> Catalog:
    """Fill the shelf plan with exactly `n_products` products."""
    if n_products < 2 * len(AISLES):
        raise ValueError(f"need at least {2 * len(AISLES)} products (two per aisle)")
    aisle_index()  # validates the plan
    counts = _products_per_aisle(n_products)
    brand_pools = _brand_pools(counts, seed)
    drafts: list[_Draft] = []
    for a, aisle in enumerate(AISLES):
        rng = random.Random(f"{seed}:aisle:{aisle.name}")
        drafts.extend(_fill_aisle(a, aisle, counts[a], brand_pools[aisle.department], rng))
    # Product ids in shuffled order, so an id says nothing about the shelf it sits on.
    random.Random(f"{seed}:product-ids").shuffle(drafts)
    return _finish(drafts, days, seed)


def _products_per_aisle(n_products: int) -> list[int]:
    total = sum(a.breadth for a in AISLES)
    exact = [n_products * a.breadth / total for a in AISLES]
    counts = [max(2, math.floor(x)) for x in exact]
    # Largest remainders take the leftover products (or give back the excess).
    order = sorted(range(len(AISLES)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    i = 0
    while sum(counts) != n_products:
        j = order[i % len(order)]
        if sum(counts) < n_products:
            counts[j] += 1
        elif counts[j] > 2:
            counts[j] -= 1
        i += 1
    return counts


def _brand_pools(counts: list[int], seed: int) -> dict[str, list[tuple[str, float, float]]]:
    """Per department: (brand name, price multiplier, popularity) shared by its aisles."""
    taken = {STORE_BRAND}
    pools: dict[str, list[tuple[str, float, float]]] = {}
    for department in DEPARTMENTS:
        rng = random.Random(f"{seed}:brands:{department}")
        needed = sum(_brands_in_aisle(counts[a]) for a, aisle in enumerate(AISLES) if aisle.department == department)
        pool: list[tuple[str, float, float]] = []
        while len(pool) < max(3, math.ceil(0.7 * needed)):
            name = _brand_name(rng, department)
            if name in taken:
                continue
            taken.add(name)
            _, price_factor, reach = rng.choice(_TIERS)
            pool.append((name, price_factor, reach * rng.lognormvariate(0.0, 0.7)))
        pools[department] = pool
    return pools


def _brands_in_aisle(n_products: int) -> int:
    return min(40, max(2, round(1.1 * math.sqrt(n_products))))


def _brand_name(rng: random.Random, department: str) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
    suffix = rng.choice(BRAND_SUFFIXES[department])
    style = rng.random()
    if style < 0.45:
        return f"{word} {suffix}"
    if style < 0.8:
        return f"{rng.choice(_PREFIXES)} {suffix}"
    return f"{rng.choice(_PREFIXES)} {word}"


def _fill_aisle(a: int, aisle: Aisle, n: int, pool: list[tuple[str, float, float]], rng: random.Random) -> list[_Draft]:
    n_brands = min(len(pool), _brands_in_aisle(n))
    brands = rng.sample(pool, n_brands)
    if aisle.audience != "alcohol":
        brands.append((STORE_BRAND, _STORE_BRAND_PRICE, 1.5))
    organic_lines = {name for name, _, _ in brands if rng.random() < 1.5 * aisle.organic_share}
    carried = {  # which variants each brand makes: brands specialise
        name: [v for v in range(len(aisle.variants)) if rng.random() < 0.6] or [rng.randrange(len(aisle.variants))]
        for name, _, _ in brands
    }
    candidates: list[_Draft] = []
    for line_round in range(len(_LINES) + 1):
        line = "" if line_round == 0 else _LINES[line_round - 1]
        for name, price_factor, reach in brands:
            for v in carried[name]:
                for p in range(len(aisle.packs)):
                    weight = reach / (v + 1) ** 0.6 / (p + 1) ** 0.8 / (1 + 2 * line_round)
                    candidates.append(_Draft(a, name, price_factor, line, v, p, False, weight))
                    if name in organic_lines:
                        candidates.append(_Draft(a, name, price_factor, line, v, p, True, 0.6 * weight))
        if len(candidates) >= 1.3 * n:
            break
    # Weighted sampling without replacement (Efraimidis–Spirakis): popular combinations first.
    keyed = sorted(candidates, key=lambda d: -math.log(1.0 - rng.random()) / d.weight)
    return keyed[:n]


def _finish(drafts: list[_Draft], days: int, seed: int) -> Catalog:
    rng = random.Random(f"{seed}:product-facts")
    n = len(drafts)
    names, brands, packs, tags, allergens = [], [], [], [], []
    cols = {
        key: np.zeros(n, dtype=dtype)
        for key, dtype in (
            ("aisle", np.int32), ("department", np.int32), ("price", np.float64), ("in_stock", np.bool_),
            ("cycle_days", np.float32), ("season", np.uint8), ("launch_day", np.int32),
            ("popularity", np.float32), ("relative_price", np.float32), ("diet_bits", np.uint8),
            ("allergen_bits", np.uint16), ("organic", np.uint8), ("kids", np.uint8), ("plant", np.uint8),
        )
    }  # fmt: skip
    for i, d in enumerate(drafts):
        aisle = AISLES[d.aisle]
        variant = aisle.variants[d.variant]
        pack_label, pack_factor = aisle.packs[d.pack]
        flags = aisle.variant_flags(variant)
        food = "nonfood" not in flags
        prefix = " ".join(part for part in ("Organic" if d.organic else "", d.line) if part)
        name = f"{d.brand} {prefix + ' ' if prefix else ''}{variant.name}"
        names.append(f"{name}, {pack_label}" if len(aisle.packs) > 1 else name)
        brands.append(d.brand)
        packs.append(pack_label)

        standard_price = aisle.price * pack_factor**0.85
        price = standard_price * d.tier_price * (1.3 if d.organic else 1.0) * rng.lognormvariate(0.0, 0.1)
        price = max(0.49, math.floor(price * 10) / 10 + 0.09)  # shelf prices end in 9

        product_allergens = tuple(x for x in ALLERGENS if x in flags)
        product_tags = _dietary_tags(flags, food, d.organic, rng)
        tags.append(product_tags)
        allergens.append(product_allergens)

        cols["aisle"][i] = d.aisle
        cols["department"][i] = DEPARTMENTS.index(aisle.department)
        cols["price"][i] = round(price, 2)
        cols["in_stock"][i] = rng.random() >= _OUT_OF_STOCK_SHARE
        cols["cycle_days"][i] = aisle.cycle * pack_factor
        cols["season"][i] = SEASONS.index(aisle.variant_season(variant))
        launched_later = days >= 90 and rng.random() < _NEW_PRODUCT_SHARE
        cols["launch_day"][i] = rng.randrange(30, days - 30) if launched_later else 0
        cols["popularity"][i] = d.weight * rng.lognormvariate(0.0, 0.5)
        cols["relative_price"][i] = math.log(price / standard_price)
        cols["diet_bits"][i] = (DIET_VEGAN if "vegan" in product_tags else 0) | (
            DIET_VEGETARIAN if "vegetarian" in product_tags else 0
        )
        cols["allergen_bits"][i] = sum(1 << ALLERGENS.index(x) for x in product_allergens)
        cols["organic"][i] = d.organic
        cols["kids"][i] = "kids" in flags
        cols["plant"][i] = "plant" in flags
    distinct_brands = sorted(set(brands))
    brand_of = {b: k for k, b in enumerate(distinct_brands)}
    return Catalog(
        departments=DEPARTMENTS,
        aisles=AISLES,
        names=names,
        brands=brands,
        pack_sizes=packs,
        dietary_tags=tags,
        allergens=allergens,
        brand_index=np.array([brand_of[b] for b in brands], dtype=np.int32),
        **cols,
    )


def _dietary_tags(flags: frozenset[str], food: bool, organic: bool, rng: random.Random) -> tuple[str, ...]:
    tags = []
    if not flags & ANIMAL_FLAGS:
        tags.append("vegan")
    if not flags & FLESH_FLAGS:
        tags.append("vegetarian")
    if "gluten" not in flags:
        tags.append("gluten_free")
    if "milk" not in flags or "lactose_free" in flags:
        tags.append("lactose_free")
    if not flags & {"peanuts", "tree_nuts"}:
        tags.append("nut_free")
    # Certifications: only some eligible food carries them.
    halal_ok = food and not flags & {"pork", "alcohol", "gelatin"}
    if halal_ok and rng.random() < _HALAL_SHARE:
        tags.append("halal")
    kosher_ok = food and not flags & {"pork", "shellfish"} and not {"meat", "milk"} <= flags
    if kosher_ok and rng.random() < _KOSHER_SHARE:
        tags.append("kosher")
    if organic:
        tags.append("organic")
    tags.extend(claim for claim in ("sugar_free", "low_sodium") if claim in flags)
    return tuple(tags)


def write_catalog(catalog: Catalog, out_dir: Path) -> None:
    """products.csv, aisles.csv and departments.csv in the Instacart layout (+ our extra columns)."""
    with open(out_dir / "departments.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("department_id", "department"))
        writer.writerows((i + 1, name) for i, name in enumerate(catalog.departments))
    with open(out_dir / "aisles.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("aisle_id", "aisle"))
        writer.writerows((i + 1, aisle.name) for i, aisle in enumerate(catalog.aisles))
    with open(out_dir / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PRODUCTS_HEADER)
        for i in range(len(catalog)):
            writer.writerow(
                (
                    i + 1,
                    catalog.names[i],
                    int(catalog.aisle[i]) + 1,
                    int(catalog.department[i]) + 1,
                    catalog.brands[i],
                    f"{catalog.price[i]:.2f}",
                    catalog.pack_sizes[i],
                    ";".join(catalog.dietary_tags[i]),
                    ";".join(catalog.allergens[i]),
                    int(catalog.in_stock[i]),
                )
            )
