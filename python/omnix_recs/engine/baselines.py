"""Reference recommenders the engine is measured against (`omnix evaluate`).

All work on the same input: each shopper's past baskets (oldest first, arrays of item indices)
and return a dense score per item; the evaluator ranks the scores. numpy only, so that
`omnix evaluate` runs from a plain install; what they learn is kept sparse (CSR arrays), so
every shopper of a store can be in the fit while only a sample is scored.

- `GlobalPopularity`: how many baskets contained the item, shop-wide.
- `PersonalFrequency`: how many of the shopper's baskets contained it (ties: popularity).
- `ItemKNN`: plain cosine item-item similarity over shopper x item incidence, summed over the
  shopper's history (self-similarity included, so past items count).
- `TifuKNN`: Hu et al., "Modeling Personalized Item Frequency Information for Next-basket
  Recommendation", SIGIR 2020: time-decayed group vectors per shopper, user-kNN by Euclidean
  distance, prediction = alpha * own vector + (1 - alpha) * mean of the neighbours' vectors.

The sums are added in the order, and at the precision, of a sparse matrix product (float32
for the counts and cosines, float64 for TIFU-KNN), so that scores, and therefore ties between
them, stay exactly what the published figures were computed with. Fits and scores work on all
shoppers at once (`scores_of`: a block of shoppers at a time) but keep those sums' order: each
score is bit for bit the one a shopper-by-shopper loop computes (benches/reference/baselines.py,
tests/engine/test_baselines.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from omnix_recs.engine.matrix import SparseMatrix, csr_counts

Baskets = Sequence[np.ndarray]  # one shopper's baskets, oldest first

# Co-purchase pairs ItemKNN counts at a time: bounds the memory of the fit (about 30 bytes a
# pair) whatever the size of the item x item matrix.
PAIRS_PER_BLOCK = 8_000_000

# Distances and neighbour entries TIFU-KNN scores at a time (about 24 bytes each): a few
# shoppers; larger blocks only add cache misses.
TIFU_CELLS = 300_000


class Baseline(Protocol):
    name: str

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None: ...

    def scores(self, shopper: int) -> np.ndarray:
        """Dense float scores over items for the shopper at position `shopper` of `fit`'s input."""

    def scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        """`scores` of each of `shoppers` (positions, int64), one row each: shoppers x items."""


@dataclass(frozen=True, slots=True)
class _Lines:
    """Every shopper's baskets as one array: entry e is item `item[e]` in basket `basket[e]`,
    each item once per basket, sorted by (basket, item); baskets are numbered shopper by
    shopper, oldest first (`shopper[b]`: whose basket b is; `trips[u]`: how many u has)."""

    item: np.ndarray  # int64
    basket: np.ndarray  # int64
    shopper: np.ndarray  # int64, per basket
    trips: np.ndarray  # int64, per shopper


def _lines(histories: Sequence[Baskets], n_items: int) -> _Lines:
    trips = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    baskets = [basket for h in histories for basket in h]
    sizes = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    item = np.concatenate(baskets).astype(np.int64) if baskets else np.zeros(0, dtype=np.int64)
    keys = np.repeat(np.arange(len(baskets), dtype=np.int64) * n_items, sizes) + item
    if len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all()):  # already sorted and unique: as given
        keys = np.sort(keys, kind="stable")  # a merge sort: the baskets are already in order
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    basket = keys // n_items if n_items else keys
    shopper = np.repeat(np.arange(len(histories), dtype=np.int64), trips)
    return _Lines(item=keys - basket * n_items, basket=basket, shopper=shopper, trips=trips)


def incidence(histories: Sequence[Baskets], n_items: int) -> SparseMatrix:
    """Shopper x item: number of the shopper's baskets containing the item (float32)."""
    lines = _lines(histories, n_items)
    return csr_counts(lines.shopper[lines.basket], lines.item, len(histories), n_items)


