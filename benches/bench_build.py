"""Model-build benchmark: the Rust co-purchase kernel against a scipy reference and `implicit`.

    python benches/bench_build.py                      # Instacart-scale random matrix
    python benches/bench_build.py --customers 50000 --items 20000 --nnz 3000000   # quicker
    python benches/bench_build.py --store sqlite:///var/omnix.db   # a real store, + full build

On one customer × item matrix (weights 1 + ln(times bought), as the build uses):
(a) `_core.cosine_item_neighbours` (top-k shrunk cosine, Rust, all cores) versus the same
    computation in numpy/scipy (blocks of XᵀX, shrunk cosine, top-k by argpartition; one core,
    as scipy's sparse product is single-threaded), after checking both agree on sampled items;
(c) versus `implicit`'s `CosineRecommender(K=k).fit` (all cores), the item-item model the
    design compares against (plain cosine, so its neighbours are checked against ours with
    shrink 0).
Each timed run happens in a fresh child process, so its peak resident memory is its own; the
table shows it next to a child that only loads the matrix. With `--store`, the whole
`build_model` is timed too, stage by stage.

The default matrix is random with Instacart's shape (206,209 customers × 49,688 products,
11.7M non-zeros): Zipf-like product popularity, log-normal basket variety. `implicit` is a
benchmark-only dependency (`pip install implicit`); the product never imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp
    from implicit.nearest_neighbours import CosineRecommender

BLOCK_ITEMS = 1024  # items per block of the reference (a dense block is BLOCK_ITEMS × n_items floats)


# --- the matrix ----------------------------------------------------------------------------------


def instacart_like_matrix(n_customers: int, n_items: int, nnz: int, seed: int) -> dict[str, np.ndarray]:
    """CSR arrays of a random customer × item matrix shaped like Instacart's."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(n_items) + 8.0) ** 0.95  # a few staples, a long tail
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    variety = rng.lognormal(mean=0.0, sigma=1.0, size=n_customers)
    # Draws repeat items (repeat purchases), so draw more lines than distinct pairs wanted.
    lines_per_customer = np.maximum(1, np.round(variety / variety.sum() * nnz * 1.07)).astype(np.int64)
    customer = np.repeat(np.arange(n_customers, dtype=np.int64), lines_per_customer)
    item = rng.permutation(n_items)[np.searchsorted(cdf, rng.random(len(customer)))]
    keys, times_bought = np.unique(customer * n_items + item, return_counts=True)
    rows = keys // n_items
    indptr = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_customers), out=indptr[1:])
    return {
        "indptr": indptr,
        "indices": (keys - rows * n_items).astype(np.int32),
        "data": (1.0 + np.log(times_bought)).astype(np.float32),
        "n_items": np.asarray(n_items, dtype=np.int64),
    }


