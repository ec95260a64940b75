"""Type stubs for the Rust extension `omnix_recs._core` (hand-written; keep in step with rust_core).

Each section belongs to one Rust module (rust_core/src/<module>/).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class CoreError(Exception): ...
class InvalidInputError(CoreError): ...
class ModelFormatError(CoreError): ...
class CoreIoError(CoreError): ...

# --- synth (rust_core/src/synth) -------------------------------------------------------------

# --- engine (rust_core/src/engine) -----------------------------------------------------------

# --- insights (rust_core/src/insights) -------------------------------------------------------

def consumption_cycles(
    group_codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.float64],
    prior_cycle_days: npt.NDArray[np.float64],
    *,
    same_trip_days: float = 0.5,
    prior_strength: float = 2.0,
    huber_k: float = 1.345,
    prior_reliability: float = 0.3,
) -> dict[str, npt.NDArray[Any]]:
    """Robust cycles per group: `group_codes[i]` in 0..len(prior_cycle_days) names the group of
    the purchase on `days[i]` (float days, any order). Keys: cycle_days, own_cycle_days,
    confidence, dispersion, first_day, last_day, recent_cycle_days (float64), trips (uint32)."""

def population_cycles(
    customer_codes: npt.NDArray[np.int64],
    item_codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.float64],
    n_items: int,
    *,
    same_trip_days: float = 0.5,
) -> dict[str, npt.NDArray[Any]]:
    """Per item: cycle_days (median over repeat buyers of their median gap; NaN = none),
    buyers and repeat_buyers (uint32)."""
