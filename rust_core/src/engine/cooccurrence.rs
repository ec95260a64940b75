//! Item–item neighbours from co-occurrence: the kernel behind co-purchase, basket and content
//! similarity, and the cosine scoring used by the first and the last.
//!
//! Two items co-occur in a *group* that holds both: a customer who bought both, a basket that
//! held both, a product feature both carry. Input is the group × item matrix X (CSR). For every
//! item i, in parallel: walk i's groups (the transpose of X), then each group's items, adding
//! w_gi·w_gj into a dense per-thread array of n_items floats while listing the items touched;
//! then score each touched item and keep the best k. The work is Σ_g |g|² multiply-adds into an
//! L2-resident array, and nothing of size XᵀX (hundreds of millions of entries at Instacart
//! scale) is ever materialised.

use numpy::ndarray::Array2;
use numpy::{PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use rayon::prelude::*;

use super::best::BestK;
use super::sparse::{copy_array, Csr, Weights};
use crate::errors::CoreResult;
use crate::gil::without_gil;
use crate::invalid;

/// Upper bound on neighbours kept per item: serving reads a few dozen; more only costs memory.
pub const MAX_NEIGHBOURS: i64 = 1000;

/// The best `k` neighbours of every item, row-major `[n_items, k]`, best first (ties broken by
/// the lower item index, so results do not depend on thread scheduling). Rows with fewer than
/// `k` neighbours are padded with item -1 and score 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    pub items: Vec<i32>,
    pub scores: Vec<f32>,
}

pub type NeighbourArrays<'py> = (Bound<'py, PyArray2<i32>>, Bound<'py, PyArray2<f32>>);

impl Neighbours {
    pub fn n_items(&self) -> usize {
        self.items.len() / self.k
    }

    pub fn row(&self, item: usize) -> (&[i32], &[f32]) {
        let span = item * self.k..(item + 1) * self.k;
        (&self.items[span.clone()], &self.scores[span])
    }

