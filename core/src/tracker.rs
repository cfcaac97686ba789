//! The public face: [`Tracker`], which owns its whole lifecycle behind `&self`.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, Overflow};
use crate::event::Event;
use crate::fork;
use crate::pipeline::{Msg, NameSet, Runtime, REPORT_GRACE};
use crate::report::on_reporter_thread;
use crate::stats::{Counters, Stats};
use crate::store::Body;
use crate::Error;

/// Sends events to Intercom in the background.
///
/// `Tracker` is `Send + Sync` and every method takes `&self`: share one per
/// process (behind an `Arc` or a static). [`Tracker::track`] validates on the
/// caller's thread and never waits on the network; delivery problems are
/// retried, counted in [`Tracker::stats`] and reported to `Config::on_error`,
/// never returned. No method waits longer than the bound it is given,
/// whatever other threads are doing.
///
/// Fork-safe: in a child process the first call finds the parent's pipeline
/// (whose threads do not exist there) and starts a fresh one; the parent's
/// queued events stay the parent's and are never sent twice.
pub struct Tracker {
    config: Config,
    closed: AtomicBool,
    /// The current process's pipeline. Replaced (never freed while the
    /// tracker lives) after a fork; see [`Tracker::runtime`].
    current: AtomicPtr<Runtime>,
    /// `generation + 1` of a replacement under way, 0 when none.
    rebuilding: AtomicU64,
}

impl Tracker {
    /// Start a tracker: checks the configuration, then starts the dispatcher
    /// and reporter threads (sender threads start as they are needed). Fails
    /// with `missing_access_token` or `invalid_config`; never touches the network.
    pub fn new(config: Config) -> Result<Tracker, Error> {
        config.check()?;
        fork::install();
        let runtime = Runtime::start(&config, NameSet::default())?;
        Ok(Tracker {
            config,
            closed: AtomicBool::new(false),
            current: AtomicPtr::new(Box::into_raw(Box::new(runtime))),
            rebuilding: AtomicU64::new(0),
        })
    }

    /// This process's pipeline, started afresh if the current one was built
    /// by the parent of a fork.
    #[inline]
    fn runtime(&self) -> Result<&Runtime, Error> {
        // SAFETY: `current` always points to a live Runtime: runtimes are only
        // freed by `Drop` (no other borrow of the tracker exists then), and a
        // replaced one is leaked, never freed.
        let rt = unsafe { &*self.current.load(Ordering::Acquire) };
        if rt.origin.is_current() {
            return Ok(rt);
        }
        self.replace_after_fork()
    }

    /// The pipeline only if it belongs to this process (calls that need
    /// nothing from a fresh pipeline in a forked child use this).
    fn own_runtime(&self) -> Option<&Runtime> {
        // SAFETY: as in `runtime`.
        let rt = unsafe { &*self.current.load(Ordering::Acquire) };
        rt.origin.is_current_process().then_some(rt)
    }

