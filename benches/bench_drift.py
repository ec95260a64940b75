"""How often the drift check (omnix_recs/insights/drift.py) raises a false alarm on a steady
predictor, and how often it catches a worsening, by simulation.

Each run: an earlier and a latest bucket of N forecasts, each with a next-trip and a
next-purchase error around 2 days (normal spread 1.5 days, folded at 0); the latest bucket's
errors shifted by the worsening.

    python benches/bench_drift.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime

from omnix_recs.domain.predictions import ForecastScore
from omnix_recs.insights.drift import accuracy_drift

EARLIER, LATEST = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)
LEVEL_DAYS, SPREAD_DAYS = 2.0, 1.5


def share_flagged(worsening_days: float, per_bucket: int, runs: int, seed: int) -> float:
    rng = random.Random(seed)

    def score(level: float) -> ForecastScore:
        visit, product = (abs(level + rng.gauss(0.0, SPREAD_DAYS)) for _ in range(2))
        return ForecastScore(False, visit, (product,), 0, 0, 0)

    flagged = 0
    for _ in range(runs):
        scored = [(EARLIER, score(LEVEL_DAYS)) for _ in range(per_bucket)]
        scored += [(LATEST, score(LEVEL_DAYS + worsening_days)) for _ in range(per_bucket)]
        flagged += accuracy_drift(scored).drifting
    return flagged / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    print("forecasts per bucket | steady (false alarms) | +0.5 day | +1 day")
    for per_bucket in (40, 200):
        shares = [share_flagged(w, per_bucket, args.runs, seed=per_bucket) for w in (0.0, 0.5, 1.0)]
        print(f"{per_bucket:>20} | " + " | ".join(f"{s:.1%}" for s in shares))


if __name__ == "__main__":
    main()
