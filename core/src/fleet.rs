//! Fleet mode: one Intercom budget (rate limit and distinct event names)
//! shared by every tracker of an app, through Redis (the `shared_budget` option).
//!
//! # Nothing on the caller's or the dispatcher's path talks to Redis
//!
//! One background thread per pipeline (`trackcore-fleet`) owns the Redis
//! connection. It *leases* permits ahead of need and puts them in a local
//! pool; [`FleetLimiter::reserve`], called on the dispatcher thread, only takes
//! from that pool under a short mutex. `observe` and `release` queue what they
//! have to say for the thread. The distinct-name cap is checked on the
//! caller's thread against a local copy of the shared name set that the same
//! thread keeps in sync ([`SharedNames`]).
//!
//! # The server side
//!
//! Two Lua scripts, run with `EVALSHA` (loaded again after a Redis restart):
//!
//! * [`LEASE_LUA`] is a token bucket on the Redis server's clock (`TIME`), sized
//!   from Intercom's 10-second window: with an allowance of `A` requests per
//!   window, a burst of `B = max(1, 3 % of A)` and a refill rate of
//!   `(A - B) / (10 s + lease lifetime)`, no 10-second span — aligned to
//!   Intercom's windows or not — sees more than `A` permits *used*, even when
//!   each is used up to a lease lifetime after it was granted. It also holds
//!   what trackers learned from Intercom: a lower `X-RateLimit-Limit`
//!   (for a minute) and a stop until the window resets after a 429 or a
//!   `Remaining: 0`, so one host's 429 slows every host.
//! * [`NAMES_LUA`] adds names to the shared set only while it has fewer than
//!   the cap, and answers with the whole set so the local copy catches up.
//!
//! Keys are `{prefix}{<first 32 hex digits of sha256(token)>}:…` (the braces
//! are a Redis Cluster hash tag); the token itself never reaches Redis.
//!
//! # Redis down, slow or unreachable
//!
//! Every command has a 500 ms timeout. On the first error the limiter falls
//! back to local pacing ([`crate::WindowLimiter`]) at
//! `shared_budget_fallback_percent` of the limit: one warning line, `redis_errors`
//! counted, time in fallback counted in `fleet_fallback_ms`. The thread
//! reconnects by itself (backoff 100 ms doubling to 2 s) and shared mode resumes
//! with one info line. No event waits on Redis, so none is lost.
//!
//! # Names: the window of optimism
//!
//! A name the local copy has not seen is accepted by `track()` (if the local
//! copy plus names still waiting for Redis are under the cap) and sent to
//! Redis by the thread. Until Redis has answered, events with that name are
//! held by the sender (at most [`NAME_VERDICT_WAIT`]); a name Redis refuses
//! makes those events fail with `Rejected { code: "event_name_limit_reached" }`
//! (counted in `failed_rejected`, reported to the error callback: never
//! silent, never sent), and every later `track()` with it fails at once with
//! the single-process error, `EventNameLimitReached`. While Redis is down a new
//! name is only held against the local cap and is sent after the wait; it is
//! added to the shared set when Redis is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::ratelimit::{RateLimitInfo, RateLimiter, Reservation, WindowLimiter, MIN_WAIT};
use crate::stats::Counters;
use crate::transport::{Outcome, Response, Transport};
use crate::Error;

/// The token bucket. KEYS: bucket hash, stop key, learned-limit key.
/// ARGV: wanted, configured allowance per window, lease lifetime (ms),
/// permits given back, how far ahead (ms) a block may be reserved.
/// Returns {granted, wait_ms, server_now_ms}: with `granted > 0` the block may
/// be used from `wait_ms` on (a reservation: the bucket goes into debt, so a
/// client gets a whole block in one round trip however many compete); with
/// `granted == 0`, ask again in `wait_ms`.
pub const LEASE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local allowance = tonumber(ARGV[2])
local learned = tonumber(redis.call('GET', KEYS[3]) or '0')
if learned > 0 and learned < allowance then allowance = learned end
local burst = math.max(1, math.floor(allowance * 0.03))
local rate = math.max(allowance - burst, 1) / (10000 + tonumber(ARGV[3]))
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
tokens = math.min(burst, tokens + tonumber(ARGV[4]))
local wanted = tonumber(ARGV[1])
local ahead = tonumber(ARGV[5])
local granted = 0
local wait = 0
local stop = tonumber(redis.call('GET', KEYS[2]) or '0')
if stop > now then
  wait = stop - now
