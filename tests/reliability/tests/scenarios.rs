//! The reliability suite (issue: durable delivery). Each scenario tracks a
//! known set of events and then checks, through the emulator's store, that
//! every one arrived: none lost, duplicates only where Intercom's
//! de-duplication absorbs them. Sizes are CI sizes; `RELIABILITY_SCALE=10`
//! (or more) is the soak variant, run by hand:
//!
//!     RELIABILITY_SCALE=10 cargo test --release -p trackcore-reliability -- --nocapture --test-threads 1
//!
//! Each scenario prints one `figures:` line (run with `--nocapture` to see
//! them); docs/reliability.md has them. Outages are a closed port, kills are
//! SIGKILL, damage is done to the bytes on disk: nothing waits on a clock.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trackcore::{Config, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig, ScriptedResponse};
use trackcore_reliability::{event, scale};

const TOKEN: &str = "tok-reliability";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trackcore-reliability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn emulator_on(port: u16, tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut c = EmulatorConfig { port, tokens: vec![TOKEN.into()], rate_limit_per_minute: 0, ..Default::default() };
    tweak(&mut c);
    Emulator::start(c).expect("emulator binds 127.0.0.1")
}

type Codes = Arc<Mutex<Vec<String>>>;

fn tracker(base_url: &str, spool: &Path, options: &[(&str, OptionValue)]) -> (Tracker, Codes) {
    let mut c = Config::default();
    let base = [
        ("access_token", OptionValue::Str(TOKEN.into())),
        ("base_url", OptionValue::Str(base_url.into())),
        ("spool_dir", OptionValue::Str(spool.display().to_string())),
        ("rate_limiter", OptionValue::Str("none".into())),
        ("backoff_base", OptionValue::Float(0.05)),
        ("backoff_max", OptionValue::Float(0.5)),
    ];
    for (k, v) in base.iter().cloned().chain(options.iter().cloned()) {
        c.set(k, v).unwrap();
    }
    let codes: Codes = Arc::default();
    let sink = codes.clone();
    c.on_error = Some(Arc::new(move |_, e| sink.lock().unwrap().push(e.code().to_string())));
    (Tracker::new(c).unwrap(), codes)
}

/// The indexes of the events the emulator stored.
fn arrived(emu: &Emulator) -> HashSet<u64> {
    emu.events().iter().filter_map(|e| e.user_id.as_deref()?.strip_prefix("r-")?.parse().ok()).collect()
}

/// Which of `want` did not arrive.
fn missing(emu: &Emulator, want: impl Iterator<Item = u64>) -> Vec<u64> {
    let got = arrived(emu);
    want.filter(|i| !got.contains(i)).collect()
}

fn lost_only_notices(codes: &Codes) {
    let codes = codes.lock().unwrap();
    assert!(codes.iter().all(|c| c == "delivery_stalled"), "only notices, no event reported lost: {codes:?}");
}

