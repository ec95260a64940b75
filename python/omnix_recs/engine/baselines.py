"""Reference recommenders the engine is measured against (`omnix evaluate`).

All work on the same input: each shopper's past baskets (oldest first, arrays of item indices)
and return a dense score per item; the evaluator ranks the scores. numpy/scipy only, written for
clarity over speed (evaluation runs on thousands of shoppers, not millions); what they learn is
kept sparse, so every shopper of a store can be in the fit while only a sample is scored.

- `GlobalPopularity`: how many baskets contained the item, shop-wide.
- `PersonalFrequency`: how many of the shopper's baskets contained it (ties: popularity).
- `ItemKNN`: plain cosine item-item similarity over shopper x item incidence, summed over the
  shopper's history (self-similarity included, so past items count).
- `TifuKNN`: Hu et al., "Modeling Personalized Item Frequency Information for Next-basket
  Recommendation", SIGIR 2020: time-decayed group vectors per shopper, user-kNN by Euclidean
  distance, prediction = alpha * own vector + (1 - alpha) * mean of the neighbours' vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse as sp

Baskets = Sequence[np.ndarray]  # one shopper's baskets, oldest first


class Baseline(Protocol):
    name: str

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None: ...

    def scores(self, shopper: int) -> np.ndarray:
        """Dense float scores over items for the shopper at position `shopper` of `fit`'s input."""


def incidence(histories: Sequence[Baskets], n_items: int) -> sp.csr_matrix:
    """Shopper x item: number of the shopper's baskets containing the item."""
    rows, cols = [], []
    for u, baskets in enumerate(histories):
        for basket in baskets:
            items = np.unique(basket)
            rows.append(np.full(len(items), u))
            cols.append(items)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data = np.ones(len(row), dtype=np.float32)
    return sp.csr_matrix((data, (row, col)), shape=(len(histories), n_items))


class GlobalPopularity:
    name = "global popularity"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._popularity = np.asarray(incidence(histories, n_items).sum(axis=0)).ravel()

    def scores(self, shopper: int) -> np.ndarray:
        return self._popularity.astype(np.float64)


class PersonalFrequency:
    name = "personal top frequency"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._counts = incidence(histories, n_items)
        popularity = np.asarray(self._counts.sum(axis=0)).ravel()
        # Popularity only breaks ties (and fills lists for shoppers with few products).
        self._tie_break = popularity / (popularity.max() + 1.0) if len(popularity) else popularity

    def scores(self, shopper: int) -> np.ndarray:
        return self._counts[shopper].toarray().ravel() + self._tie_break


class ItemKNN:
    name = "item-kNN (cosine)"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        binary = incidence(histories, n_items)
        binary.data[:] = 1.0
        norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
        normalised = binary @ sp.diags(1.0 / np.maximum(norms, 1e-12))
        similarity = (normalised.T @ normalised).tocsr()
        self._similarity = _keep_top_per_row(similarity, self.neighbours)
        self._history = binary

    def scores(self, shopper: int) -> np.ndarray:
        return np.asarray((self._history[shopper] @ self._similarity).todense()).ravel()


def _keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        if len(data) > k:
            top = np.argpartition(-data, k - 1)[:k]
            data, idx = data[top], idx[top]
        rows.append(np.full(len(idx), r))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


@dataclass
class TifuKNN:
    """TIFU-KNN with the paper's Instacart settings as defaults."""

    neighbours: int = 900
    within_decay: float = 0.9  # r_b
    group_decay: float = 0.7  # r_g
    groups: int = 3  # m: the history is split into this many consecutive groups
    alpha: float = 0.9
    name: str = "TIFU-KNN"

    def user_vector(self, baskets: Baskets, n_items: int) -> np.ndarray:
        vector = np.zeros(n_items, dtype=np.float64)
        if not len(baskets):
            return vector
        blocks = np.array_split(np.arange(len(baskets)), min(self.groups, len(baskets)))
        for j, block in enumerate(blocks):
            group = np.zeros(n_items, dtype=np.float64)
            for i, b in enumerate(block):
                group[np.unique(baskets[b])] += self.within_decay ** (len(block) - 1 - i)
            vector += self.group_decay ** (len(blocks) - 1 - j) * group / len(block)
        return vector / len(blocks)

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        indptr, indices, data = [0], [], []
        for baskets in histories:
            vector = self.user_vector(baskets, n_items)
            items = np.flatnonzero(vector)
            indices.append(items)
            data.append(vector[items])
            indptr.append(indptr[-1] + len(items))
        self._vectors = sp.csr_matrix(
            (np.concatenate([np.zeros(0), *data]), np.concatenate([np.zeros(0, dtype=np.int64), *indices]), indptr),
            shape=(len(histories), n_items),
        )
        self._squared = np.asarray(self._vectors.multiply(self._vectors).sum(axis=1)).ravel()

    def scores(self, shopper: int) -> np.ndarray:
        own = self._vectors[shopper]
        # Squared Euclidean distances from this shopper to every shopper.
        distances = self._squared + self._squared[shopper] - 2.0 * np.asarray((self._vectors @ own.T).todense()).ravel()
        distances[shopper] = np.inf  # a shopper is not their own neighbour
        k = min(self.neighbours, len(distances) - 1)
        own_dense = own.toarray().ravel()
        if k <= 0:
            return own_dense
        neighbours = np.argpartition(distances, k - 1)[:k]
        mean = np.asarray(self._vectors[neighbours].mean(axis=0)).ravel()
        return self.alpha * own_dense + (1.0 - self.alpha) * mean
