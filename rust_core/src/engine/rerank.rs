//! Learned re-ranking of a blend's head: gradient-boosted regression trees trained with
//! LambdaMART (Burges, "From RankNet to LambdaRank to LambdaMART", 2010).
//!
//! The blend adds each signal with one weight for every shopper. Trees can learn what one weight
//! cannot: that due-ness matters more for a shopper with a long history, or that a product
//! outside the history is worth showing only when nothing in it is due. Training takes, for
//! each held-out shopper, the blend's best candidates with their features (`rank::FEATURES`) and
//! which of them the basket held, and fits trees whose summed output orders them for NDCG@k.
//! Serving re-orders the blend's head by that output (`rank::rank`). The trees are small and
//! stored as flat arrays (engine/blends.py keeps them in the model's manifest).
use rayon::prelude::*;

use crate::errors::CoreResult;
use crate::invalid;

/// A linear start plus a forest of binary regression trees as flat node arrays: the score of a
/// row `x` is `base . x` plus every tree's leaf. Starting from the blend's own score (a `base`
/// on that feature) lets the trees learn corrections to its order rather than an order from
/// nothing. Node `n` splits on
/// `feature[n]` (go left when `x <= threshold[n]`) or, when `feature[n] == -1`, is a leaf
/// worth `value[n]`. Children always come after their parent, so a walk ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forest {
    pub n_features: usize,
    /// Weight of each feature in the linear start (empty = none).
    pub base: Vec<f32>,
    pub feature: Vec<i32>,
    pub threshold: Vec<f32>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub value: Vec<f32>,
    /// Each tree's root node.
    pub roots: Vec<i32>,
}

impl Forest {
    /// Checks the arrays describe trees over `n_features` features (a corrupt or foreign
    /// artifact is refused here, not by a walk that never ends or reads out of bounds).
    pub fn validate(&self) -> CoreResult<()> {
        if !self.base.is_empty() && self.base.len() != self.n_features {
            return invalid!("reranker base must have one weight per feature ({})", self.n_features);
        }
        if self.base.iter().any(|w| !w.is_finite()) {
            return invalid!("reranker base weights must be finite");
        }
        let n = self.feature.len();
        if [self.threshold.len(), self.left.len(), self.right.len(), self.value.len()].iter().any(|&m| m != n) {
            return invalid!("reranker node arrays must all have the same length ({n})");
        }
        for node in 0..n {
            let f = self.feature[node];
            if f == -1 {
                if !self.value[node].is_finite() {
                    return invalid!("reranker leaf {node} has a non-finite value");
                }
                continue;
            }
            if f < 0 || f as usize >= self.n_features {
                return invalid!("reranker node {node} splits on feature {f} of {}", self.n_features);
            }
            for child in [self.left[node], self.right[node]] {
                if child <= node as i32 || child as usize >= n {
                    return invalid!("reranker node {node} has child {child}: children come after their parent");
                }
            }
        }
        if let Some(root) = self.roots.iter().find(|&&r| r < 0 || r as usize >= n) {
            return invalid!("reranker root {root} is not a node");
        }
        Ok(())
    }

    /// The forest's score for one feature row (`x.len() >= n_features`).
    pub fn predict(&self, x: &[f32]) -> f32 {
        self.start(x) + self.roots.iter().map(|&root| self.value[self.leaf(root as usize, x)]).sum::<f32>()
    }

    fn start(&self, x: &[f32]) -> f32 {
        self.base.iter().zip(x).map(|(w, v)| w * v).sum()
    }

    fn leaf(&self, mut node: usize, x: &[f32]) -> usize {
        while self.feature[node] >= 0 {
            let go_left = x[self.feature[node] as usize] <= self.threshold[node];
            node = if go_left { self.left[node] } else { self.right[node] } as usize;
        }
        node
    }
}

/// Rows summed together per parallel task when a node's histograms are built.
const HISTOGRAM_CHUNK: usize = 16_384;

/// How the forest is fitted.
#[derive(Clone, Copy, Debug)]
pub struct TrainParams {
    pub trees: usize,
    pub depth: usize,
    pub learning_rate: f32,
    /// Fewest rows in a leaf.
    pub min_leaf: usize,
    /// L2 penalty on leaf values (Newton step G / (H + l2)).
    pub l2: f32,
    /// The cut-off of the NDCG the lambdas optimise: swaps below it change nothing.
    pub ndcg_k: usize,
    /// Most split points tried per feature (quantiles of its values).
    pub bins: usize,
}

