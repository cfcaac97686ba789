//! Intercom-style error responses (`{"type":"error.list", ...}`).
//!
//! Every error code the emulator can answer with is a constant here, so the
//! README's table and the code cannot drift apart silently.

use serde_json::json;

/// `401`: missing or unknown bearer token. Intercom answers `"Access Token Invalid"`.
pub const UNAUTHORIZED: &str = "unauthorized";
/// `400`: a required parameter is absent (e.g. no `event_name`, no contact identifier).
pub const PARAMETER_NOT_FOUND: &str = "parameter_not_found";
/// `400`: a parameter is present but has the wrong type or value, or the body is not JSON.
pub const PARAMETER_INVALID: &str = "parameter_invalid";
/// `404`: no contact matches the identifier (`"User Not Found"`), or unknown route.
pub const NOT_FOUND: &str = "not_found";
/// `409`: `POST /contacts` for an `external_id`/`email` that already exists.
pub const CONFLICT: &str = "conflict";
/// `422` (unconfirmed in Intercom's docs): a new event name past the active-name cap.
pub const EVENT_NAME_LIMIT_REACHED: &str = "event_name_limit_reached";
/// `429`: over the 10-second window allowance.
pub const RATE_LIMIT_EXCEEDED: &str = "rate_limit_exceeded";
/// `5xx`: injected or scripted server failure.
pub const SERVER_ERROR: &str = "server_error";
/// `503`: injected or scripted "service unavailable".
pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";

/// A uuid-shaped random request id, like the `request_id` Intercom puts in error bodies.
pub fn request_id() -> String {
    let v = fastrand::u128(..);
    let h = format!("{v:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// One Intercom error: HTTP status, machine-readable code and human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Intercom error code, e.g. `parameter_invalid`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// Builds an error from its parts.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_string(), message: message.into() }
    }

    /// The `error.list` JSON body Intercom sends for this error.
    pub fn body(&self) -> String {
        json!({
            "type": "error.list",
            "request_id": request_id(),
            "errors": [{"code": self.code, "message": self.message}],
        })
        .to_string()
    }

    /// The default code and message for a bare status (used by scripted and injected errors).
    pub fn for_status(status: u16, allowance: Option<u32>) -> Self {
        let (code, message): (&str, String) = match status {
            400 => (PARAMETER_INVALID, "Invalid parameters".into()),
            401 => (UNAUTHORIZED, "Access Token Invalid".into()),
            403 => ("action_forbidden", "Forbidden".into()),
            404 => (NOT_FOUND, "User Not Found".into()),
            408 => ("request_timeout", "Request Timeout".into()),
            409 => (CONFLICT, "Conflict".into()),
            422 => (EVENT_NAME_LIMIT_REACHED, event_name_limit_message(120)),
            429 => (RATE_LIMIT_EXCEEDED, rate_limit_message(allowance.unwrap_or(0))),
            503 => (SERVICE_UNAVAILABLE, "Service Unavailable".into()),
            s if s >= 500 => (SERVER_ERROR, "Server Error".into()),
            _ => ("client_error", "Client Error".into()),
        };
        ApiError::new(status, code, message)
    }
}

/// The message of a `429`, as Intercom words it.
pub fn rate_limit_message(allowance: u32) -> String {
    format!("Exceeded rate limit of {allowance} in 10_seconds")
}

/// The message of the event-name cap error.
pub fn event_name_limit_message(cap: usize) -> String {
    format!("Event name limit reached: this workspace already has {cap} active event names")
}
