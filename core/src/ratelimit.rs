//! Pacing to Intercom's rate limit: where permits to send come from.
//!
//! Intercom enforces its per-minute limit in 10-second windows and reports
//! the window's allowance, what is left of it and when it resets in
//! `X-RateLimit-*` headers. A [`RateLimiter`] hands the scheduler *leases*:
//! `reserve(n)` grants up to `n` permits at once or says until when to wait,
//! and learns from every response. [`WindowLimiter`] is the per-process
//! implementation; fleet mode (one budget for many processes, through Redis)
//! is a second one, which is why permits come in leases (one round trip buys
//! many requests) and why a limiter can say its backend is unavailable.
//!
//! A limiter is built by a [`LimiterFactory`] chosen through
//! `Config::rate_limiter`, so a forked child builds a fresh one instead of
//! sharing its parent's state.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;

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

/// A limiter's answer to [`RateLimiter::reserve`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// This many permits (at least 1, at most the number asked for) may be used now.
    Granted(u32),
    /// Nothing may be sent before this instant. The scheduler never waits less
    /// than [`MIN_WAIT`], whatever a limiter answers, so a limiter cannot make it spin.
    WaitUntil(Instant),
    /// The limiter's backend cannot be asked (fleet mode: Redis is down).
    /// The scheduler waits until `retry_at` (at least [`MIN_WAIT`]) and logs `reason` once.
    Unavailable {
        /// When to ask again.
        retry_at: Instant,
        /// Why, for the log.
        reason: String,
    },
}

/// The shortest wait the scheduler accepts from a limiter.
pub const MIN_WAIT: Duration = Duration::from_millis(1);

/// Decides when requests may go out. Owned by the scheduler (one thread), so
/// implementations need no locking of their own; a shared budget (fleet mode)
/// does its own coordination behind `reserve`.
pub trait RateLimiter: Send {
    /// Ask for up to `wanted` (≥ 1) permits at `now`.
    fn reserve(&mut self, wanted: u32, now: Instant) -> Reservation;
    /// Learn from one response's rate-limit headers (and from 429s).
    fn observe(&mut self, info: &RateLimitInfo, now: Instant);
    /// Give back permits granted but not used (at shutdown, or when the work
    /// they were asked for went away). The default forgets them.
    fn release(&mut self, unused: u32) {
        let _ = unused;
    }
    /// Trouble the error callback should hear about, once per episode (fleet
    /// mode: the shared budget cannot be reached and pacing fell back to
    /// local). The scheduler asks after every reservation. The default has none.
    fn notice(&mut self) -> Option<String> {
        None
    }
}

/// Builds a limiter for a tracker (and again for a forked child).
/// `per_minute` is the tracker's `rate_limit_per_minute`.
pub type LimiterFactory = Arc<dyn Fn(u32) -> Result<Box<dyn RateLimiter>, Error> + Send + Sync>;

/// Which limiter a tracker uses: the `rate_limiter` option.
#[derive(Clone, Default)]
pub enum LimiterChoice {
    /// `"local"`: [`WindowLimiter`], this process's own pacing (the default).
    #[default]
    Local,
    /// `"none"`: no pacing at all (memory mode, tests, a proxy that paces).
    Unlimited,
    /// A limiter built by the application (set from Rust only).
    Custom(LimiterFactory),
}

impl fmt::Debug for LimiterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LimiterChoice {
    /// The option value naming this choice (`custom` for a factory).
    pub fn as_str(&self) -> &'static str {
        match self {
            LimiterChoice::Local => "local",
            LimiterChoice::Unlimited => "none",
            LimiterChoice::Custom(_) => "custom",
        }
    }

    /// A limiter built from an application's closure.
    pub fn custom<L: RateLimiter + 'static>(build: impl Fn(u32) -> L + Send + Sync + 'static) -> Self {
        LimiterChoice::Custom(Arc::new(move |per_minute| Ok(Box::new(build(per_minute)) as Box<dyn RateLimiter>)))
    }

    pub(crate) fn build(&self, per_minute: u32) -> Result<Box<dyn RateLimiter>, Error> {
        match self {
            LimiterChoice::Local => Ok(Box::new(WindowLimiter::new(per_minute))),
            LimiterChoice::Unlimited => Ok(Box::new(Unlimited)),
            LimiterChoice::Custom(f) => f(per_minute),
        }
    }
}

/// Grants everything at once.
pub struct Unlimited;

impl RateLimiter for Unlimited {
    fn reserve(&mut self, wanted: u32, _now: Instant) -> Reservation {
        Reservation::Granted(wanted.max(1))
    }
    fn observe(&mut self, _info: &RateLimitInfo, _now: Instant) {}
}

/// Length of one of Intercom's rate-limit windows.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Share of the allowance used as a steady rate; the rest is the burst.
const STEADY_SHARE: f64 = 0.97;

