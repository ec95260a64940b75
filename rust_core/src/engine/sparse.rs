//! Compressed sparse rows (CSR): the one matrix layout the model-build kernels read.
//!
//! Python hands over `scipy.sparse.csr_matrix`-style arrays (`indptr`, `indices`, `data`). They
//! are copied out of numpy while the GIL is held (a memcpy: Python code could otherwise write to
//! the arrays while the kernels read them without the GIL), then validated and used here.
use numpy::{Element, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;
use crate::invalid;

/// Per-entry weights of a sparse matrix: real values, or all ones for plain incidence
/// (a basket either holds a product or not), which saves a float per entry on big matrices.
pub trait Weights: Sync + Sized {
    fn get(&self, entry: usize) -> f32;
    /// Storage for `len` entries, to be filled with `set` (used when transposing).
    fn with_len(len: usize) -> Self;
    fn set(&mut self, entry: usize, value: f32);
    /// Checks the weights of a matrix with `nnz` stored entries.
    fn validate(&self, nnz: usize) -> CoreResult<()>;
    /// Hints that the weights from `entry` on will be read soon.
    fn prefetch(&self, _entry: usize) {}
}

/// Every stored entry weighs 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ones;

impl Weights for Ones {
    #[inline(always)]
    fn get(&self, _entry: usize) -> f32 {
        1.0
    }
    fn with_len(_len: usize) -> Self {
        Ones
    }
    #[inline(always)]
    fn set(&mut self, _entry: usize, _value: f32) {}
    fn validate(&self, _nnz: usize) -> CoreResult<()> {
        Ok(())
    }
}

impl Weights for Vec<f32> {
    #[inline(always)]
    fn get(&self, entry: usize) -> f32 {
        self[entry]
    }
    fn with_len(len: usize) -> Self {
        vec![0.0; len]
    }
    #[inline(always)]
    fn set(&mut self, entry: usize, value: f32) {
        self[entry] = value;
    }
    /// Implicit feedback has no negative weights, and zeros should simply not be stored.
    fn validate(&self, nnz: usize) -> CoreResult<()> {
        if self.len() != nnz {
            return invalid!("data has {} entries but indices has {nnz}", self.len());
        }
        if let Some(pos) = self.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
            return invalid!("data[{pos}] = {} must be a finite positive weight", self[pos]);
        }
        Ok(())
    }
    #[inline(always)]
    fn prefetch(&self, entry: usize) {
        prefetch(self, entry);
    }
}

/// Hints the CPU to start loading `slice[at]` into cache (a no-op where unsupported or out of
/// bounds). Purely a performance hint: it never changes results.
#[inline(always)]
pub fn prefetch<T>(slice: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(value) = slice.get(at) {
        // SAFETY: prefetching a valid address has no observable effect besides caching.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((value as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, at);
}

/// A validated CSR matrix: row `r` holds columns `indices[indptr[r]..indptr[r + 1]]`, each at
/// most once, all `< n_cols`.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr<W> {
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: W,
}

/// 4-byte entries (indices, weights) per 64-byte cache line.
pub const ENTRIES_PER_CACHE_LINE: usize = 16;

impl<W: Weights> Csr<W> {
    /// Asks for all of a row's cache lines (indices and weights): a scattered row of a few
    /// lines is too short for the hardware prefetcher to notice. Never changes results.
    #[inline(always)]
    pub fn prefetch_row(&self, row: usize) {
        for entry in self.row_range(row).step_by(ENTRIES_PER_CACHE_LINE) {
            prefetch(&self.indices, entry);
            self.data.prefetch(entry);
        }
    }

