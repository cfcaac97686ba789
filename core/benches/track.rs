//! Caller-thread cost of `track()` with 3 metadata keys.
//!
//! Run: `cargo bench -p trackcore --bench track`
//!
//! What the live benches measure: the whole `track()` call on the benchmark's
//! thread (validation, body, clock, name cap, counters, hand-off into the
//! bounded channel) into a real running pipeline with the default options
//! (queue of 10,000, `drop_newest`, pacing at 10,000/min, de-duplication on),
//! delivering to an in-process emulator on 127.0.0.1 that accepts everything.
//!
//! Calls are timed in bursts of [`BURST`] back-to-back calls; between bursts
//! (untimed) the bench waits until `stats().queued` is 0: the dispatcher has
//! taken in, de-duplicated or sent everything tracked. A tight loop tracks millions of events a second, faster than one
//! dispatcher thread sharing two cores with the loop, the senders and the
//! emulator can take them in, so an endless loop would soon fill any queue
//! and time the overflow path instead. While a burst runs the dispatcher is
//! live: it polls the queue (every 2 ms) and drains it concurrently.
//!
//! The event's `created_at` defaults to now, so all copies tracked within a
//! second share Intercom's de-duplication key: the dispatcher drops them
//! (counted as `deduplicated`) and delivers one per second. The caller's side
//! of the hand-off is the same for an event that is then sent. What happened
//! to the events is printed at the end; none may be dropped for a full queue.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

const TOKEN: &str = "bench";
/// Calls timed back to back; far below the default queue capacity (10,000).
const BURST: u64 = 1_000;

fn tracker(base_url: &str, memory: bool) -> Tracker {
    tracker_with(base_url, memory, None)
}

fn tracker_with(base_url: &str, memory: bool, spool: Option<&std::path::Path>) -> Tracker {
    let mut c = Config::default();
    if let Some(dir) = spool {
        c.set("spool_dir", OptionValue::Str(dir.display().to_string())).unwrap();
    }
    c.set("access_token", OptionValue::Str(TOKEN.into())).unwrap();
    c.set("base_url", OptionValue::Str(base_url.into())).unwrap();
    c.set("memory", OptionValue::Bool(memory)).unwrap();
    c.set("drop_timeout", OptionValue::Float(0.0)).unwrap();
    Tracker::new(c).unwrap()
}

/// Time `call` in bursts of [`BURST`], letting the dispatcher take in each
/// burst before the next (untimed).
fn bursts(t: &Tracker, iters: u64, mut call: impl FnMut()) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while t.stats().queued > 0 {
            assert!(Instant::now() < deadline, "the dispatcher stopped taking events in");
            std::thread::sleep(Duration::from_micros(200));
        }
        let n = left.min(BURST);
        let start = Instant::now();
        for _ in 0..n {
            call();
        }
        timed += start.elapsed();
        left -= n;
    }
    timed
}

fn event() -> Event {
    Event::new("upgraded-plan").user_id("u-123").meta("plan", "pro").meta("seats", 5).meta("annual", true)
}

fn bench(c: &mut Criterion) {
    let emulator = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 0, // unlimited: the tracker's own pacing applies
        ..Default::default()
    })
    .unwrap();
    let mut g = c.benchmark_group("track");
    g.measurement_time(Duration::from_secs(5));
    let live = tracker(&emulator.base_url(), false);
    g.bench_function("track_3_metadata_keys", |b| {
        b.iter_custom(|iters| bursts(&live, iters, || live.track(black_box(event())).unwrap()))
    });
    // The same with a disk spool: the disk is the dispatcher's work, so the
    // caller's cost must stay within 10 % of the line above.
    let spool_dir = std::env::temp_dir().join(format!("trackcore-bench-spool-{}", std::process::id()));
    let spooled = tracker_with(&emulator.base_url(), false, Some(&spool_dir));
    g.bench_function("track_3_metadata_keys_spool", |b| {
        b.iter_custom(|iters| bursts(&spooled, iters, || spooled.track(black_box(event())).unwrap()))
    });
    g.bench_function("build_and_validate_only", |b| b.iter(|| event().prepare(1_700_000_000).unwrap()));
    let built = event();
    g.bench_function("track_ref_prebuilt_event", |b| {
        b.iter_custom(|iters| bursts(&live, iters, || live.track_ref(black_box(&built)).unwrap()))
    });
    // Memory mode records every body: forget them after each sample (untimed),
    // so the recording Vec stays the size of one sample, not of the whole run.
    let memory = tracker(&emulator.base_url(), true);
    g.bench_function("track_ref_prebuilt_memory_mode", |b| {
        b.iter_custom(|iters| {
            memory.clear_recorded();
            let start = Instant::now();
            for _ in 0..iters {
                memory.track_ref(black_box(&built)).unwrap();
            }
            start.elapsed()
        })
    });
    g.bench_function("validate_only", |b| b.iter(|| built.prepare(1_700_000_000).unwrap()));
    g.bench_function("build_only", |b| b.iter(event));
    g.finish();
    let s = live.stats();
    eprintln!(
        "live pipeline: tracked {} deduplicated {} delivered {} queued {} dropped {} failed {}",
        s.tracked, s.deduplicated, s.delivered, s.queued, s.dropped, s.failed
    );
    assert_eq!(s.dropped_queue_full, 0, "the queue overflowed: the bench measured drops, not hand-offs");
    assert_eq!(spooled.stats().dropped, 0);
    drop(spooled);
    let _ = std::fs::remove_dir_all(&spool_dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