    pub fn into_numpy(self, py: Python<'_>) -> NeighbourArrays<'_> {
        let shape = (self.n_items(), self.k);
        let items = Array2::from_shape_vec(shape, self.items).expect("k divides the row-major buffer");
        let scores = Array2::from_shape_vec(shape, self.scores).expect("k divides the row-major buffer");
        (PyArray2::from_owned_array(py, items), PyArray2::from_owned_array(py, scores))
    }
}

/// Checks `k` as given by Python and converts it.
pub fn neighbour_count(k: i64) -> CoreResult<usize> {
    if !(1..=MAX_NEIGHBOURS).contains(&k) {
        return invalid!("k must be between 1 and {MAX_NEIGHBOURS}, got {k}");
    }
    Ok(k as usize)
}

/// Top-`k` neighbours of every item (column of `by_group`). `score(stat_i, stat_j, dot)`
/// turns the co-occurrence dot product Σ_g w_gi·w_gj (> 0) of items i and j, given one number
/// per item (`item_stats`: a norm, a count), into a score, or -inf to drop the pair. It should
/// be branch-free (selects, not ifs), so that the scoring of popular items vectorises.
pub fn top_k_neighbours<W, S>(by_group: &Csr<W>, k: usize, item_stats: &[f32], score: S) -> Neighbours
where
    W: Weights,
    S: Fn(f32, f32, f32) -> f32 + Sync,
{
    let n_items = by_group.n_cols;
    assert_eq!(item_stats.len(), n_items, "one statistic per item");
    let ranks = PopularityRanks::of(by_group);
    // Work in popularity-rank space: most additions land on popular items, whose scratch slots
    // are then packed together at the front of `dots` instead of spread over it, every group's
    // items come sorted, so its walk through `dots` moves forwards, and the per-item
    // statistics are read in the same order as the scratch.
    let by_item = by_group.transpose_relabelled(Some(&ranks.rank_of_item));
    let by_group = by_item.transpose();
    // Padded to whole scan blocks (see `Scratch`); padding slots are never touched.
    let mut stats_by_rank: Vec<f32> = ranks.item_at_rank.iter().map(|&item| item_stats[item as usize]).collect();
    stats_by_rank.resize(n_items.next_multiple_of(SCAN_BLOCK), 1.0);
    let kernel = Kernel {
        by_item: &by_item,
        by_group: &by_group,
        item_at_rank: &ranks.item_at_rank,
        stats_by_rank: &stats_by_rank,
        score,
    };

    let mut items = vec![-1i32; n_items * k];
    let mut scores = vec![0f32; n_items * k];
    items.par_chunks_mut(k).zip(scores.par_chunks_mut(k)).enumerate().for_each_init(
        || Scratch::new(n_items),
        |scratch, (item, (item_row, score_row))| {
            kernel.neighbours_of(ranks.rank_of_item[item] as usize, scratch, item_row, score_row);
        },
    );
    Neighbours { k, items, scores }
}

/// Items ordered by how many groups hold them, most first (ties by item index).
struct PopularityRanks {
    rank_of_item: Vec<u32>,
    item_at_rank: Vec<u32>,
}

impl PopularityRanks {
    fn of<W: Weights>(by_group: &Csr<W>) -> Self {
        let counts = by_group.column_counts();
        let mut item_at_rank: Vec<u32> = (0..by_group.n_cols as u32).collect();
        item_at_rank.sort_unstable_by_key(|&item| (std::cmp::Reverse(counts[item as usize]), item));
        let mut rank_of_item = vec![0u32; by_group.n_cols];
        for (rank, &item) in item_at_rank.iter().enumerate() {
            rank_of_item[item as usize] = rank as u32;
        }
        PopularityRanks { rank_of_item, item_at_rank }
    }
}

/// A dense scan of the scratch costs about this many additions per slot (it is sequential and
/// vectorised): items whose walk adds more than n_items / DENSE_SCAN_COST times skip the
/// touched list and scan instead.
const DENSE_SCAN_COST: usize = 8;
/// Slots per block of the dense scan (see `neighbours_of`), and SIMD lanes within a block.
const SCAN_BLOCK: usize = 64;
const LANES: usize = 8;

/// `score` where `dot` is non-zero, else -inf; by bit masks, because a branch (which the
/// compiler prefers around a division) would stop the scan from vectorising.
#[inline(always)]
fn untouched_to_minus_infinity(dot: f32, score: f32) -> f32 {
    let keep = if dot != 0.0 { u32::MAX } else { 0 };
    f32::from_bits((score.to_bits() & keep) | (f32::NEG_INFINITY.to_bits() & !keep))
}

/// One thread's working memory, reused from item to item.
struct Scratch {
    /// Co-occurrence dot product with each item, by popularity rank; all zero between items.
    dots: Vec<f32>,
    /// Score of each slot, for items that score them all...
    scores: Vec<f32>,
    /// ...the best score of each block of SCAN_BLOCK slots, and a copy to select from.
    block_best: Vec<f32>,
    block_floor: Vec<f32>,
    /// Ranks whose slot became non-zero, when the item is light enough to track them.
    touched: Vec<u32>,
    best: BestK,
}

impl Scratch {
    fn new(n_items: usize) -> Self {
        // Whole blocks, so the scan needs no remainder handling; the padding stays 0 (untouched).
        let slots = n_items.next_multiple_of(SCAN_BLOCK);
        Scratch {
            dots: vec![0.0; slots],
            scores: vec![0.0; slots],
            block_best: vec![0.0; slots / SCAN_BLOCK],
            block_floor: Vec::new(),
            touched: Vec::new(),
            best: BestK::default(),
        }
    }
}

/// The read-only inputs shared by all threads, in popularity-rank space.
struct Kernel<'a, W, S> {
    by_item: &'a Csr<W>,
    by_group: &'a Csr<W>,
    item_at_rank: &'a [u32],
    stats_by_rank: &'a [f32],
    score: S,
}

