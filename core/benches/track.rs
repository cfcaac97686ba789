//! Caller-thread cost of `track()` with 3 metadata keys.
//!
//! Run: `cargo bench -p trackcore --bench track`
//! The tracker points at an address nothing listens on with a queue large
//! enough that nothing drops during a sample, so only the caller's side is measured.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use trackcore::{Config, Event, OptionValue, Tracker};

fn tracker(memory: bool) -> Tracker {
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str("bench".into())).unwrap();
    c.set("base_url", OptionValue::Str("http://127.0.0.1:9".into())).unwrap();
    c.set("queue_capacity", OptionValue::Int(50_000_000)).unwrap();
    c.set("overflow", OptionValue::Str("drop_oldest".into())).unwrap();
    c.set("memory", OptionValue::Bool(memory)).unwrap();
    c.set("drop_timeout", OptionValue::Float(0.0)).unwrap();
    c.set("max_in_flight", OptionValue::Int(1)).unwrap();
    c.set("backoff_base", OptionValue::Float(3600.0)).unwrap();
    c.set("backoff_max", OptionValue::Float(3600.0)).unwrap();
    Tracker::new(c).unwrap()
}

fn event() -> Event {
    Event::new("upgraded-plan").user_id("u-123").meta("plan", "pro").meta("seats", 5).meta("annual", true)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("track");
    g.measurement_time(Duration::from_secs(5));
    let live = tracker(false);
    g.bench_function("track_3_metadata_keys", |b| b.iter(|| live.track(event()).unwrap()));
    g.bench_function("build_and_validate_only", |b| b.iter(|| event().prepare(1_700_000_000).unwrap()));
    let built = event();
    g.bench_function("validate_only", |b| b.iter(|| built.prepare(1_700_000_000).unwrap()));
    g.bench_function("build_only", |b| b.iter(event));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
