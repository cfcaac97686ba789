//! `NativeTracker`: the core's `Tracker` behind a JavaScript object.
//!
//! The core tracker is used through `&self` from any thread (an `Arc` shared
//! with the tasks that wait); this binding holds no lock of its own. Waiting
//! (`flush`, `shutdown`, `recorded`) happens on libuv's thread pool through
//! napi's `AsyncTask`, never on the event loop. Reports reach JavaScript through
//! a weak thread-safe function, so the tracker never keeps the loop alive.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use trackcore::{Config, Error, ErrorCallback, Event, FailedEvent, Tracker};

use crate::convert;
use crate::errors::Failure;
use crate::logging::{self, LogFn, LogSink};

/// `(kind, body, code, message, field, status)`: kind 0 is a report of an
/// undelivered event, kind 1 a barrier (see [`NativeTracker::barrier`]).
type ReportArgs = FnArgs<(u32, String, String, String, Option<String>, Option<u32>)>;
/// Weak: pending reports never keep the event loop alive.
type ReportFn = ThreadsafeFunction<ReportArgs, Unknown<'static>, ReportArgs, Status, false, true>;

/// The core tracker as the JavaScript `Tracker` holds it. Built by [`create`].
#[napi]
pub struct NativeTracker {
    core: Arc<Tracker>,
    default_timeout: Duration,
    reports: Option<Arc<ReportFn>>,
    _log: Option<Arc<LogSink>>,
}

/// Build a tracker from an options object (camelCase core option names), or
/// say why not. `onReport` receives every undeliverable event on the JS
/// thread; `onLog` every core log line.
#[napi]
pub fn create(options: Object, on_report: Option<ReportFn>, on_log: Option<LogFn>) -> Result<Either<NativeTracker, Failure>> {
    let mut config = Config::default();
    let names = options.get_property_names()?;
    for i in 0..names.get_array_length()? {
        let js_name: String = names.get_element(i)?;
        let v: Unknown = options.get_named_property_unchecked(&js_name)?;
        let name = convert::snake_case(&js_name);
        let value = match convert::option_value(&v)? {
            Ok(value) => value,
            Err(reason) => {
                return Ok(Either::B(Failure::from(&Error::InvalidConfig { option: js_name, reason })));
            }
        };
        if config.get(&name).is_none() {
            let e = Error::InvalidConfig { option: js_name, reason: "unknown option".into() };
            return Ok(Either::B(Failure::from(&e)));
        }
        if let Err(e) = config.set(&name, value) {
            return Ok(Either::B(Failure::from(&convert::option_error(&js_name, e))));
        }
    }
    let reports = on_report.map(Arc::new);
    if let Some(f) = &reports {
        config.on_error = Some(error_callback(f.clone()));
    }
    let default_timeout = config.drop_timeout;
    let log = on_log.map(logging::register);
    match Tracker::new(config) {
        Ok(core) => Ok(Either::A(NativeTracker { core: Arc::new(core), default_timeout, reports, _log: log })),
        Err(e) => Ok(Either::B(Failure::from(&e))),
    }
}

/// The core's callback: hands each report to the JS thread and returns at
/// once (the queue is unbounded; a closed environment drops the report).
fn error_callback(f: Arc<ReportFn>) -> ErrorCallback {
    Arc::new(move |event: &FailedEvent, err: &Error| {
        let d = Failure::from(err);
        let args = (0, event.body_json().to_string(), d.code, d.message, d.field, d.status);
        let _ = f.call(FnArgs::from(args), ThreadsafeFunctionCallMode::NonBlocking);
    })
}

fn timeout(ms: Option<f64>, default: Duration) -> Duration {
    match ms {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Duration::from_secs_f64((ms / 1000.0).min(1e9)),
        _ => default,
    }
}

/// What an [`AsyncTask`] waits for on the thread pool.
pub enum Wait {
    Flush(Duration),
    Sync(Duration),
    Shutdown(Duration),
}

/// `flush`/`shutdown` off the event loop: resolves with the core's answer.
pub struct WaitTask {
    core: Arc<Tracker>,
    wait: Wait,
}

impl Task for WaitTask {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> Result<bool> {
        Ok(match self.wait {
            Wait::Flush(t) => self.core.flush(t),
            Wait::Sync(t) => self.core.sync(t),
            Wait::Shutdown(t) => self.core.shutdown(t),
        })
    }

    fn resolve(&mut self, _env: Env, done: bool) -> Result<bool> {
        Ok(done)
    }
}

/// `recorded()` off the event loop (the core waits for the pipeline).
pub struct RecordedTask {
    core: Arc<Tracker>,
}

impl Task for RecordedTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;

    fn compute(&mut self) -> Result<Vec<String>> {
        Ok(self.core.recorded_json())
    }

    fn resolve(&mut self, _env: Env, bodies: Vec<String>) -> Result<Vec<String>> {
        Ok(bodies)
    }
}

