//! The one place that releases the GIL.
//!
//! Every long-running core call goes through `without_gil`: inputs have already been copied or
//! borrowed read-only by the wrapper, the closure runs pure Rust with the GIL released, and its
//! `CoreResult` is converted to a Python exception once, here.
use pyo3::prelude::*;

use crate::errors::CoreResult;

pub fn without_gil<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> CoreResult<T> + Send,
    T: Send,
{
    py.detach(work).map_err(PyErr::from)
}
