"""Benchmark: consumption predictions and customer profiles on a generated supermarket.

Generates a supermarket (`omnix generate`, default 2,000 households over a year), imports it
into a scratch SQLite store, then prints:
1. the prediction backtest (`omnix_recs.insights.evaluate.evaluate_predictions`): next-trip and
   next-purchase MAE in days against the customer's mean gap, median gap and the population
   cycle, and precision / recall of "due now";
2. profiles against the generator's ground truth (households.csv): household size, budget tier,
   diets, pets, children and churn;
3. the cost of one customer's local analysis, and of the Rust cycle kernel against a numpy
   reference over every customer × product of the data;
4. three local-analyst insights for generated customers (a regular, one with children or pets,
   one at risk).

    python benches/bench_insights.py                       # 2,000 households, ~1 minute
    python benches/bench_insights.py --customers 500 --insights-only
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import numpy as np

from omnix_recs import _core
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import default_as_of, import_instacart
from omnix_recs.domain.consumption import PurchaseTable
from omnix_recs.insights.analyst import InsightsService
from omnix_recs.insights.evaluate import evaluate_predictions
from omnix_recs.insights.facts import customer_facts
from omnix_recs.insights.local import write_insights
from omnix_recs.store import open_store

TIERS = {"low": "value", "mid": "mid", "high": "premium"}


def profile_accuracy(service: InsightsService, truth: dict[str, dict[str, str]], as_of: datetime, limit: int) -> str:
    sizes, tiers, traits = [], Counter(), Counter()
    latencies = []
    for customer_id, row in list(truth.items())[:limit]:
        started = time.perf_counter()
        analysis = service.analysis(customer_id, as_of=as_of)
        latencies.append(time.perf_counter() - started)
        profile = analysis.profile
        sizes.append((int(row["household_size"]), profile.household.size))
        tiers[(TIERS[row["budget_tier"]], profile.budget.tier.value)] += 1
        found = {t.trait.value for t in profile.lifestyle} | {profile.lifecycle.segment.value}
        for trait, actual in [
            ("vegetarian", row["diet"] == "vegetarian"),
            ("vegan", row["diet"] == "vegan"),
            ("pets", bool(row["pets"])),
            ("young_children", int(row["children"]) > 0),
            ("at_risk", row["churned"] == "1"),
        ]:
            traits[(trait, trait in found, actual)] += 1
    actual = np.array([a for a, _ in sizes])
    guess = np.array([g for _, g in sizes])
    mode = Counter(actual.tolist()).most_common(1)[0][0]
    n = len(sizes)
    tier_majority = Counter(t for t, _ in tiers.elements()).most_common(1)[0]
    lines = [
        f"Profiles against the generator's ground truth ({n} households)",
        f"  household size: exact {np.mean(guess == actual):.0%}, within one {np.mean(abs(guess - actual) <= 1):.0%}, "
        f"MAE {np.mean(abs(guess - actual)):.2f}   (always {mode}: exact {np.mean(actual == mode):.0%}, "
        f"MAE {np.mean(abs(actual - mode)):.2f})",
        f"  budget tier: {sum(c for (t, g), c in tiers.items() if t == g) / n:.0%} right   "
        f"(always {tier_majority[0]!r}: {tier_majority[1] / n:.0%})",
    ]
    for trait, truth_name in [
        ("vegetarian", "diet vegetarian"),
        ("vegan", "diet vegan"),
        ("pets", "has pets"),
        ("young_children", "has children"),
        ("at_risk", "churned"),
    ]:
        tp, fp, fn = traits[(trait, True, True)], traits[(trait, True, False)], traits[(trait, False, True)]
        lines.append(
            f"  {trait:<15} vs {truth_name:<16} precision {tp / max(1, tp + fp):.2f}  recall {tp / max(1, tp + fn):.2f}"
            f"  ({tp + fn} actual)"
        )
    lines.append(
        f"  one customer's full analysis (local): median {statistics.median(latencies) * 1e3:.1f} ms, "
        f"p95 {np.percentile(latencies, 95) * 1e3:.1f} ms"
    )
    return "\n".join(lines)


def huber_reference(gaps: np.ndarray, k: float = 1.345) -> float:
    """numpy version of the core's per-group estimate (the same as tests/insights)."""
    centre = float(np.median(gaps))
    if len(gaps) <= 2:
        return centre
    scale = max(1.482602218505602 * float(np.median(np.abs(gaps - centre))), max(0.05 * centre, 0.25))
    location = centre
    for _ in range(50):
        distance = np.abs(gaps - location)
        weights = np.where(distance <= k * scale, 1.0, k * scale / np.maximum(distance, 1e-300))
        new = float(np.sum(weights * gaps) / np.sum(weights))
        if abs(new - location) <= 1e-9 * max(abs(location), 1.0):
            return new
        location = new
    return location


