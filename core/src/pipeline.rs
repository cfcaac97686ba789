//! The threads around the scheduler: one process's running pipeline.
//!
//! `track()` counts an event as queued and hands it to an unbounded
//! crossbeam channel; capacity is enforced by that count, so a burst is
//! absorbed whatever the dispatcher thread's scheduling. The dispatcher thread
//! is a short loop: it moves messages and outcomes into the [`Scheduler`],
//! ticks it, and carries out its actions — bodies to the sender threads
//! (started as they are needed, up to `max_in_flight`), failures to the
//! reporter, answers to flushes, lines to the log. All decisions are the
//! scheduler's.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, select, unbounded, Receiver, Sender};

use crate::config::Config;
use crate::delivery::Http;
use crate::event::Prepared;
use crate::fork::Origin;
use crate::ratelimit::{LimiterChoice, RateLimiter};
use crate::report::Reporter;
use crate::scheduler::{Action, Policy, Scheduler};
use crate::spool::{SlotLock, SpoolStore};
use crate::stats::Counters;
use crate::store::{Body, EventStore, MemoryStore};
use crate::transport::{MemoryTransport, Outcome, Recorded, Request, Response, Transport};
use crate::Error;

/// What travels from the callers to the dispatcher, in order.
pub(crate) enum Msg {
    Event(Prepared),
    /// Answer once everything sent before this marker is settled, or `false`
    /// at the deadline (the caller has stopped waiting by then).
    Flush(Sender<bool>, Instant),
    /// Answer once everything sent before this marker is written to the
    /// spool and synced to disk (`true`), or could not be (`false`).
    Sync(Sender<bool>),
    /// Stop by `stop_by`; reports of what is given up may wait for room in
    /// the report queue until `report_by` (the caller's own deadline).
    Shutdown { stop_by: Instant, report_by: Instant },
}

/// Within a shutdown's bound, the share kept for the reports of what it gives
/// up to reach the callback (at most this much).
pub(crate) const REPORT_GRACE: Duration = Duration::from_millis(500);

/// How often a busy dispatcher looks at the queue.
const LINGER: Duration = Duration::from_millis(2);
/// Empty looks (about a second's worth) before the dispatcher parks on the queue.
const IDLE_POLLS_BEFORE_PARKING: u32 = 500;
/// Messages taken from the queue between two looks at outcomes.
const INTAKE_BATCH: usize = 1024;

/// FNV-1a: the name sets hold at most a few hundred short names, so a cheap
/// hash beats SipHash on the hot path and flooding them is impossible (capped).
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

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

pub(crate) type NameSet = HashSet<String, std::hash::BuildHasherDefault<Fnv>>;

/// Distinct-name cap and allow-list, checked on the caller's thread.
pub(crate) struct NameGuard {
    seen: RwLock<NameSet>,
    cap: usize,
    allowed: Option<NameSet>,
    /// Fleet mode: the cap is shared through Redis instead.
    shared: Option<Arc<crate::fleet::SharedNames>>,
}

impl NameGuard {
    fn new(config: &Config, seen: NameSet) -> NameGuard {
        NameGuard {
            seen: RwLock::new(seen),
            cap: config.max_event_names,
            allowed: config.allowed_event_names.as_ref().map(|v| v.iter().cloned().collect()),
            shared: None,
        }
    }

