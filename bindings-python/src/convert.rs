//! Python values → the core's [`Event`] and [`Value`]. Pure conversion: every
//! rule about what Intercom accepts is the core's, applied when it prepares
//! the event. Values the binding cannot express are handed to the core as
//! [`Value::Unsupported`] so its error order (name, identity, created_at,
//! metadata in key order) stays the same in every language.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyDate, PyDateAccess, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
    PyTzInfoAccess,
};
use trackcore::{OptionValue, Value};

use trackcore::Error;

use crate::errors::{conversion_error, to_py_err, Kind};
use crate::types::{Money, RichLink};

const NAIVE: &str = "naive datetime (give it a tzinfo, e.g. timezone.utc)";

/// A Python str as UTF-8; a lone surrogate is the core's `invalid_unicode`
/// for `field`, not a bare `UnicodeEncodeError`.
fn utf8(py: Python<'_>, field: &str, s: &Bound<'_, PyString>) -> PyResult<String> {
    match s.to_str() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(to_py_err(py, &Error::InvalidUnicode { field: field.to_string() })),
    }
}

/// The decimal digits of an int, by `int.__repr__` itself: an int subclass's
/// own `__str__`/`__repr__` (user code) is never called.
fn int_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(n) = v.extract::<i64>() {
        return Ok(n.to_string());
    }
    let py = v.py();
    py.get_type::<PyInt>().getattr(pyo3::intern!(py, "__repr__"))?.call1((v,))?.extract()
}

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `user_id` (str or int), `id`, `email` (str).
pub fn identifier(py: Python<'_>, field: &str, v: Option<&Bound<'_, PyAny>>, allow_int: bool) -> PyResult<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(s) = v.cast::<PyString>() {
        return utf8(py, field, s).map(Some);
    }
    if allow_int && v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        // The integer itself, even from an int subclass with its own __str__.
        return int_text(v).map(Some);
    }
    let what = if allow_int { "a str or an int" } else { "a str" };
    Err(conversion_error(
        py,
        Kind::InvalidType,
        &format!("{field}: must be {what}, got {}", type_name(v)),
        "unsupported_type",
        field,
    ))
}

/// `event_name`: a str.
pub fn event_name(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => utf8(py, "event_name", s),
        Err(_) => Err(conversion_error(
            py,
            Kind::InvalidType,
            &format!("event_name: must be a str, got {}", type_name(v)),
            "unsupported_type",
            "event_name",
        )),
    }
}

/// `created_at`: Unix seconds as an int, or an aware `datetime`.
pub fn created_at(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        return match v.extract::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(conversion_error(
                py,
                Kind::InvalidEvent,
                "created_at: integer does not fit in 64 bits; it must be Unix seconds (UTC)",
                "number_out_of_range",
                "created_at",
            )),
        };
    }
    if let Ok(dt) = v.cast::<PyDateTime>() {
        return match datetime_secs(dt)? {
            Some(s) => Ok(Some(s)),
            None => Err(conversion_error(
                py,
                Kind::InvalidType,
                "created_at: a naive datetime is ambiguous; give it a tzinfo (e.g. timezone.utc) or pass Unix seconds",
                "unsupported_type",
                "created_at",
            )),
        };
    }
    Err(conversion_error(
        py,
        Kind::InvalidType,
        &format!("created_at: must be Unix seconds as an int or an aware datetime, got {}", type_name(v)),
        "unsupported_type",
        "created_at",
    ))
}

/// A str argument (`Money.currency`, `RichLink.url`, ...), named `field` in the error.
pub fn text(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => utf8(py, field, s),
        Err(_) => Err(conversion_error(
            py,
            Kind::InvalidType,
            &format!("{field}: must be a str, got {}", type_name(v)),
            "unsupported_type",
            field,
        )),
    }
}

/// `Money.amount_cents`: an int (or any integer type with `__index__`), never
/// a float or a bool: a fraction of a cent has no meaning to Intercom.
pub fn cents(py: Python<'_>, field: &str, v: &Bound<'_, PyAny>) -> PyResult<i64> {
    if !v.is_instance_of::<PyBool>() {
        match v.extract::<i64>() {
            Ok(n) => return Ok(n),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) => {
                return Err(conversion_error(
                    py,
                    Kind::InvalidEvent,
                    &format!("{field}: integer does not fit in 64 bits"),
                    "number_out_of_range",
                    field,
                ))
            }
            Err(_) => {}
        }
    }
    Err(conversion_error(
        py,
        Kind::InvalidType,
        &format!("{field}: must be an int (a whole number of cents), got {}", type_name(v)),
        "unsupported_type",
        field,
    ))
}

