"""numpy reference of the "shoppers like you" build (`rust_core/src/engine/shoppers.rs`).

Dense and exact: every customer compared with every other (cosine over habit weights), so it is
for the tests' small shops, and it is what the kernel computes when its inverted index keeps
every buyer (`postings_cap=0`).
"""

from __future__ import annotations

import numpy as np


def habit_weights(
    customer: np.ndarray,
    basket: np.ndarray,
    item: np.ndarray,
    purchased_at: np.ndarray,
    n_customers: int,
    n_items: int,
    decay: float,
) -> np.ndarray:
    """Dense customer x item: the share of the customer's trips holding the item, a trip k trips
    before their latest weighing decay**k (trips by time, ties by basket code)."""
    weights = np.zeros((n_customers, n_items), dtype=np.float64)
    for c in range(n_customers):
        own = np.flatnonzero(customer == c)
        baskets = np.unique(basket[own])
        placed = np.array([purchased_at[own][basket[own] == b].min() for b in baskets])
        order = np.lexsort((baskets, placed))
        ago = {int(b): len(baskets) - 1 - k for k, b in enumerate(baskets[order])}
        total = sum(decay**k for k in range(len(baskets)))
        for b in baskets:
            for i in np.unique(item[own][basket[own] == b]):
                weights[c, i] += decay ** ago[int(b)] / total
    return weights.astype(np.float32)


def shoppers_like_you(weights: np.ndarray, neighbours: int, items: int) -> list[list[tuple[int, float]]]:
    """Per customer: the `items` best (item, score) of the similarity-weighted mean row of their
    `neighbours` most similar customers (positive cosine only; ties to the lower index)."""
    w = weights.astype(np.float32)
    norms = np.sqrt((w * w).sum(axis=1))
    unit = np.divide(w, norms[:, None], out=np.zeros_like(w), where=norms[:, None] > 0)
    similarity = unit @ unit.T
    rows: list[list[tuple[int, float]]] = []
    for u in range(len(w)):
        sims = similarity[u].copy()
        sims[u] = 0.0
        candidates = [v for v in np.lexsort((np.arange(len(sims)), -sims)) if sims[v] > 0][:neighbours]
        total = float(sum(sims[v] for v in candidates))
        if not candidates or total <= 0:
            rows.append([])
            continue
        mean = sum(sims[v] / total * w[v].astype(np.float64) for v in candidates)
        best = [int(i) for i in np.lexsort((np.arange(len(mean)), -mean)) if mean[i] > 0][:items]
        rows.append([(i, float(mean[i])) for i in best])
    return rows