/// Fits a forest to rank each query's rows by `labels` (higher = more relevant).
///
/// `features` is row-major `[n, n_features]`; query q's rows are
/// `query_starts[q]..query_starts[q + 1]`. The first tree starts from the linear `base` (empty
/// = 0 for every row), ties broken by row order: give each query's rows in the blend's order so
/// the trees learn what to change about it.
pub fn train(
    features: &[f32],
    n_features: usize,
    labels: &[f32],
    query_starts: &[usize],
    base: &[f32],
    p: &TrainParams,
) -> CoreResult<Forest> {
    let n = labels.len();
    if n_features == 0 || features.len() != n * n_features {
        return invalid!("features must be [rows, n_features] with rows = {n} labels and n_features > 0");
    }
    if query_starts.first() != Some(&0)
        || query_starts.last() != Some(&n)
        || query_starts.windows(2).any(|w| w[0] > w[1])
    {
        return invalid!("query_starts must rise from 0 to the number of rows ({n})");
    }
    if labels.iter().any(|y| !y.is_finite()) {
        return invalid!("labels must be finite");
    }
    if p.depth == 0 || p.depth > 12 || p.min_leaf == 0 || p.ndcg_k == 0 || p.bins < 2 || p.bins > 256 {
        return invalid!("depth must be 1..=12, min_leaf and ndcg_k at least 1, bins 2..=256");
    }
    if !(p.learning_rate > 0.0 && p.learning_rate.is_finite() && p.l2 >= 0.0 && p.l2.is_finite()) {
        return invalid!("learning_rate must be > 0 and l2 >= 0");
    }
    let mut forest = Forest { n_features, base: base.to_vec(), ..Forest::default() };
    forest.validate()?;
    let bins = Bins::of(features, n_features, p.bins);
    let mut scores: Vec<f32> = features.chunks(n_features).map(|x| forest.start(x)).collect();
    let mut grad = vec![0.0f32; n];
    let mut hess = vec![0.0f32; n];
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    for _ in 0..p.trees {
        lambdas(&scores, labels, query_starts, p.ndcg_k, &mut grad, &mut hess);
        // Every tree starts from the rows in ascending order (`partition` keeps them so): the
        // last tree's leaves leave them in runs, which the histograms would read at random.
        rows.clear();
        rows.extend(0..n as u32);
        let mut grower = Grower { bins: &bins, grad: &grad, hess: &hess, p, forest: &mut forest };
        let root = grower.grow(&mut rows, 0, None);
        forest.roots.push(root as i32);
        scores.par_iter_mut().enumerate().for_each(|(i, s)| {
            *s += forest.value[forest.leaf(root, &features[i * n_features..(i + 1) * n_features])];
        });
    }
    Ok(forest)
}

/// Each feature's split points and every row's bin per feature. Bin `b` holds values in
/// `(thresholds[b - 1], thresholds[b]]`; NaN goes past the last threshold, as `Forest::leaf`
/// sends it right.
struct Bins {
    n_features: usize,
    thresholds: Vec<Vec<f32>>,
    codes: Vec<u8>, // row-major [n, n_features]
    /// Where each feature's bins start in a node's histogram (one flat vector of every
    /// feature's bins); the last entry is its length.
    offsets: Vec<usize>,
}

impl Bins {
    fn of(features: &[f32], n_features: usize, max_bins: usize) -> Self {
        let n = features.len() / n_features;
        let thresholds: Vec<Vec<f32>> = (0..n_features)
            .into_par_iter()
            .map(|j| {
                let mut values: Vec<f32> =
                    (0..n).map(|i| features[i * n_features + j]).filter(|x| !x.is_nan()).collect();
                values.sort_unstable_by(f32::total_cmp);
                values.dedup();
                if values.len() <= max_bins {
                    values.pop(); // the largest value: nothing lies beyond it to split off
                    return values;
                }
                let mut cuts: Vec<f32> = (1..max_bins).map(|b| values[b * values.len() / max_bins - 1]).collect();
                cuts.dedup();
                cuts
            })
            .collect();
        let mut codes = vec![0u8; features.len()];
        codes.par_chunks_mut(n_features).enumerate().for_each(|(i, row)| {
            for (j, code) in row.iter_mut().enumerate() {
                let x = features[i * n_features + j];
                let cuts = &thresholds[j];
                *code = if x.is_nan() { cuts.len() } else { cuts.partition_point(|t| *t < x) } as u8;
            }
        });
        let mut offsets = vec![0usize];
        for cuts in &thresholds {
            offsets.push(offsets.last().copied().unwrap_or(0) + cuts.len() + 1);
        }
        Bins { n_features, thresholds, codes, offsets }
    }
}

