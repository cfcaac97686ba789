//! One tracking process of the fleet-mode test (`tests/fleet/mixed.py`); the
//! Python, Node and JVM workers beside it speak the same protocol.
//!
//! Environment: `FLEET_EMULATOR` (base URL), `FLEET_TOKEN`, `FLEET_RATE`
//! (rate_limit_per_minute), `FLEET_EVENTS`, `FLEET_NAME` (user id prefix),
//! `FLEET_REDIS` (shared_budget; empty: none), `FLEET_PREFIX`. Prints `ready`
//! once the tracker is up, starts tracking when a line arrives on stdin, and
//! after a flush prints its stats as one JSON line.

use std::io::{BufRead, Write};
use std::time::Duration;

use trackcore::{Config, Event, OptionValue, Tracker};

fn main() {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let mut c = Config::default();
    let mut set = |k: &str, v: OptionValue| c.set(k, v).unwrap_or_else(|e| panic!("{e}"));
    set("access_token", OptionValue::Str(env("FLEET_TOKEN")));
    set("base_url", OptionValue::Str(env("FLEET_EMULATOR")));
    set("rate_limit_per_minute", OptionValue::Int(env("FLEET_RATE").parse().expect("FLEET_RATE")));
    set("max_in_flight", OptionValue::Int(16));
    if !env("FLEET_REDIS").is_empty() {
        set("shared_budget", OptionValue::Str(env("FLEET_REDIS")));
        set("shared_budget_prefix", OptionValue::Str(env("FLEET_PREFIX")));
    }
    let tracker = Tracker::new(c).expect("tracker");
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let n: usize = env("FLEET_EVENTS").parse().expect("FLEET_EVENTS");
    let who = env("FLEET_NAME");
    for i in 0..n {
        tracker.track(Event::new("fleet-run").user_id(format!("{who}-{i}")).meta("i", i as i64)).expect("valid event");
    }
    let flushed = tracker.flush(Duration::from_secs(120));
    let mut stats = serde_json::Map::new();
    stats.insert("flushed".into(), flushed.into());
    for (k, v) in tracker.stats().fields() {
        stats.insert(k.into(), v.into());
    }
    writeln!(out, "{}", serde_json::Value::Object(stats)).unwrap();
}
