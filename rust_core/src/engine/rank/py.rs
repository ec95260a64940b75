//! Python bindings: `omnix_recs._core.RankTables` and `RANK_SIGNALS`.
use numpy::ndarray::{Dimension, Ix2};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rayon::prelude::*;

use super::{History, ItemTables, Neighbours, Request, FEATURES, N_FEATURES, N_SIGNALS, REASONS_PER_ITEM, SIGNALS};
use crate::engine::rerank::py::Reranker;
use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;

fn slice<'a, T: Element, D: Dimension>(array: &'a PyReadonlyArray<'_, T, D>, name: &str) -> CoreResult<&'a [T]> {
    array.as_slice().map_err(|_| CoreErrorKind::InvalidInput(format!("{name} must be a C-contiguous array")))
}

/// `slice` of an optional argument; empty when it was not given.
fn optional_slice<'a, T: Element>(array: &'a Option<PyReadonlyArray1<'_, T>>, name: &str) -> CoreResult<&'a [T]> {
    array.as_ref().map_or(Ok(&[]), |array| slice(array, name))
}

/// The shopper's history, as `rank` and `candidate_signals` take it.
fn history<'a>(
    items: &'a PyReadonlyArray1<'_, i32>,
    days_since_last: &'a PyReadonlyArray1<'_, f32>,
    mean_gap_days: &'a PyReadonlyArray1<'_, f32>,
    orders: &'a PyReadonlyArray1<'_, f32>,
    habit: &'a PyReadonlyArray1<'_, f32>,
    days_to_next_trip: f32,
) -> CoreResult<History<'a>> {
    Ok(History {
        items: slice(items, "history_items")?,
        days_since_last: slice(days_since_last, "days_since_last")?,
        mean_gap_days: slice(mean_gap_days, "mean_gap_days")?,
        orders: slice(orders, "orders")?,
        habit: slice(habit, "habit")?,
        days_to_next_trip,
    })
}

/// The active model's item-side tables, held by reference (no copy: the arrays are usually
/// memory-mapped from the artifact) and checked against each other once, at construction.
#[pyclass(frozen, module = "omnix_recs._core", name = "RankTables")]
pub struct RankTables {
    cooc_idx: Py<PyArray2<i32>>,
    cooc_sim: Py<PyArray2<f32>>,
    fbt_idx: Py<PyArray2<i32>>,
    fbt_score: Py<PyArray2<f32>>,
    content_idx: Py<PyArray2<i32>>,
    content_sim: Py<PyArray2<f32>>,
    popularity: Py<PyArray1<f32>>,
    trending: Py<PyArray1<f32>>,
    /// The model's `seasonal_lift` ([n_items, weeks]) copied week by week (`ItemTables`).
    seasonal_by_week: Vec<f32>,
    weeks: usize,
    population_cycle_days: Py<PyArray1<f32>>,
    repurchase_rate: Py<PyArray1<f32>>,
    taste_factors: Py<PyArray2<f32>>,
    #[pyo3(get)]
    n_items: usize,
}

/// Borrows of every table for the duration of one call.
struct Borrowed<'py> {
    cooc_idx: PyReadonlyArray<'py, i32, Ix2>,
    cooc_sim: PyReadonlyArray<'py, f32, Ix2>,
    fbt_idx: PyReadonlyArray<'py, i32, Ix2>,
    fbt_score: PyReadonlyArray<'py, f32, Ix2>,
    content_idx: PyReadonlyArray<'py, i32, Ix2>,
    content_sim: PyReadonlyArray<'py, f32, Ix2>,
    popularity: PyReadonlyArray1<'py, f32>,
    trending: PyReadonlyArray1<'py, f32>,
    population_cycle_days: PyReadonlyArray1<'py, f32>,
    repurchase_rate: PyReadonlyArray1<'py, f32>,
    taste_factors: PyReadonlyArray<'py, f32, Ix2>,
}

