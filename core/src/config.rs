//! Every option of a tracker, with its default, in one place.
//!
//! Bindings never restate a default: they pass the options the user gave by
//! name through [`Config::set`] and read the rest from [`Config::default`]
//! (see [`Config::describe`] for the documented list).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ratelimit::RateLimiter;
use crate::report::ErrorCallback;
use crate::Error;

/// Longest accepted duration option, in seconds (a year).
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;
/// Largest accepted `queue_capacity`: the channel allocates its slots up front.
pub const MAX_QUEUE_CAPACITY: usize = 10_000_000;

/// Intercom's regional API hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    /// `https://api.intercom.io`
    #[default]
    Us,
    /// `https://api.eu.intercom.io`
    Eu,
    /// `https://api.au.intercom.io`
    Au,
}

impl Region {
    /// The base URL of the region's API.
    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us => "https://api.intercom.io",
            Region::Eu => "https://api.eu.intercom.io",
            Region::Au => "https://api.au.intercom.io",
        }
    }
}

/// What `track()` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the event being tracked (counted, reported). Never blocks.
    #[default]
    DropNewest,
    /// Drop the oldest queued event to make room (counted, reported). Never blocks.
    DropOldest,
    /// Wait up to `block_timeout` for room, then drop the new event.
    Block,
}

impl Overflow {
    /// The option value naming this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::DropNewest => "drop_newest",
            Overflow::DropOldest => "drop_oldest",
            Overflow::Block => "block",
        }
    }
}

