//! The event value, its validation against Intercom's rules, and its wire body.
//!
//! Validation runs on the caller's thread inside [`crate::Tracker::track`] and
//! produces the exact JSON body sent to `POST /events`, so everything after the
//! hand-over (queue, retries, a future disk spool) carries plain bytes.

use std::hash::{Hash, Hasher};

use crate::Error;

/// Longest accepted `event_name` and metadata key, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Intercom keeps at most this many metadata keys per event.
pub const MAX_METADATA_KEYS: usize = 10;
/// Largest accepted serialized event, in bytes.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// How far into the future `created_at` may lie.
pub const MAX_FUTURE_SECS: i64 = 24 * 60 * 60;

/// A metadata value.
///
/// Bindings convert their native values to these variants and let the core
/// apply the rules: a generic [`Value::Object`] with exactly `url`+`value` is a
/// rich link, one with exactly `amount`+`currency` is money, anything else is an
/// error, as is every [`Value::Array`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Omitted from the body (like a missing key).
    Null,
    /// A string (an http(s) string is shown by Intercom as a link).
    String(String),
    /// An integer.
    Int(i64),
    /// A finite floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date as Unix seconds (UTC); only allowed under keys ending in `_date`.
    Date(i64),
    /// A rich link: `{"url": "...", "value": "..."}`.
    RichLink { url: String, value: String },
    /// A monetary amount in cents with an ISO 4217 currency code.
    Money { amount: i64, currency: String },
    /// A nested object as the caller gave it; classified by the core.
    Object(Vec<(String, Value)>),
    /// An array (always rejected: Intercom has no array type).
    Array(Vec<Value>),
    /// An integer too wide for 64 bits, as its decimal text (always rejected
    /// with `number_out_of_range`; bindings pass their big integers here).
    BigInt(String),
    /// A value of a foreign type a binding could not convert (always rejected).
    Unsupported(String),
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self { Value::$v(x.into()) }
        }
    )*};
}
value_from!(String => String, &str => String, i64 => Int, i32 => Int, u32 => Int, f64 => Float, bool => Bool);

/// One event as the caller describes it. Build it with [`Event::new`] and the
/// chained setters, or fill the public fields directly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// The event type, e.g. `upgraded-plan`.
    pub event_name: String,
    /// Your id for the user (Intercom's `user_id`).
    pub user_id: Option<String>,
    /// Intercom's contact id (the only way to attribute an event to a lead).
    pub id: Option<String>,
    /// The contact's email.
    pub email: Option<String>,
    /// Unix seconds (UTC); `None` means now.
    pub created_at: Option<i64>,
    /// Up to 10 keys, sent in this order.
    pub metadata: Vec<(String, Value)>,
}

impl Event {
    /// A new event with this name and nothing else.
    pub fn new(event_name: impl Into<String>) -> Self {
        Event { event_name: event_name.into(), ..Default::default() }
    }
    /// Set `user_id`.
    pub fn user_id(mut self, v: impl Into<String>) -> Self {
        self.user_id = Some(v.into());
        self
    }
    /// Set Intercom's contact `id`.
    pub fn id(mut self, v: impl Into<String>) -> Self {
        self.id = Some(v.into());
        self
    }
    /// Set `email`.
    pub fn email(mut self, v: impl Into<String>) -> Self {
        self.email = Some(v.into());
        self
    }
    /// Set `created_at` (Unix seconds).
    pub fn created_at(mut self, v: i64) -> Self {
        self.created_at = Some(v);
        self
    }
    /// Append one metadata entry.
    pub fn meta(mut self, key: impl Into<String>, v: impl Into<Value>) -> Self {
        self.metadata.push((key.into(), v.into()));
        self
    }
}

/// A validated event ready for the wire: the exact JSON body and the key
/// Intercom de-duplicates on.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The JSON body for `POST /events`.
    pub body: Vec<u8>,
    /// Length of the body's prefix that holds `event_name`, `created_at` and
    /// the identifiers: exactly what Intercom de-duplicates on.
    pub key_len: usize,
}

impl Prepared {
    /// Intercom's de-duplication key (identity, event_name, created_at),
    /// hashed. Computed off the caller's thread, by the dispatcher.
    pub fn dedupe_key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.body.get(..self.key_len).unwrap_or(&self.body).hash(&mut h);
        h.finish()
    }
}

