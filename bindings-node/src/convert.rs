//! JavaScript values → the core's [`Event`] fields, [`Value`] and
//! [`OptionValue`]. Pure conversion: every rule about what Intercom accepts is
//! the core's, applied when it prepares the event. Values the binding cannot
//! express are handed to the core as [`Value::Unsupported`] (or
//! [`Value::BigInt`]) so its error order (name, identity, created_at, metadata
//! in key order) is the same in every language.
//!
//! Each value's JavaScript type is read once with `typeof` and only then read
//! as that type; the `unsafe` casts below rely on exactly that check.

use napi::bindgen_prelude::*;
use napi::{JsDate, JsValue, ValueType};
use trackcore::{Error, OptionValue, Value};

/// Largest integer a JavaScript number holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A conversion problem found before the core sees the event: the field and
/// the message, reported with the core's `unsupported_type` code.
pub struct BadType {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: String) -> BadType {
    BadType { field: field.to_string(), message: format!("{field}: {message}") }
}

fn absent(t: ValueType) -> bool {
    matches!(t, ValueType::Undefined | ValueType::Null)
}

/// `typeof` as JavaScript spells it, for messages.
fn js_type_name(v: &Unknown<'_>, t: ValueType) -> String {
    match t {
        ValueType::Undefined => "undefined".into(),
        ValueType::Null => "null".into(),
        ValueType::Boolean => "boolean".into(),
        ValueType::Number => "number".into(),
        ValueType::String => "string".into(),
        ValueType::Symbol => "symbol".into(),
        ValueType::Function => "function".into(),
        ValueType::BigInt => "bigint".into(),
        ValueType::Object => object_type_name(v),
        _ => "external".into(),
    }
}

/// The constructor's name of an object (`Map`, `URL`, ...), `Array` for arrays.
fn object_type_name(v: &Unknown<'_>) -> String {
    if v.is_array().unwrap_or(false) {
        return "Array".into();
    }
    if v.is_date().unwrap_or(false) {
        return "Date".into();
    }
    constructor_name(v).unwrap_or_else(|| "Object".into())
}

fn constructor_name(v: &Unknown<'_>) -> Option<String> {
    // SAFETY: only called on values whose typeof is "object".
    let obj = unsafe { v.cast::<Object>() }.ok()?;
    let ctor: Unknown = obj.get_named_property_unchecked("constructor").ok()?;
    if ctor.get_type().ok()? != ValueType::Function {
        return None;
    }
    // SAFETY: typeof was just checked to be "function", which is an object.
    let ctor = unsafe { ctor.cast::<Object>() }.ok()?;
    let name: Unknown = ctor.get_named_property_unchecked("name").ok()?;
    if name.get_type().ok()? != ValueType::String {
        return None;
    }
    // SAFETY: typeof was just checked to be "string".
    unsafe { name.cast::<String>() }.ok()
}

fn string(v: &Unknown<'_>) -> Result<String> {
    // SAFETY: callers check typeof is "string" first.
    unsafe { v.cast::<String>() }
}

fn number(v: &Unknown<'_>) -> Result<f64> {
    // SAFETY: callers check typeof is "number" first.
    unsafe { v.cast::<f64>() }
}

fn bigint_i64(v: &Unknown<'_>) -> Result<Option<i64>> {
    // SAFETY: callers check typeof is "bigint" first.
    let b = unsafe { v.cast::<BigInt>() }?;
    let (n, lossless) = b.get_i64();
    Ok(lossless.then_some(n))
}

fn bigint_text(v: &Unknown<'_>) -> Result<String> {
    // SAFETY: callers check typeof is "bigint" first.
    let b = unsafe { v.cast::<BigInt>() }?;
    let (n, lossless) = b.get_i128();
    Ok(if lossless { n.to_string() } else { "a bigint wider than 128 bits".into() })
}

/// A Date's Unix seconds (floored); `None` for an invalid Date.
fn date_secs(v: &Unknown<'_>) -> Result<Option<i64>> {
    // SAFETY: callers check is_date() first.
    let d = unsafe { v.cast::<JsDate>() }?;
    let ms = d.value_of()?;
    Ok(ms.is_finite().then(|| (ms / 1000.0).floor() as i64))
}