elseif wanted > 0 then
  local k = math.min(wanted, burst, math.floor(tokens + rate * ahead))
  if k >= 1 then
    granted = k
    tokens = tokens - k
    if tokens < 0 then wait = math.ceil(-tokens / rate) end
  else
    wait = math.max(1, math.ceil((1 - tokens) / rate - ahead))
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], 60000)
return {granted, wait, now}
"#;

/// What a tracker learned from Intercom. KEYS: stop key, learned-limit key.
/// ARGV: stop for this many ms (0: none), allowance per window seen in
/// `X-RateLimit-Limit` (0: none).
pub const OBSERVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stop_ms = tonumber(ARGV[1])
if stop_ms > 0 then
  local until_ms = now + stop_ms
  local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
  if until_ms > cur then redis.call('SET', KEYS[1], tostring(until_ms), 'PX', stop_ms + 1000) end
end
local limit = tonumber(ARGV[2])
if limit > 0 then redis.call('SET', KEYS[2], tostring(limit), 'EX', 60) end
return 1
"#;

/// The shared name set. KEYS: the set. ARGV: cap, then names.
/// Returns {verdicts (1 added or present, 0 refused), members}.
pub const NAMES_LUA: &str = r#"
local cap = tonumber(ARGV[1])
local verdicts = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    verdicts[#verdicts + 1] = 1
  elseif redis.call('SCARD', KEYS[1]) < cap then
    redis.call('SADD', KEYS[1], ARGV[i])
    verdicts[#verdicts + 1] = 1
  else
    verdicts[#verdicts + 1] = 0
  end
end
return {verdicts, redis.call('SMEMBERS', KEYS[1])}
"#;

/// Timeout of every Redis command and connection attempt.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long leased permits may be used after they were granted; unused ones
/// are given back before then, or forgotten.
pub const LEASE_LIFETIME: Duration = Duration::from_millis(250);
/// Largest block of permits asked for in one round trip.
pub const MAX_BLOCK: u32 = 64;
/// How far ahead of its use a block may be reserved.
pub const RESERVE_AHEAD: Duration = Duration::from_millis(1000);
/// How often an idle thread re-reads the shared name set.
const NAMES_REFRESH: Duration = Duration::from_millis(500);
/// How often a learned `X-RateLimit-Limit` is pushed again while it holds.
const LIMIT_REFRESH: Duration = Duration::from_secs(30);
/// Longest a sender holds an event whose new name Redis has not answered for.
pub const NAME_VERDICT_WAIT: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The `shared_budget` options, checked.
#[derive(Clone, PartialEq)]
pub struct SharedBudget {
    /// `redis://` or `rediss://` URL, possibly with user and password.
    pub url: Secret,
    /// Prefix of every key.
    pub prefix: String,
    /// Share of the limit paced to locally while Redis is unreachable.
    pub fallback_share: f64,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("url", &redact_url(self.url.expose()))
            .field("prefix", &self.prefix)
            .field("fallback_share", &self.fallback_share)
            .finish()
    }
}

/// The URL with any user and password replaced, for logs and `get`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://<redacted>@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Check a `shared_budget` URL; the error never shows the URL (it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must be a redis:// or rediss:// URL".into());
    }
    redis::Client::open(url).map(|_| ()).map_err(|e| format!("not a usable Redis URL ({:?})", e.kind()))
}

