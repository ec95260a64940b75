//! One error type for the whole core, and its single conversion to Python exceptions.
//!
//! Rust code returns `CoreResult<T>`; the `#[pyfunction]` wrappers convert with `?`, so every
//! error reaches Python as a subclass of `omnix_recs._core.CoreError`, never a bare exception.
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(_core, CoreError, PyException, "Base class of every error raised by the Rust core.");
create_exception!(
    _core,
    InvalidInputError,
    CoreError,
    "An argument was malformed (wrong length, out of range, unsorted...)."
);
create_exception!(_core, CoreIoError, CoreError, "Reading or writing a file failed.");

#[derive(Debug, thiserror::Error)]
pub enum CoreErrorKind {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type CoreResult<T> = Result<T, CoreErrorKind>;

impl From<CoreErrorKind> for PyErr {
    fn from(err: CoreErrorKind) -> PyErr {
        let message = err.to_string();
        match err {
            CoreErrorKind::InvalidInput(_) => InvalidInputError::new_err(message),
            CoreErrorKind::Io(_) => CoreIoError::new_err(message),
        }
    }
}

/// Shorthand for `Err(CoreErrorKind::InvalidInput(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { Err($crate::errors::CoreErrorKind::InvalidInput(format!($($arg)*))) };
}
