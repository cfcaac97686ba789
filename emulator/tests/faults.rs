//! Fault injection: latency, random 5xx, dropped connections, scripted responses.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use trackcore_emulator::ScriptedResponse;

#[test]
fn delays_responses_by_configured_latency() {
    let emu = emulator_with(|c| c.latency_ms = 300);
    let a = agent();
    let t = Instant::now();
    let r = post_simple(&a, &emu, "a", "u", 1);
    assert_eq!(r.status, 202);
    assert!(t.elapsed() >= Duration::from_millis(300), "took {:?}", t.elapsed());
    emu.set_latency(Duration::from_millis(100), Duration::from_millis(100));
    let t = Instant::now();
    post_simple(&a, &emu, "a", "u", 2);
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn slow_response_does_not_block_other_requests() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(202).with_delay_ms(4000)]);
    let url_emu = &emu;
    std::thread::scope(|s| {
        let slow = s.spawn(move || post_simple(&agent(), url_emu, "slow", "u", 1));
        // Wait until the slow request has taken the scripted response.
        let deadline = Instant::now() + Duration::from_secs(10);
        while emu.stats().script_pending > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let fast = post_simple(&agent(), &emu, "fast", "u", 2);
        assert_eq!(fast.status, 202);
        assert!(!slow.is_finished(), "the fast request finished while the slow one still waits");
        assert_eq!(slow.join().expect("slow thread").status, 202);
    });
}

#[test]
fn injects_5xx_error_list_at_error_rate_without_storing() {
    let emu = emulator_with(|c| c.error_rate = 1.0);
    let a = agent();
    for i in 0..10 {
        let r = post_simple(&a, &emu, "a", "u", i);
        assert!(r.status == 500 || r.status == 503, "status {}", r.status);
        let code = if r.status == 500 { "server_error" } else { "service_unavailable" };
        r.assert_error(r.status, code);
        r.assert_rate_headers();
    }
    assert!(emu.events().is_empty());
    assert_eq!(emu.stats().injected_errors, 10);
}

#[test]
fn mixes_errors_and_successes_at_partial_error_rate() {
    let emu = emulator_with(|c| {
        c.error_rate = 0.5;
        c.seed = Some(7);
    });
    let a = agent();
    let statuses: Vec<u16> = (0..40).map(|i| post_simple(&a, &emu, "a", "u", i).status).collect();
    let ok = statuses.iter().filter(|s| **s == 202).count();
    assert!(ok > 0 && ok < 40, "{statuses:?}");
    assert_eq!(emu.events().len(), ok);
}

#[test]
fn drops_connections_at_drop_rate_without_storing() {
    let emu = emulator_with(|c| c.drop_rate = 1.0);
    let a = agent();
    for i in 0..3 {
        let r = try_post_event(&a, &emu, Some(TOKEN), &json!({"event_name":"a","created_at":i,"user_id":"u"}).to_string());
        assert!(r.is_err(), "expected a transport error, got {r:?}");
    }
    assert!(emu.events().is_empty());
    assert_eq!(emu.stats().dropped_connections, 3);
    // Once the fault is off the same agent works again.
    emu.set_faults(0.0, 0.0);
    assert_eq!(post_simple(&a, &emu, "a", "u", 9).status, 202);
}

