"""`omnix generate`: a synthetic supermarket in the public Instacart CSV layout.

Quality is measured on this data too, so it is learnable structure plus noise, each kind of
structure something a grocer would recognise: consumption cycles, brand loyalty, taste segments,
complements, seasonal whims, discovery, and hard rules (diets, allergies, launch days) that are
never broken. Python builds the catalogue (`catalog.py`) and the calendar; `rust_core/src/synth`
simulates the households. The files keep the public files' quirks so Instacart tooling reads
them, and the same arguments give byte-identical files whatever the number of threads.
"""

from __future__ import annotations

import json
import math
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from omnix_recs import _core, progress
from omnix_recs.data.catalog import Catalog, build_catalog, write_catalog
from omnix_recs.data.taxonomy import AISLES, AUDIENCES, SEASONS, aisle_index
from omnix_recs.domain.models import ALLERGENS
from omnix_recs.errors import InvalidArgumentError

# The simulated period ends on this date unless told otherwise (a fixed date keeps output
# reproducible); `omnix import instacart` places the last day at --as-of.
DEFAULT_END_DATE = date(2026, 11, 1)
DEFAULT_TASTE_SEGMENTS = 24
GENERATION_FILE = "generation.json"

MIN_DAYS = 28
MAX_DAYS = 3 * 366
MAX_CUSTOMERS = 10_000_000
MAX_PRODUCTS = 1_000_000


def generate_instacart(
    out_dir: Path,
    *,
    customers: int,
    products: int,
    days: int,
    seed: int,
    end_date: date = DEFAULT_END_DATE,
    taste_segments: int = DEFAULT_TASTE_SEGMENTS,
) -> dict[str, Any]:
    """Write a synthetic supermarket into `out_dir`; returns counts and the seconds it took."""
    _check_range("customers", customers, 1, MAX_CUSTOMERS)
    _check_range("products", products, 2 * len(AISLES), MAX_PRODUCTS)
    _check_range("days", days, MIN_DAYS, MAX_DAYS)
    _check_range("seed", seed, 0, 2**63 - 1)
    _check_range("taste_segments", taste_segments, 1, 1000)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # The households are simulated in one call to the Rust core: stages and time, not a rate.
    with progress.stages("generate", ["catalog", "households"]) as stage:
        stage.begin("catalog")
        catalog = build_catalog(products, days, seed)
        write_catalog(catalog, out_dir)
        stage.begin("households")
        first_day = end_date - timedelta(days=days - 1)
        counts = _core.synth_simulate_households(
            str(out_dir),
            _shelf_columns(catalog),
            households=customers,
            seed=seed,
            taste_segments=taste_segments,
            season_multiplier=season_multipliers(first_day, days),
            weekday=np.array([(first_day + timedelta(d)).isoweekday() % 7 for d in range(days)], dtype=np.uint8),
            allergen_names=list(ALLERGENS),
        )
    summary: dict[str, Any] = {
        "customers": counts["customers"],
        "products": len(catalog),
        "orders": counts["orders"],
        "order_lines": counts["prior_lines"] + counts["train_lines"],
        "prior_lines": counts["prior_lines"],
        "train_lines": counts["train_lines"],
        "first_date": first_day.isoformat(),
        "end_date": end_date.isoformat(),
    }
    metadata = {"generator": "omnix generate", "seed": seed, "days": days, "taste_segments": taste_segments, **summary}
    (out_dir / GENERATION_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(name, f"must be an integer between {low} and {high}, got {value!r}")


def season_multipliers(first_day: date, days: int) -> np.ndarray:
    """[len(SEASONS), days] float32: how much of a season's goods sell on each day vs an average day.

    Each profile averages 1 over a year, so a product's cycle stays its yearly average.
    """
    day_of_year = np.array([(first_day + timedelta(d)).timetuple().tm_yday for d in range(days)], dtype=np.float64)
    year = np.arange(1, 366, dtype=np.float64)
    profiles = [_season_profile(name, year) for name in SEASONS]
    table = [_season_profile(name, day_of_year) / profile.mean() for name, profile in zip(SEASONS, profiles)]
    return np.ascontiguousarray(np.stack(table), dtype=np.float32)


def _season_profile(name: str, doy: np.ndarray) -> np.ndarray:
    def around(peak: float) -> np.ndarray:  # circular distance in days to the peak
        d = np.abs(doy - peak)
        return np.minimum(d, 365.25 - d)

    def wave(peak: float) -> np.ndarray:  # 1 at the peak day, -1 half a year away
        return np.cos(2 * math.pi * (doy - peak) / 365.25)

    if name == "none":
        return np.ones_like(doy)
    if name == "summer":
        return 1 + 0.7 * wave(196)  # mid-July
    if name == "bbq":
        return np.exp(1.5 * wave(190))
    if name == "winter":
        return 1 + 0.6 * wave(20)  # late January
    if name == "december":
        return 0.6 + 5.0 * np.exp(-0.5 * (around(352) / 10) ** 2)  # the weeks before Christmas
    if name == "halloween":
        return 0.4 + 6.0 * np.exp(-0.5 * (around(300) / 7) ** 2)
    raise ValueError(f"no profile for season {name!r}")


def _shelf_columns(catalog: Catalog) -> dict[str, np.ndarray]:
    index = aisle_index()
    offsets, targets, probabilities = [0], [], []
    for aisle in AISLES:
        for target, probability in aisle.complements:
            targets.append(index[target])
            probabilities.append(probability)
        offsets.append(len(targets))
    u8, u32, f32 = np.uint8, np.uint32, np.float32
    return {
        "product_aisle": catalog.aisle.astype(u32),
        "product_brand": catalog.brand_index.astype(u32),
        "product_cycle_days": catalog.cycle_days.astype(f32),
        "product_season": catalog.season.astype(u8),
        "product_launch_day": catalog.launch_day.astype(np.int32),
        "product_popularity": catalog.popularity.astype(f32),
        "product_relative_price": catalog.relative_price.astype(f32),
        "product_diet": catalog.diet_bits.astype(u8),
        "product_allergens": catalog.allergen_bits.astype(np.uint16),
        "product_organic": catalog.organic.astype(u8),
        "product_kids": catalog.kids.astype(u8),
        "product_plant": catalog.plant.astype(u8),
        "aisle_penetration": np.array([a.penetration for a in AISLES], dtype=f32),
        "aisle_needs": np.array([a.needs for a in AISLES], dtype=f32),
        "aisle_impulse": np.array([a.impulse for a in AISLES], dtype=f32),
        "aisle_season": np.array([SEASONS.index(a.season) for a in AISLES], dtype=u8),
        "aisle_audience": np.array([AUDIENCES.index(a.audience) for a in AISLES], dtype=u8),
        "complement_offsets": np.array(offsets, dtype=u32),
        "complement_aisles": np.array(targets, dtype=u32),
        "complement_probability": np.array(probabilities, dtype=f32),
    }
