//! The public face: [`Tracker`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, SendTimeoutError, TrySendError};

use crate::config::{Config, Overflow};
use crate::delivery::Http;
use crate::event::{Event, Prepared};
use crate::pipeline::{Control, Msg, Pipeline};
use crate::ratelimit::{RateLimiter, WindowLimiter};
use crate::report::Reporter;
use crate::stats::{Counters, Stats};
use crate::Error;

/// Sends events to Intercom in the background.
///
/// `Tracker` is `Send + Sync`: share one per process (behind an `Arc` or a
/// static). [`Tracker::track`] validates on the caller's thread and never
/// waits on the network; delivery problems are retried, counted in
/// [`Tracker::stats`] and reported to `Config::on_error`, never returned.
pub struct Tracker {
    config: Config,
    names: NameGuard,
    counters: Arc<Counters>,
    reporter: Reporter,
    closed: AtomicBool,
    mode: Mode,
}

enum Mode {
    /// Validate and record, send nothing.
    Memory(Mutex<Vec<Vec<u8>>>),
    Live(Pipeline),
}

/// FNV-1a: the name sets hold at most a few hundred short names, so a cheap
/// hash beats SipHash on the hot path and flooding them is impossible (capped).
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type NameSet = HashSet<String, std::hash::BuildHasherDefault<Fnv>>;

/// Distinct-name cap and allow-list, checked on the caller's thread.
struct NameGuard {
    seen: RwLock<NameSet>,
    cap: usize,
    allowed: Option<NameSet>,
}

impl NameGuard {
    fn check(&self, name: &str) -> Result<(), Error> {
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(name) {
                return Err(Error::EventNameNotAllowed { name: name.into() });
            }
        }
        if self.seen.read().unwrap_or_else(|p| p.into_inner()).contains(name) {
            return Ok(());
        }
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if seen.contains(name) {
            return Ok(());
        }
        if seen.len() >= self.cap {
            return Err(Error::EventNameLimitReached { name: name.into(), limit: self.cap });
        }
        seen.insert(name.to_string());
        Ok(())
    }
}

impl Tracker {
    /// Start a tracker: checks the configuration, then (unless `memory`) starts
    /// the dispatcher, sender and reporter threads. Fails with
    /// `missing_access_token` or `invalid_config`; never touches the network.
    pub fn new(config: Config) -> Result<Tracker, Error> {
        config.check()?;
        let counters = Arc::new(Counters::default());
        let io_err = |e: std::io::Error| Error::InvalidConfig { option: "threads".into(), reason: e.to_string() };
        let reporter = Reporter::start(config.on_error.clone(), counters.clone()).map_err(io_err)?;
        let mode = if config.memory {
            Mode::Memory(Mutex::new(Vec::new()))
        } else {
            let token = config.resolve_token()?;
            let http = Http::new(&config, &token)?;
            let limiter: Arc<dyn RateLimiter> = match &config.rate_limiter {
                Some(l) => l.clone(),
                None => Arc::new(WindowLimiter::new(config.rate_limit_per_minute)),
            };
            Mode::Live(Pipeline::start(&config, http, limiter, reporter.clone(), counters.clone())?)
        };
        let names = NameGuard {
            seen: RwLock::new(NameSet::default()),
            cap: config.max_event_names,
            allowed: config.allowed_event_names.as_ref().map(|v| v.iter().cloned().collect()),
        };
        Ok(Tracker { config, names, counters, reporter, closed: AtomicBool::new(false), mode })
    }

    /// Validate `event` and queue it for delivery.
    ///
    /// Returns a typed input error at once (see [`Error::code`]) or `closed`
    /// after [`Tracker::shutdown`]. Never waits on the network; waits at most
    /// `block_timeout` for room under the `block` overflow policy. An event
    /// the overflow policy drops is counted and reported, not returned as an error.
    pub fn track(&self, event: Event) -> Result<(), Error> {
        self.track_ref(&event)
    }