impl<W, S> Kernel<'_, W, S>
where
    W: Weights,
    S: Fn(f32, f32, f32) -> f32,
{
    /// Writes the best neighbours of the item at `rank` into its output row.
    fn neighbours_of(&self, rank: usize, scratch: &mut Scratch, item_row: &mut [i32], score_row: &mut [f32]) {
        let Scratch { dots, scores, block_best, block_floor, touched, best } = scratch;
        let k = item_row.len();
        let stat = self.stats_by_rank[rank];
        let groups = &self.by_item.indices[self.by_item.row_range(rank)];
        let additions: usize = groups.iter().map(|&g| self.by_group.row_range(g as usize).len()).sum();
        if additions * DENSE_SCAN_COST >= dots.len() {
            // A popular item: most slots get touched. Score every slot in a branch-free
            // (vectorised) pass that clears the scratch and notes each block's best score; the
            // k-th best block maximum is a floor no final neighbour is under (k blocks reach
            // it), so only the few blocks reaching the floor are searched.
            self.accumulate(dots, groups, rank, |_| {});
            dots[rank] = 0.0; // the item itself: cleared before block maxima count it
            let blocks = dots.chunks_exact_mut(SCAN_BLOCK).zip(scores.chunks_exact_mut(SCAN_BLOCK));
            let blocks = blocks.zip(self.stats_by_rank.chunks_exact(SCAN_BLOCK)).zip(block_best.iter_mut());
            for (((dots, scores), stats), block_best) in blocks {
                // Two simple loops the compiler turns into SIMD: score every slot, then drop
                // untouched slots, clear them and take the block's best.
                for ((score_out, &dot), &other_stat) in scores.iter_mut().zip(dots.iter()).zip(stats) {
                    *score_out = (self.score)(stat, other_stat, dot);
                }
                let mut lane_best = [f32::NEG_INFINITY; LANES];
                for (dots, scores) in dots.chunks_exact_mut(LANES).zip(scores.chunks_exact_mut(LANES)) {
                    for lane in 0..LANES {
                        let s = untouched_to_minus_infinity(dots[lane], scores[lane]);
                        lane_best[lane] = lane_best[lane].max(s);
                        scores[lane] = s;
                        dots[lane] = 0.0;
                    }
                }
                *block_best = lane_best.into_iter().fold(f32::NEG_INFINITY, f32::max);
            }
            block_floor.clear();
            block_floor.extend_from_slice(block_best);
            let floor = if block_floor.len() > k {
                *block_floor.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1
            } else {
                f32::NEG_INFINITY
            };
            for (block, &block_max) in block_best.iter().enumerate() {
                if block_max >= floor && block_max > f32::NEG_INFINITY {
                    let start = block * SCAN_BLOCK;
                    for (slot, &s) in scores[start..(start + SCAN_BLOCK).min(scores.len())].iter().enumerate() {
                        if s >= floor && best.admits(s) {
                            best.offer((s, self.item_at_rank[start + slot]), k);
                        }
                    }
                }
            }
        } else {
            self.accumulate(dots, groups, rank, |slot| touched.push(slot));
            for &slot in touched.iter() {
                let slot = slot as usize;
                // A slot listed twice (a product underflowed to 0) is empty the second time.
                let dot = std::mem::take(&mut dots[slot]);
                if dot != 0.0 && slot != rank {
                    let s = (self.score)(stat, self.stats_by_rank[slot], dot);
                    if best.admits(s) {
                        best.offer((s, self.item_at_rank[slot]), k);
                    }
                }
            }
            touched.clear();
        }
        best.write_into(item_row, score_row);
    }

    /// dots[r] += Σ over `groups` (those holding the item at `rank`) of w_g,rank · w_gr,
    /// calling `first_touch(r)` when slot r goes from zero to non-zero (weights are positive,
    /// so a zero slot has not been touched yet). The hot loop of the whole build.
    #[inline(always)]
    fn accumulate(&self, dots: &mut [f32], groups: &[u32], rank: usize, mut first_touch: impl FnMut(u32)) {
        let (by_item, by_group) = (self.by_item, self.by_group);
        let weights_start = by_item.indptr[rank];
        for (n, &group) in groups.iter().enumerate() {
            // Scattered group rows are short (a few cache lines): too short for the hardware
            // prefetcher to notice, so ask for all of a row a few groups ahead.
            if let Some(&ahead) = groups.get(n + PREFETCH_GROUPS_AHEAD) {
                by_group.prefetch_row(ahead as usize);
            }
            let weight = by_item.data.get(weights_start + n);
            let span = by_group.row_range(group as usize);
            for (offset, &other) in by_group.indices[span.clone()].iter().enumerate() {
                // SAFETY: `Csr::from_parts` checked every index against n_cols == dots.len().
                let dot = unsafe { dots.get_unchecked_mut(other as usize) };
                if *dot == 0.0 {
                    first_touch(other);
                }
                *dot += weight * by_group.data.get(span.start + offset);
            }
        }
    }
}

