//! The core's log lines (target `trackcore`, written from its reporter
//! thread) → the `logger` option of each tracker, on its JavaScript thread.
//!
//! The `log` facade is process-wide, so one logger is installed per process
//! and every line goes to every live sink (one per tracker that has a logger,
//! on whichever thread the tracker lives). The sink list is the binding's only
//! shared state: its mutex is held just long enough to copy the list, never
//! across a call into JavaScript or a wait, and never on the path of
//! `track()`, `flush()` or `shutdown()`.

use std::sync::{Arc, Mutex, Once, Weak};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

/// `(level, message)` on the JavaScript thread; weak, so it never keeps the
/// event loop alive.
pub type LogFn = ThreadsafeFunction<FnArgs<(String, String)>, Unknown<'static>, FnArgs<(String, String)>, Status, false, true>;

/// One tracker's logger. Dropped with the tracker, which unregisters it.
pub struct LogSink(LogFn);

static SINKS: Mutex<Vec<Weak<LogSink>>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Forward;

impl log::Log for Forward {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.target().starts_with("trackcore")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sinks: Vec<Arc<LogSink>> = {
            let mut list = SINKS.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        if sinks.is_empty() {
            return;
        }
        let level = record.level().as_str().to_ascii_lowercase();
        let message = record.args().to_string();
        for sink in sinks {
            // Never blocks: the queue is unbounded. A closing environment
            // (a worker that ended) answers `Closing`, and the line is dropped.
            let _ = sink.0.call(FnArgs::from((level.clone(), message.clone())), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn flush(&self) {}
}

/// Register a tracker's logger; lines reach it until the returned sink is dropped.
pub fn register(f: LogFn) -> Arc<LogSink> {
    INSTALL.call_once(|| {
        // A host that installed its own Rust logger in this library keeps it.
        if log::set_boxed_logger(Box::new(Forward)).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    let sink = Arc::new(LogSink(f));
    SINKS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&sink));
    sink
}