    /// [`Tracker::track`] for a borrowed event.
    pub fn track_ref(&self, event: &Event) -> Result<(), Error> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let prepared = event.prepare(crate::unix_now().as_secs() as i64)?;
        self.names.check(&event.event_name)?;
        Counters::add(&self.counters.tracked, 1);
        match &self.mode {
            Mode::Memory(rec) => {
                rec.lock().unwrap_or_else(|p| p.into_inner()).push(prepared.body);
                // Recorded is as far as memory mode goes: the event is settled.
                Counters::add(&self.counters.delivered, 1);
            }
            Mode::Live(p) => {
                if self.enqueue(p, prepared) && self.closed.load(Ordering::SeqCst) {
                    // A shutdown began while this call was under way and may
                    // already have drained the queue: settle what is stranded.
                    self.drain_stranded(p);
                }
            }
        }
        Ok(())
    }

    /// Count and report events left in the queue after the dispatcher stopped.
    fn drain_stranded(&self, p: &Pipeline) {
        let deadline = crate::later(Instant::now(), crate::pipeline::REPORT_GRACE);
        while let Ok(m) = p.evict.try_recv() {
            match m {
                Msg::Event(ev) => {
                    Counters::add(&self.counters.dropped_shutdown, 1);
                    self.reporter.report_until(ev.body, Error::UndeliveredAtShutdown, deadline);
                }
                Msg::Flush(tx, _) => {
                    let _ = tx.send(false);
                }
            }
        }
    }

    /// Hand an event to the queue under the overflow policy; `true` if queued.
    fn enqueue(&self, p: &Pipeline, prepared: Prepared) -> bool {
        let cap = self.config.queue_capacity;
        let policy = self.config.overflow;
        let rejected = match policy {
            Overflow::DropNewest => match p.ingress.try_send(Msg::Event(prepared)) {
                Ok(()) => return true,
                Err(e) => e.into_inner(),
            },
            Overflow::Block => match p.ingress.send_timeout(Msg::Event(prepared), self.config.block_timeout) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(m)) | Err(SendTimeoutError::Disconnected(m)) => m,
            },
            Overflow::DropOldest => {
                let mut msg = Msg::Event(prepared);
                // Bounded: other producers may refill the slot we free.
                for _ in 0..64 {
                    match p.ingress.try_send(msg) {
                        Ok(()) => return true,
                        Err(TrySendError::Disconnected(m)) => {
                            msg = m;
                            break;
                        }
                        Err(TrySendError::Full(m)) => msg = m,
                    }
                    match p.evict.try_recv() {
                        Ok(Msg::Event(old)) => {
                            Counters::add(&self.counters.dropped_oldest, 1);
                            self.reporter.report(old.body, Error::QueueFull { capacity: cap, policy: policy.as_str() });
                        }
                        Ok(Msg::Flush(tx, until)) => {
                            let _ = p.control.send(Control::Flush(tx, until));
                        }
                        Err(_) => {}
                    }
                }
                msg
            }
        };
        if let Msg::Event(ev) = rejected {
            Counters::add(&self.counters.dropped_queue_full, 1);
            self.reporter.report(ev.body, Error::QueueFull { capacity: cap, policy: policy.as_str() });
        }
        false
    }

    /// Wait until every event tracked before this call is settled (delivered,
    /// failed, or dropped) or `timeout` passes. Returns `true` if all settled.
    /// Blocks the calling thread; bindings release their interpreter lock around it.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = crate::later(Instant::now(), timeout);
        let settled = match &self.mode {
            Mode::Memory(_) => true,
            // After shutdown nothing moves any more: say at once whether anything is left.
            Mode::Live(_) if self.closed.load(Ordering::SeqCst) => {
                let s = self.counters.snapshot();
                s.queued == 0 && s.in_flight == 0
            }
            Mode::Live(p) => {
                let (tx, rx) = bounded(1);
                match p.ingress.send_deadline(Msg::Flush(tx, deadline), deadline) {
                    Ok(()) => rx.recv_deadline(deadline).unwrap_or(false),
                    Err(_) => false,
                }
            }
        };
        // Failures reported during the flush reach the callback before it returns.
        settled && self.reporter.drain(deadline)
    }

    /// Flush for at most `timeout`, then stop the background threads. Events
    /// still undelivered are counted as `dropped_shutdown` and reported. Later
    /// `track()` calls return `closed`. Returns `true` if nothing had to be
    /// given up. Returns within `timeout` plus half a second in which the
    /// reports of what was given up reach the callback. Calling it again
    /// returns at once.
    /// Thread-safe: concurrent callers all wait for the same shutdown.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = crate::later(Instant::now(), timeout);
        let reports_dropped_before = self.counters.snapshot().reports_dropped;
        let mut clean = true;
        if let Mode::Live(p) = &self.mode {
            // The dispatcher handle's lock also makes concurrent shutdowns wait for the first.
            let mut dispatcher = p.dispatcher.lock().unwrap_or_else(|e| e.into_inner());
            if !self.closed.swap(true, Ordering::SeqCst) {
                let _ = p.control.send(Control::Shutdown { deadline });
            }
            if let Some(h) = dispatcher.take() {
                // A dispatcher that died cannot vouch for anything it held.
                clean &= h.join().is_ok();
            }
            drop(dispatcher);
            self.drain_stranded(p);
            let s = self.counters.snapshot();
            clean &= s.dropped_shutdown == 0 && s.queued == 0 && s.in_flight == 0;
        }
        self.closed.store(true, Ordering::SeqCst);
        // Reports of what was given up at the deadline get a short grace to reach the callback.
        let reported = self.reporter.drain(crate::later(deadline, crate::pipeline::REPORT_GRACE));
        reported && clean && self.counters.snapshot().reports_dropped == reports_dropped_before
    }

    /// A snapshot of the counters. Cheap; never blocks.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The configuration this tracker runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// In memory mode, the bodies recorded so far, parsed (oldest first).
    /// Empty in live mode.
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        self.recorded_json().iter().filter_map(|b| serde_json::from_str(b).ok()).collect()
    }

    /// In memory mode, the exact JSON bodies recorded so far (oldest first).
    pub fn recorded_json(&self) -> Vec<String> {
        match &self.mode {
            Mode::Memory(rec) => rec
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
            Mode::Live(_) => Vec::new(),
        }
    }

    /// In memory mode, forget the recorded events.
    pub fn clear_recorded(&self) {
        if let Mode::Memory(rec) = &self.mode {
            rec.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Call in a child process right after `fork()`: the parent's threads do
    /// not exist here, so their state is abandoned (never joined, never
    /// resent) and the child gets a fresh, empty pipeline of its own.
    pub fn reinit_after_fork(&mut self) -> Result<(), Error> {
        let fresh = Tracker::new(self.config.clone())?;
        let old = std::mem::replace(self, fresh);
        // Joining or dropping the parent's threads' channels could touch locks
        // held by threads that no longer exist: leak them instead.
        std::mem::forget(old);
        Ok(())
    }
}

impl Drop for Tracker {
    /// Shuts down with `Config::drop_timeout` as the bound.
    fn drop(&mut self) {
        self.shutdown(self.config.drop_timeout);
    }
}
