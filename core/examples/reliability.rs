//! The figures of docs/reliability.md: a 429 storm, an outage, and the memory
//! held per queued event, each against the in-process emulator.
//!
//! `cargo run --release -p trackcore --example reliability [storm|outage|memory]`
//! (all three when none is named).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig, ScriptedResponse};

const TOKEN: &str = "reliability";

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn tracker(base_url: &str, options: &[(&str, OptionValue)], errors: Arc<AtomicU64>) -> Tracker {
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str(TOKEN.into())).unwrap();
    c.set("base_url", OptionValue::Str(base_url.into())).unwrap();
    for (k, v) in options {
        c.set(k, v.clone()).unwrap();
    }
    c.on_error = Some(Arc::new(move |_, _| {
        errors.fetch_add(1, Ordering::Relaxed);
    }));
    Tracker::new(c).unwrap()
}

fn event(i: usize) -> Event {
    Event::new("upgraded-plan").user_id(format!("u-{i}")).meta("plan", "pro").meta("seats", 5).meta("annual", true)
}

/// 40 answers of 429 with `Retry-After: 1` in a row (each pauses all sending
/// for the second it asks, so about 40 s of storm), 80 events, `max_retries` 2.
fn storm() {
    let emu = Emulator::start(EmulatorConfig { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    emu.script(vec![ScriptedResponse::status(429).with_retry_after(1); 40]);
    let errors = Arc::new(AtomicU64::new(0));
    let options = [("max_in_flight", OptionValue::Int(8)), ("max_retries", OptionValue::Int(2))];
    let t = tracker(&emu.base_url(), &options, errors.clone());
    let start = Instant::now();
    for i in 0..80 {
        t.track(event(i)).unwrap();
    }
    let done = t.flush(Duration::from_secs(300));
    let s = t.stats();
    println!(
        "storm: 80 events (max_retries 2) through 40 answers of 429 (Retry-After: 1): flushed {done} in {:.1} s; delivered {}, failed {}, dropped {}, 429s {}, reports {}; stored by the emulator {}",
        start.elapsed().as_secs_f64(),
        s.delivered,
        s.failed,
        s.dropped,
        s.rate_limited,
        errors.load(Ordering::Relaxed),
        emu.events().len()
    );
}

/// 20 seconds with nothing listening, 10,000 events queued, then shutdown.
fn outage() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let errors = Arc::new(AtomicU64::new(0));
    let t = tracker(&format!("http://127.0.0.1:{port}"), &[], errors.clone());
    for i in 0..10_000 {
        t.track(event(i)).unwrap();
    }
    let cpu_before = cpu();
    let start = Instant::now();
    t.flush(Duration::from_secs(20));
    let (cpu_used, took) = (cpu() - cpu_before, start.elapsed());
    let s = t.stats();
    println!(
        "outage: 10,000 events, {:.0} s with the port closed: {} failed connection attempts, {:.2} s of CPU; lost {}, still held {}, reports {} (the stall notice)",
        took.as_secs_f64(),
        s.retried,
        cpu_used.as_secs_f64(),
        s.failed + s.dropped,
        s.queued + s.in_flight,
        errors.load(Ordering::Relaxed)
    );
    t.shutdown(Duration::ZERO);
}

/// Memory held per queued event: 200,000 events waiting behind a closed gate.
fn memory() {
    let emu = Emulator::start(EmulatorConfig { tokens: vec![TOKEN.into()], ..Default::default() }).unwrap();
    emu.hold();
    let errors = Arc::new(AtomicU64::new(0));
    let t = tracker(&emu.base_url(), &[], errors);
    let before = rss_kb();
    let n = 200_000;
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    // The hand-off is drained into the store once the dispatcher has seen them all.
    let s = loop {
        let s = t.stats();
        if t.flush(Duration::from_millis(1)) || s.queued + s.in_flight == n as u64 {
            break s;
        }
    };
    let grew = rss_kb().saturating_sub(before);
    println!(
        "memory: {} events held ({} in flight at the closed gate): resident memory grew by {} KB, {} bytes per event (the body is {} bytes)",
        s.queued + s.in_flight,
        s.in_flight,
        grew,
        grew * 1024 / n as u64,
        event(123_456).prepare(1_700_000_000).map(|p| p.body.len()).unwrap_or(0)
    );
    t.shutdown(Duration::ZERO);
    emu.open();
}

fn main() {
    let which = std::env::args().nth(1);
    let run = |name: &str| which.as_deref().is_none_or(|w| w == name);
    if run("storm") {
        storm();
    }
    if run("outage") {
        outage();
    }
    if run("memory") {
        memory();
    }
}
