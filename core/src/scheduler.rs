//! The delivery policy as a plain state machine: no threads, sockets or sleeps.
//!
//! The dispatcher thread (`pipeline`) feeds a [`Scheduler`] its inputs — an
//! event accepted, a flush asked for, a shutdown asked for, the outcome of a
//! request — and calls [`Scheduler::tick`] with the current time; the
//! scheduler answers with [`Action`]s (send this body, report this failure,
//! answer that flush, log this line) and the instant it next needs a tick.
//! Every decision — what to send next, when to retry, when to pause, what a
//! stat becomes, when trouble is worth a log line or a report — is made here,
//! so it is unit-tested with made-up instants.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Overflow};
use crate::ratelimit::{RateLimiter, Reservation, MIN_WAIT};
use crate::retry;
use crate::stats::Counters;
use crate::store::{Body, EventStore};
use crate::transport::{Outcome, Response};
use crate::Error;

/// What the scheduler asks its thread to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Hand this body to a sender; its outcome comes back with `seq`.
    Send { seq: u64, body: Body },
    /// Tell the error callback about this event.
    Report { body: Body, error: Error },
    /// Answer flush `id`: `true` if everything before it settled.
    Flushed { id: u64, settled: bool },
    /// One log line about a change in delivery's state.
    Log { level: log::Level, message: String },
}

/// The options the scheduler decides with (a copy of the tracker's).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub max_in_flight: usize,
    pub max_retries: u32,
    pub retry_deadline: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub probe_interval: Duration,
    pub capacity: usize,
    pub overflow: Overflow,
    pub dedupe: bool,
    pub spool_max_bytes: u64,
}

impl Policy {
    pub fn from_config(c: &Config) -> Policy {
        Policy {
            max_in_flight: c.max_in_flight,
            max_retries: c.max_retries,
            retry_deadline: c.retry_deadline,
            backoff_base: c.backoff_base,
            backoff_max: c.backoff_max,
            probe_interval: c.auth_probe_interval,
            capacity: c.queue_capacity,
            overflow: c.overflow,
            dedupe: c.dedupe,
            spool_max_bytes: c.spool_max_bytes,
        }
    }
}

/// Consecutive failed attempts of one kind after which delivery counts as
/// stalled and the error callback hears about it (without losing the event).
pub(crate) const STALL_AFTER: u32 = 3;
/// At most one log line about delivery's state per this interval; changes in
/// between are summed up in the next line.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(5);
/// How many de-duplication keys are remembered.
const DEDUPE_MEMORY: usize = 100_000;
/// Largest lease asked of the limiter at once.
const MAX_LEASE: usize = 256;

struct Job {
    seq: u64,
    /// De-duplication key, forgotten again if the event is not delivered.
    key: Option<u64>,
    /// Failed attempts that count against `max_retries`.
    retries: u32,
    /// Attempts answered 429 or lost to an outage: waiting on those is pacing,
    /// not failure, so only `retry_deadline` bounds them.
    waited: u32,
    first_sent: Option<Instant>,
}

/// Why all delivery waits behind one probe request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pause {
    /// 401/403: the token is refused; probe every `auth_probe_interval`.
    Auth,
    /// The endpoint cannot be reached: probe with backoff, resume on any answer.
    Outage,
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

/// The state of delivery, for logging and stall reports.
#[derive(Debug, Clone, PartialEq)]
enum Trouble {
    None,
    /// Transport errors: connection refused, timeouts, DNS.
    Unreachable(String),
    /// 5xx, 408, 409.
    ServerErrors(String),
    /// 429.
    RateLimited,
    /// 401/403.
    AuthRefused(u16),
    /// The rate limiter's backend cannot be asked.
    LimiterDown(String),
}

impl Trouble {
    fn kind(&self) -> u8 {
        match self {
            Trouble::None => 0,
            Trouble::Unreachable(_) => 1,
            Trouble::ServerErrors(_) => 2,
            Trouble::RateLimited => 3,
            Trouble::AuthRefused(_) => 4,
            Trouble::LimiterDown(_) => 5,
        }
    }
}

struct Health {
    state: Trouble,
    since: Option<Instant>,
    consecutive: u32,
    stall_reported: bool,
    last_log: Option<Instant>,
    /// A change not yet logged because of `LOG_EVERY`.
    unlogged_changes: u32,
    /// How long the trouble lasted, once it is over.
    resumed_after: Option<Duration>,
}

struct Flusher {
    id: u64,
    upto: u64,
    deadline: Instant,
}

/// The delivery state machine. See the module docs.
pub(crate) struct Scheduler {
    policy: Policy,
    store: Box<dyn EventStore>,
    limiter: Box<dyn RateLimiter>,
    counters: Arc<Counters>,
    dedupe: Option<RecentKeys>,
    ready: VecDeque<Job>,
    /// Events wait on disk beyond the store's memory window (logged when it changes).
    spilling: bool,
    retrying: BinaryHeap<Reverse<Timed>>,
    in_flight: HashMap<u64, Job>,
    /// Permits granted by the limiter and not used yet.
    lease: u32,
    /// Don't ask the limiter again before this.
    limiter_wait: Option<Instant>,
    waiting_since: Option<Instant>,
    flushers: Vec<Flusher>,
    /// Delivery paused behind one probe request: why, and until when.
    pause: Option<Pause>,
    paused_until: Option<Instant>,
    probing: bool,
    /// Probes in a row that met the same outage: its backoff grows with them.
    outage_probes: u32,
    shutdown: Option<Instant>,
    finished: bool,
    health: Health,
}

