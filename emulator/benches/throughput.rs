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

/// CPU seconds used so far by this process's threads whose name starts with
/// `prefix` (Linux: `/proc/self/task/*/stat`, 100 ticks a second); `None` elsewhere.
fn cpu_secs(prefix: &str) -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the comm: state is field 0, utime 11, stime 12.
        let f = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += f(11) + f(12);
    }
    Some(ticks as f64 / 100.0)
}

/// One measurement.
struct Run {
    /// Requests answered 202 per wall-clock second.
    rate: f64,
    /// Transport errors or non-202 answers.
    failures: u64,
    /// Server (emulator runtime threads) CPU time per request, in microseconds.
    server_cpu_us: Option<f64>,
}

/// Requests/second over `secs` with `threads` keep-alive clients.
fn run(emu: &Emulator, threads: u64, secs: u64) -> Run {
    emu.reset();
    let cpu_before = cpu_secs("trackcore-emu");
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
    let cpu = cpu_secs("trackcore-emu").zip(cpu_before).map(|(a, b)| a - b);
    let n = done.load(Ordering::Relaxed);
    assert_eq!(emu.stats().stored, n, "every 202 stored");
    Run {
        rate: n as f64 / elapsed,
        failures: failures.load(Ordering::Relaxed),
        server_cpu_us: cpu.filter(|_| n > 0).map(|c| c * 1e6 / n as f64),
    }
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

    let single = run(&emu, 1, 2);
    println!(
        "1 keep-alive client: {:.0} requests/s ({:.0} us per round trip)",
        single.rate,
        1e6 / single.rate
    );

    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for r in 1..=runs {
        let m = run(&emu, threads, secs);
        let cpu = m.server_cpu_us.map(|c| format!(", server CPU {c:.1} us/request")).unwrap_or_default();
        println!(
            "run {r}: {threads} keep-alive clients, {secs} s: {:.0} requests/s ({} failures{cpu})",
            m.rate, m.failures
        );
        rates.push(m.rate);
        cpus.extend(m.server_cpu_us);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    cpus.sort_by(|a, b| a.total_cmp(b));
    let median = rates[rates.len() / 2];
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("median: {median:.0} requests/s with {threads} clients in the same process (cores: {cores})");
    if let Some(c) = cpus.get(cpus.len() / 2) {
        println!(
            "median server CPU: {c:.1} us/request -> about {:.0} requests/s per fully used core",
            1e6 / c
        );
    }
}
