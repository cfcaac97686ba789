//! The emulator's state and Intercom's rules, independent of HTTP plumbing.
//!
//! Everything here runs under one mutex held for microseconds; the HTTP layer
//! (`server.rs`) turns a [`Reply`] into a response after the lock is released.
//! Waiters (the `/wait` control endpoints, the handle's `wait_*` methods) watch
//! [`State::subscribe`], which ticks on every change they could be waiting for.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, watch};

use crate::config::EmulatorConfig;
use crate::errors::{self, ApiError};
use crate::gate::{Gate, GateStatus};
use crate::ratelimit::{Decision, Limiter, WindowCount};
use crate::script::ScriptedResponse;
use crate::inspect::{body_text, error_of, EventFilter, Records, RequestFilter, RequestLog, RequestRecord, Subject};
use crate::validate::ValidEvent;
use axum::body::Bytes;

/// A contact (user or lead) the emulator knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Intercom contact id (24 hex digits); events may name it as `id`.
    pub id: String,
    /// Your id for the user; events name it as `user_id`.
    pub external_id: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// `user` or `lead`.
    pub role: String,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// `true` if created implicitly by an event (only without `require_known_users`).
    pub implicit: bool,
}

impl Contact {
    /// The contact object Intercom returns from `POST /contacts`.
    pub fn to_intercom_json(&self) -> Value {
        json!({
            "type": "contact",
            "id": self.id,
            "workspace_id": "emulator",
            "external_id": self.external_id,
            "role": self.role,
            "email": self.email,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        })
    }
}

/// An event the emulator stored (accepted, not a duplicate).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `event_name` as sent.
    pub event_name: String,
    /// `created_at` as sent (Unix seconds).
    pub created_at: i64,
    /// `user_id` as sent, if any.
    pub user_id: Option<String>,
    /// `id` as sent, if any.
    pub id: Option<String>,
    /// `email` as sent, if any.
    pub email: Option<String>,
    /// The Intercom id of the contact the event was attached to.
    pub intercom_user_id: String,
    /// The metadata Intercom keeps: the first 10 keys, in the order sent.
    pub metadata: Map<String, Value>,
    /// Metadata keys past the tenth, which Intercom ignores.
    pub ignored_metadata_keys: Vec<String>,
    /// The JSON body exactly as received (all metadata keys included).
    pub body: Map<String, Value>,
    /// Unix time of arrival, in seconds with sub-second precision.
    pub received_at: f64,
    /// Selected request headers (lower-case names): `user-agent`,
    /// `intercom-version`, `content-type`, `accept`.
    pub headers: BTreeMap<String, String>,
    /// The status the client was answered (usually 202; a scripted answer can
    /// differ), `None` if the connection was closed without an answer.
    pub response_status: Option<u16>,
}

impl StoredEvent {
    /// The `/__emulator/events` form: the body as received, plus
    /// `ignored_metadata_keys`, `received_at`, `intercom_user_id`, `headers`
    /// and `response_status`.
    pub fn to_json(&self) -> Value {
        let mut m = self.body.clone();
        m.insert("ignored_metadata_keys".into(), json!(self.ignored_metadata_keys));
        m.insert("response_status".into(), json!(self.response_status));
        m.insert("received_at".into(), json!(self.received_at));
        m.insert("intercom_user_id".into(), json!(self.intercom_user_id));
        m.insert("headers".into(), json!(self.headers));
        Value::Object(m)
    }

    fn to_intercom_json(&self, index: usize) -> Value {
        json!({
            "type": "event",
            "id": format!("e7e0a1b2{:016x}", index + 1),
            "event_name": self.event_name,
            "created_at": self.created_at,
            "user_id": self.user_id,
            "email": self.email,
            "intercom_user_id": self.intercom_user_id,
            "metadata": self.metadata,
        })
    }
}

/// The current rate-limit window, as reported by the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Window start, Unix seconds (a multiple of 10).
    pub start: u64,
    /// Window end (`X-RateLimit-Reset`), Unix seconds.
    pub reset: u64,
    /// Allowance per window, `None` when rate limiting is off.
    pub limit: Option<u32>,
    /// Authenticated API requests so far in this window (refused ones included).
    pub used: u64,
    /// Requests left in this window (0 when unlimited).
    pub remaining: u32,
}

