//! Mapping the core's [`trackcore::Error`] to what the JavaScript side throws.
//!
//! The native layer returns a plain descriptor (`kind`, `code`, `field`,
//! `message`, `status`); `index.js` turns it into the matching `TrackError`
//! subclass, so the classes are ordinary JavaScript classes (`instanceof`,
//! stack traces from the caller) and the hot path builds no object when
//! nothing is wrong.

use napi_derive::napi;
use trackcore::Error;

use crate::convert::BadType;

/// One error, as the JavaScript side builds its class from it.
#[napi(object)]
pub struct Failure {
    /// `invalid_event`, `invalid_type`, `closed`, `config` or `delivery`:
    /// which `TrackError` subclass to throw.
    pub kind: String,
    /// The core's stable code (`ERROR_CODES`).
    pub code: String,
    /// The field the error is about (`event_name`, `metadata.plan`, `config.region`).
    pub field: Option<String>,
    /// The core's message: the field, the value's problem and the rule.
    pub message: String,
    /// Intercom's HTTP status, for delivery errors that have one.
    pub status: Option<u32>,
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        Failure {
            kind: e.kind().as_str().into(),
            code: e.code().into(),
            field: e.field(),
            message: e.to_string(),
            status: e.status().map(u32::from),
        }
    }
}

impl From<BadType> for Failure {
    fn from(b: BadType) -> Self {
        Failure { kind: "invalid_type".into(), code: "unsupported_type".into(), field: Some(b.field), message: b.message, status: None }
    }
}
