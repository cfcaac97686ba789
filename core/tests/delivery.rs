//! Delivery rules, over real HTTP against the in-process Intercom emulator.

mod common;

use std::time::{Duration, Instant};

use common::*;
use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::{ConfigUpdate, EmulatorConfig, ScriptedResponse};

#[test]
fn delivers_events_with_intercom_headers_and_exact_body() {
    let emu = emulator();
    let (t, reports) = tracker(&emu, &[]);
    for i in 0..20 {
        t.track(ev(i).created_at(1_700_000_000 + i as i64)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(10)), "{:?}", t.stats());
    let stored = emu.events();
    assert_eq!(stored.len(), 20);
    let first = stored.iter().find(|e| e.user_id.as_deref() == Some("u-0")).unwrap();
    assert_eq!(
        serde_json::Value::Object(first.body.clone()),
        serde_json::json!({"event_name": "upgraded-plan", "created_at": 1_700_000_000, "user_id": "u-0",
                           "metadata": {"plan": "pro", "seats": 0}})
    );
    assert_eq!(first.headers["intercom-version"], "2.14");
    assert_eq!(first.headers["content-type"], "application/json");
    assert!(first.headers["user-agent"].starts_with("trackcore/"), "{:?}", first.headers);
    let s = t.stats();
    assert_eq!((s.tracked, s.delivered, s.failed, s.dropped, s.queued, s.in_flight), (20, 20, 0, 0, 0, 0));
    assert!(codes(&reports).is_empty());
}

#[test]
fn retries_5xx_and_dropped_connections_then_delivers_once() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(503), ScriptedResponse::dropped(), ScriptedResponse::status(500)]);
    let (t, reports) = tracker(&emu, &[("max_in_flight", OptionValue::Int(1))]);
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.retried, s.failed), (1, 3, 0), "{s:?}");
    assert_eq!(emu.events().len(), 1);
    assert_eq!(emu.stats().event_posts, 4);
    assert!(codes(&reports).is_empty());
}

#[test]
fn retries_429_after_rate_limit_reset() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::rate_limited(2)]);
    let (t, _) = tracker(&emu, &[("max_in_flight", OptionValue::Int(1))]);
    let start = Instant::now();
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(15)));
    let waited = start.elapsed();
    let s = t.stats();
    assert_eq!((s.delivered, s.rate_limited, s.retried), (1, 1, 1), "{s:?}");
    // The reset is 2 s ahead (whole seconds, so at least ~1 s from now): backoff_base (50 ms) was not used.
    assert!(waited >= Duration::from_millis(900), "retried after {waited:?}, before the reset");
}

#[test]
fn waits_for_retry_after() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(503).with_retry_after(1)]);
    let (t, _) = tracker(&emu, &[]);
    let start = Instant::now();
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    assert!(start.elapsed() >= Duration::from_millis(950), "{:?}", start.elapsed());
    assert_eq!(t.stats().delivered, 1);
}

#[test]
fn gives_up_after_max_retries_and_reports_it() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(503); 3]);
    let (t, reports) = tracker(&emu, &[("max_retries", OptionValue::Int(2))]);
    t.track(ev(7)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.failed_retries_exhausted, s.retried), (0, 1, 2), "{s:?}");
    let r = reports.lock().unwrap();
    // Three failures in a row: first a notice that delivery is stalled, then the final outcome.
    assert_eq!(r.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), vec!["delivery_stalled", "retries_exhausted"]);
    assert_eq!(r[1].2["user_id"], "u-7", "the callback gets the event");
    assert_accounted(&s);
}

#[test]
fn does_not_retry_400_and_reports_intercoms_code() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(400).with_error("parameter_invalid", "bad thing")]);
    let (t, reports) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    t.track(ev(2)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.failed_rejected, s.retried), (1, 1, 0), "{s:?}");
    assert_eq!(emu.stats().event_posts, 2, "no retry of the 400");
    let r = reports.lock().unwrap();
    assert_eq!(r[0].0, "rejected");
    assert!(r[0].1.contains("400") && r[0].1.contains("parameter_invalid") && r[0].1.contains("bad thing"), "{}", r[0].1);
}

