//! Mapping the core's [`trackcore::Error`] to the Python exception classes of
//! `trackcore._errors` (defined in Python so they can inherit from both
//! `TrackError` and `ValueError`/`TypeError`/`RuntimeError`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use trackcore::{Error, ErrorKind};

static INVALID_EVENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DELIVERY: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Which Python class an error of the core becomes.
#[derive(Clone, Copy)]
pub enum Kind {
    InvalidEvent,
    InvalidType,
    Closed,
    Config,
    Delivery,
}

impl Kind {
    pub fn of(e: &Error) -> Kind {
        match e.kind() {
            ErrorKind::Closed => Kind::Closed,
            ErrorKind::Config => Kind::Config,
            ErrorKind::InvalidType => Kind::InvalidType,
            ErrorKind::InvalidEvent => Kind::InvalidEvent,
            ErrorKind::Delivery => Kind::Delivery,
        }
    }

    fn class<'py>(self, py: Python<'py>) -> PyResult<&'py Bound<'py, PyType>> {
        let (cell, name) = match self {
            Kind::InvalidEvent => (&INVALID_EVENT, "InvalidEventError"),
            Kind::InvalidType => (&INVALID_TYPE, "InvalidTypeError"),
            Kind::Closed => (&CLOSED, "TrackerClosedError"),
            Kind::Config => (&CONFIG, "ConfigError"),
            Kind::Delivery => (&DELIVERY, "DeliveryError"),
        };
        cell.import(py, "trackcore._errors", name)
    }
}

/// Build an exception instance: `cls(message, code, field, status)`.
pub fn exception<'py>(
    py: Python<'py>,
    kind: Kind,
    message: &str,
    code: &str,
    field: Option<&str>,
    status: Option<u16>,
) -> PyResult<Bound<'py, PyAny>> {
    kind.class(py)?.call1((message, code, field, status))
}

/// The Python exception instance for a core error.
pub fn instance<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    exception(py, Kind::of(e), &e.to_string(), e.code(), e.field().as_deref(), e.status())
}

/// The `PyErr` to raise for a core error.
pub fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    match instance(py, e) {
        Ok(obj) => PyErr::from_value(obj),
        Err(err) => err,
    }
}

/// An error the binding raises itself while converting a Python value
/// (for inputs the core never sees, such as a naive `datetime`).
pub fn conversion_error(py: Python<'_>, kind: Kind, message: &str, code: &str, field: &str) -> PyErr {
    match exception(py, kind, message, code, Some(field), None) {
        Ok(obj) => PyErr::from_value(obj),
        Err(err) => err,
    }
}