/// The key prefix an app's keys start with: its hash, never its token.
fn app_key(prefix: &str, token: &Secret) -> String {
    let digest = Sha256::digest(token.expose().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{{{hex}}}")
}

/// The Redis keys of one app.
#[derive(Clone)]
struct Keys {
    bucket: String,
    stop: String,
    limit: String,
    names: String,
}

impl Keys {
    fn new(prefix: &str, token: &Secret) -> Keys {
        let base = app_key(prefix, token);
        Keys {
            bucket: format!("{base}:bucket"),
            stop: format!("{base}:stop"),
            limit: format!("{base}:limit"),
            names: format!("{base}:names"),
        }
    }
}

/// What the dispatcher side and the thread share.
struct State {
    /// Leased permits and when they stop being usable.
    pool: u32,
    pool_expires: Instant,
    /// A block reserved for later: (permits, usable from).
    next: Option<(u32, Instant)>,
    /// The most the scheduler asked for lately (0: it has nothing to send).
    demand: u32,
    /// The most the scheduler asked for at once since the last lease.
    peak: u32,
    /// When the scheduler last asked: a demand older than a lease lifetime is
    /// forgotten, so an idle tracker leases nothing.
    demand_at: Instant,
    /// Redis said no permit before this.
    wait_until: Option<Instant>,
    /// Set while Redis is unreachable: since when.
    fallback_since: Option<Instant>,
    /// Why the fallback started, until the scheduler has reported it.
    unreported_fallback: Option<String>,
    /// What `observe` learned, for the thread to push.
    stop_ms: u64,
    limit_seen: u64,
    /// Permits given back, for the thread to return.
    returned: u32,
    stopping: bool,
}

impl State {
    /// Promote a reserved block that is due, give back permits whose lease has lapsed.
    fn settle(&mut self, now: Instant) {
        if self.pool > 0 && now >= self.pool_expires {
            self.returned += self.pool;
            self.pool = 0;
        }
        if let Some((n, from)) = self.next {
            if now >= from {
                self.next = None;
                if now < from + LEASE_LIFETIME {
                    self.pool += n;
                    self.pool_expires = from + LEASE_LIFETIME;
                } else {
                    self.returned += n;
                }
            }
        }
    }

    /// The block size worth asking for: twice the most the scheduler asked
    /// for at once since the last lease.
    fn want(&self) -> u32 {
        self.peak.max(self.demand).saturating_mul(2).clamp(1, MAX_BLOCK)
    }
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    counters: Arc<Counters>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The distinct-name cap shared through Redis, checked without waiting.
pub(crate) struct SharedNames {
    view: RwLock<NamesView>,
    /// Signalled when a pending name gets its verdict.
    decided: Condvar,
    decided_lock: Mutex<()>,
    fleet: Arc<Inner>,
    cap: usize,
    any_pending: AtomicBool,
}

#[derive(Default)]
struct NamesView {
    /// In the shared set, as last read.
    known: HashSet<String>,
    /// Accepted here, not answered by Redis yet, in the order `track()` took
    /// them (so Redis refuses the names past the cap, not any).
    pending: Vec<String>,
    /// Refused by Redis.
    refused: HashSet<String>,
}

impl SharedNames {
    /// The caller-thread check: never touches Redis.
    pub fn check(&self, name: &str) -> Result<(), Error> {
        {
            let v = self.view.read().unwrap_or_else(|p| p.into_inner());
            if v.known.contains(name) || v.pending.iter().any(|p| p == name) {
                return Ok(());
            }
        }
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        if v.known.contains(name) || v.pending.iter().any(|p| p == name) {
            return Ok(());
        }
        if v.refused.contains(name) || v.known.len() + v.pending.len() >= self.cap {
            return Err(Error::EventNameLimitReached { name: name.into(), limit: self.cap });
        }
        v.pending.push(name.to_string());
        self.any_pending.store(true, Ordering::SeqCst);
        drop(v);
        // Through the state lock, so a thread between its look and its wait
        // cannot miss the wake-up.
        drop(self.fleet.lock());
        self.fleet.wake.notify_all();
        Ok(())
    }

    /// On a sender thread: whether an event with this name may be sent,
    /// waiting (bounded) for Redis's verdict on a new name.
    fn verdict(&self, name: &str) -> bool {
        let deadline = Instant::now() + NAME_VERDICT_WAIT;
        let mut guard = self.decided_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            {
                let v = self.view.read().unwrap_or_else(|p| p.into_inner());
                if v.refused.contains(name) {
                    return false;
                }
                if !v.pending.iter().any(|p| p == name) {
                    return true;
                }
            }
            if self.fleet.lock().fallback_since.is_some() {
                // Redis is down: the local cap is all there is.
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = self.decided.wait_timeout(guard, left.min(Duration::from_millis(50))).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn pending(&self) -> Vec<String> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).pending.to_vec()
    }

    fn apply(&self, asked: &[String], verdicts: &[i64], members: Vec<String>) {
        {
            let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
            for (name, ok) in asked.iter().zip(verdicts) {
                v.pending.retain(|p| p != name);
                if *ok == 0 {
                    v.refused.insert(name.clone());
                }
            }
            v.known = members.into_iter().collect();
            self.any_pending.store(!v.pending.is_empty(), Ordering::SeqCst);
        }
        let _guard = self.decided_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.decided.notify_all();
    }
}

/// Holds events whose name Redis has not (yet) accepted; sends the rest.
pub(crate) struct NameCheckedTransport {
    pub inner: Arc<dyn Transport>,
    pub names: Arc<SharedNames>,
}

impl Transport for NameCheckedTransport {
    fn send(&self, body: &[u8]) -> Response {
        let refused_any = !self.names.view.read().unwrap_or_else(|p| p.into_inner()).refused.is_empty();
        if self.names.any_pending.load(Ordering::SeqCst) || refused_any {
            let name = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["event_name"].as_str().map(str::to_string))
                .unwrap_or_default();
            if !self.names.verdict(&name) {
                let e = Error::EventNameLimitReached { name, limit: self.names.cap };
                return Response {
                    outcome: Outcome::Reject { status: 422, code: e.code().into(), message: e.to_string() },
                    rate: None,
                };
            }
        }
        self.inner.send(body)
    }

    fn create_contact(&self, body: &[u8]) -> Response {
        self.inner.create_contact(body)
    }
}

/// The dispatcher's side of fleet mode: a [`RateLimiter`] that never blocks.
pub struct FleetLimiter {
    inner: Arc<Inner>,
    fallback: WindowLimiter,
    /// Whether the last answer was a wait for the shared budget (counted once per wait).
    waiting: bool,
}

impl RateLimiter for FleetLimiter {
    fn notice(&mut self) -> Option<String> {
        self.inner.lock().unreported_fallback.take()
    }

    fn reserve(&mut self, wanted: u32, now: Instant) -> Reservation {
        let mut s = self.inner.lock();
        if s.fallback_since.is_some() {
            drop(s);
            return self.fallback.reserve(wanted, now);
        }
        s.settle(now);
        s.demand = wanted.max(1);
        s.peak = s.peak.max(s.demand);
        s.demand_at = now;
        if s.pool > 0 {
            let n = s.pool.min(wanted.max(1));
            s.pool -= n;
            self.waiting = false;
            let low = s.pool < s.want() / 2 + 1 && s.next.is_none();
            drop(s);
            if low {
                self.inner.wake.notify_all();
            }
            return Reservation::Granted(n);
        }
        if !self.waiting {
            self.waiting = true;
            Counters::add(&self.inner.counters.fleet_permit_waits, 1);
        }
        let until = match (s.next, s.wait_until) {
            (Some((_, from)), _) => from,
            (None, Some(t)) if t > now => t,
            _ => now + Duration::from_millis(2),
        };
        drop(s);
        self.inner.wake.notify_all();
        Reservation::WaitUntil(until.max(now + MIN_WAIT))
    }

    fn observe(&mut self, info: &RateLimitInfo, now: Instant) {
        self.fallback.observe(info, now);
        let exhausted = info.status == 429 || info.remaining == Some(0);
        let mut s = self.inner.lock();
        if let Some(limit) = info.limit.filter(|l| *l > 0) {
            s.limit_seen = limit;
        }
        if exhausted {
            let until_reset = info.reset.map(|r| r as f64 - crate::unix_now().as_secs_f64()).filter(|w| *w > 0.0);
            let wait = until_reset.unwrap_or(if info.status == 429 { 1.0 } else { 0.0 }).min(60.0);
            if wait > 0.0 {
                let ms = (wait * 1000.0) as u64 + 50;
                s.stop_ms = s.stop_ms.max(ms);
                // Stop here at once; the others learn it on their next lease.
                s.returned += s.pool + s.next.map_or(0, |n| n.0);
                s.pool = 0;
                s.next = None;
                s.wait_until = Some(crate::later(now, Duration::from_millis(ms)));
                drop(s);
                self.inner.wake.notify_all();
            }
        }
    }

    fn release(&mut self, unused: u32) {
        let mut s = self.inner.lock();
        if s.fallback_since.is_none() {
            s.returned += unused;
        }
    }
}

impl Drop for FleetLimiter {
    fn drop(&mut self) {
        let mut s = self.inner.lock();
        s.stopping = true;
        s.returned += s.pool + s.next.map_or(0, |n| n.0);
        s.pool = 0;
        s.next = None;
        drop(s);
        self.inner.wake.notify_all();
    }
}

/// What a pipeline in fleet mode gets: the limiter and the shared names.
pub(crate) struct Fleet {
    pub limiter: FleetLimiter,
    pub names: Arc<SharedNames>,
}

/// Start fleet mode for one pipeline: the thread, the limiter, the names.
pub(crate) fn start(
    budget: &SharedBudget,
    token: &Secret,
    per_minute: u32,
    max_names: usize,
    counters: Arc<Counters>,
) -> Result<Fleet, Error> {
    let client = redis::Client::open(budget.url.expose()).map_err(|e| Error::InvalidConfig {
        option: "shared_budget".into(),
        reason: format!("not a usable Redis URL ({:?})", e.kind()),
    })?;
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            pool: 0,
            pool_expires: Instant::now(),
            next: None,
            demand: 0,
            peak: 0,
            demand_at: Instant::now(),
            wait_until: None,
            fallback_since: None,
            unreported_fallback: None,
            stop_ms: 0,
            limit_seen: 0,
            returned: 0,
            stopping: false,
        }),
        wake: Condvar::new(),
        counters,
    });
    let names = Arc::new(SharedNames {
        view: RwLock::new(NamesView::default()),
        decided: Condvar::new(),
        decided_lock: Mutex::new(()),
        fleet: inner.clone(),
        cap: max_names,
        any_pending: AtomicBool::new(false),
    });
    let share = budget.fallback_share.clamp(0.0, 1.0);
    let fallback_per_minute = ((per_minute as f64 * share) as u32).max(6);
    let worker = Worker {
        client,
        conn: None,
        keys: Keys::new(&budget.prefix, token),
        allowance: (per_minute / 6).max(1),
        inner: inner.clone(),
        names: names.clone(),
        lease: redis::Script::new(LEASE_LUA),
        observe: redis::Script::new(OBSERVE_LUA),
        names_script: redis::Script::new(NAMES_LUA),
        backoff: BACKOFF_FIRST,
        last_names_read: None,
        limit_pushed: 0,
        limit_pushed_at: None,
    };
    thread::Builder::new()
        .name("trackcore-fleet".into())
        .spawn(move || worker.run())
        .map_err(|e| Error::InvalidConfig { option: "threads".into(), reason: e.to_string() })?;
    Ok(Fleet { limiter: FleetLimiter { inner, fallback: WindowLimiter::new(fallback_per_minute), waiting: false }, names })
}

