//! Emulator loopback throughput: keep-alive clients hammering `POST /events`.
//!
//! Run: `cargo bench -p trackcore-emulator --bench throughput`
//! Knobs (environment): `BENCH_THREADS` (client threads, default 4),
//! `BENCH_SECS` (seconds per run, default 5), `BENCH_RUNS` (default 3).
//!
//! The emulator runs in-process on its own 2-worker runtime with rate limiting
//! off; every request is a distinct, valid event that gets stored (the full
//! path: auth, validation, contact lookup, dedup, storage). Client and server
//! share the machine's cores, so the figure is a floor for the server alone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trackcore_emulator::{Emulator, EmulatorConfig};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Requests/second over `secs` with `threads` keep-alive clients.
fn run(emu: &Emulator, threads: u64, secs: u64) -> (f64, u64) {
    emu.reset();
    let url = format!("{}/events", emu.base_url());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, stop, done, failures) = (url.clone(), stop.clone(), done.clone(), failures.clone());
            std::thread::spawn(move || {
                let a = agent();
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = format!(
                        r#"{{"event_name":"upgraded-plan","created_at":{},"user_id":"u-{t}","metadata":{{"plan":"pro","seats":5,"annual":true}}}}"#,
                        1_700_000_000 + i
                    );
                    let ok = a
                        .post(&url)
                        .header("Authorization", "Bearer test-token")
                        .content_type("application/json")
                        .send(body)
                        .map(|r| r.status().as_u16() == 202)
                        .unwrap_or(false);
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    assert_eq!(emu.stats().stored, n, "every 202 stored");
    (n as f64 / elapsed, failures.load(Ordering::Relaxed))
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput bench: run with `cargo bench -p trackcore-emulator --bench throughput`");
        return;
    }
    let threads = env_or("BENCH_THREADS", 4);
    let secs = env_or("BENCH_SECS", 5);
    let runs = env_or("BENCH_RUNS", 3);
    let emu = Emulator::start(EmulatorConfig { rate_limit_per_minute: 0, ..Default::default() })
        .expect("emulator starts");

    let (single, _) = run(&emu, 1, 2);
    println!("1 keep-alive client: {single:.0} requests/s ({:.0} us per round trip)", 1e6 / single);

    let mut rates = Vec::new();
    for r in 1..=runs {
        let (rate, failures) = run(&emu, threads, secs);
        println!("run {r}: {threads} keep-alive clients, {secs} s: {rate:.0} requests/s ({failures} failures)");
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let median = rates[rates.len() / 2];
    println!("median: {median:.0} requests/s with {threads} clients (cores: {})",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
}