/// Per-process pacing: a token bucket whose rate and burst together never
/// exceed one window's allowance in any 10-second span, plus a hard stop until
/// the window resets when Intercom says nothing is left.
pub struct WindowLimiter {
    /// The allowance the configuration allows; headers may lower it, never raise it past this.
    configured: f64,
    allowance: f64,
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl WindowLimiter {
    /// Pace to `per_minute` requests a minute (`per_minute / 6` per window, rounded down).
    pub fn new(per_minute: u32) -> Self {
        let mut l = WindowLimiter {
            configured: ((per_minute / 6) as f64).max(1.0),
            allowance: 1.0,
            rate: 0.0,
            burst: 1.0,
            tokens: f64::MAX,
            last: Instant::now(),
            blocked_until: None,
        };
        l.set_allowance((per_minute / 6) as f64);
        l
    }

    fn set_allowance(&mut self, allowance: f64) {
        self.allowance = allowance.max(1.0);
        self.rate = self.allowance * STEADY_SHARE / WINDOW.as_secs_f64();
        self.burst = (self.allowance * (1.0 - STEADY_SHARE)).max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }

    /// The allowance per window currently paced to.
    pub fn allowance(&self) -> f64 {
        self.allowance
    }
}

impl RateLimiter for WindowLimiter {
    fn reserve(&mut self, wanted: u32, now: Instant) -> Reservation {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Reservation::WaitUntil(until);
            }
            self.blocked_until = None;
        }
        // A caller with a stale `now` must not refill the same interval twice.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            let n = (self.tokens.floor() as u32).min(wanted.max(1));
            self.tokens -= n as f64;
            Reservation::Granted(n)
        } else {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            Reservation::WaitUntil(crate::later(now, wait.max(MIN_WAIT)))
        }
    }

    fn observe(&mut self, info: &RateLimitInfo, now: Instant) {
        // Follow what Intercom says the window allows, down and back up
        // again, within the configured limit.
        if let Some(limit) = info.limit.filter(|l| *l > 0) {
            let allowance = (limit as f64).min(self.configured);
            if allowance != self.allowance {
                self.set_allowance(allowance);
            }
        }
        let until_reset = info.reset.map(|r| r as f64 - crate::unix_now().as_secs_f64());
        let exhausted = info.status == 429 || info.remaining == Some(0);
        if exhausted {
            // Wait for the window to reset (a second when Intercom gives no reset).
            let wait = until_reset.filter(|w| *w > 0.0).unwrap_or(if info.status == 429 { 1.0 } else { 0.0 });
            if wait > 0.0 {
                let until = crate::later(now, Duration::from_secs_f64(wait.min(WINDOW.as_secs_f64() * 6.0) + 0.05));
                self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
                self.tokens = 0.0;
            }
        } else if let (Some(rem), Some(w)) = (info.remaining, until_reset) {
            // Same window still running: never believe we have more than Intercom says.
            if w > 0.0 && (rem as f64) < self.tokens {
                self.tokens = rem as f64;
            }
        }
    }

    fn release(&mut self, unused: u32) {
        self.tokens = (self.tokens + unused as f64).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_one_window_allowance_in_any_ten_seconds() {
        let mut l = WindowLimiter::new(600); // 100 per window
        let start = Instant::now();
        let mut sent = Vec::new();
        let mut t = start;
        while t < start + Duration::from_secs(60) {
            match l.reserve(4, t) {
                Reservation::Granted(n) => {
                    assert!((1..=4).contains(&n));
                    sent.extend(std::iter::repeat_n(t, n as usize));
                }
                Reservation::WaitUntil(u) => {
                    assert!(u >= t + MIN_WAIT, "a wait of less than MIN_WAIT");
                    t = u;
                }
                other => panic!("{other:?}"),
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
    fn grants_a_lease_of_several_permits_up_to_the_burst() {
        let mut l = WindowLimiter::new(60_000); // 10,000 per window: burst 300
        assert_eq!(l.reserve(50, Instant::now()), Reservation::Granted(50));
        match l.reserve(10_000, Instant::now()) {
            Reservation::Granted(n) => assert!(n <= 250, "{n}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stops_until_reset_on_429() {
        let mut l = WindowLimiter::new(10_000);
        let now = Instant::now();
        let reset = crate::unix_now().as_secs() as i64 + 2;
        l.observe(&RateLimitInfo { status: 429, limit: Some(1666), remaining: Some(0), reset: Some(reset) }, now);
        match l.reserve(1, now) {
            Reservation::WaitUntil(u) => assert!(u > now + Duration::from_millis(900), "{:?}", u - now),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follows_the_allowance_in_headers_down_and_back_up_within_the_configured_limit() {
        let mut l = WindowLimiter::new(10_000); // 1,666 per window
        let seen = |l: &mut WindowLimiter, limit| {
            l.observe(&RateLimitInfo { status: 202, limit: Some(limit), remaining: Some(5), reset: None }, Instant::now())
        };
        seen(&mut l, 10);
        assert_eq!(l.allowance(), 10.0);
        seen(&mut l, 1000);
        assert_eq!(l.allowance(), 1000.0, "a later window allows more again");
        seen(&mut l, 100_000);
        assert_eq!(l.allowance(), 1666.0, "never past the configured limit");
    }

    #[test]
    fn each_build_is_a_fresh_limiter() {
        let choice = LimiterChoice::Local;
        let now = Instant::now();
        let mut a = choice.build(60).unwrap(); // 10 per window: a burst of 1
        assert_eq!(a.reserve(1, now), Reservation::Granted(1));
        assert!(matches!(a.reserve(1, now), Reservation::WaitUntil(_)));
        let mut b = choice.build(60).unwrap();
        assert_eq!(b.reserve(1, now), Reservation::Granted(1), "a second build shares no state with the first");
    }
}