class GlobalPopularity:
    name = "global popularity"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._popularity = _column_sums(incidence(histories, n_items))

    def scores(self, shopper: int) -> np.ndarray:
        return self._popularity.astype(np.float64)

    def scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        return np.tile(self._popularity.astype(np.float64), (len(shoppers), 1))


class PersonalFrequency:
    name = "personal top frequency"

    def fit(self, histories: Sequence[Baskets], n_items: int) -> None:
        self._counts = incidence(histories, n_items)
        popularity = _column_sums(self._counts)
        # Popularity only breaks ties (and fills lists for shoppers with few products).
        self._tie_break = popularity / (popularity.max() + 1.0) if len(popularity) else popularity

    def scores(self, shopper: int) -> np.ndarray:
        return _first_row(self.scores_of(np.array([shopper], dtype=np.int64)))

    def scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        scores: np.ndarray = _dense_rows(self._counts, shoppers) + self._tie_break
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
        return _first_row(self.scores_of(np.array([shopper], dtype=np.int64)))

    def scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        # Shopper by shopper: float32 additions one at a time (`np.add.at`) are fastest into a
        # row that stays in cache.
        similarity, history = self._similarity, self._history
        scores = np.zeros((len(shoppers), similarity.n_cols), dtype=np.float32)
        for row, shopper in zip(scores, shoppers.tolist()):
            bought = history.indices[history.indptr[shopper] : history.indptr[shopper + 1]].astype(np.int64)
            at = _positions(similarity.indptr, bought)
            np.add.at(row, similarity.indices[at], similarity.data[at])  # history item by history item
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
        self._vectors = self._user_vectors(_lines(histories, n_items), n_items)
        self._by_item = self._vectors.transposed()
        squares = self._vectors.data * self._vectors.data
        self._squared = np.zeros(len(histories), dtype=np.float64)
        indptr = self._vectors.indptr
        filled = np.flatnonzero(np.diff(indptr))
        if len(filled):
            self._squared[filled] = np.add.reduceat(squares, indptr[filled])
        # What each entry adds to a mean of k neighbours (k as `scores` takes it).
        self._shares = self._vectors.data * (1.0 / max(1, min(self.neighbours, len(histories) - 1)))

    def _user_vectors(self, lines: _Lines, n_items: int) -> _Rows:
        """Every shopper's `user_vector`, as CSR rows, with the same additions in the same order:
        per (group, item) the within-group weights basket by basket, then per (shopper, item)
        the weighted groups oldest first, then the division by the number of groups."""
        trips = lines.trips
        groups = np.minimum(self.groups, trips)
        # Each basket's group and place in it, as `np.array_split` deals them: the first
        # trips % groups groups take one basket more.
        shopper = lines.shopper
        position = np.arange(len(shopper), dtype=np.int64) - (np.cumsum(trips) - trips)[shopper]
        n, g = trips[shopper], groups[shopper]
        size, longer = n // np.maximum(g, 1), n % np.maximum(g, 1)
        in_longer = longer * (size + 1)
        group = np.where(
            position < in_longer, position // (size + 1), longer + (position - in_longer) // np.maximum(size, 1)
        )
        length = np.where(group < longer, size + 1, size)
        group_start = np.where(group < longer, group * (size + 1), in_longer + (group - longer) * size)
        # Powers as Python computes them (`float ** int`), looked up rather than recomputed.
        within = _powers(self.within_decay, int(length.max(initial=1)))[length - 1 - (position - group_start)]
        basket_group = (np.cumsum(groups) - groups)[shopper] + group  # groups numbered shopper by shopper

        # Per (group, item): 0.0 plus each basket's weight, oldest basket first.
        keys = basket_group[lines.basket] * n_items + lines.item
        order = np.argsort(keys, kind="stable")
        keys, group_sums = _sums_in_order(keys[order], within[lines.basket][order])
        group_of = keys // n_items
        item = keys - group_of * n_items
        first = np.flatnonzero(np.r_[True, basket_group[1:] != basket_group[:-1]]) if len(basket_group) else position
        group_shopper, group_index = shopper[first], group[first]
        group_weight = _powers(self.group_decay, int(groups.max(initial=1)))[groups[group_shopper] - 1 - group_index]
        terms = group_weight[group_of] * group_sums / length[first][group_of].astype(np.float64)

        # Per (shopper, item): 0.0 plus each group's term, oldest group first; then / groups.
        keys = group_shopper[group_of] * n_items + item
        order = np.argsort(keys, kind="stable")
        keys, sums = _sums_in_order(keys[order], terms[order])
        row = keys // n_items if n_items else keys
        vector = sums / groups[row].astype(np.float64)
        kept = vector != 0.0
        row, vector = row[kept], vector[kept]
        indptr = np.zeros(len(trips) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=len(trips)), out=indptr[1:])
        return _Rows(indptr, keys[kept] - row * n_items, vector, n_items)

    def scores(self, shopper: int) -> np.ndarray:
        return _first_row(self.scores_of(np.array([shopper], dtype=np.int64)))

    def scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        # A block of shoppers at a time: each needs a distance to every shopper and its
        # neighbours' entries, so the block is bounded by those (about TIFU_CELLS of each).
        vectors = self._vectors
        per_shopper = vectors.n_rows + self.neighbours * max(1, len(vectors.data) // max(vectors.n_rows, 1))
        block = max(1, TIFU_CELLS // per_shopper)
        if len(shoppers) <= block:
            return self._scores_of(shoppers)
        return np.concatenate([self._scores_of(shoppers[at : at + block]) for at in range(0, len(shoppers), block)])

    def _scores_of(self, shoppers: np.ndarray) -> np.ndarray:
        vectors = self._vectors
        n_shoppers, n_items, count = vectors.n_rows, vectors.n_cols, len(shoppers)
        own_at = _positions(vectors.indptr, shoppers)
        own_items, own_weights = vectors.indices[own_at], vectors.data[own_at]
        own_row = np.repeat(np.arange(count, dtype=np.int64), vectors.lengths(shoppers))
        own_flat = np.zeros(count * n_items, dtype=np.float64)
        own_flat[own_row * n_items + own_items] = own_weights
        own_dense = own_flat.reshape(count, n_items)
        k = min(self.neighbours, n_shoppers - 1)
        if k <= 0:
            return own_dense
        # Each shopper's dot product with these, summed over the shared items in item order
        # (`bincount` adds its weights one at a time, in the order given).
        others, weights = self._by_item.gather(own_items)
        shared = self._by_item.lengths(own_items)
        cells = np.repeat(own_row * n_shoppers, shared) + others
        dots = np.bincount(cells, weights * np.repeat(own_weights, shared), minlength=count * n_shoppers)
        # Squared Euclidean distances from each of these shoppers to every shopper.
        distances = self._squared + self._squared[shoppers][:, None] - 2.0 * dots.reshape(count, n_shoppers)
        distances[np.arange(count), shoppers] = np.inf  # a shopper is not their own neighbour
        neighbours = np.argpartition(distances, k - 1, axis=1)[:, :k].ravel()
        at = _positions(vectors.indptr, neighbours)
        rows = np.repeat(np.arange(count, dtype=np.int64), k)
        cells = np.repeat(rows * n_items, vectors.lengths(neighbours)) + vectors.indices[at]
        # Neighbour by neighbour, in `argpartition`'s order.
        mean = np.bincount(cells, self._shares[at], minlength=count * n_items).reshape(count, n_items)
        scores: np.ndarray = self.alpha * own_dense + (1.0 - self.alpha) * mean
        return scores


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


def _dense_rows(matrix: SparseMatrix, rows: np.ndarray) -> np.ndarray:
    at = _positions(matrix.indptr, rows)
    row_of = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(matrix.indptr)[rows])
    dense = np.zeros(len(rows) * matrix.n_cols, dtype=matrix.data.dtype)
    dense[row_of * matrix.n_cols + matrix.indices[at]] = matrix.data[at]
    return dense.reshape(len(rows), matrix.n_cols)


def _first_row(rows: np.ndarray) -> np.ndarray:
    row: np.ndarray = rows[0]
    return row


def _powers(base: float, n: int) -> np.ndarray:
    """base ** 0 .. base ** (n - 1), each as Python's `float ** int` computes it."""
    return np.array([base**e for e in range(n)], dtype=np.float64)


def _sums_in_order(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, per key 0.0 plus its values one at a time in the order given): `keys`
    sorted, so each key's values are a run. The k-th values of all runs are added together."""
    if not len(keys):
        return keys, values
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run = np.cumsum(np.r_[True, keys[1:] != keys[:-1]]) - 1
    place = np.arange(len(keys), dtype=np.int64) - starts[run]
    sums = values[starts].copy()  # 0.0 + v is v
    later = np.flatnonzero(place)
    if len(later):
        # (a stable sort of small integers is a radix sort)
        later = later[np.argsort(place[later].astype(np.int16 if place.max() < 2**15 else np.int64), kind="stable")]
        bounds = np.searchsorted(place[later], np.arange(1, int(place.max()) + 2))
        for first, last in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            at = later[first:last]  # one value of each run still adding, in run order
            sums[run[at]] += values[at]
    return keys[starts], sums


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


# --- top k --------------------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties to the lower index; which of the items
    tied across the k-th place make the list is `np.argpartition`'s choice (not the lower
    indices): the lists the published figures were computed from depend on it."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    head = np.argpartition(-scores, k - 1)[:k]
    ranked: np.ndarray = head[np.lexsort((head, -scores[head]))]
    return ranked