/// The access token, which never appears in `Debug` output, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a token.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The options of a [`crate::Tracker`]. `Config::default()` holds every default.
#[derive(Clone)]
pub struct Config {
    /// Intercom access token; `None` falls back to `INTERCOM_ACCESS_TOKEN`.
    pub access_token: Option<Secret>,
    /// Region whose host is used when `base_url` is unset.
    pub region: Region,
    /// Overrides the region's host (the emulator, a proxy).
    pub base_url: Option<String>,
    /// `Intercom-Version` header.
    pub api_version: String,
    /// Events the queue holds before the overflow policy applies.
    pub queue_capacity: usize,
    /// Events the dispatcher holds beyond the queue (waiting for pacing, retrying,
    /// in flight) before it stops taking more from the queue. Grows on demand,
    /// so a burst is absorbed without allocating for it up front.
    pub max_pending: usize,
    /// What to do when the queue is full.
    pub overflow: Overflow,
    /// How long `track()` may wait under [`Overflow::Block`].
    pub block_timeout: Duration,
    /// Concurrent HTTP requests (sender threads).
    pub max_in_flight: usize,
    /// The app's Intercom rate limit; pacing keeps under it.
    pub rate_limit_per_minute: u32,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of one event after its first attempt.
    pub max_retries: u32,
    /// No retry starts later than this after the first attempt.
    pub retry_deadline: Duration,
    /// First retry backoff (doubles each retry) when Intercom gives no hint.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// How often a paused (401/403) tracker probes with one request.
    pub auth_probe_interval: Duration,
    /// Cap on distinct event names this tracker accepts (Intercom's is 120).
    pub max_event_names: usize,
    /// If set, only these names are accepted.
    pub allowed_event_names: Option<Vec<String>>,
    /// Drop copies of (identity, name, created_at) before sending them.
    pub dedupe: bool,
    /// Validate and record events instead of sending them (for tests).
    pub memory: bool,
    /// Events the dispatcher takes from the queue at once.
    pub batch_size: usize,
    /// How long `Drop` waits for delivery before giving up.
    pub drop_timeout: Duration,
    /// Appended to the `User-Agent` (bindings put their language here).
    pub user_agent_suffix: String,
    /// Called off the caller's thread for every event that could not be delivered.
    pub on_error: Option<ErrorCallback>,
    /// Replaces the built-in per-process pacing (fleet mode plugs in here).
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            access_token: None,
            region: Region::Us,
            base_url: None,
            api_version: "2.14".into(),
            queue_capacity: 10_000,
            max_pending: 200_000,
            overflow: Overflow::DropNewest,
            block_timeout: Duration::from_millis(100),
            max_in_flight: 32,
            rate_limit_per_minute: 10_000,
            request_timeout: Duration::from_secs(10),
            max_retries: 10,
            retry_deadline: Duration::from_secs(15 * 60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            auth_probe_interval: Duration::from_secs(60),
            max_event_names: 120,
            allowed_event_names: None,
            dedupe: true,
            memory: false,
            batch_size: 256,
            drop_timeout: Duration::from_secs(2),
            user_agent_suffix: "rust".into(),
            on_error: None,
            rate_limiter: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .field("region", &self.region)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("queue_capacity", &self.queue_capacity)
            .field("overflow", &self.overflow)
            .field("max_in_flight", &self.max_in_flight)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("max_retries", &self.max_retries)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

/// An option value as a binding passes it to [`Config::set`].
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A string (names, URLs, policies).
    Str(String),
    /// An integer (counts; durations in seconds).
    Int(i64),
    /// A number (durations in seconds).
    Float(f64),
    /// A flag.
    Bool(bool),
    /// A list of strings (`allowed_event_names`).
    List(Vec<String>),
    /// No value: resets the option to its default.
    None,
}

/// One documented option: its name, type and default, as bindings show them.
#[derive(Debug, Clone)]
pub struct OptionInfo {
    /// snake_case name, identical in every binding (camelCased in Node).
    pub name: &'static str,
    /// `str`, `int`, `float` (seconds), `bool`, `list`.
    pub kind: &'static str,
    /// The default, rendered as text.
    pub default: String,
    /// One line of documentation.
    pub doc: &'static str,
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

impl Config {
    /// The documented options with their defaults, in a stable order.
    pub fn describe() -> Vec<OptionInfo> {
        let d = Config::default();
        let o = |name, kind, default: String, doc| OptionInfo { name, kind, default, doc };
        vec![
            o("access_token", "str", "$INTERCOM_ACCESS_TOKEN".into(), "Intercom access token"),
            o("region", "str", "us".into(), "us, eu or au"),
            o("base_url", "str", "".into(), "overrides the region's host"),
            o("api_version", "str", d.api_version.clone(), "Intercom-Version header"),
            o("queue_capacity", "int", d.queue_capacity.to_string(), "hand-off queue; overflow applies when it and max_pending are full"),
            o("max_pending", "int", d.max_pending.to_string(), "events held beyond the queue while pacing and retrying"),
            o("overflow", "str", d.overflow.as_str().into(), "drop_newest, drop_oldest or block"),
            o("block_timeout", "float", secs(d.block_timeout), "seconds track() may wait under overflow=block"),
            o("max_in_flight", "int", d.max_in_flight.to_string(), "concurrent HTTP requests"),
            o("rate_limit_per_minute", "int", d.rate_limit_per_minute.to_string(), "the app's Intercom rate limit"),
            o("request_timeout", "float", secs(d.request_timeout), "seconds per HTTP request"),
            o("max_retries", "int", d.max_retries.to_string(), "retries per event"),
            o("retry_deadline", "float", secs(d.retry_deadline), "seconds after which no retry starts"),
            o("backoff_base", "float", secs(d.backoff_base), "first retry backoff in seconds"),
            o("backoff_max", "float", secs(d.backoff_max), "largest retry backoff in seconds"),
            o("auth_probe_interval", "float", secs(d.auth_probe_interval), "seconds between probes while paused by 401/403"),
            o("max_event_names", "int", d.max_event_names.to_string(), "cap on distinct event names"),
            o("allowed_event_names", "list", "".into(), "if set, only these names are accepted"),
            o("dedupe", "bool", d.dedupe.to_string(), "drop copies of (identity, name, created_at)"),
            o("memory", "bool", d.memory.to_string(), "record events instead of sending them"),
            o("batch_size", "int", d.batch_size.to_string(), "events the dispatcher drains at once"),
            o("drop_timeout", "float", secs(d.drop_timeout), "seconds a dropped tracker waits for delivery"),
            o("user_agent_suffix", "str", d.user_agent_suffix.clone(), "appended to the User-Agent"),
        ]
    }