/// LambdaRank gradients: for every pair of rows of a query with different labels, push the
/// better one up and the other down, in proportion to how much swapping them would change
/// NDCG@k and to how wrongly the current scores order them. `grad` is the direction that
/// raises NDCG; `hess` its curvature, for the Newton step of the leaves.
fn lambdas(scores: &[f32], labels: &[f32], query_starts: &[usize], k: usize, grad: &mut [f32], hess: &mut [f32]) {
    let per_query: Vec<(usize, Vec<(f32, f32)>)> = query_starts
        .par_windows(2)
        .map(|w| (w[0], query_lambdas(&scores[w[0]..w[1]], &labels[w[0]..w[1]], k)))
        .collect();
    for (start, values) in per_query {
        for (i, (g, h)) in values.into_iter().enumerate() {
            grad[start + i] = g;
            hess[start + i] = h;
        }
    }
}

fn query_lambdas(scores: &[f32], labels: &[f32], k: usize) -> Vec<(f32, f32)> {
    let m = scores.len();
    let mut out = vec![(0.0f32, 0.0f32); m];
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut position = vec![0usize; m];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let discount = |pos: usize| if pos < k { 1.0 / ((pos + 2) as f32).log2() } else { 0.0 };
    let gain = |y: f32| y.exp2() - 1.0;
    let mut ideal: Vec<f32> = labels.to_vec();
    ideal.sort_unstable_by(|a, b| b.total_cmp(a));
    let ideal_dcg: f32 = ideal.iter().enumerate().map(|(pos, &y)| gain(y) * discount(pos)).sum();
    if ideal_dcg <= 0.0 {
        return out; // nothing relevant: no order is better than another
    }
    // Only a row above the query's lowest label can be the better of a pair: in a basket's
    // candidates, a few relevant rows among 64, so a few hundred pairs instead of 4,096.
    let lowest = labels.iter().copied().fold(f32::INFINITY, f32::min);
    // Each row's gain and discount once, not once per pair it is in.
    let gains: Vec<f32> = labels.iter().map(|&y| gain(y)).collect();
    let discounts: Vec<f32> = position.iter().map(|&pos| discount(pos)).collect();
    for i in (0..m).filter(|&i| labels[i] > lowest) {
        for j in 0..m {
            if labels[i] <= labels[j] {
                continue;
            }
            let delta = (gains[i] - gains[j]) * (discounts[i] - discounts[j]).abs() / ideal_dcg;
            if delta == 0.0 {
                continue; // both below the cut-off
            }
            let rho = 1.0 / (1.0 + (scores[i] - scores[j]).exp());
            out[i].0 += delta * rho;
            out[j].0 -= delta * rho;
            let h = delta * rho * (1.0 - rho);
            out[i].1 += h;
            out[j].1 += h;
        }
    }
    out
}

/// Grows one tree depth-first, appending its nodes to the forest.
struct Grower<'a> {
    bins: &'a Bins,
    grad: &'a [f32],
    hess: &'a [f32],
    p: &'a TrainParams,
    forest: &'a mut Forest,
}

/// Sums of gradient and curvature over some rows, and how many.
#[derive(Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: usize,
}

impl Sums {
    fn score(&self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }
}