impl Event {
    /// Validate against Intercom's rules and produce the wire body.
    ///
    /// `now` is the current Unix time in seconds (the default `created_at`).
    /// Errors come in a fixed order (name, identity, created_at, metadata in
    /// key order, size) so every binding reports the same first problem.
    pub fn prepare(&self, now: i64) -> Result<Prepared, Error> {
        check_event_name(&self.event_name)?;
        let user_id = check_identifier("user_id", self.user_id.as_deref())?;
        let id = check_identifier("id", self.id.as_deref())?;
        let email = check_identifier("email", self.email.as_deref())?;
        if user_id.is_none() && id.is_none() && email.is_none() {
            return Err(Error::MissingIdentity);
        }
        if let Some(e) = email {
            if !e.contains('@') {
                return Err(Error::InvalidEmail { value: e.to_string() });
            }
        }
        let created_at = self.created_at.unwrap_or(now);
        if created_at < 0 {
            return Err(Error::CreatedAtNegative { value: created_at });
        }
        if created_at > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(Error::CreatedAtInFuture { value: created_at, now });
        }
        let present = self.metadata.iter().filter(|(_, v)| !matches!(v, Value::Null)).count();
        if present > MAX_METADATA_KEYS {
            return Err(Error::TooManyMetadataKeys { count: present });
        }

        let mut body = Vec::with_capacity(96 + self.event_name.len() + 32 * present);
        body.extend_from_slice(b"{\"event_name\":");
        write_str(&mut body, &self.event_name);
        body.extend_from_slice(b",\"created_at\":");
        write_int(&mut body, created_at);
        for (field, v) in [("user_id", user_id), ("id", id), ("email", email)] {
            if let Some(v) = v {
                body.extend_from_slice(b",\"");
                body.extend_from_slice(field.as_bytes());
                body.extend_from_slice(b"\":");
                write_str(&mut body, v);
            }
        }
        let key_len = body.len();
        if present > 0 {
            body.extend_from_slice(b",\"metadata\":{");
            let mut first = true;
            for (key, v) in &self.metadata {
                if matches!(v, Value::Null) {
                    continue;
                }
                check_key(key)?;
                if !first {
                    body.push(b',');
                }
                first = false;
                write_str(&mut body, key);
                body.push(b':');
                write_value(&mut body, key, v)?;
            }
            body.push(b'}');
            // A repeated key is only possible from a binding's foreign mapping:
            // looked for out of line, once every key and value is known valid.
            if present > 1 {
                if let Some(key) = first_duplicate(&self.metadata) {
                    return Err(Error::DuplicateMetadataKey { key });
                }
            }
        }
        body.push(b'}');
        if body.len() > MAX_EVENT_BYTES {
            return Err(Error::EventTooLarge { size: body.len() });
        }
        Ok(Prepared { body, key_len })
    }
}

fn check_event_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::MissingEventName);
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::EventNameControlCharacter { found: c });
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(Error::EventNameWhitespace { name: name.to_string() });
    }
    // Byte length bounds the char count from above: only count when it could matter.
    if name.len() > MAX_NAME_CHARS {
        let len = name.chars().count();
        if len > MAX_NAME_CHARS {
            return Err(Error::EventNameTooLong { len });
        }
    }
    Ok(())
}

fn check_identifier<'a>(field: &'static str, v: Option<&'a str>) -> Result<Option<&'a str>, Error> {
    match v {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Err(Error::EmptyIdentifier { field }),
        Some(s) => Ok(Some(s)),
    }
}

#[cold]
#[inline(never)]
fn first_duplicate_slow(metadata: &[(String, Value)]) -> Option<String> {
    let present = |v: &Value| !matches!(v, Value::Null);
    (1..metadata.len()).find_map(|i| {
        let (key, v) = &metadata[i];
        (present(v) && metadata[..i].iter().any(|(k, w)| k == key && present(w))).then(|| key.clone())
    })
}

/// The first key given again, if any: a cheap look at the lengths first, the
/// full comparison only when two keys are as long.
#[inline(never)]
fn first_duplicate(metadata: &[(String, Value)]) -> Option<String> {
    let same_length = (1..metadata.len()).any(|i| metadata[..i].iter().any(|(k, _)| k.len() == metadata[i].0.len()));
    if same_length {
        first_duplicate_slow(metadata)
    } else {
        None
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::EmptyMetadataKey);
    }
    if key.chars().any(char::is_control) || (key.len() > MAX_NAME_CHARS && key.chars().count() > MAX_NAME_CHARS) {
        return Err(Error::InvalidMetadataKey { key: key.to_string() });
    }
    Ok(())
}

