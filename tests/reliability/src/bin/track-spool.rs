//! A tracking process for the reliability scenarios: tracks events
//! `from..from+count` with a spool, prints `synced N` each time the first N
//! are on disk (`Tracker::sync`), then optionally flushes and prints its stats
//! and peak memory as JSON. The scenarios kill it with SIGKILL mid-stream,
//! or read its peak memory during an outage.
//!
//! track-spool BASE_URL SPOOL_DIR FROM COUNT BATCH [flush|shutdown|hang]

use std::io::Write;
use std::time::{Duration, Instant};

use trackcore::{Config, OptionValue, Tracker};
use trackcore_reliability::{event, peak_rss_kib};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: track-spool BASE_URL SPOOL_DIR FROM COUNT BATCH [flush|shutdown|hang]");
        std::process::exit(2);
    }
    let (base_url, dir) = (&args[1], &args[2]);
    let num = |i: usize| args[i].parse::<u64>().expect("a number");
    let (from, count, batch) = (num(3), num(4), num(5).max(1));
    let end = args.get(6).map(String::as_str).unwrap_or("hang");
    let mut c = Config::default();
    for (k, v) in [
        ("access_token", OptionValue::Str(std::env::var("TOKEN").unwrap_or_else(|_| "test-token".into()))),
        ("base_url", OptionValue::Str(base_url.clone())),
        ("spool_dir", OptionValue::Str(dir.clone())),
        ("rate_limiter", OptionValue::Str("none".into())),
        ("backoff_base", OptionValue::Float(0.05)),
        ("backoff_max", OptionValue::Float(0.5)),
    ] {
        c.set(k, v).expect("valid option");
    }
    let t = Tracker::new(c).expect("tracker");
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    for i in from..from + count {
        t.track(event(i)).expect("valid event");
        if (i - from + 1) % batch == 0 || i + 1 == from + count {
            assert!(t.sync(Duration::from_secs(30)), "sync");
            writeln!(out, "synced {}", i - from + 1).unwrap();
            out.flush().unwrap();
        }
    }
    let tracked_in = start.elapsed();
    let settled = match end {
        "flush" => t.flush(Duration::from_secs(600)),
        "shutdown" => t.shutdown(Duration::from_millis(500)),
        _ => loop {
            // Wait to be killed.
            std::thread::park();
        },
    };
    let s = t.stats();
    writeln!(
        out,
        "{}",
        serde_json::json!({
            "settled": settled, "tracked": s.tracked, "recovered": s.recovered, "delivered": s.delivered,
            "persisted": s.persisted, "dropped": s.dropped, "spooled": s.spooled, "spool_bytes": s.spool_bytes,
            "peak_rss_kib": peak_rss_kib(), "track_secs": tracked_in.as_secs_f64(),
        })
    )
    .unwrap();
}