impl Scheduler {
    pub fn new(
        policy: Policy,
        store: Box<dyn EventStore>,
        limiter: Box<dyn RateLimiter>,
        counters: Arc<Counters>,
    ) -> Self {
        Scheduler {
            dedupe: policy.dedupe.then(|| RecentKeys::new(DEDUPE_MEMORY)),
            policy,
            store,
            limiter,
            counters,
            ready: VecDeque::new(),
            spilling: false,
            retrying: BinaryHeap::new(),
            in_flight: HashMap::new(),
            lease: 0,
            limiter_wait: None,
            waiting_since: None,
            flushers: Vec::new(),
            pause: None,
            paused_until: None,
            probing: false,
            outage_probes: 0,
            shutdown: None,
            finished: false,
            health: Health {
                state: Trouble::None,
                since: None,
                consecutive: 0,
                stall_reported: false,
                last_log: None,
                unlogged_changes: 0,
                resumed_after: None,
            },
        }
    }

    /// Take over what an earlier process left in the store (on the dispatcher
    /// thread, before anything else).
    pub fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        let store = &mut self.store;
        if catch_unwind(AssertUnwindSafe(|| store.recover())).is_err() {
            log::error!(target: "trackcore", "reading the spool panicked; starting with what was read");
        }
        let stretches = self
            .counters
            .spool_corrupt
            .load(std::sync::atomic::Ordering::Relaxed);
        if stretches > 0 {
            out.push(Action::Report {
                body: Body::from(&b"{}"[..]),
                error: Error::SpoolCorrupt { stretches },
            });
        }
        self.store_logs(out);
        self.refill(now, out);
    }

    /// An event `track()` counted as queued has reached the scheduler.
    pub fn accept(&mut self, body: Vec<u8>, dedupe_key: u64, out: &mut Vec<Action>) {
        let mut key = None;
        if let Some(keys) = &mut self.dedupe {
            if !keys.insert(dedupe_key) {
                Counters::gauge(&self.counters.queued, -1);
                Counters::add(&self.counters.deduplicated, 1);
                return;
            }
            key = Some(dedupe_key);
        }
        let appended = match self.store.append(body) {
            Ok(a) => a,
            Err(body) => {
                if let (Some(keys), Some(k)) = (&mut self.dedupe, key) {
                    keys.remove(k);
                }
                Counters::gauge(&self.counters.queued, -1);
                Counters::add(&self.counters.dropped_spool, 1);
                let max_bytes = self.policy.spool_max_bytes;
                out.push(Action::Report {
                    body: Body::from(body),
                    error: Error::SpoolFull { max_bytes },
                });
                return;
            }
        };
        if !appended.hot {
            // On disk only (the store moved it from queued to spooled); read
            // back in order once the events in memory drain.
            return;
        }
        self.ready.push_back(Job {
            seq: appended.seq,
            key,
            retries: 0,
            waited: 0,
            first_sent: None,
        });
        if self.policy.overflow == Overflow::DropOldest {
            // track() let this one in over the limit: the oldest waiting event makes room.
            let queued = self.counters.queued.load(std::sync::atomic::Ordering::Relaxed);
            if queued > self.policy.capacity as i64 {
                if let Some(old) = self.ready.pop_front() {
                    Counters::gauge(&self.counters.queued, -1);
                    Counters::add(&self.counters.dropped_oldest, 1);
                    let error = Error::QueueFull { capacity: self.policy.capacity, policy: Overflow::DropOldest.as_str() };
                    self.fail(old, error, out);
                }
            }
        }
    }

    /// A caller waits for everything accepted so far to settle.
    pub fn flush(&mut self, id: u64, deadline: Instant, out: &mut Vec<Action>) {
        let upto = self.store.next_seq();
        if self.store.oldest().is_none_or(|o| o >= upto) {
            out.push(Action::Flushed { id, settled: true });
        } else {
            self.flushers.push(Flusher { id, upto, deadline });
        }
    }

    /// Stop by `deadline`: deliver what can be delivered until then, then
    /// give up on the rest. A second request keeps the earlier deadline.
    pub fn shutdown(&mut self, deadline: Instant) {
        self.shutdown = Some(self.shutdown.map_or(deadline, |d| d.min(deadline)));
    }

    /// Whether the scheduler is done: shut down and nothing left.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The outcome of the request for `seq`.
    pub fn outcome(&mut self, seq: u64, response: Response, now: Instant, out: &mut Vec<Action>) {
        if let Some(info) = &response.rate {
            let limiter = &mut self.limiter;
            if catch_unwind(AssertUnwindSafe(|| limiter.observe(info, now))).is_err() {
                log::error!(target: "trackcore", "the rate limiter panicked in observe(); carrying on");
            }
        }
        // Given up at the shutdown deadline: counted and reported already.
        let Some(mut job) = self.in_flight.remove(&seq) else { return };
        Counters::gauge(&self.counters.in_flight, -1);
        let unreachable = matches!(response.outcome, Outcome::Retry { status: None, .. });
        let lifts = match self.pause {
            // Anything but another refusal means the token works again (an
            // unreachable endpoint says nothing about the token).
            Some(Pause::Auth) => !matches!(response.outcome, Outcome::Unauthorized { .. }) && !unreachable,
            // Any answer at all means the endpoint can be reached again.
            Some(Pause::Outage) => !unreachable,
            None => false,
        };
        if lifts {
            self.resume();
        }
        match response.outcome {
            Outcome::Delivered => {
                self.observe_health(Trouble::None, None, now, out);
                Counters::add(&self.counters.delivered, 1);
                self.store.settle(job.seq);
            }
            Outcome::Reject { status, code, message } => {
                // A refusal of this one event says nothing about delivery's health.
                self.observe_health(Trouble::None, None, now, out);
                Counters::add(&self.counters.failed_rejected, 1);
                self.fail(job, Error::Rejected { status, intercom_code: code, message }, out);
            }
            Outcome::Unauthorized { status } => {
                let first = self.pause != Some(Pause::Auth);
                self.pause_for(Pause::Auth, crate::later(now, self.policy.probe_interval));
                self.counters.auth_paused.store(1, std::sync::atomic::Ordering::Relaxed);
                self.observe_health(Trouble::AuthRefused(status), None, now, out);
                if first {
                    if let Some(body) = self.store.get(job.seq) {
                        let probe_secs = self.policy.probe_interval.as_secs();
                        out.push(Action::Report { body, error: Error::Unauthorized { status, probe_secs } });
                    }
                }
                // The event is kept: it goes first when delivery resumes.
                Counters::gauge(&self.counters.queued, 1);
                self.ready.push_front(job);
            }
            Outcome::Retry { reason, wait, status } => {
                let trouble = match status {
                    Some(429) => Trouble::RateLimited,
                    Some(s) => Trouble::ServerErrors(format!("HTTP {s}")),
                    None => Trouble::Unreachable(reason.clone()),
                };
                if status == Some(429) {
                    Counters::add(&self.counters.rate_limited, 1);
                    // Permits leased before the 429 are not to be trusted.
                    self.lease = 0;
                }
                self.observe_health(trouble, Some(job.seq), now, out);
                let started = job.first_sent.unwrap_or(now);
                let deadline = crate::later(started, self.policy.retry_deadline);
                let past_deadline = |at: Instant| at > deadline;
                // Either given up, or kept: at the front of the line behind an
                // outage's probe (`None`), or in the retry heap until `Some(at)`.
                let (exhausted, again) = if unreachable {
                    // An outage: everything waits behind one probe with backoff
                    // (one connection attempt per backoff, not one per event),
                    // and this event goes first when an answer comes back.
                    job.waited += 1;
                    if self.pause.is_none() || self.probing {
                        self.outage_probes += 1;
                        let backoff = retry::backoff(self.outage_probes, self.policy.backoff_base, self.policy.backoff_max);
                        // A probe that could not reach the endpoint re-arms the pause it
                        // probed for: never a probe again at once.
                        let (why, wait) = match self.pause {
                            Some(Pause::Auth) => (Pause::Auth, self.policy.probe_interval.max(backoff)),
                            _ => (Pause::Outage, backoff),
                        };
                        self.pause_for(why, crate::later(now, wait));
                    }
                    self.probing = false;
                    (past_deadline(now), None)
                } else {
                    if status == Some(429) {
                        job.waited += 1;
                    } else {
                        job.retries += 1;
                    }
                    // A hint of zero (`Retry-After: 0`, a reset already past) is no
                    // reason to retry at once: it gets the backoff instead.
                    let delay = wait
                        .filter(|w| !w.is_zero())
                        .unwrap_or_else(|| retry::backoff(job.retries.max(1), self.policy.backoff_base, self.policy.backoff_max));
                    let at = crate::later(now, delay);
                    (job.retries > self.policy.max_retries || past_deadline(at), Some(at))
                };
                if exhausted {
                    Counters::add(&self.counters.failed_retries_exhausted, 1);
                    let attempts = job.retries + job.waited;
                    self.fail(job, Error::RetriesExhausted { attempts, last: reason }, out);
                    return;
                }
                Counters::add(&self.counters.retried, 1);
                Counters::gauge(&self.counters.queued, 1);
                match again {
                    None => self.ready.push_front(job),
                    Some(at) => self.retrying.push(Reverse(Timed(at, job))),
                }
            }
        }
    }

    /// Give unused permits back; a limiter that panics here is not trusted further.
    fn release_lease(&mut self) {
        let unused = std::mem::take(&mut self.lease);
        let limiter = &mut self.limiter;
        let _ = catch_unwind(AssertUnwindSafe(|| limiter.release(unused)));
    }

    fn pause_for(&mut self, why: Pause, until: Instant) {
        self.pause = Some(why);
        self.paused_until = Some(until);
        self.probing = false;
    }

    fn resume(&mut self) {
        self.pause = None;
        self.paused_until = None;
        self.probing = false;
        self.outage_probes = 0;
        self.counters.auth_paused.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Do what is due at `now`; returns when the next tick is needed (`None`:
    /// only when an input arrives).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Action>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        while self.retrying.peek().is_some_and(|r| r.0 .0 <= now) {
            if let Some(Reverse(Timed(_, job))) = self.retrying.pop() {
                self.ready.push_back(job);
            }
        }
        if let Some(deadline) = self.shutdown {
            if self.store.is_empty() {
                self.finish(out);
                return None;
            }
            // Paused past the deadline with nothing under way: nothing can be
            // delivered any more, so give up now and leave the rest of the
            // bound to the reports.
            let hopeless = self.in_flight.is_empty() && self.paused_until.is_some_and(|u| u >= deadline);
            if now >= deadline || hopeless {
                self.give_up(out);
                return None;
            }
        }
        self.refill(now, out);
        let limiter_wake = self.dispatch(now, out);
        self.answer_flushers(now, out);
        self.log_pending(now, out);
        let pause_end = self
            .paused_until
            .filter(|u| *u > now && !self.probing && !self.ready.is_empty());
        let log_due = (self.health.unlogged_changes > 0)
            .then(|| self.health.last_log.map(|t| t + LOG_EVERY))
            .flatten();
        [
            limiter_wake,
            self.retrying.peek().map(|r| r.0 .0),
            pause_end,
            self.shutdown,
            log_due,
            self.store.next_commit(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Read events waiting on disk back into memory as the ones there drain,
    /// and say when the spool starts and stops holding events beyond memory.
    fn refill(&mut self, _now: Instant, out: &mut Vec<Action>) {
        let cold = self.store.cold();
        let window = self.store.window();
        if cold > 0 && self.ready.len() < window / 2 {
            let store = &mut self.store;
            let want = window - self.ready.len();
            let loaded = catch_unwind(AssertUnwindSafe(|| store.load(want))).unwrap_or_default();
            self.ready.extend(loaded.into_iter().map(|seq| Job {
                seq,
                key: None,
                retries: 0,
                waited: 0,
                first_sent: None,
            }));
            self.store_logs(out);
        }
        let spilling = self.store.cold() > 0;
        if spilling != self.spilling {
            self.spilling = spilling;
            let message = if spilling {
                format!(
                    "the spool is growing: {} events wait on disk beyond the ones kept in memory",
                    self.store.cold()
                )
            } else {
                "the spool has drained: every waiting event is in memory again".to_string()
            };
            out.push(Action::Log {
                level: log::Level::Info,
                message,
            });
        }
    }

    fn store_logs(&mut self, out: &mut Vec<Action>) {
        for (level, message) in self.store.take_logs() {
            out.push(Action::Log { level, message });
        }
    }

    /// Write out what the store holds (every dispatcher cycle); `sync` forces
    /// it to disk. `false` when the store could not write.
    pub fn commit(&mut self, now: Instant, sync: bool, out: &mut Vec<Action>) -> bool {
        let store = &mut self.store;
        let ok = catch_unwind(AssertUnwindSafe(|| store.commit(now, sync)))
            .map(|r| r.is_ok())
            .unwrap_or(false);
        self.store_logs(out);
        ok
    }

    fn dispatch(&mut self, now: Instant, out: &mut Vec<Action>) -> Option<Instant> {
        let limit = match self.paused_until {
            Some(until) => {
                if self.probing || now < until || self.ready.is_empty() {
                    return None;
                }
                // One probe request tells whether the token works again.
                1
            }
            None => self.policy.max_in_flight,
        };
        while self.in_flight.len() < limit && !self.ready.is_empty() {
            if self.lease == 0 {
                if let Some(w) = self.limiter_wait {
                    if now < w {
                        return Some(w);
                    }
                    self.limiter_wait = None;
                }
                let wanted = self.ready.len().min(limit - self.in_flight.len()).min(MAX_LEASE) as u32;
                let limiter = &mut self.limiter;
                let answer = catch_unwind(AssertUnwindSafe(|| limiter.reserve(wanted, now))).unwrap_or_else(|_| {
                    Reservation::Unavailable { retry_at: now + Duration::from_secs(1), reason: "the rate limiter panicked".into() }
                });
                let wait_until = match answer {
                    Reservation::Granted(n) => {
                        self.lease = n.max(1);
                        if matches!(self.health.state, Trouble::LimiterDown(_)) {
                            self.set_state(Trouble::None, now);
                        }
                        None
                    }
                    Reservation::WaitUntil(t) => Some(t),
                    Reservation::Unavailable { retry_at, reason } => {
                        if self.health.state != Trouble::LimiterDown(reason.clone()) {
                            self.set_state(Trouble::LimiterDown(reason), now);
                        }
                        Some(retry_at)
                    }
                };
                if let Some(t) = wait_until {
                    // Whatever the limiter says, never a wait shorter than MIN_WAIT: no spinning.
                    let t = t.max(crate::later(now, MIN_WAIT));
                    self.limiter_wait = Some(t);
                    self.waiting_since.get_or_insert(now);
                    return Some(t);
                }
            }
            self.lease -= 1;
            if let Some(since) = self.waiting_since.take() {
                Counters::add(&self.counters.rate_limit_wait_us, now.duration_since(since).as_micros() as u64);
            }
            let Some(mut job) = self.ready.pop_front() else { break };
            let Some(body) = self.store.get(job.seq) else {
                // Settled elsewhere (cannot happen with a correct store): no longer waiting.
                Counters::gauge(&self.counters.queued, -1);
                continue;
            };
            job.first_sent.get_or_insert(now);
            if self.paused_until.is_some() {
                self.probing = true;
            }
            Counters::gauge(&self.counters.queued, -1);
            Counters::gauge(&self.counters.in_flight, 1);
            let seq = job.seq;
            self.in_flight.insert(seq, job);
            out.push(Action::Send { seq, body });
        }
        None
    }

    fn fail(&mut self, job: Job, error: Error, out: &mut Vec<Action>) {
        // Not delivered, so tracking the same event again must not count as a copy
        // (e.g. after a 404 the app creates the contact and tracks it again).
        if let (Some(keys), Some(k)) = (&mut self.dedupe, job.key) {
            keys.remove(k);
        }
        if let Some(body) = self.store.get(job.seq) {
            out.push(Action::Report { body, error });
        }
        self.store.settle(job.seq);
    }

    fn answer_flushers(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.flushers.is_empty() {
            return;
        }
        let oldest = self.store.oldest().unwrap_or(u64::MAX);
        self.flushers.retain(|f| {
            if oldest >= f.upto {
                out.push(Action::Flushed { id: f.id, settled: true });
                false
            } else if f.deadline <= now {
                // The caller has stopped waiting: forget it, so per-request
                // flushes during a long outage cannot pile up.
                out.push(Action::Flushed { id: f.id, settled: false });
                false
            } else {
                true
            }
        });
    }

    /// Shut down with nothing left.
    fn finish(&mut self, out: &mut Vec<Action>) {
        self.release_lease();
        let _ = self.commit(Instant::now(), true, out);
        for f in self.flushers.drain(..) {
            out.push(Action::Flushed { id: f.id, settled: true });
        }
        self.finished = true;
    }

    /// The shutdown deadline passed: report everything still here (or, with
    /// a durable store, leave it there for the next start).
    fn give_up(&mut self, out: &mut Vec<Action>) {
        if self.store.durable() {
            let waiting = self.ready.len() + self.retrying.len();
            let flying = self.in_flight.len();
            self.ready.clear();
            self.retrying.clear();
            self.in_flight.clear();
            let left = self.store.leave();
            Counters::gauge(&self.counters.queued, -(waiting as i64));
            Counters::gauge(&self.counters.in_flight, -(flying as i64));
            Counters::add(&self.counters.persisted, left);
            self.release_lease();
            let _ = self.commit(Instant::now(), true, out);
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!("shutdown: {left} undelivered events stay in the spool; the next tracker on the same spool_dir delivers them"),
            });
            for f in self.flushers.drain(..) {
                out.push(Action::Flushed {
                    id: f.id,
                    settled: false,
                });
            }
            self.finished = true;
            return;
        }
        let mut waiting: Vec<Job> = self.ready.drain(..).collect();
        waiting.extend(self.retrying.drain().map(|Reverse(Timed(_, j))| j));
        for job in waiting {
            Counters::gauge(&self.counters.queued, -1);
            Counters::add(&self.counters.dropped_shutdown, 1);
            self.fail(job, Error::UndeliveredAtShutdown, out);
        }
        // Requests still under way may yet land; nobody will learn their
        // outcome, so they are reported as undelivered.
        let mut stuck: Vec<Job> = self.in_flight.drain().map(|(_, j)| j).collect();
        stuck.sort_by_key(|j| j.seq);
        for job in stuck {
            Counters::gauge(&self.counters.in_flight, -1);
            Counters::add(&self.counters.dropped_shutdown, 1);
            self.fail(job, Error::UndeliveredAtShutdown, out);
        }
        self.release_lease();
        for f in self.flushers.drain(..) {
            out.push(Action::Flushed { id: f.id, settled: false });
        }
        self.finished = true;
    }

    /// Learn delivery's state from one outcome: log changes, report a stall.
    fn observe_health(&mut self, state: Trouble, seq: Option<u64>, now: Instant, out: &mut Vec<Action>) {
        let failing = state != Trouble::None;
        if failing && state.kind() == self.health.state.kind() {
            self.health.consecutive += 1;
        } else if state != self.health.state {
            self.set_state(state, now);
            self.health.consecutive = u32::from(failing);
        }
        let persistent = matches!(self.health.state, Trouble::Unreachable(_) | Trouble::ServerErrors(_));
        if persistent && self.health.consecutive >= STALL_AFTER && !self.health.stall_reported {
            self.health.stall_reported = true;
            if let Some(body) = seq.and_then(|s| self.store.get(s)) {
                let reason = match &self.health.state {
                    Trouble::Unreachable(r) | Trouble::ServerErrors(r) => r.clone(),
                    _ => String::new(),
                };
                out.push(Action::Report { body, error: Error::DeliveryStalled { attempts: self.health.consecutive, reason } });
            }
        }
        self.log_pending(now, out);
    }

    fn set_state(&mut self, state: Trouble, now: Instant) {
        if state == Trouble::None {
            self.health.stall_reported = false;
            self.health.consecutive = 0;
        }
        let since = if self.health.state == Trouble::None { Some(now) } else { self.health.since };
        self.health.since = if state == Trouble::None { None } else { since };
        self.health.state = state;
        self.health.unlogged_changes += 1;
        // The line itself is written by log_pending, at most once per LOG_EVERY.
        self.health.resumed_after = match self.health.state {
            Trouble::None => since.map(|s| now.saturating_duration_since(s)),
            _ => None,
        };
    }

    fn log_pending(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.health.unlogged_changes == 0 || self.health.last_log.is_some_and(|t| now < t + LOG_EVERY) {
            return;
        }
        let changes = std::mem::take(&mut self.health.unlogged_changes);
        self.health.last_log = Some(now);
        let also = if changes > 1 { format!(" ({} changes since the last line)", changes) } else { String::new() };
        let (level, message) = match &self.health.state {
            Trouble::None => (
                log::Level::Info,
                match self.health.resumed_after {
                    Some(d) => format!("delivery resumed after {:.1} s of trouble{also}", d.as_secs_f64()),
                    None => format!("delivery is working{also}"),
                },
            ),
            Trouble::Unreachable(r) => (log::Level::Warn, format!("delivery failing: {r}; events are kept and retried with backoff{also}")),
            Trouble::ServerErrors(r) => (log::Level::Warn, format!("Intercom answers {r}; events are kept and retried with backoff{also}")),
            Trouble::RateLimited => (log::Level::Warn, format!("Intercom answered 429 (rate limited); sending paused until its window resets{also}")),
            Trouble::AuthRefused(s) => (
                log::Level::Error,
                format!(
                    "the access token was refused (HTTP {s}); delivery paused, probing every {} s{also}",
                    self.policy.probe_interval.as_secs()
                ),
            ),
            Trouble::LimiterDown(r) => (log::Level::Warn, format!("the rate limiter is unavailable: {r}; sending waits for it{also}")),
        };
        out.push(Action::Log { level, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{RateLimitInfo, Unlimited};
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering as AtOrd};

    fn policy() -> Policy {
        Policy {
            max_in_flight: 4,
            max_retries: 3,
            retry_deadline: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            probe_interval: Duration::from_secs(30),
            capacity: 100,
            overflow: Overflow::DropNewest,
            dedupe: true,
            spool_max_bytes: 1 << 30,
        }
    }

    struct Harness {
        s: Scheduler,
        counters: Arc<Counters>,
        out: Vec<Action>,
        now: Instant,
    }

    impl Harness {
        fn new(policy: Policy, limiter: Box<dyn RateLimiter>) -> Harness {
            let counters = Arc::new(Counters::default());
            let s = Scheduler::new(policy, Box::new(MemoryStore::new()), limiter, counters.clone());
            Harness { s, counters, out: Vec::new(), now: Instant::now() }
        }
        /// An unpaced harness with `n` distinct events accepted.
        fn with_events(policy: Policy, n: u64) -> Harness {
            let mut h = Harness::new(policy, Box::new(Unlimited));
            for k in 0..n {
                h.track("{}", k);
            }
            h
        }
        /// What `track()` does before the event reaches the scheduler.
        fn track(&mut self, body: &str, key: u64) {
            Counters::add(&self.counters.tracked, 1);
            Counters::gauge(&self.counters.queued, 1);
            self.s.accept(body.as_bytes().to_vec(), key, &mut self.out);
        }
        fn tick(&mut self) -> Option<Instant> {
            self.s.tick(self.now, &mut self.out)
        }
        /// Take the actions `pick` recognises out of `out`, in order.
        fn take<T>(&mut self, pick: impl Fn(&Action) -> Option<T>) -> Vec<T> {
            let mut taken = Vec::new();
            self.out.retain(|a| match pick(a) {
                Some(t) => {
                    taken.push(t);
                    false
                }
                None => true,
            });
            taken
        }
        fn sends(&mut self) -> Vec<u64> {
            self.take(|a| if let Action::Send { seq, .. } = a { Some(*seq) } else { None })
        }
        fn answer(&mut self, seq: u64, outcome: Outcome) {
            self.s.outcome(seq, Response { outcome, rate: None }, self.now, &mut self.out);
        }
        fn reports(&mut self) -> Vec<&'static str> {
            self.take(|a| if let Action::Report { error, .. } = a { Some(error.code()) } else { None })
        }
        fn logs(&mut self) -> Vec<String> {
            self.take(|a| if let Action::Log { message, .. } = a { Some(message.clone()) } else { None })
        }
        fn stats(&self) -> crate::Stats {
            self.counters.snapshot()
        }
    }

    fn net_error() -> Outcome {
        Outcome::Retry { reason: "network error: connection refused".into(), wait: None, status: None }
    }

    /// Answers "wait until now" forever and counts how often it is asked.
    struct ZeroWait(Arc<AtomicUsize>);
    impl RateLimiter for ZeroWait {
        fn reserve(&mut self, _wanted: u32, now: Instant) -> Reservation {
            self.0.fetch_add(1, AtOrd::SeqCst);
            Reservation::WaitUntil(now)
        }
        fn observe(&mut self, _info: &RateLimitInfo, _now: Instant) {}
    }

    #[test]
    fn a_limiter_answering_a_zero_wait_cannot_make_it_spin() {
        let asked = Arc::new(AtomicUsize::new(0));
        let mut h = Harness::new(policy(), Box::new(ZeroWait(asked.clone())));
        h.track("{}", 1);
        let wake = h.tick().expect("a wake-up time");
        assert!(wake >= h.now + MIN_WAIT, "woke {:?} after now", wake - h.now);
        // Ticking again before that time does not ask the limiter again.
        h.tick();
        h.tick();
        assert_eq!(asked.load(AtOrd::SeqCst), 1);
        assert!(h.sends().is_empty());
    }

    #[test]
    fn sends_up_to_max_in_flight_and_settles_each_event_once() {
        let mut h = Harness::with_events(policy(), 6);
        assert_eq!(h.tick(), None);
        let sent = h.sends();
        assert_eq!(sent, vec![0, 1, 2, 3], "four in flight");
        assert_eq!((h.stats().queued, h.stats().in_flight), (2, 4));
        h.answer(0, Outcome::Delivered);
        h.answer(0, Outcome::Delivered); // a duplicate answer changes nothing
        h.tick();
        assert_eq!(h.sends(), vec![4]);
        let s = h.stats();
        assert_eq!((s.delivered, s.queued, s.in_flight), (1, 1, 4));
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn drops_copies_of_an_event_before_they_are_sent() {
        let mut h = Harness::new(policy(), Box::new(Unlimited));
        h.track("{}", 7);
        h.track("{}", 7);
        h.tick();
        assert_eq!(h.sends().len(), 1);
        assert_eq!(h.stats().deduplicated, 1);
        // Not delivered: a copy tracked later is sent again.
        h.answer(0, Outcome::Reject { status: 404, code: "not_found".into(), message: "User Not Found".into() });
        assert_eq!(h.reports(), vec!["rejected"]);
        h.track("{}", 7);
        h.tick();
        assert_eq!(h.sends(), vec![1]);
        assert!(h.stats().balanced(), "{:?}", h.stats());
    }

    #[test]
    fn retries_with_backoff_then_gives_up_with_one_report() {
        let mut h = Harness::new(policy(), Box::new(Unlimited));
        h.track("{}", 1);
        h.tick();
        let mut attempts = h.sends();
        for _ in 0..3 {
            h.answer(attempts[0], Outcome::Retry { reason: "HTTP 503".into(), wait: None, status: Some(503) });
            let wake = h.tick().expect("a retry is scheduled");
            assert!(h.sends().is_empty(), "nothing before the backoff ends");
            h.now = wake;
            h.tick();
            attempts = h.sends();
            assert_eq!(attempts.len(), 1);
        }
        h.answer(attempts[0], Outcome::Retry { reason: "HTTP 503".into(), wait: None, status: Some(503) });
        assert_eq!(h.reports(), vec!["delivery_stalled", "retries_exhausted"]);
        let s = h.stats();
        assert_eq!((s.retried, s.failed_retries_exhausted, s.queued, s.in_flight), (3, 1, 0, 0));
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn a_persistent_failure_is_logged_once_and_reported_before_any_event_is_lost() {
        let mut p = policy();
        p.max_in_flight = 10;
        let mut h = Harness::with_events(p, 10);
        h.tick();
        for seq in h.sends() {
            h.answer(seq, net_error());
        }
        assert_eq!(h.reports(), vec!["delivery_stalled"], "one notice for the stall, and no event lost");
        let logs = h.logs();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].contains("connection refused"), "{logs:?}");
        assert_eq!(h.stats().queued, 10, "all kept for retry");
        // Recovery is one more line, once LOG_EVERY has passed since the last.
        h.now += Duration::from_secs(2);
        h.tick();
        let seqs = h.sends();
        assert!(!seqs.is_empty());
        h.answer(seqs[0], Outcome::Delivered);
        assert!(h.logs().is_empty(), "rate-limited: not yet");
        h.now += LOG_EVERY;
        h.tick();
        let logs = h.logs();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].starts_with("delivery resumed"), "{logs:?}");
    }

    #[test]
    fn pauses_on_401_reports_once_and_probes_with_one_request() {
        let mut h = Harness::with_events(policy(), 5);
        h.tick();
        let sent = h.sends();
        for seq in &sent {
            h.answer(*seq, Outcome::Unauthorized { status: 401 });
        }
        assert_eq!(h.reports(), vec!["unauthorized"]);
        assert!(h.stats().auth_paused);
        let wake = h.tick().expect("the probe time");
        assert!(h.sends().is_empty());
        h.now = wake;
        h.tick();
        let probe = h.sends();
        assert_eq!(probe.len(), 1, "one probe");
        h.answer(probe[0], Outcome::Delivered);
        h.tick();
        assert_eq!(h.sends().len(), 4, "the rest go once the token works");
        assert!(!h.stats().auth_paused);
    }

    #[test]
    fn flush_is_answered_when_everything_before_it_settled() {
        let mut h = Harness::new(policy(), Box::new(Unlimited));
        h.track("{}", 1);
        h.s.flush(9, h.now + Duration::from_secs(5), &mut h.out);
        h.tick();
        let sent = h.sends();
        h.track("{}", 2); // after the flush: not waited for
        assert!(!h.out.iter().any(|a| matches!(a, Action::Flushed { .. })));
        h.answer(sent[0], Outcome::Delivered);
        h.tick();
        assert!(h.out.iter().any(|a| matches!(a, Action::Flushed { id: 9, settled: true })), "{:?}", h.out);
    }

    #[test]
    fn shutdown_gives_up_at_its_deadline_and_reports_every_event() {
        let mut h = Harness::with_events(policy(), 6);
        h.tick();
        assert_eq!(h.sends().len(), 4);
        h.s.shutdown(h.now + Duration::from_secs(2));
        h.s.shutdown(h.now + Duration::from_secs(1)); // the earlier deadline wins
        assert_eq!(h.tick(), Some(h.now + Duration::from_secs(1)));
        h.now += Duration::from_secs(1);
        h.tick();
        assert!(h.s.finished());
        assert_eq!(h.reports(), vec!["undelivered_at_shutdown"; 6]);
        let s = h.stats();
        assert_eq!((s.dropped_shutdown, s.queued, s.in_flight), (6, 0, 0));
        assert!(s.balanced(), "{s:?}");
        // A late answer for an event given up changes nothing.
        h.answer(0, Outcome::Delivered);
        assert_eq!(h.stats().delivered, 0);
    }

    #[test]
    fn drop_oldest_evicts_the_oldest_waiting_event() {
        let mut p = policy();
        p.capacity = 2;
        p.overflow = Overflow::DropOldest;
        p.max_in_flight = 1;
        let mut h = Harness::new(p, Box::new(Unlimited));
        for k in 0..4 {
            h.track(&format!("{k}"), k);
        }
        assert_eq!(h.reports(), vec!["queue_full"; 2]);
        h.tick();
        let sent: Vec<Vec<u8>> =
            h.out.iter().filter_map(|a| if let Action::Send { body, .. } = a { Some(body.to_vec()) } else { None }).collect();
        assert_eq!(sent, vec![b"2".to_vec()], "0 and 1 were evicted");
        assert_eq!(h.stats().dropped_oldest, 2);
    }

    #[test]
    fn a_429_storm_waits_as_long_as_the_deadline_allows_and_loses_nothing() {
        let mut p = policy();
        p.max_retries = 1;
        let mut h = Harness::new(p, Box::new(Unlimited));
        h.track("{}", 1);
        h.tick();
        let mut seq = h.sends()[0];
        for _ in 0..20 {
            let wait = Some(Duration::from_secs(1));
            h.answer(seq, Outcome::Retry { reason: "HTTP 429".into(), wait, status: Some(429) });
            assert!(h.reports().is_empty(), "a 429 is pacing, not failure");
            h.now = h.tick().expect("a retry after the wait");
            h.tick();
            seq = h.sends()[0];
        }
        h.answer(seq, Outcome::Delivered);
        let s = h.stats();
        assert_eq!((s.delivered, s.failed, s.rate_limited), (1, 0, 20), "{s:?}");
    }

    #[test]
    fn an_outage_pauses_everything_behind_one_probe_with_backoff_and_resumes_on_an_answer() {
        let mut p = policy();
        p.max_in_flight = 4;
        let mut h = Harness::with_events(p, 50);
        h.tick();
        let first = h.sends();
        assert_eq!(first.len(), 4);
        for seq in &first {
            h.answer(*seq, net_error());
        }
        let mut attempts = first.len();
        let mut probe = 0;
        for round in 0..5 {
            let wake = h.tick().expect("the probe time");
            assert!(h.sends().is_empty(), "nothing before the probe");
            // backoff_base 1 s doubling to backoff_max 8 s, ±10 % jitter.
            let expected = (1u64 << round).min(8) as f64;
            let gap = (wake - h.now).as_secs_f64();
            assert!((expected * 0.89..=expected * 1.11).contains(&gap), "probe {round} after {gap} s, not ~{expected} s");
            h.now = wake;
            h.tick();
            let sent = h.sends();
            assert_eq!(sent.len(), 1, "one probe at a time");
            attempts += 1;
            probe = sent[0];
            if round < 4 {
                h.answer(probe, net_error());
            }
        }
        assert_eq!(attempts, 9, "9 connection attempts for 50 events, not one per event per backoff");
        let s = h.stats();
        assert_eq!((s.failed, s.queued + s.in_flight), (0, 50), "{s:?}");
        h.answer(probe, Outcome::Delivered);
        h.tick();
        assert_eq!(h.sends().len(), 4, "an answer resumes delivery at once");
    }

    #[test]
    fn a_refused_token_then_an_unreachable_probe_waits_for_the_next_probe_time() {
        let mut h = Harness::new(policy(), Box::new(Unlimited));
        h.track("{}", 1);
        h.tick();
        let seq = h.sends()[0];
        h.answer(seq, Outcome::Unauthorized { status: 401 });
        h.now = h.tick().expect("the probe time");
        h.tick();
        let probe = h.sends();
        assert_eq!(probe.len(), 1);
        h.answer(probe[0], net_error());
        let wake = h.tick().expect("a later probe");
        assert!(wake >= h.now + Duration::from_secs(30), "re-armed for the probe interval: {:?}", wake - h.now);
        assert!(h.sends().is_empty(), "no probe at once");
    }

    #[test]
    fn a_zero_retry_hint_gets_the_backoff_not_an_immediate_retry() {
        let mut h = Harness::new(policy(), Box::new(Unlimited));
        h.track("{}", 1);
        h.tick();
        let seq = h.sends()[0];
        h.answer(seq, Outcome::Retry { reason: "HTTP 503".into(), wait: Some(Duration::ZERO), status: Some(503) });
        let wake = h.tick().expect("a retry time");
        assert!(wake >= h.now + Duration::from_millis(900), "{:?}", wake - h.now);
        assert!(h.sends().is_empty());
    }
}