struct Worker {
    client: redis::Client,
    conn: Option<redis::Connection>,
    keys: Keys,
    allowance: u32,
    inner: Arc<Inner>,
    names: Arc<SharedNames>,
    lease: redis::Script,
    observe: redis::Script,
    names_script: redis::Script,
    backoff: Duration,
    last_names_read: Option<Instant>,
    limit_pushed: u64,
    /// When the learned limit was last pushed: it is pushed again every
    /// [`LIMIT_REFRESH`] while Intercom keeps saying it (the key lives a minute).
    limit_pushed_at: Option<Instant>,
}

impl Worker {
    fn run(mut self) {
        loop {
            // Wait for something to do.
            let stopping = {
                let mut s = self.inner.lock();
                loop {
                    let now = Instant::now();
                    if s.stopping {
                        break true;
                    }
                    let refresh_due = self.last_names_read.is_none_or(|t| now >= t + NAMES_REFRESH);
                    let waiting = s.wait_until.is_some_and(|t| t > now);
                    s.settle(now);
                    let want_lease = s.demand > 0
                        && now < s.demand_at + LEASE_LIFETIME
                        && s.next.is_none()
                        && s.pool < s.want() / 2 + 1
                        && !waiting;
                    let news = s.stop_ms > 0 || (s.limit_seen > 0 && self.limit_due(s.limit_seen)) || s.returned > 0;
                    if want_lease || news || refresh_due || self.names.any_pending.load(Ordering::SeqCst) {
                        break false;
                    }
                    let mut timeout = NAMES_REFRESH;
                    if let Some(t) = s.wait_until.filter(|_| s.demand > 0) {
                        timeout = timeout.min(t.saturating_duration_since(now));
                    }
                    s = self.inner.wake.wait_timeout(s, timeout.max(MIN_WAIT)).unwrap_or_else(|p| p.into_inner()).0;
                }
            };
            let result = self.round(stopping);
            match result {
                Ok(()) => {
                    self.backoff = BACKOFF_FIRST;
                    let mut s = self.inner.lock();
                    if let Some(since) = s.fallback_since.take() {
                        let ms = since.elapsed().as_millis() as u64;
                        crate::stats::Counters::add(&self.inner.counters.fleet_fallback_ms, ms);
                        drop(s);
                        log::info!(target: "trackcore", "fleet mode: Redis answers again; shared pacing resumed after {ms} ms of local pacing");
                    }
                }
                Err(e) => {
                    self.conn = None;
                    Counters::add(&self.inner.counters.redis_errors, 1);
                    let mut s = self.inner.lock();
                    s.pool = 0;
                    s.next = None;
                    s.returned = 0;
                    s.wait_until = None;
                    if s.fallback_since.is_none() {
                        s.fallback_since = Some(Instant::now());
                        s.unreported_fallback = Some(describe(&e));
                        drop(s);
                        log::warn!(target: "trackcore", "fleet mode: Redis is unreachable ({}); pacing locally at the configured share of the limit until it answers", describe(&e));
                    } else {
                        drop(s);
                    }
                    if stopping {
                        return;
                    }
                    // Back off, waking early only to stop.
                    let s = self.inner.lock();
                    let _ = self.inner.wake.wait_timeout_while(s, self.backoff, |s| !s.stopping);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            if stopping {
                return;
            }
        }
    }

    fn limit_due(&self, seen: u64) -> bool {
        seen != self.limit_pushed || self.limit_pushed_at.is_none_or(|t| t.elapsed() >= LIMIT_REFRESH)
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(REDIS_TIMEOUT)?;
            c.set_read_timeout(Some(REDIS_TIMEOUT))?;
            c.set_write_timeout(Some(REDIS_TIMEOUT))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// One round of Redis work: push what was learned, return and lease
    /// permits, settle pending names.
    fn round(&mut self, stopping: bool) -> redis::RedisResult<()> {
        let (stop_ms, limit, returned, demand) = {
            let mut s = self.inner.lock();
            let now = Instant::now();
            s.settle(now);
            let limit = if s.limit_seen > 0 && self.limit_due(s.limit_seen) { s.limit_seen } else { 0 };
            let idle = now >= s.demand_at + LEASE_LIFETIME;
            let busy = s.next.is_some() || s.pool > s.want() / 2 || s.wait_until.is_some_and(|t| t > now);
            let want = if stopping || idle || busy { 0 } else { s.want() };
            if want > 0 {
                s.peak = 0;
            }
            (std::mem::take(&mut s.stop_ms), limit, std::mem::take(&mut s.returned), want)
        };
        let keys = self.keys.clone();
        let (observe, lease, names_script) = (self.observe.clone(), self.lease.clone(), self.names_script.clone());
        let allowance = self.allowance;
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                // Keep what was not pushed for the next try.
                let mut s = self.inner.lock();
                s.stop_ms = s.stop_ms.max(stop_ms);
                return Err(e);
            }
        };
        if stop_ms > 0 || limit > 0 {
            let r: redis::RedisResult<i64> = observe.key(&keys.stop).key(&keys.limit).arg(stop_ms).arg(limit).invoke(conn);
            if let Err(e) = r {
                let mut s = self.inner.lock();
                s.stop_ms = s.stop_ms.max(stop_ms);
                return Err(e);
            }
            if limit > 0 {
                self.limit_pushed = limit;
                self.limit_pushed_at = Some(Instant::now());
            }
        }
        let conn = self.conn.as_mut().expect("connected");
        if demand > 0 || returned > 0 {
            let (granted, wait_ms, _server_ms): (u32, u64, u64) = lease
                .key(&keys.bucket)
                .key(&keys.stop)
                .key(&keys.limit)
                .arg(demand)
                .arg(allowance)
                .arg(LEASE_LIFETIME.as_millis() as u64)
                .arg(returned)
                .arg(RESERVE_AHEAD.as_millis() as u64)
                .invoke(conn)?;
            let now = Instant::now();
            let mut s = self.inner.lock();
            if granted > 0 {
                s.wait_until = None;
                if wait_ms == 0 {
                    s.pool += granted;
                    s.pool_expires = now + LEASE_LIFETIME;
                } else {
                    s.next = Some((granted, now + Duration::from_millis(wait_ms)));
                }
            } else if wait_ms > 0 {
                s.wait_until = Some(now + Duration::from_millis(wait_ms));
            }
        }
        let pending = self.names.pending();
        let refresh_due = self.last_names_read.is_none_or(|t| t.elapsed() >= NAMES_REFRESH);
        if !pending.is_empty() || refresh_due {
            let conn = self.conn.as_mut().expect("connected");
            let mut inv = names_script.prepare_invoke();
            inv.key(&keys.names).arg(self.names.cap);
            for n in &pending {
                inv.arg(n);
            }
            let (verdicts, members): (Vec<i64>, Vec<String>) = inv.invoke(conn)?;
            self.names.apply(&pending, &verdicts, members);
            self.last_names_read = Some(Instant::now());
        }
        Ok(())
    }
}

/// A Redis error for the log, without anything from the URL.
fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".into()
    } else {
        format!("{:?}", e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_token_and_the_url_is_redacted() {
        let token = Secret::new("tok_supersecret_123");
        let k = Keys::new("app:", &token);
        assert!(k.bucket.starts_with("app:{") && k.bucket.ends_with("}:bucket"), "{}", k.bucket);
        assert!(!k.bucket.contains("supersecret"));
        assert_eq!(Keys::new("app:", &token).names, k.names, "the same token gives the same keys");
        assert_ne!(Keys::new("app:", &Secret::new("other")).names, k.names);
        assert_eq!(redact_url("redis://user:pw@h:1/0"), "redis://<redacted>@h:1/0");
        assert_eq!(redact_url("rediss://h:1"), "rediss://h:1");
        assert!(check_url("http://h").is_err());
        assert!(check_url("redis://u:p@127.0.0.1:6379/2").is_ok());
        let e = check_url("redis://u:pass@[bad").unwrap_err();
        assert!(!e.contains("pass"), "{e}");
    }
}