def kernel_ratio(table: PurchaseTable) -> str:
    groups = table.customer * len(table.product_ids) + table.product
    _, codes = np.unique(groups, return_inverse=True)
    n_groups = int(codes.max()) + 1
    priors = np.full(n_groups, np.nan)
    started = time.perf_counter()
    out = _core.consumption_cycles(codes.astype(np.int64), table.day, priors)
    rust_s = time.perf_counter() - started

    started = time.perf_counter()
    order = np.lexsort((table.day, codes))
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    reference = np.full(n_groups, np.nan)
    for g in range(n_groups):
        days = table.day[order[bounds[g] : bounds[g + 1]]]
        trips = days[np.concatenate([[True], np.diff(days) >= 0.5])] if len(days) else days
        if len(trips) >= 2:
            reference[g] = huber_reference(np.diff(trips))
    numpy_s = time.perf_counter() - started
    agree = np.allclose(out["own_cycle_days"], reference, rtol=1e-6, equal_nan=True)
    return (
        f"Cycle kernel over {n_groups} customer x product groups ({len(table)} lines): Rust {rust_s * 1e3:.1f} ms, "
        f"numpy reference {numpy_s * 1e3:.0f} ms ({numpy_s / rust_s:.0f}x), results agree: {agree}"
    )


def pick_examples(service: InsightsService, truth: dict[str, dict[str, str]], as_of: datetime) -> list[str]:
    """A regular customer, one with children or pets, one at risk: the first of each kind."""
    wanted = {"regular": None, "family or pets": None, "at_risk": None}
    for customer_id in truth:
        if all(wanted.values()):
            break
        analysis = service.analysis(customer_id, as_of=as_of)
        segment = analysis.profile.lifecycle.segment.value
        traits = {t.trait.value for t in analysis.profile.lifestyle}
        kind = (
            "at_risk"
            if segment == "at_risk"
            else (
                "family or pets"
                if traits & {"young_children", "pets"} and segment == "regular"
                else "regular"
                if segment == "regular" and len(analysis.history.visits) >= 10
                else None
            )
        )
        if kind and wanted[kind] is None:
            row = truth[customer_id]
            wanted[kind] = (
                f"customer {customer_id} ({kind}):\n  {write_insights(customer_facts(analysis))['summary']}\n"
                f"  [ground truth: household {row['household_size']} ({row['children']} children), budget "
                f"{row['budget_tier']}, diet {row['diet']}, pets {row['pets'] or 'none'}, churned {row['churned']}]"
            )
    return [text for text in wanted.values() if text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profiles", type=int, default=1000, help="households to profile against the truth")
    parser.add_argument("--insights-only", action="store_true", help="skip the backtest and the accuracy tables")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="omnix-bench-insights-") as scratch:
        directory = Path(scratch) / "data"
        started = time.perf_counter()
        summary = generate_instacart(
            directory, customers=args.customers, products=args.products, days=args.days, seed=args.seed
        )
        end = default_as_of(directory)
        store = open_store(f"sqlite:///{Path(scratch) / 'omnix.db'}")
        import_instacart(store, directory, as_of=end)
        print(
            f"generated and imported {summary['customers']} households, {summary['order_lines']} order lines "
            f"in {time.perf_counter() - started:.1f} s (seed {args.seed})\n"
        )
        # Analyse as of the morning after the last day of data.
        as_of = datetime.combine(end + timedelta(days=1), day_time(6), tzinfo=UTC)
        service = InsightsService(store, Settings(bedrock_enabled=False))
        with open(directory / "households.csv", newline="", encoding="utf-8") as fh:
            truth = {row["user_id"]: row for row in csv.DictReader(fh)}
        if not args.insights_only:
            print(evaluate_predictions(store), end="\n\n")
            print(profile_accuracy(service, truth, as_of, args.profiles), end="\n\n")
            print(kernel_ratio(PurchaseTable.from_columns(store.scan_purchases())), end="\n\n")
        print("Local-analyst insights:")
        for text in pick_examples(service, truth, as_of):
            print(text, end="\n\n")
        store.close()


if __name__ == "__main__":
    main()
