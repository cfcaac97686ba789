//! The response gate (`/__emulator/gate*`) and the event wait
//! (`/__emulator/events/wait`), over real HTTP on 127.0.0.1.
//!
//! Every test synchronises on the emulator's own answers (a held count, a
//! released response), never on sleeps: a request sent from another thread is
//! known to have arrived once `gate/wait?held=N` says so.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use trackcore_emulator::{Emulator, GateStatus};

/// Bound of every wait that is expected to succeed; only reached if the test fails.
const LONG_MS: u64 = 10_000;

fn set_gate(emu: &Emulator, hold: bool) -> Value {
    let r = post_json(&agent(), emu, "/__emulator/gate", false, &json!({ "hold": hold }).to_string());
    assert_eq!(r.status, 200, "body: {}", r.body);
    r.json()
}

fn release(emu: &Emulator, count: usize) -> Value {
    let r = post_json(&agent(), emu, "/__emulator/gate/release", false, &json!({ "count": count }).to_string());
    assert_eq!(r.status, 200, "body: {}", r.body);
    r.json()
}

fn gate(emu: &Emulator) -> Value {
    let r = get(&agent(), emu, "/__emulator/gate");
    assert_eq!(r.status, 200, "body: {}", r.body);
    r.json()
}

/// Waits (server side) until at least `n` requests are held; fails the test if they never are.
fn wait_held(emu: &Emulator, n: usize) -> Value {
    let r = get(&agent(), emu, &format!("/__emulator/gate/wait?held={n}&timeout_ms={LONG_MS}"));
    assert_eq!(r.status, 200, "{n} requests never held: {}", r.body);
    r.json()
}

fn status(hold: bool, held: u64, released: u64, gone: u64) -> Value {
    json!({ "hold": hold, "held": held, "released": released, "gone": gone })
}

fn user_ids(emu: &Emulator) -> Vec<String> {
    emu.events().iter().filter_map(|e| e.user_id.clone()).collect()
}

// ---------------------------------------------------------------- holding and releasing

#[test]
fn holds_event_posts_unanswered_and_unprocessed_until_the_gate_opens() {
    let emu = emulator();
    assert_eq!(gate(&emu), status(false, 0, 0, 0));
    assert_eq!(set_gate(&emu, true), status(true, 0, 0, 0));
    std::thread::scope(|s| {
        let held = s.spawn(|| post_simple(&agent(), &emu, "signed-up", "u-1", 1));
        assert_eq!(wait_held(&emu, 1), status(true, 1, 0, 0));
        // Received, but Intercom's side has not seen it yet.
        assert!(emu.events().is_empty());
        assert_eq!(emu.stats().event_posts, 0);
        assert!(!held.is_finished(), "a held request gets no answer");

        assert_eq!(set_gate(&emu, false), status(false, 0, 1, 0));
        let r = held.join().expect("poster thread");
        assert_eq!(r.status, 202);
        r.assert_rate_headers();
    });
    assert_eq!(user_ids(&emu), vec!["u-1"]);
    assert_eq!(emu.stats().event_posts, 1);
    // Open again: new requests are answered at once.
    assert_eq!(post_simple(&agent(), &emu, "signed-up", "u-2", 2).status, 202);
}

#[test]
fn release_answers_the_oldest_held_requests_in_arrival_order_and_keeps_holding() {
    let emu = emulator();
    set_gate(&emu, true);
    let emu = &emu;
    std::thread::scope(|s| {
        let mut posts = Vec::new();
        for i in 1..=3 {
            posts.push(s.spawn(move || post_simple(&agent(), emu, "clicked", &format!("u-{i}"), i)));
            wait_held(emu, i as usize); // fixes the arrival order
        }
        let mut posts = posts.into_iter();

        assert_eq!(release(emu, 2), status(true, 1, 2, 0));
        assert_eq!(posts.next().map(|h| h.join().expect("poster").status), Some(202));
        assert_eq!(posts.next().map(|h| h.join().expect("poster").status), Some(202));
        assert_eq!(user_ids(emu), vec!["u-1", "u-2"], "released requests are processed before release answers");
        assert_eq!(gate(emu), status(true, 1, 2, 0), "the third is still held");

        assert_eq!(release(emu, 5), status(true, 0, 3, 0), "releasing more than are held releases what there is");
        assert_eq!(posts.next().map(|h| h.join().expect("poster").status), Some(202));
    });
    assert_eq!(user_ids(emu), vec!["u-1", "u-2", "u-3"]);
    assert_eq!(gate(emu)["hold"], true, "release never opens the gate");
}