impl<'py> Borrowed<'py> {
    fn tables<'s>(&'s self, n_items: usize, seasonal_by_week: &'s [f32], weeks: usize) -> CoreResult<ItemTables<'s>> {
        Ok(ItemTables {
            n_items,
            cooc: Neighbours {
                idx: slice(&self.cooc_idx, "cooc_idx")?,
                score: slice(&self.cooc_sim, "cooc_sim")?,
                k: self.cooc_idx.shape()[1],
            },
            fbt: Neighbours {
                idx: slice(&self.fbt_idx, "fbt_idx")?,
                score: slice(&self.fbt_score, "fbt_score")?,
                k: self.fbt_idx.shape()[1],
            },
            content: Neighbours {
                idx: slice(&self.content_idx, "content_idx")?,
                score: slice(&self.content_sim, "content_sim")?,
                k: self.content_idx.shape()[1],
            },
            popularity: slice(&self.popularity, "popularity")?,
            trending: slice(&self.trending, "trending")?,
            seasonal_lift: seasonal_by_week,
            weeks,
            population_cycle_days: slice(&self.population_cycle_days, "population_cycle_days")?,
            repurchase_rate: slice(&self.repurchase_rate, "repurchase_rate")?,
            taste_factors: slice(&self.taste_factors, "taste_factors")?,
            taste_dims: self.taste_factors.shape()[1],
        })
    }
}

impl RankTables {
    fn borrow<'py>(&self, py: Python<'py>) -> Borrowed<'py> {
        Borrowed {
            cooc_idx: self.cooc_idx.bind(py).readonly(),
            cooc_sim: self.cooc_sim.bind(py).readonly(),
            fbt_idx: self.fbt_idx.bind(py).readonly(),
            fbt_score: self.fbt_score.bind(py).readonly(),
            content_idx: self.content_idx.bind(py).readonly(),
            content_sim: self.content_sim.bind(py).readonly(),
            popularity: self.popularity.bind(py).readonly(),
            trending: self.trending.bind(py).readonly(),
            population_cycle_days: self.population_cycle_days.bind(py).readonly(),
            repurchase_rate: self.repurchase_rate.bind(py).readonly(),
            taste_factors: self.taste_factors.bind(py).readonly(),
        }
    }
}