    /// Set one option by its documented name. Bindings call this for each
    /// keyword argument, so names, types and ranges are checked in one place.
    pub fn set(&mut self, name: &str, value: OptionValue) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidConfig { option: name.to_string(), reason };
        if value == OptionValue::None {
            match name {
                "access_token" => self.access_token = None,
                "base_url" => self.base_url = None,
                "allowed_event_names" => self.allowed_event_names = None,
                _ => match Config::default_value(name) {
                    OptionValue::None => return Err(bad("unknown option".into())),
                    v => return self.set(name, v),
                },
            }
            return Ok(());
        }
        let as_str = |v: &OptionValue| match v {
            OptionValue::Str(s) => Ok(s.clone()),
            other => Err(bad(format!("expected a string, got {other:?}"))),
        };
        let as_count = |v: &OptionValue, min: i64| match v {
            OptionValue::Int(n) if *n >= min => Ok(*n),
            OptionValue::Int(n) => Err(bad(format!("{n} is below the minimum of {min}"))),
            other => Err(bad(format!("expected an integer, got {other:?}"))),
        };
        let as_secs = |v: &OptionValue| {
            let s = match v {
                OptionValue::Int(n) => *n as f64,
                OptionValue::Float(f) => *f,
                other => return Err(bad(format!("expected seconds as a number, got {other:?}"))),
            };
            if !s.is_finite() || s < 0.0 || s > MAX_SECS {
                return Err(bad(format!("{s} is not a duration in seconds")));
            }
            Ok(Duration::from_secs_f64(s))
        };
        let as_bool = |v: &OptionValue| match v {
            OptionValue::Bool(b) => Ok(*b),
            other => Err(bad(format!("expected a boolean, got {other:?}"))),
        };
        match name {
            "access_token" => self.access_token = Some(Secret(as_str(&value)?)),
            "region" => {
                self.region = match as_str(&value)?.to_ascii_lowercase().as_str() {
                    "us" => Region::Us,
                    "eu" => Region::Eu,
                    "au" => Region::Au,
                    other => return Err(bad(format!("{other:?} is not one of us, eu, au"))),
                }
            }
            "base_url" => {
                let url = as_str(&value)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(format!("{url:?} is not an http(s) URL")));
                }
                self.base_url = Some(url.trim_end_matches('/').to_string());
            }
            "api_version" => self.api_version = as_str(&value)?,
            "queue_capacity" => self.queue_capacity = as_count(&value, 1)?.min(MAX_QUEUE_CAPACITY as i64) as usize,
            "overflow" => {
                self.overflow = match as_str(&value)?.as_str() {
                    "drop_newest" => Overflow::DropNewest,
                    "drop_oldest" => Overflow::DropOldest,
                    "block" => Overflow::Block,
                    other => return Err(bad(format!("{other:?} is not one of drop_newest, drop_oldest, block"))),
                }
            }
            "block_timeout" => self.block_timeout = as_secs(&value)?,
            "max_in_flight" => self.max_in_flight = as_count(&value, 1)?.min(1024) as usize,
            "rate_limit_per_minute" => self.rate_limit_per_minute = as_count(&value, 1)?.min(u32::MAX as i64) as u32,
            "request_timeout" => self.request_timeout = as_secs(&value)?,
            "max_retries" => self.max_retries = as_count(&value, 0)?.min(u32::MAX as i64) as u32,
            "retry_deadline" => self.retry_deadline = as_secs(&value)?,
            "backoff_base" => self.backoff_base = as_secs(&value)?,
            "backoff_max" => self.backoff_max = as_secs(&value)?,
            "auth_probe_interval" => self.auth_probe_interval = as_secs(&value)?,
            "max_event_names" => self.max_event_names = as_count(&value, 1)? as usize,
            "allowed_event_names" => match value {
                OptionValue::List(names) => self.allowed_event_names = Some(names),
                other => return Err(bad(format!("expected a list of names, got {other:?}"))),
            },
            "dedupe" => self.dedupe = as_bool(&value)?,
            "memory" => self.memory = as_bool(&value)?,
            "batch_size" => self.batch_size = as_count(&value, 1)?.min(100_000) as usize,
            "max_pending" => self.max_pending = as_count(&value, 1)?.min(100_000_000) as usize,
            "drop_timeout" => self.drop_timeout = as_secs(&value)?,
            "user_agent_suffix" => self.user_agent_suffix = as_str(&value)?,
            _ => return Err(bad("unknown option".into())),
        }
        Ok(())
    }

    fn default_value(name: &str) -> OptionValue {
        let d = Config::default();
        match name {
            "region" => OptionValue::Str("us".into()),
            "api_version" => OptionValue::Str(d.api_version),
            "overflow" => OptionValue::Str(d.overflow.as_str().into()),
            "user_agent_suffix" => OptionValue::Str(d.user_agent_suffix),
            "dedupe" => OptionValue::Bool(d.dedupe),
            "memory" => OptionValue::Bool(d.memory),
            "queue_capacity" => OptionValue::Int(d.queue_capacity as i64),
            "max_in_flight" => OptionValue::Int(d.max_in_flight as i64),
            "rate_limit_per_minute" => OptionValue::Int(d.rate_limit_per_minute as i64),
            "max_retries" => OptionValue::Int(d.max_retries as i64),
            "max_event_names" => OptionValue::Int(d.max_event_names as i64),
            "max_pending" => OptionValue::Int(d.max_pending as i64),
            "batch_size" => OptionValue::Int(d.batch_size as i64),
            "block_timeout" => OptionValue::Float(d.block_timeout.as_secs_f64()),
            "request_timeout" => OptionValue::Float(d.request_timeout.as_secs_f64()),
            "retry_deadline" => OptionValue::Float(d.retry_deadline.as_secs_f64()),
            "backoff_base" => OptionValue::Float(d.backoff_base.as_secs_f64()),
            "backoff_max" => OptionValue::Float(d.backoff_max.as_secs_f64()),
            "auth_probe_interval" => OptionValue::Float(d.auth_probe_interval.as_secs_f64()),
            "drop_timeout" => OptionValue::Float(d.drop_timeout.as_secs_f64()),
            _ => OptionValue::None,
        }
    }

    /// The URL events are posted to.
    pub fn events_url(&self) -> String {
        format!("{}/events", self.base_url.as_deref().unwrap_or(self.region.base_url()))
    }

    /// The token to use: the configured one, else `INTERCOM_ACCESS_TOKEN`.
    pub(crate) fn resolve_token(&self) -> Result<Secret, Error> {
        if let Some(t) = &self.access_token {
            if !t.expose().is_empty() {
                return Ok(t.clone());
            }
        }
        match std::env::var("INTERCOM_ACCESS_TOKEN") {
            Ok(t) if !t.is_empty() => Ok(Secret(t)),
            _ => Err(Error::MissingAccessToken),
        }
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |option: &str, reason: &str| Err(Error::InvalidConfig { option: option.into(), reason: reason.into() });
        if self.backoff_max < self.backoff_base {
            return bad("backoff_max", "must not be below backoff_base");
        }
        if self.queue_capacity == 0 || self.queue_capacity > MAX_QUEUE_CAPACITY {
            return bad("queue_capacity", "must be between 1 and 10,000,000 (the queue is allocated up front)");
        }
        for (name, d) in [
            ("block_timeout", self.block_timeout),
            ("request_timeout", self.request_timeout),
            ("retry_deadline", self.retry_deadline),
            ("backoff_base", self.backoff_base),
            ("backoff_max", self.backoff_max),
            ("auth_probe_interval", self.auth_probe_interval),
            ("drop_timeout", self.drop_timeout),
        ] {
            if d.as_secs_f64() > MAX_SECS {
                return bad(name, "must be at most a year");
            }
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be at least 1");
        }
        if self.rate_limit_per_minute == 0 {
            return bad("rate_limit_per_minute", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut c = Config::default();
        c.set("access_token", OptionValue::Str("tok_supersecret".into())).unwrap();
        let shown = format!("{c:?} {:?}", c.access_token);
        assert!(!shown.contains("supersecret"), "{shown}");
    }

    #[test]
    fn set_checks_names_types_and_ranges() {
        let mut c = Config::default();
        c.set("overflow", OptionValue::Str("drop_oldest".into())).unwrap();
        assert_eq!(c.overflow, Overflow::DropOldest);
        c.set("request_timeout", OptionValue::Float(2.5)).unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert_eq!(c.set("queue_capacity", OptionValue::Int(0)).unwrap_err().code(), "invalid_config");
        let e = c.set("no_such_option", OptionValue::Int(1)).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("config.no_such_option"));
        c.set("overflow", OptionValue::None).unwrap();
        assert_eq!(c.overflow, Overflow::DropNewest);
        assert_eq!(c.request_timeout, Duration::from_millis(2500), "resetting one option keeps the others");
    }
}
