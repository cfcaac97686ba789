//! Every option of a tracker, with its default, in one place.
//!
//! Bindings never restate a default: they pass the options the user gave by
//! name through [`Config::set`] and read the rest from [`Config::default`]
//! (see [`Config::describe`] for the documented list).

use std::fmt;
use std::time::Duration;

use crate::ratelimit::LimiterChoice;
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
    /// The option value naming this region.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
            Region::Au => "au",
        }
    }

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

/// What happens to an event Intercom answers `404 User Not Found` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownContact {
    /// Report it at once (`contact_not_found`), no retry.
    Report,
    /// Hold it and retry one event per contact with backoff until the contact
    /// appears or `unknown_contact_wait` has passed, then report it.
    #[default]
    Wait,
    /// Create the contact (`POST /contacts`) once, then send its events; events
    /// identified only by Intercom's `id` wait instead.
    Create,
}

impl UnknownContact {
    /// The option value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownContact::Report => "report",
            UnknownContact::Wait => "wait",
            UnknownContact::Create => "create",
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
    /// Events held waiting for delivery (handed off, paced, between retries)
    /// before the overflow policy applies. Nothing is allocated up front.
    pub queue_capacity: usize,
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
    /// Keep events in an append-only log in this directory until they are
    /// settled, so an outage, crash or deploy loses none (see `spool.rs`).
    pub spool_dir: Option<std::path::PathBuf>,
    /// The spool's size cap in bytes; past it new events are dropped (counted, reported).
    pub spool_max_bytes: u64,
    /// How often the spool is synced to disk (0: after every dispatcher
    /// cycle that wrote). A power loss can lose what was written since.
    pub spool_sync_interval: Duration,
    /// What happens to an event whose contact Intercom does not know (404).
    pub unknown_contact: UnknownContact,
    /// How long an event of an unknown contact is held before it is reported.
    pub unknown_contact_wait: Duration,
    /// First wait before a held contact is tried again (doubles, up to
    /// `backoff_max` or this, whichever is larger).
    pub unknown_contact_backoff: Duration,
    /// Validate and record events instead of sending them (for tests).
    pub memory: bool,
    /// How long `Drop` waits for delivery before giving up.
    pub drop_timeout: Duration,
    /// Appended to the `User-Agent` (bindings put their language here).
    pub user_agent_suffix: String,
    /// Called off the caller's thread for every event that could not be delivered.
    pub on_error: Option<ErrorCallback>,
    /// Where permits to send come from (fleet mode plugs in here). Built
    /// afresh for each pipeline, so a forked child never shares its parent's.
    pub rate_limiter: LimiterChoice,
    /// Fleet mode: a `redis://` or `rediss://` URL (user and password allowed);
    /// every tracker of the app with it shares one budget (`crate::fleet`).
    pub shared_budget: Option<Secret>,
    /// Prefix of the Redis keys of fleet mode.
    pub shared_budget_prefix: String,
    /// Percent of `rate_limit_per_minute` paced to locally while Redis is
    /// unreachable (1 to 100; a value above 100 counts as 100).
    pub shared_budget_fallback_percent: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            access_token: None,
            region: Region::Us,
            base_url: None,
            api_version: "2.14".into(),
            queue_capacity: 200_000,
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
            spool_dir: None,
            spool_max_bytes: 1 << 30,
            spool_sync_interval: Duration::from_millis(100),
            unknown_contact: UnknownContact::Wait,
            unknown_contact_wait: Duration::from_secs(15 * 60),
            unknown_contact_backoff: Duration::from_secs(10),
            memory: false,
            drop_timeout: Duration::from_secs(2),
            user_agent_suffix: "rust".into(),
            on_error: None,
            rate_limiter: LimiterChoice::Local,
            shared_budget: None,
            shared_budget_prefix: "trackcore:".into(),
            shared_budget_fallback_percent: 10,
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
            .field("rate_limiter", &self.rate_limiter)
            .field("shared_budget", &self.shared_budget.as_ref().map(|u| crate::fleet::redact_url(u.expose())))
            .field("memory", &self.memory)
            .field("spool_dir", &self.spool_dir)
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

impl OptionValue {
    /// The value's type as the option table names kinds: `str`, `int`,
    /// `float`, `bool`, `list` (and `None`), the same words in every binding.
    pub fn type_name(&self) -> &'static str {
        match self {
            OptionValue::Str(_) => "str",
            OptionValue::Int(_) => "int",
            OptionValue::Float(_) => "float",
            OptionValue::Bool(_) => "bool",
            OptionValue::List(_) => "list",
            OptionValue::None => "None",
        }
    }

