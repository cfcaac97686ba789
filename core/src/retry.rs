//! When to try a failed request again.
//!
//! Follows Intercom's official SDKs: wait for `Retry-After` when present,
//! else until `X-RateLimit-Reset` plus 0–20 % jitter, else exponential
//! backoff (1 s doubling, capped at 60 s by default) with ±10 % jitter.

use std::time::Duration;

/// The delay before retry number `retry` (1 for the first retry).
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(30) as i32);
    let capped = exp.min(max.as_secs_f64());
    let jitter = 1.0 + (fastrand::f64() * 0.2 - 0.1);
    Duration::from_secs_f64((capped * jitter).min(max.as_secs_f64() * 1.1))
}

/// The delay Intercom asked for: `Retry-After` seconds, else the time until
/// `X-RateLimit-Reset` (Unix seconds) with 0–20 % positive jitter.
pub fn server_hint(retry_after: Option<&str>, reset: Option<i64>, unix_now: f64) -> Option<Duration> {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<f64>().ok()) {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(3600.0)));
        }
    }
    let until = reset? as f64 - unix_now;
    if until <= 0.0 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_secs_f64(until.min(3600.0) * (1.0 + fastrand::f64() * 0.2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_and_caps_with_jitter() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            let d1 = backoff(1, b, m).as_secs_f64();
            assert!((0.9..=1.1).contains(&d1), "{d1}");
            let d3 = backoff(3, b, m).as_secs_f64();
            assert!((3.6..=4.4).contains(&d3), "{d3}");
            let d20 = backoff(20, b, m).as_secs_f64();
            assert!((54.0..=66.0).contains(&d20), "{d20}");
        }
    }

    #[test]
    fn retry_after_wins_over_reset() {
        assert_eq!(server_hint(Some("3"), Some(100), 0.0), Some(Duration::from_secs(3)));
        let d = server_hint(None, Some(110), 100.0).unwrap().as_secs_f64();
        assert!((10.0..=12.0).contains(&d), "{d}");
        assert_eq!(server_hint(Some("soon"), None, 0.0), None);
    }
}
