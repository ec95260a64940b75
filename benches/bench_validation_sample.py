"""Does tuning on a model of a sample of the shop choose blends as good as tuning on all of it?

    python benches/bench_validation_sample.py --store sqlite:///path/omnix.db [--population 50000]

`omnix train` tunes the blends on a model built from at most `tuning.VALIDATION_SHOPPERS`
shoppers (engine/tuning.py `validate`). This builds the tuning model both ways from the same
held-out split (every shopper but the held-out baskets, and the sample), tunes the blends on
each, and judges both tuned blend sets and the defaults on the validation shoppers with the
model built from every shopper: the one that stands in for the served model. Prints build and
tuning times and recall@10 / NDCG@10 per task and moment of asking. Needs a shop larger than
`--population` to say anything (a smaller one is used whole either way).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Mapping

from omnix_recs.config import Settings
from omnix_recs.engine import tuning
from omnix_recs.engine.artifact import with_habit_decay
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy
from omnix_recs.engine.build import BuildParameters, content_neighbours, read_training_data
from omnix_recs.engine.holdout import AskedAt, Trips, hold_out, lines_without
from omnix_recs.engine.recommender import Recommender
from omnix_recs.engine.train import _validation_model
from omnix_recs.store import open_store
from omnix_recs.store import snapshot as training_snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="store URL (a shop larger than --population)")
    parser.add_argument("--population", type=int, default=tuning.VALIDATION_SHOPPERS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings.from_env()
    store = open_store(args.store)
    try:
        at = training_snapshot.location(store, settings.snapshot_dir, args.store)
        products, lines = read_training_data(store, snapshot_at=at)
        trips = Trips.of(lines)
        eligible = trips.eligible()
        random.Random(args.seed).shuffle(eligible)
        group = min(tuning.TUNING_SHOPPERS, len(eligible) // 2)
        split = hold_out(trips, sorted(eligible[:group]) + sorted(eligible[group : 2 * group]))
        tuning_split, validation = split.subset(range(group)), split.subset(range(group, 2 * group))
        out: dict[str, object] = {"shoppers": lines.n_customers, "population": args.population}

        parameters = BuildParameters()
        content = content_neighbours(products, lines.item_ids, parameters)  # as `omnix train` shares it
        started = time.perf_counter()
        everyone = _validation_model(
            lines_without(lines, split.targets), split.customers, products, parameters, content
        )
        out["build_everyone_s"] = round(time.perf_counter() - started, 1)
        learn_from = tuning.population_sample(
            range(lines.n_customers), split.customers.tolist(), args.population, args.seed
        )
        started = time.perf_counter()
        sample = _validation_model(
            lines_without(lines, tuning.baskets_left_out(lines, split.targets, learn_from)),
            split.customers,
            products,
            parameters,
            content,
        )
        out["build_sample_s"] = round(time.perf_counter() - started, 1)

        engine: dict[str, tuple[Recommender, Mapping[str, Blend]]] = {
            "default": (Recommender(store, tuning.FixedModel(everyone)), DEFAULT_BLENDS)
        }
        for name, model in (("tuned on everyone", everyone), ("tuned on the sample", sample)):
            started = time.perf_counter()
            choice = tuning.tune_habit_decay(
                store, model, tuning_split, seed=args.seed, blend=DEFAULT_BLENDS[Strategy.REPLENISH]
            )
            blends = tuning.tune_blends(choice.recommender, tuning_split, seed=args.seed, shoppers=choice.shoppers)
            out[f"tune {name} s"] = round(time.perf_counter() - started, 1)
            judge = Recommender(store, tuning.FixedModel(with_habit_decay(everyone, choice.habit_decay)))
            engine[name] = (judge, blends)
        results = tuning.compare(
            validation,
            trips,
            engine,
            [],
            k_values=(10,),
            catalog_size=len(products),
            seed=args.seed,
        )
        for when in AskedAt:
            for task in tuning.TASKS:
                for name in engine:
                    metrics = results[when][task][name]
                    out[f"{when} {task} {name}"] = [round(metrics["recall@10"], 4), round(metrics["ndcg@10"], 4)]
    finally:
        store.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