impl Grower<'_> {
    /// The node over `rows` and its subtree; `histogram`: the rows' histograms when the parent
    /// already knows them (`histograms`).
    fn grow(&mut self, rows: &mut [u32], depth: usize, histogram: Option<Vec<Sums>>) -> usize {
        let node = self.forest.feature.len();
        self.forest.feature.push(-1);
        self.forest.threshold.push(0.0);
        self.forest.left.push(-1);
        self.forest.right.push(-1);
        self.forest.value.push(0.0);
        let total = rows.iter().fold(Sums::default(), |s, &r| Sums {
            g: s.g + self.grad[r as usize] as f64,
            h: s.h + self.hess[r as usize] as f64,
            n: s.n + 1,
        });
        let l2 = self.p.l2 as f64;
        let histogram = self.may_split(rows.len(), depth).then(|| histogram.unwrap_or_else(|| self.histograms(rows)));
        let Some((feature, bin)) = histogram.as_ref().and_then(|h| self.best_split(h, total)) else {
            self.forest.value[node] = (self.p.learning_rate as f64 * total.g / (total.h + l2)) as f32;
            return node;
        };
        let cut = self.partition(rows, feature, bin);
        let (left_rows, right_rows) = rows.split_at_mut(cut);
        // The children's histograms: the smaller child's summed over its rows, the other's what
        // is left of this node's, which halves the work of every level but the first.
        let (mut left_histogram, mut right_histogram) = (None, None);
        if self.may_split(left_rows.len(), depth + 1) || self.may_split(right_rows.len(), depth + 1) {
            let mut rest = histogram.expect("a split node has histograms");
            let smaller_is_left = left_rows.len() <= right_rows.len();
            let smaller = self.histograms(if smaller_is_left { left_rows } else { right_rows });
            rest.iter_mut().zip(&smaller).for_each(|(b, s)| *b = Sums { g: b.g - s.g, h: b.h - s.h, n: b.n - s.n });
            (left_histogram, right_histogram) =
                if smaller_is_left { (Some(smaller), Some(rest)) } else { (Some(rest), Some(smaller)) };
        }
        let left = self.grow(left_rows, depth + 1, left_histogram);
        let right = self.grow(right_rows, depth + 1, right_histogram);
        self.forest.feature[node] = feature as i32;
        self.forest.threshold[node] = self.bins.thresholds[feature][bin];
        self.forest.left[node] = left as i32;
        self.forest.right[node] = right as i32;
        node
    }

    /// Whether a node of `n_rows` at `depth` may split at all.
    fn may_split(&self, n_rows: usize, depth: usize) -> bool {
        depth < self.p.depth && n_rows >= 2 * self.p.min_leaf
    }

    /// Puts the rows going left (`feature`'s bin at most `bin`) first, each side in the order
    /// it was: rows stay ascending, so a child's histograms read the row arrays front to back
    /// rather than at random. Returns how many go left.
    fn partition(&self, rows: &mut [u32], feature: usize, bin: usize) -> usize {
        let nf = self.bins.n_features;
        let goes_left = |r: u32| self.bins.codes[r as usize * nf + feature] as usize <= bin;
        let right: Vec<u32> = rows.iter().copied().filter(|&r| !goes_left(r)).collect();
        let mut cut = 0;
        for i in 0..rows.len() {
            let r = rows[i];
            if goes_left(r) {
                rows[cut] = r; // cut <= i: nothing unread is overwritten
                cut += 1;
            }
        }
        rows[cut..].copy_from_slice(&right);
        cut
    }

    /// The (feature, bin) whose split gains most, if any gains at all.
    fn best_split(&self, histogram: &[Sums], total: Sums) -> Option<(usize, usize)> {
        let l2 = self.p.l2 as f64;
        let parent = total.score(l2);
        (0..self.bins.n_features)
            .filter_map(|j| {
                let cuts = self.bins.thresholds[j].len();
                let mut left = Sums::default();
                let mut best: Option<(f64, usize, usize)> = None;
                for (bin, b) in histogram[self.bins.offsets[j]..self.bins.offsets[j + 1]].iter().take(cuts).enumerate()
                {
                    left = Sums { g: left.g + b.g, h: left.h + b.h, n: left.n + b.n };
                    let right = Sums { g: total.g - left.g, h: total.h - left.h, n: total.n - left.n };
                    if left.n < self.p.min_leaf || right.n < self.p.min_leaf {
                        continue;
                    }
                    let gain = left.score(l2) + right.score(l2) - parent;
                    if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                        best = Some((gain, j, bin));
                    }
                }
                best
            })
            // Ties go to the lower feature.
            .reduce(|a, b| if b.0 > a.0 { b } else { a })
            .map(|(_, j, bin)| (j, bin))
    }

    /// The gradient sums of `rows` by bin, every feature's bins in one vector (`Bins::offsets`).
    /// One pass over the rows reads each row's codes once (they lie together): a pass per
    /// feature would read them all per feature. Chunks of rows are summed in parallel and added
    /// up in chunk order, so the sums, and the trees, do not depend on thread timing.
    fn histograms(&self, rows: &[u32]) -> Vec<Sums> {
        let nf = self.bins.n_features;
        let offsets = &self.bins.offsets[..nf];
        let empty = vec![Sums::default(); self.bins.offsets[nf]];
        let partial: Vec<Vec<Sums>> = rows
            .par_chunks(HISTOGRAM_CHUNK)
            .map(|chunk| {
                let mut histogram = empty.clone();
                for &r in chunk {
                    let (g, h) = (self.grad[r as usize] as f64, self.hess[r as usize] as f64);
                    let codes = &self.bins.codes[r as usize * nf..(r as usize + 1) * nf];
                    for (&offset, &code) in offsets.iter().zip(codes) {
                        let b = &mut histogram[offset + code as usize];
                        b.g += g;
                        b.h += h;
                        b.n += 1;
                    }
                }
                histogram
            })
            .collect();
        let mut sums = empty;
        for part in partial {
            for (b, p) in sums.iter_mut().zip(part) {
                *b = Sums { g: b.g + p.g, h: b.h + p.h, n: b.n + p.n };
            }
        }
        sums
    }
}

