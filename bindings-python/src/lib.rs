//! `trackcore._native`: the Python face of the trackcore core.
//!
//! This crate only converts values and maps errors; validation, queueing,
//! delivery, retries and every default live in the `trackcore` core crate.
//! The public Python package (`python/trackcore`) re-exports these classes.

use pyo3::prelude::*;

mod convert;
mod errors;
mod lifecycle;
mod tracker;
mod types;

/// The native module behind the `trackcore` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The core's log lines (one per change in delivery's state) go to
    // Python's `logging`, under the `trackcore` logger. A host that already
    // installed a Rust logger keeps it.
    let _ = pyo3_log::try_init();
    m.add_class::<tracker::PyTracker>()?;
    m.add_class::<types::Money>()?;
    m.add_class::<types::RichLink>()?;
    m.add_function(wrap_pyfunction!(options, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::_at_exit, m)?)?;
    m.add("ERROR_CODES", trackcore::ERROR_CODES.to_vec())?;
    m.add("CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The core's documented options as `(name, kind, default, doc)` tuples, in
/// the core's order. Defaults are rendered as text by the core.
#[pyfunction]
fn options() -> Vec<(&'static str, &'static str, String, &'static str)> {
    trackcore::Config::describe().into_iter().map(|o| (o.name, o.kind, o.default, o.doc)).collect()
}