def store_matrix(url: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The build's own customer × item matrix from a store, and the full build's timings."""
    from omnix_recs.engine.build import BuildParameters, build_model
    from omnix_recs.engine.matrix import customer_item_matrix, read_purchase_lines
    from omnix_recs.store import open_store

    store = open_store(url)
    try:
        started = time.perf_counter()
        built = build_model(store)
        build: dict[str, object] = {
            "build_seconds": round(time.perf_counter() - started, 1),
            **built.stage_seconds,
            **built.counts,
        }
        lines = read_purchase_lines(store.scan_purchases(), expected_rows=store.count_purchases())
    finally:
        store.close()
    m = customer_item_matrix(lines, max_items_per_customer=BuildParameters().max_items_per_customer)
    return {
        "indptr": m.indptr,
        "indices": m.indices,
        "data": m.data,
        "n_items": np.asarray(m.n_cols, dtype=np.int64),
    }, build


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


def as_scipy(m: dict[str, np.ndarray]) -> sp.csr_matrix:
    import scipy.sparse as sp

    n_rows = len(m["indptr"]) - 1
    return sp.csr_matrix((m["data"], m["indices"], m["indptr"]), shape=(n_rows, int(m["n_items"])))


# --- the three implementations -------------------------------------------------------------------


def rust_neighbours(m: dict[str, np.ndarray], k: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    from omnix_recs import _core

    return _core.cosine_item_neighbours(m["indptr"], m["indices"], m["data"], int(m["n_items"]), k, shrink)


def reference_neighbours(
    m: dict[str, np.ndarray], k: int, shrink: float, items: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The same computation in numpy/scipy, a block of items at a time: dots = X[:, B]ᵀ X,
    sim = dots / (‖x_i‖‖x_j‖ + shrink), pairs with no shared customer and self-pairs dropped,
    top-k by argpartition, then sorted. `items` restricts it to some rows (for checking)."""
    x = as_scipy(m)
    x_by_item = x.tocsc()
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    items = np.arange(n_items) if items is None else np.asarray(items)
    out_idx = np.full((len(items), k), -1, dtype=np.int32)
    out_sim = np.zeros((len(items), k), dtype=np.float32)
    for start in range(0, len(items), BLOCK_ITEMS):
        block = items[start : start + BLOCK_ITEMS]
        dots = (x_by_item[:, block].T @ x).toarray()
        sims = dots / (np.outer(norms[block], norms) + shrink)
        sims[dots == 0] = -np.inf
        sims[np.arange(len(block)), block] = -np.inf
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k]
            if k < n_items
            else np.tile(np.arange(n_items), (len(block), 1))
        )
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
        found = np.isfinite(top_sims)
        width = min(k, top.shape[1])
        out_idx[start : start + len(block), :width] = np.where(found, top, -1)
        out_sim[start : start + len(block), :width] = np.where(found, top_sims, 0)
    return out_idx, out_sim


def implicit_model(m: dict[str, np.ndarray], k: int) -> CosineRecommender:
    from implicit.nearest_neighbours import CosineRecommender
    from implicit.utils import ParameterWarning

    model = CosineRecommender(K=k)
    with warnings.catch_warnings():
        # implicit warns about a conversion inside its own fit (its cost stays in its time).
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(as_scipy(m), show_progress=False)
    return model


# --- checks --------------------------------------------------------------------------------------


def check_against_reference(m: dict[str, np.ndarray], k: int, shrink: float, sample: np.ndarray) -> str:
    """Rust and reference agree on the sampled items: same scores best-first, and each item
    Rust returns has the score the reference gives that pair (so exact ties may differ)."""
    idx, sim = rust_neighbours(m, k, shrink)
    ref_idx, ref_sim = reference_neighbours(m, k, shrink, sample)
    np.testing.assert_array_equal(idx[sample] >= 0, ref_idx >= 0)
    np.testing.assert_allclose(sim[sample], ref_sim, rtol=1e-4, atol=1e-6)
    x = as_scipy(m).tocsc()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    rows, cols = np.nonzero(idx[sample] >= 0)
    items, others = sample[rows], idx[sample][rows, cols]
    dots = np.asarray(x[:, items].multiply(x[:, others]).sum(axis=0)).ravel()
    np.testing.assert_allclose(dots / (norms[items] * norms[others] + shrink), sim[sample][rows, cols], rtol=1e-4)
    return f"Rust = numpy/scipy reference on {len(sample)} sampled items ({len(rows)} neighbour pairs): OK"


def check_against_implicit(m: dict[str, np.ndarray], k: int, sample: np.ndarray) -> str:
    """`implicit` computes plain cosine: our shrink-0 neighbours should be its neighbours."""
    idx, _ = rust_neighbours(m, k, 0.0)
    similarity = implicit_model(m, k).similarity.tocsr()
    overlaps = []
    for item in sample:
        row = similarity[item]
        theirs = row.indices[np.argsort(-row.data, kind="stable")]
        theirs = [j for j in theirs if j != item][:10]  # implicit lists the item itself too
        ours = [j for j in idx[item][:10] if j >= 0]
        if theirs:
            overlaps.append(len(set(theirs) & set(ours)) / len(theirs))
    return f"top-10 overlap with implicit (shrink 0) on {len(overlaps)} sampled items: {np.mean(overlaps):.3f}"


# --- timed runs in child processes ---------------------------------------------------------------


