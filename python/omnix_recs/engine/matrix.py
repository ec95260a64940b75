"""Purchase history and catalog as arrays: what the model build reads.

The store hands order lines over as strings, in batches; the Rust kernels take integer arrays
and CSR matrices (customer × item, basket × item, feature × item). The conversion is built for
Instacart-sized histories: ids are factorised once (orders are hashed: too many to keep as
Python strings), codes are int32, and arrays are preallocated rather than concatenated.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from omnix_recs import _core
from omnix_recs.domain.models import Product
from omnix_recs.domain.purchases import PurchaseColumns, basket_codes
from omnix_recs.store.snapshot import TrainingSnapshot

# Mixes the customer into an order's hash, so two customers' orders with the same id stay
# separate baskets (order ids are only unique per customer). Any odd 64-bit constant works.
_CUSTOMER_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True, slots=True)
class SparseMatrix:
    """CSR: row r holds columns `indices[indptr[r]:indptr[r + 1]]` (sorted, each once) with
    weights `data[...]`."""

    indptr: np.ndarray  # int64 [n_rows + 1]
    indices: np.ndarray  # int32 [nnz]
    data: np.ndarray  # float32 [nnz]
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def csr_counts(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> SparseMatrix:
    """The matrix whose (r, c) entry counts how many times the pair (rows[i], cols[i]) occurs
    (Rust: a counting sort, linear in the lines)."""
    indptr, indices, counts = _core.csr_pair_counts(
        np.ascontiguousarray(rows, dtype=np.int32), np.ascontiguousarray(cols, dtype=np.int32), n_rows, n_cols
    )
    return SparseMatrix(indptr=indptr, indices=indices, data=counts, n_cols=n_cols)


@dataclass(frozen=True, slots=True)
class PurchaseLines:
    """Every order line of a training window as parallel arrays (entry i = line i)."""

    customer: np.ndarray  # int32, index into customer_ids
    item: np.ndarray  # int32, index into item_ids
    basket: np.ndarray  # int32, one code per (customer, order)
    purchased_at: np.ndarray  # int64, epoch seconds UTC
    customer_ids: list[str]
    item_ids: list[str]  # sorted: the catalog's products plus any only seen in history
    n_baskets: int

    def __len__(self) -> int:
        return len(self.item)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)


class _Factoriser:
    """Gives each distinct string the next integer code, in order of first appearance."""

    def __init__(self) -> None:
        self.codes = _NextCode()

    def __call__(self, values: Sequence[str]) -> np.ndarray:
        return np.fromiter(map(self.codes.__getitem__, values), dtype=np.int32, count=len(values))


class _NextCode(dict[str, int]):
    """A dict that files an unseen key under the next code (one C-level lookup for known keys)."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


def read_purchase_lines(
    batches: Iterable[PurchaseColumns],
    catalog_ids: Iterable[str] = (),
    *,
    before: datetime | None = None,
    expected_rows: int = 0,
) -> PurchaseLines:
    """Factorise order lines (e.g. `store.scan_purchases()`) into `PurchaseLines`.

    Lines at or after `before` are left out. Items are the catalog's plus those in the kept
    lines; `expected_rows` (e.g. `store.count_purchases()`) sizes the buffers up front.
    """
    cutoff = None if before is None else int(before.timestamp())
    customers, items = _Factoriser(), _Factoriser()
    items(list(catalog_ids))
    n_catalog = len(items.codes)  # catalog products hold codes 0..n_catalog-1
    columns = _Columns(expected_rows)
    for batch in batches:
        if len(batch) == 0:
            continue
        purchased_at = np.asarray(batch.purchased_at, dtype=np.int64)
        customer = customers(batch.customer_ids)
        item = items(batch.product_ids)
        order_hash = np.fromiter(map(hash, batch.order_ids), dtype=np.int64, count=len(batch)).view(np.uint64)
        basket_key = order_hash ^ (customer.astype(np.uint64) * _CUSTOMER_MIX)
        if cutoff is not None:
            keep = purchased_at < cutoff
            customer, item, basket_key, purchased_at = customer[keep], item[keep], basket_key[keep], purchased_at[keep]
        columns.append(customer, item, basket_key, purchased_at)
    customer, item, basket_key, purchased_at = columns.arrays()

    # Customers with a kept line; items in the catalog or in a kept line, renumbered in id order
    # so the artifact does not depend on the order of the scan.
    customer_code, customer_ids = _renumber(
        list(customers.codes), np.bincount(customer, minlength=len(customers.codes)) > 0
    )
    wanted_items = np.bincount(item, minlength=len(items.codes)) > 0
    wanted_items[:n_catalog] = True
    item_code, item_ids = _renumber(list(items.codes), wanted_items, by_id=True)
    # A 64-bit hash collision between two orders (odds ~n²/2⁶⁵, 3e-7 at 3M orders) would merge
    # two baskets: harmless for statistics over millions of baskets.
    _, basket = basket_codes(basket_key)
    return PurchaseLines(
        customer=customer_code[customer],
        item=item_code[item],
        basket=basket.astype(np.int32),
        purchased_at=purchased_at,
        customer_ids=customer_ids,
        item_ids=item_ids,
        n_baskets=int(basket.max()) + 1 if len(basket) else 0,
    )