#[test]
fn s1_intercom_down_for_a_while_with_a_deploy_in_between_then_back() {
    let n = 5_000 * scale();
    let dir = temp_dir("s1");
    let port = closed_port();
    let down = format!("http://127.0.0.1:{port}");
    // The first process tracks half while Intercom is down, then is deployed away.
    let (t, codes) = tracker(&down, &dir, &[]);
    for i in 0..n / 2 {
        t.track(event(i)).unwrap();
    }
    assert!(!t.shutdown(Duration::from_millis(300)));
    // Counted once the dispatcher has stopped: a second shutdown waits for that.
    assert!(!t.shutdown(Duration::from_secs(30)));
    let s = t.stats();
    assert_eq!((s.persisted, s.dropped), (n / 2, 0), "{s:?}");
    lost_only_notices(&codes);
    drop(t);
    // The next one takes over the spool, tracks the other half, still down.
    let (t, codes) = tracker(&down, &dir, &[]);
    for i in n / 2..n {
        t.track(event(i)).unwrap();
    }
    assert!(t.sync(Duration::from_secs(30)));
    let back_at = Instant::now();
    let emu = emulator_on(port, |_| {});
    assert!(t.flush(Duration::from_secs(300)), "{:?}", t.stats());
    let recovery = back_at.elapsed();
    let s = t.stats();
    assert_eq!((s.recovered, s.tracked, s.delivered, s.dropped, s.failed), (n / 2, n / 2, n, 0, 0), "{s:?}");
    assert!(s.balanced(), "{s:?}");
    assert_eq!(missing(&emu, 0..n), Vec::<u64>::new());
    let dup = emu.stats().duplicates;
    println!("figures: s1 outage+deploy: tracked {n}, delivered {n}, duplicates {dup}, lost 0, drained in {:.2} s after Intercom came back", recovery.as_secs_f64());
    lost_only_notices(&codes);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn s2_thirty_percent_faults_and_a_429_storm() {
    let n = 3_000 * scale();
    let dir = temp_dir("s2");
    let emu = emulator_on(0, |c| {
        c.error_rate = 0.15;
        c.drop_rate = 0.15;
        c.seed = Some(7);
    });
    emu.script((0..200).map(|_| ScriptedResponse::status(429).with_retry_after(0)).collect());
    // Retries: 30 % failures make 10 in a row happen (0.3^11 per event); a
    // fault this bad gets more attempts, and the deadline still bounds them.
    let (t, codes) = tracker(&emu.base_url(), &dir, &[("max_retries", OptionValue::Int(40))]);
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(300)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!((s.delivered, s.failed, s.dropped), (n, 0, 0), "{s:?}");
    assert!(s.balanced(), "{s:?}");
    assert_eq!(missing(&emu, 0..n), Vec::<u64>::new());
    let e = emu.stats();
    assert!(e.scripted_served >= 200 && e.injected_errors > 0 && e.dropped_connections > 0, "{e:?}");
    println!(
        "figures: s2 faults: tracked {n}, delivered {}, duplicates {}, lost 0; {} injected 5xx, {} dropped connections, 200 scripted 429s, {} retries",
        s.delivered, e.duplicates, e.injected_errors, e.dropped_connections, s.retried
    );
    let codes = codes.lock().unwrap();
    assert!(codes.iter().all(|c| c == "delivery_stalled"), "{codes:?}");
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Start the tracking process (`src/bin/track-spool.rs`).
fn spawn_tracker(base_url: &str, dir: &Path, from: u64, count: u64, batch: u64, end: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_track-spool"))
        .args([base_url, &dir.display().to_string(), &from.to_string(), &count.to_string(), &batch.to_string(), end])
        .env("TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start track-spool")
}

/// Read `synced N` lines until at least `at_least` are acknowledged; the last count seen.
fn wait_synced(child: &mut Child, at_least: u64) -> (u64, BufReader<std::process::ChildStdout>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut synced = 0;
    let mut line = String::new();
    while synced < at_least {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "the tracking process ended early");
        if let Some(n) = line.trim().strip_prefix("synced ") {
            synced = n.parse().unwrap();
        }
    }
    (synced, lines)
}

#[test]
fn s3_kill_9_mid_stream_then_a_new_process_on_the_same_spool() {
    let n = 20_000 * scale();
    let dir = temp_dir("s3");
    // Intercom is up but slow, so the kill finds events in flight, queued and on disk.
    let emu = emulator_on(0, |c| {
        c.latency_ms = 20;
        c.latency_jitter_ms = 20;
    });
    let mut child = spawn_tracker(&emu.base_url(), &dir, 0, n, 500, "hang");
    let (synced, _out) = wait_synced(&mut child, n / 2);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = arrived(&emu).len();
    let started = Instant::now();
    let (t, codes) = tracker(&emu.base_url(), &dir, &[]);
    assert!(t.flush(Duration::from_secs(300)), "{:?}", t.stats());
    let recovery = started.elapsed();
    let s = t.stats();
    assert!(s.recovered > 0 && s.delivered == s.recovered && s.dropped == 0 && s.failed == 0, "{s:?}");
    assert_eq!(missing(&emu, 0..synced), Vec::<u64>::new(), "every event acknowledged by sync() arrived");
    let dup = emu.stats().duplicates;
    println!(
        "figures: s3 kill -9 (Rust): {synced} acknowledged before the kill ({before} already delivered), {} recovered and delivered in {:.2} s, duplicates absorbed by de-duplication {dup}, lost 0",
        s.recovered,
        recovery.as_secs_f64()
    );
    lost_only_notices(&codes);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn segments(slot: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> =
        std::fs::read_dir(slot).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "log")).collect();
    segs.sort();
    segs
}