/// An integral number that fits in an i64 exactly.
fn whole(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER).then_some(f as i64)
}

/// `eventName`: a string.
pub fn event_name(v: &Unknown<'_>) -> Result<std::result::Result<String, BadType>> {
    let t = v.get_type()?;
    if t == ValueType::String {
        return Ok(Ok(string(v)?));
    }
    Ok(Err(bad("event_name", format!("must be a string, got {}", js_type_name(v, t)))))
}

/// `userId` (a string, a whole number or a bigint, sent as a string), `id`
/// and `email` (strings). `undefined` and `null` mean "not given".
pub fn identifier(field: &str, v: &Unknown<'_>, allow_number: bool) -> Result<std::result::Result<Option<String>, BadType>> {
    let t = v.get_type()?;
    match t {
        _ if absent(t) => Ok(Ok(None)),
        ValueType::String => Ok(Ok(Some(string(v)?))),
        ValueType::Number if allow_number => match whole(number(v)?) {
            Some(n) => Ok(Ok(Some(n.to_string()))),
            None => Ok(Err(bad(field, format!("a number must be a whole, safe integer, got {}", number(v)?)))),
        },
        ValueType::BigInt if allow_number => Ok(Ok(Some(bigint_text(v)?))),
        _ => {
            let what = if allow_number { "a string or a whole number" } else { "a string" };
            Ok(Err(bad(field, format!("must be {what}, got {}", js_type_name(v, t)))))
        }
    }
}

/// `createdAt`: whole Unix seconds (number or bigint) or a `Date`.
pub fn created_at(v: &Unknown<'_>) -> Result<std::result::Result<Option<i64>, BadType>> {
    let t = v.get_type()?;
    let wrong = |got: String| {
        Err(bad("created_at", format!("must be whole Unix seconds (UTC) as a number, or a Date; got {got}")))
    };
    match t {
        _ if absent(t) => Ok(Ok(None)),
        ValueType::Number => {
            let f = number(v)?;
            match whole(f) {
                Some(n) => Ok(Ok(Some(n))),
                // Beyond 2^53 the number is far in the future or the past: let the core say which.
                None if f.is_finite() && f.fract() == 0.0 => Ok(Ok(Some(f as i64))),
                None => Ok(wrong(f.to_string())),
            }
        }
        ValueType::BigInt => match bigint_i64(v)? {
            Some(n) => Ok(Ok(Some(n))),
            None => Ok(Err(BadType {
                field: "created_at".into(),
                message: "created_at: integer does not fit in 64 bits; it must be Unix seconds (UTC)".into(),
            })),
        },
        ValueType::Object if v.is_date()? => match date_secs(v)? {
            Some(s) => Ok(Ok(Some(s))),
            None => Ok(wrong("an invalid Date".into())),
        },
        _ => Ok(wrong(js_type_name(v, t))),
    }
}

/// `metadata`: a plain object, its own enumerable string keys in order.
pub fn metadata(v: &Unknown<'_>) -> Result<std::result::Result<Vec<(String, Value)>, BadType>> {
    let t = v.get_type()?;
    if absent(t) {
        return Ok(Ok(Vec::new()));
    }
    if t != ValueType::Object || v.is_array()? || v.is_date()? {
        return Ok(Err(bad("metadata", format!("must be an object, got {}", js_type_name(v, t)))));
    }
    // SAFETY: typeof was checked to be "object" above.
    let obj = unsafe { v.cast::<Object>() }?;
    fields(&obj).map(Ok)
}

/// An object's enumerable string keys and converted values, in order.
fn fields(obj: &Object<'_>) -> Result<Vec<(String, Value)>> {
    let names = obj.get_property_names()?;
    let len = names.get_array_length()?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let key: String = names.get_element(i)?;
        let val: Unknown = obj.get_named_property_unchecked(&key)?;
        out.push((key, value(&val)?));
    }
    Ok(out)
}