#[pymethods]
impl RankTables {
    /// Wrap a model's tables (keyword-only, named as in the artifact). Raises
    /// InvalidInputError when shapes disagree or a neighbour index is out of range.
    #[new]
    #[pyo3(signature = (*, cooc_idx, cooc_sim, fbt_idx, fbt_score, content_idx, content_sim,
                        popularity, trending, seasonal_lift, population_cycle_days, repurchase_rate,
                        taste_factors))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        cooc_idx: Bound<'_, PyArray2<i32>>,
        cooc_sim: Bound<'_, PyArray2<f32>>,
        fbt_idx: Bound<'_, PyArray2<i32>>,
        fbt_score: Bound<'_, PyArray2<f32>>,
        content_idx: Bound<'_, PyArray2<i32>>,
        content_sim: Bound<'_, PyArray2<f32>>,
        popularity: Bound<'_, PyArray1<f32>>,
        trending: Bound<'_, PyArray1<f32>>,
        seasonal_lift: Bound<'_, PyArray2<f32>>,
        population_cycle_days: Bound<'_, PyArray1<f32>>,
        repurchase_rate: Bound<'_, PyArray1<f32>>,
        taste_factors: Bound<'_, PyArray2<f32>>,
    ) -> PyResult<Self> {
        let n_items = popularity.len();
        let (seasonal_by_week, weeks) = {
            let lift = seasonal_lift.readonly();
            let weeks = lift.shape()[1];
            let rows = slice(&lift, "seasonal_lift")?;
            if lift.shape()[0] != n_items || weeks == 0 {
                return Err(CoreErrorKind::InvalidInput(format!("seasonal_lift must be [{n_items}, weeks > 0]")).into());
            }
            let by_week: Vec<f32> = (0..weeks).flat_map(|w| rows.iter().skip(w).step_by(weeks).copied()).collect();
            (by_week, weeks)
        };
        let held = RankTables {
            cooc_idx: cooc_idx.unbind(),
            cooc_sim: cooc_sim.unbind(),
            fbt_idx: fbt_idx.unbind(),
            fbt_score: fbt_score.unbind(),
            content_idx: content_idx.unbind(),
            content_sim: content_sim.unbind(),
            popularity: popularity.unbind(),
            trending: trending.unbind(),
            seasonal_by_week,
            weeks,
            population_cycle_days: population_cycle_days.unbind(),
            repurchase_rate: repurchase_rate.unbind(),
            taste_factors: taste_factors.unbind(),
            n_items,
        };
        let borrowed = held.borrow(py);
        let tables = borrowed.tables(n_items, &held.seasonal_by_week, held.weeks)?;
        without_gil(py, || super::validate_tables(&tables))?;
        drop(borrowed);
        Ok(held)
    }

    /// Rank products for one request; see `rust_core/src/engine/rank.rs` for the blend.
    /// Returns (items int32[k'], scores float32[k'], confidence float32[k'],
    /// reasons int8[k', 2], anchors int32[k', 2]) with k' <= k, best first.
    /// `days_to_next_trip` and the "shoppers like you" row (`like_you_items` int32,
    /// `like_you_scores` float32) are optional: without them those signals are as of now
    /// and empty. `replaced_weight` (default 1: no effect) scales the history signals of
    /// products the shopper has replaced by another of the same aisle;
    /// `popularity_discount` (default 0: none) multiplies each score by
    /// `1 - popularity_discount * popularity`. `reranker` (a `Reranker` over `RANK_FEATURES`)
    /// orders the blend's head; `with_features` appends each listed item's features
    /// (float32 [k', len(RANK_FEATURES)]) as a sixth element.
    #[pyo3(signature = (*, history_items, days_since_last, mean_gap_days, orders, habit, basket,
                        allowed, category_ids, brand_ids, extra_candidates, weights, week, k,
                        exclude_history, per_category_cap, neighbours_per_item,
                        days_to_next_trip=0.0, like_you_items=None, like_you_scores=None,
                        replaced_weight=1.0, popularity_discount=0.0, reranker=None,
                        with_features=false))]
    #[allow(clippy::too_many_arguments)]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        history_items: PyReadonlyArray1<'py, i32>,
        days_since_last: PyReadonlyArray1<'py, f32>,
        mean_gap_days: PyReadonlyArray1<'py, f32>,
        orders: PyReadonlyArray1<'py, f32>,
        habit: PyReadonlyArray1<'py, f32>,
        basket: PyReadonlyArray1<'py, i32>,
        allowed: PyReadonlyArray1<'py, bool>,
        category_ids: PyReadonlyArray1<'py, i32>,
        brand_ids: PyReadonlyArray1<'py, i32>,
        extra_candidates: PyReadonlyArray1<'py, i32>,
        weights: PyReadonlyArray1<'py, f32>,
        week: usize,
        k: usize,
        exclude_history: bool,
        per_category_cap: usize,
        neighbours_per_item: usize,
        days_to_next_trip: f32,
        like_you_items: Option<PyReadonlyArray1<'py, i32>>,
        like_you_scores: Option<PyReadonlyArray1<'py, f32>>,
        replaced_weight: f32,
        popularity_discount: f32,
        reranker: Option<PyRef<'py, Reranker>>,
        with_features: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let borrowed = self.borrow(py);
        let like_you_items = optional_slice(&like_you_items, "like_you_items")?;
        let like_you_scores = optional_slice(&like_you_scores, "like_you_scores")?;
        let tables = borrowed.tables(self.n_items, &self.seasonal_by_week, self.weeks)?;
        let request = Request {
            history: history(&history_items, &days_since_last, &mean_gap_days, &orders, &habit, days_to_next_trip)?,
            basket: slice(&basket, "basket")?,
            allowed: slice(&allowed, "allowed")?,
            category: slice(&category_ids, "category_ids")?,
            brand: slice(&brand_ids, "brand_ids")?,
            extra_candidates: slice(&extra_candidates, "extra_candidates")?,
            like_you_items,
            like_you_scores,
            weights: slice(&weights, "weights")?,
            week,
            k,
            exclude_history,
            per_category_cap,
            neighbours_per_item,
            replaced_weight,
            popularity_discount,
            reranker: reranker.as_ref().map(|r| &r.forest),
            with_features,
        };
        let ranked = without_gil(py, || super::rank(&tables, &request))?;
        let n = ranked.items.len();
        let mut out: Vec<Bound<'py, PyAny>> = vec![
            ranked.items.into_pyarray(py).into_any(),
            ranked.scores.into_pyarray(py).into_any(),
            ranked.confidence.into_pyarray(py).into_any(),
            ranked.reasons.into_pyarray(py).reshape([n, REASONS_PER_ITEM])?.into_any(),
            ranked.anchors.into_pyarray(py).reshape([n, REASONS_PER_ITEM])?.into_any(),
        ];
        if with_features {
            out.push(ranked.features.into_pyarray(py).reshape([n, N_FEATURES])?.into_any());
        }
        PyTuple::new(py, out)
    }

    /// The candidates `rank` would score for a request and their signals, for ranking them
    /// under many weight vectors with `rank_candidates` (offline tuning). The arguments are
    /// `rank`'s, less what `rank_candidates` takes (weights, k, per_category_cap) and the
    /// re-ranker, which it does not apply.
    #[pyo3(signature = (*, history_items, days_since_last, mean_gap_days, orders, habit, basket,
                        allowed, category_ids, brand_ids, extra_candidates, week,
                        exclude_history, neighbours_per_item,
                        days_to_next_trip=0.0, like_you_items=None, like_you_scores=None,
                        replaced_weight=1.0, popularity_discount=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn candidate_signals<'py>(
        &self,
        py: Python<'py>,
        history_items: PyReadonlyArray1<'py, i32>,
        days_since_last: PyReadonlyArray1<'py, f32>,
        mean_gap_days: PyReadonlyArray1<'py, f32>,
        orders: PyReadonlyArray1<'py, f32>,
        habit: PyReadonlyArray1<'py, f32>,
        basket: PyReadonlyArray1<'py, i32>,
        allowed: PyReadonlyArray1<'py, bool>,
        category_ids: PyReadonlyArray1<'py, i32>,
        brand_ids: PyReadonlyArray1<'py, i32>,
        extra_candidates: PyReadonlyArray1<'py, i32>,
        week: usize,
        exclude_history: bool,
        neighbours_per_item: usize,
        days_to_next_trip: f32,
        like_you_items: Option<PyReadonlyArray1<'py, i32>>,
        like_you_scores: Option<PyReadonlyArray1<'py, f32>>,
        replaced_weight: f32,
        popularity_discount: f32,
    ) -> PyResult<PyCandidateSignals> {
        let borrowed = self.borrow(py);
        let like_you_items = optional_slice(&like_you_items, "like_you_items")?;
        let like_you_scores = optional_slice(&like_you_scores, "like_you_scores")?;
        let tables = borrowed.tables(self.n_items, &self.seasonal_by_week, self.weeks)?;
        let no_weights = [0.0f32; N_SIGNALS];
        let request = Request {
            history: history(&history_items, &days_since_last, &mean_gap_days, &orders, &habit, days_to_next_trip)?,
            basket: slice(&basket, "basket")?,
            allowed: slice(&allowed, "allowed")?,
            category: slice(&category_ids, "category_ids")?,
            brand: slice(&brand_ids, "brand_ids")?,
            extra_candidates: slice(&extra_candidates, "extra_candidates")?,
            like_you_items,
            like_you_scores,
            weights: &no_weights,
            week,
            k: 0,
            exclude_history,
            per_category_cap: 0,
            neighbours_per_item,
            replaced_weight,
            popularity_discount,
            reranker: None,
            with_features: false,
        };
        let inner = without_gil(py, || super::candidate_signals(&tables, &request))?;
        Ok(PyCandidateSignals { inner })
    }
}