    /// Checks the raw arrays and takes ownership of them. Messages name the offending argument
    /// and position, because they reach the Python caller verbatim.
    pub fn from_parts(indptr: Vec<i64>, indices: Vec<i32>, data: W, n_cols: i64) -> CoreResult<Self> {
        if n_cols < 0 || n_cols > u32::MAX as i64 {
            return invalid!("n_items must be between 0 and {}, got {n_cols}", u32::MAX);
        }
        let n_cols = n_cols as usize;
        if indptr.first() != Some(&0) {
            return invalid!("indptr must start with 0 (it has one entry per row plus one)");
        }
        if let Some(row) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return invalid!("indptr must be non-decreasing, but indptr[{}] > indptr[{}]", row, row + 1);
        }
        let nnz = *indptr.last().unwrap_or(&0);
        if nnz != indices.len() as i64 {
            return invalid!("indptr ends at {nnz} but indices has {} entries", indices.len());
        }
        if let Some(pos) = indices.iter().position(|&c| c < 0 || c as i64 >= n_cols as i64) {
            return invalid!("indices[{pos}] = {} is outside 0..{n_cols} (n_items)", indices[pos]);
        }
        data.validate(indices.len())?;
        let matrix = Csr {
            n_cols,
            indptr: indptr.into_iter().map(|p| p as usize).collect(),
            indices: indices.into_iter().map(|c| c as u32).collect(),
            data,
        };
        matrix.check_no_repeats()?;
        Ok(matrix)
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    #[inline(always)]
    pub fn row_range(&self, row: usize) -> std::ops::Range<usize> {
        self.indptr[row]..self.indptr[row + 1]
    }

    /// A repeated column in a row would be counted twice in dot products but not in norms.
    fn check_no_repeats(&self) -> CoreResult<()> {
        // `last_row[c]` = 1 + the last row seen holding column c; one pass, no sorting.
        let mut last_row = vec![0usize; self.n_cols];
        for row in 0..self.n_rows() {
            for &col in &self.indices[self.row_range(row)] {
                if last_row[col as usize] == row + 1 {
                    return invalid!("row {row} lists column {col} more than once (sum duplicates first)");
                }
                last_row[col as usize] = row + 1;
            }
        }
        Ok(())
    }

    /// The same matrix stored by column (CSC), i.e. the CSR of its transpose. Counting sort:
    /// O(nnz), and each output row comes out sorted by original row.
    pub fn transpose(&self) -> Csr<W> {
        self.transpose_relabelled(None)
    }

    /// `transpose`, with column c becoming row `new_of_old[c]` of the result.
    pub fn transpose_relabelled(&self, new_of_old: Option<&[u32]>) -> Csr<W> {
        let label = |col: u32| new_of_old.map_or(col, |labels| labels[col as usize]) as usize;
        let n_rows = self.n_rows();
        let mut indptr = vec![0usize; self.n_cols + 1];
        for &col in &self.indices {
            indptr[label(col) + 1] += 1;
        }
        for c in 0..self.n_cols {
            indptr[c + 1] += indptr[c];
        }
        let mut next = indptr[..self.n_cols].to_vec();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = W::with_len(self.nnz());
        for row in 0..n_rows {
            for entry in self.row_range(row) {
                let col = label(self.indices[entry]);
                let slot = next[col];
                next[col] += 1;
                indices[slot] = row as u32;
                data.set(slot, self.data.get(entry));
            }
        }
        Csr { n_cols: n_rows, indptr, indices, data }
    }

    /// Number of stored entries in each column (e.g. baskets holding each product).
    pub fn column_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_cols];
        for &col in &self.indices {
            counts[col as usize] += 1;
        }
        counts
    }
}

/// Positions `0..keys.len()` grouped by key, by a counting sort (one pass, no comparison): group
/// `g` is `order[starts[g]..starts[g + 1]]`, in position order. Returns (starts, order); every
/// key must lie in `0..n_groups`.
pub fn grouped<K: Copy + Into<i64>>(keys: &[K], n_groups: usize) -> (Vec<usize>, Vec<usize>) {
    let mut starts = vec![0usize; n_groups + 1];
    keys.iter().for_each(|k| starts[(*k).into() as usize + 1] += 1);
    (0..n_groups).for_each(|g| starts[g + 1] += starts[g]);
    let mut next = starts[..n_groups].to_vec();
    let mut order = vec![0usize; keys.len()];
    for (position, k) in keys.iter().enumerate() {
        let group = (*k).into() as usize;
        order[next[group]] = position;
        next[group] += 1;
    }
    (starts, order)
}