def worker(method: str, matrix_path: Path, k: int, shrink: float) -> None:
    m = load(matrix_path)
    started = time.perf_counter()
    if method == "rust":
        rust_neighbours(m, k, shrink)
    elif method == "reference":
        reference_neighbours(m, k, shrink)
    elif method == "implicit":
        implicit_model(m, k)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mib": peak_resident_mib()}))


def peak_resident_mib() -> float:
    """This process's peak resident memory. (Not getrusage: on Linux a child's ru_maxrss
    starts from its parent's at fork, which would hide the differences measured here.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_child(method: str, matrix_path: Path, k: int, shrink: float) -> tuple[float, float]:
    """(seconds, peak resident MiB) of `method` run in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--matrix",
        str(matrix_path),
        "--k",
        str(k),
        "--shrink",
        str(shrink),
    ]
    result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE).stdout)
    return result["seconds"], result["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=206_209)
    parser.add_argument("--items", type=int, default=49_688)
    parser.add_argument("--nnz", type=int, default=11_700_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store", help="build the matrix from this store URL instead (and time the whole build)")
    parser.add_argument("--k", type=int, default=100, help="neighbours per item (implicit's K)")
    parser.add_argument("--shrink", type=float, default=10.0)
    parser.add_argument("--check-items", type=int, default=300, help="items sampled for the equality checks")
    parser.add_argument("--rust-runs", type=int, default=3, help="Rust is timed this many times; the best counts")
    parser.add_argument("--skip-reference", action="store_true", help="skip timing the (slow) scipy reference")
    parser.add_argument("--skip-implicit", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--matrix", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.matrix, args.k, args.shrink)
        return
    if not args.skip_implicit and importlib.util.find_spec("implicit") is None:
        print("implicit is not installed (pip install implicit): skipping (c)")
        args.skip_implicit = True

    with tempfile.TemporaryDirectory(prefix="omnix-bench-") as tmp:
        started = time.perf_counter()
        if args.store:
            m, build = store_matrix(args.store)
            print(f"full build from {args.store}: {build}")
        else:
            m = instacart_like_matrix(args.customers, args.items, args.nnz, args.seed)
        matrix_path = Path(tmp) / "matrix.npz"
        np.savez(matrix_path, allow_pickle=False, **m)  # numeric arrays only, as np.load reads them
        rows = np.diff(m["indptr"])
        print(
            f"matrix: {len(rows):,} customers × {int(m['n_items']):,} items, {len(m['indices']):,} non-zeros, "
            f"Σ|row|² = {float((rows.astype(np.float64) ** 2).sum()):.3g} multiply-adds "
            f"(made in {time.perf_counter() - started:.1f} s); k = {args.k}, shrink = {args.shrink}; {os.cpu_count()} cores"
        )
        sample = np.random.default_rng(0).choice(
            int(m["n_items"]), size=min(args.check_items, int(m["n_items"])), replace=False
        )
        print(check_against_reference(m, args.k, args.shrink, sample))
        if not args.skip_implicit:
            print(check_against_implicit(m, args.k, sample))

        results = {"load matrix only": timed_child("load", matrix_path, args.k, args.shrink)}
        results["Rust (a)"] = min(
            (timed_child("rust", matrix_path, args.k, args.shrink) for _ in range(args.rust_runs)), key=lambda r: r[0]
        )
        if not args.skip_reference:
            results["numpy/scipy reference (a)"] = timed_child("reference", matrix_path, args.k, args.shrink)
        if not args.skip_implicit:
            results["implicit CosineRecommender (c)"] = timed_child("implicit", matrix_path, args.k, args.shrink)

    rust_seconds = results["Rust (a)"][0]
    baseline_mib = results["load matrix only"][1]
    print(f"\n{'':32} {'seconds':>9} {'× Rust':>8} {'peak MiB':>9} {'+ over load':>12}")
    for name, (seconds, peak) in results.items():
        timing = f"{'-':>9} {'':>8}" if name == "load matrix only" else f"{seconds:9.2f} {seconds / rust_seconds:8.1f}"
        print(f"{name:32} {timing} {peak:9.0f} {peak - baseline_mib:12.0f}")


if __name__ == "__main__":
    main()