#[test]
fn does_not_retry_404_for_unknown_users_under_unknown_contact_report() {
    let emu = emulator_with(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        require_known_users: true,
        known_user_ids: vec!["u-1".into()],
        ..Default::default()
    });
    let (t, reports) = tracker(&emu, &[("unknown_contact", OptionValue::Str("report".into()))]);
    t.track(ev(1)).unwrap();
    t.track(ev(2)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.failed_rejected, s.retried), (1, 1, 0), "{s:?}");
    let r = reports.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].1.contains("404") && r[0].1.contains("not_found"), "{}", r[0].1);
    assert_eq!(r[0].0, "contact_not_found");
    assert_eq!(r[0].2["user_id"], "u-2");
}

#[test]
fn pauses_on_401_keeps_events_and_resumes_when_the_token_works() {
    let emu = emulator_with(EmulatorConfig { tokens: vec!["some-other-token".into()], ..Default::default() });
    let (t, reports) = tracker(&emu, &[("auth_probe_interval", OptionValue::Float(0.3))]);
    for i in 0..10 {
        t.track(ev(i)).unwrap();
    }
    assert!(!t.flush(Duration::from_millis(800)), "nothing can be delivered while the token is refused");
    // A flush that returns false does not wait for the reporter: wait for the report.
    eventually("the 401 reported", Duration::from_secs(10), || !codes(&reports).is_empty());
    let s = t.stats();
    assert!(s.auth_paused, "{s:?}");
    assert_eq!((s.delivered, s.failed, s.dropped), (0, 0, 0), "events are kept: {s:?}");
    assert_eq!(codes(&reports), vec!["unauthorized"], "reported once per pause");
    let posts_while_paused = emu.stats().event_posts;
    assert!(posts_while_paused <= 10, "probes, not a flood: {posts_while_paused}");
    assert!(!reports.lock().unwrap()[0].1.contains(TOKEN), "the token never appears in errors");

    emu.update_config(ConfigUpdate { tokens: Some(vec![TOKEN.into()]), ..Default::default() });
    assert!(t.flush(Duration::from_secs(10)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!(s.delivered, 10);
    assert!(!s.auth_paused);
    assert_eq!(emu.events().len(), 10);
}

#[test]
fn paces_to_the_rate_limit_without_a_single_429() {
    // 3,000 a minute is 500 per 10-second window: 700 events must span two windows.
    let emu = emulator_with(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 3000,
        ..Default::default()
    });
    let (t, _) = tracker(&emu, &[("rate_limit_per_minute", OptionValue::Int(3000))]);
    for i in 0..700 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(40)), "{:?}", t.stats());
    let es = emu.stats();
    assert_eq!(es.rate_limited, 0, "{es:?}");
    assert!(es.max_requests_in_window <= 500, "{}", es.max_requests_in_window);
    let s = t.stats();
    assert_eq!((s.delivered, s.rate_limited), (700, 0));
    assert!(s.rate_limit_wait_ms > 0, "pacing held events back: {s:?}");
}

#[test]
fn obeys_a_smaller_limit_announced_in_headers() {
    // The server allows 100 per window while the tracker believes 10,000 a minute.
    let emu = emulator_with(EmulatorConfig { tokens: vec![TOKEN.into()], rate_limit_per_minute: 600, ..Default::default() });
    let (t, _) = tracker(&emu, &[]);
    for i in 0..150 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(40)), "{:?}", t.stats());
    assert_eq!(t.stats().delivered, 150);
    // The first burst may meet a 429 before the headers are seen; after that pacing holds.
    assert!(emu.stats().rate_limited <= 40, "{:?}", emu.stats());
}

#[test]
fn flush_reports_a_timeout_and_then_completes() {
    let emu = emulator();
    emu.hold();
    let (t, _) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)));
    let start = Instant::now();
    assert!(!t.flush(Duration::from_millis(150)));
    assert!(start.elapsed() < Duration::from_millis(600), "flush honoured its bound: {:?}", start.elapsed());
    emu.open();
    assert!(t.flush(Duration::from_secs(10)));
    assert_eq!(t.stats().delivered, 1);
}

#[test]
fn flush_waits_for_the_events_tracked_before_it() {
    let emu = emulator();
    emu.hold();
    let (t, _) = tracker(&emu, &[("max_in_flight", OptionValue::Int(4))]);
    t.track(ev(1)).unwrap();
    let opener = std::thread::scope(|s| {
        let h = s.spawn(|| emu.wait_held(1, Duration::from_secs(10)) && emu.open() == 1);
        assert!(t.flush(Duration::from_secs(10)));
        h.join().unwrap()
    });
    assert!(opener);
    assert_eq!(t.stats().delivered, 1, "the event tracked before flush is settled when flush returns");
}

