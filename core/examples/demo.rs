//! Track a few events through the Rust core.
//!
//! `TRACKCORE_BASE_URL=http://127.0.0.1:8089 INTERCOM_ACCESS_TOKEN=test-token cargo run -p trackcore --example demo`
//! (`scripts/demo.sh` starts the emulator and runs this for you.)

use std::time::Duration;

use trackcore::{Config, Event, OptionValue, Tracker, Value};

fn main() -> Result<(), trackcore::Error> {
    let mut config = Config::default();
    if let Ok(url) = std::env::var("TRACKCORE_BASE_URL") {
        config.set("base_url", OptionValue::Str(url))?;
    }
    config.on_error = Some(std::sync::Arc::new(|event, error| {
        eprintln!("rust: not delivered [{}] {}: {}", error.code(), event.event_name(), error)
    }));
    let tracker = Tracker::new(config)?; // token from INTERCOM_ACCESS_TOKEN

    tracker.track(
        Event::new("upgraded-plan")
            .user_id("rust-user-1")
            .meta("plan", "pro")
            .meta("seats", 5)
            .meta("annual", true)
            .meta("price", Value::Money { amount: 34_999, currency: "eur".into() })
            .meta("renewal_date", Value::Date(1_767_225_600)),
    )?;
    tracker.track(
        Event::new("read-article")
            .email("reader@example.com")
            .meta("article", Value::RichLink { url: "https://example.org/a.html".into(), value: "Getting started".into() }),
    )?;
    // Invalid input is a typed error at once, naming the field and the rule.
    if let Err(e) = tracker.track(Event::new("invited-teammate").user_id("rust-user-1").meta("invite", Value::Date(1))) {
        println!("rust: rejected at track(): [{}] {}", e.code(), e);
        println!("      (deliberate: Intercom reads a date only from a key ending in _date, so track() refuses it on the caller's thread and nothing is sent)");
    }
    let delivered = tracker.flush(Duration::from_secs(10));
    let s = tracker.stats();
    println!("rust: tracked={} delivered={} failed={} dropped={} (flush complete: {delivered})", s.tracked, s.delivered, s.failed, s.dropped);
    tracker.shutdown(Duration::from_secs(5));
    Ok(())
}
