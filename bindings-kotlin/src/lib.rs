//! The JVM face of the trackcore core, exported through UniFFI proc-macros.
//!
//! This crate only converts values and maps errors; validation, queueing,
//! delivery, retries and every default live in the `trackcore` core crate.
//! The generated Kotlin (`dev.trackcore.ffi`) is wrapped by the idiomatic
//! `dev.trackcore.Tracker` in `src/main/kotlin`; users never touch it.
//!
//! No panic crosses the FFI: UniFFI turns a panic in an exported function into
//! an exception, and every call into Kotlin (error listener, log sink) is made
//! under `catch_unwind` so a throwing listener cannot kill a core thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use trackcore::{Config, Error, Event, FailedEvent, OptionValue, Tracker, Value};

uniffi::setup_scaffolding!();

/// A metadata value as the Kotlin layer hands it over.
///
/// Nested maps arrive as [`FfiValue::Object`] with their entries as scalars:
/// the core only needs to know whether a nested map is exactly `{url, value}`
/// or `{amount, currency}` and the types of those fields, so one level keeps
/// every decision (and every error) the core's.
#[derive(uniffi::Enum, Debug, Clone)]
pub enum FfiValue {
    Null,
    Text { v: String },
    Integer { v: i64 },
    Real { v: f64 },
    Flag { v: bool },
    /// Unix seconds (UTC); only accepted by the core under `*_date` keys.
    Date { secs: i64 },
    Money { amount_cents: i64, currency: String },
    RichLink { url: String, value: String },
    Object { entries: Vec<FfiScalarEntry> },
    /// A list or array (always refused by the core: Intercom has no arrays).
    Array { len: u32 },
    /// An integer wider than 64 bits (`BigInteger`), as decimal text.
    BigInt { digits: String },
    /// A value of a JVM type trackcore cannot send, by its class name.
    Unsupported { type_name: String },
}

/// One field of a nested map.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiScalarEntry {
    pub key: String,
    pub value: FfiScalar,
}

/// A field of a nested map: scalars, or the type name of anything deeper.
#[derive(uniffi::Enum, Debug, Clone)]
pub enum FfiScalar {
    Null,
    Text { v: String },
    Integer { v: i64 },
    Real { v: f64 },
    Flag { v: bool },
    Other { type_name: String },
}

/// One metadata entry, in the caller's order.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiEntry {
    pub key: String,
    pub value: FfiValue,
}

/// The inputs of one `track()` call.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiEvent {
    pub event_name: String,
    pub user_id: Option<String>,
    pub id: Option<String>,
    pub email: Option<String>,
    pub created_at: Option<i64>,
    pub metadata: Vec<FfiEntry>,
}

/// An option value, by the kinds of the core's option table (`str`, `int`,
/// `float`, `bool`, `list`). Variant names avoid Kotlin's type names.
#[derive(uniffi::Enum, Debug, Clone)]
pub enum FfiOptionValue {
    Text { v: String },
    Integer { v: i64 },
    Real { v: f64 },
    Flag { v: bool },
    Names { v: Vec<String> },
}

/// One option set by the caller, by its snake_case core name.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiOption {
    pub name: String,
    pub value: FfiOptionValue,
}

/// A row of `Config::describe()`.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiOptionInfo {
    pub name: String,
    pub kind: String,
    pub default_value: String,
    pub doc: String,
}

/// Which exception class an error becomes in Kotlin.
#[derive(uniffi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfiErrorKind {
    /// A bad value (`InvalidEventException`).
    InvalidEvent,
    /// A value of the wrong type (`InvalidTypeException`).
    InvalidType,
    /// `track()` after `shutdown()` (`TrackerClosedException`).
    Closed,
    /// An invalid option or a missing token (`ConfigException`).
    Config,
    /// A delivery failure, only ever passed to the error listener (`DeliveryException`).
    Delivery,
}

/// Everything Kotlin needs to build its exception for a core error.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiErrorInfo {
    pub kind: FfiErrorKind,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    pub status: Option<u16>,
}

/// The one error type crossing the FFI (Kotlin maps it to `TrackException`).
#[derive(uniffi::Error, Debug, Clone)]
pub enum FfiError {
    Failed { info: FfiErrorInfo },
}

impl std::fmt::Display for FfiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let FfiError::Failed { info } = self;
        write!(f, "[{}] {}", info.code, info.message)
    }
}

impl std::error::Error for FfiError {}

fn info(e: &Error) -> FfiErrorInfo {
    let kind = match e {
        Error::Closed => FfiErrorKind::Closed,
        Error::InvalidConfig { .. } | Error::MissingAccessToken => FfiErrorKind::Config,
        e if e.is_type_error() => FfiErrorKind::InvalidType,
        e if e.is_input_error() => FfiErrorKind::InvalidEvent,
        _ => FfiErrorKind::Delivery,
    };
    FfiErrorInfo { kind, code: e.code().into(), field: e.field(), message: e.to_string(), status: e.status() }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError::Failed { info: info(&e) }
    }
}

