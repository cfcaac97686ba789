//! trackcore: server-side events for Intercom's Data Events API.
//!
//! ```no_run
//! use trackcore::{Config, Event, Tracker};
//! let tracker = Tracker::new(Config::default())?; // token from INTERCOM_ACCESS_TOKEN
//! tracker.track(Event::new("upgraded-plan").user_id("u-123").meta("plan", "pro"))?;
//! # Ok::<(), trackcore::Error>(())
//! ```
//!
//! Data flows through the modules in this order: [`event`] (the value and its
//! validation) → [`config`] → `pipeline` (the channel and the threads) around
//! `scheduler` (every delivery decision, as a plain state machine) with its
//! three seams: [`store`] (where events are kept), `transport` (how they are
//! sent; `delivery` is HTTP) and [`ratelimit`] (where permits come from) →
//! [`stats`]. Failures reach the error callback through `report`; `fork`
//! lets a tracker notice it is in a forked child.

pub mod config;
mod delivery;
mod error;
pub mod event;
pub mod fleet;
mod fork;
mod pipeline;
pub mod ratelimit;
mod report;
pub mod retry;
mod scheduler;
pub mod spool;
pub mod stats;
pub mod store;
mod tracker;
mod transport;

pub use config::{Config, OptionInfo, OptionValue, Overflow, Region, Secret, UnknownContact};
pub use error::{Error, ErrorKind, ERROR_CODES};
pub use event::{Event, Value};
pub use ratelimit::{LimiterChoice, RateLimitInfo, RateLimiter, Reservation, WindowLimiter};
pub use report::{ErrorCallback, FailedEvent};
pub use stats::Stats;
pub use tracker::Tracker;

/// Time since the Unix epoch (zero if the clock is before 1970).
pub(crate) fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `now + d`, saturating far in the future instead of panicking on overflow.
pub(crate) fn later(now: std::time::Instant, d: std::time::Duration) -> std::time::Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}
