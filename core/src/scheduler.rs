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
//!
//! ## Unknown contacts
//!
//! An event Intercom answers `404 User Not Found` for is, under
//! `unknown_contact="wait"` or `"create"`, held: it stays unsettled in the
//! store, and the scheduler keeps only its small [`Job`] in a [`Held`] group
//! per contact (the event's identifiers). A group makes one request at a
//! time: under `create` one `POST /contacts` ([`Action::CreateContact`]), else
//! one of its events as a probe, on a backoff from `unknown_contact_backoff`.
//! When the probe is delivered or the contact created (409 included), every
//! held event of that contact goes back to the ready queue; events accepted
//! for a held contact join its group without a request of their own. An event
//! held for longer than `unknown_contact_wait` is reported (`contact_not_found`).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Overflow, UnknownContact};
use crate::ratelimit::{RateLimiter, Reservation, MIN_WAIT};
use crate::retry;
use crate::stats::Counters;
use crate::store::{Body, EventStore};
use crate::transport::{Outcome, Request, Response};
use crate::Error;

/// What the scheduler asks its thread to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Hand this body to a sender; its outcome comes back with `seq`.
    Send { seq: u64, body: Body },
    /// Hand this `POST /contacts` body to a sender; its outcome comes back as
    /// [`Request::Contact`] with `id`.
    CreateContact { id: u64, body: Body },
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
    pub unknown_contact: UnknownContact,
    pub unknown_contact_wait: Duration,
    pub unknown_contact_backoff: Duration,
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
            unknown_contact: c.unknown_contact,
            unknown_contact_wait: c.unknown_contact_wait,
            unknown_contact_backoff: c.unknown_contact_backoff,
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
    /// When it was last handed to a sender.
    last_sent: Option<Instant>,
    /// When it was first held for its unknown contact (the window starts here).
    held_since: Option<Instant>,
}

impl Job {
    fn new(seq: u64, key: Option<u64>) -> Job {
        Job { seq, key, retries: 0, waited: 0, first_sent: None, last_sent: None, held_since: None }
    }
}

/// The events of one contact Intercom does not know yet (module docs).
struct Held {
    /// Names this group's `POST /contacts`.
    id: u64,
    members: VecDeque<Job>,
    /// When the next probe or creation is due (unless one is under way).
    next_at: Instant,
    /// Probes or creations made so far: the backoff grows with them.
    tries: u32,
    /// The `POST /contacts` body while the contact is still to be created.
    create: Option<Body>,
    /// A probe or a creation is under way.
    busy: bool,
}

/// How long a contact found or created is remembered: an event sent before
/// that and answered 404 after it is sent again at once, not held.
const APPEARED_MEMORY: usize = 10_000;

/// An event's identifiers, read back from its body (only on the unknown
/// contact path): the key of its contact group, and what creates the contact.
struct Identity {
    key: String,
    /// `external_id` (the event's `user_id`) and `email`, if either is given.
    create: Option<Body>,
}