    pub fn check(&self, name: &str) -> Result<(), Error> {
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(name) {
                return Err(Error::EventNameNotAllowed { name: name.into() });
            }
        }
        if let Some(shared) = &self.shared {
            return shared.check(name);
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

    /// The names seen so far, if they can be read without waiting (a forked
    /// child copies them from its parent's pipeline, whose lock may be held
    /// by a thread that no longer exists).
    fn snapshot(&self) -> NameSet {
        self.seen.try_read().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Lets `track()` under `overflow="block"` wait for room without spinning.
#[derive(Default)]
pub(crate) struct Room {
    lock: Mutex<()>,
    freed: Condvar,
    waiters: AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
}

impl Room {
    /// Wait until `has_room()`, `deadline` or a shutdown; `true` if there is room.
    pub fn wait(&self, deadline: Instant, has_room: impl Fn() -> bool) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let room = loop {
            if self.closed.load(Ordering::SeqCst) {
                break false;
            }
            if has_room() {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            guard = self.freed.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        room
    }

    /// A shutdown: every waiter stops waiting (and drops its event).
    pub fn close(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::SeqCst);
        self.freed.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.freed.notify_all();
        }
    }
}

/// One process's pipeline: the caller-side handles and the shared state of
/// the threads it started. A tracker replaces it after a fork.
pub(crate) struct Runtime {
    pub origin: Origin,
    pub ingress: Sender<Msg>,
    /// A receiving handle on the same channel, to settle what a shutdown
    /// racing a `track()` left behind once the dispatcher has stopped.
    stranded: Receiver<Msg>,
    /// Disconnected when the dispatcher thread has stopped.
    stopped: Receiver<()>,
    pub counters: Arc<Counters>,
    pub names: NameGuard,
    pub reporter: Reporter,
    pub room: Arc<Room>,
    pub recorded: Option<Recorded>,
    /// The spool slot's lock, which a forked child lets go of.
    pub spool_lock: Option<Arc<SlotLock>>,
}

/// Bodies a spool keeps in memory; beyond it events wait on disk only.
const SPOOL_WINDOW: usize = 8192;

impl Runtime {
    /// Start the threads of a fresh pipeline. `names` seeds the distinct-name
    /// guard (a forked child keeps its parent's).
    pub fn start(config: &Config, names: NameSet) -> Result<Runtime, Error> {
        let counters = Arc::new(Counters::default());
        let io_err = |e: std::io::Error| Error::InvalidConfig { option: "threads".into(), reason: e.to_string() };
        let mut shared_names = None;
        let (transport, recorded, limiter): (Arc<dyn Transport>, Option<Recorded>, Box<dyn RateLimiter>) = if config.memory {
            let recorded = Recorded::default();
            let limiter = LimiterChoice::Unlimited.build(config.rate_limit_per_minute)?;
            (Arc::new(MemoryTransport { recorded: recorded.clone() }), Some(recorded), limiter)
        } else {
            let token = config.resolve_token()?;
            let http: Arc<dyn Transport> = Arc::new(Http::new(config, &token)?);
            match &config.shared_budget {
                // Fleet mode (crate::fleet): permits and names come from Redis.
                Some(url) => {
                    let budget = crate::fleet::SharedBudget {
                        url: url.clone(),
                        prefix: config.shared_budget_prefix.clone(),
                        fallback_share: config.shared_budget_fallback_percent as f64 / 100.0,
                    };
                    let fleet = crate::fleet::start(&budget, &token, config.rate_limit_per_minute, config.max_event_names, counters.clone())?;
                    shared_names = Some(fleet.names.clone());
                    let checked = crate::fleet::NameCheckedTransport { inner: http, names: fleet.names };
                    (Arc::new(checked) as Arc<dyn Transport>, None, Box::new(fleet.limiter) as Box<dyn RateLimiter>)
                }
                None => (http, None, config.rate_limiter.build(config.rate_limit_per_minute)?),
            }
        };
        let reporter =
            Reporter::start(config.on_error.clone(), counters.clone()).map_err(io_err)?;
        let (store, spool_lock): (Box<dyn EventStore>, _) = match &config.spool_dir {
            Some(dir) => {
                // Half the queue at most, so track() has room while the window is full.
                let window = SPOOL_WINDOW.min(config.queue_capacity / 2).max(1);
                let spool = SpoolStore::open(
                    dir,
                    window,
                    config.spool_max_bytes,
                    config.spool_sync_interval,
                    counters.clone(),
                )
                .map_err(|e| Error::InvalidConfig {
                    option: "spool_dir".into(),
                    reason: format!("{}: {e}", dir.display()),
                })?;
                let lock = spool.lock();
                (Box::new(spool), Some(lock))
            }
            None => (Box::new(MemoryStore::new()), None),
        };
        let scheduler = Scheduler::new(
            Policy::from_config(config),
            store,
            limiter,
            counters.clone(),
        );
        let (ingress_tx, ingress_rx) = unbounded();
        let (stopped_tx, stopped_rx) = bounded::<()>(0);
        let (results_tx, results_rx) = unbounded();
        let (work_tx, work_rx) = unbounded();
        let room = Arc::new(Room::default());
        let d = Dispatcher {
            ingress: ingress_rx.clone(),
            results: results_rx,
            results_tx,
            work: work_tx,
            work_rx,
            transport,
            senders: 0,
            max_senders: config.max_in_flight,
            busy: 0,
            scheduler,
            counters: counters.clone(),
            reporter: reporter.clone(),
            room: room.clone(),
            flushes: HashMap::new(),
            next_flush: 0,
            shutdown: None,
            report_by: None,
            actions: Vec::new(),
            _stopped: stopped_tx,
        };
        thread::Builder::new().name("trackcore-dispatcher".into()).spawn(move || d.run()).map_err(io_err)?;
        Ok(Runtime {
            origin: Origin::here(),
            ingress: ingress_tx,
            stranded: ingress_rx,
            stopped: stopped_rx,
            counters,
            names: NameGuard { shared: shared_names, ..NameGuard::new(config, names) },
            reporter,
            room,
            recorded,
            spool_lock,
        })
    }

    /// Send a sync marker and wait for its answer until `deadline`.
    pub fn sync(&self, deadline: Instant) -> bool {
        self.ask(Msg::Sync, deadline)
    }

    /// The names this pipeline has seen, for a successor after a fork.
    pub fn names_snapshot(&self) -> NameSet {
        self.names.snapshot()
    }

    /// Whether the dispatcher thread has stopped.
    pub fn has_stopped(&self) -> bool {
        matches!(self.stopped.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected))
    }

    /// Wait until the dispatcher has stopped or `deadline`; `true` if it has.
    pub fn wait_stopped(&self, deadline: Instant) -> bool {
        matches!(self.stopped.recv_deadline(deadline), Err(crossbeam_channel::RecvTimeoutError::Disconnected))
    }

    /// Send a flush marker and wait for its answer until `deadline`.
    pub fn flush(&self, deadline: Instant) -> bool {
        self.ask(|tx| Msg::Flush(tx, deadline), deadline)
    }

    /// Send the marker `msg` builds around an answer channel, in order behind
    /// everything tracked before, and wait for the dispatcher's answer until
    /// `deadline` (`false` at the deadline, or if it stopped without answering).
    fn ask(&self, msg: impl FnOnce(Sender<bool>) -> Msg, deadline: Instant) -> bool {
        let (tx, rx) = bounded(1);
        if self.ingress.send(msg(tx)).is_err() {
            return false;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        select! {
            recv(rx) -> r => r.unwrap_or(false),
            // Stopped before answering: the marker is stranded in the queue.
            recv(self.stopped) -> _ => { self.settle_stranded(); false },
            default(timeout) => false,
        }
    }

    /// Once the dispatcher has stopped, count and report what is left in the
    /// queue (only a `track()` racing a shutdown leaves anything there).
    pub fn settle_stranded(&self) {
        if !self.has_stopped() {
            return;
        }
        while let Ok(m) = self.stranded.try_recv() {
            match m {
                Msg::Event(ev) => {
                    Counters::gauge(&self.counters.queued, -1);
                    Counters::add(&self.counters.dropped_shutdown, 1);
                    self.reporter.report(Body::from(ev.body), Error::UndeliveredAtShutdown);
                }
                Msg::Flush(tx, _) | Msg::Sync(tx) => {
                    let _ = tx.send(false);
                }
                Msg::Shutdown { .. } => {}
            }
        }
    }
}

struct Dispatcher {
    ingress: Receiver<Msg>,
    results: Receiver<(Request, Response)>,
    results_tx: Sender<(Request, Response)>,
    work: Sender<(Request, Body)>,
    work_rx: Receiver<(Request, Body)>,
    transport: Arc<dyn Transport>,
    senders: usize,
    max_senders: usize,
    /// Requests handed to senders and not answered yet.
    busy: usize,
    scheduler: Scheduler,
    counters: Arc<Counters>,
    reporter: Reporter,
    room: Arc<Room>,
    flushes: HashMap<u64, Sender<bool>>,
    next_flush: u64,
    shutdown: Option<Instant>,
    /// The latest deadline of a shutdown caller still waiting for reports.
    report_by: Option<Instant>,
    actions: Vec<Action>,
    /// Dropped when the thread ends: tells shutdown callers it has stopped.
    _stopped: Sender<()>,
}

impl Dispatcher {
    fn run(mut self) {
        let never_msg = never::<Msg>();
        let mut idle_polls = IDLE_POLLS_BEFORE_PARKING;
        self.scheduler.start(Instant::now(), &mut self.actions);
        self.perform();
        loop {
            let now = Instant::now();
            let took = self.intake();
            if took > 0 {
                // De-duplicated copies and evictions free room without any other action.
                self.room.notify();
            }
            while let Ok((request, response)) = self.results.try_recv() {
                self.busy -= 1;
                self.scheduler.answered(request, response, now, &mut self.actions);
            }
            let wake = self.scheduler.tick(now, &mut self.actions);
            self.perform();
            // What this cycle appended and settled reaches the spool's files.
            self.scheduler.commit(now, false, &mut self.actions);
            if self.scheduler.finished() {
                break;
            }
            // While events keep arriving, poll the queue every LINGER instead of
            // parking on it: a parked receiver makes every track() pay a futex
            // wake-up (about a microsecond), which is most of its cost.
            let mut until = wake.unwrap_or(now + Duration::from_secs(1)).min(now + Duration::from_secs(1));
            if took == INTAKE_BATCH {
                idle_polls = 0;
                until = now;
            } else if took > 0 || idle_polls < IDLE_POLLS_BEFORE_PARKING {
                idle_polls = if took > 0 { 0 } else { idle_polls + 1 };
                until = until.min(now + LINGER);
            }
            let parked = idle_polls >= IDLE_POLLS_BEFORE_PARKING;
            let ingress = if parked { &self.ingress } else { &never_msg };
            let timeout = until.saturating_duration_since(now);
            select! {
                recv(ingress) -> m => if let Ok(m) = m {
                    idle_polls = 0;
                    self.receive(m);
                },
                recv(self.results) -> r => if let Ok((request, response)) = r {
                    self.busy -= 1;
                    self.scheduler.answered(request, response, Instant::now(), &mut self.actions);
                },
                default(timeout) => {}
            }
        }
        // The last look: a track() racing the shutdown may have queued after
        // the scheduler finished. Whatever comes later still is settled by
        // the tracker (`Runtime::settle_stranded`).
        let deadline = self.report_by.unwrap_or_else(Instant::now);
        while let Ok(m) = self.ingress.try_recv() {
            match m {
                Msg::Event(ev) => {
                    Counters::gauge(&self.counters.queued, -1);
                    Counters::add(&self.counters.dropped_shutdown, 1);
                    self.reporter.report_until(Body::from(ev.body), Error::UndeliveredAtShutdown, deadline);
                }
                Msg::Flush(tx, _) | Msg::Sync(tx) => {
                    let _ = tx.send(false);
                }
                Msg::Shutdown { .. } => {}
            }
        }
        self.perform();
    }

    /// Take what callers sent, up to a batch (everything once shutting down).
    fn intake(&mut self) -> usize {
        let mut took = 0;
        while took < INTAKE_BATCH || self.shutdown.is_some() {
            match self.ingress.try_recv() {
                Ok(m) => {
                    self.receive(m);
                    took += 1;
                }
                Err(_) => break,
            }
        }
        took
    }

    fn receive(&mut self, m: Msg) {
        match m {
            Msg::Event(p) => {
                let key = p.dedupe_key();
                self.scheduler.accept(p.body, key, &mut self.actions);
            }
            Msg::Flush(tx, deadline) => {
                let id = self.next_flush;
                self.next_flush += 1;
                self.flushes.insert(id, tx);
                self.scheduler.flush(id, deadline, &mut self.actions);
            }
            Msg::Sync(tx) => {
                let ok = self
                    .scheduler
                    .commit(Instant::now(), true, &mut self.actions);
                let _ = tx.send(ok);
            }
            Msg::Shutdown { stop_by, report_by } => {
                self.shutdown = Some(self.shutdown.map_or(stop_by, |d| d.min(stop_by)));
                self.report_by = Some(self.report_by.map_or(report_by, |d| d.max(report_by)));
                self.scheduler.shutdown(stop_by);
            }
        }
    }

    /// Give a request to a sender, starting one if all are busy.
    fn hand_over(&mut self, request: Request, body: Body) {
        self.busy += 1;
        if self.busy > self.senders && self.senders < self.max_senders {
            self.senders += spawn_sender(self.senders, &self.transport, &self.work_rx, &self.results_tx);
        }
        if self.work.send((request, body)).is_err() {
            self.busy -= 1;
        }
    }

    fn perform(&mut self) {
        let mut freed = false;
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Send { seq, body } => {
                    freed = true;
                    self.hand_over(Request::Event(seq), body);
                }
                Action::CreateContact { id, body } => self.hand_over(Request::Contact(id), body),
                Action::Report { body, error } => {
                    freed = true;
                    match self.report_by {
                        // A shutdown gives up on many at once: wait for room
                        // rather than lose reports, while a caller still waits.
                        Some(deadline) => self.reporter.report_until(body, error, deadline),
                        None => self.reporter.report(body, error),
                    }
                }
                Action::Flushed { id, settled } => {
                    if let Some(tx) = self.flushes.remove(&id) {
                        let _ = tx.send(settled);
                    }
                }
                Action::Log { level, message } => self.reporter.log(level, message),
            }
        }
        self.actions = actions;
        if freed {
            self.room.notify();
        }
    }
}

/// Start one more sender thread; 1 if it started. With none running the
/// work waits until one can be started (the next dispatch tries again).
fn spawn_sender(i: usize, transport: &Arc<dyn Transport>, work: &Receiver<(Request, Body)>, done: &Sender<(Request, Response)>) -> usize {
    let (transport, work, done) = (transport.clone(), work.clone(), done.clone());
    let spawned = thread::Builder::new().name(format!("trackcore-sender-{i}")).stack_size(512 * 1024).spawn(move || {
        for (request, body) in work {
            let response = catch_unwind(AssertUnwindSafe(|| request.perform(&*transport, &body))).unwrap_or_else(|_| Response {
                outcome: Outcome::Retry { reason: "internal error while sending (a panic was caught)".into(), wait: None, status: None },
                rate: None,
            });
            if done.send((request, response)).is_err() {
                break;
            }
        }
    });
    match spawned {
        Ok(_) => 1,
        Err(e) => {
            log::error!(target: "trackcore", "could not start a sender thread: {e}");
            0
        }
    }
}