def top_k_rows(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row of `scores` (rows x items, float64), `top_k(row, k)` less its items scored
    -inf (or not finite at all), exactly.

    Rather than partitioning every row, each row's k-th best block maximum (blocks of up to 64
    items) bounds its k-th best score from below; the items scoring at least that are few, and
    ranked (score descending, index ascending) they give `top_k`'s list whenever the k-th
    place is not tied with the next. Rows where it is (or that hold NaNs among their best),
    `top_k` itself decides.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k == 0 or n_rows == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_rows)]
    width = min(64, max(1, n_items // (8 * k)))  # at least 8k blocks: the bound stays tight
    # (`fmax`: a NaN in a block does not hide the block's other scores)
    block_max = np.fmax.reduceat(scores, np.arange(0, n_items, width), axis=1) if width > 1 else scores
    n_blocks = block_max.shape[1]
    bound = np.partition(block_max, n_blocks - k, axis=1)[:, n_blocks - k]
    # The items scoring at least the bound, from the blocks whose maximum reaches it: at least
    # k items a row (fewer when NaNs sort among the top blocks: those rows go to `top_k`).
    row, block = np.nonzero(block_max >= bound[:, None])
    item = block[:, None] * width + np.arange(width)
    row = np.broadcast_to(row[:, None], item.shape)
    in_catalog = item < n_items
    row, item = row[in_catalog], item[in_catalog]
    reaching = scores[row, item] >= bound[row]
    row, item = row[reaching], item[reaching]
    if not len(row):
        return [_top_finite(scores[r], k) for r in range(n_rows)]
    score = scores[row, item]
    order = np.lexsort((item, -score, row))
    item, score = item[order], score[order]
    counts = np.bincount(row, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    head = starts[:, None] + np.arange(k)
    enough = counts >= k
    head[~enough] = 0
    kth = score[head[:, -1]]
    after = score[np.minimum(starts + k, len(score) - 1)]
    tied = (counts > k) & (after == kth) & np.isfinite(kth)
    ranked_items, finite = item[head], np.isfinite(score[head])
    return [
        ranked_items[r][finite[r]].astype(np.int64) if enough[r] and not tied[r] else _top_finite(scores[r], k)
        for r in range(n_rows)
    ]


def _top_finite(scores: np.ndarray, k: int) -> np.ndarray:
    top = top_k(scores, k)
    kept: np.ndarray = top[np.isfinite(scores[top])]
    return kept
