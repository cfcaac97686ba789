//! Intercom's rate limit: a per-minute allowance enforced in 10-second windows
//! aligned to wall-clock multiples of 10 s.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Length of one rate-limit window, in seconds.
pub const WINDOW_SECS: u64 = 10;
/// How many past windows the stats keep.
const HISTORY: usize = 60;

/// The window allowance for a per-minute limit: `ceil(per_minute / 6)`
/// (Intercom: 1,000/min means 167 per 10 s). `None` for `0` (unlimited).
pub fn window_allowance(per_minute: u32) -> Option<u32> {
    if per_minute == 0 {
        None
    } else {
        Some(per_minute.div_ceil(6))
    }
}

/// The start (Unix seconds) of the window containing `now_secs`.
pub fn window_start(now_secs: u64) -> u64 {
    now_secs - now_secs % WINDOW_SECS
}

/// Requests counted in one past or current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// Window start, Unix seconds.
    pub start: u64,
    /// Authenticated API requests received in it (including refused ones).
    pub requests: u64,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// `X-RateLimit-Limit`, or `None` when unlimited.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining` after this request.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: Unix seconds at which the window ends.
    pub reset: u64,
    /// Whether the request is within the allowance.
    pub allowed: bool,
}

/// Fixed-window counter.
#[derive(Debug, Default)]
pub struct Limiter {
    current: Option<WindowCount>,
    history: VecDeque<WindowCount>,
    max_requests: u64,
}

impl Limiter {
    fn roll(&mut self, now_secs: u64) -> &mut WindowCount {
        let start = window_start(now_secs);
        match self.current {
            Some(w) if w.start == start => {}
            Some(w) => {
                self.history.push_back(w);
                while self.history.len() > HISTORY {
                    self.history.pop_front();
                }
                self.current = Some(WindowCount { start, requests: 0 });
            }
            None => self.current = Some(WindowCount { start, requests: 0 }),
        }
        self.current.get_or_insert(WindowCount { start, requests: 0 })
    }

    /// Counts one request at `now_secs` and decides whether it is allowed.
    pub fn hit(&mut self, now_secs: u64, per_minute: u32) -> Decision {
        let w = self.roll(now_secs);
        w.requests += 1;
        let used = w.requests;
        let start = w.start;
        self.max_requests = self.max_requests.max(used);
        decide(per_minute, used, start, true)
    }

    /// The state of the current window without counting a request.
    pub fn peek(&mut self, now_secs: u64, per_minute: u32) -> Decision {
        let w = self.roll(now_secs);
        let (used, start) = (w.requests, w.start);
        decide(per_minute, used, start, false)
    }

    /// Requests in the current window (0 if none yet).
    pub fn current(&mut self, now_secs: u64) -> WindowCount {
        *self.roll(now_secs)
    }

    /// The most requests seen in any single window.
    pub fn max_requests(&self) -> u64 {
        self.max_requests
    }

    /// Past windows that saw requests, oldest first, then the current one.
    pub fn history(&self) -> Vec<WindowCount> {
        self.history.iter().copied().chain(self.current).collect()
    }
}

fn decide(per_minute: u32, used: u64, start: u64, counted: bool) -> Decision {
    let limit = window_allowance(per_minute);
    let reset = start + WINDOW_SECS;
    match limit {
        None => Decision { limit, remaining: 0, reset, allowed: true },
        Some(l) => {
            let l64 = u64::from(l);
            Decision {
                limit,
                remaining: u32::try_from(l64.saturating_sub(used)).unwrap_or(0),
                reset,
                allowed: !counted || used <= l64,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowance_rounds_up() {
        assert_eq!(window_allowance(1000), Some(167));
        assert_eq!(window_allowance(10_000), Some(1667));
        assert_eq!(window_allowance(6), Some(1));
        assert_eq!(window_allowance(1), Some(1));
        assert_eq!(window_allowance(0), None);
    }

    #[test]
    fn refuses_past_allowance_and_resets_on_next_window() {
        let mut l = Limiter::default();
        for i in 0..3 {
            let d = l.hit(1_000_000_001, 18);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
            assert_eq!(d.reset, 1_000_000_010);
        }
        assert!(!l.hit(1_000_000_009, 18).allowed);
        assert!(l.hit(1_000_000_010, 18).allowed);
        assert_eq!(l.max_requests(), 4);
        assert_eq!(l.history().len(), 2);
    }
}
