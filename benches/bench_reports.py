"""The business reports on a big store: the period's purchases by time index against a full scan.

    python benches/bench_reports.py --store sqlite:////tmp/experiments/omnix.db --end 2026-11-02

Opens the store (applying any pending migration, timed: the first open of an older database
builds the purchases' time index) and reports over the `--days` days before `--end`: reading
that period's order lines through `Store.purchases_between` against the scan of every order line
the reports made before (`Store.scan_purchases`, filtered), then the three reports
(GetRecommendationPerformance, Roi, Impact) end to end both ways. Only reads after the migration.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from omnix_recs.domain.models import Purchase
from omnix_recs.experiments import reports
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

T = TypeVar("T")


def timed(label: str, work: Callable[[], T], runs: int) -> T:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<44} {best * 1000:10.1f} ms (best of {runs})")
    assert result is not None
    return result


def scanned(store: Store, start: datetime, end: datetime) -> list[Purchase]:
    """The period's order lines as the reports read them before: a pass over every line."""
    low, high = start.timestamp(), end.timestamp()
    found = []
    for batch in store.scan_purchases():
        for customer_id, order_id, product_id, quantity, unit_price, at in batch.rows():
            if low <= at < high:
                found.append(
                    Purchase(customer_id, order_id, product_id, quantity, unit_price, datetime.fromtimestamp(at, UTC))
                )
    return found


class Scanning:
    """The store, with the period's purchases read as before (a full scan)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def purchases_between(self, start: datetime, end: datetime) -> list[Purchase]:
        return scanned(self._store, start, end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--end",
        type=lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC),
        help="period end (UTC); default now",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    store = open_store(args.store)
    print(f"{'open (pending migrations)':<44} {(time.perf_counter() - started) * 1000:10.1f} ms")
    try:
        end = args.end or datetime.now(UTC)
        start = end - timedelta(days=args.days)
        print(f"purchases: {store.count_purchases():,} in all; period {start:%Y-%m-%d} .. {end:%Y-%m-%d}")
        by_index = timed(
            "period by time index (purchases_between)", lambda: list(store.purchases_between(start, end)), args.runs
        )
        by_scan = timed("period by full scan (before)", lambda: scanned(store, start, end), args.runs)
        assert len(by_index) == len(by_scan), (len(by_index), len(by_scan))
        print(f"order lines in the period: {len(by_index):,}")
        before = cast(Store, Scanning(store))
        for name, report in (
            ("GetRecommendationPerformance", reports.recommendation_performance),
            ("GetRecommendationRoi", reports.recommendation_roi),
            ("GetRecommendationImpact", reports.recommendation_impact),
        ):
            timed(f"{name} (time index)", lambda: report(store, start, end), args.runs)  # noqa: B023
            timed(f"{name} (full scan, before)", lambda: report(before, start, end), args.runs)  # noqa: B023
    finally:
        store.close()


if __name__ == "__main__":
    main()
