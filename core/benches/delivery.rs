//! Delivery throughput against the in-process emulator, over real HTTP on loopback.
//!
//! Run: `cargo bench -p trackcore --bench delivery` (add `-- quick` for a shorter run).
//!
//! 1. `paced`: 150 ms latency per request and a 10,000/min limit on both sides;
//!    the sustained delivery rate as a share of the limit, 429s and losses.
//! 2. `unpaced`: no latency, no limit; events per second and the CPU time the
//!    tracker's own threads (dispatcher, senders, reporter) spend per event.

use std::time::{Duration, Instant};

use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

const TOKEN: &str = "bench-token";

fn tracker(emu: &Emulator, per_minute: i64) -> Tracker {
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str(TOKEN.into())).unwrap();
    c.set("base_url", OptionValue::Str(emu.base_url())).unwrap();
    c.set("rate_limit_per_minute", OptionValue::Int(per_minute)).unwrap();
    c.set("queue_capacity", OptionValue::Int(1_000_000)).unwrap();
    if let Ok(n) = std::env::var("BENCH_MAX_IN_FLIGHT") {
        c.set("max_in_flight", OptionValue::Int(n.parse().unwrap())).unwrap();
    }
    Tracker::new(c).unwrap()
}

fn event(i: usize) -> Event {
    Event::new("upgraded-plan").user_id(format!("u-{i}")).meta("plan", "pro").meta("seats", 5).meta("annual", true)
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the ")" that closes the name: utime is the 12th, stime the 13th.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 12 {
                    total += f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
                }
            }
        }
    }
    total / ticks
}

fn paced(n: usize) {
    let emu = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 10_000,
        latency_ms: 150,
        ..Default::default()
    })
    .unwrap();
    let t = tracker(&emu, 10_000);
    let start = Instant::now();
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    let settled = t.flush(Duration::from_secs(600));
    let secs = start.elapsed().as_secs_f64();
    let s = t.stats();
    let es = emu.stats();
    let rate = s.delivered as f64 / secs;
    let limit = 10_000.0 / 60.0;
    println!(
        "paced: {n} events, 150 ms latency, limit 10,000/min: {:.1} events/s = {:.1} % of the limit; \
         429s seen by the emulator: {}; delivered {} stored {} lost {} (settled: {settled}); max in one 10 s window {} of {}",
        rate,
        100.0 * rate / limit,
        es.rate_limited,
        s.delivered,
        es.stored,
        n as u64 - es.stored,
        es.max_requests_in_window,
        (10_000 + 5) / 6
    );
}

fn unpaced(n: usize) {
    let emu = Emulator::start(EmulatorConfig { tokens: vec![TOKEN.into()], rate_limit_per_minute: 0, ..Default::default() })
        .unwrap();
    let t = tracker(&emu, 100_000_000);
    let cpu0 = thread_cpu("trackcore-");
    let start = Instant::now();
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(600)));
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu("trackcore-") - cpu0;
    let s = t.stats();
    println!(
        "unpaced: {n} events, no latency, no limit: {:.0} events/s; tracker threads' CPU {:.1} µs per delivered event; delivered {} lost {}",
        s.delivered as f64 / secs,
        cpu * 1e6 / s.delivered as f64,
        s.delivered,
        n as u64 - emu.stats().stored
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // cargo bench passes --bench; ignore other arguments.
    unpaced(if quick { 10_000 } else { 50_000 });
    if std::env::var("BENCH_UNPACED_ONLY").is_err() {
        paced(if quick { 2_000 } else { 6_000 });
    }
}