#[test]
fn shutdown_is_bounded_and_reports_what_it_could_not_deliver() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(&emu, &[("max_in_flight", OptionValue::Int(1))]);
    for i in 0..5 {
        t.track(ev(i)).unwrap();
    }
    assert!(emu.wait_held(1, Duration::from_secs(10)), "the first request reached the emulator");
    // The last fifth of the bound (200 ms) is the reports' time to reach the
    // callback: room for a loaded machine's scheduling, still a tight bound.
    let start = Instant::now();
    assert!(!t.shutdown(Duration::from_secs(1)));
    assert!(start.elapsed() < Duration::from_millis(1500), "shutdown took {:?}", start.elapsed());
    let s = t.stats();
    assert_eq!(s.dropped_shutdown, 5, "{s:?}");
    assert_eq!(codes(&reports), vec!["undelivered_at_shutdown"; 5]);
    assert_eq!(t.track(ev(9)).unwrap_err().code(), "closed");
    assert_accounted(&t.stats());
    emu.open();
}

#[test]
fn drop_shuts_down_within_its_bound() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(&emu, &[("drop_timeout", OptionValue::Float(1.0))]);
    t.track(ev(1)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)));
    let start = Instant::now();
    drop(t);
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());
    assert_eq!(codes(&reports), vec!["undelivered_at_shutdown"]);
    emu.open();
}

#[test]
fn shutdown_delivers_everything_when_time_allows() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[]);
    for i in 0..200 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.shutdown(Duration::from_secs(10)));
    assert_eq!(emu.events().len(), 200);
}

#[test]
fn drop_newest_counts_and_reports_every_dropped_event() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(&emu, &[("queue_capacity", OptionValue::Int(5)), ("max_in_flight", OptionValue::Int(1))]);
    t.track(ev(0)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)), "event 0 is in flight");
    for i in 1..50 {
        t.track(ev(i)).unwrap();
    }
    let s = t.stats();
    assert_eq!((s.queued, s.in_flight, s.dropped_queue_full), (5, 1, 44), "{s:?}");
    emu.open();
    assert!(t.flush(Duration::from_secs(30)));
    let s = t.stats();
    assert_eq!((s.delivered, s.dropped_queue_full), (6, 44), "{s:?}");
    assert_eq!(codes(&reports), vec!["queue_full"; 44]);
    // The newest were dropped: 0 to 5 arrived.
    let mut ids: Vec<String> = emu.events().iter().filter_map(|e| e.user_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, (0..6).map(|i| format!("u-{i}")).collect::<Vec<_>>());
    assert_accounted(&s);
}

#[test]
fn drop_oldest_keeps_the_newest_events() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(
        &emu,
        &[("queue_capacity", OptionValue::Int(5)), ("max_in_flight", OptionValue::Int(1)), ("overflow", OptionValue::Str("drop_oldest".into()))],
    );
    t.track(ev(0)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)), "event 0 is in flight");
    for i in 1..50 {
        t.track(ev(i)).unwrap();
    }
    emu.open();
    assert!(t.flush(Duration::from_secs(30)));
    let s = t.stats();
    assert_eq!((s.delivered, s.dropped_oldest), (6, 44), "{s:?}");
    assert_eq!(codes(&reports), vec!["queue_full"; 44]);
    let mut ids: Vec<String> = emu.events().iter().filter_map(|e| e.user_id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = [0, 45, 46, 47, 48, 49].iter().map(|i| format!("u-{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "the one in flight and the newest five");
    assert_accounted(&s);
}

#[test]
fn block_waits_for_room_and_loses_nothing() {
    let emu = emulator();
    let (t, _) = tracker(
        &emu,
        &[
            ("queue_capacity", OptionValue::Int(2)),
            ("max_in_flight", OptionValue::Int(1)),
            ("overflow", OptionValue::Str("block".into())),
            ("block_timeout", OptionValue::Float(30.0)),
        ],
    );
    for i in 0..300 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(30)));
    let s = t.stats();
    assert_eq!((s.delivered, s.dropped), (300, 0), "{s:?}");
    assert_accounted(&s);
}

