//! The bounded channel and the dispatcher thread.
//!
//! `track()` hands [`Prepared`] events to a bounded crossbeam channel (the
//! overflow policy applies when it is full). One dispatcher thread drains it in
//! batches, drops de-duplicated copies, paces requests through the
//! [`RateLimiter`], hands them to the sender pool, and decides what happens to
//! each outcome: settle, retry later, give up, or pause on a refused token.
//! It also answers flushes and carries out shutdown.
//!
//! Where a disk spool will go: between `ingress` and `ready` — the dispatcher
//! would append received events to the spool and settle them there, and
//! recovery would refill `ready` from it. Events are already plain bytes here.

use std::cmp::{Ordering, Reverse};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::collections::{BTreeSet, BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, select, unbounded, Receiver, RecvTimeoutError, Sender};

use crate::config::Config;
use crate::delivery::{spawn_senders, Http, Outcome};
use crate::event::Prepared;
use crate::ratelimit::RateLimiter;
use crate::report::Reporter;
use crate::retry;
use crate::stats::Counters;
use crate::Error;

/// What travels through the bounded ingress channel.
pub(crate) enum Msg {
    Event(Prepared),
    /// Answer `true` once everything received before this marker is settled;
    /// forgotten after its deadline (the caller has stopped waiting).
    Flush(Sender<bool>, Instant),
}

/// What travels through the unbounded control channel.
pub(crate) enum Control {
    /// A flush marker that `drop_oldest` evicted from the head of the queue:
    /// everything before it has already been received, so order is kept.
    Flush(Sender<bool>, Instant),
    Shutdown { deadline: Instant },
}

/// The caller-side handles of a running pipeline.
pub(crate) struct Pipeline {
    pub ingress: Sender<Msg>,
    /// A receiving handle on the same queue, used by `drop_oldest` to evict.
    pub evict: Receiver<Msg>,
    pub control: Sender<Control>,
    pub dispatcher: std::sync::Mutex<Option<JoinHandle<()>>>,
}

struct Job {
    seq: u64,
    /// De-duplication key, forgotten again if the event is not delivered.
    key: Option<u64>,
    body: Vec<u8>,
    retries: u32,
    first_sent: Option<Instant>,
}

struct Timed(Instant, Job);
impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.0, self.1.seq).cmp(&(o.0, o.1.seq))
    }
}

/// The last `cap` de-duplication keys seen, oldest forgotten first.
struct RecentKeys {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
}

impl RecentKeys {
    fn new(cap: usize) -> Self {
        RecentKeys { set: HashSet::with_capacity(cap.min(4096)), order: VecDeque::new(), cap }
    }
    fn remove(&mut self, k: u64) {
        // Its place in `order` stays; popping it later removes nothing or,
        // if it was inserted again, forgets it early, which only means sending.
        self.set.remove(&k);
    }