    /// The value as text, as `describe` shows defaults and bindings show an
    /// option's current value (a list comma-separated, no value empty).
    pub fn to_text(&self) -> String {
        match self {
            OptionValue::Str(s) => s.clone(),
            OptionValue::Int(n) => n.to_string(),
            OptionValue::Float(f) => f.to_string(),
            OptionValue::Bool(b) => b.to_string(),
            OptionValue::List(l) => l.join(","),
            OptionValue::None => String::new(),
        }
    }
}

/// One row of the option table: everything about an option, said once.
struct Opt {
    name: &'static str,
    kind: &'static str,
    doc: &'static str,
    /// The default as shown, when it is not the rendered value (`access_token`).
    shown_default: Option<&'static str>,
    get: fn(&Config) -> OptionValue,
    /// Sets from a value of the option's kind; `None` only reaches options whose default is unset.
    set: fn(&mut Config, &OptionValue) -> Result<(), String>,
}

/// A wrong string value as an error shows it: short words are quoted, but
/// anything that could be a misplaced access token is only described.
fn shown(value: &str) -> String {
    if value.len() < 12 && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        format!("{value:?}")
    } else {
        format!("a string of {} characters (not shown: it could be a secret)", value.chars().count())
    }
}

fn want_str(v: &OptionValue) -> Result<String, String> {
    match v {
        OptionValue::Str(s) => Ok(s.clone()),
        other => Err(format!("expected str, got {}", other.type_name())),
    }
}

fn want_count(v: &OptionValue, min: i64, max: i64) -> Result<i64, String> {
    match v {
        OptionValue::Int(n) if *n < min => Err(format!("{n} is below the minimum of {min}")),
        OptionValue::Int(n) => Ok((*n).min(max)),
        other => Err(format!("expected int, got {}", other.type_name())),
    }
}

