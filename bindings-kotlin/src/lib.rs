//! The JVM face of the trackcore core, exported through UniFFI proc-macros.
//!
//! This crate only converts values and maps errors; validation, queueing,
//! delivery, retries and every default live in the `trackcore` core crate.
//! The generated Kotlin (`dev.trackcore.ffi`) is wrapped by the idiomatic
//! `dev.trackcore.Tracker` in `src/main/kotlin`; users never touch it. The one
//! hot call, `track()`, takes a faster path of its own (see the end of this file).
//!
//! No panic crosses the FFI: UniFFI turns a panic in an exported function into
//! an exception, and every call into Kotlin (error listener, log sink) is made
//! under `catch_unwind` so a throwing listener cannot kill a core thread.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use trackcore::{Config, Error, ErrorKind, Event, FailedEvent, OptionValue, Tracker, Value};

uniffi::setup_scaffolding!();

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
    let kind = match e.kind() {
        ErrorKind::Closed => FfiErrorKind::Closed,
        ErrorKind::Config => FfiErrorKind::Config,
        ErrorKind::InvalidType => FfiErrorKind::InvalidType,
        ErrorKind::InvalidEvent => FfiErrorKind::InvalidEvent,
        ErrorKind::Delivery => FfiErrorKind::Delivery,
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

fn option_value(v: FfiOptionValue) -> OptionValue {
    match v {
        FfiOptionValue::Text { v } => OptionValue::Str(v),
        FfiOptionValue::Integer { v } => OptionValue::Int(v),
        FfiOptionValue::Real { v } => OptionValue::Float(v),
        FfiOptionValue::Flag { v } => OptionValue::Bool(v),
        FfiOptionValue::Names { v } => OptionValue::List(v),
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

    /// See `Tracker::flush`; `timeout_secs` is clamped to [0, 1e9].
    pub fn flush(&self, timeout_secs: f64) -> bool {
        self.core.flush(seconds(timeout_secs))
    }

    /// See `Tracker::sync`; `timeout_secs` is clamped to [0, 1e9].
    pub fn sync(&self, timeout_secs: f64) -> bool {
        self.core.sync(seconds(timeout_secs))
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

    /// A raw handle for [`trackcore_kotlin_track`], the allocation-free path of
    /// `track()`: one strong reference, kept until [`release_fast_handle`].
    pub fn fast_handle(self: Arc<Self>) -> u64 {
        Arc::into_raw(self) as usize as u64
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
        self.core.config().get(&name).map(|v| v.to_text())
    }
}

// ---- the fast path of track() ----
//
// UniFFI's Kotlin crosses every call with JNA `Structure`s (a call status, a
// `RustBuffer` for each record), which on this JVM cost several microseconds
// per call: more than the whole core's `track()`. The hot call therefore
// takes the event as bytes in a small format (`Wire` below, written by
// `Wire.kt`) through one JNA direct-mapped function of primitives; an error
// is left in a thread-local for `take_track_error()`. Everything else
// (construction, errors, callbacks, stats) goes through UniFFI.

thread_local! {
    static LAST_ERROR: RefCell<Option<FfiErrorInfo>> = const { RefCell::new(None) };
}

/// Give back the reference taken by `NativeTracker::fast_handle`.
#[uniffi::export]
pub fn release_fast_handle(handle: u64) {
    if handle != 0 {
        // SAFETY: `handle` came from `fast_handle` (Arc::into_raw) and the
        // Kotlin Tracker releases it exactly once, from its cleaner, after its
        // last call.
        unsafe { drop(Arc::from_raw(handle as usize as *const NativeTracker)) }
    }
}

/// The error of this thread's last failed [`trackcore_kotlin_track`], taken.
#[uniffi::export]
pub fn take_track_error() -> Option<FfiErrorInfo> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

/// Validate and queue one event given as `Wire` bytes. Returns 0 when it was
/// queued, 1 when it was refused (the error waits in `take_track_error()`).
///
/// # Safety
/// `handle` is a live `fast_handle`; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn trackcore_kotlin_track(handle: u64, data: *const u8, len: i32) -> i32 {
    if handle == 0 || data.is_null() || len < 0 {
        return 2;
    }
    // SAFETY: as documented above; the Kotlin caller keeps both alive for the call.
    let (tracker, bytes) = unsafe { (&*(handle as usize as *const NativeTracker), std::slice::from_raw_parts(data, len as usize)) };
    let result = catch_unwind(AssertUnwindSafe(|| match Wire(bytes).event() {
        Some(event) => tracker.core.track(event),
        None => Err(Error::UnsupportedType { key: "event".into(), type_name: "malformed wire bytes".into() }),
    }));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(info(&e)));
            1
        }
        Err(_) => 2,
    }
}

