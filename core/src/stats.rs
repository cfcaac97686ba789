//! Counters of everything that happened to tracked events.
//!
//! Every tracked event ends in exactly one of: delivered, failed, dropped
//! (by reason) or de-duplicated; until then it is queued or in flight. So
//! `tracked == delivered + failed + dropped + deduplicated + queued + in_flight`
//! at every [`crate::Tracker::stats`] call that is not racing a `track()`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct Counters {
    pub tracked: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed_rejected: AtomicU64,
    pub failed_retries_exhausted: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_oldest: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub deduplicated: AtomicU64,
    pub in_flight: AtomicU64,
    pub rate_limited: AtomicU64,
    pub rate_limit_wait_us: AtomicU64,
    pub auth_paused: AtomicU64,
    pub reports_dropped: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Relaxed);
        // Read the outcomes before `tracked` so queued never goes negative.
        let delivered = g(&self.delivered);
        let failed_rejected = g(&self.failed_rejected);
        let failed_retries_exhausted = g(&self.failed_retries_exhausted);
        let dropped_queue_full = g(&self.dropped_queue_full);
        let dropped_oldest = g(&self.dropped_oldest);
        let dropped_shutdown = g(&self.dropped_shutdown);
        let deduplicated = g(&self.deduplicated);
        let in_flight = g(&self.in_flight);
        let tracked = g(&self.tracked);
        let failed = failed_rejected + failed_retries_exhausted;
        let dropped = dropped_queue_full + dropped_oldest + dropped_shutdown;
        let settled = delivered + failed + dropped + deduplicated;
        Stats {
            tracked,
            delivered,
            retried: g(&self.retried),
            failed,
            failed_rejected,
            failed_retries_exhausted,
            dropped,
            dropped_queue_full,
            dropped_oldest,
            dropped_shutdown,
            deduplicated,
            queued: tracked.saturating_sub(settled + in_flight),
            in_flight,
            rate_limited: g(&self.rate_limited),
            rate_limit_wait_ms: g(&self.rate_limit_wait_us) / 1000,
            auth_paused: g(&self.auth_paused) != 0,
            reports_dropped: g(&self.reports_dropped),
        }
    }
}

/// A snapshot of a tracker's counters. Every binding exposes these names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events accepted by `track()` (valid input).
    pub tracked: u64,
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
    /// Events dropped before delivery (sum of the three reasons below).
    pub dropped: u64,
    /// Dropped because the queue was full (`drop_newest`, or `block` timing out).
    pub dropped_queue_full: u64,
    /// Dropped from the head of a full queue (`drop_oldest`).
    pub dropped_oldest: u64,
    /// Still undelivered when a shutdown's timeout passed.
    pub dropped_shutdown: u64,
    /// Copies of an already-sent (identity, name, created_at), not sent again.
    pub deduplicated: u64,
    /// Waiting to be sent (in the queue, the dispatcher or between retries).
    pub queued: u64,
    /// HTTP requests under way.
    pub in_flight: u64,
    /// 429 responses received.
    pub rate_limited: u64,
    /// Time events were ready but held back by pacing, in milliseconds.
    pub rate_limit_wait_ms: u64,
    /// Whether delivery is paused by a refused token (401/403).
    pub auth_paused: bool,
    /// Error reports not handed to the callback because its queue was full (still counted above).
    pub reports_dropped: u64,
}

impl Stats {
    /// The counters as (name, value) pairs, in a stable order, for bindings
    /// that turn them into a dict or object.
    pub fn fields(&self) -> [(&'static str, u64); 17] {
        [
            ("tracked", self.tracked),
            ("delivered", self.delivered),
            ("retried", self.retried),
            ("failed", self.failed),
            ("failed_rejected", self.failed_rejected),
            ("failed_retries_exhausted", self.failed_retries_exhausted),
            ("dropped", self.dropped),
            ("dropped_queue_full", self.dropped_queue_full),
            ("dropped_oldest", self.dropped_oldest),
            ("dropped_shutdown", self.dropped_shutdown),
            ("deduplicated", self.deduplicated),
            ("queued", self.queued),
            ("in_flight", self.in_flight),
            ("rate_limited", self.rate_limited),
            ("rate_limit_wait_ms", self.rate_limit_wait_ms),
            ("auth_paused", self.auth_paused as u64),
            ("reports_dropped", self.reports_dropped),
        ]
    }
}