/// `metadata`: a dict (or any mapping with `.items()`), kept in its order.
/// An exception raised by the caller's own code while it is read (a mapping's
/// `items()`, a value's `__eq__` or `timestamp()`) becomes a typed error
/// naming the key, like every other bad value.
pub fn metadata(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Value)>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if let Ok(d) = v.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            let k = key(py, &k)?;
            let val = value(&val, &k).map_err(|e| raised_by_user_code(py, &format!("metadata.{k}"), e))?;
            out.push((k, val));
        }
        return Ok(out);
    }
    let items = (|| -> PyResult<Option<Bound<'_, PyAny>>> {
        if !v.hasattr(pyo3::intern!(py, "items"))? {
            return Ok(None);
        }
        Ok(Some(v.call_method0(pyo3::intern!(py, "items"))?))
    })()
    .map_err(|e| raised_by_user_code(py, "metadata", e))?;
    if let Some(items) = items {
        let mut out = Vec::new();
        for item in items.try_iter().map_err(|e| raised_by_user_code(py, "metadata", e))? {
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                item.and_then(|i| i.extract()).map_err(|e| raised_by_user_code(py, "metadata", e))?;
            let k = key(py, &k)?;
            let val = value(&val, &k).map_err(|e| raised_by_user_code(py, &format!("metadata.{k}"), e))?;
            out.push((k, val));
        }
        return Ok(out);
    }
    Err(conversion_error(
        py,
        Kind::InvalidType,
        &format!("metadata: must be a dict, got {}", type_name(v)),
        "unsupported_type",
        "metadata",
    ))
}

/// `err` unchanged if it is already one of trackcore's errors, else a typed
/// `InvalidTypeError` for `field` saying what the caller's code raised.
fn raised_by_user_code(py: Python<'_>, field: &str, err: PyErr) -> PyErr {
    static TRACK_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let ours = TRACK_ERROR.import(py, "trackcore._errors", "TrackError").is_ok_and(|t| err.is_instance(py, t));
    if ours {
        return err;
    }
    let what = err.get_type(py).qualname().map(|s| s.to_string()).unwrap_or_else(|_| "an exception".into());
    conversion_error(
        py,
        Kind::InvalidType,
        &format!("{field}: reading the value raised {what}; pass plain str, number, bool, date, Money or RichLink values"),
        "unsupported_type",
        field,
    )
}

