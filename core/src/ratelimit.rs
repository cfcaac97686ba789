//! Pacing to Intercom's rate limit.
//!
//! Intercom enforces its per-minute limit in 10-second windows and reports
//! the window's allowance, what is left of it and when it resets in
//! `X-RateLimit-*` headers. [`WindowLimiter`] paces requests so that no
//! 10-second span ever holds more than the allowance, and obeys those headers
//! when they say less is left. [`RateLimiter`] is the seam for fleet mode,
//! where one budget is shared by many processes through Redis.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one response said about the rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimitInfo {
    /// HTTP status of the response.
    pub status: u16,
    /// `X-RateLimit-Limit`: the allowance of one 10-second window.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`: Unix seconds when the window resets.
    pub reset: Option<i64>,
}

/// Decides when the next request may go out. Implementations must be cheap
/// and thread-safe: the dispatcher asks before every request and every sender
/// reports every response.
pub trait RateLimiter: Send + Sync {
    /// Take permission for one request now, or say how long to wait before asking again.
    fn try_acquire(&self, now: Instant) -> Result<(), Duration>;
    /// Learn from a response's rate-limit headers (and from 429s).
    fn observe(&self, info: &RateLimitInfo);
}

/// Length of one of Intercom's rate-limit windows.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Share of the allowance used as a steady rate; the rest is the burst.
const STEADY_SHARE: f64 = 0.97;

/// Per-process pacing: a token bucket whose rate and burst together never
/// exceed one window's allowance in any 10-second span, plus a hard stop until
/// the window resets when Intercom says nothing is left.
pub struct WindowLimiter {
    state: Mutex<State>,
}

struct State {
    allowance: f64,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl State {
    fn set_allowance(&mut self, allowance: f64) {
        self.allowance = allowance.max(1.0);
        self.rate = self.allowance * STEADY_SHARE / WINDOW.as_secs_f64();
        self.burst = (self.allowance * (1.0 - STEADY_SHARE)).max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }
}

impl WindowLimiter {
    /// Pace to `per_minute` requests a minute (`per_minute / 6` per window, rounded down).
    pub fn new(per_minute: u32) -> Self {
        let mut s = State {
            allowance: 1.0,
            rate: 0.0,
            burst: 1.0,
            tokens: f64::MAX,
            last: Instant::now(),
            blocked_until: None,
        };
        s.set_allowance((per_minute / 6) as f64);
        WindowLimiter { state: Mutex::new(s) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RateLimiter for WindowLimiter {
    fn try_acquire(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.lock();
        if let Some(until) = s.blocked_until {
            if now < until {
                return Err(until - now);
            }
            s.blocked_until = None;
        }
        // A caller with a stale `now` must not refill the same interval twice.
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = s.last.max(now);
        s.tokens = (s.tokens + elapsed * s.rate).min(s.burst);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - s.tokens) / s.rate))
        }
    }

    fn observe(&self, info: &RateLimitInfo) {
        let mut s = self.lock();
        if let Some(limit) = info.limit {
            if limit > 0 && (limit as f64) < s.allowance {
                s.set_allowance(limit as f64);
            }
        }
        let until_reset = info.reset.map(|r| r as f64 - crate::unix_now().as_secs_f64());
        let exhausted = info.status == 429 || info.remaining == Some(0);
        if exhausted {
            // Wait for the window to reset (a whole window when Intercom gives no reset).
            let wait = until_reset.filter(|w| *w > 0.0).unwrap_or(if info.status == 429 { 1.0 } else { 0.0 });
            if wait > 0.0 {
                let until = crate::later(Instant::now(), Duration::from_secs_f64(wait.min(WINDOW.as_secs_f64() * 6.0) + 0.05));
                s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
                s.tokens = 0.0;
            }
        } else if let (Some(rem), Some(w)) = (info.remaining, until_reset) {
            // Same window still running: never believe we have more than Intercom says.
            if w > 0.0 && (rem as f64) < s.tokens {
                s.tokens = rem as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_one_window_allowance_in_any_ten_seconds() {
        let l = WindowLimiter::new(600); // 100 per window
        let start = Instant::now();
        let mut sent = Vec::new();
        let mut t = start;
        while t < start + Duration::from_secs(60) {
            match l.try_acquire(t) {
                Ok(()) => sent.push(t),
                Err(w) => t += w.max(Duration::from_micros(100)),
            }
        }
        for (i, a) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|b| **b < *a + WINDOW).count();
            assert!(in_window <= 100, "{in_window} requests within 10 s of {:?}", *a - start);
        }
        // And it keeps near the limit: at least 95 % of 6 windows' allowance.
        assert!(sent.len() >= 570, "only {} sent in 60 s", sent.len());
    }

    #[test]
    fn stops_until_reset_on_429() {
        let l = WindowLimiter::new(10_000);
        let reset = crate::unix_now().as_secs() as i64 + 2;
        l.observe(&RateLimitInfo { status: 429, limit: Some(1666), remaining: Some(0), reset: Some(reset) });
        let wait = l.try_acquire(Instant::now()).unwrap_err();
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }

    #[test]
    fn adopts_a_smaller_allowance_from_headers() {
        let l = WindowLimiter::new(10_000);
        l.observe(&RateLimitInfo { status: 202, limit: Some(10), remaining: Some(9), reset: None });
        assert_eq!(l.lock().allowance, 10.0);
    }
}