/// Counters since start or the last reset (`GET /__emulator/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests to the Intercom API routes (`/events`, `/contacts`), 401s and drops included.
    pub requests_total: u64,
    /// `POST /events` requests among them.
    pub event_posts: u64,
    /// Responses by status code (dropped connections are not responses).
    pub by_status: BTreeMap<String, u64>,
    /// `POST /events` answered 202 (stored, duplicate or scripted).
    pub accepted: u64,
    /// Events stored.
    pub stored: u64,
    /// Duplicates answered 202 but not stored.
    pub duplicates: u64,
    /// Requests refused by the rate limiter (scripted 429s not included).
    pub rate_limited: u64,
    /// Connections closed without a response (random or scripted).
    pub dropped_connections: u64,
    /// Random 5xx from `error_rate`.
    pub injected_errors: u64,
    /// Scripted responses served.
    pub scripted_served: u64,
    /// Scripted responses still queued.
    pub script_pending: usize,
    /// Distinct event names stored (counted against the name cap).
    pub event_names: usize,
    /// Known contacts.
    pub contacts: usize,
    /// The current 10-second window.
    pub window: WindowStats,
    /// The most authenticated API requests seen in any single 10-second window.
    pub max_requests_in_window: u64,
    /// Recent windows (up to 60 past ones plus the current), oldest first.
    pub windows: Vec<WindowCount>,
}

/// What to send back, decided under the lock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    /// JSON body; `None` means an empty body.
    pub body: Option<String>,
    pub rate_limit: Option<u32>,
    pub rate_remaining: Option<u32>,
    pub rate_reset: Option<u64>,
    pub retry_after: Option<u64>,
    /// Close the connection instead of answering.
    pub drop: bool,
    pub delay: Duration,
    /// For the inspector: the event this request stored, if any.
    pub stored: Option<usize>,
    /// For the inspector: the contact a stored or duplicate event was attached to.
    pub contact: Option<String>,
    /// For the inspector: a duplicate (answered, not stored).
    pub duplicate: bool,
    /// For the inspector: a scripted response.
    pub scripted: bool,
}

impl Reply {
    fn new(status: u16, body: Option<String>) -> Self {
        Reply {
            status,
            body,
            rate_limit: None,
            rate_remaining: None,
            rate_reset: None,
            retry_after: None,
            drop: false,
            delay: Duration::ZERO,
            stored: None,
            contact: None,
            duplicate: false,
            scripted: false,
        }
    }

    /// Close the connection without answering.
    pub(crate) fn dropped() -> Self {
        let mut r = Reply::new(0, None);
        r.drop = true;
        r
    }

    fn error(e: &ApiError) -> Self {
        Reply::new(e.status, Some(e.body()))
    }

    fn rate(mut self, d: &Decision) -> Self {
        if let Some(l) = d.limit {
            self.rate_limit = Some(l);
            self.rate_remaining = Some(d.remaining);
            self.rate_reset = Some(d.reset);
        }
        self
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests_total: u64,
    event_posts: u64,
    by_status: BTreeMap<u16, u64>,
    accepted: u64,
    stored: u64,
    duplicates: u64,
    rate_limited: u64,
    dropped: u64,
    injected_errors: u64,
    scripted: u64,
}

enum Processed {
    /// Stored at this index, for this contact.
    Stored(usize, String),
    /// A duplicate for this contact.
    Duplicate(String),
}

impl Processed {
    /// Notes the outcome on the reply, for the inspector.
    fn note(self, reply: &mut Reply) {
        match self {
            Processed::Stored(i, c) => {
                reply.stored = Some(i);
                reply.contact = Some(c);
            }
            Processed::Duplicate(c) => {
                reply.duplicate = true;
                reply.contact = Some(c);
            }
        }
    }
}

/// What the inspector needs of a `POST /events` besides the verdict: who it
/// names (read even from an invalid body) and the raw body (kept if refused).
#[derive(Debug, Clone)]
pub(crate) struct EventNote {
    pub subject: Subject,
    pub raw: Bytes,
}

/// A `POST /events` held by the gate: everything needed to process it later,
/// and where its reply goes.
#[derive(Debug)]
pub(crate) struct HeldEvent {
    authorization: Option<String>,
    parsed: Result<ValidEvent, ApiError>,
    headers: BTreeMap<String, String>,
    note: EventNote,
    reply_to: oneshot::Sender<Reply>,
}

/// What became of a `POST /events` on arrival.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Processed now; send this.
    Answer(Reply),
    /// Held by the closed gate. The reply comes on `reply` once released; if
    /// the client goes away first, call [`State::forget_held`] with `id`.
    Held { id: u64, reply: oneshot::Receiver<Reply> },
}