#[test]
fn s4_a_corrupt_record_and_a_torn_tail() {
    let n = 2_000 * scale();
    let dir = temp_dir("s4");
    let down = format!("http://127.0.0.1:{}", closed_port());
    let (t, _) = tracker(&down, &dir, &[]);
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    assert!(!t.shutdown(Duration::from_millis(300)));
    // Counted once the dispatcher has stopped: a second shutdown waits for that.
    assert!(!t.shutdown(Duration::from_secs(30)));
    assert_eq!(t.stats().persisted, n);
    drop(t);
    let segs = segments(&dir.join("w0"));
    // A flipped byte inside one event's record (bit rot): that event is gone,
    // and is counted and reported; every other one arrives.
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(first, &bytes).unwrap();
    // A torn tail: a crash in the middle of appending a record leaves half of
    // it. That event was never acknowledged (sync had not returned).
    let last = segs.last().unwrap();
    let mut tail = std::fs::read(last).unwrap();
    let half = tail[..tail.len().min(120)].to_vec();
    tail.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(last, &tail).unwrap();

    let emu = emulator_on(0, |_| {});
    let (t, codes) = tracker(&emu.base_url(), &dir, &[]);
    assert!(t.flush(Duration::from_secs(120)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!(s.spool_corrupt, 2, "one corrupt stretch, one torn tail: {s:?}");
    assert_eq!((s.recovered, s.delivered), (n - 1, n - 1), "all but the damaged record: {s:?}");
    assert_eq!(missing(&emu, 0..n).len(), 1, "only the event whose bytes were damaged is missing");
    assert!(t.wait_for_callbacks(Duration::from_secs(5)));
    assert!(codes.lock().unwrap().iter().any(|c| c == "spool_corrupt"), "the damage is reported: {:?}", codes.lock().unwrap());
    println!("figures: s4 damage: {n} on disk, 1 record corrupted and 1 torn tail: {} delivered, spool_corrupt {}, reported once", s.delivered, s.spool_corrupt);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn s5_a_burst_ten_times_the_memory_queue_at_150_ms_latency() {
    let capacity = 500 * scale();
    let n = 10 * capacity;
    let dir = temp_dir("s5");
    let emu = emulator_on(0, |c| c.latency_ms = 150);
    let (t, codes) = tracker(
        &emu.base_url(),
        &dir,
        // overflow=block: a caller faster than the disk waits for the
        // dispatcher to move events to the spool (never for the network).
        &[
            ("queue_capacity", OptionValue::Int(capacity as i64)),
            ("overflow", OptionValue::Str("block".into())),
            ("block_timeout", OptionValue::Float(5.0)),
            ("max_in_flight", OptionValue::Int(100)),
        ],
    );
    let start = Instant::now();
    for i in 0..n {
        t.track(event(i)).unwrap();
    }
    let tracked_in = start.elapsed();
    let peak_spooled = t.stats().spooled;
    assert!(t.flush(Duration::from_secs(300)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!((s.tracked, s.delivered, s.dropped), (n, n, 0), "{s:?}");
    assert_eq!(missing(&emu, 0..n), Vec::<u64>::new());
    println!(
        "figures: s5 burst: {n} events into a {capacity}-event queue in {:.3} s, {peak_spooled} on disk right after, all {n} delivered in {:.1} s at 150 ms latency, lost 0",
        tracked_in.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    lost_only_notices(&codes);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn s6_a_long_outage_keeps_memory_bounded_and_everything_arrives_after() {
    let n = 100_000 * scale();
    let dir = temp_dir("s6");
    let port = closed_port();
    let mut child = spawn_tracker(&format!("http://127.0.0.1:{port}"), &dir, 0, n, 10_000, "shutdown");
    let (synced, out) = wait_synced(&mut child, n);
    let report: serde_json::Value = serde_json::from_str(&out.lines().map(Result::unwrap).last().unwrap()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!((synced, report["persisted"].as_u64(), report["dropped"].as_u64()), (n, Some(n), Some(0)), "{report}");
    let peak_mib = report["peak_rss_kib"].as_u64().unwrap() as f64 / 1024.0;
    assert!(peak_mib <= 64.0, "peak RSS {peak_mib:.1} MiB during a {n}-event outage");
    let emu = emulator_on(port, |_| {});
    let started = Instant::now();
    let (t, codes) = tracker(&emu.base_url(), &dir, &[("max_in_flight", OptionValue::Int(64))]);
    assert!(t.flush(Duration::from_secs(900)), "{:?}", t.stats());
    let recovery = started.elapsed();
    let s = t.stats();
    assert_eq!((s.recovered, s.delivered, s.dropped), (n, n, 0), "{s:?}");
    assert_eq!(emu.stats().stored, n);
    println!(
        "figures: s6 outage: {n} events tracked in {:.2} s with Intercom down, peak RSS {peak_mib:.1} MiB, spool {:.1} MiB; all {n} recovered and delivered in {:.1} s once it was back, lost 0",
        report["track_secs"].as_f64().unwrap(),
        report["spool_bytes"].as_f64().unwrap() / 1048576.0,
        recovery.as_secs_f64()
    );
    lost_only_notices(&codes);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}