#[test]
fn block_drops_after_its_timeout() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(
        &emu,
        &[
            ("queue_capacity", OptionValue::Int(1)),
            ("max_in_flight", OptionValue::Int(1)),
            ("overflow", OptionValue::Str("block".into())),
            ("block_timeout", OptionValue::Float(0.05)),
        ],
    );
    t.track(ev(0)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)), "event 0 is in flight");
    let start = Instant::now();
    for i in 1..6 {
        t.track(ev(i)).unwrap();
    }
    // One fits the queue; each of the other four waits its 50 ms, then is dropped.
    assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());
    assert_eq!(t.stats().dropped_queue_full, 4, "{:?}", t.stats());
    emu.open();
    assert!(t.flush(Duration::from_secs(10)));
    assert_eq!(codes(&reports), vec!["queue_full"; 4]);
    assert_eq!(t.stats().delivered, 2);
}

#[test]
fn deduplicates_copies_before_they_cost_rate_limit() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[]);
    for _ in 0..3 {
        t.track(ev(1).created_at(1_700_000_000)).unwrap();
    }
    t.track(ev(1).created_at(1_700_000_001)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.deduplicated), (2, 2), "{s:?}");
    assert_eq!(emu.stats().event_posts, 2);
    assert_accounted(&s);
}

#[test]
fn sends_copies_when_dedupe_is_off_and_intercom_drops_them() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[("dedupe", OptionValue::Bool(false)), ("max_in_flight", OptionValue::Int(1))]);
    for _ in 0..3 {
        t.track(ev(1).created_at(1_700_000_000)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(10)));
    assert_eq!(t.stats().delivered, 3);
    let es = emu.stats();
    assert_eq!((es.event_posts, es.stored, es.duplicates), (3, 1, 2));
}

#[test]
fn memory_mode_records_and_sends_nothing() {
    let emu = emulator();
    let mut c = Config::default();
    c.set("memory", OptionValue::Bool(true)).unwrap();
    c.set("base_url", OptionValue::Str(emu.base_url())).unwrap();
    let t = Tracker::new(c).expect("memory mode needs no token");
    t.track(ev(1).created_at(1_700_000_000)).unwrap();
    assert_eq!(t.track(Event::new("x")).unwrap_err().code(), "missing_identity");
    assert!(t.flush(Duration::from_secs(1)));
    assert_eq!(
        t.recorded(),
        vec![serde_json::json!({"event_name": "upgraded-plan", "created_at": 1_700_000_000, "user_id": "u-1",
                                "metadata": {"plan": "pro", "seats": 1}})]
    );
    t.clear_recorded();
    assert!(t.recorded().is_empty());
    assert_eq!(emu.stats().requests_total, 0);
    assert_eq!(t.stats().tracked, 1);
}

#[test]
fn keeps_pace_with_slow_responses_using_several_requests_in_flight() {
    let emu = emulator();
    emu.set_latency(Duration::from_millis(150), Duration::ZERO);
    let (t, _) = tracker(&emu, &[("max_in_flight", OptionValue::Int(32))]);
    let start = Instant::now();
    for i in 0..320 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(30)));
    // One at a time this would take 48 s; 32 in flight take ~1.5 s plus pacing.
    assert!(start.elapsed() < Duration::from_secs(12), "{:?}", start.elapsed());
    assert_eq!(emu.events().len(), 320);
}

#[test]
fn missing_token_is_a_typed_error_and_the_env_var_is_a_fallback() {
    let mut c = Config::default();
    c.set("base_url", OptionValue::Str("http://127.0.0.1:9".into())).unwrap();
    // Tests in this file never set INTERCOM_ACCESS_TOKEN.
    if std::env::var("INTERCOM_ACCESS_TOKEN").is_err() {
        assert_eq!(Tracker::new(c.clone()).err().map(|e| e.code()), Some("missing_access_token"));
    }
    c.access_token = Some(trackcore::Secret::new("x"));
    assert!(Tracker::new(c).is_ok());
}

#[test]
fn an_event_refused_with_404_can_be_tracked_again_once_the_contact_exists() {
    let emu = emulator_with(EmulatorConfig { tokens: vec![TOKEN.into()], require_known_users: true, ..Default::default() });
    let (t, reports) = tracker(&emu, &[("unknown_contact", OptionValue::Str("report".into()))]);
    let signup = || ev(1).created_at(1_700_000_000);
    t.track(signup()).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    assert_eq!(codes(&reports), vec!["contact_not_found"]);
    emu.add_contact(Some("u-1"), None).unwrap();
    t.track(signup()).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.deduplicated, s.failed_rejected), (1, 0, 1), "{s:?}");
    assert_eq!(emu.events().len(), 1);
}

