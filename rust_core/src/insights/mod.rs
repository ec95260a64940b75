//! Consumption insights: robust purchase cycles per customer × product, population cycles, and
//! the survival outlook of what happens next (the next trip, the next purchase of a product).
//!
//! Pure Rust in `robust`, `cycles`, `population` and `survival`; this file holds the thin `#[pyfunction]`
//! wrappers (copy-free read-only views in, fresh numpy arrays out, GIL released for the work).
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;

pub mod cycles;
pub mod population;
pub mod robust;
pub mod survival;

use cycles::{estimate_cycles, CycleParams};
use survival::{GapSample, OutlookParams};

fn contiguous<'a, T: numpy::Element>(array: &'a PyReadonlyArray1<'_, T>, name: &str) -> CoreResult<&'a [T]> {
    array.as_slice().map_err(|_| CoreErrorKind::InvalidInput(format!("{name} must be a contiguous 1-d array")))
}

/// Robust consumption cycles of many groups (customer × product, or a customer's orders).
///
/// `group_codes[i]` (int64, in `0..len(prior_cycle_days)`) names the group of the purchase made
/// on `days[i]` (float64 days since any epoch; rows in any order). `prior_cycle_days[g]` is the
/// population cycle group g is shrunk towards (NaN = none). Returns a dict of float64 arrays
/// (`cycle_days`, `own_cycle_days`, `confidence`, `dispersion`, `first_day`, `last_day`,
/// `recent_cycle_days`) and uint32 `trips`, one entry per group.
#[pyfunction]
#[pyo3(signature = (group_codes, days, prior_cycle_days, *, same_trip_days=0.5, prior_strength=2.0, huber_k=1.345, prior_reliability=0.3))]
#[allow(clippy::too_many_arguments)]
fn consumption_cycles<'py>(
    py: Python<'py>,
    group_codes: PyReadonlyArray1<'py, i64>,
    days: PyReadonlyArray1<'py, f64>,
    prior_cycle_days: PyReadonlyArray1<'py, f64>,
    same_trip_days: f64,
    prior_strength: f64,
    huber_k: f64,
    prior_reliability: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let params = CycleParams { same_trip_days, prior_strength, huber_k, prior_reliability };
    let codes = contiguous(&group_codes, "group_codes")?;
    let days = contiguous(&days, "days")?;
    let priors = contiguous(&prior_cycle_days, "prior_cycle_days")?;
    let columns = without_gil(py, || estimate_cycles(codes, days, priors, &params))?;
    let out = PyDict::new(py);
    out.set_item("cycle_days", columns.cycle_days.into_pyarray(py))?;
    out.set_item("own_cycle_days", columns.own_cycle_days.into_pyarray(py))?;
    out.set_item("confidence", columns.confidence.into_pyarray(py))?;
    out.set_item("trips", columns.trips.into_pyarray(py))?;
    out.set_item("dispersion", columns.dispersion.into_pyarray(py))?;
    out.set_item("first_day", columns.first_day.into_pyarray(py))?;
    out.set_item("last_day", columns.last_day.into_pyarray(py))?;
    out.set_item("recent_cycle_days", columns.recent_cycle_days.into_pyarray(py))?;
    Ok(out)
}