fn key(py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<String> {
    match k.cast::<PyString>() {
        Ok(s) => utf8(py, "metadata", s),
        Err(_) => Err(conversion_error(
            py,
            Kind::InvalidType,
            &format!("metadata: keys must be str, got {}", type_name(k)),
            "invalid_metadata_key",
            "metadata",
        )),
    }
}

/// One metadata value. Never fails on a value's *type*: foreign types become
/// [`Value::Unsupported`] and the core reports them.
pub fn value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<Value> {
    value_at(v, 0, key)
}

/// A value `depth` objects deep. Intercom takes no nesting beyond money and
/// rich links (an object of plain values), so nothing deeper is ever read: a
/// list at any depth, or an object inside an object, is handed to the core
/// empty and the core names the rule it breaks. Self-referencing or
/// 100,000-deep structures therefore cost one level, never the stack.
fn value_at(v: &Bound<'_, PyAny>, depth: u8, key: &str) -> PyResult<Value> {
    if let Ok(s) = v.cast_exact::<PyString>() {
        return Ok(Value::String(metadata_text(key, s)?));
    }
    if let Ok(b) = v.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_exact_instance_of::<PyInt>() {
        return Ok(int_value(v));
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if v.is_none() {
        return Ok(Value::Null);
    }
    value_slow(v, depth, key)
}

/// A str metadata value; its error names `metadata.<key>`.
fn metadata_text(key: &str, s: &Bound<'_, PyString>) -> PyResult<String> {
    match s.to_str() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => utf8(s.py(), &format!("metadata.{key}"), s),
    }
}

fn int_value(v: &Bound<'_, PyAny>) -> Value {
    match v.extract::<i64>() {
        Ok(n) => Value::Int(n),
        Err(_) => Value::BigInt(int_text(v).unwrap_or_default()),
    }
}

fn value_slow(v: &Bound<'_, PyAny>, depth: u8, key: &str) -> PyResult<Value> {
    let py = v.py();
    if let Ok(m) = v.cast::<Money>() {
        let m = m.get();
        return Ok(Value::Money { amount: m.amount_cents, currency: m.currency.clone() });
    }
    if let Ok(l) = v.cast::<RichLink>() {
        let l = l.get();
        return Ok(Value::RichLink { url: l.url.clone(), value: l.value.clone() });
    }
    // Subclasses of the basic types (str enums, IntEnum, ...) after the exact checks.
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(metadata_text(key, s)?));
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(int_value(v));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(dt) = v.cast::<PyDateTime>() {
        return Ok(match datetime_secs(dt)? {
            Some(s) => Value::Date(s),
            None => Value::Unsupported(NAIVE.into()),
        });
    }
    if let Ok(d) = v.cast::<PyDate>() {
        return Ok(Value::Date(days_from_civil(d.get_year() as i64, d.get_month() as i64, d.get_day() as i64) * 86_400));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        if depth > 0 {
            return Ok(Value::Object(Vec::new())); // an object in an object: never valid
        }
        let mut fields = Vec::with_capacity(d.len().min(8));
        for (k, val) in d.iter() {
            // Money and rich links have str keys; any other key only has to
            // not match theirs, so the caller's __str__ is never called.
            let k = match k.cast::<PyString>() {
                Ok(s) => metadata_text(key, s)?,
                Err(_) => format!("<{} key>", type_name(&k)),
            };
            fields.push((k, value_at(&val, depth + 1, key)?));
            if fields.len() > 2 {
                break; // more fields than money or a rich link has: invalid whatever they hold
            }
        }
        return Ok(Value::Object(fields));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        return Ok(Value::Array(Vec::new())); // never valid: not read
    }
    let decimal = DECIMAL.import(py, "decimal", "Decimal")?;
    if v.is_instance(decimal)? {
        return decimal_value(v);
    }
    Ok(Value::Unsupported(type_name(v)))
}

/// A `Decimal` is sent as an integer when it is integral and fits, else as a float.
fn decimal_value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = v.py();
    let finite: bool = v.call_method0(pyo3::intern!(py, "is_finite"))?.extract()?;
    if finite {
        let integral = v.call_method0(pyo3::intern!(py, "to_integral_value"))?;
        if integral.eq(v)? {
            if let Ok(n) = integral.call_method0(pyo3::intern!(py, "__int__"))?.extract::<i64>() {
                return Ok(Value::Int(n));
            }
        }
    }
    let f: f64 = v.call_method0(pyo3::intern!(py, "__float__"))?.extract()?;
    Ok(Value::Float(f))
}

/// Unix seconds of an aware datetime; `None` for a naive one.
fn datetime_secs(dt: &Bound<'_, PyDateTime>) -> PyResult<Option<i64>> {
    if dt.get_tzinfo().is_none() {
        return Ok(None);
    }
    let ts: f64 = dt.call_method0(pyo3::intern!(dt.py(), "timestamp"))?.extract()?;
    Ok(Some(ts.floor() as i64))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().qualname().map(|s| s.to_string()).unwrap_or_else(|_| "object".into())
}

/// A keyword option → the core's [`OptionValue`]; `Err` names the problem.
pub fn option_value(v: &Bound<'_, PyAny>) -> Result<OptionValue, String> {
    if v.is_none() {
        return Ok(OptionValue::None);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(OptionValue::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(OptionValue::Int).map_err(|_| "integer does not fit in 64 bits".to_string());
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(OptionValue::Float(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return s.to_str().map(|s| OptionValue::Str(s.to_owned())).map_err(|e| e.to_string());
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() || v.is_instance_of::<pyo3::types::PyFrozenSet>() || v.is_instance_of::<pyo3::types::PySet>() {
        let mut names = Vec::new();
        let iter = v.try_iter().map_err(|e| e.to_string())?;
        for item in iter {
            let item = item.map_err(|e| e.to_string())?;
            match item.cast::<PyString>() {
                Ok(s) => names.push(s.to_str().map_err(|e| e.to_string())?.to_owned()),
                Err(_) => return Err(format!("expected a list of str, found an item of type {}", type_name(&item))),
            }
        }
        return Ok(OptionValue::List(names));
    }
    Err(format!("values of type {} are not accepted", type_name(v)))
}