#[test]
fn a_redirect_is_a_refusal_not_a_delivery() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(302)]);
    let (t, reports) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!((s.delivered, s.failed_rejected, s.retried), (0, 1, 0), "{s:?}");
    assert_eq!(codes(&reports), vec!["rejected"]);
}

#[test]
fn shutdown_reports_every_event_it_gives_up_even_in_bulk() {
    let emu = emulator_with(EmulatorConfig { tokens: vec!["not-ours".into()], ..Default::default() });
    let (t, reports) = tracker(&emu, &[]);
    for i in 0..15_000 {
        t.track(ev(i)).unwrap();
    }
    // The token is refused: nothing can be delivered before the deadline, so
    // the shutdown gives up at once and keeps its bound for the reports.
    let start = Instant::now();
    assert!(!t.shutdown(Duration::from_secs(5)));
    assert!(start.elapsed() < Duration::from_secs(6), "{:?}", start.elapsed());
    let s = t.stats();
    assert_eq!(s.dropped_shutdown, 15_000, "{s:?}");
    let given_up = || codes(&reports).iter().filter(|c| *c == "undelivered_at_shutdown").count() as u64;
    // Every report reached the callback before shutdown returned or is counted
    // as not delivered to it; none reaches it afterwards.
    let heard = given_up();
    assert!(heard > 0);
    assert_eq!(heard + s.reports_dropped, 15_000, "{s:?}");
    let t2 = tracker(&emu, &[]).0;
    t2.track(ev(1)).unwrap();
    t2.flush(Duration::from_millis(500)); // time for a stray callback, if there were one
    assert_eq!(given_up(), heard, "no callback runs after shutdown returns");
    assert_accounted(&t.stats());
}

#[test]
fn flush_after_shutdown_answers_at_once_and_huge_timeouts_do_not_panic() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::MAX));
    assert!(t.shutdown(Duration::MAX));
    let start = Instant::now();
    assert!(t.flush(Duration::from_secs(5)), "nothing is left");
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[test]
fn a_burst_of_100_000_events_with_default_settings_loses_nothing() {
    // peers.md: segment-analytics-python drops ~52,000 of such a burst, posthog ~87,000.
    let emu = emulator();
    let (t, reports) = tracker(&emu, &[]);
    for i in 0..100_000 {
        t.track(ev(i)).unwrap();
    }
    let s = t.stats();
    assert_eq!((s.tracked, s.dropped), (100_000, 0), "{s:?}");
    assert!(codes(&reports).is_empty());
    // Delivering them all takes 10 minutes at Intercom's default limit; a few arrive meanwhile.
    assert!(emu.wait_events(50, Duration::from_secs(20)));
    assert_accounted(&t.stats());
}


#[test]
fn a_server_answer_that_echoes_the_token_reaches_the_callback_scrubbed() {
    let emu = emulator();
    let echo = format!("bad request: Authorization: Bearer {TOKEN}");
    emu.script(vec![ScriptedResponse::status(400).with_error("parameter_invalid", &echo)]);
    let (t, reports) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)));
    let r = reports.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert!(!r[0].1.contains(TOKEN), "{}", r[0].1);
    assert!(r[0].1.contains("Bearer <redacted>"), "{}", r[0].1);
}

#[test]
fn shutdown_keeps_its_bound_with_200_000_events_pending() {
    let emu = emulator();
    emu.hold();
    let (t, _) = tracker(&emu, &[]);
    for i in 0..200_000 {
        t.track(ev(i)).unwrap();
    }
    assert!(emu.wait_held(1, Duration::from_secs(10)));
    // Waiting for 200,000 events would take seconds: the zero bound's slack is
    // scheduling noise on a loaded machine, far below that.
    for (timeout, bound) in [(Duration::ZERO, Duration::from_secs(1)), (Duration::from_secs(2), Duration::from_millis(2300))] {
        let start = Instant::now();
        t.shutdown(timeout);
        assert!(start.elapsed() < bound, "shutdown({timeout:?}) took {:?}", start.elapsed());
    }
    // Counted once the dispatcher has stopped (giving up 200,000 events in a
    // debug build can outlast the bound): a third shutdown waits for that.
    t.shutdown(Duration::from_secs(60));
    let s = t.stats();
    assert_eq!(s.dropped_shutdown, 200_000, "{s:?}");
    assert_accounted(&s);
    emu.open();
}