fn want_secs(v: &OptionValue) -> Result<Duration, String> {
    let s = match v {
        OptionValue::Int(n) => *n as f64,
        OptionValue::Float(f) => *f,
        other => return Err(format!("expected seconds as int or float, got {}", other.type_name())),
    };
    if !s.is_finite() || !(0.0..=MAX_SECS).contains(&s) {
        return Err(format!("{s} is not a duration in seconds (0 to a year)"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn want_bool(v: &OptionValue) -> Result<bool, String> {
    match v {
        OptionValue::Bool(b) => Ok(*b),
        other => Err(format!("expected bool, got {}", other.type_name())),
    }
}

fn secs(d: Duration) -> OptionValue {
    OptionValue::Float(d.as_secs_f64())
}

fn int(n: impl TryInto<i64>) -> OptionValue {
    OptionValue::Int(n.try_into().unwrap_or(i64::MAX))
}

/// Every option, in the documented order. `describe`, `set`, the defaults
/// shown by each binding and its typed surface all come from here.
const OPTIONS: &[Opt] = &[
    Opt { name: "access_token", kind: "str", doc: "Intercom access token", shown_default: Some("$INTERCOM_ACCESS_TOKEN"),
        get: |c| c.access_token.as_ref().map_or(OptionValue::None, |_| OptionValue::Str("<redacted>".into())),
        set: |c, v| { c.access_token = match v { OptionValue::None => None, v => Some(Secret(want_str(v)?)) }; Ok(()) } },
    Opt { name: "region", kind: "str", doc: "us, eu or au", shown_default: None,
        get: |c| OptionValue::Str(c.region.as_str().into()),
        set: |c, v| {
            c.region = match want_str(v)?.to_ascii_lowercase().as_str() {
                "us" => Region::Us, "eu" => Region::Eu, "au" => Region::Au,
                other => return Err(format!("must be one of us, eu, au; got {}", shown(other))),
            };
            Ok(())
        } },
    Opt { name: "base_url", kind: "str", doc: "overrides the region's host (the emulator, a proxy)", shown_default: None,
        get: |c| c.base_url.clone().map_or(OptionValue::None, OptionValue::Str),
        set: |c, v| {
            if *v == OptionValue::None { c.base_url = None; return Ok(()) }
            let url = want_str(v)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("must be an http(s) URL; got {}", shown(&url)));
            }
            c.base_url = Some(url.trim_end_matches('/').to_string());
            Ok(())
        } },
    Opt { name: "api_version", kind: "str", doc: "Intercom-Version header", shown_default: None,
        get: |c| OptionValue::Str(c.api_version.clone()), set: |c, v| { c.api_version = want_str(v)?; Ok(()) } },
    Opt { name: "queue_capacity", kind: "int", doc: "events held waiting for delivery; the overflow policy applies beyond it", shown_default: None,
        get: |c| int(c.queue_capacity), set: |c, v| { c.queue_capacity = want_count(v, 1, MAX_QUEUE_CAPACITY as i64)? as usize; Ok(()) } },
    Opt { name: "overflow", kind: "str", doc: "drop_newest, drop_oldest or block", shown_default: None,
        get: |c| OptionValue::Str(c.overflow.as_str().into()),
        set: |c, v| {
            c.overflow = match want_str(v)?.as_str() {
                "drop_newest" => Overflow::DropNewest, "drop_oldest" => Overflow::DropOldest, "block" => Overflow::Block,
                other => return Err(format!("must be one of drop_newest, drop_oldest, block; got {}", shown(other))),
            };
            Ok(())
        } },
    Opt { name: "block_timeout", kind: "float", doc: "seconds track() may wait for room under overflow=block", shown_default: None,
        get: |c| secs(c.block_timeout), set: |c, v| { c.block_timeout = want_secs(v)?; Ok(()) } },
    Opt { name: "max_in_flight", kind: "int", doc: "concurrent HTTP requests (sender threads, started as needed)", shown_default: None,
        get: |c| int(c.max_in_flight), set: |c, v| { c.max_in_flight = want_count(v, 1, 1024)? as usize; Ok(()) } },
    Opt { name: "rate_limit_per_minute", kind: "int", doc: "the app's Intercom rate limit; pacing keeps under it", shown_default: None,
        get: |c| int(c.rate_limit_per_minute), set: |c, v| { c.rate_limit_per_minute = want_count(v, 1, u32::MAX as i64)? as u32; Ok(()) } },
    Opt { name: "rate_limiter", kind: "str", doc: "where permits come from: local or none (local: this process paces itself)", shown_default: None,
        get: |c| OptionValue::Str(c.rate_limiter.as_str().into()),
        set: |c, v| {
            c.rate_limiter = match want_str(v)?.as_str() {
                "local" => LimiterChoice::Local, "none" => LimiterChoice::Unlimited,
                other => return Err(format!("must be one of local, none; got {}", shown(other))),
            };
            Ok(())
        } },
    Opt { name: "shared_budget", kind: "str", doc: "fleet mode: redis:// or rediss:// URL of one budget shared by every tracker of the app", shown_default: None,
        get: |c| c.shared_budget.as_ref().map_or(OptionValue::None, |u| OptionValue::Str(crate::fleet::redact_url(u.expose()))),
        set: |c, v| {
            c.shared_budget = match v {
                OptionValue::None => None,
                v => { let url = want_str(v)?; crate::fleet::check_url(&url)?; Some(Secret(url)) }
            };
            Ok(())
        } },
    Opt { name: "shared_budget_prefix", kind: "str", doc: "prefix of fleet mode's Redis keys", shown_default: None,
        get: |c| OptionValue::Str(c.shared_budget_prefix.clone()), set: |c, v| { c.shared_budget_prefix = want_str(v)?; Ok(()) } },
    Opt { name: "shared_budget_fallback_percent", kind: "int", doc: "percent of the rate limit paced to locally while Redis is unreachable (fleet mode)", shown_default: None,
        get: |c| int(c.shared_budget_fallback_percent), set: |c, v| { c.shared_budget_fallback_percent = want_count(v, 1, 100)? as u8; Ok(()) } },
    Opt { name: "request_timeout", kind: "float", doc: "seconds each phase of an HTTP request may take (connect, send, wait for the answer, read it)", shown_default: None,
        get: |c| secs(c.request_timeout), set: |c, v| { c.request_timeout = want_secs(v)?; Ok(()) } },
    Opt { name: "max_retries", kind: "int", doc: "retries per event after its first attempt", shown_default: None,
        get: |c| int(c.max_retries), set: |c, v| { c.max_retries = want_count(v, 0, u32::MAX as i64)? as u32; Ok(()) } },
    Opt { name: "retry_deadline", kind: "float", doc: "seconds after an event's first attempt when no retry starts", shown_default: None,
        get: |c| secs(c.retry_deadline), set: |c, v| { c.retry_deadline = want_secs(v)?; Ok(()) } },
    Opt { name: "backoff_base", kind: "float", doc: "first retry backoff in seconds (doubles per retry)", shown_default: None,
        get: |c| secs(c.backoff_base), set: |c, v| { c.backoff_base = want_secs(v)?; Ok(()) } },
    Opt { name: "backoff_max", kind: "float", doc: "largest retry backoff in seconds", shown_default: None,
        get: |c| secs(c.backoff_max), set: |c, v| { c.backoff_max = want_secs(v)?; Ok(()) } },
    Opt { name: "auth_probe_interval", kind: "float", doc: "seconds between probes while paused by 401/403", shown_default: None,
        get: |c| secs(c.auth_probe_interval), set: |c, v| { c.auth_probe_interval = want_secs(v)?; Ok(()) } },
    Opt { name: "max_event_names", kind: "int", doc: "cap on distinct event names (Intercom's is 120)", shown_default: None,
        get: |c| int(c.max_event_names), set: |c, v| { c.max_event_names = want_count(v, 1, i64::MAX)? as usize; Ok(()) } },
    Opt { name: "allowed_event_names", kind: "list", doc: "if set, only these names are accepted", shown_default: None,
        get: |c| c.allowed_event_names.clone().map_or(OptionValue::None, OptionValue::List),
        set: |c, v| {
            c.allowed_event_names = match v {
                OptionValue::None => None,
                OptionValue::List(names) => Some(names.clone()),
                other => return Err(format!("expected list, got {}", other.type_name())),
            };
            Ok(())
        } },
    Opt { name: "dedupe", kind: "bool", doc: "drop copies of (identity, name, created_at) before sending", shown_default: None,
        get: |c| OptionValue::Bool(c.dedupe), set: |c, v| { c.dedupe = want_bool(v)?; Ok(()) } },
    Opt { name: "spool_dir", kind: "str", doc: "directory of the disk spool that keeps events until delivered, across crashes and restarts (off when unset)", shown_default: None,
        get: |c| c.spool_dir.as_ref().map_or(OptionValue::None, |d| OptionValue::Str(d.display().to_string())),
        set: |c, v| {
            c.spool_dir = match v {
                OptionValue::None => None,
                v => {
                    let s = want_str(v)?;
                    if s.is_empty() {
                        return Err("must be a directory path, got an empty string".into());
                    }
                    Some(s.into())
                }
            };
            Ok(())
        } },
    Opt { name: "spool_max_bytes", kind: "int", doc: "size cap of the spool in bytes; past it new events are dropped (counted, reported)", shown_default: None,
        get: |c| int(c.spool_max_bytes), set: |c, v| { c.spool_max_bytes = want_count(v, 4096, i64::MAX)? as u64; Ok(()) } },
    Opt { name: "spool_sync_interval", kind: "float", doc: "seconds between syncs of the spool to disk (0: every write); what a power loss can lose", shown_default: None,
        get: |c| secs(c.spool_sync_interval), set: |c, v| { c.spool_sync_interval = want_secs(v)?; Ok(()) } },
    Opt { name: "unknown_contact", kind: "str", doc: "an event whose contact Intercom does not know (404): report, wait (hold and retry) or create (the contact)", shown_default: None,
        get: |c| OptionValue::Str(c.unknown_contact.as_str().into()),
        set: |c, v| {
            c.unknown_contact = match want_str(v)?.as_str() {
                "report" => UnknownContact::Report, "wait" => UnknownContact::Wait, "create" => UnknownContact::Create,
                other => return Err(format!("must be one of report, wait, create; got {}", shown(other))),
            };
            Ok(())
        } },
    Opt { name: "unknown_contact_wait", kind: "float", doc: "seconds an event of an unknown contact is held before it is reported", shown_default: None,
        get: |c| secs(c.unknown_contact_wait), set: |c, v| { c.unknown_contact_wait = want_secs(v)?; Ok(()) } },
    Opt { name: "unknown_contact_backoff", kind: "float", doc: "seconds before a held contact is tried again (doubles per try)", shown_default: None,
        get: |c| secs(c.unknown_contact_backoff), set: |c, v| { c.unknown_contact_backoff = want_secs(v)?; Ok(()) } },
    Opt { name: "memory", kind: "bool", doc: "record events instead of sending them (tests)", shown_default: None,
        get: |c| OptionValue::Bool(c.memory), set: |c, v| { c.memory = want_bool(v)?; Ok(()) } },
    Opt { name: "drop_timeout", kind: "float", doc: "seconds a dropped tracker (and interpreter exit) waits for delivery", shown_default: None,
        get: |c| secs(c.drop_timeout), set: |c, v| { c.drop_timeout = want_secs(v)?; Ok(()) } },
    Opt { name: "user_agent_suffix", kind: "str", doc: "appended to the User-Agent (bindings put their language here)", shown_default: None,
        get: |c| OptionValue::Str(c.user_agent_suffix.clone()), set: |c, v| { c.user_agent_suffix = want_str(v)?; Ok(()) } },
];

impl Config {
    /// The documented options with their defaults, in a stable order.
    pub fn describe() -> Vec<OptionInfo> {
        let d = Config::default();
        OPTIONS
            .iter()
            .map(|o| OptionInfo {
                name: o.name,
                kind: o.kind,
                default: o.shown_default.map_or_else(|| (o.get)(&d).to_text(), str::to_string),
                doc: o.doc,
            })
            .collect()
    }

    /// Set one option by its documented name. Bindings call this for each
    /// keyword argument, so names, types and ranges are checked in one place.
    /// [`OptionValue::None`] resets the option to its default.
    pub fn set(&mut self, name: &str, value: OptionValue) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidConfig { option: name.to_string(), reason };
        let Some(opt) = OPTIONS.iter().find(|o| o.name == name) else {
            return Err(bad("unknown option".into()));
        };
        let value = match value {
            OptionValue::None => (opt.get)(&Config::default()),
            v => v,
        };
        (opt.set)(self, &value).map_err(bad)
    }

    /// The current value of an option, as [`Config::set`] takes it (the
    /// access token is shown as `<redacted>`).
    pub fn get(&self, name: &str) -> Option<OptionValue> {
        OPTIONS.iter().find(|o| o.name == name).map(|o| (o.get)(self))
    }

    /// The URL contacts are created at.
    pub fn contacts_url(&self) -> String {
        format!("{}/contacts", self.base_url.as_deref().unwrap_or(self.region.base_url()))
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
            return bad("queue_capacity", "must be between 1 and 10,000,000");
        }
        for (name, d) in [
            ("block_timeout", self.block_timeout),
            ("request_timeout", self.request_timeout),
            ("retry_deadline", self.retry_deadline),
            ("backoff_base", self.backoff_base),
            ("backoff_max", self.backoff_max),
            ("auth_probe_interval", self.auth_probe_interval),
            ("drop_timeout", self.drop_timeout),
            ("unknown_contact_wait", self.unknown_contact_wait),
            ("unknown_contact_backoff", self.unknown_contact_backoff),
        ] {
            if d.as_secs_f64() > MAX_SECS {
                return bad(name, "must be at most a year");
            }
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
    fn a_misplaced_token_never_appears_in_a_config_error() {
        let token = "dG9rOjEyMzQ1Njc4OTAxMjM0NTY3ODkw";
        let mut c = Config::default();
        for option in ["region", "base_url", "overflow", "rate_limiter"] {
            let e = c.set(option, OptionValue::Str(token.into())).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(token), "{shown}");
            assert!(shown.contains(option), "{shown}");
        }
        let e = c.set("region", OptionValue::List(vec![token.into()])).unwrap_err();
        assert!(!format!("{e} {e:?}").contains(token));
        assert_eq!(e.to_string(), "config.region: expected str, got list");
        let e = c.set("region", OptionValue::Str("mars".into())).unwrap_err();
        assert_eq!(e.to_string(), "config.region: must be one of us, eu, au; got \"mars\"", "a short word is shown");
    }

    #[test]
    fn the_shared_budget_password_never_appears_in_debug_get_or_errors() {
        let mut c = Config::default();
        c.set("shared_budget", OptionValue::Str("redis://app:pa55word@10.0.0.7:6380/2".into())).unwrap();
        let shown = format!("{c:?} {:?}", c.get("shared_budget"));
        assert!(!shown.contains("pa55word") && !shown.contains("app:"), "{shown}");
        assert!(shown.contains("10.0.0.7:6380"), "{shown}");
        for bad in ["http://app:pa55word@h", "redis://app:pa55word@[h", "pa55word"] {
            let e = c.set("shared_budget", OptionValue::Str(bad.into())).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("pa55word") && shown.contains("config.shared_budget"), "{shown}");
        }
        assert_eq!(c.set("shared_budget_fallback_percent", OptionValue::Int(0)).unwrap_err().code(), "invalid_config");
        c.set("shared_budget", OptionValue::None).unwrap();
        assert!(c.shared_budget.is_none());
    }

    #[test]
    fn every_option_round_trips_through_the_table() {
        let d = Config::default();
        for info in Config::describe() {
            let mut c = Config::default();
            let v = d.get(info.name).expect("every described option can be read");
            c.set(info.name, v.clone()).unwrap_or_else(|e| panic!("{}: {e}", info.name));
            if info.name != "access_token" {
                assert_eq!(c.get(info.name), Some(v), "{}", info.name);
            }
        }
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