pub mod py {
    use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use super::{Forest, TrainParams};
    use crate::errors::{CoreErrorKind, CoreResult};
    use crate::gil::without_gil;

    fn vec_of<T: numpy::Element + Copy>(array: &PyReadonlyArray1<'_, T>, name: &str) -> CoreResult<Vec<T>> {
        Ok(array.as_slice().map_err(|_| CoreErrorKind::InvalidInput(format!("{name} must be C-contiguous")))?.to_vec())
    }

    /// A learned re-ranker: gradient-boosted trees over `RANK_FEATURES` (see
    /// rust_core/src/engine/rerank.rs). Built by `train_reranker` or from its `arrays()`.
    #[pyclass(frozen, module = "omnix_recs._core", name = "Reranker")]
    pub struct Reranker {
        pub forest: Forest,
    }

    #[pymethods]
    impl Reranker {
        /// Rebuild a forest from `arrays()` (keyword-only). InvalidInputError when the arrays do
        /// not describe trees over `n_features` features.
        #[new]
        #[pyo3(signature = (*, n_features, base, feature, threshold, left, right, value, roots))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            n_features: usize,
            base: PyReadonlyArray1<'_, f32>,
            feature: PyReadonlyArray1<'_, i32>,
            threshold: PyReadonlyArray1<'_, f32>,
            left: PyReadonlyArray1<'_, i32>,
            right: PyReadonlyArray1<'_, i32>,
            value: PyReadonlyArray1<'_, f32>,
            roots: PyReadonlyArray1<'_, i32>,
        ) -> PyResult<Self> {
            let forest = Forest {
                n_features,
                base: vec_of(&base, "base")?,
                feature: vec_of(&feature, "feature")?,
                threshold: vec_of(&threshold, "threshold")?,
                left: vec_of(&left, "left")?,
                right: vec_of(&right, "right")?,
                value: vec_of(&value, "value")?,
                roots: vec_of(&roots, "roots")?,
            };
            forest.validate()?;
            Ok(Reranker { forest })
        }

