//! Reporting undeliverable events to the user's error callback.
//!
//! Reports travel over a bounded channel to one reporter thread, so a slow
//! or failing callback never stalls delivery and never runs on the caller's
//! thread. A panicking callback is caught and logged.

use std::panic::{catch_unwind, AssertUnwindSafe};
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
    body: Vec<u8>,
}

impl FailedEvent {
    pub(crate) fn new(body: Vec<u8>) -> Self {
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
    Barrier(Sender<()>),
}

/// Sending side of the reporter, cloned into the tracker and the dispatcher.
#[derive(Clone)]
pub(crate) struct Reporter {
    tx: Sender<Report>,
    counters: Arc<Counters>,
}

const REPORT_QUEUE: usize = 10_000;

impl Reporter {
    pub fn start(callback: Option<ErrorCallback>, counters: Arc<Counters>) -> std::io::Result<Reporter> {
        let (tx, rx) = bounded(REPORT_QUEUE);
        thread::Builder::new().name("trackcore-reporter".into()).spawn(move || run(rx, callback))?;
        Ok(Reporter { tx, counters })
    }

    /// Report one failure; never blocks (a full report queue is counted).
    pub fn report(&self, body: Vec<u8>, error: Error) {
        match self.tx.try_send(Report::Failure(FailedEvent::new(body), error)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Counters::add(&self.counters.reports_dropped, 1)
            }
        }
    }

    /// Report one failure, waiting for room until `deadline` (used where
    /// many reports come at once, such as a shutdown giving up).
    pub fn report_until(&self, body: Vec<u8>, error: Error, deadline: Instant) {
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

fn run(rx: Receiver<Report>, callback: Option<ErrorCallback>) {
    for report in rx {
        match report {
            Report::Barrier(done) => {
                let _ = done.send(());
            }
            Report::Failure(event, error) => {
                log::warn!(target: "trackcore", "event not delivered [{}]: {}", error.code(), error);
                if let Some(cb) = &callback {
                    if catch_unwind(AssertUnwindSafe(|| cb(&event, &error))).is_err() {
                        log::error!(target: "trackcore", "the error callback panicked; trackcore carries on");
                    }
                }
            }
        }
    }
}