#[test]
fn released_requests_meet_scripted_responses_in_arrival_order() {
    let emu = emulator();
    let a = agent();
    assert_eq!(post_json(&a, &emu, "/__emulator/script", false, r#"[{"status":503,"retry_after":1}]"#).status, 200);
    set_gate(&emu, true);
    std::thread::scope(|s| {
        let first = s.spawn(|| post_simple(&agent(), &emu, "paid", "u-1", 1));
        wait_held(&emu, 1);
        let second = s.spawn(|| post_simple(&agent(), &emu, "paid", "u-2", 2));
        wait_held(&emu, 2);
        set_gate(&emu, false);
        let first = first.join().expect("poster");
        first.assert_error(503, "service_unavailable");
        assert_eq!(first.header("retry-after"), Some("1"));
        assert_eq!(second.join().expect("poster").status, 202);
    });
    assert_eq!(user_ids(&emu), vec!["u-2"], "the scripted 503 did not store its event");
    assert_eq!(emu.stats().scripted_served, 1);
}

#[test]
fn released_requests_are_rate_limited_as_usual() {
    // 6 per minute = 1 per 10-second window; a burst released together meets one window.
    let emu = emulator_with(|c| c.rate_limit_per_minute = 6);
    set_gate(&emu, true);
    std::thread::scope(|s| {
        let first = s.spawn(|| post_simple(&agent(), &emu, "paid", "u-1", 1));
        wait_held(&emu, 1);
        let second = s.spawn(|| post_simple(&agent(), &emu, "paid", "u-2", 2));
        wait_held(&emu, 2);
        set_gate(&emu, false);
        assert_eq!(first.join().expect("poster").status, 202);
        let second = second.join().expect("poster");
        second.assert_error(429, "rate_limit_exceeded");
        assert_eq!(second.header_u64("x-ratelimit-remaining"), Some(0));
    });
    assert_eq!(emu.stats().rate_limited, 1);
}

#[test]
fn holds_unauthenticated_posts_too_and_refuses_them_on_release() {
    let emu = emulator();
    set_gate(&emu, true);
    std::thread::scope(|s| {
        let held = s.spawn(|| {
            try_post_event(&agent(), &emu, None, r#"{"event_name":"a","created_at":1,"user_id":"u"}"#).expect("a response")
        });
        wait_held(&emu, 1);
        release(&emu, 1);
        held.join().expect("poster").assert_error(401, "unauthorized");
    });
}

#[test]
fn gate_holds_only_event_posts() {
    let emu = emulator();
    let a = agent();
    set_gate(&emu, true);
    let r = post_json(&a, &emu, "/contacts", true, r#"{"external_id":"u-1"}"#);
    assert_eq!(r.status, 200, "POST /contacts is not held");
    assert_eq!(get_auth(&a, &emu, "/events?type=user&user_id=u-1").status, 200, "GET /events is not held");
    assert_eq!(gate(&emu), status(true, 0, 0, 0));
}

#[test]
fn gate_wait_returns_at_once_when_satisfied_and_408_after_its_timeout() {
    let emu = emulator();
    let a = agent();
    let r = get(&a, &emu, "/__emulator/gate/wait?held=0&timeout_ms=60000");
    assert_eq!(r.status, 200, "nothing to wait for");
    let r = get(&a, &emu, "/__emulator/gate/wait?held=1&timeout_ms=50");
    assert_eq!(r.status, 408);
    assert_eq!(r.json(), status(false, 0, 0, 0), "a timeout still reports the gate");
}

#[test]
fn release_with_nothing_held_does_nothing() {
    let emu = emulator();
    assert_eq!(release(&emu, 3), status(false, 0, 0, 0));
    assert_eq!(post_simple(&agent(), &emu, "a", "u-1", 1).status, 202);
}

#[test]
fn reset_reopens_the_gate_and_answers_held_requests() {
    let emu = emulator();
    set_gate(&emu, true);
    std::thread::scope(|s| {
        let held = s.spawn(|| post_simple(&agent(), &emu, "a", "u-1", 1));
        wait_held(&emu, 1);
        assert_eq!(post_json(&agent(), &emu, "/__emulator/reset", false, "").status, 200);
        assert_eq!(held.join().expect("poster").status, 202, "processed against the state being reset");
    });
    assert_eq!(gate(&emu), status(false, 0, 0, 0));
    assert!(emu.events().is_empty(), "nothing from before the reset survives it");
    assert_eq!(emu.stats().event_posts, 0);
    assert_eq!(post_simple(&agent(), &emu, "a", "u-2", 2).status, 202, "the gate is open");
}

#[test]
fn held_request_whose_client_disconnects_is_gone_and_does_not_wedge_the_gate() {
    let emu = emulator();
    set_gate(&emu, true);
    let body = r#"{"event_name":"lost","created_at":1,"user_id":"u-gone"}"#;
    let mut raw = TcpStream::connect(emu.addr()).expect("connect");
    write!(
        raw,
        "POST /events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        emu.addr(),
        body.len()
    )
    .expect("send request");
    raw.flush().expect("flush");
    wait_held(&emu, 1);
    drop(raw);

    let r = get(&agent(), &emu, &format!("/__emulator/gate/wait?gone=1&timeout_ms={LONG_MS}"));
    assert_eq!(r.status, 200, "the disconnect was never noticed: {}", r.body);
    assert_eq!(r.json(), status(true, 0, 0, 1));

    std::thread::scope(|s| {
        let next = s.spawn(|| post_simple(&agent(), &emu, "kept", "u-next", 2));
        wait_held(&emu, 1);
        assert_eq!(release(&emu, 1), status(true, 0, 1, 1), "release skips the gone request");
        assert_eq!(next.join().expect("poster").status, 202);
    });
    assert_eq!(user_ids(&emu), vec!["u-next"], "a gone request is never processed");
    assert_eq!(emu.stats().event_posts, 1);
}

// ---------------------------------------------------------------- events/wait

#[test]
fn events_wait_returns_once_enough_events_are_stored_and_408_before() {
    let emu = emulator();
    let a = agent();
    let r = get(&a, &emu, "/__emulator/events/wait?count=0");
    assert_eq!((r.status, r.json()), (200, json!({"stored": 0})));

    set_gate(&emu, true);
    std::thread::scope(|s| {
        let held = s.spawn(|| post_simple(&agent(), &emu, "a", "u-1", 1));
        wait_held(&emu, 1);
        let r = get(&a, &emu, "/__emulator/events/wait?count=1&timeout_ms=50");
        assert_eq!((r.status, r.json()), (408, json!({"stored": 0})), "a held event is not stored");

        // Whether the waiter starts before or after the release, it sees the event.
        let waiter = s.spawn(|| get(&agent(), &emu, &format!("/__emulator/events/wait?count=1&timeout_ms={LONG_MS}")));
        set_gate(&emu, false);
        let r = waiter.join().expect("waiter");
        assert_eq!((r.status, r.json()), (200, json!({"stored": 1})));
        assert_eq!(held.join().expect("poster").status, 202);
    });
}

#[test]
fn events_wait_counts_only_stored_events() {
    let emu = emulator();
    let a = agent();
    assert_eq!(post_simple(&a, &emu, "a", "u-1", 1).status, 202);
    assert_eq!(post_simple(&a, &emu, "a", "u-1", 1).status, 202, "a duplicate");
    let r = get(&a, &emu, "/__emulator/events/wait?count=2&timeout_ms=50");
    assert_eq!((r.status, r.json()), (408, json!({"stored": 1})));
}

// ---------------------------------------------------------------- malformed control requests

#[test]
fn gate_endpoints_refuse_malformed_requests_with_400() {
    let emu = emulator();
    let a = agent();
    for body in ["", "{}", r#"{"hold":"yes"}"#, r#"{"hold":true,"count":1}"#] {
        post_json(&a, &emu, "/__emulator/gate", false, body).assert_error(400, "parameter_invalid");
    }
    for body in ["{}", r#"{"count":-1}"#, r#"{"count":"all"}"#] {
        post_json(&a, &emu, "/__emulator/gate/release", false, body).assert_error(400, "parameter_invalid");
    }
    for path in [
        "/__emulator/gate/wait?hold=1",
        "/__emulator/gate/wait?held=x",
        "/__emulator/gate/wait?held=1&timeout_ms=-5",
        "/__emulator/events/wait?n=1",
        "/__emulator/events/wait?count=1.5",
    ] {
        get(&a, &emu, path).assert_error(400, "parameter_invalid");
    }
    assert_eq!(gate(&emu), status(false, 0, 0, 0));
}

// ---------------------------------------------------------------- the Rust handle

#[test]
fn handle_holds_releases_and_waits_like_the_http_endpoints() {
    let emu = emulator();
    let long = Duration::from_millis(LONG_MS);
    emu.hold();
    std::thread::scope(|s| {
        let first = s.spawn(|| post_simple(&agent(), &emu, "a", "u-1", 1));
        assert!(emu.wait_held(1, long));
        let second = s.spawn(|| post_simple(&agent(), &emu, "a", "u-2", 2));
        assert!(emu.wait_held(2, long));
        assert!(!emu.wait_events(1, Duration::from_millis(50)), "held events are not stored");

        assert_eq!(emu.release(1), 1);
        assert_eq!(first.join().expect("poster").status, 202);
        assert!(emu.wait_events(1, long));
        assert_eq!(emu.gate(), GateStatus { hold: true, held: 1, released: 1, gone: 0 });

        assert_eq!(emu.open(), 1);
        assert_eq!(second.join().expect("poster").status, 202);
    });
    assert_eq!(user_ids(&emu), vec!["u-1", "u-2"]);
    assert_eq!(emu.gate(), GateStatus { hold: false, held: 0, released: 2, gone: 0 });
    assert!(!emu.wait_held(1, Duration::from_millis(50)));
    assert_eq!(emu.release(1), 0);
}

#[test]
fn handle_wait_gate_sees_a_held_client_disconnect() {
    let emu = emulator();
    emu.hold();
    let body = r#"{"event_name":"lost","created_at":1,"user_id":"u-gone"}"#;
    let mut raw = TcpStream::connect(emu.addr()).expect("connect");
    write!(raw, "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).expect("send");
    assert!(emu.wait_held(1, Duration::from_millis(LONG_MS)));
    drop(raw);
    assert!(emu.wait_gate(Duration::from_millis(LONG_MS), |g| g.gone == 1));
    assert_eq!(emu.gate(), GateStatus { hold: true, held: 0, released: 0, gone: 1 });
    emu.reset();
    assert_eq!(emu.gate(), GateStatus::default());
}
