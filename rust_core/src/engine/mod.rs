//! (engine) — see lib.rs for how modules are exposed to Python.
use pyo3::prelude::*;

pub mod rank;

/// Adds this module's functions to `omnix_recs._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    rank::py::register(m)?;
    Ok(())
}
