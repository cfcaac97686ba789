//! Start-up and runtime configuration.

use serde::{Deserialize, Serialize};

/// The token accepted when none is configured.
pub const DEFAULT_TOKEN: &str = "test-token";
/// Intercom's default per-app rate limit (calls per minute).
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 10_000;
/// Intercom's cap on active event names per workspace.
pub const DEFAULT_MAX_EVENT_NAMES: usize = 120;

/// Everything the emulator can be started with.
///
/// All fields except `port` and `seed` can later be changed at run time
/// (see [`crate::Emulator::update_config`] and `POST /__emulator/config`);
/// `reset` restores the values given at start.
///
/// The tokens are never serialized (so `GET /__emulator/config` cannot hand
/// them out) and never shown by `Debug`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1; `0` (the library default) picks a free port.
    pub port: u16,
    /// Accepted bearer tokens. Default: `["test-token"]`. An empty list rejects every request.
    #[serde(skip_serializing)]
    pub tokens: Vec<String>,
    /// Calls per minute, enforced in 10-second windows of `ceil(n / 6)` calls.
    /// `0` disables rate limiting (and the `X-RateLimit-*` headers).
    pub rate_limit_per_minute: u32,
    /// Active event-name cap; a new name past it is refused with 422. `0` = no cap.
    pub max_event_names: usize,
    /// Answer 404 `User Not Found` for events whose contact is not known.
    /// When `false`, unknown contacts are created on first event.
    pub require_known_users: bool,
    /// Contacts known from the start, by `external_id` (the events' `user_id`).
    pub known_user_ids: Vec<String>,
    /// Contacts known from the start, by email.
    pub known_emails: Vec<String>,
    /// Fixed delay before every Intercom API response, in milliseconds.
    pub latency_ms: u64,
    /// Random extra delay, uniform in `0..=latency_jitter_ms`, in milliseconds.
    pub latency_jitter_ms: u64,
    /// Probability (0.0–1.0) that a `POST /events` gets a random 500/503 (event not stored).
    pub error_rate: f64,
    /// Probability (0.0–1.0) that a `POST /events` connection is closed without
    /// a response (event not stored).
    pub drop_rate: f64,
    /// Seed of the fault-injection random generator (reproducible runs); `None` = random.
    pub seed: Option<u64>,
    /// Print one line per Intercom API request on stdout (the binary's default;
    /// off in the library and with `--quiet`). Set at start only.
    pub log_requests: bool,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("port", &self.port)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("max_event_names", &self.max_event_names)
            .field("require_known_users", &self.require_known_users)
            .field("known_user_ids", &self.known_user_ids)
            .field("known_emails", &self.known_emails)
            .field("latency_ms", &self.latency_ms)
            .field("latency_jitter_ms", &self.latency_jitter_ms)
            .field("error_rate", &self.error_rate)
            .field("drop_rate", &self.drop_rate)
            .field("seed", &self.seed)
            .field("log_requests", &self.log_requests)
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            tokens: vec![DEFAULT_TOKEN.to_string()],
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            max_event_names: DEFAULT_MAX_EVENT_NAMES,
            require_known_users: false,
            known_user_ids: Vec::new(),
            known_emails: Vec::new(),
            latency_ms: 0,
            latency_jitter_ms: 0,
            error_rate: 0.0,
            drop_rate: 0.0,
            seed: None,
            log_requests: false,
        }
    }
}

/// A partial change of the runtime configuration: `None` leaves a field as it is.
///
/// This is the body of `POST /__emulator/config`, e.g. `{"latency_ms": 50}`.
/// Like [`EmulatorConfig`], it never serializes or shows its tokens.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigUpdate {
    /// See [`EmulatorConfig::tokens`].
    #[serde(skip_serializing)]
    pub tokens: Option<Vec<String>>,
    /// See [`EmulatorConfig::rate_limit_per_minute`].
    pub rate_limit_per_minute: Option<u32>,
    /// See [`EmulatorConfig::max_event_names`].
    pub max_event_names: Option<usize>,
    /// See [`EmulatorConfig::require_known_users`].
    pub require_known_users: Option<bool>,
    /// See [`EmulatorConfig::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`EmulatorConfig::latency_jitter_ms`].
    pub latency_jitter_ms: Option<u64>,
    /// See [`EmulatorConfig::error_rate`].
    pub error_rate: Option<f64>,
    /// See [`EmulatorConfig::drop_rate`].
    pub drop_rate: Option<f64>,
}

impl std::fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigUpdate")
            .field("tokens", &self.tokens.as_ref().map(|t| format!("[{} redacted]", t.len())))
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("max_event_names", &self.max_event_names)
            .field("require_known_users", &self.require_known_users)
            .field("latency_ms", &self.latency_ms)
            .field("latency_jitter_ms", &self.latency_jitter_ms)
            .field("error_rate", &self.error_rate)
            .field("drop_rate", &self.drop_rate)
            .finish()
    }
}

impl ConfigUpdate {
    /// Applies the given fields to `config`.
    pub(crate) fn apply(self, config: &mut EmulatorConfig) {
        if let Some(v) = self.tokens {
            config.tokens = v;
        }
        if let Some(v) = self.rate_limit_per_minute {
            config.rate_limit_per_minute = v;
        }
        if let Some(v) = self.max_event_names {
            config.max_event_names = v;
        }
        if let Some(v) = self.require_known_users {
            config.require_known_users = v;
        }
        if let Some(v) = self.latency_ms {
            config.latency_ms = v;
        }
        if let Some(v) = self.latency_jitter_ms {
            config.latency_jitter_ms = v;
        }
        if let Some(v) = self.error_rate {
            config.error_rate = v.clamp(0.0, 1.0);
        }
        if let Some(v) = self.drop_rate {
            config.drop_rate = v.clamp(0.0, 1.0);
        }
    }
}
