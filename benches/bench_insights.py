"""Benchmark: consumption predictions and customer profiles, on generated or real shoppers.

`--data generated` (the default) generates a supermarket (`omnix generate`, 2,000 households
over a year) into a scratch SQLite store; `--data completejourney` imports Dunnhumby's The
Complete Journey (the `completejourney` extra) into one, or reads `--store URL` when it is
there already (only read: nothing is written to it). Then it prints:
1. the prediction backtest (`omnix_recs.insights.evaluate`): next-trip and next-purchase errors
   in days against the customer's mean gap, median gap and the population cycle, computed in
   the same run on the last `--holdout-days`; the ranking of products bought again (AUC); and
   precision / recall of "due now";
2. profiles against the truth: household size, income band and age band against Complete
   Journey's survey (accuracy and macro-F1 next to always answering the most common value), or
   against the generator's households.csv (household size, budget tier, diets, pets, children,
   churn);
3. the Rust kernels against numpy references (cycles, and the survival outlook of next trips);
4. on generated data, three local-analyst insights (a regular, one with children or pets, one at
   risk).

    python benches/bench_insights.py                                   # generated, ~1 minute
    python benches/bench_insights.py --data completejourney --store sqlite:////tmp/cj/omnix.db
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
from omnix_recs.domain.outlook import VISIT_OUTLOOK, GapSample, outlooks
from omnix_recs.insights.analyst import InsightsService
from omnix_recs.insights.evaluate import (
    completejourney_truth,
    evaluate_predictions,
    profile_answers,
    profile_households,
    profile_report,
    score_attribute,
)
from omnix_recs.insights.facts import customer_facts
from omnix_recs.insights.local import write_insights
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

TIERS = {"low": "value", "mid": "mid", "high": "premium"}


def profile_accuracy(service: InsightsService, truth: dict[str, dict[str, str]], as_of: datetime, limit: int) -> str:
    sizes: list[tuple[int, int]] = []
    tiers: Counter[tuple[str, str]] = Counter()
    traits: Counter[tuple[str, bool, bool]] = Counter()
    latencies = []
    for customer_id, row in list(truth.items())[:limit]:
        started = time.perf_counter()
        analysis = service.analysis(customer_id, as_of=as_of)
        latencies.append(time.perf_counter() - started)
        profile = analysis.profile
        sizes.append((int(row["household_size"]), profile.household.size))
        tiers[(TIERS[row["budget_tier"]], profile.budget.tier.value)] += 1
        found = {t.trait.value for t in profile.lifestyle} | {profile.lifecycle.segment.value}
        for trait, has_trait in [
            ("vegetarian", row["diet"] == "vegetarian"),
            ("vegan", row["diet"] == "vegan"),
            ("pets", bool(row["pets"])),
            ("young_children", int(row["children"]) > 0),
            ("at_risk", row["churned"] == "1"),
        ]:
            traits[(trait, trait in found, has_trait)] += 1
    actual = np.array([a for a, _ in sizes])
    guess = np.array([g for _, g in sizes])
    mode = Counter(actual.tolist()).most_common(1)[0][0]
    n = len(sizes)
    tier_majority = Counter(t for t, _ in tiers.elements()).most_common(1)[0]
    bands = [str(v) if v < 5 else "5+" for v in actual], [str(v) if v < 5 else "5+" for v in guess]
    households = [str(i) for i in range(n)]
    size = score_attribute("household size", dict(zip(households, bands[0])), dict(zip(households, bands[1])))
    lines = [
        f"Profiles against the generator's ground truth ({n} households)",
        profile_report([size]),
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


def trip_days_reference(days: np.ndarray) -> np.ndarray:
    """Sorted purchase days merged into trips as the core merges them: a purchase less than half
    a day after the start of the current trip belongs to it."""
    trips: list[float] = []
    for day in days:
        if not trips or day - trips[-1] >= 0.5:
            trips.append(float(day))
    return np.array(trips)


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
        trips = trip_days_reference(days)
        if len(trips) >= 2:
            reference[g] = huber_reference(np.diff(trips))
    numpy_s = time.perf_counter() - started
    agree = np.allclose(out["own_cycle_days"], reference, rtol=1e-6, equal_nan=True)
    return (
        f"Cycle kernel over {n_groups} customer x product groups ({len(table)} lines): Rust {rust_s * 1e3:.1f} ms, "
        f"numpy reference {numpy_s * 1e3:.0f} ms ({numpy_s / rust_s:.0f}x), results agree: {agree}"
    )


def outlook_reference(
    days: np.ndarray, as_of: float, scale: float, sample: GapSample, weight: float, beta: float, half_life: float
) -> float:
    """numpy version of the core's median wait (the same as tests/insights)."""
    trips = trip_days_reference(days[days < as_of])
    elapsed = as_of - trips[-1]
    gaps = np.diff(trips)
    keep = gaps - elapsed > -1e-6
    own = np.maximum(gaps[keep] - elapsed, 0.0)
    own_weight = (0.5 ** ((len(gaps) - 1 - np.arange(len(gaps))) / half_life))[keep]
    factor = (scale / sample.scales) ** beta if np.isfinite(scale) and scale > 0 and beta > 0 else 1.0
    moved = sample.gaps * factor
    taken = moved - elapsed > -1e-6
    waits = np.concatenate([own, np.maximum(moved[taken] - elapsed, 0.0)])
    weights = np.concatenate([own_weight, np.full(int(taken.sum()), weight / max(1, int(taken.sum())))])
    if not len(waits):
        return float("inf")
    order = np.argsort(waits, kind="stable")
    cumulative = np.cumsum(weights[order])
    target = 0.5 * cumulative[-1] * (1 - 1e-12)  # exact halves go to the lower value, as in the core
    return float(waits[order][min(np.searchsorted(cumulative, target), len(waits) - 1)])