/// How far ahead `accumulate` prefetches group rows: enough to cover a memory round trip
/// while the current row is summed.
const PREFETCH_GROUPS_AHEAD: usize = 8;
/// Cosine similarity with shrinkage between the columns of `by_group`:
/// sim(i, j) = x_i·x_j / (‖x_i‖·‖x_j‖ + shrink). The shrink term pulls down pairs whose
/// evidence is thin (few shared customers), which plain cosine ranks as high as solid ones.
pub fn cosine_neighbours(by_group: &Csr<Vec<f32>>, k: usize, shrink: f32) -> Neighbours {
    let mut norms = vec![0f32; by_group.n_cols];
    for (&col, &w) in by_group.indices.iter().zip(&by_group.data) {
        norms[col as usize] += w * w;
    }
    norms.iter_mut().for_each(|n| *n = n.sqrt());
    top_k_neighbours(by_group, k, &norms, |norm_i, norm_j, dot| dot / (norm_i * norm_j + shrink))
}

/// Top-`k` most similar items by cosine with shrinkage over a group × item matrix (CSR).
///
/// Rows are groups (customers for co-purchase, product features for content similarity),
/// columns are items; `data` holds positive weights. sim(i, j) = x_i·x_j / (‖x_i‖·‖x_j‖ + shrink).
/// Returns `(neighbours int32 [n_items, k], similarity float32 [n_items, k])`, best first,
/// padded with -1 / 0. Runs in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, n_items, k, shrink))]
pub fn cosine_item_neighbours<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_items: i64,
    k: i64,
    shrink: f64,
) -> PyResult<NeighbourArrays<'py>> {
    let indptr = copy_array("indptr", &indptr)?;
    let indices = copy_array("indices", &indices)?;
    let data = copy_array("data", &data)?;
    let neighbours = without_gil(py, move || {
        let k = neighbour_count(k)?;
        if !(shrink.is_finite() && shrink >= 0.0) {
            return invalid!("shrink must be a finite number >= 0, got {shrink}");
        }
        let matrix = Csr::from_parts(indptr, indices, data, n_items)?;
        Ok(cosine_neighbours(&matrix, k, shrink as f32))
    })?;
    Ok(neighbours.into_numpy(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cosine_item_neighbours, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sparse::Ones;

    /// Customers × items, binary:
    ///   c0: {0, 1}   c1: {0, 1, 2}   c2: {2, 3}   c3: {0}
    fn customers() -> Csr<Vec<f32>> {
        Csr::from_parts(vec![0, 2, 5, 7, 8], vec![0, 1, 0, 1, 2, 2, 3, 0], vec![1.0; 8], 4).unwrap()
    }

    #[test]
    fn cosine_matches_hand_computation() {
        // ‖x0‖ = √3, ‖x1‖ = √2, ‖x2‖ = √2, ‖x3‖ = 1; x0·x1 = 2, x0·x2 = 1, x1·x2 = 1, x2·x3 = 1.
        let n = cosine_neighbours(&customers(), 3, 0.0);
        let (items, sims) = n.row(0);
        assert_eq!(items, &[1, 2, -1]);
        assert_close(sims, &[2.0 / 6f32.sqrt(), 1.0 / 6f32.sqrt(), 0.0]);
        let (items, sims) = n.row(2);
        assert_eq!(items, &[3, 1, 0]); // 1/√2 > 1/2 > 1/√6
        assert_close(sims, &[1.0 / 2f32.sqrt(), 0.5, 1.0 / 6f32.sqrt()]);
        let (items, _) = n.row(3);
        assert_eq!(items, &[2, -1, -1]);
    }

    #[test]
    fn shrink_lowers_thin_evidence() {
        let n = cosine_neighbours(&customers(), 1, 1.0);
        let (items, sims) = n.row(3);
        assert_eq!(items, &[2]);
        assert_close(sims, &[1.0 / (2f32.sqrt() + 1.0)]);
    }

    #[test]
    fn k_truncates_and_ties_go_to_lower_index() {
        // Item 0 is held with items 1 and 2 by one group each: equal scores, 1 wins the tie.
        let m = Csr::from_parts(vec![0, 2, 4], vec![0, 1, 0, 2], Ones, 3).unwrap();
        let n = top_k_neighbours(&m, 1, &[0.0; 3], |_, _, dot| dot);
        assert_eq!(n.row(0), (&[1][..], &[1.0][..]));
        assert_eq!(n.row(1), (&[0][..], &[1.0][..]));
    }

    #[test]
    fn items_nobody_bought_have_no_neighbours() {
        let m = Csr::from_parts(vec![0, 2], vec![0, 1], vec![1.0, 1.0], 3).unwrap();
        let n = cosine_neighbours(&m, 2, 0.0);
        assert_eq!(n.row(2), (&[-1, -1][..], &[0.0, 0.0][..]));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_pool() {
        let m = customers();
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let serial = one_thread.install(|| cosine_neighbours(&m, 3, 0.5));
        assert_eq!(serial, cosine_neighbours(&m, 3, 0.5));
    }

    #[test]
    fn neighbour_count_is_bounded() {
        assert!(neighbour_count(0).is_err());
        assert!(neighbour_count(MAX_NEIGHBOURS + 1).is_err());
        assert_eq!(neighbour_count(5).unwrap(), 5);
    }

    /// Mixed popularity over many items, so both the dense and the touched-list paths run;
    /// checked against brute force (every pair's dot product in f64).
    #[test]
    fn matches_brute_force_on_both_paths() {
        use rand::{Rng, SeedableRng};
        let (n_groups, n_items, k) = (400, 1500, 7);
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
        for _ in 0..n_groups {
            let mut row: Vec<i32> =
                (0..rng.random_range(1..40)).map(|_| (rng.random::<f64>().powi(3) * n_items as f64) as i32).collect();
            row.sort_unstable();
            row.dedup();
            data.extend(row.iter().map(|_| rng.random_range(0.5f32..3.0)));
            indices.extend(row);
            indptr.push(indices.len() as i64);
        }
        let m = Csr::from_parts(indptr, indices, data, n_items as i64).unwrap();
        let got = cosine_neighbours(&m, k, 1.0);

        let mut dots = vec![0f64; n_items * n_items];
        for g in 0..m.n_rows() {
            for a in m.row_range(g) {
                for b in m.row_range(g) {
                    dots[m.indices[a] as usize * n_items + m.indices[b] as usize] += (m.data[a] * m.data[b]) as f64;
                }
            }
        }
        let norm = |i: usize| dots[i * n_items + i].sqrt();
        for i in 0..n_items {
            let mut expected: Vec<(f64, usize)> = (0..n_items)
                .filter(|&j| j != i && dots[i * n_items + j] > 0.0)
                .map(|j| (dots[i * n_items + j] / (norm(i) * norm(j) + 1.0), j))
                .collect();
            expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let (items, sims) = got.row(i);
            for slot in 0..k {
                match expected.get(slot) {
                    Some(&(sim, _)) => {
                        assert!(
                            (sims[slot] as f64 - sim).abs() < 1e-5,
                            "item {i} slot {slot}: {} vs {sim}",
                            sims[slot]
                        );
                        let j = items[slot] as usize;
                        assert!((dots[i * n_items + j] / (norm(i) * norm(j) + 1.0) - sim).abs() < 1e-5);
                    }
                    None => assert_eq!(items[slot], -1),
                }
            }
        }
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{actual:?} != {expected:?}");
        }
    }
}