fn identity(body: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let (user_id, id, email) = (field("user_id"), field("id"), field("email"));
    let key = format!("{}\u{0}{}\u{0}{}", user_id.as_deref().unwrap_or(""), id.as_deref().unwrap_or(""), email.as_deref().unwrap_or(""));
    let create = (user_id.is_some() || email.is_some()).then(|| {
        let mut c = serde_json::Map::new();
        c.insert("role".into(), "user".into());
        if let Some(u) = user_id {
            c.insert("external_id".into(), u.into());
        }
        if let Some(e) = email {
            c.insert("email".into(), e.into());
        }
        Body::from(serde_json::Value::Object(c).to_string().into_bytes())
    });
    Some(Identity { key, create })
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
    /// `POST /contacts` requests handed to senders and not answered yet.
    creating: usize,
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
    /// Held events by contact key (module docs).
    contacts: HashMap<String, Held>,
    /// Probes under way: event seq -> contact key.
    probes: HashMap<u64, String>,
    /// Creations under way: group id -> contact key.
    creations: HashMap<u64, String>,
    /// Creations due, waiting for a permit and a free slot.
    to_create: VecDeque<(u64, Body)>,
    next_group: u64,
    /// When contacts were found or created (bounded by [`APPEARED_MEMORY`]).
    appeared: HashMap<String, Instant>,
    /// Held events last logged, and when.
    held_logged: (u64, Option<Instant>),
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
            creating: 0,
            waiting_since: None,
            flushers: Vec::new(),
            pause: None,
            paused_until: None,
            probing: false,
            outage_probes: 0,
            shutdown: None,
            finished: false,
            contacts: HashMap::new(),
            probes: HashMap::new(),
            creations: HashMap::new(),
            to_create: VecDeque::new(),
            next_group: 0,
            appeared: HashMap::new(),
            held_logged: (0, None),
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
        // While contacts are held, an event of one of them joins its group
        // instead of costing a request of its own.
        let group = if self.contacts.is_empty() { None } else { identity(&body).map(|i| i.key).filter(|k| self.contacts.contains_key(k)) };
        let appended = match self.store.append(body) {
            Ok(a) => a,
            Err(body) => {
                if let (Some(keys), Some(k)) = (&mut self.dedupe, key) {
                    keys.remove(k);
                }
                Counters::gauge(&self.counters.queued, -1);
                Counters::add(&self.counters.dropped_spool, 1);
                let max_bytes = self.policy.spool_max_bytes;
                out.push(Action::Report { body: Body::from(body), error: Error::SpoolFull { max_bytes } });
                return;
            }
        };
        if !appended.hot {
            // On disk only (the store moved it from queued to spooled); read
            // back in order once the events in memory drain.
            return;
        }
        let job = Job::new(appended.seq, key);
        if let Some(g) = group.and_then(|k| self.contacts.get_mut(&k)) {
            Counters::gauge(&self.counters.waiting_for_contact, 1);
            g.members.push_back(Job { held_since: Some(Instant::now()), ..job });
            return;
        }
        self.ready.push_back(job);
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

    /// The outcome of a request a sender carried out.
    pub fn answered(&mut self, request: Request, response: Response, now: Instant, out: &mut Vec<Action>) {
        match request {
            Request::Event(seq) => self.outcome(seq, response, now, out),
            Request::Contact(id) => self.contact_outcome(id, response, now, out),
        }
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
                // A probe delivered: its contact exists now.
                if let Some(contact) = (!self.probes.is_empty()).then(|| self.probes.remove(&job.seq)).flatten() {
                    self.release(contact, now);
                }
            }
            Outcome::Reject { status, code, message } if crate::delivery::is_unknown_contact(status, &message) => {
                // Not delivery's health either: this contact is not known yet.
                self.observe_health(Trouble::None, None, now, out);
                self.unknown_contact(job, code, message, now, out);
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

    /// The contact of `job` is not known to Intercom: report it, hold it in its
    /// contact's group, or (sent before its contact appeared) send it again.
    fn unknown_contact(&mut self, mut job: Job, code: String, message: String, now: Instant, out: &mut Vec<Action>) {
        let probe_of = self.probes.remove(&job.seq);
        let since = *job.held_since.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        let identity = self.store.get(job.seq).and_then(|b| identity(&b));
        let expired = waited >= self.policy.unknown_contact_wait && self.policy.unknown_contact_wait > Duration::ZERO;
        let (Some(identity), false, false) = (identity, self.policy.unknown_contact == UnknownContact::Report, expired) else {
            if let Some(contact) = probe_of {
                self.probe_failed(contact, now);
            }
            // `report`, or held past the window (a zero window reports at once too).
            Counters::add(&self.counters.failed_rejected, 1);
            let waited_secs = if self.policy.unknown_contact == UnknownContact::Report { 0 } else { waited.as_secs().max(1) };
            self.fail(job, Error::ContactNotFound { intercom_code: code, message, waited_secs }, out);
            return;
        };
        Counters::gauge(&self.counters.queued, 1);
        // Sent before its contact was found or created (a burst racing the
        // creation): it is known now, so send it again at once.
        if self.appeared.get(&identity.key).is_some_and(|at| job.last_sent.is_some_and(|sent| sent < *at)) {
            self.ready.push_back(job);
            return;
        }
        Counters::gauge(&self.counters.waiting_for_contact, 1);
        let create = self.policy.unknown_contact == UnknownContact::Create;
        // A contact found or created once that still answers 404 is waited
        // for, not created again (no creation loop).
        let create = identity.create.filter(|_| create && !self.appeared.contains_key(&identity.key));
        let first = self.policy.unknown_contact_backoff;
        let group = self.contacts.entry(identity.key).or_insert_with(|| {
            self.next_group += 1;
            Held {
                id: self.next_group,
                members: VecDeque::new(),
                // Creating is worth doing at once; probing right after a 404 is not.
                next_at: if create.is_some() { now } else { crate::later(now, first) },
                tries: 0,
                create,
                busy: false,
            }
        });
        group.members.push_back(job);
        if probe_of.is_some() {
            group.busy = false;
            group.tries += 1;
            let max = self.policy.backoff_max.max(first);
            group.next_at = crate::later(now, retry::backoff(group.tries + 1, first, max));
        }
    }

    /// A probe ended without telling whether its contact exists (it failed
    /// for another reason): the group tries again with another event.
    fn probe_failed(&mut self, contact: String, now: Instant) {
        if let Some(g) = self.contacts.get_mut(&contact) {
            g.busy = false;
            g.next_at = now;
        }
    }

    /// The contact of a group exists: its events go back to the ready queue.
    fn release(&mut self, contact: String, now: Instant) {
        if self.appeared.len() >= APPEARED_MEMORY {
            let window = self.policy.unknown_contact_wait;
            self.appeared.retain(|_, at| now.saturating_duration_since(*at) < window);
            if self.appeared.len() >= APPEARED_MEMORY {
                self.appeared.clear();
            }
        }
        if let Some(g) = self.contacts.remove(&contact) {
            Counters::gauge(&self.counters.waiting_for_contact, -(g.members.len() as i64));
            self.ready.extend(g.members);
        }
        self.appeared.insert(contact, now);
    }

    /// The answer to a `POST /contacts`.
    fn contact_outcome(&mut self, id: u64, response: Response, now: Instant, out: &mut Vec<Action>) {
        if let Some(info) = &response.rate {
            let limiter = &mut self.limiter;
            if catch_unwind(AssertUnwindSafe(|| limiter.observe(info, now))).is_err() {
                log::error!(target: "trackcore", "the rate limiter panicked in observe(); carrying on");
            }
        }
        self.creating = self.creating.saturating_sub(1);
        let Some(contact) = self.creations.remove(&id) else { return };
        let max = self.policy.backoff_max.max(self.policy.unknown_contact_backoff);
        let first = self.policy.unknown_contact_backoff;
        match response.outcome {
            // Created, or it existed already (409).
            Outcome::Delivered => {
                // Memory mode's transport (no status) never reaches here.
                if response.rate.as_ref().is_some_and(|r| r.status != 409) {
                    Counters::add(&self.counters.contacts_created, 1);
                }
                self.release(contact, now)
            }
            Outcome::Retry { wait, status, .. } => {
                if status == Some(429) {
                    Counters::add(&self.counters.rate_limited, 1);
                    self.lease = 0;
                }
                if let Some(g) = self.contacts.get_mut(&contact) {
                    g.busy = false;
                    g.tries += 1;
                    let delay = wait.filter(|w| !w.is_zero()).unwrap_or_else(|| retry::backoff(g.tries, self.policy.backoff_base, max));
                    g.next_at = crate::later(now, delay);
                }
            }
            Outcome::Reject { status, code, message } => {
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message: format!("creating a contact was refused (HTTP {status} {code}: {message}); its events wait for it to appear instead"),
                });
                if let Some(g) = self.contacts.get_mut(&contact) {
                    (g.busy, g.create) = (false, None);
                    g.tries += 1;
                    g.next_at = crate::later(now, retry::backoff(g.tries, first, max));
                }
            }
            Outcome::Unauthorized { .. } => {
                // The events' own requests pause delivery and report the token; the
                // creation is tried again after the probe interval.
                if let Some(g) = self.contacts.get_mut(&contact) {
                    g.busy = false;
                    g.next_at = crate::later(now, self.policy.probe_interval);
                }
            }
        }
    }

    /// Due probes and creations, held events past their window, emptied
    /// groups, and the log line about how many wait. Returns the next time due.
    fn tend_contacts(&mut self, now: Instant, out: &mut Vec<Action>) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let window = self.policy.unknown_contact_wait;
        let mut expired = Vec::new();
        for (key, g) in self.contacts.iter_mut() {
            if let Some(i) = g.members.iter().position(|j| j.held_since.is_some_and(|h| crate::later(h, window) <= now)) {
                // Members are mostly in held order; a probe's return may not be.
                let (gone, kept): (Vec<Job>, Vec<Job>) =
                    g.members.drain(i..).partition(|j| j.held_since.is_some_and(|h| crate::later(h, window) <= now));
                g.members.extend(kept);
                expired.extend(gone);
            }
            if let Some(h) = g.members.iter().filter_map(|j| j.held_since).min() {
                let at = crate::later(h, window);
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            if g.busy || g.members.is_empty() {
                continue;
            }
            if g.next_at > now {
                wake = Some(wake.map_or(g.next_at, |w| w.min(g.next_at)));
                continue;
            }
            if let Some(body) = g.create.clone() {
                g.busy = true;
                self.creations.insert(g.id, key.clone());
                self.to_create.push_back((g.id, body));
            } else if let Some(probe) = g.members.pop_front() {
                g.busy = true;
                self.probes.insert(probe.seq, key.clone());
                Counters::gauge(&self.counters.waiting_for_contact, -1);
                self.ready.push_front(probe);
            }
        }
        for job in expired {
            Counters::gauge(&self.counters.waiting_for_contact, -1);
            Counters::gauge(&self.counters.queued, -1);
            Counters::add(&self.counters.failed_rejected, 1);
            let waited_secs = job.held_since.map_or(0, |h| now.saturating_duration_since(h).as_secs()).max(1);
            let error = Error::ContactNotFound { intercom_code: "not_found".into(), message: "User Not Found".into(), waited_secs };
            self.fail(job, error, out);
        }
        self.contacts.retain(|_, g| g.busy || !g.members.is_empty());
        // One line per change in how many wait, at most one per LOG_EVERY.
        let held = self.counters.waiting_for_contact.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64;
        if held != self.held_logged.0 {
            match self.held_logged.1.map(|t| t + LOG_EVERY).filter(|t| *t > now) {
                Some(t) => wake = Some(wake.map_or(t, |w| w.min(t))),
                None => {
                    self.held_logged = (held, Some(now));
                    let message = if held == 0 {
                        "no event waits for an unknown contact any more".to_string()
                    } else {
                        format!(
                            "{held} events wait for {} contacts Intercom does not know yet (unknown_contact={}); each is reported if its contact has not appeared within {} s",
                            self.contacts.len(),
                            self.policy.unknown_contact.as_str(),
                            window.as_secs()
                        )
                    };
                    out.push(Action::Log { level: log::Level::Info, message });
                }
            }
        }
        wake
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
        let contacts_wake = if self.contacts.is_empty() && self.held_logged.0 == 0 { None } else { self.tend_contacts(now, out) };
        if let Some(deadline) = self.shutdown {
            if self.store.is_empty() {
                self.finish(out);
                return None;
            }
            // Paused past the deadline with nothing under way: nothing can be
            // delivered any more, so give up now and leave the rest of the
            // bound to the reports. Likewise when all that is left waits for
            // contacts and no creation is due: a shutdown does not wait for a
            // contact to appear.
            let only_held = self.ready.is_empty()
                && self.retrying.is_empty()
                && self.to_create.is_empty()
                && self.creations.is_empty()
                && self.contacts.values().all(|g| g.create.is_none());
            let hopeless = self.in_flight.is_empty() && (self.paused_until.is_some_and(|u| u >= deadline) || only_held);
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
            contacts_wake,
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
            self.ready.extend(loaded.into_iter().map(|seq| Job::new(seq, None)));
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
                    // (Creations wait too: the pause is about the whole API.)
                    return None;
                }
                // One probe request tells whether the token works again.
                1
            }
            None => self.policy.max_in_flight,
        };
        while self.in_flight.len() + self.creations_under_way() < limit && !(self.ready.is_empty() && self.to_create.is_empty()) {
            if self.lease == 0 {
                if let Some(w) = self.limiter_wait {
                    if now < w {
                        return Some(w);
                    }
                    self.limiter_wait = None;
                }
                let free = limit - self.in_flight.len() - self.creations_under_way();
                let wanted = (self.ready.len() + self.to_create.len()).min(free).min(MAX_LEASE) as u32;
                let limiter = &mut self.limiter;
                let answer = catch_unwind(AssertUnwindSafe(|| limiter.reserve(wanted, now))).unwrap_or_else(|_| {
                    Reservation::Unavailable { retry_at: now + Duration::from_secs(1), reason: "the rate limiter panicked".into() }
                });
                let limiter = &mut self.limiter;
                if let Ok(Some(reason)) = catch_unwind(AssertUnwindSafe(|| limiter.notice())) {
                    out.push(Action::Report { body: Body::from(&b"{}"[..]), error: Error::SharedBudgetUnavailable { reason } });
                }
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
            // A creation is one request against the same limit as events.
            if self.paused_until.is_none() {
                if let Some((id, body)) = self.to_create.pop_front() {
                    self.creating += 1;
                    out.push(Action::CreateContact { id, body });
                    continue;
                }
            }
            let Some(mut job) = self.ready.pop_front() else { break };
            let Some(body) = self.store.get(job.seq) else {
                // Settled elsewhere (cannot happen with a correct store): no longer waiting.
                Counters::gauge(&self.counters.queued, -1);
                continue;
            };
            job.first_sent.get_or_insert(now);
            job.last_sent = Some(now);
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

    fn creations_under_way(&self) -> usize {
        self.creating
    }

    fn fail(&mut self, job: Job, error: Error, out: &mut Vec<Action>) {
        // Not delivered, so tracking the same event again must not count as a copy
        // (e.g. after a 404 the app creates the contact and tracks it again).
        if let (Some(keys), Some(k)) = (&mut self.dedupe, job.key) {
            keys.remove(k);
        }
        // A probe given up on (another refusal, retries exhausted): the group
        // tries again with its next event.
        if let Some(contact) = (!self.probes.is_empty()).then(|| self.probes.remove(&job.seq)).flatten() {
            if let Some(g) = self.contacts.get_mut(&contact) {
                g.busy = false;
            }
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
            // Held for their contacts too: kept on disk like everything else
            // (the next tracker starts their wait afresh).
            let held: usize = self.contacts.drain().map(|(_, g)| g.members.len()).sum();
            self.to_create.clear();
            self.creations.clear();
            self.probes.clear();
            Counters::gauge(&self.counters.waiting_for_contact, -(held as i64));
            let waiting = self.ready.len() + self.retrying.len() + held;
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
        // Held for their contacts: reported with that reason.
        let mut held: Vec<Job> = self.contacts.drain().flat_map(|(_, g)| g.members).collect();
        held.sort_by_key(|j| j.seq);
        self.to_create.clear();
        self.creations.clear();
        self.probes.clear();
        for job in held {
            Counters::gauge(&self.counters.queued, -1);
            Counters::gauge(&self.counters.waiting_for_contact, -1);
            Counters::add(&self.counters.dropped_shutdown, 1);
            let waited_secs = job.held_since.map_or(0, |h| Instant::now().saturating_duration_since(h).as_secs());
            self.fail(job, Error::HeldForContactAtShutdown { waited_secs }, out);
        }
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
            unknown_contact: UnknownContact::Report,
            unknown_contact_wait: Duration::from_secs(60),
            unknown_contact_backoff: Duration::from_secs(10),
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
        h.answer(0, Outcome::Reject { status: 400, code: "parameter_invalid".into(), message: "bad".into() });
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

    fn not_found() -> Outcome {
        Outcome::Reject { status: 404, code: "not_found".into(), message: "User Not Found".into() }
    }

    fn contact_policy(mode: UnknownContact) -> Policy {
        Policy { unknown_contact: mode, max_in_flight: 10, backoff_max: Duration::from_secs(60), ..policy() }
    }

    fn creations(h: &mut Harness) -> Vec<(u64, String)> {
        h.take(|a| if let Action::CreateContact { id, body } = a { Some((*id, String::from_utf8_lossy(body).into_owned())) } else { None })
    }

    #[test]
    fn report_mode_reports_a_user_not_found_once_without_retry() {
        let mut h = Harness::new(contact_policy(UnknownContact::Report), Box::new(Unlimited));
        h.track(r#"{"event_name":"a","created_at":1,"user_id":"u1"}"#, 1);
        h.tick();
        let seq = h.sends()[0];
        h.answer(seq, not_found());
        assert_eq!(h.reports(), vec!["contact_not_found"]);
        h.now += Duration::from_secs(3600);
        assert_eq!(h.tick(), None);
        assert!(h.sends().is_empty(), "no retry");
        let s = h.stats();
        assert_eq!((s.failed_rejected, s.queued, s.waiting_for_contact, s.retried), (1, 0, 0, 0));
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn wait_mode_probes_one_event_per_contact_and_releases_the_rest_when_it_is_delivered() {
        let mut h = Harness::new(contact_policy(UnknownContact::Wait), Box::new(Unlimited));
        for k in 0..5 {
            h.track(&format!(r#"{{"event_name":"e{k}","created_at":1,"user_id":"u1"}}"#), k);
        }
        h.tick();
        for seq in h.sends() {
            h.answer(seq, not_found());
        }
        assert!(h.reports().is_empty(), "held, not reported");
        let s = h.stats();
        assert_eq!((s.queued, s.waiting_for_contact, s.in_flight), (5, 5, 0));
        assert!(s.balanced(), "{s:?}");
        // A later event of the same contact joins the group without a request.
        h.track(r#"{"event_name":"late","created_at":1,"user_id":"u1"}"#, 9);
        let wake = h.tick().expect("the probe time");
        assert!(h.sends().is_empty());
        assert_eq!(h.stats().waiting_for_contact, 6);
        let gap = (wake - h.now).as_secs_f64();
        assert!((9.0..=11.0).contains(&gap), "first probe after ~10 s, not {gap}");
        assert!(h.logs().iter().any(|l| l.contains("6 events wait for 1 contacts")), "one line says how many wait");
        h.now = wake;
        h.tick();
        let probe = h.sends();
        assert_eq!(probe.len(), 1, "one probe for the contact, not one per event");
        h.answer(probe[0], not_found());
        let answered = h.now;
        let probe = loop {
            h.now = h.tick().expect("the next probe");
            let sent = h.sends();
            if !sent.is_empty() {
                break sent;
            }
        };
        assert!(h.now - answered > Duration::from_secs(15), "backoff doubles: {:?}", h.now - answered);
        assert_eq!(probe.len(), 1);
        h.answer(probe[0], Outcome::Delivered);
        h.tick();
        let rest = h.sends();
        assert_eq!(rest.len(), 5, "the contact exists: all its events go");
        for seq in rest {
            h.answer(seq, Outcome::Delivered);
        }
        let s = h.stats();
        assert_eq!((s.delivered, s.waiting_for_contact, s.queued, s.failed), (6, 0, 0, 0), "{s:?}");
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn wait_mode_reports_events_whose_contact_never_appears_after_the_window() {
        let mut h = Harness::new(contact_policy(UnknownContact::Wait), Box::new(Unlimited));
        h.track(r#"{"event_name":"a","created_at":1,"email":"x@example.com"}"#, 1);
        h.track(r#"{"event_name":"b","created_at":1,"email":"x@example.com"}"#, 2);
        h.tick();
        for seq in h.sends() {
            h.answer(seq, not_found());
        }
        let start = h.now;
        let mut probes = 0;
        while h.now < start + Duration::from_secs(61) {
            let Some(wake) = h.tick() else { break };
            for seq in h.sends() {
                probes += 1;
                h.answer(seq, not_found());
            }
            if !h.out.iter().any(|a| matches!(a, Action::Report { .. })) {
                h.now = wake.max(h.now);
            } else {
                break;
            }
        }
        let reports = h.reports();
        assert_eq!(reports, vec!["contact_not_found"; 2]);
        assert!(h.now >= start + Duration::from_secs(60), "reported at the window, not before");
        assert!((1..=4).contains(&probes), "{probes} probes in 60 s from a 10 s backoff");
        let s = h.stats();
        assert_eq!((s.failed_rejected, s.waiting_for_contact, s.queued), (2, 0, 0));
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn create_mode_creates_each_contact_once_and_a_conflict_counts_as_created() {
        let mut h = Harness::new(contact_policy(UnknownContact::Create), Box::new(Unlimited));
        for k in 0..6 {
            let who = if k % 2 == 0 { r#""user_id":"u1""# } else { r#""user_id":"u2","email":"b@example.com""# };
            h.track(&format!(r#"{{"event_name":"e{k}","created_at":1,{who}}}"#), k);
        }
        h.tick();
        let sent = h.sends();
        assert_eq!(sent.len(), 6);
        // The first answers come back; the creations go out at once.
        h.answer(sent[0], not_found());
        h.answer(sent[1], not_found());
        h.tick();
        let mut made = creations(&mut h);
        made.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(made.len(), 2, "one creation per contact");
        assert_eq!(made[0].1, r#"{"role":"user","external_id":"u1"}"#);
        assert_eq!(made[1].1, r#"{"role":"user","external_id":"u2","email":"b@example.com"}"#);
        // More 404s of the burst join the groups: no more creations.
        for seq in &sent[2..4] {
            h.answer(*seq, not_found());
        }
        h.tick();
        assert!(creations(&mut h).is_empty());
        h.now += Duration::from_millis(1);
        let created = Response { outcome: Outcome::Delivered, rate: None };
        h.s.answered(Request::Contact(made[0].0), created.clone(), h.now, &mut h.out);
        h.s.answered(Request::Contact(made[1].0), created, h.now, &mut h.out);
        h.now += Duration::from_millis(1);
        h.tick();
        let released = h.sends();
        assert_eq!(released.len(), 4, "the held events go once their contacts exist");
        // 404s sent before the creation are sent again at once, not held.
        for seq in &sent[4..] {
            h.answer(*seq, not_found());
        }
        h.tick();
        let again = h.sends();
        assert_eq!(again.len(), 2);
        assert!(creations(&mut h).is_empty(), "created once");
        for seq in released.into_iter().chain(again) {
            h.answer(seq, Outcome::Delivered);
        }
        let s = h.stats();
        assert_eq!((s.delivered, s.failed, s.waiting_for_contact, s.queued), (6, 0, 0, 0), "{s:?}");
        assert!(s.balanced(), "{s:?}");
    }

    #[test]
    fn create_mode_waits_for_events_known_only_by_intercom_id_and_shutdown_reports_held_events() {
        let mut h = Harness::new(contact_policy(UnknownContact::Create), Box::new(Unlimited));
        h.track(r#"{"event_name":"a","created_at":1,"id":"65a1f3c2"}"#, 1);
        h.tick();
        let seq = h.sends()[0];
        h.answer(seq, not_found());
        h.tick();
        assert!(creations(&mut h).is_empty(), "an Intercom id cannot be created");
        assert_eq!(h.stats().waiting_for_contact, 1);
        h.s.shutdown(h.now + Duration::from_secs(5));
        h.tick();
        assert!(h.s.finished(), "a shutdown does not wait for a contact to appear");
        let reports = h.take(|a| if let Action::Report { error, .. } = a { Some(error.clone()) } else { None });
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].code(), "undelivered_at_shutdown");
        assert!(reports[0].to_string().contains("waiting"), "{}", reports[0]);
        let s = h.stats();
        assert_eq!((s.dropped_shutdown, s.waiting_for_contact, s.queued), (1, 0, 0));
        assert!(s.balanced(), "{s:?}");
    }
}
