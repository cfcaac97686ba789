//! Scripted responses: the next N answers to `POST /events`, set by a test.

use serde::{Deserialize, Serialize};

/// One scripted answer to a `POST /events`.
///
/// JSON form (body of `POST /__emulator/script`, a list of these):
/// `{"status":503}`, `{"status":429,"reset_in_secs":2}`,
/// `{"status":400,"code":"parameter_invalid","message":"..."}`, `{"drop":true}`,
/// `{"status":202,"retry_after":1}`.
///
/// A scripted response is served after authentication, in place of the normal
/// handling, and counts against the rate-limit window. Non-2xx responses (and
/// drops) do not store the event unless `process` is set; 2xx responses run the
/// normal handling (validation, de-duplication, storage) and then answer with
/// the scripted status and headers whatever that handling decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptedResponse {
    /// HTTP status. Default 202.
    pub status: Option<u16>,
    /// Error code of the `error.list` body (default depends on the status).
    pub code: Option<String>,
    /// Error message of the `error.list` body (default depends on the status).
    pub message: Option<String>,
    /// Adds `Retry-After: <secs>`.
    pub retry_after: Option<u64>,
    /// Sets `X-RateLimit-Reset` to now + this many seconds (and, on a 429,
    /// `X-RateLimit-Remaining: 0`). Only this response is affected.
    pub reset_in_secs: Option<u64>,
    /// Close the connection without any response.
    pub drop: bool,
    /// Run the normal handling (may store the event) before serving this response.
    /// Default: `true` for 2xx, `false` otherwise.
    pub process: Option<bool>,
    /// Extra delay before this response, in milliseconds (on top of configured latency).
    pub delay_ms: Option<u64>,
}

impl ScriptedResponse {
    /// A response with this status and default body/headers.
    pub fn status(status: u16) -> Self {
        ScriptedResponse { status: Some(status), ..Default::default() }
    }

    /// A dropped connection (no response at all).
    pub fn dropped() -> Self {
        ScriptedResponse { drop: true, ..Default::default() }
    }

    /// A `429` whose `X-RateLimit-Reset` lies `secs` seconds ahead.
    pub fn rate_limited(reset_in_secs: u64) -> Self {
        ScriptedResponse {
            status: Some(429),
            reset_in_secs: Some(reset_in_secs),
            ..Default::default()
        }
    }

    /// Sets the error code and message of the body.
    pub fn with_error(mut self, code: &str, message: &str) -> Self {
        self.code = Some(code.to_string());
        self.message = Some(message.to_string());
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Sets `X-RateLimit-Reset` to now + `secs`.
    pub fn with_reset_in(mut self, secs: u64) -> Self {
        self.reset_in_secs = Some(secs);
        self
    }

    /// Delays this response by `ms` milliseconds.
    pub fn with_delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// Runs (or skips) the normal handling, which may store the event, first.
    pub fn with_process(mut self, process: bool) -> Self {
        self.process = Some(process);
        self
    }

    /// The status served (202 unless set).
    pub fn effective_status(&self) -> u16 {
        self.status.unwrap_or(202)
    }

    /// Whether the normal handling runs first.
    pub fn effective_process(&self) -> bool {
        self.process
            .unwrap_or(!self.drop && (200..300).contains(&self.effective_status()))
    }
}
