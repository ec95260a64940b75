"""Order lines and catalog into arrays and CSR matrices (engine/matrix.py), against scipy."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from omnix_recs._core import InvalidInputError
from omnix_recs.domain.models import Product
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.engine.matrix import (
    basket_item_matrix,
    csr_counts,
    customer_item_matrix,
    price_bands,
    product_feature_matrix,
    product_features,
    read_purchase_lines,
)

T0 = 1_790_000_000  # epoch seconds, a Tuesday in 2026


def columns(rows: list[tuple[str, str, str, int]]) -> PurchaseColumns:
    """(customer, order, product, seconds after T0) per line."""
    return PurchaseColumns(
        customer_ids=[r[0] for r in rows],
        order_ids=[r[1] for r in rows],
        product_ids=[r[2] for r in rows],
        quantities=[1] * len(rows),
        unit_prices=[1.0] * len(rows),
        purchased_at=[T0 + r[3] for r in rows],
    )


LINES = [
    ("ann", "o1", "milk", 0),
    ("ann", "o1", "bread", 0),
    ("ann", "o2", "milk", 7 * 86_400),
    ("bob", "o1", "milk", 100),  # same order id as ann's: a different basket
    ("bob", "o3", "eggs", 30 * 86_400),
]


def test_lines_are_factorised_with_sorted_item_ids() -> None:
    # Split over two batches: codes must not depend on where a batch boundary falls.
    lines = read_purchase_lines([columns(LINES[:2]), columns(LINES[2:])], ["tea"])
    assert lines.item_ids == ["bread", "eggs", "milk", "tea"]  # catalog-only tea is kept
    assert lines.customer_ids == ["ann", "bob"]
    assert [lines.item_ids[i] for i in lines.item] == [r[2] for r in LINES]
    assert [lines.customer_ids[c] for c in lines.customer] == [r[0] for r in LINES]
    assert lines.n_baskets == 4
    basket = lines.basket.tolist()
    assert basket[0] == basket[1] and len({basket[0], basket[2], basket[3], basket[4]}) == 4
    assert lines.purchased_at.tolist() == [T0 + r[3] for r in LINES]
    assert lines.item.dtype == lines.customer.dtype == lines.basket.dtype == np.int32


def test_lines_before_a_moment_only() -> None:
    before = datetime.fromtimestamp(T0 + 86_400, tz=UTC)
    lines = read_purchase_lines([columns(LINES)], ["tea"], before=before)
    assert len(lines) == 3
    assert lines.item_ids == ["bread", "milk", "tea"]  # eggs were only bought later
    assert lines.customer_ids == ["ann", "bob"]


def test_no_lines_at_all() -> None:
    lines = read_purchase_lines([], ["b", "a"])
    assert lines.item_ids == ["a", "b"] and len(lines) == 0 and lines.n_customers == 0 and lines.n_baskets == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_csr_counts_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, 30, 500), rng.integers(0, 20, 500).astype(np.int32)
    m = csr_counts(rows, cols, 31, 20)
    expected = sp.coo_matrix((np.ones(500), (rows, cols)), shape=(31, 20)).tocsr()
    expected.sum_duplicates()
    np.testing.assert_array_equal(m.indptr, expected.indptr)
    np.testing.assert_array_equal(m.indices, expected.indices)
    np.testing.assert_allclose(m.data, expected.data)


@pytest.mark.parametrize(
    ("rows", "cols", "message"),
    [
        ([0, 3], [0, 1], "rows[1] = 3 is outside 0..3 (n_rows)"),
        ([0, 1], [0, -1], "cols[1] = -1 is outside 0..2 (n_cols)"),
        ([0, 1], [0], "rows and cols must have the same length"),
    ],
)
def test_csr_counts_names_bad_codes(rows: list[int], cols: list[int], message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        csr_counts(np.array(rows), np.array(cols), 3, 2)


def test_customer_matrix_is_log_weighted_and_drops_heavy_customers() -> None:
    rows = [("ann", f"o{n}", "milk", n) for n in range(3)] + [("ann", "o0", "bread", 0)]
    rows += [("bob", "b1", f"p{n}", 0) for n in range(5)]  # 5 distinct items: over the cap of 4
    lines = read_purchase_lines([columns(rows)])
    m = customer_item_matrix(lines, max_items_per_customer=4)
    dense = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.n_rows, m.n_cols)).toarray()
    ann, bob = lines.customer_ids.index("ann"), lines.customer_ids.index("bob")
    assert dense[ann, lines.item_ids.index("milk")] == pytest.approx(1 + np.log(3))
    assert dense[ann, lines.item_ids.index("bread")] == pytest.approx(1.0)
    assert not dense[bob].any()


def test_basket_matrix_holds_each_basket() -> None:
    lines = read_purchase_lines([columns(LINES)])
    m = basket_item_matrix(lines)
    assert m.n_rows == 4 and m.nnz == 5
    assert sorted(np.diff(m.indptr).tolist()) == [1, 1, 1, 2]


PRODUCTS = [
    Product("p1", "Organic Whole Milk", "dairy", "milk", "Farm", 1.0, dietary_tags=("organic",)),
    Product("p2", "Whole Milk", "dairy", "milk", "Farm", 2.0),
    Product("p3", "Oat Milk Drink", "dairy", "milk", "Oaty", 3.0, dietary_tags=("vegan",)),
    Product("p4", "Sourdough Bread", "bakery", "bread", "Baker", 4.0, dietary_tags=("vegan",)),
    Product("p5", "Rye Bread", "bakery", "bread", "", 0.0),
]


def test_product_features() -> None:
    assert product_features(PRODUCTS[0], 0) == [
        ("department", "dairy"),
        ("aisle", "milk"),
        ("brand", "farm"),
        ("price", "milk/0"),
        ("diet", "organic"),
        ("word", "milk"),
        ("word", "organic"),
        ("word", "whole"),
    ]
    assert price_bands(PRODUCTS) == [0, 1, 2, 2, None]


def test_feature_matrix_weights_by_idf_and_drops_common_features() -> None:
    item_ids = ["p1", "p2", "p3", "p4", "p5", "history-only"]
    # (The cap matters at 50k items; `always_kept_items=0` shows it at 6.)
    m = product_feature_matrix(PRODUCTS, item_ids, max_feature_share=0.5, always_kept_items=0)
    by_item = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.n_rows, m.n_cols)).T.tocsr()
    assert by_item[5].nnz == 0
    # "milk" (word and aisle) is on 3 of 6 items: kept at share 0.5; aisle weight 2 × ln(6/3).
    weights = sorted(by_item[1].data.tolist())
    assert pytest.approx(2 * np.log(2)) in weights
    tight = product_feature_matrix(PRODUCTS, item_ids, max_feature_share=0.4, always_kept_items=0)
    assert tight.nnz < m.nnz
