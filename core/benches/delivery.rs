//! Delivery throughput against the in-process emulator, over real HTTP on loopback.
//!
//! Run: `cargo bench -p trackcore --bench delivery` (add `-- quick` for a shorter run;
//! `BENCH_ROUNDS=N`, `BENCH_MAX_IN_FLIGHT=N` and `BENCH_UNPACED_ONLY=1` vary it).
//!
//! 1. `paced`: 150 ms latency per request and a 10,000/min limit on both sides;
//!    the sustained delivery rate as a share of the limit, 429s and losses.
//! 2. `unpaced`: no latency, no limit; events per second and the CPU time the
//!    tracker's own threads (dispatcher, senders, reporter) spend per event, for
//!    a `base_url` with an IP literal (`http://127.0.0.1:PORT`) and with a host
//!    name (`http://localhost:PORT`), run in alternating rounds against one
//!    emulator so both see the same machine load; compare their ratio.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

const TOKEN: &str = "bench-token";

fn tracker(base_url: String, per_minute: i64) -> Tracker {
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str(TOKEN.into())).unwrap();
    c.set("base_url", OptionValue::Str(base_url)).unwrap();
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

/// CPU seconds used so far by each live thread of this process whose name
/// starts with `prefix`, by thread id (so threads of an earlier tracker that
/// exit during a measurement do not subtract from it).
fn thread_cpu(prefix: &str) -> HashMap<String, f64> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut out = HashMap::new();
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
                    let cpu = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
                    out.insert(t.file_name().to_string_lossy().into_owned(), cpu / ticks);
                }
            }
        }
    }
    out
}

/// CPU seconds the threads alive now used since `before` was taken.
fn cpu_since(before: &HashMap<String, f64>, prefix: &str) -> f64 {
    thread_cpu(prefix).iter().map(|(tid, now)| now - before.get(tid).copied().unwrap_or(0.0)).sum()
}

fn paced(n: usize) {
    let emu = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 10_000,
        latency_ms: 150,
        ..Default::default()
    })
    .unwrap();
    let t = tracker(emu.base_url(), 10_000);
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

/// One unpaced round: `n` distinct events (ids from `first`) through a fresh
/// tracker posting to `base_url`. Returns (events/s, CPU µs per delivered
/// event, delivered, lost).
fn unpaced_round(emu: &Emulator, base_url: &str, first: usize, n: usize) -> (f64, f64, u64, u64) {
    let stored0 = emu.stats().stored;
    let t = tracker(base_url.to_string(), 100_000_000);
    let cpu0 = thread_cpu("trackcore-");
    let start = Instant::now();
    for i in first..first + n {
        t.track(event(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(600)));
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_since(&cpu0, "trackcore-");
    let delivered = t.stats().delivered;
    drop(t);
    let lost = n as u64 - (emu.stats().stored - stored0);
    (delivered as f64 / secs, cpu * 1e6 / delivered as f64, delivered, lost)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn unpaced(n: usize, rounds: usize) {
    let emu = Emulator::start(EmulatorConfig { tokens: vec![TOKEN.into()], rate_limit_per_minute: 0, ..Default::default() })
        .unwrap();
    let variants = [("IP literal", emu.base_url()), ("host name", format!("http://localhost:{}", emu.port()))];
    let mut results: Vec<Vec<(f64, f64, u64, u64)>> = vec![Vec::new(); variants.len()];
    let mut first = 0;
    for round in 0..rounds {
        // Alternate which variant goes first, so neither always runs on a warmer machine.
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            results[v].push(unpaced_round(&emu, &variants[v].1, first, n));
            first += n;
        }
    }
    println!("unpaced: no latency, no limit, {rounds} alternating rounds of {n} events per base_url:");
    let mut cpu_medians = Vec::new();
    for ((name, url), r) in variants.iter().zip(&results) {
        let rate = median(&r.iter().map(|x| x.0).collect::<Vec<_>>());
        let cpus: Vec<f64> = r.iter().map(|x| x.1).collect();
        let cpu = median(&cpus);
        cpu_medians.push(cpu);
        let rounds_s = cpus.iter().map(|c| format!("{c:.1}")).collect::<Vec<_>>().join(" / ");
        println!(
            "  {name:<10} {url}: {rate:.0} events/s; tracker threads' CPU {cpu:.1} µs per delivered event (median; rounds {rounds_s}); delivered {} lost {}",
            r.iter().map(|x| x.2).sum::<u64>(),
            r.iter().map(|x| x.3).sum::<u64>()
        );
    }
    println!("  CPU per event, host name / IP literal: {:.2}", cpu_medians[1] / cpu_medians[0]);
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // cargo bench passes --bench; ignore other arguments.
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(if quick { 3 } else { 5 });
    unpaced(if quick { 5_000 } else { 20_000 }, rounds);
    if std::env::var("BENCH_UNPACED_ONLY").is_err() {
        paced(if quick { 2_000 } else { 6_000 });
    }
}