def lines_from_snapshot(
    snapshot: TrainingSnapshot,
    catalog_ids: Iterable[str] = (),
    *,
    before: datetime | None = None,
    leave_out: AbstractSet[str] = frozenset(),
) -> PurchaseLines:
    """`PurchaseLines` from a training snapshot, equal to what `read_purchase_lines` makes of the
    same lines from a scan in (customer, time) order: lines at or after `before` and those of
    `leave_out` customers are left out; customers are those with a kept line, in id order;
    items the catalog's plus those in kept lines, in id order. Only array passes: no string is
    touched per line."""
    # Copies first, checked after: an erasure may scrub the memory-mapped files meanwhile, and
    # the build must not see a line turn into item -1 under it.
    customer, item, basket, purchased_at = (
        np.array(getattr(snapshot, name)) for name in ("customer", "item", "basket", "purchased_at")
    )
    keep = item >= 0  # scrubbed lines are -1
    if before is not None:
        keep &= purchased_at < int(before.timestamp())
    left_out = [code for code, c in enumerate(snapshot.customer_ids) if c in leave_out] if leave_out else []
    if left_out:
        keep &= ~np.isin(customer, np.asarray(left_out, dtype=np.int32))
    if not keep.all():
        customer, item, basket, purchased_at = customer[keep], item[keep], basket[keep], purchased_at[keep]
    del keep
    customer_code, customer_ids = _renumber(
        snapshot.customer_ids, np.bincount(customer, minlength=len(snapshot.customer_ids)) > 0
    )
    bought = np.flatnonzero(np.bincount(item, minlength=len(snapshot.item_ids)) > 0)
    item_ids = sorted({*catalog_ids, *(snapshot.item_ids[i] for i in bought.tolist())})
    position = {value: n for n, value in enumerate(item_ids)}
    item_code = np.fromiter(
        (position.get(v, -1) for v in snapshot.item_ids), dtype=np.int32, count=len(snapshot.item_ids)
    )
    used_baskets = np.bincount(basket, minlength=len(snapshot.order_ids)) > 0
    basket_code = (np.cumsum(used_baskets) - 1).astype(np.int32)
    return PurchaseLines(
        customer=_recoded(customer, customer_code),
        item=_recoded(item, item_code),
        basket=_recoded(basket, basket_code),
        purchased_at=purchased_at,
        customer_ids=customer_ids,
        item_ids=item_ids,
        n_baskets=int(used_baskets.sum()),
    )


def _recoded(codes: np.ndarray, new_code: np.ndarray) -> np.ndarray:
    """`new_code[codes]`, skipped when it changes nothing (the usual case: a gather over every
    line costs more than the rest of the conversion)."""
    if np.array_equal(new_code, np.arange(len(new_code), dtype=new_code.dtype)):
        return codes
    recoded: np.ndarray = new_code[codes]
    return recoded


def _renumber(ids: list[str], keep: np.ndarray, *, by_id: bool = False) -> tuple[np.ndarray, list[str]]:
    """New codes for the kept ids (in first-seen order, or sorted by id): (new code of each old
    code, -1 for dropped; the kept ids in new-code order)."""
    kept = [i for i, k in zip(ids, keep) if k]
    if by_id:
        kept.sort()
    position = {value: n for n, value in enumerate(kept)}
    new_code = np.fromiter((position.get(value, -1) for value in ids), dtype=np.int32, count=len(ids))
    return new_code, kept


class _Columns:
    """Growable parallel arrays of order lines, filled batch by batch without concatenation."""

    _DTYPES = (np.int32, np.int32, np.uint64, np.int64)

    def __init__(self, capacity: int) -> None:
        self._arrays = [np.empty(max(capacity, 1024), dtype=d) for d in self._DTYPES]
        self._filled = 0

    def append(self, *values: np.ndarray) -> None:
        n = len(values[0])
        if self._filled + n > len(self._arrays[0]):
            capacity = max(2 * len(self._arrays[0]), self._filled + n)
            for k, old in enumerate(self._arrays):
                grown = np.empty(capacity, dtype=old.dtype)
                grown[: self._filled] = old[: self._filled]
                self._arrays[k] = grown
        for array, value in zip(self._arrays, values):
            array[self._filled : self._filled + n] = value
        self._filled += n

    def arrays(self) -> list[np.ndarray]:
        # Views when the buffers are about full; copies when most of them went unused (e.g. a
        # build as of long ago), so the spare memory is returned.
        wasteful = self._filled < len(self._arrays[0]) // 2
        return [a[: self._filled].copy() if wasteful else a[: self._filled] for a in self._arrays]