/// `values` cut at `starts` (as `grouped` returns them) into disjoint slices, one per group, to
/// be worked on in parallel.
pub fn group_slices<'a, T>(mut values: &'a mut [T], starts: &[usize]) -> Vec<&'a mut [T]> {
    let mut slices = Vec::with_capacity(starts.len().saturating_sub(1));
    for bounds in starts.windows(2) {
        let (group, rest) = std::mem::take(&mut values).split_at_mut(bounds[1] - bounds[0]);
        slices.push(group);
        values = rest;
    }
    slices
}

/// The CSR whose (r, c) entry counts the lines `i` with `rows[i] == r` and `cols[i] == c`:
/// (indptr, indices, counts), columns ascending in each row. A counting sort by row, then each
/// row's columns sorted in parallel: linear in the lines, where sorting (row, column) keys as
/// numpy would costs several seconds at tens of millions of lines.
pub fn pair_counts(
    rows: &[i32],
    cols: &[i32],
    n_rows: usize,
    n_cols: usize,
) -> CoreResult<(Vec<i64>, Vec<i32>, Vec<f32>)> {
    if rows.len() != cols.len() {
        return invalid!("rows and cols must have the same length, got {} and {}", rows.len(), cols.len());
    }
    if let Some(pos) = rows.iter().position(|r| *r < 0 || *r as usize >= n_rows) {
        return invalid!("rows[{pos}] = {} is outside 0..{n_rows} (n_rows)", rows[pos]);
    }
    if let Some(pos) = cols.iter().position(|c| *c < 0 || *c as usize >= n_cols) {
        return invalid!("cols[{pos}] = {} is outside 0..{n_cols} (n_cols)", cols[pos]);
    }
    let (starts, order) = grouped(rows, n_rows);
    let mut by_row: Vec<i32> = order.iter().map(|&line| cols[line]).collect();
    let mut slices = group_slices(&mut by_row, &starts);
    slices.par_iter_mut().with_min_len(64).for_each(|row| row.sort_unstable());
    let mut indptr = Vec::with_capacity(n_rows + 1);
    indptr.push(0i64);
    let (mut indices, mut counts) = (Vec::new(), Vec::new());
    for row in &slices {
        for run in row.chunk_by(|a, b| a == b) {
            indices.push(run[0]);
            counts.push(run.len() as f32);
        }
        indptr.push(indices.len() as i64);
    }
    Ok((indptr, indices, counts))
}

/// (indptr, indices, counts) as numpy arrays.
type CountsCsr<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i32>>, Bound<'py, PyArray1<f32>>);

/// `pair_counts` for Python (engine/matrix.py `csr_counts`): int32 `rows` and `cols` of equal
/// length, codes below `n_rows` and `n_cols`. Runs in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (rows, cols, n_rows, n_cols))]
pub fn csr_pair_counts<'py>(
    py: Python<'py>,
    rows: PyReadonlyArray1<'py, i32>,
    cols: PyReadonlyArray1<'py, i32>,
    n_rows: usize,
    n_cols: usize,
) -> PyResult<CountsCsr<'py>> {
    let (rows, cols) = (copy_array("rows", &rows)?, copy_array("cols", &cols)?);
    let (indptr, indices, counts) = without_gil(py, move || pair_counts(&rows, &cols, n_rows, n_cols))?;
    Ok((PyArray1::from_vec(py, indptr), PyArray1::from_vec(py, indices), PyArray1::from_vec(py, counts)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(csr_pair_counts, m)?)
}

