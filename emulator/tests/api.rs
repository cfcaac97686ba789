//! Intercom's documented `/events` behaviour, over real HTTP on 127.0.0.1.

mod common;

use common::*;
use serde_json::json;
use trackcore_emulator::{Emulator, EmulatorConfig};

// ---------------------------------------------------------------- auth

#[test]
fn rejects_unknown_token_with_401_unauthorized_error_list() {
    let emu = emulator();
    let r = try_post_event(&agent(), &emu, Some("wrong"), r#"{"event_name":"a","created_at":1,"user_id":"u"}"#)
        .expect("a response");
    let msg = r.assert_error(401, "unauthorized");
    assert_eq!(msg, "Access Token Invalid");
    assert!(r.header("x-ratelimit-limit").is_none(), "401 is not an authenticated response");
    assert!(emu.events().is_empty());
}

#[test]
fn rejects_missing_authorization_header_with_401() {
    let emu = emulator();
    let r = try_post_event(&agent(), &emu, None, r#"{"event_name":"a","created_at":1,"user_id":"u"}"#)
        .expect("a response");
    r.assert_error(401, "unauthorized");
}

#[test]
fn accepts_any_of_several_configured_tokens() {
    let emu = emulator_with(|c| c.tokens = vec!["one".into(), "two".into()]);
    let a = agent();
    let body = r#"{"event_name":"a","created_at":1,"user_id":"u"}"#;
    assert_eq!(try_post_event(&a, &emu, Some("two"), body).expect("resp").status, 202);
    assert_eq!(try_post_event(&a, &emu, Some("test-token"), body).expect("resp").status, 401);
}

// ---------------------------------------------------------------- 202

#[test]
fn accepts_valid_event_with_202_empty_body_and_stores_it() {
    let emu = emulator();
    let body = json!({"event_name": "cancelled-subscription", "created_at": 1671028894,
        "user_id": "314159", "metadata": {"reason": "no-longer-needed", "plan_level": "Pro"}});
    let r = post_event(&agent(), &emu, &body.to_string());
    assert_eq!(r.status, 202);
    assert_eq!(r.body, "");
    r.assert_rate_headers();
    let events = emu.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_name, "cancelled-subscription");
    assert_eq!(e.created_at, 1671028894);
    assert_eq!(e.user_id.as_deref(), Some("314159"));
    assert_eq!(e.metadata["plan_level"], "Pro");
    assert!(e.ignored_metadata_keys.is_empty());
    assert_eq!(e.headers.get("intercom-version").map(String::as_str), Some("2.14"));
    assert_eq!(serde_json::Value::Object(e.body.clone()), body);
}

#[test]
fn accepts_events_identified_by_email_or_intercom_id() {
    let emu = emulator();
    let a = agent();
    let c = emu.add_contact(None, Some("lead@example.org")).expect("contact");
    assert_eq!(post_event(&a, &emu, r#"{"event_name":"a","created_at":1,"email":"x@example.org"}"#).status, 202);
    let r = post_event(&a, &emu, &json!({"event_name":"a","created_at":2,"id":c.id}).to_string());
    assert_eq!(r.status, 202);
    let events = emu.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].intercom_user_id, c.id);
}

// ---------------------------------------------------------------- 400s

fn assert_400(body: &str, code: &str) -> Resp {
    let emu = emulator();
    let r = post_event(&agent(), &emu, body);
    r.assert_error(400, code);
    r.assert_rate_headers();
    assert!(emu.events().is_empty());
    r
}

#[test]
fn rejects_malformed_json_with_400_parameter_invalid() {
    assert_400(r#"{"event_name": "a", "#, "parameter_invalid");
}

#[test]
fn rejects_empty_body_with_400_parameter_invalid() {
    assert_400("", "parameter_invalid");
}

#[test]
fn rejects_non_object_body_with_400_parameter_invalid() {
    assert_400(r#"[{"event_name":"a","created_at":1,"user_id":"u"}]"#, "parameter_invalid");
}

#[test]
fn rejects_missing_event_name_with_400_error_list() {
    assert_400(r#"{"created_at":1,"user_id":"u"}"#, "parameter_not_found");
}

#[test]
fn rejects_empty_event_name_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":"","created_at":1,"user_id":"u"}"#, "parameter_invalid");
}

#[test]
fn rejects_non_string_event_name_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":42,"created_at":1,"user_id":"u"}"#, "parameter_invalid");
}

#[test]
fn rejects_missing_created_at_with_400_parameter_not_found() {
    assert_400(r#"{"event_name":"a","user_id":"u"}"#, "parameter_not_found");
}

#[test]
fn rejects_string_created_at_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":"a","created_at":"1671028894","user_id":"u"}"#, "parameter_invalid");
}

#[test]
fn rejects_fractional_created_at_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":"a","created_at":1671028894.5,"user_id":"u"}"#, "parameter_invalid");
}

#[test]
fn rejects_event_without_user_id_id_or_email_with_400_parameter_not_found() {
    assert_400(r#"{"event_name":"a","created_at":1,"metadata":{}}"#, "parameter_not_found");
}

#[test]
fn rejects_non_string_user_id_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":"a","created_at":1,"user_id":123}"#, "parameter_invalid");
}

#[test]
fn rejects_non_object_metadata_with_400_parameter_invalid() {
    assert_400(r#"{"event_name":"a","created_at":1,"user_id":"u","metadata":["x"]}"#, "parameter_invalid");
}

// ---------------------------------------------------------------- dedup, metadata, names

#[test]
fn answers_duplicate_with_202_but_does_not_store_it() {
    let emu = emulator();
    let a = agent();
    assert_eq!(post_simple(&a, &emu, "upgraded-plan", "u-1", 100).status, 202);
    let dup = post_simple(&a, &emu, "upgraded-plan", "u-1", 100);
    assert_eq!(dup.status, 202);
    assert_eq!(dup.body, "");
    // Same name and time but another contact, or another time: not duplicates.
    assert_eq!(post_simple(&a, &emu, "upgraded-plan", "u-2", 100).status, 202);
    assert_eq!(post_simple(&a, &emu, "upgraded-plan", "u-1", 101).status, 202);
    assert_eq!(emu.events().len(), 3);
    let s = emu.stats();
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.stored, 3);
    assert_eq!(s.accepted, 4);
}

#[test]
fn treats_same_contact_by_email_and_user_id_as_duplicate() {
    let emu = emulator();
    emu.add_contact(Some("u-9"), Some("nine@example.org")).expect("contact");
    let a = agent();
    assert_eq!(post_simple(&a, &emu, "x", "u-9", 5).status, 202);
    let r = post_event(&a, &emu, r#"{"event_name":"x","created_at":5,"email":"nine@example.org"}"#);
    assert_eq!(r.status, 202);
    assert_eq!(emu.events().len(), 1);
    assert_eq!(emu.stats().duplicates, 1);
}

#[test]
fn keeps_first_ten_metadata_keys_and_records_ignored_ones() {
    let emu = emulator();
    // Keys deliberately not in alphabetical order: order sent is what counts.
    let keys = ["m", "l", "k", "j", "i", "h", "g", "f", "e", "d", "c", "b"];
    let meta: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("\"{k}\":{i}")).collect();
    let body = format!(r#"{{"event_name":"a","created_at":1,"user_id":"u","metadata":{{{}}}}}"#, meta.join(","));
    let r = post_event(&agent(), &emu, &body);
    assert_eq!(r.status, 202);
    let events = emu.events();
    let kept: Vec<&str> = events[0].metadata.keys().map(String::as_str).collect();
    assert_eq!(kept, &keys[..10]);
    assert_eq!(events[0].ignored_metadata_keys, vec!["c", "b"]);
    // The control endpoint shows the body as received plus the ignored keys.
    let all = get(&agent(), &emu, "/__emulator/events").json();
    assert_eq!(all[0]["metadata"].as_object().map(|m| m.len()), Some(12));
    assert_eq!(all[0]["ignored_metadata_keys"], json!(["c", "b"]));
    assert!(all[0]["received_at"].as_f64().is_some());
}

#[test]
fn refuses_new_event_name_past_the_cap_with_422_event_name_limit_reached() {
    let emu = emulator_with(|c| c.max_event_names = 3);
    let a = agent();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(post_simple(&a, &emu, n, "u", i as i64).status, 202);
    }
    let r = post_simple(&a, &emu, "d", "u", 10);
    r.assert_error(422, "event_name_limit_reached");
    r.assert_rate_headers();
    // Names already active still work.
    assert_eq!(post_simple(&a, &emu, "a", "u", 11).status, 202);
    assert_eq!(emu.events().len(), 4);
    assert_eq!(emu.stats().event_names, 3);
}

#[test]
fn default_event_name_cap_is_120() {
    let emu = emulator_with(|c| c.rate_limit_per_minute = 0);
    let a = agent();
    for i in 0..120 {
        assert_eq!(post_simple(&a, &emu, &format!("name-{i}"), "u", 1).status, 202);
    }
    post_simple(&a, &emu, "name-120", "u", 1).assert_error(422, "event_name_limit_reached");
}

// ---------------------------------------------------------------- known users

#[test]
fn answers_404_user_not_found_for_unknown_contact_when_required() {
    let emu = emulator_with(|c| {
        c.require_known_users = true;
        c.known_user_ids = vec!["known".into()];
        c.known_emails = vec!["k@example.org".into()];
    });
    let a = agent();
    let r = post_simple(&a, &emu, "a", "stranger", 1);
    assert_eq!(r.assert_error(404, "not_found"), "User Not Found");
    r.assert_rate_headers();
    assert_eq!(post_simple(&a, &emu, "a", "known", 1).status, 202);
    assert_eq!(post_event(&a, &emu, r#"{"event_name":"a","created_at":1,"email":"k@example.org"}"#).status, 202);
    assert_eq!(emu.events().len(), 2);
}

#[test]
fn registers_contacts_via_post_contacts_and_then_accepts_their_events() {
    let emu = emulator_with(|c| c.require_known_users = true);
    let a = agent();
    assert_eq!(post_simple(&a, &emu, "signed-up", "u-new", 1).status, 404);
    let r = post_json(&a, &emu, "/contacts", true, r#"{"role":"user","external_id":"u-new","email":"new@example.org"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_rate_headers();
    let c = r.json();
    assert_eq!(c["type"], "contact");
    assert_eq!(c["external_id"], "u-new");
    assert_eq!(c["role"], "user");
    let id = c["id"].as_str().expect("contact id").to_string();
    assert!(!id.is_empty());
    assert_eq!(post_simple(&a, &emu, "signed-up", "u-new", 1).status, 202);
    // An event naming the Intercom id matches the same contact.
    assert_eq!(post_event(&a, &emu, &json!({"event_name":"x","created_at":2,"id":id}).to_string()).status, 202);
    assert!(emu.events().iter().all(|e| e.intercom_user_id == id));
    // The same external id again is a conflict, as in Intercom.
    post_json(&a, &emu, "/contacts", true, r#"{"external_id":"u-new"}"#).assert_error(409, "conflict");
    post_json(&a, &emu, "/contacts", true, r#"{"role":"admin","email":"z@example.org"}"#)
        .assert_error(400, "parameter_invalid");
    post_json(&a, &emu, "/contacts", false, r#"{"external_id":"other"}"#).assert_error(401, "unauthorized");
}

#[test]
fn require_known_users_can_be_switched_at_runtime() {
    let emu = emulator();
    let a = agent();
    let r = post_json(&a, &emu, "/__emulator/config", false, r#"{"require_known_users":true}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["require_known_users"], true);
    assert_eq!(post_simple(&a, &emu, "a", "nobody", 1).status, 404);
    emu.set_require_known_users(false);
    assert_eq!(post_simple(&a, &emu, "a", "nobody", 1).status, 202);
}

// ---------------------------------------------------------------- GET /events

#[test]
fn lists_a_users_events_like_intercom() {
    let emu = emulator();
    let a = agent();
    let body = json!({"event_name":"viewed","created_at":10,"user_id":"u-1","email":"u1@example.org",
        "metadata":{"page":"/pricing"}});
    assert_eq!(post_event(&a, &emu, &body.to_string()).status, 202);
    assert_eq!(post_simple(&a, &emu, "clicked", "u-1", 11).status, 202);
    assert_eq!(post_simple(&a, &emu, "clicked", "u-2", 11).status, 202);

    let r = get_auth(&a, &emu, "/events?type=user&user_id=u-1");
    assert_eq!(r.status, 200);
    r.assert_rate_headers();
    let v = r.json();
    assert_eq!(v["type"], "event.list");
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let viewed = events.iter().find(|e| e["event_name"] == "viewed").expect("viewed");
    assert_eq!(viewed["type"], "event");
    assert_eq!(viewed["created_at"], 10);
    assert_eq!(viewed["user_id"], "u-1");
    assert_eq!(viewed["email"], "u1@example.org");
    assert_eq!(viewed["metadata"]["page"], "/pricing");
    assert!(v["pages"].is_object());

    let intercom_id = viewed["intercom_user_id"].as_str().expect("intercom id").to_string();
    let by_id = get_auth(&a, &emu, &format!("/events?type=user&intercom_user_id={intercom_id}")).json();
    assert_eq!(by_id["events"].as_array().map(Vec::len), Some(2));
    let by_email = get_auth(&a, &emu, "/events?type=user&email=u1%40example.org").json();
    assert_eq!(by_email["events"].as_array().map(Vec::len), Some(2));

    get_auth(&a, &emu, "/events?type=user&user_id=nobody").assert_error(404, "not_found");
    get_auth(&a, &emu, "/events?user_id=u-1").assert_error(400, "parameter_not_found");
    get_auth(&a, &emu, "/events?type=user").assert_error(400, "parameter_not_found");
    get(&a, &emu, "/events?type=user&user_id=u-1").assert_error(401, "unauthorized");
}

// ---------------------------------------------------------------- rate limit

/// Runs `burst` inside one 10-second window, retrying if the window rolled over
/// during it (detected by differing `X-RateLimit-Reset` values).
fn in_one_window(emu: &Emulator, burst: impl Fn() -> Vec<Resp>) -> Vec<Resp> {
    for _ in 0..3 {
        align_to_window_start(6);
        emu.reset();
        let rs = burst();
        let resets: Vec<Option<u64>> = rs.iter().map(|r| r.header_u64("x-ratelimit-reset")).collect();
        if resets.windows(2).all(|w| w[0] == w[1]) {
            return rs;
        }
    }
    panic!("could not run the burst inside one window");
}

#[test]
fn refuses_requests_past_window_allowance_with_429_and_headers() {
    // 18 a minute -> ceil(18/6) = 3 per 10-second window.
    let emu = emulator_with(|c| c.rate_limit_per_minute = 18);
    let a = agent();
    let rs = in_one_window(&emu, || (0..5).map(|i| post_simple(&a, &emu, "a", "u", i)).collect());
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![202, 202, 202, 429, 429]);
    let remaining: Vec<u64> = rs.iter().filter_map(|r| r.header_u64("x-ratelimit-remaining")).collect();
    assert_eq!(remaining, vec![2, 1, 0, 0, 0]);
    for r in &rs {
        assert_eq!(r.header_u64("x-ratelimit-limit"), Some(3));
        let reset = r.header_u64("x-ratelimit-reset").expect("reset");
        assert_eq!(reset % 10, 0, "windows are aligned to multiples of 10 s");
        assert!(reset > now_secs() - 10 && reset <= now_secs() + 10);
    }
    let msg = rs[3].assert_error(429, "rate_limit_exceeded");
    assert_eq!(msg, "Exceeded rate limit of 3 in 10_seconds");
    assert_eq!(emu.events().len(), 3);
    let s = emu.stats();
    assert_eq!(s.rate_limited, 2);
    assert_eq!(s.max_requests_in_window, 5);
    assert_eq!(s.window.limit, Some(3));
}

#[test]
fn rounds_window_allowance_up_from_per_minute_limit() {
    let emu = emulator_with(|c| c.rate_limit_per_minute = 1000);
    let r = post_simple(&agent(), &emu, "a", "u", 1);
    assert_eq!(r.header_u64("x-ratelimit-limit"), Some(167));
    let emu = emulator();
    let r = post_simple(&agent(), &emu, "a", "u", 1);
    assert_eq!(r.header_u64("x-ratelimit-limit"), Some(1667));
}

#[test]
fn counts_duplicates_and_errors_against_the_rate_limit() {
    let emu = emulator_with(|c| c.rate_limit_per_minute = 18);
    let a = agent();
    let rs = in_one_window(&emu, || {
        vec![
            post_simple(&a, &emu, "a", "u", 1),
            post_simple(&a, &emu, "a", "u", 1),
            post_event(&a, &emu, "{}"),
            post_simple(&a, &emu, "a", "u", 1),
        ]
    });
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![202, 202, 400, 429]);
    for r in &rs {
        r.assert_rate_headers();
    }
}

#[test]
fn sends_rate_limit_headers_on_every_authenticated_response() {
    let emu = emulator_with(|c| {
        c.require_known_users = true;
        c.known_user_ids = vec!["k".into()];
    });
    let a = agent();
    emu.script(vec![trackcore_emulator::ScriptedResponse::status(503)]);
    let responses = [
        post_simple(&a, &emu, "a", "k", 1),                             // scripted 503
        post_simple(&a, &emu, "a", "k", 1),                             // 202
        post_event(&a, &emu, "nope"),                                    // 400
        post_simple(&a, &emu, "a", "stranger", 1),                      // 404
        get_auth(&a, &emu, "/events?type=user&user_id=k"),              // 200
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 202, 400, 404, 200]);
    for r in &responses {
        r.assert_rate_headers();
    }
}

#[test]
fn disables_rate_limit_and_its_headers_with_zero() {
    let emu = emulator_with(|c| c.rate_limit_per_minute = 0);
    let a = agent();
    for i in 0..50 {
        let r = post_simple(&a, &emu, "a", "u", i);
        assert_eq!(r.status, 202);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
    assert_eq!(emu.stats().window.limit, None);
}

// ---------------------------------------------------------------- control endpoints

#[test]
fn stats_count_requests_by_status_and_reset_clears_everything() {
    let emu = emulator_with(|c| c.max_event_names = 5);
    let a = agent();
    // The window's count restarts every 10 s: keep the posts and the read in one.
    align_to_window_start(6);
    post_simple(&a, &emu, "a", "u", 1);
    post_simple(&a, &emu, "a", "u", 1);
    post_event(&a, &emu, "{}");
    try_post_event(&a, &emu, Some("bad"), "{}").expect("resp");
    emu.set_latency(std::time::Duration::from_millis(1), std::time::Duration::ZERO);

    let s = get(&a, &emu, "/__emulator/stats").json();
    assert_eq!(s["requests_total"], 4);
    assert_eq!(s["by_status"]["202"], 2);
    assert_eq!(s["by_status"]["400"], 1);
    assert_eq!(s["by_status"]["401"], 1);
    assert_eq!(s["stored"], 1);
    assert_eq!(s["duplicates"], 1);
    assert_eq!(s["window"]["used"], 3, "401s are not counted in the window");
    assert!(s["max_requests_in_window"].as_u64() >= Some(3));

    let r = post_json(&a, &emu, "/__emulator/reset", false, "");
    assert_eq!(r.status, 200);
    let s = get(&a, &emu, "/__emulator/stats").json();
    assert_eq!(s["requests_total"], 0);
    assert_eq!(s["stored"], 0);
    assert_eq!(s["event_names"], 0);
    assert_eq!(get(&a, &emu, "/__emulator/events").json(), json!([]));
    assert_eq!(emu.config().latency_ms, 0, "reset restores the start configuration");
    // The deduplication memory is gone too.
    assert_eq!(post_simple(&a, &emu, "a", "u", 1).status, 202);
    assert_eq!(emu.events().len(), 1);
}

#[test]
fn control_events_lists_stored_events_in_arrival_order() {
    let emu = emulator();
    let a = agent();
    for (i, n) in ["first", "second", "third"].iter().enumerate() {
        post_simple(&a, &emu, n, "u", i as i64);
    }
    let v = get(&a, &emu, "/__emulator/events").json();
    let names: Vec<&str> = v.as_array().expect("list").iter().filter_map(|e| e["event_name"].as_str()).collect();
    assert_eq!(names, vec!["first", "second", "third"]);
    assert_eq!(v[0]["headers"]["intercom-version"], "2.14");
}

#[test]
fn config_endpoint_rejects_unknown_fields_with_400() {
    let emu = emulator();
    let r = post_json(&agent(), &emu, "/__emulator/config", false, r#"{"latency":5}"#);
    r.assert_error(400, "parameter_invalid");
}

#[test]
fn unknown_route_answers_404_error_list() {
    let emu = emulator();
    get(&agent(), &emu, "/nope").assert_error(404, "not_found");
}

#[test]
fn starts_on_requested_port_and_stops_on_drop() {
    let emu = Emulator::start(EmulatorConfig::default()).expect("start");
    let port = emu.port();
    assert_eq!(emu.base_url(), format!("http://127.0.0.1:{port}"));
    drop(emu);
    let again = Emulator::start(EmulatorConfig { port, ..Default::default() }).expect("port is free again");
    assert_eq!(again.port(), port);
}

// ---------------------------------------------------------------- transport

#[test]
fn answers_keep_alive_requests_without_nagle_stalls() {
    // A Nagle/delayed-ACK stall costs ~40 ms on every request of a reused
    // connection, steadily; a loaded machine's delays come in spikes. So the
    // median of 50 sequential requests: well under 40 ms unless they stall.
    let emu = emulator();
    let a = agent();
    post_simple(&a, &emu, "warm-up", "u", 0);
    let mut took: Vec<std::time::Duration> = (1..=50)
        .map(|i| {
            let t = std::time::Instant::now();
            assert_eq!(post_simple(&a, &emu, "a", "u", i).status, 202);
            t.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[25] < std::time::Duration::from_millis(20), "median {:?} per request: {took:?}", took[25]);
}
