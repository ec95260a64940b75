//! Taste factors: a low-rank picture of which kinds of households buy each product.
//!
//! Households of similar taste buy overlapping sets of products, so the customer × item
//! purchase incidence A (binary) is close to low rank. Its top right singular vectors V
//! (`[n_items, dims]`, orthonormal columns) place every product in a small "taste space"
//! (PureSVD, Cremonesi, Koren & Turrin, RecSys 2010). Serving folds a shopper in at request time
//! from their history alone: taste(j) = (Σ_{i ∈ history} V_i) · V_j. Unlike co-purchase
//! neighbours, which link one product to another, this reads the whole history at once, so a
//! product that households like this one adopt scores high even when no single past purchase
//! is a strong neighbour of it: the signal "discover" lists need.
//!
//! V comes from randomized subspace iteration on AᵀA (Halko, Martinsson & Tropp, SIAM Review
//! 2011): start from a random item-side block Z of `dims + OVERSAMPLING` columns, repeat
//! Z ← orth(AᵀA Z), then rotate Z by the eigenvectors of the small matrix Zᵀ AᵀA Z. Each step
//! is two sparse passes (A Z over customer rows, Aᵀ(A Z) over item rows, both in parallel with
//! disjoint outputs) and never forms AᵀA or any customer-side factor beyond one block.
use numpy::ndarray::Array2;
use numpy::{PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::sparse::{copy_array, Csr, Ones};
use crate::gil::without_gil;
use crate::invalid;

/// Extra columns iterated beyond `dims`: they absorb the directions just below the cut, so the
/// kept ones converge in a few iterations.
const OVERSAMPLING: usize = 10;
/// Taste spaces beyond this many dimensions stop describing tastes and start memorising baskets
/// (and the serving kernel pays for every dimension on every candidate).
pub const MAX_DIMS: i64 = 256;
pub const MAX_ITERATIONS: i64 = 20;
/// A column whose norm falls below this share of the block's largest is numerically dependent
/// on the others (the matrix has lower rank than asked): it is zeroed, not normalised.
const DEPENDENT_COLUMN: f64 = 1e-10;

/// Top `dims` right singular vectors of the binary `customers` × item matrix, row-major
/// `[n_items, dims]` (f32), columns by decreasing singular value. Columns past the matrix's rank
/// are zero. Deterministic for a given `seed`.
pub fn taste_factors(customers: &Csr<Ones>, dims: usize, iterations: usize, seed: u64) -> Vec<f32> {
    let n_items = customers.n_cols;
    let width = (dims + OVERSAMPLING).min(n_items);
    if dims == 0 || width == 0 {
        return vec![0.0; n_items * dims];
    }
    let by_item = customers.transpose();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut block: Vec<f64> = (0..n_items * width).map(|_| StandardNormal.sample(&mut rng)).collect();
    orthonormalise(&mut block, width);
    for _ in 0..iterations {
        block = gram_times(customers, &by_item, &block, width);
        orthonormalise(&mut block, width);
    }
    // Rayleigh–Ritz: within span(Z), the eigenvectors of Zᵀ AᵀA Z give the best rotation.
    let image = gram_times(customers, &by_item, &block, width);
    let small = cross_product(&block, &image, width);
    let (values, vectors) = symmetric_eigen(small, width);
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|a, b| values[*b].total_cmp(&values[*a]).then(a.cmp(b)));
    let mut factors = vec![0f32; n_items * dims];
    for (row, out) in block.chunks_exact(width).zip(factors.chunks_exact_mut(dims)) {
        for (d, &col) in order.iter().take(dims).enumerate() {
            out[d] = (0..width).map(|k| row[k] * vectors[k * width + col]).sum::<f64>() as f32;
        }
    }
    factors
}

/// AᵀA Z for an item-side block Z (row-major `[n_items, width]`): first A Z, one row per
/// customer, then Aᵀ of that, one row per item. Both passes read rows scattered over tens of
/// megabytes, so what they read is f32 (half the bytes of f64); the sums are kept in f64.
fn gram_times(customers: &Csr<Ones>, by_item: &Csr<Ones>, block: &[f64], width: usize) -> Vec<f64> {
    let block: Vec<f32> = block.iter().map(|&x| x as f32).collect();
    let per_customer = summed_rows(customers, &block, width, |x| x as f32);
    summed_rows(by_item, &per_customer, width, |x| x)
}

