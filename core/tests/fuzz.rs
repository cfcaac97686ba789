//! Property test: whatever a binding hands the core — any name, identifiers,
//! nested values, odd numbers, control characters — `prepare` either returns
//! the exact JSON body (valid, with at most 10 metadata keys and no nesting
//! beyond money and rich links) or a typed error with a known code. Never a
//! panic. Bounded (256 cases by default; `PROPTEST_CASES` raises it).

use proptest::prelude::*;
use trackcore::{Event, Value, ERROR_CODES};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,40}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Date),
        "[0-9]{19,40}".prop_map(Value::BigInt),
        (any::<i64>(), "[a-zA-Z]{0,4}").prop_map(|(amount, currency)| Value::Money { amount, currency }),
        (".{0,30}", ".{0,10}").prop_map(|(url, value)| Value::RichLink { url, value }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("(url|value|amount|currency|.{0,6})", inner), 0..4).prop_map(Value::Object),
        ]
    })
}

proptest! {
    #[test]
    fn prepare_returns_the_exact_body_or_a_typed_error(
        name in ".{0,300}",
        user_id in proptest::option::of(".{0,30}"),
        email in proptest::option::of(".{0,30}"),
        created_at in proptest::option::of(any::<i64>()),
        metadata in prop::collection::vec((".{0,20}", value()), 0..14),
    ) {
        let mut event = Event::new(name);
        event.user_id = user_id;
        event.email = email;
        event.created_at = created_at;
        event.metadata = metadata;
        match event.prepare(1_700_000_000) {
            Ok(p) => {
                let body: serde_json::Value = serde_json::from_slice(&p.body).expect("the body is valid JSON");
                let meta = body.get("metadata").and_then(|m| m.as_object()).map_or(0, |m| m.len());
                prop_assert!(meta <= 10, "{meta} metadata keys");
                for (k, v) in body.get("metadata").and_then(|m| m.as_object()).into_iter().flatten() {
                    if let Some(o) = v.as_object() {
                        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
                        prop_assert!(keys == ["url", "value"] || keys == ["amount", "currency"], "{k}: {keys:?}");
                    }
                    prop_assert!(!v.is_array(), "{k} is an array");
                }
            }
            Err(e) => prop_assert!(ERROR_CODES.contains(&e.code()), "unknown code {}", e.code()),
        }
    }
}
