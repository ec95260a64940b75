//! engine: the numbers behind recommendations. See lib.rs for how modules are exposed to Python.
//!
//! Build side: `sparse` (CSR matrices), `best` (the best k of a row's candidates), `cooccurrence` (item–item neighbours: co-purchase and
//! content cosine), `fbt` (basket complements by lift), `taste` (low-rank item factors),
//! `shoppers` (each customer's nearest fellow shoppers' products).
//! Serving side: `history` (a shopper's order lines summarised per product), `rank`, and
//! `rerank` (learned re-ranking trees: trained at build time, evaluated per request).
use pyo3::prelude::*;

pub mod best;
pub mod cooccurrence;
pub mod fbt;
pub mod history;
pub mod rank;
pub mod rerank;
pub mod shoppers;
pub mod sparse;
pub mod taste;

/// Adds this module's functions to `omnix_recs._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    cooccurrence::register(m)?;
    fbt::register(m)?;
    history::register(m)?;
    rank::py::register(m)?;
    rerank::py::register(m)?;
    shoppers::register(m)?;
    sparse::register(m)?;
    taste::register(m)?;
    Ok(())
}
