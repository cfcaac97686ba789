//! A tight loop of `track()` for profilers (callgrind, perf).
//! `cargo build --release -p trackcore --example profile_track && valgrind --tool=callgrind target/release/examples/profile_track`
use trackcore::{Config, Event, OptionValue, Tracker};

fn main() {
    let mut c = Config::default();
    c.set("memory", OptionValue::Bool(std::env::args().any(|a| a == "memory"))).unwrap();
    c.set("access_token", OptionValue::Str("profile".into())).unwrap();
    c.set("base_url", OptionValue::Str("http://127.0.0.1:9".into())).unwrap();
    c.set("queue_capacity", OptionValue::Int(1_000_000)).unwrap();
    c.set("backoff_base", OptionValue::Float(3600.0)).unwrap();
    c.set("backoff_max", OptionValue::Float(3600.0)).unwrap();
    c.set("drop_timeout", OptionValue::Float(0.0)).unwrap();
    let t = Tracker::new(c).unwrap();
    for _ in 0..200_000 {
        let e = Event::new("upgraded-plan").user_id("u-123").meta("plan", "pro").meta("seats", 5).meta("annual", true);
        t.track(e).unwrap();
    }
}
