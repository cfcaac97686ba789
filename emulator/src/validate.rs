//! Validation of a `POST /events` body as Intercom documents it.
//!
//! Deliberately independent of the client SDK's own validation: this follows
//! Intercom's documentation, so the two can disagree (and tests catch it).

use serde_json::{Map, Value};

use crate::errors::{ApiError, PARAMETER_INVALID, PARAMETER_NOT_FOUND};

/// At most this many metadata keys are tracked; later keys are ignored.
pub const MAX_METADATA_KEYS: usize = 10;

/// A body that passed validation.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    /// The JSON object as received.
    pub body: Map<String, Value>,
    /// `event_name`.
    pub event_name: String,
    /// `created_at` (Unix seconds).
    pub created_at: i64,
    /// `user_id`, if a non-empty string.
    pub user_id: Option<String>,
    /// `id` (Intercom contact id), if a non-empty string.
    pub id: Option<String>,
    /// `email`, if a non-empty string.
    pub email: Option<String>,
    /// The first [`MAX_METADATA_KEYS`] metadata entries, in the order sent.
    pub metadata: Map<String, Value>,
    /// Metadata keys past the tenth, in the order sent.
    pub ignored_metadata_keys: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, PARAMETER_INVALID, message)
}

fn missing(message: impl Into<String>) -> ApiError {
    ApiError::new(400, PARAMETER_NOT_FOUND, message)
}

/// An optional identifier: absent, `null` and `""` all count as "not given".
fn identifier(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// Parses and validates raw request bytes.
///
/// Errors are `400` with code `parameter_invalid` (not JSON, not an object,
/// wrong type or value) or `parameter_not_found` (a required field is absent).
pub fn validate_event(raw: &[u8]) -> Result<ValidEvent, ApiError> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| invalid(format!("Request body is not valid JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(invalid("Request body must be a JSON object"));
    };

    let event_name = match body.get("event_name") {
        None | Some(Value::Null) => return Err(missing("event_name is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(invalid("event_name must be a non-empty string"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("event_name must be a string")),
    };

    let created_at = match body.get("created_at") {
        None | Some(Value::Null) => return Err(missing("created_at is required")),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(t) if t >= 0 => t,
            _ => {
                return Err(invalid(
                    "created_at must be a non-negative integer Unix timestamp in seconds",
                ))
            }
        },
        Some(_) => {
            return Err(invalid("created_at must be an integer Unix timestamp in seconds"))
        }
    };

    let user_id = identifier(&body, "user_id")?;
    let id = identifier(&body, "id")?;
    let email = identifier(&body, "email")?;
    if user_id.is_none() && id.is_none() && email.is_none() {
        return Err(missing("One of user_id, id or email is required"));
    }

    let mut metadata = Map::new();
    let mut ignored_metadata_keys = Vec::new();
    match body.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i < MAX_METADATA_KEYS {
                    metadata.insert(k.clone(), v.clone());
                } else {
                    ignored_metadata_keys.push(k.clone());
                }
            }
        }
        Some(_) => return Err(invalid("metadata must be a JSON object")),
    }

    Ok(ValidEvent {
        body,
        event_name,
        created_at,
        user_id,
        id,
        email,
        metadata,
        ignored_metadata_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_ten_metadata_keys_in_order_sent() {
        let keys: Vec<String> = (0..12).map(|i| format!("\"z{}\":{i}", 11 - i)).collect();
        let raw = format!(
            r#"{{"event_name":"a","created_at":1,"user_id":"u","metadata":{{{}}}}}"#,
            keys.join(",")
        );
        let ev = validate_event(raw.as_bytes()).expect("valid");
        assert_eq!(ev.metadata.len(), 10);
        assert_eq!(ev.metadata.keys().next().map(String::as_str), Some("z11"));
        assert_eq!(ev.ignored_metadata_keys, vec!["z1", "z0"]);
    }

    #[test]
    fn rejects_float_created_at() {
        let e = validate_event(br#"{"event_name":"a","created_at":1.5,"user_id":"u"}"#)
            .expect_err("float");
        assert_eq!(e.code, PARAMETER_INVALID);
    }

    #[test]
    fn empty_identifiers_count_as_missing() {
        let e = validate_event(br#"{"event_name":"a","created_at":1,"user_id":"","email":null}"#)
            .expect_err("no identifier");
        assert_eq!(e.code, PARAMETER_NOT_FOUND);
    }
}