/// All mutable emulator state.
pub(crate) struct State {
    initial: EmulatorConfig,
    pub config: EmulatorConfig,
    events: Vec<StoredEvent>,
    events_by_contact: HashMap<String, Vec<usize>>,
    dedup: HashSet<(String, String, i64)>,
    names: HashSet<String>,
    contacts: HashMap<String, Contact>,
    by_external_id: HashMap<String, String>,
    by_email: HashMap<String, String>,
    next_contact: u64,
    script: VecDeque<ScriptedResponse>,
    limiter: Limiter,
    counters: Counters,
    rng: fastrand::Rng,
    gate: Gate<HeldEvent>,
    /// Ticks whenever events are stored, a request is recorded or the gate
    /// changes. Kept across resets, so a waiter subscribed before a reset still
    /// hears about later changes.
    changes: watch::Sender<u64>,
    /// Every Intercom API request, for the inspector.
    records: Records,
    /// The stdout request log, if on. Kept across resets.
    log: Option<RequestLog>,
}

/// `GET /events` page size when `per_page` is not given (Intercom's default).
pub const DEFAULT_PER_PAGE: usize = 15;
/// The largest `per_page` `GET /events` accepts (our choice; Intercom does not document one).
pub const MAX_PER_PAGE: usize = 150;