/// Counters of a tracker (`trackcore::Stats`), as signed 64-bit numbers so
/// Java sees plain `long`s.
#[derive(uniffi::Record, Debug, Clone)]
pub struct FfiStats {
    pub names: Vec<String>,
    pub values: Vec<i64>,
}

/// The error listener, implemented in Kotlin. Called on trackcore's reporter
/// thread; the Kotlin side catches whatever the user's listener throws.
#[uniffi::export(with_foreign)]
pub trait ErrorSink: Send + Sync {
    fn on_error(&self, event_json: String, error: FfiErrorInfo);
}

/// Log levels of the core's log lines.
#[derive(uniffi::Enum, Debug, Clone, Copy)]
pub enum FfiLogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Where the core's log lines go (SLF4J, else `System.Logger`), implemented in Kotlin.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn log(&self, level: FfiLogLevel, target: String, message: String);
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// Called by the JVM shutdown hook once every tracker has shut down: from
/// then on trackcore's threads make no more calls into the JVM, which may be
/// tearing down.
#[uniffi::export]
pub fn set_exiting() {
    EXITING.store(true, Ordering::Release);
}

fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

struct ForeignLogger {
    sink: Arc<dyn LogSink>,
}

impl log::Log for ForeignLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // The core's lines only: its dependencies' debug chatter (ureq, rustls)
        // is not the JVM application's business, and each line costs a JNA
        // callback (which attaches the native thread to the JVM).
        metadata.level() <= log::max_level() && metadata.target().starts_with("trackcore")
    }

    fn log(&self, record: &log::Record<'_>) {
        if exiting() || !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => FfiLogLevel::Error,
            log::Level::Warn => FfiLogLevel::Warn,
            log::Level::Info => FfiLogLevel::Info,
            log::Level::Debug => FfiLogLevel::Debug,
            log::Level::Trace => FfiLogLevel::Trace,
        };
        let (target, message) = (record.target().to_string(), record.args().to_string());
        // A log line is never worth a dead core thread.
        let _ = catch_unwind(AssertUnwindSafe(|| self.sink.log(level, target, message)));
    }

    fn flush(&self) {}
}

static LOGGER_INSTALLED: OnceLock<bool> = OnceLock::new();

/// Route the core's `log` lines to `sink`, at `max_level` and above. Only the
/// first call installs anything (the `log` facade takes one logger per
/// process); returns whether this call installed it.
#[uniffi::export]
pub fn install_log_sink(sink: Arc<dyn LogSink>, max_level: FfiLogLevel) -> bool {
    let mut installed_now = false;
    LOGGER_INSTALLED.get_or_init(|| {
        // Leaked once: the `log` facade keeps its logger for the life of the process.
        installed_now = log::set_logger(Box::leak(Box::new(ForeignLogger { sink }))).is_ok();
        if installed_now {
            log::set_max_level(match max_level {
                FfiLogLevel::Error => log::LevelFilter::Error,
                FfiLogLevel::Warn => log::LevelFilter::Warn,
                FfiLogLevel::Info => log::LevelFilter::Info,
                FfiLogLevel::Debug => log::LevelFilter::Debug,
                FfiLogLevel::Trace => log::LevelFilter::Trace,
            });
        }
        installed_now
    });
    installed_now
}

/// The core's documented options, in its order (`Config::describe()`).
#[uniffi::export]
pub fn describe_options() -> Vec<FfiOptionInfo> {
    Config::describe()
        .into_iter()
        .map(|o| FfiOptionInfo { name: o.name.into(), kind: o.kind.into(), default_value: o.default, doc: o.doc.into() })
        .collect()
}

/// Every stable error code (`trackcore::ERROR_CODES`).
#[uniffi::export]
pub fn error_codes() -> Vec<String> {
    trackcore::ERROR_CODES.iter().map(|c| c.to_string()).collect()
}

/// The core crate's version.
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// For the benchmark (`bench/`): cross the FFI with an event and do nothing
/// else, so the share of `track()` that is the crossing itself can be measured.
#[uniffi::export]
pub fn ffi_probe(event: FfiEvent) -> u32 {
    event.metadata.len() as u32
}

fn option_value(v: FfiOptionValue) -> OptionValue {
    match v {
        FfiOptionValue::Text { v } => OptionValue::Str(v),
        FfiOptionValue::Integer { v } => OptionValue::Int(v),
        FfiOptionValue::Real { v } => OptionValue::Float(v),
        FfiOptionValue::Flag { v } => OptionValue::Bool(v),
        FfiOptionValue::Names { v } => OptionValue::List(v),
    }
}

