//! Counters of everything that happened to tracked events.
//!
//! Every tracked (or recovered) event ends in exactly one of: delivered,
//! failed, dropped (by reason), de-duplicated or persisted (left in the spool
//! at shutdown); until then it is queued (in memory), spooled (on disk only)
//! or in flight. So `tracked + recovered == delivered + failed + dropped +
//! deduplicated + persisted + queued + spooled + in_flight` at every [`crate::Tracker::stats`] call
//! that is not racing the pipeline (after a `flush()`, for instance).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Every counter is incremented (or, for the two gauges, moved) where the
/// thing it counts happens; nothing is derived from the others, so the
/// invariant above is a real check on the pipeline's accounting.
#[derive(Default)]
pub(crate) struct Counters {
    pub tracked: AtomicU64,
    pub recovered: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed_rejected: AtomicU64,
    pub failed_retries_exhausted: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_oldest: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    /// Refused by a full spool, or unreadable from it (damaged on disk).
    pub dropped_spool: AtomicU64,
    pub deduplicated: AtomicU64,
    /// Left unsettled in the spool at shutdown, for the next tracker on it.
    pub persisted: AtomicU64,
    /// Gauge: accepted and waiting to be sent (hand-off channel, store, retry wait).
    pub queued: AtomicI64,
    /// Gauge: accepted and waiting on disk only (beyond the spool's memory window).
    pub spooled: AtomicI64,
    /// Bytes in the spool's files (a level, not a count).
    pub spool_bytes: AtomicU64,
    /// Corrupt or torn stretches of the spool skipped.
    pub spool_corrupt: AtomicU64,
    /// Gauge: requests under way.
    pub in_flight: AtomicI64,
    /// Gauge: queued events held because Intercom does not know their contact (part of `queued`).
    pub waiting_for_contact: AtomicI64,
    /// Gauge: `track()` calls waiting for room under `overflow="block"`.
    pub blocked: AtomicI64,
    pub rate_limited: AtomicU64,
    pub rate_limit_wait_us: AtomicU64,
    pub auth_paused: AtomicU64,
    pub reports_dropped: AtomicU64,
    pub fleet_permit_waits: AtomicU64,
    pub redis_errors: AtomicU64,
    pub fleet_fallback_ms: AtomicU64,
    /// `POST /contacts` answered 2xx (not 409).
    pub contacts_created: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Move a gauge by `n` (negative to take away).
    pub fn gauge(c: &AtomicI64, n: i64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Relaxed);
        // A gauge read while another thread moves an event between two of them
        // may be a moment ahead of the other; it is never shown negative.
        let gauge = |c: &AtomicI64| c.load(Relaxed).max(0) as u64;
        let failed_rejected = g(&self.failed_rejected);
        let failed_retries_exhausted = g(&self.failed_retries_exhausted);
        let dropped_queue_full = g(&self.dropped_queue_full);
        let dropped_oldest = g(&self.dropped_oldest);
        let dropped_shutdown = g(&self.dropped_shutdown);
        let dropped_spool = g(&self.dropped_spool);
        Stats {
            tracked: g(&self.tracked),
            recovered: g(&self.recovered),
            delivered: g(&self.delivered),
            retried: g(&self.retried),
            failed: failed_rejected + failed_retries_exhausted,
            failed_rejected,
            failed_retries_exhausted,
            dropped: dropped_queue_full + dropped_oldest + dropped_shutdown + dropped_spool,
            dropped_queue_full,
            dropped_oldest,
            dropped_shutdown,
            dropped_spool,
            deduplicated: g(&self.deduplicated),
            persisted: g(&self.persisted),
            queued: gauge(&self.queued),
            spooled: gauge(&self.spooled),
            spool_bytes: g(&self.spool_bytes),
            spool_corrupt: g(&self.spool_corrupt),
            in_flight: gauge(&self.in_flight),
            waiting_for_contact: gauge(&self.waiting_for_contact),
            blocked: gauge(&self.blocked),
            rate_limited: g(&self.rate_limited),
            rate_limit_wait_ms: g(&self.rate_limit_wait_us) / 1000,
            auth_paused: g(&self.auth_paused) != 0,
            reports_dropped: g(&self.reports_dropped),
            fleet_permit_waits: g(&self.fleet_permit_waits),
            redis_errors: g(&self.redis_errors),
            fleet_fallback_ms: g(&self.fleet_fallback_ms),
            contacts_created: g(&self.contacts_created),
        }
    }
}