/// Row r of the output is the sum of the `input` rows (row-major, `width` wide) at the columns
/// of the matrix's row r, added in f64 and stored through `store`; rows in parallel, each
/// written once.
fn summed_rows<T: Copy + Default + Send>(
    matrix: &Csr<Ones>,
    input: &[f32],
    width: usize,
    store: impl Fn(f64) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); matrix.n_rows() * width];
    out.par_chunks_mut(width).enumerate().for_each_init(
        || vec![0f64; width],
        |sum, (row, out)| {
            sum.fill(0.0);
            for &col in &matrix.indices[matrix.row_range(row)] {
                let from = &input[col as usize * width..(col as usize + 1) * width];
                sum.iter_mut().zip(from).for_each(|(a, &x)| *a += f64::from(x));
            }
            out.iter_mut().zip(sum.iter()).for_each(|(o, &a)| *o = store(a));
        },
    );
    out
}

/// Zᵀ W for two row-major `[n, width]` blocks (a `width × width` matrix, row-major).
fn cross_product(z: &[f64], w: &[f64], width: usize) -> Vec<f64> {
    let partial = z
        .par_chunks(width * 1024)
        .zip(w.par_chunks(width * 1024))
        .map(|(zs, ws)| {
            let mut acc = vec![0f64; width * width];
            for (zr, wr) in zs.chunks_exact(width).zip(ws.chunks_exact(width)) {
                for (a, &za) in zr.iter().enumerate() {
                    let line = &mut acc[a * width..(a + 1) * width];
                    line.iter_mut().zip(wr).for_each(|(m, &wb)| *m += za * wb);
                }
            }
            acc
        })
        .reduce(
            || vec![0f64; width * width],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    // Symmetrise away rounding: the exact product is symmetric.
    let mut m = partial;
    for a in 0..width {
        for b in a + 1..width {
            let mean = 0.5 * (m[a * width + b] + m[b * width + a]);
            m[a * width + b] = mean;
            m[b * width + a] = mean;
        }
    }
    m
}

/// Orthonormal columns by modified Gram–Schmidt, run twice ("twice is enough" for full working
/// precision). The block is copied column-major for the sweeps so each column is contiguous.
fn orthonormalise(block: &mut [f64], width: usize) {
    let n = block.len() / width;
    let mut columns = vec![0f64; block.len()];
    for (r, row) in block.chunks_exact(width).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            columns[c * n + r] = x;
        }
    }
    let largest = (0..width).map(|c| norm(&columns[c * n..(c + 1) * n])).fold(0f64, f64::max);
    for _ in 0..2 {
        for c in 0..width {
            let (done, rest) = columns.split_at_mut(c * n);
            let column = &mut rest[..n];
            for previous in done.chunks_exact(n) {
                let dot: f64 = previous.iter().zip(column.iter()).map(|(p, x)| p * x).sum();
                column.iter_mut().zip(previous).for_each(|(x, p)| *x -= dot * p);
            }
            let length = norm(column);
            let scale = if length > DEPENDENT_COLUMN * largest { 1.0 / length } else { 0.0 };
            column.iter_mut().for_each(|x| *x *= scale);
        }
    }
    for (r, row) in block.chunks_exact_mut(width).enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = columns[c * n + r];
        }
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Eigen-decomposition of a small symmetric matrix (row-major `width × width`) by cyclic Jacobi
/// rotations: (eigenvalues, eigenvectors as the columns of a row-major matrix).
fn symmetric_eigen(mut a: Vec<f64>, width: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; width * width];
    (0..width).for_each(|i| v[i * width + i] = 1.0);
    let scale = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..width)
            .flat_map(|p| (0..width).filter(move |q| *q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * width + q] * a[p * width + q])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..width {
            for q in p + 1..width {
                let apq = a[p * width + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * width + q] - a[p * width + p]) / (2.0 * apq);
                // tan of the rotation angle, the smaller root (f64::signum(0.0) is 1).
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..width {
                    let (akp, akq) = (a[k * width + p], a[k * width + q]);
                    a[k * width + p] = c * akp - s * akq;
                    a[k * width + q] = s * akp + c * akq;
                }
                for k in 0..width {
                    let (apk, aqk) = (a[p * width + k], a[q * width + k]);
                    a[p * width + k] = c * apk - s * aqk;
                    a[q * width + k] = s * apk + c * aqk;
                }
                for k in 0..width {
                    let (vkp, vkq) = (v[k * width + p], v[k * width + q]);
                    v[k * width + p] = c * vkp - s * vkq;
                    v[k * width + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..width).map(|i| a[i * width + i]).collect(), v)
}

