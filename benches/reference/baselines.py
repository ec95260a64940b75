"""numpy reference of the baselines (`python/omnix_recs/engine/baselines.py`) and of the lists
training files for them (`engine/tuning.py`: `baseline_lists`, `top_k`).

The per-shopper implementation the package used before its fits and lists were vectorised,
kept verbatim: the tests check that the package's lists and scores are exactly these (same
items, same order, same ties), and `benches/bench_baselines.py` times the package against it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.matrix import SparseMatrix, csr_counts

Baskets = Sequence[np.ndarray]  # one shopper's baskets, oldest first

# Co-purchase pairs ItemKNN counts at a time: bounds the memory of the fit (about 30 bytes a
# pair) whatever the size of the item x item matrix.
PAIRS_PER_BLOCK = 8_000_000


class Baseline(Protocol):
    name: str

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None: ...

    def scores(self, shopper: int) -> np.ndarray:
        """Dense float scores over items for the shopper at position `shopper` of `fit`'s input."""


def incidence(histories: Sequence[Baskets], n_items: int) -> SparseMatrix:
    """Shopper x item: number of the shopper's baskets containing the item (float32)."""
    rows, cols = [], []
    for u, baskets in enumerate(histories):
        for basket in baskets:
            items = np.unique(basket)
            rows.append(np.full(len(items), u, dtype=np.int64))
            cols.append(items.astype(np.int64))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return csr_counts(row, col, len(histories), n_items)


class GlobalPopularity:
    name = "global popularity"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._popularity = _column_sums(incidence(histories, n_items))

    def scores(self, shopper: int) -> np.ndarray:
        return self._popularity.astype(np.float64)


class PersonalFrequency:
    name = "personal top frequency"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._counts = incidence(histories, n_items)
        popularity = _column_sums(self._counts)
        # Popularity only breaks ties (and fills lists for shoppers with few products).
        self._tie_break = popularity / (popularity.max() + 1.0) if len(popularity) else popularity

    def scores(self, shopper: int) -> np.ndarray:
        scores: np.ndarray = _dense_row(self._counts, shopper) + self._tie_break
        return scores


class ItemKNN:
    name = "item-kNN (cosine)"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        counts = incidence(histories, n_items)
        binary = SparseMatrix(counts.indptr, counts.indices, np.ones(counts.nnz, dtype=np.float32), n_items)
        norms = np.sqrt(_column_sums(binary))
        inverse_norms = 1.0 / np.maximum(norms, 1e-12)  # float32, as the cosine is computed
        self._similarity = _top_cosines(binary, inverse_norms, self.neighbours)
        self._history = binary

    def scores(self, shopper: int) -> np.ndarray:
        history = self._history.indices[self._history.indptr[shopper] : self._history.indptr[shopper + 1]]
        items, similarity = _gather_rows(self._similarity, history)
        scores = np.zeros(self._similarity.n_cols, dtype=np.float32)
        np.add.at(scores, items, similarity)  # one at a time, history item by history item
        return scores


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
        indptr = np.zeros(len(histories) + 1, dtype=np.int64)
        indices, data = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.float64)]
        for u, baskets in enumerate(histories):
            vector = self.user_vector(baskets, n_items)
            items = np.flatnonzero(vector)
            indices.append(items)
            data.append(vector[items])
            indptr[u + 1] = indptr[u] + len(items)
        self._vectors = _Rows(indptr, np.concatenate(indices), np.concatenate(data), n_items)
        self._by_item = self._vectors.transposed()
        squares = self._vectors.data * self._vectors.data
        self._squared = np.zeros(len(histories), dtype=np.float64)
        filled = np.flatnonzero(np.diff(indptr))
        if len(filled):
            self._squared[filled] = np.add.reduceat(squares, indptr[filled])

    def scores(self, shopper: int) -> np.ndarray:
        vectors = self._vectors
        own_items, own_weights = vectors.row(shopper)
        own_dense = np.zeros(vectors.n_cols, dtype=np.float64)
        own_dense[own_items] = own_weights
        # Each shopper's dot product with this one, summed over the shared items in item order.
        shoppers, weights = self._by_item.gather(own_items)
        dots = np.zeros(vectors.n_rows, dtype=np.float64)
        np.add.at(dots, shoppers, weights * np.repeat(own_weights, self._by_item.lengths(own_items)))
        # Squared Euclidean distances from this shopper to every shopper.
        distances = self._squared + self._squared[shopper] - 2.0 * dots
        distances[shopper] = np.inf  # a shopper is not their own neighbour
        k = min(self.neighbours, len(distances) - 1)
        if k <= 0:
            return own_dense
        neighbours = np.argpartition(distances, k - 1)[:k]
        items, weights = vectors.gather(neighbours)
        mean = np.zeros(vectors.n_cols, dtype=np.float64)
        np.add.at(mean, items, weights * (1.0 / k))  # neighbour by neighbour, in that order
        return self.alpha * own_dense + (1.0 - self.alpha) * mean