    /// `false` when the key was already seen.
    fn insert(&mut self, k: u64) -> bool {
        if !self.set.insert(k) {
            return false;
        }
        self.order.push_back(k);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// How long a shutdown may wait for room to report what it gives up.
pub(crate) const REPORT_GRACE: Duration = Duration::from_millis(500);

/// How often a busy dispatcher looks at the queue.
const LINGER: Duration = Duration::from_millis(2);
/// Empty looks (about a second's worth) before the dispatcher parks on the queue.
const IDLE_POLLS_BEFORE_PARKING: u32 = 500;

/// How many de-duplication keys are remembered.
const DEDUPE_MEMORY: usize = 100_000;

struct Dispatcher {
    ingress: Receiver<Msg>,
    control: Receiver<Control>,
    work: Sender<Job>,
    results: Receiver<(Job, Outcome)>,
    limiter: Arc<dyn RateLimiter>,
    reporter: Reporter,
    counters: Arc<Counters>,

    max_in_flight: usize,
    max_retries: u32,
    retry_deadline: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    probe_interval: Duration,
    batch_size: usize,
    backlog_cap: usize,
    dedupe: Option<RecentKeys>,

    next_seq: u64,
    unsettled: BTreeSet<u64>,
    ready: VecDeque<Job>,
    retrying: BinaryHeap<Reverse<Timed>>,
    /// The requests under way, with a copy of each body so a shutdown that
    /// cannot wait for them can still report each one. Its length is the
    /// number of requests in flight.
    in_flight_bodies: std::collections::HashMap<u64, Vec<u8>>,
    flushers: Vec<(u64, Sender<bool>, Instant)>,
    paused_until: Option<Instant>,
    probing: bool,
    waiting_since: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    idle_polls: u32,
}

impl Pipeline {
    /// Start the reporter-fed dispatcher and its senders.
    pub fn start(
        cfg: &Config,
        http: Http,
        limiter: Arc<dyn RateLimiter>,
        reporter: Reporter,
        counters: Arc<Counters>,
    ) -> Result<Pipeline, Error> {
        let (ingress_tx, ingress_rx) = bounded(cfg.queue_capacity);
        let (control_tx, control_rx) = unbounded();
        let (work_tx, work_rx) = bounded::<Job>(cfg.max_in_flight);
        let (done_tx, done_rx) = unbounded();
        let io_err = |e: std::io::Error| Error::InvalidConfig { option: "threads".into(), reason: e.to_string() };
        spawn_senders(cfg.max_in_flight, Arc::new(http), limiter.clone(), work_rx, done_tx, |j: &Job| &j.body)
            .map_err(io_err)?;
        let d = Dispatcher {
            ingress: ingress_rx.clone(),
            control: control_rx,
            work: work_tx,
            results: done_rx,
            limiter,
            reporter,
            counters,
            max_in_flight: cfg.max_in_flight,
            max_retries: cfg.max_retries,
            retry_deadline: cfg.retry_deadline,
            backoff_base: cfg.backoff_base,
            backoff_max: cfg.backoff_max,
            probe_interval: cfg.auth_probe_interval,
            batch_size: cfg.batch_size,
            backlog_cap: cfg.max_pending.max(cfg.max_in_flight * 2),
            dedupe: cfg.dedupe.then(|| RecentKeys::new(DEDUPE_MEMORY)),
            next_seq: 0,
            unsettled: BTreeSet::new(),
            ready: VecDeque::new(),
            retrying: BinaryHeap::new(),
            in_flight_bodies: std::collections::HashMap::new(),
            flushers: Vec::new(),
            paused_until: None,
            probing: false,
            waiting_since: None,
            shutdown_deadline: None,
            idle_polls: IDLE_POLLS_BEFORE_PARKING,
        };
        let handle =
            thread::Builder::new().name("trackcore-dispatcher".into()).spawn(move || d.run()).map_err(io_err)?;
        Ok(Pipeline {
            ingress: ingress_tx,
            evict: ingress_rx,
            control: control_tx,
            dispatcher: std::sync::Mutex::new(Some(handle)),
        })
    }
}

impl Dispatcher {
    fn run(mut self) {
        let never_msg = never::<Msg>();
        loop {
            let now = Instant::now();
            self.promote_due(now);
            let limiter_wake = self.dispatch(now);
            self.answer_flushers();
            if let Some(deadline) = self.shutdown_deadline {
                if (self.unsettled.is_empty() && self.ingress.is_empty()) || now >= deadline {
                    break;
                }
            }
            let mut wake = now + Duration::from_secs(1);
            // While a probe is under way only its answer matters: don't wake for the pause.
            let pause_end = self.paused_until.filter(|u| *u > now && !self.probing);
            for t in [limiter_wake, self.retrying.peek().map(|r| r.0 .0), pause_end, self.shutdown_deadline]
                .into_iter()
                .flatten()
            {
                wake = wake.min(t);
            }
            let room = self.unsettled.len() < self.backlog_cap;
            // While events keep arriving, poll the queue every LINGER instead of
            // parking on it: a parked receiver makes every track() pay a futex
            // wake-up (about a microsecond), which is most of its cost.
            if room && self.idle_polls < IDLE_POLLS_BEFORE_PARKING {
                if self.drain_batch() {
                    // More may be queued: only look at results and control, then come back.
                    self.idle_polls = 0;
                    wake = now;
                } else {
                    self.idle_polls += 1;
                    wake = wake.min(now + LINGER);
                }
            }
            let timeout = wake.saturating_duration_since(now);
            let parked = room && self.idle_polls >= IDLE_POLLS_BEFORE_PARKING;
            let ingress = if parked { &self.ingress } else { &never_msg };
            select! {
                recv(ingress) -> m => match m {
                    Ok(m) => {
                        self.receive(m);
                        self.drain_batch();
                        self.idle_polls = 0;
                    }
                    // Every Tracker handle is gone without a shutdown: finish what we have, briefly.
                    Err(_) => { self.shutdown_deadline.get_or_insert(crate::later(now, Duration::from_secs(2))); }
                },
                recv(self.control) -> c => match c {
                    Ok(Control::Flush(tx, until)) => self.add_flusher(tx, until),
                    Ok(Control::Shutdown { deadline }) => {
                        self.shutdown_deadline = Some(deadline);
                        // Take in everything already queued; track() is closed now.
                        while let Ok(m) = self.ingress.try_recv() {
                            self.receive(m);
                        }
                    }
                    Err(_) => { self.shutdown_deadline.get_or_insert(now); }
                },
                recv(self.results) -> r => if let Ok((job, outcome)) = r {
                    self.on_outcome(job, outcome);
                    // Take the other answers already here (at most one per request
                    // in flight) before the next round of dispatching.
                    while let Ok((job, outcome)) = self.results.try_recv() {
                        self.on_outcome(job, outcome);
                    }
                },
                default(timeout) => {}
            }
        }
        self.give_up_at_shutdown();
    }

    /// Take up to `batch_size` queued messages, while the backlog has room;
    /// `true` if there was any.
    fn drain_batch(&mut self) -> bool {
        let mut any = false;
        // Room is checked per message: a producer refilling the queue as fast
        // as it is drained must not carry the backlog past its cap.
        for _ in 0..self.batch_size {
            if self.unsettled.len() >= self.backlog_cap {
                break;
            }
            match self.ingress.try_recv() {
                Ok(m) => {
                    self.receive(m);
                    any = true;
                }
                Err(_) => break,
            }
        }
        any
    }

    fn receive(&mut self, m: Msg) {
        match m {
            Msg::Flush(tx, until) => self.add_flusher(tx, until),
            Msg::Event(p) => {
                let mut key = None;
                if let Some(keys) = &mut self.dedupe {
                    let k = p.dedupe_key();
                    if !keys.insert(k) {
                        Counters::add(&self.counters.deduplicated, 1);
                        return;
                    }
                    key = Some(k);
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.unsettled.insert(seq);
                self.ready.push_back(Job { seq, key, body: p.body, retries: 0, first_sent: None });
            }
        }
    }

    fn add_flusher(&mut self, tx: Sender<bool>, until: Instant) {
        if self.unsettled.is_empty() {
            let _ = tx.send(true);
        } else {
            self.flushers.push((self.next_seq, tx, until));
        }
    }

    fn answer_flushers(&mut self) {
        if self.flushers.is_empty() {
            return;
        }
        let oldest = self.unsettled.first().copied().unwrap_or(u64::MAX);
        let now = Instant::now();
        self.flushers.retain(|(upto, tx, until)| {
            if oldest >= *upto {
                let _ = tx.send(true);
                false
            } else {
                // A waiter whose caller gave up is forgotten, so per-request
                // flushes during a long outage cannot pile up.
                *until > now
            }
        });
    }

    fn promote_due(&mut self, now: Instant) {
        while self.retrying.peek().is_some_and(|r| r.0 .0 <= now) {
            if let Some(Reverse(Timed(_, job))) = self.retrying.pop() {
                self.ready.push_back(job);
            }
        }
    }

    /// Send what pacing allows; returns when pacing next allows a request.
    fn dispatch(&mut self, now: Instant) -> Option<Instant> {
        if self.shutdown_deadline.is_some_and(|d| now >= d) {
            return None; // past the shutdown deadline nothing new starts
        }
        if let Some(until) = self.paused_until {
            if self.probing || now < until || self.ready.is_empty() {
                return None;
            }
            // One probe request tells whether the token works again.
            self.probing = true;
            return self.send_next(now, 1);
        }
        self.send_next(now, self.max_in_flight)
    }

    fn send_next(&mut self, now: Instant, limit: usize) -> Option<Instant> {
        while self.in_flight_bodies.len() < limit && !self.ready.is_empty() {
            let permit = catch_unwind(AssertUnwindSafe(|| self.limiter.try_acquire(now)))
                .unwrap_or(Err(Duration::from_secs(1))); // a custom limiter that panics: wait, don't die
            if let Err(wait) = permit {
                self.waiting_since.get_or_insert(now);
                if self.probing && self.in_flight_bodies.is_empty() {
                    self.probing = false; // try the probe again when pacing allows
                }
                return Some(crate::later(now, wait));
            }
            if let Some(since) = self.waiting_since.take() {
                Counters::add(&self.counters.rate_limit_wait_us, now.duration_since(since).as_micros() as u64);
            }
            let Some(mut job) = self.ready.pop_front() else { break };
            job.first_sent.get_or_insert(now);
            self.in_flight_bodies.insert(job.seq, job.body.clone());
            Counters::add(&self.counters.in_flight, 1);
            if self.work.send(job).is_err() {
                break; // senders gone: only at teardown
            }
        }
        None
    }

    fn settle(&mut self, seq: u64) {
        self.unsettled.remove(&seq);
    }

    fn fail(&mut self, job: Job, error: Error) {
        self.settle(job.seq);
        // Not delivered, so tracking the same event again must not count as a copy
        // (e.g. after a 404 the app creates the contact and tracks it again).
        if let (Some(keys), Some(k)) = (&mut self.dedupe, job.key) {
            keys.remove(k);
        }
        match self.shutdown_deadline {
            // A shutdown gives up on many at once: wait for room rather than lose reports.
            Some(deadline) => self.reporter.report_until(job.body, error, crate::later(deadline, REPORT_GRACE)),
            None => self.reporter.report(job.body, error),
        }
    }

    fn on_outcome(&mut self, mut job: Job, outcome: Outcome) {
        self.in_flight_bodies.remove(&job.seq);
        self.counters.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        if !matches!(outcome, Outcome::Unauthorized { .. }) && self.paused_until.is_some() {
            // Anything but 401/403 means the token works again.
            self.paused_until = None;
            self.probing = false;
            self.counters.auth_paused.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        match outcome {
            Outcome::Delivered => {
                Counters::add(&self.counters.delivered, 1);
                self.settle(job.seq);
            }
            Outcome::Reject { status, code, message } => {
                Counters::add(&self.counters.failed_rejected, 1);
                self.fail(job, Error::Rejected { status, intercom_code: code, message });
            }
            Outcome::Unauthorized { status } => {
                let first = self.paused_until.is_none();
                self.paused_until = Some(crate::later(now, self.probe_interval));
                self.probing = false;
                self.counters.auth_paused.store(1, std::sync::atomic::Ordering::Relaxed);
                if first {
                    let probe_secs = self.probe_interval.as_secs();
                    self.reporter.report(job.body.clone(), Error::Unauthorized { status, probe_secs });
                }
                // The event is kept: it goes first when delivery resumes.
                self.ready.push_front(job);
            }
            Outcome::Retry { reason, wait, status } => {
                if status == Some(429) {
                    Counters::add(&self.counters.rate_limited, 1);
                }
                job.retries += 1;
                let delay = wait.unwrap_or_else(|| retry::backoff(job.retries, self.backoff_base, self.backoff_max));
                let started = job.first_sent.unwrap_or(now);
                if job.retries > self.max_retries || crate::later(now, delay) > crate::later(started, self.retry_deadline) {
                    Counters::add(&self.counters.failed_retries_exhausted, 1);
                    let attempts = job.retries;
                    self.fail(job, Error::RetriesExhausted { attempts, last: reason });
                } else {
                    Counters::add(&self.counters.retried, 1);
                    self.retrying.push(Reverse(Timed(crate::later(now, delay), job)));
                }
            }
        }
    }

    /// The shutdown deadline passed: report everything still here.
    fn give_up_at_shutdown(mut self) {
        // Wait for requests already under way, within the deadline.
        let deadline = self.shutdown_deadline.unwrap_or_else(Instant::now);
        while !self.in_flight_bodies.is_empty() {
            match self.results.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((job, outcome)) => self.on_outcome(job, outcome),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        while let Ok(m) = self.ingress.try_recv() {
            self.receive(m);
        }
        let mut left: Vec<Job> = self.ready.drain(..).collect();
        left.extend(self.retrying.drain().map(|Reverse(Timed(_, j))| j));
        for job in left {
            Counters::add(&self.counters.dropped_shutdown, 1);
            self.fail(job, Error::UndeliveredAtShutdown);
        }
        // Requests still in flight past the deadline may yet land; they are
        // reported as undelivered because nobody will learn their outcome.
        let stuck: Vec<(u64, Vec<u8>)> = self.in_flight_bodies.drain().collect();
        for (seq, body) in stuck {
            Counters::add(&self.counters.dropped_shutdown, 1);
            self.counters.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.settle(seq);
            self.reporter.report_until(body, Error::UndeliveredAtShutdown, crate::later(deadline, REPORT_GRACE));
        }
        self.answer_flushers();
        for (_, tx, _) in self.flushers.drain(..) {
            let _ = tx.send(false);
        }
    }
}
