"""Learned re-ranking: trees that order the head of a blend's list (rust_core/src/engine/rerank.rs).

A blend weighs each signal the same for every shopper. After training has tuned a blend on the
held-out baskets, it fits LambdaMART trees on the same baskets: for each shopper, the blend's
best candidates with their features (`_core.RANK_FEATURES`: the signals, the blend's score,
what the history says of the product) and which of them the basket held. The trees learn what
one weight per signal cannot (due-ness counting more for long histories, say). Training ships
them only when they order baskets better than the blend on shoppers they were not fitted on
(engine/tuning.py `learn_reranking`): on a shop where they do not help, the blend stays alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from omnix_recs._core import RANK_FEATURES, Reranker, train_reranker
from omnix_recs.engine.blends import Blend
from omnix_recs.engine.recommender import PreparedShopper, Recommender, in_threads

# Candidates per shopper the trees learn to order: the kernel's head for a list of 10
# (rank.rs `head_size`), which is what serving re-orders.
RERANK_HEAD = 64
# Small, shallow, strongly regularised trees: a shop gives a few thousand held-out baskets to
# learn from, and deeper or more trees fitted their own shoppers better and others worse (on
# Complete Journey and generated data alike). Every request walks every tree: 50 trees of
# depth 3 cost a few microseconds for 64 candidates.
RERANK_TREES = 50
RERANK_DEPTH = 3
RERANK_LEARNING_RATE = 0.05
RERANK_MIN_LEAF = 200
RERANK_L2 = 10.0
RERANK_NDCG_K = 10
RERANK_BINS = 32
# The trees start from the blend's score times this (a linear start on that feature): they
# learn corrections to the blend's order, not an order from nothing.
RERANK_BASE_WEIGHT = 2.0


def head_candidates(
    recommender: Recommender, shoppers: Sequence[PreparedShopper], blend: Blend
) -> list[tuple[list[str], np.ndarray]]:
    """Each shopper's best `RERANK_HEAD` candidates under `blend`, in its order, with their
    features (float32 [n, n_features])."""
    plain = replace(blend, reranker=None)  # the blend's own order, whatever re-ranker it carries
    return in_threads(lambda shopper: recommender.listed_with_features(shopper, plain, RERANK_HEAD), shoppers)


def reranked_head(reranker: Reranker, candidates: tuple[list[str], np.ndarray], k: int) -> list[str]:
    """The first `k` of a blend's head (`head_candidates` of a blend without a per-aisle cap)
    in `reranker`'s order: the list serving gives under that blend with these trees, without
    ranking again (rank.rs `rerank_head`: a stable sort by prediction, ties in the blend's
    order, in `f32::total_cmp`'s order of floats, which tells -0.0 below 0.0). Holds while
    the head is the kernel's for a list of k (`RERANK_HEAD` == rank.rs `head_size(k)`, which is
    max(4k, 64))."""
    if max(4 * k, 64) != RERANK_HEAD:
        raise ValueError(f"a head of {RERANK_HEAD} candidates is not the kernel's head of a list of {k}")
    ids, features = candidates
    if not ids:
        return []
    bits = reranker.predict(features).view(np.int32)
    # f32::total_cmp as an integer: negative floats' magnitude bits flipped, so the integers
    # rise with the floats; ~key falls as they rise, and a stable sort of it is the kernel's.
    key = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    return [ids[i] for i in np.argsort(~key, kind="stable")[:k].tolist()]


def fit_reranker(
    candidates: Sequence[tuple[list[str], np.ndarray]],
    truth: Sequence[frozenset[str]],
    *,
    base_weight: float = RERANK_BASE_WEIGHT,
    trees: int = RERANK_TREES,
) -> Reranker:
    """Trees that order each shopper's candidates so that their basket (`truth`) comes first,
    starting from the blend's score times `base_weight`."""
    base = np.zeros(len(RANK_FEATURES), dtype=np.float32)
    base[RANK_FEATURES.index("blend_score")] = base_weight
    features = [x for _, x in candidates]
    labels = np.concatenate(
        [np.fromiter((p in t for p in ids), np.float32, len(ids)) for (ids, _), t in zip(candidates, truth)]
    )
    starts = np.zeros(len(candidates) + 1, dtype=np.int64)
    np.cumsum([len(ids) for ids, _ in candidates], out=starts[1:])
    return train_reranker(
        np.ascontiguousarray(np.concatenate(features), dtype=np.float32),
        labels,
        starts,
        base=base,
        trees=trees,
        depth=RERANK_DEPTH,
        learning_rate=RERANK_LEARNING_RATE,
        min_leaf=RERANK_MIN_LEAF,
        l2=RERANK_L2,
        ndcg_k=RERANK_NDCG_K,
        bins=RERANK_BINS,
    )