/// Taste factors of the items of a binary customer × item CSR matrix (`indptr`, `indices`, as
/// scipy writes them): float32 `[n_items, dims]`, the top `dims` right singular vectors,
/// after `iterations` rounds of subspace iteration from a `seed`ed random start. Runs in
/// parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (indptr, indices, n_items, dims, iterations, seed))]
pub fn item_taste_factors<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    n_items: i64,
    dims: i64,
    iterations: i64,
    seed: u64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let indptr = copy_array("indptr", &indptr)?;
    let indices = copy_array("indices", &indices)?;
    let (factors, n, dims) = without_gil(py, move || {
        if !(0..=MAX_DIMS).contains(&dims) {
            return invalid!("dims must be between 0 and {MAX_DIMS}, got {dims}");
        }
        if !(0..=MAX_ITERATIONS).contains(&iterations) {
            return invalid!("iterations must be between 0 and {MAX_ITERATIONS}, got {iterations}");
        }
        let matrix = Csr::from_parts(indptr, indices, Ones, n_items)?;
        let n = matrix.n_cols;
        Ok((taste_factors(&matrix, dims as usize, iterations as usize, seed), n, dims as usize))
    })?;
    let array = Array2::from_shape_vec((n, dims), factors).expect("n_items x dims buffer");
    Ok(PyArray2::from_owned_array(py, array))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(item_taste_factors, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two taste groups: customers 0-2 buy among items {0, 1, 2}, customers 3-5 among {3, 4}.
    fn two_tastes() -> Csr<Ones> {
        let rows: [&[i32]; 6] = [&[0, 1], &[0, 1, 2], &[1, 2], &[3, 4], &[3], &[3, 4]];
        let mut indptr = vec![0i64];
        let mut indices = vec![];
        for row in rows {
            indices.extend_from_slice(row);
            indptr.push(indices.len() as i64);
        }
        Csr::from_parts(indptr, indices, Ones, 5).unwrap()
    }

    fn gram(m: &Csr<Ones>) -> Vec<f64> {
        let n = m.n_cols;
        let mut g = vec![0f64; n * n];
        for r in 0..m.n_rows() {
            for &i in &m.indices[m.row_range(r)] {
                for &j in &m.indices[m.row_range(r)] {
                    g[i as usize * n + j as usize] += 1.0;
                }
            }
        }
        g
    }

    #[test]
    fn factors_are_orthonormal_eigenvectors_of_the_gram_matrix() {
        let m = two_tastes();
        let (n, dims) = (5, 2);
        let v = taste_factors(&m, dims, 4, 7);
        let g = gram(&m);
        for a in 0..dims {
            for b in 0..dims {
                let dot: f32 = (0..n).map(|i| v[i * dims + a] * v[i * dims + b]).sum();
                assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-5, "columns {a}, {b}: {dot}");
            }
            // G v = λ v, with λ = vᵀ G v.
            let gv: Vec<f64> = (0..n).map(|i| (0..n).map(|j| g[i * n + j] * v[j * dims + a] as f64).sum()).collect();
            let lambda: f64 = (0..n).map(|i| gv[i] * v[i * dims + a] as f64).sum();
            for i in 0..n {
                assert!((gv[i] - lambda * v[i * dims + a] as f64).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn products_of_one_taste_share_a_direction() {
        let v = taste_factors(&two_tastes(), 2, 4, 1);
        let taste = |i: usize, j: usize| v[i * 2] * v[j * 2] + v[i * 2 + 1] * v[j * 2 + 1];
        assert!(taste(0, 2) > 0.1 && taste(3, 4) > 0.1);
        assert!(taste(0, 3).abs() < 1e-5 && taste(2, 4).abs() < 1e-5);
    }

    #[test]
    fn more_dimensions_than_rank_are_zero_and_zero_dimensions_are_empty() {
        // Rank 1: every customer buys both items.
        let m = Csr::from_parts(vec![0, 2, 4], vec![0, 1, 0, 1], Ones, 2).unwrap();
        let v = taste_factors(&m, 2, 3, 0);
        assert!((v[0].abs() - 0.5f32.sqrt()).abs() < 1e-5 && (v[2].abs() - 0.5f32.sqrt()).abs() < 1e-5);
        assert!(v[1].abs() < 1e-5 && v[3].abs() < 1e-5);
        assert!(taste_factors(&m, 0, 3, 0).is_empty());
    }

    #[test]
    fn same_seed_same_factors() {
        assert_eq!(taste_factors(&two_tastes(), 2, 3, 42), taste_factors(&two_tastes(), 2, 3, 42));
    }
}