        /// The forest as arrays, keyed like the constructor's arguments.
        fn arrays<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            let f = &self.forest;
            let out = PyDict::new(py);
            out.set_item("n_features", f.n_features)?;
            out.set_item("base", f.base.clone().into_pyarray(py))?;
            out.set_item("feature", f.feature.clone().into_pyarray(py))?;
            out.set_item("threshold", f.threshold.clone().into_pyarray(py))?;
            out.set_item("left", f.left.clone().into_pyarray(py))?;
            out.set_item("right", f.right.clone().into_pyarray(py))?;
            out.set_item("value", f.value.clone().into_pyarray(py))?;
            out.set_item("roots", f.roots.clone().into_pyarray(py))?;
            Ok(out)
        }

        /// Scores of feature rows (float32 `[n, n_features]`).
        fn predict<'py>(
            &self,
            py: Python<'py>,
            features: PyReadonlyArray2<'py, f32>,
        ) -> PyResult<Bound<'py, PyArray1<f32>>> {
            let nf = self.forest.n_features;
            if features.shape()[1] != nf {
                return Err(CoreErrorKind::InvalidInput(format!("features must have {nf} columns")).into());
            }
            let x =
                features.as_slice().map_err(|_| CoreErrorKind::InvalidInput("features must be C-contiguous".into()))?;
            let scores =
                without_gil(py, || Ok(x.chunks(nf).map(|row| self.forest.predict(row)).collect::<Vec<f32>>()))?;
            Ok(scores.into_pyarray(py))
        }

        #[getter]
        fn n_trees(&self) -> usize {
            self.forest.roots.len()
        }

        #[getter]
        fn n_features(&self) -> usize {
            self.forest.n_features
        }
    }

    /// Fit a LambdaMART forest: rows of `features` (float32 `[n, f]`) grouped into queries by
    /// `query_starts` (int64, from 0 to n), `labels` (float32, higher = more relevant), each
    /// query's rows in the order to improve on, starting from the linear `base` (float32, one
    /// weight per feature, or empty). Runs with the GIL released.
    #[pyfunction]
    #[pyo3(signature = (features, labels, query_starts, *, base, trees, depth, learning_rate, min_leaf, l2, ndcg_k, bins))]
    #[allow(clippy::too_many_arguments)]
    fn train_reranker(
        py: Python<'_>,
        features: PyReadonlyArray2<'_, f32>,
        labels: PyReadonlyArray1<'_, f32>,
        query_starts: PyReadonlyArray1<'_, i64>,
        base: PyReadonlyArray1<'_, f32>,
        trees: usize,
        depth: usize,
        learning_rate: f32,
        min_leaf: usize,
        l2: f32,
        ndcg_k: usize,
        bins: usize,
    ) -> PyResult<Reranker> {
        let n_features = features.shape()[1];
        let x = features.as_slice().map_err(|_| CoreErrorKind::InvalidInput("features must be C-contiguous".into()))?;
        let y = labels.as_slice().map_err(|_| CoreErrorKind::InvalidInput("labels must be C-contiguous".into()))?;
        let starts: Vec<usize> = vec_of(&query_starts, "query_starts")?
            .into_iter()
            .map(|s| usize::try_from(s).map_err(|_| CoreErrorKind::InvalidInput("query_starts must be >= 0".into())))
            .collect::<CoreResult<_>>()?;
        let params = TrainParams { trees, depth, learning_rate, min_leaf, l2, ndcg_k, bins };
        let base = vec_of(&base, "base")?;
        let forest = without_gil(py, || super::train(x, n_features, y, &starts, &base, &params))?;
        Ok(Reranker { forest })
    }

    pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<Reranker>()?;
        m.add_function(pyo3::wrap_pyfunction!(train_reranker, m)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(trees: usize) -> TrainParams {
        TrainParams { trees, depth: 3, learning_rate: 0.3, min_leaf: 2, l2: 1.0, ndcg_k: 3, bins: 16 }
    }

    /// Queries of 6 rows where the relevant rows are those with feature 1 above 0.5, while
    /// the given order (feature 0, the "blend") puts them last.
    fn queries(n_queries: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let (mut x, mut y, mut starts) = (vec![], vec![], vec![0]);
        for q in 0..n_queries {
            for r in 0..6 {
                let relevant = (r + q) % 3 == 0;
                x.extend([1.0 - r as f32 / 6.0, if relevant { 0.9 } else { 0.1 } + (q % 5) as f32 * 0.01]);
                y.push(if relevant { 1.0 } else { 0.0 });
            }
            starts.push(x.len() / 2);
        }
        (x, y, starts)
    }

    fn ndcg_at(scores: &[f32], labels: &[f32], starts: &[usize], k: usize) -> f32 {
        let mut total = 0.0;
        for w in starts.windows(2) {
            let (s, y) = (&scores[w[0]..w[1]], &labels[w[0]..w[1]]);
            let mut order: Vec<usize> = (0..s.len()).collect();
            order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
            let dcg: f32 = order.iter().take(k).enumerate().map(|(p, &i)| y[i] / ((p + 2) as f32).log2()).sum();
            let positives = y.iter().filter(|&&v| v > 0.0).count().min(k);
            let ideal: f32 = (0..positives).map(|p| 1.0 / ((p + 2) as f32).log2()).sum();
            total += if ideal > 0.0 { dcg / ideal } else { 0.0 };
        }
        total / (starts.len() - 1) as f32
    }

    #[test]
    fn learns_to_lift_the_relevant_rows_above_the_given_order() {
        let (x, y, starts) = queries(40);
        let forest = train(&x, 2, &y, &starts, &[], &params(20)).unwrap();
        forest.validate().unwrap();
        let given: Vec<f32> = vec![0.0; y.len()]; // ties: the given order
        let learned: Vec<f32> = x.chunks(2).map(|row| forest.predict(row)).collect();
        assert!(ndcg_at(&given, &y, &starts, 3) < 0.8);
        assert!(ndcg_at(&learned, &y, &starts, 3) > 0.99);
        assert!(forest.feature.contains(&1), "splits on the informative feature");
    }

    #[test]
    fn a_linear_start_is_kept_where_the_trees_have_nothing_to_add() {
        // Feature 0 already orders every query right: with a base on it, no tree splits.
        let x: Vec<f32> = (0..20).flat_map(|q| [[5.0 + q as f32, 0.0], [1.0, 0.0], [0.5, 0.0]]).flatten().collect();
        let y: Vec<f32> = (0..20).flat_map(|_| [1.0, 0.0, 0.0]).collect();
        let starts: Vec<usize> = (0..=20).map(|q| q * 3).collect();
        let forest = train(&x, 2, &y, &starts, &[1.0, 0.0], &params(5)).unwrap();
        assert!(forest.predict(&[5.0, 0.0]) > forest.predict(&[1.0, 0.0]));
        assert!((forest.predict(&[3.0, 0.0]) - forest.predict(&[2.0, 0.0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn training_is_deterministic() {
        let (x, y, starts) = queries(30);
        assert_eq!(
            train(&x, 2, &y, &starts, &[], &params(5)).unwrap(),
            train(&x, 2, &y, &starts, &[], &params(5)).unwrap()
        );
    }

    #[test]
    fn queries_without_a_relevant_row_teach_nothing() {
        let x = vec![0.1, 0.2, 0.3, 0.4];
        let forest = train(&x, 1, &[0.0; 4], &[0, 4], &[], &params(3)).unwrap();
        assert!(forest.value.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn nan_goes_right_in_training_and_prediction_alike() {
        // Per query: a relevant NaN row, an irrelevant 0.0 and a relevant 1.0. Were NaN binned
        // left in training, it would share the irrelevant row's leaf.
        let x: Vec<f32> = (0..4).flat_map(|_| [f32::NAN, 0.0, 1.0]).collect();
        let y: Vec<f32> = (0..4).flat_map(|_| [1.0, 0.0, 1.0]).collect();
        let mut p = params(3);
        p.min_leaf = 1;
        let forest = train(&x, 1, &y, &[0, 3, 6, 9, 12], &[], &p).unwrap();
        assert!(forest.predict(&[f32::NAN]) > forest.predict(&[0.0]));
        assert_eq!(forest.predict(&[f32::NAN]), forest.predict(&[1.0]));
    }

    #[test]
    fn malformed_input_and_forests_are_refused() {
        let p = params(1);
        assert!(train(&[0.0; 3], 2, &[0.0, 1.0], &[0, 2], &[], &p).is_err());
        assert!(train(&[0.0; 4], 2, &[0.0, 1.0], &[0, 1], &[], &p).is_err());
        assert!(train(&[0.0; 4], 2, &[0.0, f32::NAN], &[0, 2], &[], &p).is_err());
        assert!(train(&[0.0; 4], 2, &[0.0, 1.0], &[0, 2], &[1.0], &p).is_err(), "a base of the wrong length");
        let cyclic = Forest {
            n_features: 1,
            base: vec![],
            feature: vec![0, -1],
            threshold: vec![0.0, 0.0],
            left: vec![0, -1],
            right: vec![1, -1],
            value: vec![0.0, 1.0],
            roots: vec![0],
        };
        assert!(cyclic.validate().is_err());
        let wrong_feature = Forest { feature: vec![3, -1], left: vec![1, -1], ..cyclic.clone() };
        assert!(wrong_feature.validate().is_err());
    }
}
