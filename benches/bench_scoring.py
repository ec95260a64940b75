#!/usr/bin/env python3
"""Per-request scoring: the Rust kernel (`_core.RankTables.rank`) against its numpy reference.

Tables shaped like an Instacart-scale model (50,000 products, 50 neighbours per table, 53
weeks, 32 taste factors), random but realistic in shape; requests for a typical shopper (history of
60 distinct products, a basket of 3) and a heavy one (300 products, basket of 10), each with 50
"shoppers like you" products. Results are checked equal before anything is timed. Prints p50/p99 per call and the ratio,
then the kernel's cost with a learned re-ranker of the shape training ships (engine/reranking.py),
fitted here on random labels: the trees' size, not their quality, sets the cost. Last, the
kernel asked for one shopper after another (`--shoppers` different requests in turn, as
serving and training's validation ask): the table rows each reads are then rarely still in
cache, where asking for the same shopper again finds them there.

    python benches/bench_scoring.py [--items 50000] [--neighbours 50] [--taste-dims 32] [--calls 2000]
                                    [--shoppers 400]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import resource
import time
from collections.abc import Callable, Iterator

import numpy as np
from reference.rank import RankRequest, rank_reference

from omnix_recs._core import RANK_SIGNALS, RankTables, Reranker
from omnix_recs.engine import reranking


def tables(rng: np.random.Generator, n: int, k: int, taste_dims: int) -> dict[str, np.ndarray]:
    def neighbours() -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, n, size=(n, k), dtype=np.int32)
        score = np.sort(rng.random((n, k), dtype=np.float32), axis=1)[:, ::-1].copy()
        return idx, score

    cooc_idx, cooc_sim = neighbours()
    fbt_idx, fbt_score = neighbours()
    content_idx, content_sim = neighbours()
    return {
        "cooc_idx": cooc_idx,
        "cooc_sim": cooc_sim,
        "fbt_idx": fbt_idx,
        "fbt_score": fbt_score * 3,
        "content_idx": content_idx,
        "content_sim": content_sim,
        "popularity": rng.random(n, dtype=np.float32) ** 4,
        "trending": rng.normal(0, 0.5, n).astype(np.float32),
        "seasonal_lift": rng.lognormal(0, 0.2, (n, 53)).astype(np.float32),
        "population_cycle_days": rng.uniform(4, 60, n).astype(np.float32),
        "repurchase_rate": rng.random(n, dtype=np.float32),
        "taste_factors": rng.normal(0, n**-0.5, (n, taste_dims)).astype(np.float32),
    }


def request(rng: np.random.Generator, n: int, history: int, basket: int) -> RankRequest:
    items = rng.choice(n, size=history + basket, replace=False).astype(np.int32)
    orders = rng.integers(1, 20, history).astype(np.float32)
    gaps = np.where(orders > 1, rng.uniform(3, 30, history), np.nan).astype(np.float32)
    weights = np.ones(len(RANK_SIGNALS), dtype=np.float32)
    return {
        "history_items": items[:history],
        "days_since_last": rng.uniform(0, 90, history).astype(np.float32),
        "mean_gap_days": gaps,
        "orders": orders,
        "habit": rng.random(history, dtype=np.float32),
        "basket": items[history:],
        "allowed": rng.random(n) < 0.9,
        "category_ids": rng.integers(0, 134, n, dtype=np.int32),
        "brand_ids": rng.integers(-1, 3000, n, dtype=np.int32),
        "extra_candidates": rng.choice(n, 200, replace=False).astype(np.int32),
        "weights": weights,
        "week": 50,
        "k": 20,
        "exclude_history": False,
        "per_category_cap": 3,
        "neighbours_per_item": 20,
        "days_to_next_trip": 3.0,
        "like_you_items": rng.choice(n, 50, replace=False).astype(np.int32),
        "like_you_scores": np.sort(rng.random(50, dtype=np.float32))[::-1].copy(),
    }


def shipped_shape_reranker(kernel: RankTables, rng: np.random.Generator, n: int) -> Reranker:
    """A forest as big as training ships, fitted to the kernel's features for random requests."""
    heads = [
        kernel.rank(**(request(rng, n, 60, 3) | {"k": reranking.RERANK_HEAD}), with_features=True) for _ in range(200)
    ]
    candidates = [([str(i) for i in head[0]], head[5]) for head in heads]
    truth = [frozenset(rng.choice(ids, size=min(5, len(ids)), replace=False).tolist()) for ids, _ in candidates]
    return reranking.fit_reranker(candidates, truth)


def rank_next(kernel: RankTables, requests: Iterator[RankRequest]) -> object:
    return kernel.rank(**next(requests))


def timed(fn: Callable[[], object], calls: int) -> np.ndarray:
    out = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument("--taste-dims", type=int, default=32)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--shoppers", type=int, default=400)
    args = parser.parse_args()
    rng = np.random.default_rng(42)
    model = tables(rng, args.items, args.neighbours, args.taste_dims)
    kernel = RankTables(**model)
    print(f"items={args.items} neighbours/table={args.neighbours} taste dims={args.taste_dims} calls={args.calls}")
    print(f"{'shopper':<10}{'rust p50':>10}{'rust p99':>10}{'numpy p50':>11}{'numpy p99':>11}{'ratio p50':>11}")
    for label, history, basket in (("typical", 60, 3), ("heavy", 300, 10)):
        req = request(rng, args.items, history, basket)
        got = kernel.rank(**req)
        want = rank_reference(model, **req)
        np.testing.assert_array_equal(got[0], want.items)
        np.testing.assert_allclose(got[1], want.scores, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[3], want.reasons)
        rust = timed(functools.partial(kernel.rank, **req), args.calls)
        reference = timed(functools.partial(rank_reference, model, **req), max(args.calls // 20, 20))
        print(
            f"{label:<10}{np.percentile(rust, 50):>9.3f}ms{np.percentile(rust, 99):>9.3f}ms"
            f"{np.percentile(reference, 50):>10.2f}ms{np.percentile(reference, 99):>10.2f}ms"
            f"{np.percentile(reference, 50) / np.percentile(rust, 50):>10.0f}x"
        )
    reranker = shipped_shape_reranker(kernel, rng, args.items)
    print(f"with learned re-ranking ({reranker.n_trees} trees of depth {reranking.RERANK_DEPTH} over the head):")
    for label, history, basket in (("typical", 60, 3), ("heavy", 300, 10)):
        req = request(rng, args.items, history, basket)
        plain = timed(functools.partial(kernel.rank, **req), args.calls)
        reranked = timed(functools.partial(kernel.rank, **req, reranker=reranker), args.calls)
        print(
            f"{label:<10}{np.percentile(reranked, 50):>9.3f}ms{np.percentile(reranked, 99):>9.3f}ms"
            f"   without: {np.percentile(plain, 50):.3f}ms / {np.percentile(plain, 99):.3f}ms"
        )
    print(f"one shopper after another ({args.shoppers} shoppers, {args.calls} calls; rust p50 / p99):")
    for label, history, basket in (("typical", 60, 3), ("heavy", 300, 10)):
        requests = [request(rng, args.items, history, basket) for _ in range(args.shoppers)]
        for req in requests:  # a first round, so what stays in cache between rounds is the tables' share
            kernel.rank(**req)
        by_turn = timed(functools.partial(rank_next, kernel, itertools.cycle(requests)), args.calls)
        print(f"{label:<10}{np.percentile(by_turn, 50):>9.3f}ms{np.percentile(by_turn, 99):>9.3f}ms")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.0f} MiB (tables {sum(a.nbytes for a in model.values()) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