#[napi]
impl NativeTracker {
    /// Validate one event and queue it. Returns `null`, or the error to throw.
    /// Never waits on the network; under `overflow: "block"` it may wait up to
    /// `blockTimeout` for room.
    #[napi]
    pub fn track(
        &self,
        event_name: Unknown,
        user_id: Unknown,
        id: Unknown,
        email: Unknown,
        created_at: Unknown,
        metadata: Unknown,
    ) -> Result<Option<Failure>> {
        macro_rules! field {
            ($e:expr) => {
                match $e? {
                    Ok(v) => v,
                    Err(bad) => return Ok(Some(Failure::from(bad))),
                }
            };
        }
        let event = Event {
            event_name: field!(convert::event_name(&event_name)),
            user_id: field!(convert::identifier("user_id", &user_id, true)),
            id: field!(convert::identifier("id", &id, false)),
            email: field!(convert::identifier("email", &email, false)),
            created_at: field!(convert::created_at(&created_at)),
            metadata: field!(convert::metadata(&metadata)),
        };
        Ok(self.core.track(event).err().map(|e| Failure::from(&e)))
    }

    /// Resolves `true` once every event tracked before the call is settled and
    /// reported, `false` at the timeout (default: `dropTimeout`).
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn flush(&self, timeout_ms: Option<f64>) -> AsyncTask<WaitTask> {
        AsyncTask::new(WaitTask { core: self.core.clone(), wait: Wait::Flush(timeout(timeout_ms, self.default_timeout)) })
    }

    /// Resolves `true` once every event tracked before the call is written to
    /// the spool (`spoolDir`) and synced to disk (at once without a spool).
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn sync(&self, timeout_ms: Option<f64>) -> AsyncTask<WaitTask> {
        AsyncTask::new(WaitTask {
            core: self.core.clone(),
            wait: Wait::Sync(timeout(timeout_ms, self.default_timeout)),
        })
    }

    /// Flush for at most the timeout, then stop; resolves `true` if nothing was given up.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn shutdown(&self, timeout_ms: Option<f64>) -> AsyncTask<WaitTask> {
        AsyncTask::new(WaitTask { core: self.core.clone(), wait: Wait::Shutdown(timeout(timeout_ms, self.default_timeout)) })
    }

    /// The same on the calling thread, for `process.on('exit')`, where nothing
    /// asynchronous runs any more. Bounded by the timeout.
    #[napi]
    pub fn shutdown_sync(&self, timeout_ms: Option<f64>) -> bool {
        self.core.shutdown(timeout(timeout_ms, self.default_timeout))
    }

    /// Queue a barrier behind every report already handed to JavaScript:
    /// `onReport(1, ...)` runs after them. `false` if there is no report
    /// channel (or its environment is closing): nothing to wait for.
    #[napi]
    pub fn barrier(&self) -> bool {
        match &self.reports {
            Some(f) => {
                let args = (1, String::new(), String::new(), String::new(), None, None);
                f.call(FnArgs::from(args), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
            }
            None => false,
        }
    }

    /// The counters, camelCased (`authPaused` is a boolean).
    #[napi]
    pub fn stats(&self, env: Env) -> Result<Object<'_>> {
        let stats = self.core.stats();
        let mut o = Object::new(&env)?;
        for (name, value) in stats.fields() {
            let key = convert::camel_case(name);
            if name == "auth_paused" {
                o.set_named_property(&key, value != 0)?;
            } else {
                o.set_named_property(&key, value as f64)?;
            }
        }
        Ok(o)
    }

    /// In memory mode, the exact bodies recorded so far (oldest first), once
    /// events tracked before the call have passed through the pipeline.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn recorded(&self) -> AsyncTask<RecordedTask> {
        AsyncTask::new(RecordedTask { core: self.core.clone() })
    }

    /// In memory mode, forget the recorded events.
    #[napi]
    pub fn clear_recorded(&self) {
        self.core.clear_recorded();
    }

    /// The core option `name` (snake_case) as the tracker runs with it, as text
    /// (the token shows as `<redacted>`).
    #[napi]
    pub fn option(&self, name: String) -> Option<String> {
        self.core.config().get(&name).map(|v| v.to_text())
    }

    /// Where events are posted.
    #[napi]
    pub fn events_url(&self) -> String {
        self.core.config().events_url()
    }
}

impl Drop for NativeTracker {
    /// The JavaScript object was collected (or its environment torn down):
    /// shut the core down on a thread of its own, so the finaliser never
    /// waits on the event loop's thread.
    fn drop(&mut self) {
        let core = self.core.clone();
        let bound = self.default_timeout;
        let _ = std::thread::Builder::new().name("trackcore-drop".into()).spawn(move || {
            core.shutdown(bound);
        });
    }
}
