"""Taste factors (rust_core/src/engine/taste.rs) against numpy's SVD, and in the model build."""

from __future__ import annotations

import numpy as np
import pytest

from omnix_recs._core import InvalidInputError, item_taste_factors


def incidence(rng: np.random.Generator, customers: int, items: int, tastes: int) -> np.ndarray:
    """Customers of a few taste groups, each buying mostly from its group's half of the shelf."""
    group = rng.integers(0, tastes, customers)
    liking = rng.random((tastes, items)) ** 4
    return (rng.random((customers, items)) < 0.6 * liking[group]).astype(np.float32)


def csr(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(dense)
    indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int32)


@pytest.mark.parametrize(("seed", "dims"), [(0, 4), (1, 6), (2, 1)])
def test_factors_span_numpys_top_singular_vectors(seed: int, dims: int) -> None:
    """As many dimensions as taste groups: the subspace is well separated from the noise below."""
    rng = np.random.default_rng(seed)
    dense = incidence(rng, 300, 60, tastes=dims)
    factors = item_taste_factors(*csr(dense), 60, dims, 8, seed)
    assert factors.shape == (60, dims) and factors.dtype == np.float32
    np.testing.assert_allclose(factors.T @ factors, np.eye(dims), atol=1e-4)
    # Same subspace as the exact SVD's: the projections onto either agree.
    exact = np.linalg.svd(dense, full_matrices=False)[2][:dims].T
    np.testing.assert_allclose(factors @ factors.T, exact @ exact.T, atol=2e-3)


def test_same_seed_same_factors_and_zero_dims_is_empty() -> None:
    rng = np.random.default_rng(3)
    indptr, indices = csr(incidence(rng, 50, 20, tastes=2))
    np.testing.assert_array_equal(
        item_taste_factors(indptr, indices, 20, 3, 4, 9), item_taste_factors(indptr, indices, 20, 3, 4, 9)
    )
    assert item_taste_factors(indptr, indices, 20, 0, 4, 9).shape == (20, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(dims=-1), "dims must be between 0 and 256"),
        (dict(dims=257), "dims must be between 0 and 256"),
        (dict(iterations=21), "iterations must be between 0 and 20"),
        (dict(indices=np.array([0, 99], np.int32)), r"indices\[1\] = 99 is outside 0..20"),
    ],
)
def test_bad_input_is_rejected(change: dict, message: str) -> None:
    args = dict(
        indptr=np.array([0, 2], np.int64), indices=np.array([0, 1], np.int32), n_items=20, dims=2, iterations=3, seed=0
    )
    with pytest.raises(InvalidInputError, match=message):
        item_taste_factors(**{**args, **change})