/// Population cycle of every item: the median over repeat buyers of their median gap.
///
/// Purchase i is `customer_codes[i]` (any int64), `item_codes[i]` (in `0..n_items`) on
/// `days[i]`. Returns a dict: `cycle_days` float64 (NaN = nobody bought twice), `buyers` and
/// `repeat_buyers` uint32, each of length `n_items`, and `prior_strength` (float): the
/// empirical-Bayes k for shrinking a buyer's cycle towards these (NaN = too little data); and
/// `sample_gaps` / `sample_scales` float64: at most `max_gap_sample` gaps of buyers with two gaps
/// or more, spread evenly over items and buyers, each with its buyer's median gap.
#[pyfunction]
#[pyo3(signature = (customer_codes, item_codes, days, n_items, *, same_trip_days=0.5, max_gap_sample=20_000))]
#[allow(clippy::too_many_arguments)]
fn population_cycles<'py>(
    py: Python<'py>,
    customer_codes: PyReadonlyArray1<'py, i64>,
    item_codes: PyReadonlyArray1<'py, i64>,
    days: PyReadonlyArray1<'py, f64>,
    n_items: usize,
    same_trip_days: f64,
    max_gap_sample: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let customers = contiguous(&customer_codes, "customer_codes")?;
    let items = contiguous(&item_codes, "item_codes")?;
    let days = contiguous(&days, "days")?;
    let result = without_gil(py, || {
        population::population_cycles(customers, items, days, n_items, same_trip_days, max_gap_sample)
    })?;
    let out = PyDict::new(py);
    out.set_item("cycle_days", result.cycle_days.into_pyarray(py))?;
    out.set_item("buyers", result.buyers.into_pyarray(py))?;
    out.set_item("repeat_buyers", result.repeat_buyers.into_pyarray(py))?;
    out.set_item("prior_strength", result.prior_strength)?;
    out.set_item("sample_gaps", result.sample_gaps.into_pyarray(py))?;
    out.set_item("sample_scales", result.sample_scales.into_pyarray(py))?;
    Ok(out)
}

/// The survival outlook of many groups as of `as_of`: how long until each one's next occurrence.
///
/// `group_codes[i]` (int64, in `0..len(scales)`) names the group of the purchase on `days[i]`
/// (float64 days; rows in any order; days at or after `as_of` are ignored). `scales[g]` is group
/// g's usual gap (NaN = unknown). `population_gaps[j]` and `population_scales[j]` are a
/// population sample of gaps and their takers' usual gaps (`population_cycles`' sample).
/// Returns a dict of float64 arrays `elapsed_days`, `median_days` (inf = overdue beyond every
/// gap seen; NaN = no trips), `horizon_probability`, `horizon_median_days`, and uint32 `trips`.
#[pyfunction]
#[pyo3(signature = (
    group_codes, days, scales, as_of, population_gaps, population_scales, *,
    population_weight=10.0, scale_exponent=1.0, recency_half_life=20.0, horizon_days=28.0, same_trip_days=0.5,
))]
#[allow(clippy::too_many_arguments)]
fn next_occurrences<'py>(
    py: Python<'py>,
    group_codes: PyReadonlyArray1<'py, i64>,
    days: PyReadonlyArray1<'py, f64>,
    scales: PyReadonlyArray1<'py, f64>,
    as_of: f64,
    population_gaps: PyReadonlyArray1<'py, f64>,
    population_scales: PyReadonlyArray1<'py, f64>,
    population_weight: f64,
    scale_exponent: f64,
    recency_half_life: f64,
    horizon_days: f64,
    same_trip_days: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let params = OutlookParams { population_weight, scale_exponent, recency_half_life, horizon_days, same_trip_days };
    let codes = contiguous(&group_codes, "group_codes")?;
    let days = contiguous(&days, "days")?;
    let scales = contiguous(&scales, "scales")?;
    let gaps = contiguous(&population_gaps, "population_gaps")?;
    let gap_scales = contiguous(&population_scales, "population_scales")?;
    let columns = without_gil(py, || {
        let sample = GapSample::new(gaps, gap_scales)?;
        survival::outlooks(codes, days, scales, as_of, &sample, &params)
    })?;
    let out = PyDict::new(py);
    out.set_item("trips", columns.trips.into_pyarray(py))?;
    out.set_item("elapsed_days", columns.elapsed_days.into_pyarray(py))?;
    out.set_item("median_days", columns.median_days.into_pyarray(py))?;
    out.set_item("horizon_probability", columns.horizon_probability.into_pyarray(py))?;
    out.set_item("horizon_median_days", columns.horizon_median_days.into_pyarray(py))?;
    Ok(out)
}

/// Adds this module's functions to `omnix_recs._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(consumption_cycles, m)?)?;
    m.add_function(wrap_pyfunction!(population_cycles, m)?)?;
    m.add_function(wrap_pyfunction!(next_occurrences, m)?)?;
    Ok(())
}
