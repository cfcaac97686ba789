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

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::scheduler::LOG_EVERY;

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
    /// The receiving end too, so silencing can settle what is still queued.
    rx: Receiver<Report>,
    counters: Arc<Counters>,
    silenced: Arc<Silence>,
}

/// Whether callbacks may still start. The reporter decides to start one and
/// `silence` flips the flag under the same lock, so once `silence` returns no
/// callback starts.
#[derive(Default)]
struct Silence {
    lock: std::sync::Mutex<()>,
    on: AtomicBool,
    /// A callback is running (set and cleared under `lock`).
    running: AtomicBool,
    idle: std::sync::Condvar,
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
        let silenced = Arc::new(Silence::default());
        let (s, c, r) = (silenced.clone(), counters.clone(), rx.clone());
        thread::Builder::new().name("trackcore-reporter".into()).spawn(move || run(r, callback, s, c))?;
        Ok(Reporter { tx, rx, counters, silenced })
    }

    /// From now on no callback starts; reports still queued, and any sent
    /// later, are counted in `reports_dropped` (those queued, before this returns).
    pub fn silence(&self) {
        {
            let _guard = self.silenced.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.silenced.on.store(true, Ordering::SeqCst);
        }
        while let Ok(report) = self.rx.try_recv() {
            match report {
                Report::Failure(..) => Counters::add(&self.counters.reports_dropped, 1),
                Report::Barrier(done) => {
                    let _ = done.send(());
                }
                Report::Log(..) => {}
            }
        }
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

    /// Whether `silence` has been called.
    pub fn is_silenced(&self) -> bool {
        self.silenced.on.load(Ordering::SeqCst)
    }

    /// Wait until no callback is running, or `deadline`; `true` if none is.
    /// After `silence` none starts again, so this is final.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut guard = self.silenced.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.silenced.running.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self.silenced.idle.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
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

/// Losses written to the log: the first at once, then at most one line per
/// `LOG_EVERY` that counts what happened meanwhile, by code, so an overflow
/// storm is a few lines, not one per event.
#[derive(Default)]
struct LossLog {
    last: Option<Instant>,
    pending: Vec<(&'static str, u64, String)>,
}

impl LossLog {
    fn add(&mut self, event: &FailedEvent, error: &Error, now: Instant) {
        if matches!(error, Error::Unauthorized { .. } | Error::DeliveryStalled { .. }) {
            return; // notices: the scheduler logs delivery's state once per change
        }
        if self.pending.is_empty() && self.last.is_none_or(|t| now >= t + LOG_EVERY) {
            self.last = Some(now);
            log::warn!(target: "trackcore", "event {:?} not delivered [{}]: {}", event.event_name(), error.code(), error);
            return;
        }
        match self.pending.iter_mut().find(|(code, _, _)| *code == error.code()) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 = error.to_string();
            }
            None => self.pending.push((error.code(), 1, error.to_string())),
        }
    }

    fn due(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then(|| self.last.map_or_else(Instant::now, |t| t + LOG_EVERY))
    }

    fn write(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let total: u64 = self.pending.iter().map(|(_, n, _)| n).sum();
        let parts: Vec<String> =
            self.pending.drain(..).map(|(code, n, last)| format!("{code} ×{n} (last: {last})")).collect();
        let secs = self.last.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        log::warn!(target: "trackcore", "{total} more events not delivered in the last {secs:.0} s: {}", parts.join("; "));
        self.last = Some(now);
    }
}

fn run(rx: Receiver<Report>, callback: Option<ErrorCallback>, silenced: Arc<Silence>, counters: Arc<Counters>) {
    ON_REPORTER_THREAD.with(|c| c.set(true));
    let mut losses = LossLog::default();
    loop {
        let next = match losses.due() {
            Some(due) => match rx.recv_deadline(due) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => break,
            },
        };
        let silent = silenced.on.load(Ordering::SeqCst);
        let Some(report) = next else {
            if !silent {
                losses.write(Instant::now());
            }
            continue;
        };
        match report {
            Report::Barrier(done) => {
                let _ = done.send(());
            }
            Report::Log(level, message) => {
                if !silent {
                    log::log!(target: "trackcore", level, "{message}");
                }
            }
            Report::Failure(_, _) if silent => {
                Counters::add(&counters.reports_dropped, 1);
            }
            Report::Failure(event, error) => {
                losses.add(&event, &error, Instant::now());
                if let Some(cb) = &callback {
                    let guard = silenced.lock.lock().unwrap_or_else(|p| p.into_inner());
                    if silenced.on.load(Ordering::SeqCst) {
                        Counters::add(&counters.reports_dropped, 1);
                        continue;
                    }
                    silenced.running.store(true, Ordering::SeqCst);
                    drop(guard);
                    if catch_unwind(AssertUnwindSafe(|| cb(&event, &error))).is_err() {
                        log::error!(target: "trackcore", "the error callback panicked; trackcore carries on");
                    }
                    let _guard = silenced.lock.lock().unwrap_or_else(|p| p.into_inner());
                    silenced.running.store(false, Ordering::SeqCst);
                    silenced.idle.notify_all();
                }
            }
        }
    }
    if !silenced.on.load(Ordering::SeqCst) {
        losses.write(Instant::now());
    }
}