    #[cold]
    fn replace_after_fork(&self) -> Result<&Runtime, Error> {
        loop {
            let generation = fork::generation();
            // SAFETY: as in `runtime`.
            let old = unsafe { &*self.current.load(Ordering::Acquire) };
            if old.origin.is_current() {
                return Ok(old);
            }
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            let claim = self.rebuilding.load(Ordering::Acquire);
            if claim == generation + 1 {
                // Another thread of this process is starting it.
                std::thread::yield_now();
                continue;
            }
            // A claim from an earlier generation belongs to a thread that does
            // not exist here any more.
            if self.rebuilding.compare_exchange(claim, generation + 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
                continue;
            }
            // Whatever happens while starting (a user's limiter factory may
            // panic), the claim is given up, or every later call would wait for it.
            struct Release<'a>(&'a AtomicU64);
            impl Drop for Release<'_> {
                fn drop(&mut self) {
                    self.0.store(0, Ordering::Release);
                }
            }
            let _release = Release(&self.rebuilding);
            // The parent's spool slot stays the parent's: this process lets go
            // of its inherited copy of the lock, so the slot is free again as
            // soon as the parent is gone.
            if let Some(lock) = &old.spool_lock {
                lock.release_in_child();
            }
            let fresh = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Runtime::start(&self.config, old.names_snapshot())
            }))
            .unwrap_or_else(|_| {
                Err(Error::InvalidConfig { option: "rate_limiter".into(), reason: "panicked while starting a pipeline".into() })
            });
            let result = match fresh {
                Ok(rt) => {
                    // The parent's pipeline is left as it is (its threads do not
                    // exist here and its locks may be held): leaked, never sent from.
                    self.current.store(Box::into_raw(Box::new(rt)), Ordering::Release);
                    log::debug!(target: "trackcore", "started a fresh pipeline after fork (pid {})", std::process::id());
                    Ok(())
                }
                Err(e) => Err(e),
            };
            result?;
        }
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
        let rt = self.runtime()?;
        let prepared = event.prepare(crate::unix_now().as_secs() as i64)?;
        rt.names.check(&event.event_name)?;
        let c = &rt.counters;
        Counters::add(&c.tracked, 1);
        let cap = self.config.queue_capacity as i64;
        let policy = self.config.overflow;
        // Count it as queued first: the dispatcher takes it off the count.
        let before = c.queued.fetch_add(1, Ordering::Relaxed);
        // Under drop_oldest the event goes in and the dispatcher evicts the
        // oldest; should it fall a whole capacity behind, the newest is dropped,
        // so memory stays bounded whatever the dispatcher's scheduling.
        let over = match policy {
            Overflow::DropOldest => before >= cap.saturating_mul(2).max(cap + 1024),
            _ => before >= cap,
        };
        if over {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            let room = policy == Overflow::Block && {
                let deadline = crate::later(Instant::now(), self.config.block_timeout);
                Counters::gauge(&c.blocked, 1);
                // Room freed by the dispatcher goes to whoever counts first.
                let room = rt.room.wait(deadline, || {
                    c.queued.fetch_add(1, Ordering::Relaxed) < cap || {
                        c.queued.fetch_sub(1, Ordering::Relaxed);
                        false
                    }
                });
                Counters::gauge(&c.blocked, -1);
                room
            };
            if !room {
                let capacity = self.config.queue_capacity;
                let error = if rt.room.is_closed() {
                    // A shutdown ended the wait: the event is one it gives up.
                    Counters::add(&c.dropped_shutdown, 1);
                    Error::UndeliveredAtShutdown
                } else {
                    Counters::add(&c.dropped_queue_full, 1);
                    Error::QueueFull { capacity, policy: policy.as_str() }
                };
                rt.reporter.report(Body::from(prepared.body), error);
                return Ok(());
            }
        }
        // Unbounded: never blocks, never fails while the runtime holds a receiver.
        let _ = rt.ingress.send(Msg::Event(prepared));
        if self.closed.load(Ordering::SeqCst) {
            // A shutdown began while this call was under way and its
            // dispatcher may already have stopped: settle what is stranded.
            rt.settle_stranded();
        }
        Ok(())
    }

    /// Wait until every event tracked before this call is settled (delivered,
    /// failed, or dropped) and its report has reached the error callback, or
    /// until `timeout` passes. Returns `true` if all settled.
    ///
    /// Called from inside the error callback it returns `false` at once: the
    /// callback's own thread is what a flush would wait for.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = crate::later(Instant::now(), timeout);
        if on_reporter_thread() {
            log::debug!(target: "trackcore", "flush() called from the error callback returns at once (it would wait for itself)");
            return false;
        }
        let Some(rt) = self.own_runtime() else {
            // A forked child that has tracked nothing yet has nothing to flush.
            return true;
        };
        if self.closed.load(Ordering::SeqCst) && rt.has_stopped() {
            // After shutdown nothing moves any more: say at once whether anything is left.
            rt.settle_stranded();
            let s = rt.counters.snapshot();
            return s.queued == 0 && s.in_flight == 0;
        }
        // Failures reported during the flush reach the callback before it returns.
        rt.flush(deadline) && rt.reporter.drain(deadline)
    }

    /// Wait until every event tracked before this call is written to the
    /// spool (`spool_dir`) and synced to disk, or until `timeout` passes.
    /// `true` once it is. Without a spool there is no disk to reach: `true`
    /// once the events reached the dispatcher. A webhook receiver acknowledges
    /// its sender after this, so the sender's own retries cover a crash.
    ///
    /// ```
    /// use std::time::Duration;
    /// use trackcore::{Config, Event, Tracker};
    /// let mut config = Config::default();
    /// config.memory = true;
    /// let tracker = Tracker::new(config)?;
    /// tracker.track(Event::new("webhook-received").user_id("u-1"))?;
    /// assert!(tracker.sync(Duration::from_secs(1))); // then acknowledge the webhook
    /// # Ok::<(), trackcore::Error>(())
    /// ```
    pub fn sync(&self, timeout: Duration) -> bool {
        let deadline = crate::later(Instant::now(), timeout);
        if on_reporter_thread() {
            return false;
        }
        let Some(rt) = self.own_runtime() else {
            return true;
        };
        if self.closed.load(Ordering::SeqCst) && rt.has_stopped() {
            return false;
        }
        rt.sync(deadline)
    }

    /// Flush for at most `timeout`, then stop the background threads. Events
    /// still undelivered are counted as `dropped_shutdown` and reported; the
    /// last part of the bound (up to half a second) is kept for those reports
    /// to reach the callback. With a spool (`spool_dir`) nothing is given up:
    /// what is undelivered stays on disk (counted as `persisted`) for the next
    /// tracker on the same directory. After it returns no callback runs and
    /// `track()` returns `closed`. Returns `true` if everything was delivered.
    ///
    /// Idempotent and thread-safe: concurrent callers each return within their
    /// own `timeout`; the pipeline stops by the earliest deadline asked for.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let deadline = crate::later(start, timeout);
        // Keep part of the bound for the reports of what is given up.
        let grace = REPORT_GRACE.min(timeout / 5);
        let stop_by = deadline.checked_sub(grace).unwrap_or(deadline).max(start);
        self.closed.store(true, Ordering::SeqCst);
        let Some(rt) = self.own_runtime() else {
            // A forked child that never used the tracker: the parent's events
            // are the parent's to deliver.
            return true;
        };
        if rt.reporter.is_silenced() && rt.has_stopped() {
            // Shut down before: say at once how that went.
            rt.settle_stranded();
            let s = rt.counters.snapshot();
            return s.dropped_shutdown == 0
                && s.persisted == 0
                && s.queued == 0
                && s.in_flight == 0;
        }
        // track() calls waiting for room under overflow=block stop waiting.
        rt.room.close();
        let before = rt.counters.snapshot();
        let _ = rt.ingress.send(Msg::Shutdown { stop_by, report_by: deadline });
        let stopped = rt.wait_stopped(deadline);
        rt.settle_stranded();
        // The callback is the caller here: its reports come after it returns.
        let reported = on_reporter_thread() || rt.reporter.drain(deadline);
        rt.reporter.silence();
        let s = rt.counters.snapshot();
        let given_up = s.dropped_shutdown - before.dropped_shutdown;
        let unreported = s.reports_dropped - before.reports_dropped;
        if given_up > 0 || unreported > 0 {
            // Said here, on the caller's thread: the reporter is silenced now.
            log::warn!(
                target: "trackcore",
                "shutdown gave up on {given_up} undelivered events; {unreported} reports did not reach the error callback in time"
            );
        }
        stopped
            && reported
            && s.dropped_shutdown == 0
            && s.persisted == 0
            && s.queued == 0
            && s.in_flight == 0
            && unreported == 0
    }

    /// After [`Tracker::shutdown`], wait up to `timeout` for an error callback
    /// that was already running when the shutdown's bound passed (none starts
    /// after shutdown returns). `true` when no callback is running. Bindings
    /// whose runtime cannot outlive a running callback (an interpreter about
    /// to finalize) call it at exit.
    pub fn wait_for_callbacks(&self, timeout: Duration) -> bool {
        let deadline = crate::later(Instant::now(), timeout);
        self.own_runtime().is_none_or(|rt| on_reporter_thread() || rt.reporter.wait_idle(deadline))
    }

    /// A snapshot of the counters. Cheap; never blocks.
    pub fn stats(&self) -> Stats {
        match self.own_runtime() {
            Some(rt) => {
                if self.closed.load(Ordering::Relaxed) {
                    rt.settle_stranded();
                }
                rt.counters.snapshot()
            }
            None => Stats::default(),
        }
    }

    /// The configuration this tracker runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// In memory mode, the bodies recorded so far, parsed (oldest first).
    /// Empty in live mode. See [`Tracker::recorded_json`].
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        self.recorded_json().iter().filter_map(|b| serde_json::from_str(b).ok()).collect()
    }

    /// In memory mode, the exact JSON bodies recorded so far (oldest first),
    /// after waiting (up to `drop_timeout`) for events tracked before the call
    /// to pass through the pipeline. Memory mode runs the real pipeline with a
    /// recording transport: de-duplication, overflow and stats behave as in
    /// production.
    pub fn recorded_json(&self) -> Vec<String> {
        let Some(rt) = self.own_runtime() else { return Vec::new() };
        let Some(rec) = &rt.recorded else { return Vec::new() };
        if !self.closed.load(Ordering::Relaxed) && !on_reporter_thread() {
            rt.flush(crate::later(Instant::now(), self.config.drop_timeout));
        }
        let rec = rec.lock().unwrap_or_else(|p| p.into_inner());
        rec.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    /// In memory mode, forget the recorded events.
    pub fn clear_recorded(&self) {
        if let Some(rec) = self.own_runtime().and_then(|rt| rt.recorded.as_ref()) {
            rec.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

impl Drop for Tracker {
    /// Shuts down with `Config::drop_timeout` as the bound.
    fn drop(&mut self) {
        self.shutdown(self.config.drop_timeout);
        let rt = *self.current.get_mut();
        // SAFETY: `rt` came from Box::into_raw and nothing borrows the tracker
        // now. A pipeline built by another process (the parent of a fork) is
        // leaked instead: its threads' state is not this process's to tear down.
        unsafe {
            if (*rt).origin.is_current_process() {
                drop(Box::from_raw(rt));
            }
        }
    }
}