/// A request's candidates and their signals (`RankTables.candidate_signals`), for ranking
/// under many weight vectors (`rank_candidates`). Opaque; `len()` is the candidate count.
#[pyclass(frozen, module = "omnix_recs._core", name = "CandidateSignals")]
pub struct PyCandidateSignals {
    inner: super::CandidateSignals,
}

#[pymethods]
impl PyCandidateSignals {
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// The items `RankTables.rank` lists for each request the `candidates` were taken from,
/// under `weights`, `k` and `per_category_cap` instead (and no re-ranker): one int32 array
/// per request, best first. In parallel, with the GIL released.
#[pyfunction]
#[pyo3(signature = (candidates, *, weights, k, per_category_cap))]
pub fn rank_candidates<'py>(
    py: Python<'py>,
    candidates: Vec<Py<PyCandidateSignals>>,
    weights: PyReadonlyArray1<'py, f32>,
    k: usize,
    per_category_cap: usize,
) -> PyResult<Vec<Bound<'py, PyArray1<i32>>>> {
    let weights = slice(&weights, "weights")?.to_vec();
    let lists = without_gil(py, move || {
        candidates
            .par_iter()
            .map(|c| super::rank_candidates(&c.get().inner, &weights, k, per_category_cap))
            .collect::<CoreResult<Vec<Vec<i32>>>>()
    })?;
    Ok(lists.into_iter().map(|items| items.into_pyarray(py)).collect())
}

/// Adds `RankTables`, `CandidateSignals`, `rank_candidates` and `RANK_SIGNALS` (signal names
/// in weight / reason-code order).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    debug_assert_eq!(SIGNALS.len(), N_SIGNALS);
    m.add_class::<RankTables>()?;
    m.add_class::<PyCandidateSignals>()?;
    m.add_function(wrap_pyfunction!(rank_candidates, m)?)?;
    m.add("RANK_SIGNALS", PyTuple::new(m.py(), SIGNALS)?)?;
    m.add("RANK_FEATURES", PyTuple::new(m.py(), FEATURES)?)?;
    Ok(())
}