def outlook_ratio(table: PurchaseTable) -> str:
    """The next-trip outlook of every customer as of the last day: Rust against numpy."""
    as_of = float(np.floor(table.day.max()))
    visits = _core.population_cycles(table.customer, np.zeros(len(table), dtype=np.int64), table.day, 1)
    sample = GapSample.of(visits)
    n = len(table.customer_ids)
    cycles = _core.consumption_cycles(table.customer, table.day, np.full(n, np.nan))
    scales = cycles["own_cycle_days"]
    started = time.perf_counter()
    rust = outlooks(table.customer, table.day, scales, as_of, sample, VISIT_OUTLOOK).median_days
    rust_s = time.perf_counter() - started
    order = np.lexsort((table.day, table.customer))
    bounds = np.searchsorted(table.customer[order], np.arange(n + 1))
    started = time.perf_counter()
    reference = np.full(n, np.nan)
    settings = VISIT_OUTLOOK
    for c in range(n):
        days = table.day[order[bounds[c] : bounds[c + 1]]]
        if (days < as_of).any():
            reference[c] = outlook_reference(
                days, as_of, scales[c], sample, settings.population_weight, settings.scale_exponent,
                settings.recency_half_life,
            )  # fmt: skip
    numpy_s = time.perf_counter() - started
    agree = np.allclose(rust, reference, rtol=1e-6, atol=1e-6, equal_nan=True)
    return (
        f"Next-trip outlook over {n} customers ({len(sample)} population gaps): Rust {rust_s * 1e3:.1f} ms, "
        f"numpy reference {numpy_s * 1e3:.0f} ms ({numpy_s / rust_s:.0f}x), results agree: {agree}"
    )


def pick_examples(service: InsightsService, truth: dict[str, dict[str, str]], as_of: datetime) -> list[str]:
    """A regular customer, one with children or pets, one at risk: the first of each kind."""
    wanted: dict[str, str | None] = {"regular": None, "family or pets": None, "at_risk": None}
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


def profile_check(store: Store) -> str:
    """Household size, income band and age band against Complete Journey's survey."""
    from omnix_recs.data.completejourney import read_demographics

    survey = read_demographics()
    started = time.perf_counter()
    profiles = profile_households(store, survey)
    truth = completejourney_truth(survey)
    answers = profile_answers(profiles)
    scores = [score_attribute(attribute, truth[attribute], answers[attribute]) for attribute in truth]
    return (
        f"Profiles against Complete Journey's survey ({len(profiles)} households, from purchases only, "
        f"{time.perf_counter() - started:.0f} s)\n{profile_report(scores)}\n"
        + "\n".join(f"  answered {s.attribute}: {dict(sorted(s.predicted.items()))}" for s in scores)
    )


def kernels(store: Store) -> str:
    table = PurchaseTable.from_columns(store.scan_purchases())
    return f"{kernel_ratio(table)}\n{outlook_ratio(table)}"


def run_completejourney(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="omnix-bench-insights-") as scratch:
        if args.store:
            store = open_store(args.store)
        else:
            from omnix_recs.data.completejourney import import_completejourney

            store = open_store(f"sqlite:///{Path(scratch) / 'omnix.db'}")
            report = import_completejourney(store)
            print(f"imported Complete Journey: {report.order_lines} order lines in {report.seconds:.0f} s\n")
        print(evaluate_predictions(store, holdout_days=args.holdout_days), end="\n\n")
        print(profile_check(store), end="\n\n")
        print(kernels(store))
        store.close()


def run_generated(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="omnix-bench-insights-") as scratch:
        directory = Path(scratch) / "data"
        started = time.perf_counter()
        summary = generate_instacart(
            directory, customers=args.customers, products=args.products, days=args.days, seed=args.seed
        )
        end = default_as_of(directory)
        assert end is not None, "omnix generate records the last day of its data"
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
            print(evaluate_predictions(store, holdout_days=args.holdout_days), end="\n\n")
            print(profile_accuracy(service, truth, as_of, args.profiles), end="\n\n")
            print(kernels(store), end="\n\n")
        print("Local-analyst insights:")
        for text in pick_examples(service, truth, as_of):
            print(text, end="\n\n")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("generated", "completejourney"), default="generated")
    parser.add_argument("--store", help="completejourney: a store that holds it already (read only)")
    parser.add_argument("--holdout-days", type=int, default=28, help="days held out for the prediction backtest")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profiles", type=int, default=1000, help="households to profile against the truth")
    parser.add_argument("--insights-only", action="store_true", help="skip the backtest and the accuracy tables")
    args = parser.parse_args()
    if args.data == "completejourney":
        run_completejourney(args)
    else:
        run_generated(args)


if __name__ == "__main__":
    main()