/// For the benchmark (`bench/`): the same crossing as
/// [`trackcore_kotlin_track`] doing nothing, so the share of `track()` that is
/// the JNA call itself can be measured.
#[no_mangle]
pub extern "C" fn trackcore_kotlin_probe(_handle: u64, _data: *const u8, len: i32) -> i32 {
    i32::from(len < 0)
}

/// Reads the bytes `Wire.kt` writes: little-endian, strings as u32 length +
/// UTF-8. Every read is bounds-checked; malformed input is `None`, never a panic.
struct Wire<'a>(&'a [u8]);

impl Wire<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => Some(Some(self.str()?)),
        }
    }
    fn event(mut self) -> Option<Event> {
        let event_name = self.str()?;
        let (user_id, id, email) = (self.opt_str()?, self.opt_str()?, self.opt_str()?);
        let created_at = match self.u8()? {
            0 => None,
            _ => Some(self.i64()?),
        };
        let n = self.u32()? as usize;
        let mut metadata = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let key = self.str()?;
            metadata.push((key, self.value()?));
        }
        self.0.is_empty().then_some(Event { event_name, user_id, id, email, created_at, metadata })
    }
    fn value(&mut self) -> Option<Value> {
        Some(match self.u8()? {
            0 => Value::Null,
            1 => Value::String(self.str()?),
            2 => Value::Int(self.i64()?),
            3 => Value::Float(f64::from_bits(self.i64()? as u64)),
            4 => Value::Bool(self.u8()? != 0),
            5 => Value::Date(self.i64()?),
            6 => Value::Money { amount: self.i64()?, currency: self.str()? },
            7 => Value::RichLink { url: self.str()?, value: self.str()? },
            8 => {
                let n = self.u32()? as usize;
                let mut fields = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let key = self.str()?;
                    let v = match self.value()? {
                        // Only one level crosses: deeper values are named by type.
                        Value::Object(_) => Value::Unsupported("map".into()),
                        v => v,
                    };
                    fields.push((key, v));
                }
                Value::Object(fields)
            }
            9 => Value::Unsupported(self.str()?),
            10 => {
                self.u32()?;
                Value::Array(Vec::new())
            }
            11 => Value::BigInt(self.str()?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }

    #[test]
    fn wire_bytes_become_the_core_event() {
        let mut b = Vec::new();
        s(&mut b, "upgraded-plan");
        b.push(1);
        s(&mut b, "u-1");
        b.extend_from_slice(&[0, 0, 1]);
        b.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        s(&mut b, "plan");
        b.push(1);
        s(&mut b, "pro");
        s(&mut b, "price");
        b.push(6);
        b.extend_from_slice(&100i64.to_le_bytes());
        s(&mut b, "eur");
        let e = Wire(&b).event().unwrap();
        assert_eq!(e, Event::new("upgraded-plan").user_id("u-1").created_at(1_700_000_000).meta("plan", "pro").meta("price", Value::Money { amount: 100, currency: "eur".into() }));
        for cut in 0..b.len() {
            assert!(Wire(&b[..cut]).event().is_none(), "a truncation at {cut} must be refused, not read");
        }
    }
}