/// Copies a 1-d numpy array into a Vec (the caller holds the GIL).
pub fn copy_array<T: Element + Copy>(name: &str, array: &PyReadonlyArray1<'_, T>) -> CoreResult<Vec<T>> {
    array
        .as_slice()
        .map(<[T]>::to_vec)
        .map_err(|_| CoreErrorKind::InvalidInput(format!("{name} must be a contiguous 1-d array")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Csr<Vec<f32>> {
        // rows: [0: cols 0,2] [1: col 1] [2: cols 0,1,2]
        Csr::from_parts(vec![0, 2, 3, 6], vec![0, 2, 1, 0, 1, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap()
    }

    #[test]
    fn grouped_keeps_position_order_within_each_group() {
        let (starts, mut order) = grouped(&[2i32, 0, 2, 1, 0], 4);
        assert_eq!(starts, vec![0, 2, 3, 5, 5]);
        assert_eq!(order, vec![1, 4, 3, 0, 2]);
        let slices = group_slices(&mut order, &starts);
        assert_eq!(slices.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![2, 1, 2, 0]);
    }

    #[test]
    fn pair_counts_counts_each_pair_in_column_order() {
        let (indptr, indices, counts) = pair_counts(&[2, 0, 2, 2, 0], &[1, 3, 0, 1, 3], 4, 4).unwrap();
        assert_eq!(indptr, vec![0, 1, 1, 3, 3]);
        assert_eq!(indices, vec![3, 0, 1]);
        assert_eq!(counts, vec![2.0, 1.0, 2.0]);
        assert!(pair_counts(&[0, 4], &[0, 0], 4, 4).is_err());
        assert!(pair_counts(&[0], &[-1], 4, 4).is_err());
        assert!(pair_counts(&[0, 1], &[0], 4, 4).is_err());
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let t = small().transpose();
        assert_eq!(t.indptr, vec![0, 2, 4, 6]);
        assert_eq!(t.indices, vec![0, 2, 1, 2, 0, 2]);
        assert_eq!(t.data, vec![1.0, 4.0, 3.0, 5.0, 2.0, 6.0]);
        assert_eq!(t.transpose(), small());
    }

    #[test]
    fn relabelled_transpose_renames_columns() {
        // Column 0 -> row 2, 1 -> 0, 2 -> 1.
        let t = small().transpose_relabelled(Some(&[2, 0, 1]));
        assert_eq!(t.indptr, vec![0, 2, 4, 6]);
        assert_eq!(t.indices, vec![1, 2, 0, 2, 0, 2]);
        assert_eq!(t.data, vec![3.0, 5.0, 2.0, 6.0, 1.0, 4.0]);
    }

    #[test]
    fn column_counts_count_entries() {
        assert_eq!(small().column_counts(), vec![2, 2, 2]);
    }

    #[test]
    fn rejects_malformed_parts() {
        let cases: Vec<(Vec<i64>, Vec<i32>, i64, &str)> = vec![
            (vec![1, 2], vec![0], 3, "start with 0"),
            (vec![0, 2, 1], vec![0, 1], 3, "non-decreasing"),
            (vec![0, 3], vec![0, 1], 3, "indices has 2"),
            (vec![0, 2], vec![0, -1], 3, "indices[1] = -1"),
            (vec![0, 2], vec![0, 3], 3, "outside 0..3"),
            (vec![0, 2], vec![1, 1], 3, "more than once"),
            (vec![0, 1], vec![0], -1, "n_items"),
        ];
        for (indptr, indices, n_cols, expected) in cases {
            let err = Csr::from_parts(indptr, indices, Ones, n_cols).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn rejects_bad_weights() {
        for (data, expected) in
            [(vec![1.0], "indices has 2"), (vec![1.0, 0.0], "data[1] = 0"), (vec![f32::NAN, 1.0], "data[0]")]
        {
            let err = Csr::from_parts(vec![0, 2], vec![0, 1], data, 2).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }
}
