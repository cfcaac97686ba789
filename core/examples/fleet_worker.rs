//! One tracking process of the fleet-mode tests (`core/tests/fleet.rs` and
//! `tests/fleet/mixed.py`); the Python, Node and JVM workers beside it speak
//! the same protocol.
//!
//! Environment: `FLEET_EMULATOR` (base URL), `FLEET_TOKEN`, `FLEET_RATE`
//! (rate_limit_per_minute), `FLEET_REDIS` (shared_budget; empty: none),
//! `FLEET_PREFIX`, optional `FLEET_BACKOFF_BASE`/`FLEET_BACKOFF_MAX` (seconds),
//! and `FLEET_WORKER`: `events` (default; `FLEET_EVENTS` events with user ids
//! `FLEET_NAME-i`) or `names` (one event of each name `name-FLEET_FROM` ..
//! `name-FLEET_TO`, recording which `track()` refused). Prints `ready` once the
//! tracker is up, starts when a line arrives on stdin, and after a flush prints
//! its stats and what its error callback heard as one JSON line.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trackcore::{Config, Error, Event, OptionValue, Tracker};

fn main() {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let mut c = Config::default();
    let mut set = |k: &str, v: OptionValue| c.set(k, v).unwrap_or_else(|e| panic!("{e}"));
    set("access_token", OptionValue::Str(env("FLEET_TOKEN")));
    set("base_url", OptionValue::Str(env("FLEET_EMULATOR")));
    set("rate_limit_per_minute", OptionValue::Int(env("FLEET_RATE").parse().expect("FLEET_RATE")));
    set("max_in_flight", OptionValue::Int(16));
    for (var, option) in [("FLEET_BACKOFF_BASE", "backoff_base"), ("FLEET_BACKOFF_MAX", "backoff_max")] {
        if let Ok(v) = env(var).parse::<f64>() {
            set(option, OptionValue::Float(v));
        }
    }
    if !env("FLEET_REDIS").is_empty() {
        set("shared_budget", OptionValue::Str(env("FLEET_REDIS")));
        set("shared_budget_prefix", OptionValue::Str(env("FLEET_PREFIX")));
    }
    let reports: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = reports.clone();
    c.on_error = Some(Arc::new(move |ev, e| {
        let report = serde_json::json!({"code": e.code(), "name": ev.to_json()["event_name"], "message": e.to_string()});
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(report);
    }));
    let tracker = Tracker::new(c).expect("tracker");
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let mut result = serde_json::Map::new();
    match env("FLEET_WORKER").as_str() {
        "" | "events" => {
            let n: usize = env("FLEET_EVENTS").parse().expect("FLEET_EVENTS");
            let who = env("FLEET_NAME");
            for i in 0..n {
                tracker.track(Event::new("fleet-run").user_id(format!("{who}-{i}")).meta("i", i as i64)).expect("valid event");
            }
        }
        "names" => {
            let from: usize = env("FLEET_FROM").parse().expect("FLEET_FROM");
            let to: usize = env("FLEET_TO").parse().expect("FLEET_TO");
            let mut refused = Vec::new();
            for i in from..to {
                match tracker.track(Event::new(format!("name-{i}")).user_id("u-1")) {
                    Ok(()) => {}
                    Err(Error::EventNameLimitReached { name, .. }) => refused.push(serde_json::Value::from(name)),
                    Err(e) => panic!("{e}"),
                }
            }
            result.insert("refused_at_track".into(), refused.into());
        }
        other => panic!("unknown FLEET_WORKER mode {other}"),
    }
    let flushed = tracker.flush(Duration::from_secs(120));
    result.insert("flushed".into(), flushed.into());
    for (k, v) in tracker.stats().fields() {
        result.insert(k.into(), v.into());
    }
    let reported = std::mem::take(&mut *reports.lock().unwrap_or_else(|p| p.into_inner()));
    result.insert("reports".into(), reported.into());
    writeln!(out, "{}", serde_json::Value::Object(result)).unwrap();
}
