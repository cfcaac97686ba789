//! Reporting undeliverable events to the user's error callback.
//!
//! Reports travel over a bounded channel to one reporter thread, so a slow
//! or failing callback never stalls delivery and never runs on the caller's
//! thread. A panicking callback is caught and logged. Once a tracker's
//! shutdown has returned, the reporter is silenced: no callback runs after it
//! (what is still queued is counted in `reports_dropped` instead).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::stats::Counters;
use crate::Error;

/// The error callback: called once per event that could not be delivered
/// (and once when delivery pauses on a refused token), on trackcore's
/// reporter thread.
pub type ErrorCallback = Arc<dyn Fn(&FailedEvent, &Error) + Send + Sync>;

/// An event that could not be delivered, as it would have been sent.
#[derive(Clone, PartialEq, Eq)]
pub struct FailedEvent {
    body: crate::store::Body,
}

impl FailedEvent {
    pub(crate) fn new(body: crate::store::Body) -> Self {
        FailedEvent { body }
    }
    /// The JSON body that was (or would have been) posted to `/events`.
    pub fn body_json(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("{}")
    }
    /// The body parsed into a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The event's name.
    pub fn event_name(&self) -> String {
        self.to_json()["event_name"].as_str().unwrap_or_default().to_string()
    }
}

impl std::fmt::Debug for FailedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailedEvent({})", self.body_json())
    }
}

enum Report {
    Failure(FailedEvent, Error),
    /// A line for the `log` facade. Written from the reporter thread, so a
    /// binding's logger that needs its interpreter's lock never stalls delivery.
    Log(log::Level, String),
    Barrier(Sender<()>),
}

/// Sending side of the reporter, cloned into the tracker and the dispatcher.
#[derive(Clone)]
pub(crate) struct Reporter {
    tx: Sender<Report>,
    counters: Arc<Counters>,
    silenced: Arc<AtomicBool>,
}

thread_local! {
    static ON_REPORTER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a reporter thread (that is, the caller is
/// inside an error callback): a flush or shutdown from there must not wait
/// for the reporter, which is waiting for it.
pub(crate) fn on_reporter_thread() -> bool {
    ON_REPORTER_THREAD.with(|c| c.get())
}

const REPORT_QUEUE: usize = 10_000;

impl Reporter {
    pub fn start(callback: Option<ErrorCallback>, counters: Arc<Counters>) -> std::io::Result<Reporter> {
        let (tx, rx) = bounded(REPORT_QUEUE);
        let silenced = Arc::new(AtomicBool::new(false));
        let (s, c) = (silenced.clone(), counters.clone());
        thread::Builder::new().name("trackcore-reporter".into()).spawn(move || run(rx, callback, s, c))?;
        Ok(Reporter { tx, counters, silenced })
    }

    /// From now on no callback runs; reports are counted as dropped.
    pub fn silence(&self) {
        self.silenced.store(true, Ordering::SeqCst);
    }

    /// Report one failure; never blocks (a full report queue is counted).
    pub fn report(&self, body: crate::store::Body, error: Error) {
        match self.tx.try_send(Report::Failure(FailedEvent::new(body), error)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Counters::add(&self.counters.reports_dropped, 1)
            }
        }
    }

    /// Write one line to the log from the reporter thread; never blocks (a
    /// line that finds the queue full is dropped: the next change is logged).
    pub fn log(&self, level: log::Level, message: String) {
        let _ = self.tx.try_send(Report::Log(level, message));
    }

    /// Report one failure, waiting for room until `deadline` (used where
    /// many reports come at once, such as a shutdown giving up).
    pub fn report_until(&self, body: crate::store::Body, error: Error, deadline: Instant) {
        if self.tx.send_deadline(Report::Failure(FailedEvent::new(body), error), deadline).is_err() {
            Counters::add(&self.counters.reports_dropped, 1)
        }
    }

    /// Wait until every report sent before this call has been handed to the
    /// callback, or `deadline` passes.
    pub fn drain(&self, deadline: Instant) -> bool {
        let (tx, rx) = bounded(1);
        if self.tx.send_deadline(Report::Barrier(tx), deadline).is_err() {
            return false;
        }
        rx.recv_deadline(deadline).is_ok()
    }
}

fn run(rx: Receiver<Report>, callback: Option<ErrorCallback>, silenced: Arc<AtomicBool>, counters: Arc<Counters>) {
    ON_REPORTER_THREAD.with(|c| c.set(true));
    for report in rx {
        match report {
            Report::Barrier(done) => {
                let _ = done.send(());
            }
            Report::Log(level, message) => {
                if !silenced.load(Ordering::SeqCst) {
                    log::log!(target: "trackcore", level, "{message}");
                }
            }
            Report::Failure(_, _) if silenced.load(Ordering::SeqCst) => {
                Counters::add(&counters.reports_dropped, 1);
            }
            Report::Failure(event, error) => {
                // Delivery's state changes are logged by the scheduler, once
                // each; one line per event would flood a log in an outage.
                log::debug!(target: "trackcore", "reporting [{}] {}: {}", error.code(), event.event_name(), error);
                if let Some(cb) = &callback {
                    if catch_unwind(AssertUnwindSafe(|| cb(&event, &error))).is_err() {
                        log::error!(target: "trackcore", "the error callback panicked; trackcore carries on");
                    }
                }
            }
        }
    }
}
