"""The popularity-bias knob's curve: accuracy against popularity bias as the discount grows.

`OMNIX_POPULARITY_DISCOUNT` (`Blend.popularity_discount`) multiplies every score by
1 - discount x the product's popularity. This bench builds the model `omnix evaluate` judges
(each shopper's last basket held out), serves every discount from the same model and blends,
and prints recall@10 beside the lists' popularity bias (mean share of shoppers who bought a
listed product, long-tail share, Gini of exposure, catalog coverage), asked at the next trip.

    python benches/bench_popularity_bias.py --store sqlite:///cj.db [--max-customers 1000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import replace

from omnix_recs.config import Settings
from omnix_recs.engine.blends import DEFAULT_BLENDS, Strategy
from omnix_recs.engine.evaluate import _production_build
from omnix_recs.engine.holdout import AskedAt, ItemPopularity, Trips, hold_out, lines_without
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.engine.recommender import Recommender
from omnix_recs.engine.tuning import FixedModel, compare
from omnix_recs.store import open_store

DISCOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="store URL (an imported data set)")
    parser.add_argument("--max-customers", type=int, default=1000)
    args = parser.parse_args()
    store = open_store(args.store)
    settings = Settings.from_env({"OMNIX_STORE": args.store})
    products = list(store.iter_products())
    lines = read_purchase_lines(store.scan_purchases(), (p.product_id for p in products))
    trips = Trips.of(lines)
    eligible = trips.eligible()
    if len(eligible) > args.max_customers:
        eligible = sorted(random.Random(0).sample(eligible, args.max_customers))
    test = hold_out(trips, eligible, back=1)
    with tempfile.TemporaryDirectory() as workdir:
        model = _production_build(lines_without(lines, test.targets), products, replace(settings, model_dir=workdir))
        recommender = Recommender(store, FixedModel(model))
        engine = {
            f"discount {d:g}": (recommender, {s: replace(b, popularity_discount=d) for s, b in DEFAULT_BLENDS.items()})
            for d in DISCOUNTS
        }
        results = compare(
            test,
            trips,
            engine,
            [],
            k_values=(K,),
            catalog_size=len(products),
            popularity=ItemPopularity.of(trips, test.targets),
        )
    print(f"{len(eligible)} customers, asked at the next trip, default blends\n")
    for task in (Strategy.REPLENISH, Strategy.DISCOVER):
        print(f"{task.upper()}")
        columns = ("recall", "popularity", "long_tail", "gini", "coverage")
        print(f"  {'setting':<14}" + "".join(f"{c + '@' + str(K):>15}" for c in columns))
        for name, metrics in results[AskedAt.NEXT_TRIP][task].items():
            print(f"  {name:<14}" + "".join(f"{metrics[f'{c}@{K}']:>15.4f}" for c in columns))
        print()


if __name__ == "__main__":
    main()