/// A snapshot of a tracker's counters. Every binding exposes these names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events accepted by `track()` (valid input).
    pub tracked: u64,
    /// Events an earlier process left unsettled in the event store and this
    /// one took over (always 0 with the in-memory store).
    pub recovered: u64,
    /// Events Intercom answered 2xx for.
    pub delivered: u64,
    /// Retry attempts made (one event may retry several times).
    pub retried: u64,
    /// Events that failed permanently (`failed_rejected + failed_retries_exhausted`).
    pub failed: u64,
    /// Events Intercom refused with a permanent 4xx.
    pub failed_rejected: u64,
    /// Events that ran out of retries or of retry deadline.
    pub failed_retries_exhausted: u64,
    /// Events dropped before delivery (sum of the four reasons below).
    pub dropped: u64,
    /// Dropped because the queue was full (`drop_newest`, or `block` timing out).
    pub dropped_queue_full: u64,
    /// Dropped from the head of a full queue (`drop_oldest`).
    pub dropped_oldest: u64,
    /// Still undelivered when a shutdown's timeout passed (without a spool).
    pub dropped_shutdown: u64,
    /// Refused because the spool reached `spool_max_bytes`, or unreadable
    /// from it because its bytes were damaged on disk.
    pub dropped_spool: u64,
    /// Copies of an already-sent (identity, name, created_at), not sent again.
    pub deduplicated: u64,
    /// Left in the spool at shutdown: not lost, the next tracker on the same
    /// `spool_dir` delivers them (and counts them as `recovered`).
    pub persisted: u64,
    /// Waiting to be sent in memory (in the queue, the dispatcher, between
    /// retries, or held for an unknown contact: see `waiting_for_contact`).
    pub queued: u64,
    /// Waiting to be sent on disk only: beyond the spool's memory window.
    pub spooled: u64,
    /// Bytes in the spool's files now.
    pub spool_bytes: u64,
    /// Corrupt or torn stretches found in the spool (a crash or power loss
    /// while writing) and skipped.
    pub spool_corrupt: u64,
    /// HTTP requests under way.
    pub in_flight: u64,
    /// Of `queued`: events held because Intercom does not know their contact
    /// yet (`unknown_contact="wait"` or `"create"`).
    pub waiting_for_contact: u64,
    /// `track()` calls waiting for room right now (`overflow="block"`).
    pub blocked: u64,
    /// 429 responses received.
    pub rate_limited: u64,
    /// Time events were ready but held back by pacing, in milliseconds.
    pub rate_limit_wait_ms: u64,
    /// Whether delivery is paused by a refused token (401/403).
    pub auth_paused: bool,
    /// Error reports not handed to the callback because its queue was full (still counted above).
    pub reports_dropped: u64,
    /// Fleet mode: times the dispatcher found no leased permit and waited
    /// for the shared budget (a lease round trip or the budget itself).
    pub fleet_permit_waits: u64,
    /// Fleet mode: Redis commands or connections that failed.
    pub redis_errors: u64,
    /// Fleet mode: time paced locally because Redis was unreachable, in
    /// milliseconds (counted when shared mode resumes).
    pub fleet_fallback_ms: u64,
    /// `unknown_contact="create"`: contacts this tracker created in the
    /// workspace (`POST /contacts` answered 2xx; a 409, made elsewhere
    /// meanwhile, is not counted).
    pub contacts_created: u64,
}

impl Stats {
    /// The counters as (name, value) pairs, in a stable order, for bindings
    /// that turn them into a dict or object.
    pub fn fields(&self) -> [(&'static str, u64); 29] {
        [
            ("tracked", self.tracked),
            ("recovered", self.recovered),
            ("delivered", self.delivered),
            ("retried", self.retried),
            ("failed", self.failed),
            ("failed_rejected", self.failed_rejected),
            ("failed_retries_exhausted", self.failed_retries_exhausted),
            ("dropped", self.dropped),
            ("dropped_queue_full", self.dropped_queue_full),
            ("dropped_oldest", self.dropped_oldest),
            ("dropped_shutdown", self.dropped_shutdown),
            ("dropped_spool", self.dropped_spool),
            ("deduplicated", self.deduplicated),
            ("persisted", self.persisted),
            ("queued", self.queued),
            ("spooled", self.spooled),
            ("spool_bytes", self.spool_bytes),
            ("spool_corrupt", self.spool_corrupt),
            ("in_flight", self.in_flight),
            ("waiting_for_contact", self.waiting_for_contact),
            ("blocked", self.blocked),
            ("rate_limited", self.rate_limited),
            ("rate_limit_wait_ms", self.rate_limit_wait_ms),
            ("auth_paused", self.auth_paused as u64),
            ("reports_dropped", self.reports_dropped),
            ("fleet_permit_waits", self.fleet_permit_waits),
            ("redis_errors", self.redis_errors),
            ("fleet_fallback_ms", self.fleet_fallback_ms),
            ("contacts_created", self.contacts_created),
        ]
    }
}

impl Stats {
    /// Whether every event is accounted for: `tracked + recovered` equals the
    /// sum of the outcomes plus what is still queued or in flight.
    pub fn balanced(&self) -> bool {
        self.tracked + self.recovered
            == self.delivered
                + self.failed
                + self.dropped
                + self.deduplicated
                + self.persisted
                + self.queued
                + self.spooled
                + self.in_flight
    }
}