# --- sparse helpers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rows:
    """A CSR matrix of any dtype: row r is `indices/data[indptr[r]:indptr[r + 1]]`, columns ascending."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.indptr[r], self.indptr[r + 1]
        return self.indices[start:stop], self.data[start:stop]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        lengths: np.ndarray = self.indptr[rows + 1] - self.indptr[rows]
        return lengths

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of `rows` one after the other, in the order given."""
        positions = _positions(self.indptr, rows)
        return self.indices[positions], self.data[positions]

    def transposed(self) -> _Rows:
        """The same matrix stored by column (rows ascending within each column)."""
        order = np.argsort(self.indices, kind="stable")
        indptr = np.zeros(self.n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.indices, minlength=self.n_cols), out=indptr[1:])
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))
        return _Rows(indptr, rows[order], self.data[order], self.n_rows)


def _positions(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in a CSR's entries of the rows `rows`, concatenated in the order given."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    positions: np.ndarray = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return positions


def _gather_rows(matrix: SparseMatrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = _positions(matrix.indptr, rows.astype(np.int64))
    return matrix.indices[positions], matrix.data[positions]


def _dense_row(matrix: SparseMatrix, r: int) -> np.ndarray:
    dense = np.zeros(matrix.n_cols, dtype=matrix.data.dtype)
    start, stop = matrix.indptr[r], matrix.indptr[r + 1]
    dense[matrix.indices[start:stop]] = matrix.data[start:stop]
    return dense


def _column_sums(matrix: SparseMatrix) -> np.ndarray:
    """Per column, the sum of its entries, as float32 (exact: the entries are small counts)."""
    return np.bincount(matrix.indices, weights=matrix.data, minlength=matrix.n_cols).astype(np.float32)


def _top_cosines(binary: SparseMatrix, inverse_norms: np.ndarray, k: int) -> SparseMatrix:
    """Per item, its `k` most similar items by cosine (itself included), columns ascending.

    The cosine of i and j is c_ij copies of inverse_norms[i] * inverse_norms[j] added one by one
    in float32, c_ij = shoppers who bought both: exactly what the product of the normalised
    incidence matrix with its transpose computes. The item x item matrix is never held whole:
    it is counted a block of items at a time, and only each item's top k is kept.
    """
    n_items = binary.n_cols
    by_user = _Rows(binary.indptr, binary.indices, binary.data, n_items)
    by_item = by_user.transposed()
    user_degree = np.diff(by_user.indptr)
    # Pairs emitted by the rows before each item: every (user of item i, item of that user).
    pairs_before = np.r_[0, np.cumsum(user_degree[by_item.indices])][by_item.indptr]
    kept_items, kept_values, kept_per_row = [], [], []
    for start, stop in _row_blocks(pairs_before, max(1, (2**31 - 1) // max(n_items, 1))):
        rows, cols, together = _co_purchases(by_user, by_item, start, stop)
        cosine = _repeated_sum(inverse_norms[start + rows] * inverse_norms[cols], together)
        row_starts = np.searchsorted(rows, np.arange(stop - start + 1))
        keep = np.ones(len(cols), dtype=bool)
        for r in np.flatnonzero(np.diff(row_starts) > k):
            first, last = row_starts[r], row_starts[r + 1]
            keep[first:last] = False
            keep[first + np.argpartition(-cosine[first:last], k - 1)[:k]] = True
        kept_items.append(cols[keep].astype(np.int32))
        kept_values.append(cosine[keep])
        kept_per_row.append(np.bincount(rows[keep], minlength=stop - start))
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    if kept_per_row:
        np.cumsum(np.concatenate(kept_per_row), out=indptr[1:])
    return SparseMatrix(
        indptr=indptr,
        indices=np.concatenate(kept_items) if kept_items else np.zeros(0, dtype=np.int32),
        data=np.concatenate(kept_values) if kept_values else np.zeros(0, dtype=np.float32),
        n_cols=n_items,
    )


def _row_blocks(pairs_before: np.ndarray, max_rows: int) -> Iterator[tuple[int, int]]:
    """Consecutive item ranges emitting about `PAIRS_PER_BLOCK` pairs each (at least one item)."""
    n = len(pairs_before) - 1
    start = 0
    while start < n:
        stop = int(np.searchsorted(pairs_before, pairs_before[start] + PAIRS_PER_BLOCK, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        yield start, stop
        start = stop


def _co_purchases(by_user: _Rows, by_item: _Rows, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For items start..stop-1: (row - start, other item, shoppers who bought both), row-major."""
    n_items = by_user.n_cols
    items = np.arange(start, stop, dtype=np.int64)
    users = by_item.indices[by_item.indptr[start] : by_item.indptr[stop]]
    # Keys row * n_items + item, in int32 when they fit: they sort twice as fast.
    key_type = np.int32 if (stop - start) * n_items < 2**31 else np.int64
    row_key = np.repeat((items - start) * n_items, by_item.lengths(items)).astype(key_type)
    keys = np.repeat(row_key, by_user.lengths(users))
    keys += by_user.indices[_positions(by_user.indptr, users)]
    keys.sort()
    if not len(keys):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    together = np.diff(np.r_[first, len(keys)])
    distinct = keys[first].astype(np.int64)
    rows = distinct // n_items
    return rows, distinct - rows * n_items, together


def _repeated_sum(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """values[i] added to itself times[i] times, one float32 addition at a time."""
    # Up to three additions round exactly like one product (v + v = 2v is exact), and most
    # pairs of items share no more than three shoppers: only the rest is added step by step.
    total: np.ndarray = values * np.minimum(times, 3).astype(np.float32)
    many = np.flatnonzero(times > 3)
    if not len(many):
        return total
    many = many[np.argsort(-times[many], kind="stable")]  # the entries still adding form a prefix
    values, times, running = values[many], times[many], total[many]
    still_adding = len(times) - np.cumsum(np.bincount(times))  # [s]: how many have times > s
    for step in range(3, int(times[0])):
        n = still_adding[step]
        running[:n] += values[:n]
    total[many] = running
    return total


# --- the lists (engine/tuning.py) -------------------------------------------------------------

TASKS = (Strategy.REPLENISH, Strategy.DISCOVER, Strategy.BALANCED)


def baseline_lists(
    baseline: Baseline,
    histories: Sequence[Sequence[np.ndarray]],
    rows: Sequence[int],
    shown: Sequence[np.ndarray],
    item_ids: Sequence[str],
    k: int,
) -> dict[Strategy, list[list[str]]]:
    """Each task's lists for the judged shoppers (their `rows` in `histories`) from a baseline
    fitted on `histories` (shoppers' baskets as item codes; a judged shopper's are their
    history), within each shopper's `shown` mask. DISCOVER leaves out what the shopper bought;
    BALANCED is the REPLENISH list (a baseline has no aisle rules)."""
    baseline.fit(histories, len(item_ids))
    lists: dict[Strategy, list[list[str]]] = {task: [] for task in TASKS}
    for row, allowed in zip(rows, shown):
        scores = np.where(allowed, baseline.scores(row).astype(np.float64), -np.inf)
        top = top_k(scores, k)
        lists[Strategy.REPLENISH].append([item_ids[i] for i in top if np.isfinite(scores[i])])
        bought = histories[row]
        if len(bought):
            scores[np.concatenate(bought)] = -np.inf
        top = top_k(scores, k)
        lists[Strategy.DISCOVER].append([item_ids[i] for i in top if np.isfinite(scores[i])])
    lists[Strategy.BALANCED] = lists[Strategy.REPLENISH]
    return lists


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties to the lower index."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    head = np.argpartition(-scores, k - 1)[:k]
    return head[np.lexsort((head, -scores[head]))]
