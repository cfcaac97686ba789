//! Track a 100,000-event burst with default options and report what was kept
//! and the memory it holds (Linux: VmRSS from /proc/self/status).
//! `cargo run --release -p trackcore --example burst_memory`
//! Delivery points at a closed port, so every event stays held; nothing is sent.

use std::time::Duration;

use trackcore::{Config, Event, OptionValue, Tracker};

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), trackcore::Error> {
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str("burst".into()))?;
    c.set("base_url", OptionValue::Str("http://127.0.0.1:9".into()))?;
    c.set("drop_timeout", OptionValue::Float(0.0))?;
    let t = Tracker::new(c)?;
    let before = rss_kb();
    for i in 0..100_000 {
        t.track(Event::new("upgraded-plan").user_id(format!("u-{i}")).meta("plan", "pro").meta("seats", 5).meta("annual", true))?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = t.stats();
    println!(
        "tracked {} dropped {} held {}; resident memory grew by {} KB",
        s.tracked,
        s.dropped,
        s.queued + s.in_flight,
        rss_kb().saturating_sub(before)
    );
    Ok(())
}
