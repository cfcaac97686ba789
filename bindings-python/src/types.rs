//! `Money` and `RichLink`: the two structured metadata values Intercom knows.

use pyo3::prelude::*;

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
    fn new(amount_cents: i64, currency: String) -> Self {
        Money { amount_cents, currency }
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
    fn new(url: String, value: String) -> Self {
        RichLink { url, value }
    }
    fn __repr__(&self) -> String {
        format!("RichLink({:?}, {:?})", self.url, self.value)
    }
}
