//! `Event::prepare` on anything a binding could hand it: any name, any
//! identifiers, any `created_at`, metadata of every `Value` variant nested
//! at will, and values decoded from raw JSON text by `value_from_json`.
//!
//! Invariants: never a panic; on `Ok` the body is valid JSON whose
//! `event_name` is the input name, whose `created_at` is the input's (or
//! `now`), whose identifiers are the input's, whose metadata keys are the
//! non-null input keys in order (at most 10, no arrays, objects only money or
//! rich links), no larger than `MAX_EVENT_BYTES`, with the dedupe prefix
//! inside it; on `Err` the code is one of `ERROR_CODES`.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use trackcore::event::{value_from_json, MAX_EVENT_BYTES, MAX_METADATA_KEYS};
use trackcore::{Event, Value, ERROR_CODES};

const NOW: i64 = 1_700_000_000;

#[derive(Arbitrary, Debug)]
enum V {
    Null,
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i64),
    RichLink { url: String, value: String },
    Money { amount: i64, currency: String },
    Object(Vec<(String, V)>),
    Array(Vec<V>),
    BigInt(String),
    Unsupported(String),
    /// Raw JSON text, decoded the way the CLI and conformance vectors do.
    Json(String),
}

impl V {
    fn into_value(self) -> Value {
        match self {
            V::Null => Value::Null,
            V::String(s) => Value::String(s),
            V::Int(n) => Value::Int(n),
            V::Float(f) => Value::Float(f),
            V::Bool(b) => Value::Bool(b),
            V::Date(t) => Value::Date(t),
            V::RichLink { url, value } => Value::RichLink { url, value },
            V::Money { amount, currency } => Value::Money { amount, currency },
            V::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, v.into_value())).collect()),
            V::Array(items) => Value::Array(items.into_iter().map(V::into_value).collect()),
            V::BigInt(s) => Value::BigInt(s),
            V::Unsupported(s) => Value::Unsupported(s),
            V::Json(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(j) => value_from_json(&j),
                Err(_) => Value::String(text),
            },
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    name: String,
    user_id: Option<String>,
    email: Option<String>,
    id: Option<String>,
    created_at: Option<i64>,
    metadata: Vec<(String, V)>,
}

fuzz_target!(|input: Input| {
    let mut event = Event::new(input.name.clone());
    if let Some(v) = &input.user_id {
        event = event.user_id(v.as_str());
    }
    if let Some(v) = &input.email {
        event = event.email(v.as_str());
    }
    if let Some(v) = &input.id {
        event = event.id(v.as_str());
    }
    if let Some(t) = input.created_at {
        event = event.created_at(t);
    }
    for (key, v) in input.metadata {
        event = event.meta(key, v.into_value());
    }
    match event.prepare(NOW) {
        Ok(p) => {
            assert!(p.body.len() <= MAX_EVENT_BYTES, "body of {} bytes", p.body.len());
            assert!(p.key_len <= p.body.len());
            let _ = p.dedupe_key();
            let body: serde_json::Value = serde_json::from_slice(&p.body).expect("the body is valid JSON");
            let obj = body.as_object().expect("the body is an object");
            assert_eq!(obj.get("event_name").and_then(|n| n.as_str()), Some(input.name.as_str()));
            assert_eq!(obj.get("created_at").and_then(|t| t.as_i64()), Some(event.created_at.unwrap_or(NOW)));
            for (field, given) in [("user_id", &input.user_id), ("email", &input.email), ("id", &input.id)] {
                assert_eq!(obj.get(field).and_then(|v| v.as_str()), given.as_deref(), "{field}");
            }
            let sent: Vec<&str> = event.metadata.iter().filter(|(_, v)| *v != Value::Null).map(|(k, _)| k.as_str()).collect();
            let meta = obj.get("metadata").map(|m| m.as_object().expect("metadata is an object"));
            let keys: Vec<&str> = meta.into_iter().flat_map(|m| m.keys().map(String::as_str)).collect();
            assert_eq!(keys, sent, "metadata keys are the non-null input keys, in order");
            assert!(keys.len() <= MAX_METADATA_KEYS);
            for (k, v) in meta.into_iter().flatten() {
                assert!(!v.is_array(), "{k} is an array");
                if let Some(o) = v.as_object() {
                    let ks: Vec<&str> = o.keys().map(String::as_str).collect();
                    assert!(ks == ["url", "value"] || ks == ["amount", "currency"], "{k}: {ks:?}");
                }
            }
            // Scalars arrive as given.
            for (k, v) in event.metadata.iter().filter(|(_, v)| *v != Value::Null) {
                let got = &meta.expect("non-null keys present")[k.as_str()];
                match v {
                    Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{k}"),
                    Value::Int(n) => assert_eq!(got.as_i64(), Some(*n), "{k}"),
                    Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b), "{k}"),
                    Value::Date(t) => assert_eq!(got.as_i64(), Some(*t), "{k}"),
                    _ => {}
                }
            }
        }
        Err(e) => {
            assert!(ERROR_CODES.contains(&e.code()), "unknown code {}", e.code());
            // Everything a binding does with an error must not panic either.
            let _ = (e.to_string(), e.field(), e.kind(), e.status(), e.is_input_error(), e.is_type_error());
        }
    }
});
