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

use crate::errors::{conversion_error, Kind};
use crate::types::{Money, RichLink};

const NAIVE: &str = "naive datetime (give it a tzinfo, e.g. timezone.utc)";

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `user_id` (str or int), `id`, `email` (str).
pub fn identifier(py: Python<'_>, field: &str, v: Option<&Bound<'_, PyAny>>, allow_int: bool) -> PyResult<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Some(s.to_str()?.to_owned()));
    }
    if allow_int && v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        return Ok(Some(v.str()?.to_str()?.to_owned()));
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
        Ok(s) => Ok(s.to_str()?.to_owned()),
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
        Ok(s) => Ok(s.to_str()?.to_owned()),
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
pub fn metadata(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Value)>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if let Ok(d) = v.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            out.push((key(py, &k)?, value(&val)?));
        }
        return Ok(out);
    }
    if v.hasattr(pyo3::intern!(py, "items"))? {
        let mut out = Vec::new();
        for item in v.call_method0(pyo3::intern!(py, "items"))?.try_iter()? {
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            out.push((key(py, &k)?, value(&val)?));
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

fn key(py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<String> {
    match k.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
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
pub fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(s) = v.cast_exact::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
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
    value_slow(v)
}

fn int_value(v: &Bound<'_, PyAny>) -> Value {
    match v.extract::<i64>() {
        Ok(n) => Value::Int(n),
        Err(_) => Value::BigInt(v.str().map(|s| s.to_string()).unwrap_or_default()),
    }
}

fn value_slow(v: &Bound<'_, PyAny>) -> PyResult<Value> {
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
        return Ok(Value::String(s.to_str()?.to_owned()));
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
        let mut fields = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            let k = match k.cast::<PyString>() {
                Ok(s) => s.to_str()?.to_owned(),
                Err(_) => k.str()?.to_str()?.to_owned(),
            };
            fields.push((k, value(&val)?));
        }
        return Ok(Value::Object(fields));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return Ok(Value::Array(l.iter().map(|x| value(&x)).collect::<PyResult<_>>()?));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return Ok(Value::Array(t.iter().map(|x| value(&x)).collect::<PyResult<_>>()?));
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