def customer_item_matrix(lines: PurchaseLines, *, max_items_per_customer: int) -> SparseMatrix:
    """Customer × item, weighted 1 + ln(times bought).

    Buying something again says it is part of the customer's routine, but sublinearly: the
    daily milk buyer must not drown out everything else they buy. Customers with more than
    `max_items_per_customer` distinct items are left out (their row is emptied): such accounts
    (offices, shared logins) would add |items|² pairs each, as many as thousands of households,
    and say little about what goes with what.
    """
    counts = csr_counts(lines.customer, lines.item, lines.n_customers, lines.n_items)
    lengths = counts.row_lengths()
    kept_rows = lengths <= max_items_per_customer
    kept_entries = np.repeat(kept_rows, lengths)
    indptr = np.zeros_like(counts.indptr)
    np.cumsum(np.where(kept_rows, lengths, 0), out=indptr[1:])
    return SparseMatrix(
        indptr=indptr,
        indices=counts.indices[kept_entries],
        data=(1.0 + np.log(counts.data[kept_entries])).astype(np.float32),
        n_cols=counts.n_cols,
    )


def basket_item_matrix(lines: PurchaseLines) -> SparseMatrix:
    """Basket × item incidence (`data` holds how many lines, usually 1)."""
    return csr_counts(lines.basket, lines.item, lines.n_baskets, lines.n_items)


# Words that say nothing about what a product is.
_STOPWORDS = frozenset({"and", "with", "the", "for", "from", "of", "in", "a", "an", "or", "to", "by", "pack", "size"})
_WORD = re.compile(r"[a-z]+")

# Relative weight of each kind of product feature before IDF: the aisle says most about what a
# product is for, the department least (it is implied by the aisle), dietary tags are coarse.
FEATURE_WEIGHTS = {"aisle": 2.0, "brand": 1.5, "department": 1.0, "price": 1.0, "word": 1.0, "diet": 0.5}
PRICE_BANDS = 3  # cheap / middle / premium within the aisle
# A feature this common costs at most a million additions: never worth dropping.
ALWAYS_KEPT_FEATURE_ITEMS = 1000


def product_features(product: Product, price_band: int | None) -> list[tuple[str, str]]:
    """(kind, value) features of a product: department, aisle, brand, price band within the
    aisle, dietary tags, and the words of its name."""
    features = [("department", product.department), ("aisle", product.aisle)]
    if product.brand:
        features.append(("brand", product.brand.lower()))
    if price_band is not None:
        features.append(("price", f"{product.aisle}/{price_band}"))
    features += [("diet", tag) for tag in product.dietary_tags]
    words = {w for w in _WORD.findall(product.name.lower()) if len(w) > 2 and w not in _STOPWORDS}
    features += [("word", w) for w in sorted(words)]
    return features


def price_bands(products: Sequence[Product]) -> list[int | None]:
    """Each product's price tercile within its aisle (None without a price)."""
    prices_by_aisle: dict[str, list[float]] = defaultdict(list)
    for p in products:
        if p.price > 0:
            prices_by_aisle[p.aisle].append(p.price)
    cuts = {
        aisle: np.quantile(prices, np.arange(1, PRICE_BANDS) / PRICE_BANDS) for aisle, prices in prices_by_aisle.items()
    }
    return [int(np.searchsorted(cuts[p.aisle], p.price, side="right")) if p.price > 0 else None for p in products]


def product_feature_matrix(
    products: Sequence[Product],
    item_ids: Sequence[str],
    *,
    max_feature_share: float,
    always_kept_items: int = ALWAYS_KEPT_FEATURE_ITEMS,
) -> SparseMatrix:
    """Feature × item matrix of the catalog, weighted kind weight × IDF (ln(n_items / df)).

    Rows are features so that the same cosine kernel as co-purchase applies (features play the
    part of customers). Features on more than `max_feature_share` of the items (and more than
    `always_kept_items`) are dropped: they separate little (IDF already weighs them
    down) and each costs |items|² additions. Items outside `products` (only in the purchase
    history) have no features.
    """
    index_of = {product_id: n for n, product_id in enumerate(item_ids)}
    feature_ids: dict[tuple[str, str], int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for product, band in zip(products, price_bands(products)):
        item = index_of.get(product.product_id)
        if item is None:
            continue
        for feature in dict.fromkeys(product_features(product, band)):
            rows.append(feature_ids.setdefault(feature, len(feature_ids)))
            cols.append(item)
    incidence = csr_counts(
        np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int32), len(feature_ids), len(item_ids)
    )
    document_frequency = incidence.row_lengths()
    n_items = max(len(item_ids), 1)
    kind_weight = np.array([FEATURE_WEIGHTS[kind] for kind, _ in feature_ids], dtype=np.float64)
    idf = np.log(n_items / np.maximum(document_frequency, 1))
    row_weight = kind_weight * idf
    cap = max(max_feature_share * n_items, always_kept_items)
    kept_rows = (document_frequency <= cap) & (row_weight > 0)
    lengths = np.where(kept_rows, document_frequency, 0)
    indptr = np.zeros(len(feature_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    kept_entries = np.repeat(kept_rows, document_frequency)
    return SparseMatrix(
        indptr=indptr,
        indices=incidence.indices[kept_entries],
        data=np.repeat(row_weight, lengths).astype(np.float32),
        n_cols=len(item_ids),
    )
