//! omnix_core: the numeric core of the OMNIX recommendation service.
//!
//! Pure Rust lives in the domain modules (functions over slices); each module has a `py`
//! submodule or `register` function with thin `#[pyfunction]` wrappers. Python sees all of it as
//! `omnix_recs._core` (see `python/omnix_recs/_core.pyi`).
use pyo3::prelude::*;

pub mod engine;
pub mod errors;
pub mod gil;
pub mod insights;
pub mod synth;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CoreError", py.get_type::<errors::CoreError>())?;
    m.add("InvalidInputError", py.get_type::<errors::InvalidInputError>())?;
    m.add("CoreIoError", py.get_type::<errors::CoreIoError>())?;
    synth::register(m)?;
    engine::register(m)?;
    insights::register(m)?;
    gil::register(m)?;
    Ok(())
}
