"""Experiment statistics by simulation: false positives under daily peeking, power for a lift.

    python benches/bench_experiments.py                  # the issue's figures: 1,000 experiments each
    python benches/bench_experiments.py --experiments 200 --customers 2000

A/A: both arms alike; an analyst reads GetExperimentResults every day for `--days` days and
stops at the first p < 0.05. The always-valid (mSPRT) p-value should keep that at or below 5%;
for contrast the same looks with a fixed-horizon z-test are shown. Lift: the treatment's
click-through rate is 10% higher; the share of experiments that reach p < 0.05 within the
days is the power. The statistics are omnix_recs.experiments.stats, the simulator
omnix_recs.experiments.simulate.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from omnix_recs.experiments.simulate import Scenario, arm_sums, daily_p_values


def naive_peeking_rate(scenario: Scenario, experiments: int, rng: np.random.Generator) -> float:
    """The share of A/A experiments a fixed-horizon two-sided z-test, read daily, declares significant."""
    hits = 0
    for begin in range(0, experiments, 25):
        e = min(25, experiments - begin)
        control, treatment = arm_sums(scenario, e, 1.0, rng), arm_sums(scenario, e, 1.0, rng)
        z = (treatment.ratio() - control.ratio()) / np.sqrt(treatment.variance() + control.variance())
        p = np.vectorize(lambda v: math.erfc(abs(v) / math.sqrt(2)))(np.nan_to_num(z))
        hits += int((p.min(axis=1) < 0.05).sum())
    return hits / experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=5000, help="per arm")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--lift", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    base = Scenario(customers_per_arm=args.customers, days=args.days)

    started = time.perf_counter()
    aa = daily_p_values(base, args.experiments, rng)
    aa_s = time.perf_counter() - started
    started = time.perf_counter()
    lifted = daily_p_values(
        Scenario(customers_per_arm=args.customers, days=args.days, lift=args.lift), args.experiments, rng
    )
    lift_s = time.perf_counter() - started
    naive = naive_peeking_rate(base, min(args.experiments, 400), rng)

    print(f"{args.experiments} experiments per scenario, {args.customers} customers per arm, {args.days} daily looks")
    print(f"base CTR {base.base_ctr:.0%}, {base.items} items per list, visit probability {base.visit_probability}")
    print(f"A/A  always-valid p < 0.05 at any look: {np.mean(aa[:, -1] < 0.05):.1%}   ({aa_s:.1f} s)")
    print(f"A/A  fixed-horizon z-test read daily:   {naive:.1%}   (for contrast)")
    print(f"lift {args.lift:.0%} found by the last look:        {np.mean(lifted[:, -1] < 0.05):.1%}   ({lift_s:.1f} s)")
    for day in (3, 7):
        if day <= args.days:
            print(f"lift {args.lift:.0%} found by day {day}:               {np.mean(lifted[:, day - 1] < 0.05):.1%}")


if __name__ == "__main__":
    main()