/// Percent-encodes a query value.
fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Unix seconds (fractional) of `t`.
fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl State {
    /// A fresh state for `config`.
    pub fn new(config: EmulatorConfig) -> Self {
        let rng = match config.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let mut s = State {
            initial: config.clone(),
            config,
            events: Vec::new(),
            events_by_contact: HashMap::new(),
            dedup: HashSet::new(),
            names: HashSet::new(),
            contacts: HashMap::new(),
            by_external_id: HashMap::new(),
            by_email: HashMap::new(),
            next_contact: 0,
            script: VecDeque::new(),
            limiter: Limiter::default(),
            counters: Counters::default(),
            rng,
            gate: Gate::default(),
            changes: watch::Sender::new(0),
            records: Records::default(),
            log: None,
        };
        s.seed_contacts();
        s
    }

    fn seed_contacts(&mut self) {
        let now = unix_secs(SystemTime::now());
        for uid in self.initial.known_user_ids.clone() {
            if !self.by_external_id.contains_key(&uid) {
                self.insert_contact(None, Some(uid), None, "user", now, false);
            }
        }
        for email in self.initial.known_emails.clone() {
            if !self.by_email.contains_key(&email) {
                self.insert_contact(None, None, Some(email), "user", now, false);
            }
        }
    }

    /// Back to the state at start: config, contacts, events, names, stats,
    /// script, window, and an open gate with zeroed counters.
    ///
    /// Held requests are released first and processed against the state being
    /// discarded, so their clients get an answer and nothing of theirs
    /// survives into the fresh state.
    pub fn reset(&mut self, now: SystemTime) {
        self.set_hold(false, now);
        let changes = std::mem::replace(&mut self.changes, watch::Sender::new(0));
        let log = self.log.take();
        let records = self.records.after_reset();
        *self = State::new(self.initial.clone());
        self.changes = changes;
        self.log = log;
        self.records = records;
        self.changed();
    }

    /// Tells waiters to look again.
    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees a change after every store or gate change from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn insert_contact(
        &mut self,
        id: Option<String>,
        external_id: Option<String>,
        email: Option<String>,
        role: &str,
        now: u64,
        implicit: bool,
    ) -> Contact {
        let id = id.unwrap_or_else(|| {
            self.next_contact += 1;
            // 24 hex digits, like Intercom's ids.
            format!("65a1f3c2{:016x}", self.next_contact)
        });
        let c = Contact {
            id: id.clone(),
            external_id: external_id.clone(),
            email: email.clone(),
            role: role.to_string(),
            created_at: now,
            implicit,
        };
        if let Some(x) = external_id {
            self.by_external_id.entry(x).or_insert_with(|| id.clone());
        }
        if let Some(e) = email {
            self.by_email.entry(e).or_insert_with(|| id.clone());
        }
        self.contacts.insert(id, c.clone());
        c
    }

    /// Registers a contact (`POST /contacts`, library `add_contact`).
    /// Fails with 409 `conflict` if the external id or email is taken.
    pub fn create_contact(
        &mut self,
        external_id: Option<String>,
        email: Option<String>,
        role: &str,
    ) -> Result<Contact, ApiError> {
        let taken = external_id
            .as_ref()
            .and_then(|x| self.by_external_id.get(x))
            .or_else(|| email.as_ref().and_then(|e| self.by_email.get(e)));
        if let Some(id) = taken {
            return Err(ApiError::new(
                409,
                errors::CONFLICT,
                format!("A contact matching those details already exists with id={id}"),
            ));
        }
        let now = unix_secs(SystemTime::now());
        Ok(self.insert_contact(None, external_id, email, role, now, false))
    }

    fn find_contact(&self, id: Option<&str>, user_id: Option<&str>, email: Option<&str>) -> Option<String> {
        if let Some(id) = id {
            if self.contacts.contains_key(id) {
                return Some(id.to_string());
            }
        }
        if let Some(x) = user_id.and_then(|u| self.by_external_id.get(u)) {
            return Some(x.clone());
        }
        email.and_then(|e| self.by_email.get(e)).cloned()
    }

    fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(h) = authorization else { return false };
        let h = h.trim();
        let Some((scheme, token)) = h.split_once(' ') else { return false };
        scheme.eq_ignore_ascii_case("bearer") && self.config.tokens.iter().any(|t| t == token.trim())
    }

    fn latency(&mut self) -> Duration {
        let jitter = if self.config.latency_jitter_ms > 0 {
            self.rng.u64(0..=self.config.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.config.latency_ms.saturating_add(jitter))
    }

    fn finish(&mut self, mut reply: Reply, delay: Duration) -> Reply {
        reply.delay += delay;
        if reply.drop {
            self.counters.dropped += 1;
        } else {
            *self.counters.by_status.entry(reply.status).or_insert(0) += 1;
        }
        reply
    }

    /// Common start of every Intercom API request: count, authenticate, rate-limit.
    /// `Err` is the finished reply (401) to send.
    // `Reply` is built once per request and moved straight out; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    fn begin(&mut self, authorization: Option<&str>, now: SystemTime) -> Result<(Decision, Duration), Reply> {
        self.counters.requests_total += 1;
        let delay = self.latency();
        if !self.authorized(authorization) {
            let e = ApiError::new(401, errors::UNAUTHORIZED, "Access Token Invalid");
            return Err(self.finish(Reply::error(&e), delay));
        }
        let d = self.limiter.hit(unix_secs(now), self.config.rate_limit_per_minute);
        Ok((d, delay))
    }

    fn rate_limited(&mut self, d: &Decision, delay: Duration) -> Reply {
        self.counters.rate_limited += 1;
        let e = ApiError::new(
            429,
            errors::RATE_LIMIT_EXCEEDED,
            errors::rate_limit_message(d.limit.unwrap_or(0)),
        );
        self.finish(Reply::error(&e).rate(d), delay)
    }

    /// A `POST /events` arrives: held if the gate is closed (before anything
    /// else, authentication included), otherwise processed at once.
    pub fn receive_event(
        &mut self,
        authorization: Option<&str>,
        parsed: Result<ValidEvent, ApiError>,
        headers: BTreeMap<String, String>,
        note: EventNote,
        now: SystemTime,
    ) -> Admission {
        if !self.gate.is_closed() {
            return Admission::Answer(self.post_event(authorization, parsed, headers, note, now));
        }
        let (reply_to, reply) = oneshot::channel();
        let id = self.gate.admit(HeldEvent {
            authorization: authorization.map(str::to_string),
            parsed,
            headers,
            note,
            reply_to,
        });
        self.changed();
        Admission::Held { id, reply }
    }

    /// Closes (`true`) or opens (`false`) the gate; opening releases every held request.
    pub fn set_hold(&mut self, hold: bool, now: SystemTime) -> GateStatus {
        if hold {
            self.gate.close();
        } else {
            let released = self.gate.open();
            self.answer_released(released, now);
        }
        self.changed();
        self.gate.status()
    }

    /// Releases the `n` oldest held requests (fewer if fewer are held), keeping
    /// the gate as it is. Returns how many were released.
    pub fn release_held(&mut self, n: usize, now: SystemTime) -> usize {
        let released = self.gate.release(n);
        let count = released.len();
        self.answer_released(released, now);
        self.changed();
        count
    }

    /// Processes released requests in arrival order, all at the same `now`
    /// (so a burst released together meets one rate-limit window).
    fn answer_released(&mut self, released: Vec<HeldEvent>, now: SystemTime) {
        for h in released {
            let reply = self.post_event(h.authorization.as_deref(), h.parsed, h.headers, h.note, now);
            // A client that went away between release and reply just misses it.
            let _ = h.reply_to.send(reply);
        }
    }

    /// The client of held request `id` went away: it is dropped, unprocessed,
    /// and counted as gone (no-op if it was already released).
    pub fn forget_held(&mut self, id: u64) {
        if self.gate.forget(id) {
            self.changed();
        }
    }

    /// The gate's state and counters.
    pub fn gate_status(&self) -> GateStatus {
        self.gate.status()
    }

    /// `POST /events`, processed now, and recorded for the inspector.
    ///
    /// `parsed` is `validate_event`'s verdict on the body, computed by the
    /// caller outside the lock (it is pure and the most expensive step).
    fn post_event(
        &mut self,
        authorization: Option<&str>,
        parsed: Result<ValidEvent, ApiError>,
        headers: BTreeMap<String, String>,
        note: EventNote,
        now: SystemTime,
    ) -> Reply {
        let reply = self.post_event_inner(authorization, parsed, headers, now);
        let status = (!reply.drop).then_some(reply.status);
        if let Some(e) = reply.stored.and_then(|i| self.events.get_mut(i)) {
            e.response_status = status;
        }
        let refused = !matches!(status, Some(200..=299));
        let (code, message) = if refused { error_of(reply.body.as_deref()) } else { (None, None) };
        self.record(RequestRecord {
            seq: 0,
            at: unix_f64(now),
            method: "POST",
            path: "/events",
            status,
            subject: note.subject,
            intercom_user_id: reply.contact.clone(),
            event: reply.stored,
            duplicate: reply.duplicate,
            scripted: reply.scripted,
            code,
            message,
            body: refused.then(|| body_text(&note.raw)),
        });
        reply
    }

    /// Keeps a request record, logs it if the log is on, and wakes waiters.
    pub(crate) fn record(&mut self, r: RequestRecord) {
        let r = self.records.push(r);
        if let Some(log) = &self.log {
            log.line(r.log_line());
        }
        self.changed();
    }

    /// Turns the stdout request log on.
    pub(crate) fn set_log(&mut self, log: Option<RequestLog>) {
        self.log = log;
    }

    /// Request records (newest first) matching `f`, with the total that match.
    pub fn requests_json(&self, f: &RequestFilter) -> Value {
        let (page, total) = self.records.page(f);
        json!({
            "requests": page.iter().map(|r| r.to_json(&self.events)).collect::<Vec<_>>(),
            "total": total,
            "latest_seq": self.records.latest_seq(),
            "generation": self.records.generation(),
        })
    }

    /// Whether a record newer than `after` matches `f` (the long poll's condition).
    pub fn has_request_after(&self, after: u64, f: &RequestFilter) -> bool {
        self.records.any_after(after, f)
    }

    fn post_event_inner(
        &mut self,
        authorization: Option<&str>,
        parsed: Result<ValidEvent, ApiError>,
        headers: BTreeMap<String, String>,
        now: SystemTime,
    ) -> Reply {
        let (d, delay) = match self.begin(authorization, now) {
            Ok(x) => x,
            Err(r) => return r,
        };
        self.counters.event_posts += 1;

        if let Some(s) = self.script.pop_front() {
            return self.scripted(s, &d, parsed, headers, now, delay);
        }
        if !d.allowed {
            return self.rate_limited(&d, delay);
        }
        if self.config.drop_rate > 0.0 && self.rng.f64() < self.config.drop_rate {
            return self.finish(Reply::dropped(), delay);
        }
        if self.config.error_rate > 0.0 && self.rng.f64() < self.config.error_rate {
            self.counters.injected_errors += 1;
            let status = if self.rng.bool() { 500 } else { 503 };
            let e = ApiError::for_status(status, d.limit);
            return self.finish(Reply::error(&e).rate(&d), delay);
        }
        let reply = match self.process(parsed, headers, now) {
            Ok(p) => {
                self.counters.accepted += 1;
                let mut r = Reply::new(202, None);
                p.note(&mut r);
                r
            }
            Err(e) => Reply::error(&e),
        };
        self.finish(reply.rate(&d), delay)
    }

    fn scripted(
        &mut self,
        s: ScriptedResponse,
        d: &Decision,
        parsed: Result<ValidEvent, ApiError>,
        headers: BTreeMap<String, String>,
        now: SystemTime,
        delay: Duration,
    ) -> Reply {
        self.counters.scripted += 1;
        // The scripted answer wins whatever the handling decided.
        let processed = if s.effective_process() { self.process(parsed, headers, now).ok() } else { None };
        let delay = delay + Duration::from_millis(s.delay_ms.unwrap_or(0));
        let noted = |mut r: Reply| {
            r.scripted = true;
            if let Some(p) = processed {
                p.note(&mut r);
            }
            r
        };
        if s.drop {
            return self.finish(noted(Reply::dropped()), delay);
        }
        let status = s.effective_status();
        let mut reply = if (200..300).contains(&status) {
            if status == 202 {
                self.counters.accepted += 1;
            }
            Reply::new(status, None)
        } else {
            let mut e = ApiError::for_status(status, d.limit);
            if let Some(c) = s.code {
                e.code = c;
            }
            if let Some(m) = s.message {
                e.message = m;
            }
            Reply::error(&e)
        }
        .rate(d);
        if let Some(secs) = s.reset_in_secs {
            reply.rate_reset = Some(unix_secs(now) + secs);
        }
        if status == 429 && (reply.rate_reset.is_some() || reply.rate_limit.is_some()) {
            reply.rate_remaining = Some(0);
        }
        reply.retry_after = s.retry_after;
        self.finish(noted(reply), delay)
    }

    /// Validation, contact resolution, de-duplication, name cap, storage.
    fn process(
        &mut self,
        parsed: Result<ValidEvent, ApiError>,
        headers: BTreeMap<String, String>,
        now: SystemTime,
    ) -> Result<Processed, ApiError> {
        let ev = parsed?;
        let contact_id = match self.find_contact(ev.id.as_deref(), ev.user_id.as_deref(), ev.email.as_deref()) {
            Some(c) => c,
            None if self.config.require_known_users => {
                return Err(ApiError::new(404, errors::NOT_FOUND, "User Not Found"))
            }
            None => {
                let c = self.insert_contact(
                    ev.id.clone(),
                    ev.user_id.clone(),
                    ev.email.clone(),
                    "user",
                    unix_secs(now),
                    true,
                );
                c.id
            }
        };
        let key = (contact_id.clone(), ev.event_name.clone(), ev.created_at);
        if self.dedup.contains(&key) {
            self.counters.duplicates += 1;
            return Ok(Processed::Duplicate(contact_id));
        }
        let cap = self.config.max_event_names;
        if cap > 0 && !self.names.contains(&ev.event_name) && self.names.len() >= cap {
            return Err(ApiError::new(
                422,
                errors::EVENT_NAME_LIMIT_REACHED,
                errors::event_name_limit_message(cap),
            ));
        }
        self.names.insert(ev.event_name.clone());
        self.dedup.insert(key);
        self.store(ev, contact_id.clone(), headers, now);
        Ok(Processed::Stored(self.events.len() - 1, contact_id))
    }

    fn store(&mut self, ev: ValidEvent, contact_id: String, headers: BTreeMap<String, String>, now: SystemTime) {
        let index = self.events.len();
        self.events_by_contact.entry(contact_id.clone()).or_default().push(index);
        self.events.push(StoredEvent {
            event_name: ev.event_name,
            created_at: ev.created_at,
            user_id: ev.user_id,
            id: ev.id,
            email: ev.email,
            intercom_user_id: contact_id,
            metadata: ev.metadata,
            ignored_metadata_keys: ev.ignored_metadata_keys,
            body: ev.body,
            received_at: unix_f64(now),
            headers,
            response_status: None,
        });
        self.counters.stored += 1;
        self.changed();
    }

    /// `GET /events?type=user&user_id=…|email=…|intercom_user_id=…`.
    ///
    /// Pages as Intercom documents: newest first, `per_page` (default 15) a
    /// page, `pages.next` the URL of the next (older) page or `null`, and
    /// `pages.since` a URL that lists only events newer than this page.
    /// `base` (`http://host:port`) starts those URLs.
    pub fn list_events(
        &mut self,
        authorization: Option<&str>,
        query: &HashMap<String, String>,
        base: &str,
        now: SystemTime,
    ) -> Reply {
        let (d, delay) = match self.begin(authorization, now) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !d.allowed {
            return self.rate_limited(&d, delay);
        }
        let reply = match self.list_events_body(query, base) {
            Ok(body) => Reply::new(200, Some(body)),
            Err(e) => Reply::error(&e),
        };
        self.finish(reply.rate(&d), delay)
    }

    fn list_events_body(&self, query: &HashMap<String, String>, base: &str) -> Result<String, ApiError> {
        match query.get("type").map(String::as_str) {
            Some("user") => {}
            Some(_) => return Err(ApiError::new(400, errors::PARAMETER_INVALID, "type must be user")),
            None => return Err(ApiError::new(400, errors::PARAMETER_NOT_FOUND, "type is required")),
        }
        let get = |k: &str| query.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let (id, uid, email) = (get("intercom_user_id"), get("user_id"), get("email"));
        if id.is_none() && uid.is_none() && email.is_none() {
            return Err(ApiError::new(
                400,
                errors::PARAMETER_NOT_FOUND,
                "One of user_id, email or intercom_user_id is required",
            ));
        }
        let cursor = |k: &str| -> Result<Option<usize>, ApiError> {
            match query.get(k) {
                None => Ok(None),
                Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
                    ApiError::new(400, errors::PARAMETER_INVALID, format!("{k} must be a cursor from a pages URL, got {v:?}"))
                }),
            }
        };
        let per_page = match query.get("per_page") {
            None => DEFAULT_PER_PAGE,
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=MAX_PER_PAGE) => n,
                _ => {
                    return Err(ApiError::new(
                        400,
                        errors::PARAMETER_INVALID,
                        format!("per_page must be an integer from 1 to {MAX_PER_PAGE}, got {v:?}"),
                    ))
                }
            },
        };
        let (before, since) = (cursor("before")?, cursor("since")?);
        let contact = self
            .find_contact(id, uid, email)
            .ok_or_else(|| ApiError::new(404, errors::NOT_FOUND, "User Not Found"))?;
        // Cursors are event positions + 1; newest first.
        let all: &[usize] = self.events_by_contact.get(&contact).map(Vec::as_slice).unwrap_or(&[]);
        let mut older = all
            .iter()
            .rev()
            .map(|&i| i + 1)
            .filter(|&c| before.is_none_or(|b| c < b) && since.is_none_or(|s| c > s));
        let page: Vec<usize> = older.by_ref().take(per_page).collect();
        let more = older.next().is_some();
        let who = match (id, uid, email) {
            (Some(id), _, _) => format!("intercom_user_id={}", query_escape(id)),
            (None, Some(u), _) => format!("user_id={}", query_escape(u)),
            (None, None, Some(e)) => format!("email={}", query_escape(e)),
            (None, None, None) => String::new(),
        };
        let url = |extra: String| format!("{base}/events?type=user&{who}&per_page={per_page}&{extra}");
        let next = match (more, page.last()) {
            (true, Some(&oldest)) => json!(url(format!("before={oldest}"))),
            _ => Value::Null,
        };
        let newest = page.first().copied().or(since).unwrap_or(0);
        let events: Vec<Value> = page.iter().map(|&c| self.events[c - 1].to_intercom_json(c - 1)).collect();
        Ok(json!({
            "type": "event.list",
            "events": events,
            "pages": {"type": "pages", "next": next, "since": url(format!("since={newest}")), "per_page": per_page},
        })
        .to_string())
    }

    /// `POST /contacts`.
    pub fn post_contact(&mut self, authorization: Option<&str>, raw: &[u8], now: SystemTime) -> Reply {
        let (d, delay) = match self.begin(authorization, now) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !d.allowed {
            return self.rate_limited(&d, delay);
        }
        let reply = match self.post_contact_inner(raw) {
            Ok(c) => Reply::new(200, Some(c.to_intercom_json().to_string())),
            Err(e) => Reply::error(&e),
        };
        self.finish(reply.rate(&d), delay)
    }

    fn post_contact_inner(&mut self, raw: &[u8]) -> Result<Contact, ApiError> {
        let invalid = |m: &str| ApiError::new(400, errors::PARAMETER_INVALID, m);
        let v: Value = serde_json::from_slice(raw).map_err(|_| invalid("Request body is not valid JSON"))?;
        let Value::Object(body) = v else { return Err(invalid("Request body must be a JSON object")) };
        let text = |k: &str| -> Result<Option<String>, ApiError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(&format!("{k} must be a string"))),
            }
        };
        let role = text("role")?.unwrap_or_else(|| "user".to_string());
        if role != "user" && role != "lead" {
            return Err(invalid("role must be one of user, lead"));
        }
        let (external_id, email) = (text("external_id")?, text("email")?);
        if role == "user" && external_id.is_none() && email.is_none() {
            return Err(ApiError::new(
                400,
                errors::PARAMETER_NOT_FOUND,
                "A user needs an external_id or an email",
            ));
        }
        self.create_contact(external_id, email, &role)
    }

    /// Queues scripted responses after any already queued.
    pub fn push_script(&mut self, s: Vec<ScriptedResponse>) {
        self.script.extend(s);
    }

    /// Drops all queued scripted responses.
    pub fn clear_script(&mut self) {
        self.script.clear();
    }

    /// Snapshot of stored events, in arrival order.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.events.clone()
    }

    /// How many events are stored.
    pub fn stored_count(&self) -> usize {
        self.events.len()
    }

    /// `/__emulator/events` JSON: stored events matching `f`, in arrival
    /// order (newest first with `order=desc`), at most `f.limit`.
    ///
    /// `user_id`, `email` and `id` name a contact as an event does (`id` is the
    /// Intercom contact id): the contact's events match, whichever identifier
    /// each was sent with. Several given must name the same contact; a contact
    /// the emulator does not know has no events.
    pub fn events_json(&self, f: &EventFilter) -> String {
        let limit = f.limit.unwrap_or(usize::MAX);
        let pick = |it: &mut dyn Iterator<Item = &StoredEvent>| -> Vec<Value> {
            it.filter(|e| f.matches(e)).take(limit).map(StoredEvent::to_json).collect()
        };
        let list = if f.names_contact() {
            let named = [
                f.id.as_deref().map(|id| self.contacts.contains_key(id).then(|| id.to_string())),
                f.user_id.as_deref().map(|u| self.by_external_id.get(u).cloned()),
                f.email.as_deref().map(|e| self.by_email.get(e).cloned()),
            ];
            let mut resolved = named.into_iter().flatten();
            let first = resolved.next().flatten();
            let same = resolved.all(|c| c.is_some() && c == first);
            match first.filter(|_| same).and_then(|c| self.events_by_contact.get(&c)) {
                None => Vec::new(),
                Some(ix) if f.newest_first => pick(&mut ix.iter().rev().map(|&i| &self.events[i])),
                Some(ix) => pick(&mut ix.iter().map(|&i| &self.events[i])),
            }
        } else if f.newest_first {
            pick(&mut self.events.iter().rev())
        } else {
            pick(&mut self.events.iter())
        };
        Value::Array(list).to_string()
    }

    /// Known contacts (sorted by id).
    pub fn contacts(&self) -> Vec<Contact> {
        let mut v: Vec<Contact> = self.contacts.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Counters snapshot.
    pub fn stats(&mut self, now: SystemTime) -> Stats {
        let per_minute = self.config.rate_limit_per_minute;
        let d = self.limiter.peek(unix_secs(now), per_minute);
        let w = self.limiter.current(unix_secs(now));
        let c = &self.counters;
        Stats {
            requests_total: c.requests_total,
            event_posts: c.event_posts,
            by_status: c.by_status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            accepted: c.accepted,
            stored: c.stored,
            duplicates: c.duplicates,
            rate_limited: c.rate_limited,
            dropped_connections: c.dropped,
            injected_errors: c.injected_errors,
            scripted_served: c.scripted,
            script_pending: self.script.len(),
            event_names: self.names.len(),
            contacts: self.contacts.len(),
            window: WindowStats {
                start: w.start,
                reset: d.reset,
                limit: d.limit,
                used: w.requests,
                remaining: d.remaining,
            },
            max_requests_in_window: self.limiter.max_requests(),
            windows: self.limiter.history().into_iter().filter(|w| w.requests > 0).collect(),
        }
    }
}
