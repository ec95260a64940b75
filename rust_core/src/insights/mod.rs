//! (insights) — see lib.rs for how modules are exposed to Python.
use pyo3::prelude::*;

/// Adds this module's functions to `omnix_recs._core`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