/// One metadata value. Never fails on a value's *type*: foreign types become
/// [`Value::Unsupported`] and the core reports them with the key.
pub fn value(v: &Unknown<'_>) -> Result<Value> {
    let t = v.get_type()?;
    Ok(match t {
        ValueType::String => Value::String(string(v)?),
        ValueType::Number => {
            let f = number(v)?;
            match whole(f) {
                Some(n) => Value::Int(n),
                None => Value::Float(f),
            }
        }
        ValueType::Boolean => {
            // SAFETY: typeof was checked to be "boolean".
            Value::Bool(unsafe { v.cast::<bool>() }?)
        }
        ValueType::Undefined | ValueType::Null => Value::Null,
        ValueType::BigInt => match bigint_i64(v)? {
            Some(n) => Value::Int(n),
            None => Value::BigInt(bigint_text(v)?),
        },
        ValueType::Object => object_value(v)?,
        _ => Value::Unsupported(js_type_name(v, t)),
    })
}

fn object_value(v: &Unknown<'_>) -> Result<Value> {
    if v.is_date()? {
        return Ok(match date_secs(v)? {
            Some(s) => Value::Date(s),
            None => Value::Unsupported("an invalid Date".into()),
        });
    }
    // SAFETY: typeof was checked to be "object" by the caller.
    let obj = unsafe { v.cast::<Object>() }?;
    if v.is_array()? {
        let len = obj.get_array_length()?;
        let mut items = Vec::with_capacity(len as usize);
        for i in 0..len {
            let item: Unknown = obj.get_element(i)?;
            items.push(value(&item)?);
        }
        return Ok(Value::Array(items));
    }
    // Plain objects (and this package's Money and RichLink, whose fields are
    // the wire's) are classified by the core; instances of other classes are not data.
    match constructor_name(v).as_deref() {
        None | Some("Object") | Some("Money") | Some("RichLink") => Ok(Value::Object(fields(&obj)?)),
        Some(other) => Ok(Value::Unsupported(other.to_string())),
    }
}

/// `queueCapacity` → `queue_capacity`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `queue_capacity` → `queueCapacity`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An option's value → the core's [`OptionValue`]; `Err` names the problem.
/// Whole numbers are ints, other numbers floats (durations are seconds).
pub fn option_value(v: &Unknown<'_>) -> Result<std::result::Result<OptionValue, String>> {
    let t = v.get_type()?;
    Ok(match t {
        ValueType::Undefined | ValueType::Null => Ok(OptionValue::None),
        ValueType::Boolean => {
            // SAFETY: typeof was checked to be "boolean".
            Ok(OptionValue::Bool(unsafe { v.cast::<bool>() }?))
        }
        ValueType::Number => {
            let f = number(v)?;
            Ok(whole(f).map_or(OptionValue::Float(f), OptionValue::Int))
        }
        ValueType::BigInt => match bigint_i64(v)? {
            Some(n) => Ok(OptionValue::Int(n)),
            None => Err("integer does not fit in 64 bits".into()),
        },
        ValueType::String => Ok(OptionValue::Str(string(v)?)),
        ValueType::Object if v.is_array()? => {
            // SAFETY: typeof was checked to be "object".
            let arr = unsafe { v.cast::<Object>() }?;
            let mut names = Vec::new();
            for i in 0..arr.get_array_length()? {
                let item: Unknown = arr.get_element(i)?;
                let it = item.get_type()?;
                if it != ValueType::String {
                    return Ok(Err(format!("expected an array of strings, found an item of type {}", js_type_name(&item, it))));
                }
                names.push(string(&item)?);
            }
            Ok(OptionValue::List(names))
        }
        _ => Err(format!("values of type {} are not accepted", js_type_name(v, t))),
    })
}

/// The core's error for an option, named as the JavaScript caller spelt it.
pub fn option_error(js_name: &str, e: Error) -> Error {
    match e {
        Error::InvalidConfig { reason, .. } => Error::InvalidConfig { option: js_name.to_string(), reason },
        other => other,
    }
}
