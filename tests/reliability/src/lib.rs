//! Shared by the reliability scenarios and their tracking process
//! (`src/bin/track-spool.rs`): the event of index `i`, and this process's
//! peak resident memory.

use trackcore::Event;

/// The `i`-th event of a scenario: its `user_id` names it, so the emulator's
/// store tells exactly which arrived.
pub fn event(i: u64) -> Event {
    Event::new("reliability-check")
        .user_id(format!("r-{i}"))
        .created_at(1_700_000_000 + (i % 1_000_000) as i64)
        .meta("index", i as i64)
        .meta("plan", "pro")
        .meta("note", "a realistic body of a couple of hundred bytes, like a real event's metadata")
}

/// Peak resident set size of this process in KiB (`VmHWM`), 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// How much bigger than the CI sizes to run (`RELIABILITY_SCALE`, default 1):
/// the soak variant is the same suite with a larger scale.
pub fn scale() -> u64 {
    std::env::var("RELIABILITY_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}