fn is_http_url(s: &str) -> bool {
    // Schemes are case-insensitive (RFC 3986 §3.1).
    let rest = ["https://", "http://"].iter().find_map(|p| {
        s.get(..p.len()).filter(|head| head.eq_ignore_ascii_case(p)).map(|_| &s[p.len()..])
    });
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.chars().any(char::is_whitespace))
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most strings need no escaping: copy them straight. Anything else goes
    // through serde_json's escaping, the one JSON string encoder we trust.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

fn write_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<(), Error> {
    let date_key = key.ends_with("_date");
    match v {
        Value::Null => unreachable_null(),
        Value::String(s) => write_str(out, s),
        Value::Int(n) => write_int(out, *n),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(Error::NonFiniteNumber { key: key.into(), value: *f });
            }
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Date(t) => {
            if !date_key {
                return Err(Error::DateRequiresDateKey { key: key.into() });
            }
            if *t < 0 {
                return Err(Error::InvalidDate { key: key.into(), value: *t });
            }
            write_int(out, *t);
        }
        Value::RichLink { url, value } => write_rich_link(out, key, url, value)?,
        Value::Money { amount, currency } => write_money(out, key, *amount, currency)?,
        Value::Object(fields) => write_object(out, key, fields)?,
        Value::Array(_) => return Err(Error::ArrayNotSupported { key: key.into() }),
        Value::BigInt(_) => return Err(Error::NumberOutOfRange { key: key.into() }),
        Value::Unsupported(t) => return Err(Error::UnsupportedType { key: key.into(), type_name: t.clone() }),
    }
    Ok(())
}

fn unreachable_null() {
    // Nulls are skipped by the caller; writing nothing keeps the body valid anyway.
}

fn write_rich_link(out: &mut Vec<u8>, key: &str, url: &str, value: &str) -> Result<(), Error> {
    if !is_http_url(url) {
        return Err(Error::InvalidRichLink { key: key.into(), reason: format!("url {url:?} is not an http(s) URL") });
    }
    out.extend_from_slice(b"{\"url\":");
    write_str(out, url);
    out.extend_from_slice(b",\"value\":");
    write_str(out, value);
    out.push(b'}');
    Ok(())
}

fn write_money(out: &mut Vec<u8>, key: &str, amount: i64, currency: &str) -> Result<(), Error> {
    if amount < 0 {
        return Err(Error::InvalidMoney { key: key.into(), reason: format!("amount {amount} is negative") });
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Error::InvalidMoney { key: key.into(), reason: format!("currency {currency:?} is not a 3-letter code") });
    }
    out.extend_from_slice(b"{\"amount\":");
    write_int(out, amount);
    out.extend_from_slice(b",\"currency\":");
    write_str(out, currency);
    out.push(b'}');
    Ok(())
}

/// Classify a generic object: exactly {url, value} is a rich link, exactly
/// {amount, currency} is money, anything else is unsupported.
fn write_object(out: &mut Vec<u8>, key: &str, fields: &[(String, Value)]) -> Result<(), Error> {
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let has_only = |a: &str, b: &str| fields.len() == 2 && get(a).is_some() && get(b).is_some();
    if has_only("url", "value") {
        return match (get("url"), get("value")) {
            (Some(Value::String(url)), Some(Value::String(value))) => write_rich_link(out, key, url, value),
            (Some(Value::String(_)), _) => {
                Err(Error::InvalidRichLink { key: key.into(), reason: "value must be a string".into() })
            }
            _ => Err(Error::InvalidRichLink { key: key.into(), reason: "url must be a string".into() }),
        };
    }
    if has_only("amount", "currency") {
        let amount = match get("amount") {
            Some(Value::Int(n)) => *n,
            Some(Value::Float(f)) if f.fract() == 0.0 && f.is_finite() && f.abs() < 9.0e15 => *f as i64,
            _ => {
                return Err(Error::InvalidMoney {
                    key: key.into(),
                    reason: "amount must be an integer number of cents".into(),
                })
            }
        };
        return match get("currency") {
            Some(Value::String(c)) => write_money(out, key, amount, c),
            _ => Err(Error::InvalidMoney { key: key.into(), reason: "currency must be a string".into() }),
        };
    }
    Err(Error::NestedObjectNotSupported { key: key.into() })
}

