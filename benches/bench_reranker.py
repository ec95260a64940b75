#!/usr/bin/env python3
"""Training the learned re-ranking trees (`_core.train_reranker`) at the size `omnix train`
fits them: up to `RERANK_SHOPPERS` queries of `RERANK_HEAD` candidates each, with the shipped
tree settings (engine/reranking.py). Labels are random (about five relevant rows per query, as
in a basket), so the figure is the fitting cost, not a quality. Prints the best CPU and wall
time over the repeats.

    python benches/bench_reranker.py [--queries 6000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from omnix_recs._core import RANK_FEATURES, train_reranker
from omnix_recs.engine import reranking
from omnix_recs.engine.tuning import RERANK_SHOPPERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=RERANK_SHOPPERS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, n_features = args.queries * reranking.RERANK_HEAD, len(RANK_FEATURES)
    features = rng.random((rows, n_features), dtype=np.float32)
    labels = (rng.random(rows) < 5 / reranking.RERANK_HEAD).astype(np.float32)
    starts = np.arange(0, rows + 1, reranking.RERANK_HEAD, dtype=np.int64)
    base = np.zeros(n_features, dtype=np.float32)
    base[RANK_FEATURES.index("blend_score")] = reranking.RERANK_BASE_WEIGHT
    cpu, wall = [], []
    for _ in range(args.repeats):
        started_cpu, started = time.process_time(), time.perf_counter()
        train_reranker(
            features,
            labels,
            starts,
            base=base,
            trees=reranking.RERANK_TREES,
            depth=reranking.RERANK_DEPTH,
            learning_rate=reranking.RERANK_LEARNING_RATE,
            min_leaf=reranking.RERANK_MIN_LEAF,
            l2=reranking.RERANK_L2,
            ndcg_k=reranking.RERANK_NDCG_K,
            bins=reranking.RERANK_BINS,
        )
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    print(
        f"train_reranker: {args.queries} queries x {reranking.RERANK_HEAD} rows, {reranking.RERANK_TREES} trees: "
        f"best {min(cpu):.2f} CPU s, {min(wall):.2f} s wall (of {args.repeats})"
    )


if __name__ == "__main__":
    main()
