//! `Money` and `RichLink`: the two structured metadata values Intercom knows.
//! A value of the wrong type raises the same typed error as `track()` does
//! (`InvalidTypeError`, code `unsupported_type`, `field` the argument's name);
//! the core checks the values themselves when the event is tracked.

use pyo3::prelude::*;

use crate::convert;

/// A monetary amount for event metadata: an integer number of cents and an
/// ISO 4217 currency code. Sent as `{"amount": ..., "currency": ...}`.
/// The core validates it when the event is tracked.
#[pyclass(module = "trackcore", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Money {
    /// The amount in cents (a non-negative integer).
    #[pyo3(get)]
    pub amount_cents: i64,
    /// The 3-letter ISO 4217 currency code, e.g. `"eur"`.
    #[pyo3(get)]
    pub currency: String,
}

#[pymethods]
impl Money {
    #[new]
    fn new(py: Python<'_>, amount_cents: &Bound<'_, PyAny>, currency: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Money {
            amount_cents: convert::cents(py, "amount_cents", amount_cents)?,
            currency: convert::text(py, "currency", currency)?,
        })
    }
    fn __repr__(&self) -> String {
        format!("Money({}, {:?})", self.amount_cents, self.currency)
    }
}

/// A rich link for event metadata: an http(s) URL and the text shown for it.
/// Sent as `{"url": ..., "value": ...}`. The core validates it when tracked.
#[pyclass(module = "trackcore", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RichLink {
    /// The http(s) URL.
    #[pyo3(get)]
    pub url: String,
    /// The text shown for the link.
    #[pyo3(get)]
    pub value: String,
}

#[pymethods]
impl RichLink {
    #[new]
    fn new(py: Python<'_>, url: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(RichLink { url: convert::text(py, "url", url)?, value: convert::text(py, "value", value)? })
    }
    fn __repr__(&self) -> String {
        format!("RichLink({:?}, {:?})", self.url, self.value)
    }
}