/// Convert a JSON value (as found in conformance vectors, CLI input or a
/// binding's JSON) into a metadata [`Value`]. `{"$date": n}` is a date.
pub fn value_from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None if n.is_u64() => Value::BigInt(n.to_string()),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Array(a.iter().map(value_from_json).collect()),
        J::Object(o) => {
            if let (1, Some(J::Number(n))) = (o.len(), o.get("$date")) {
                return Value::Date(n.as_i64().unwrap_or(-1));
            }
            Value::Object(o.iter().map(|(k, v)| (k.clone(), value_from_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn body(e: &Event) -> serde_json::Value {
        serde_json::from_slice(&e.prepare(NOW).unwrap().body).unwrap()
    }

    #[test]
    fn writes_exact_intercom_body_with_default_created_at() {
        let e = Event::new("upgraded-plan").user_id("u-1").meta("plan", "pro").meta("seats", 5).meta("annual", true);
        assert_eq!(
            std::str::from_utf8(&e.prepare(NOW).unwrap().body).unwrap(),
            r#"{"event_name":"upgraded-plan","created_at":1700000000,"user_id":"u-1","metadata":{"plan":"pro","seats":5,"annual":true}}"#
        );
    }

    #[test]
    fn escapes_strings_in_names_and_values() {
        let e = Event::new("say-\"hi\"").email("a@b.c").meta("q", "line\nbreak \u{1F600}");
        let b = body(&e);
        assert_eq!(b["event_name"], "say-\"hi\"");
        assert_eq!(b["metadata"]["q"], "line\nbreak \u{1F600}");
    }

    #[test]
    fn nulls_are_omitted_and_do_not_count_towards_ten_keys() {
        let mut e = Event::new("x").user_id("1");
        for i in 0..10 {
            e = e.meta(format!("k{i}"), i);
        }
        e = e.meta("gone", Value::Null);
        assert_eq!(body(&e)["metadata"].as_object().unwrap().len(), 10);
        assert_eq!(e.meta("k11", 1).prepare(NOW).unwrap_err().code(), "too_many_metadata_keys");
    }

    #[test]
    fn date_under_plain_key_suggests_rename() {
        let err = Event::new("x").user_id("1").meta("signup", Value::Date(5)).prepare(NOW).unwrap_err();
        assert_eq!(err.code(), "date_requires_date_key");
        assert!(err.to_string().contains("signup_date"), "{err}");
    }

    #[test]
    fn classifies_generic_objects_as_money_or_rich_link() {
        let money = Value::Object(vec![("amount".into(), Value::Int(34999)), ("currency".into(), "eur".into())]);
        let link = Value::Object(vec![("url".into(), "https://x.org".into()), ("value".into(), "X".into())]);
        let b = body(&Event::new("x").user_id("1").meta("price", money).meta("doc", link));
        let upper = Value::RichLink { url: "HTTPS://x.org".into(), value: "X".into() };
        assert!(Event::new("x").user_id("1").meta("doc", upper).prepare(NOW).is_ok(), "schemes are case-insensitive");
        assert_eq!(b["metadata"]["price"], serde_json::json!({"amount": 34999, "currency": "eur"}));
        assert_eq!(b["metadata"]["doc"], serde_json::json!({"url": "https://x.org", "value": "X"}));
        let other = Value::Object(vec![("a".into(), Value::Int(1))]);
        let err = Event::new("x").user_id("1").meta("o", other).prepare(NOW).unwrap_err();
        assert_eq!(err.code(), "nested_object_not_supported");
    }

    #[test]
    fn a_key_given_twice_is_an_error_not_two_keys_on_the_wire() {
        let mut e = Event::new("x").user_id("1").meta("plan", "pro");
        e.metadata.push(("plan".into(), Value::String("team".into())));
        let err = e.prepare(NOW).unwrap_err();
        assert_eq!((err.code(), err.field().as_deref()), ("duplicate_metadata_key", Some("metadata.plan")));
        // A null does not count: it is omitted.
        let mut e = Event::new("x").user_id("1").meta("plan", Value::Null);
        e.metadata.push(("plan".into(), Value::String("team".into())));
        assert!(e.prepare(NOW).is_ok());
    }

    #[test]
    fn dedupe_key_ignores_metadata_but_not_created_at() {
        let a = Event::new("x").user_id("1").created_at(10).meta("a", 1).prepare(NOW).unwrap();
        let b = Event::new("x").user_id("1").created_at(10).meta("a", 2).prepare(NOW).unwrap();
        let c = Event::new("x").user_id("1").created_at(11).prepare(NOW).unwrap();
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        assert_ne!(a.dedupe_key(), c.dedupe_key());
    }
}