#[test]
fn serves_scripted_responses_in_order_then_normal_handling() {
    let emu = emulator();
    let a = agent();
    let script = json!([
        {"status":503},{"status":503},{"status":503},
        {"status":429,"reset_in_secs":2},
        {"status":400,"code":"parameter_invalid","message":"scripted bad"},
        {"drop":true},
        {"status":202,"retry_after":1}
    ]);
    let r = post_json(&a, &emu, "/__emulator/script", false, &script.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["queued"], 7);

    for i in 0..3 {
        let r = post_simple(&a, &emu, "a", "u", i);
        r.assert_error(503, "service_unavailable");
        r.assert_rate_headers();
    }
    let before = now_secs();
    let r = post_simple(&a, &emu, "a", "u", 3);
    let after = now_secs();
    assert_eq!(r.assert_error(429, "rate_limit_exceeded"), "Exceeded rate limit of 1667 in 10_seconds");
    let reset = r.header_u64("x-ratelimit-reset").expect("reset");
    assert!(reset >= before + 2 && reset <= after + 2, "reset {reset} not now+2");
    assert_eq!(r.header_u64("x-ratelimit-remaining"), Some(0));

    let r = post_simple(&a, &emu, "a", "u", 4);
    assert_eq!(r.assert_error(400, "parameter_invalid"), "scripted bad");
    r.assert_rate_headers();

    assert!(try_post_event(&a, &emu, Some(TOKEN), r#"{"event_name":"a","created_at":5,"user_id":"u"}"#).is_err());

    let r = post_simple(&a, &emu, "a", "u", 6);
    assert_eq!(r.status, 202);
    assert_eq!(r.body, "");
    assert_eq!(r.header("retry-after"), Some("1"));
    r.assert_rate_headers();

    // Script exhausted: back to normal.
    let r = post_simple(&a, &emu, "a", "u", 7);
    assert_eq!(r.status, 202);
    assert!(r.header("retry-after").is_none());

    // Scripted non-2xx and drops stored nothing; the scripted 202 and the normal one did.
    let created: Vec<i64> = emu.events().iter().map(|e| e.created_at).collect();
    assert_eq!(created, vec![6, 7]);
    let s = emu.stats();
    assert_eq!(s.scripted_served, 7);
    assert_eq!(s.dropped_connections, 1);
    assert_eq!(s.script_pending, 0);
}

#[test]
fn scripted_retry_after_is_sent_on_errors() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(503).with_retry_after(3), ScriptedResponse::rate_limited(5)]);
    let a = agent();
    let r = post_simple(&a, &emu, "a", "u", 1);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("3"));
    let r = post_simple(&a, &emu, "a", "u", 1);
    assert_eq!(r.status, 429);
    let reset = r.header_u64("x-ratelimit-reset").expect("reset");
    assert!(reset >= now_secs() + 3 && reset <= now_secs() + 5);
}

#[test]
fn scripted_drop_after_processing_stores_the_event() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::dropped().with_process(true)]);
    let a = agent();
    assert!(try_post_event(&a, &emu, Some(TOKEN), r#"{"event_name":"a","created_at":1,"user_id":"u"}"#).is_err());
    assert_eq!(emu.events().len(), 1);
    // The client's retry is then a duplicate.
    assert_eq!(post_simple(&a, &emu, "a", "u", 1).status, 202);
    assert_eq!(emu.events().len(), 1);
    assert_eq!(emu.stats().duplicates, 1);
}

#[test]
fn delete_script_clears_pending_responses() {
    let emu = emulator();
    let a = agent();
    post_json(&a, &emu, "/__emulator/script", false, r#"[{"status":500},{"status":500}]"#);
    assert_eq!(emu.stats().script_pending, 2);
    let r = delete(&a, &emu, "/__emulator/script");
    assert_eq!(r.status, 200);
    assert_eq!(emu.stats().script_pending, 0);
    assert_eq!(post_simple(&a, &emu, "a", "u", 1).status, 202);
}

#[test]
fn rejects_malformed_script_with_400() {
    let emu = emulator();
    let r = post_json(&agent(), &emu, "/__emulator/script", false, r#"{"status":500}"#);
    r.assert_error(400, "parameter_invalid");
    let r = post_json(&agent(), &emu, "/__emulator/script", false, r#"[{"stauts":500}]"#);
    r.assert_error(400, "parameter_invalid");
}

#[test]
fn script_does_not_apply_to_unauthenticated_requests() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(503)]);
    let a = agent();
    try_post_event(&a, &emu, Some("bad"), "{}").expect("resp").assert_error(401, "unauthorized");
    assert_eq!(post_simple(&a, &emu, "a", "u", 1).status, 503);
}
