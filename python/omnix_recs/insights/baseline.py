"""The population baseline every customer is compared with, and its in-process cache.

A baseline holds the population's product cycles and shopping cadence (priors for the
per-customer cycles), the reference distributions of shopper metrics (for profiling) and the
catalog signals. It is computed from the store itself, so insights work before any
recommendation model has been trained. Building it scans the purchases, so each server process
keeps one and rebuilds it when it is old or the store's purchases have moved (`BaselineCache`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from omnix_recs.domain.consumption import PopulationCycles, PurchaseTable, population_cycles, to_day
from omnix_recs.domain.models import Product
from omnix_recs.domain.profiling import CatalogSignals, PopulationProfile, population_profile
from omnix_recs.store.base import Store

log = logging.getLogger(__name__)

# The purchase count may drift this much before the baseline is rebuilt.
REBUILD_DRIFT = 0.02
# Larger stores are sampled (whole customers) down to about this many order lines: plenty for
# population cycles and percentiles, and a bounded build time and memory.
MAX_BASELINE_LINES = 2_000_000


@dataclass(frozen=True)
class PopulationBaseline:
    cycles: PopulationCycles
    profile: PopulationProfile
    catalog: CatalogSignals
    purchases: int  # order lines it was built from (after sampling)
    built_at: datetime


def build_baseline(table: PurchaseTable, products: Iterable[Product], *, as_of: datetime) -> PopulationBaseline:
    """The baseline of the purchases in `table` (callers cut it at `as_of` for backtests)."""
    catalog = CatalogSignals.from_products(products)
    cycles = population_cycles(table)  # computed once: the profile reference reuses them
    return PopulationBaseline(
        cycles=cycles,
        profile=population_profile(table, catalog, to_day(as_of), cycles=cycles),
        catalog=catalog,
        purchases=len(table),
        built_at=as_of,
    )


class BaselineCache:
    """One baseline per process, rebuilt when stale; thread-safe (one build at a time)."""

    def __init__(self, store: Store, *, max_age_s: float = 6 * 3600.0, check_every_s: float = 60.0) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._check_every_s = check_every_s
        self._lock = threading.Lock()
        self._baseline: PopulationBaseline | None = None
        self._built_count = 0  # the store's purchase count when the baseline was built
        self._built_monotonic = 0.0
        self._checked_monotonic = 0.0

    def get(self) -> PopulationBaseline:
        with self._lock:
            if self._baseline is None or self._stale():
                self._baseline = self._build()
                self._built_monotonic = self._checked_monotonic = time.monotonic()
            return self._baseline

    def _stale(self) -> bool:
        assert self._baseline is not None
        now = time.monotonic()
        if now - self._built_monotonic > self._max_age_s:
            return True
        if now - self._checked_monotonic < self._check_every_s:
            return False
        self._checked_monotonic = now
        count = self._store.count_purchases()
        return abs(count - self._built_count) > REBUILD_DRIFT * max(1, self._built_count)

    def _build(self) -> PopulationBaseline:
        started = time.perf_counter()
        self._built_count = self._store.count_purchases()
        share = min(1.0, MAX_BASELINE_LINES / max(1, self._built_count))
        table = PurchaseTable.from_columns(self._store.scan_purchases(), customer_share=share)
        baseline = build_baseline(table, self._store.iter_products(), as_of=datetime.now(UTC))
        log.info(
            "population baseline built",
            extra={"purchases": baseline.purchases, "seconds": round(time.perf_counter() - started, 3)},
        )
        return baseline
