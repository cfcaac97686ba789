//! Instructions per track() for callgrind (load-independent). Same setup as benches/track.rs:
//! default options, live pipeline to an in-process emulator, bursts of 1,000 with untimed
//! waits for the queue to empty. Run under:
//! valgrind --tool=callgrind --toggle-collect='cg_track::cg_*' target/release/examples/cg_track [track|prebuilt|validate|build] [SPOOL_DIR]
//! With SPOOL_DIR the tracker keeps a disk spool there (the caller's cost must not change).
use std::hint::black_box;
use std::time::Duration;
use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

const N: u64 = 20_000;
const BURST: u64 = 1_000;

fn event() -> Event {
    Event::new("upgraded-plan").user_id("u-123").meta("plan", "pro").meta("seats", 5).meta("annual", true)
}

#[inline(never)]
fn cg_track_3_metadata_keys(t: &Tracker, n: u64) {
    for _ in 0..n { t.track(black_box(event())).unwrap(); }
}
#[inline(never)]
fn cg_track_ref_prebuilt(t: &Tracker, e: &Event, n: u64) {
    for _ in 0..n { t.track_ref(black_box(e)).unwrap(); }
}
#[inline(never)]
fn cg_validate_only(e: &Event, n: u64) {
    for _ in 0..n { black_box(e.prepare(1_700_000_000).unwrap()); }
}
#[inline(never)]
fn cg_build_only(n: u64) {
    for _ in 0..n { black_box(event()); }
}

fn drain(t: &Tracker) {
    while t.stats().queued > 0 { std::thread::sleep(Duration::from_millis(1)); }
}

fn main() {
    let emu = Emulator::start(EmulatorConfig { tokens: vec!["bench".into()], rate_limit_per_minute: 0, ..Default::default() }).unwrap();
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str("bench".into())).unwrap();
    c.set("base_url", OptionValue::Str(emu.base_url())).unwrap();
    c.set("drop_timeout", OptionValue::Float(0.0)).unwrap();
    if let Some(dir) = std::env::args().nth(2) {
        c.set("spool_dir", OptionValue::Str(dir)).unwrap();
    }
    let t = Tracker::new(c).unwrap();
    let which = std::env::args().nth(1).unwrap_or_default();
    let built = event();
    for _ in 0..N / BURST {
        drain(&t);
        match which.as_str() {
            "prebuilt" => cg_track_ref_prebuilt(&t, &built, BURST),
            "validate" => cg_validate_only(&built, BURST),
            "build" => cg_build_only(BURST),
            _ => cg_track_3_metadata_keys(&t, BURST),
        }
    }
    drain(&t);
    let s = t.stats();
    eprintln!("tracked {} deduplicated {} delivered {} queued {} dropped {}", s.tracked, s.deduplicated, s.delivered, s.queued, s.dropped);
}