fn scalar(v: FfiScalar) -> Value {
    match v {
        FfiScalar::Null => Value::Null,
        FfiScalar::Text { v } => Value::String(v),
        FfiScalar::Integer { v } => Value::Int(v),
        FfiScalar::Real { v } => Value::Float(v),
        FfiScalar::Flag { v } => Value::Bool(v),
        FfiScalar::Other { type_name } => Value::Unsupported(type_name),
    }
}

fn value(v: FfiValue) -> Value {
    match v {
        FfiValue::Null => Value::Null,
        FfiValue::Text { v } => Value::String(v),
        FfiValue::Integer { v } => Value::Int(v),
        FfiValue::Real { v } => Value::Float(v),
        FfiValue::Flag { v } => Value::Bool(v),
        FfiValue::Date { secs } => Value::Date(secs),
        FfiValue::Money { amount_cents, currency } => Value::Money { amount: amount_cents, currency },
        FfiValue::RichLink { url, value } => Value::RichLink { url, value },
        FfiValue::Object { entries } => Value::Object(entries.into_iter().map(|e| (e.key, scalar(e.value))).collect()),
        FfiValue::Array { .. } => Value::Array(Vec::new()),
        FfiValue::BigInt { digits } => Value::BigInt(digits),
        FfiValue::Unsupported { type_name } => Value::Unsupported(type_name),
    }
}

fn event(e: FfiEvent) -> Event {
    Event {
        event_name: e.event_name,
        user_id: e.user_id,
        id: e.id,
        email: e.email,
        created_at: e.created_at,
        metadata: e.metadata.into_iter().map(|m| (m.key, value(m.value))).collect(),
    }
}

fn seconds(s: f64) -> Duration {
    // The Kotlin layer passes non-negative finite seconds; clamp anything else.
    if s.is_finite() && s > 0.0 {
        Duration::try_from_secs_f64(s.min(1e9)).unwrap_or(Duration::ZERO)
    } else {
        Duration::ZERO
    }
}

/// The core's `Tracker`. Every method is `&self` and thread-safe; this
/// binding holds no lock of its own.
#[derive(uniffi::Object)]
pub struct NativeTracker {
    core: Tracker,
}

#[uniffi::export]
impl NativeTracker {
    /// Build the core `Config` from the options the caller gave (by name,
    /// through `Config::set`: every other option keeps the core's default)
    /// and start the tracker.
    #[uniffi::constructor]
    pub fn new(options: Vec<FfiOption>, on_error: Option<Arc<dyn ErrorSink>>) -> Result<Arc<Self>, FfiError> {
        let mut config = Config::default();
        for o in options {
            config.set(&o.name, option_value(o.value))?;
        }
        if let Some(sink) = on_error {
            config.on_error = Some(Arc::new(move |event: &FailedEvent, err: &Error| {
                if exiting() {
                    return;
                }
                let (json, info) = (event.body_json().to_string(), info(err));
                // The Kotlin side catches the listener's exceptions; this is for the FFI itself.
                let _ = catch_unwind(AssertUnwindSafe(|| sink.on_error(json, info)));
            }));
        }
        Ok(Arc::new(NativeTracker { core: Tracker::new(config)? }))
    }

    /// Validate and queue one event (see `Tracker::track`).
    pub fn track(&self, event: FfiEvent) -> Result<(), FfiError> {
        Ok(self.core.track(self::event(event))?)
    }

    /// See `Tracker::flush`; `timeout_secs` is clamped to [0, 1e9].
    pub fn flush(&self, timeout_secs: f64) -> bool {
        self.core.flush(seconds(timeout_secs))
    }

    /// See `Tracker::shutdown`; `timeout_secs` is clamped to [0, 1e9].
    pub fn shutdown(&self, timeout_secs: f64) -> bool {
        self.core.shutdown(seconds(timeout_secs))
    }

    /// The counters, by the core's names (`auth_paused` is 0 or 1).
    pub fn stats(&self) -> FfiStats {
        let fields = self.core.stats().fields();
        let (names, values) = fields.into_iter().map(|(n, v)| (n.to_string(), v as i64)).unzip();
        FfiStats { names, values }
    }

    /// In memory mode, the exact bodies recorded so far (see `Tracker::recorded_json`).
    pub fn recorded_json(&self) -> Vec<String> {
        self.core.recorded_json()
    }

    /// In memory mode, forget the recorded events.
    pub fn clear_recorded(&self) {
        self.core.clear_recorded()
    }

    /// The current value of an option as text (the token shows as `<redacted>`).
    pub fn option(&self, name: String) -> Option<String> {
        self.core.config().get(&name).map(|v| match v {
            OptionValue::Str(s) => s,
            OptionValue::Int(n) => n.to_string(),
            OptionValue::Float(f) => f.to_string(),
            OptionValue::Bool(b) => b.to_string(),
            OptionValue::List(l) => l.join(","),
            OptionValue::None => String::new(),
        })
    }
}
