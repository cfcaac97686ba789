//! What the inspector stands on, over real HTTP: the request records and
//! their filters, `/__emulator/events` filters, Intercom's paging of
//! `GET /events`, the page itself, and that no control response (nor `Debug`)
//! ever shows an access token.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use trackcore_emulator::{ConfigUpdate, EmulatorConfig, ScriptedResponse};

fn event(name: &str, user: &str, created_at: i64) -> String {
    json!({"event_name": name, "created_at": created_at, "user_id": user}).to_string()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| format!("{}@{}", e["event_name"].as_str().unwrap_or("-"), e["created_at"]))
        .collect()
}

// ---------------------------------------------------------------- /__emulator/events

#[test]
fn control_events_filter_by_contact_name_status_since_and_limit() {
    let emu = emulator();
    let a = agent();
    assert_eq!(post_event(&a, &emu, &event("signed-up", "u-1", 1)).status, 202);
    assert_eq!(post_event(&a, &emu, &event("viewed", "u-2", 2)).status, 202);
    // The same contact named by email: it joins u-1's timeline.
    let c = emu.contacts().into_iter().find(|c| c.external_id.as_deref() == Some("u-1")).expect("u-1");
    let by_id = json!({"event_name": "viewed", "created_at": 3, "id": c.id}).to_string();
    assert_eq!(post_event(&a, &emu, &by_id).status, 202);
    assert_eq!(post_event(&a, &emu, &event("viewed", "u-1", 4)).status, 202);
    assert!(emu.wait_events(4, Duration::from_secs(10)));
    let mark = emu.events()[3].received_at;
    // Stored, but the client was told 503 (a lost success).
    emu.script(vec![ScriptedResponse::status(503).with_process(true)]);
    assert_eq!(post_event(&a, &emu, &event("paid", "u-3", 5)).status, 503);

    let all = get(&a, &emu, "/__emulator/events").json();
    assert_eq!(names(&all), ["signed-up@1", "viewed@2", "viewed@3", "viewed@4", "paid@5"]);
    assert_eq!(all[0]["response_status"], 202);
    assert_eq!(all[4]["response_status"], 503);

    assert_eq!(names(&get(&a, &emu, "/__emulator/events?user_id=u-1").json()), ["signed-up@1", "viewed@3", "viewed@4"]);
    assert_eq!(names(&get(&a, &emu, &format!("/__emulator/events?id={}", c.id)).json()), ["signed-up@1", "viewed@3", "viewed@4"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?user_id=u-2").json()), ["viewed@2"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?user_id=nobody").json()), Vec::<String>::new());
    // Two identifiers of different contacts name nobody.
    assert_eq!(names(&get(&a, &emu, &format!("/__emulator/events?user_id=u-2&id={}", c.id)).json()), Vec::<String>::new());
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?event_name=viewed").json()), ["viewed@2", "viewed@3", "viewed@4"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?user_id=u-1&event_name=viewed").json()), ["viewed@3", "viewed@4"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?status=503").json()), ["paid@5"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?status=2xx").json()).len(), 4);
    assert_eq!(names(&get(&a, &emu, &format!("/__emulator/events?since={mark}")).json()), ["viewed@4", "paid@5"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?limit=2").json()), ["signed-up@1", "viewed@2"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?limit=2&order=desc").json()), ["paid@5", "viewed@4"]);
    assert_eq!(names(&get(&a, &emu, "/__emulator/events?user_id=u-1&order=desc&limit=1").json()), ["viewed@4"]);

    // Bad filters are refused, naming the parameter and the rule.
    for (q, word) in [
        ("usr_id=u-1", "usr_id"),
        ("status=abc", "status"),
        ("since=yesterday", "since"),
        ("limit=-1", "limit"),
        ("order=up", "order"),
    ] {
        let r = get(&a, &emu, &format!("/__emulator/events?{q}"));
        let msg = r.assert_error(400, "parameter_invalid");
        assert!(msg.contains(word), "{q}: {msg}");
    }
}

// ---------------------------------------------------------------- GET /events paging

#[test]
fn get_events_pages_newest_first_with_next_and_since_urls() {
    let emu = emulator();
    let a = agent();
    for t in 1..=5 {
        assert_eq!(post_event(&a, &emu, &event("viewed", "u-1", t)).status, 202);
    }
    assert_eq!(post_event(&a, &emu, &event("viewed", "u-2", 9)).status, 202);

    // Follow pages.next until null.
    let mut seen = Vec::new();
    let mut path = "/events?type=user&user_id=u-1&per_page=2".to_string();
    let mut pages = 0;
    let mut newest_since: Option<String> = None;
    loop {
        let r = get_auth(&a, &emu, &path);
        assert_eq!(r.status, 200, "{}", r.body);
        r.assert_rate_headers();
        let v = r.json();
        pages += 1;
        assert_eq!(v["pages"]["type"], "pages");
        assert_eq!(v["pages"]["per_page"], 2);
        let events = v["events"].as_array().expect("events");
        assert!(events.len() <= 2);
        seen.extend(events.iter().map(|e| e["created_at"].as_i64().expect("created_at")));
        if newest_since.is_none() {
            newest_since = Some(v["pages"]["since"].as_str().expect("since url").to_string());
        }
        match v["pages"]["next"].as_str() {
            Some(next) => path = next.strip_prefix(&emu.base_url()).expect("same host").to_string(),
            None => break,
        }
        assert!(pages < 10, "pages never end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, [5, 4, 3, 2, 1], "newest first, each once");

    // `since` of the newest page lists only what arrived after it.
    let since = newest_since.expect("since");
    let since_path = since.strip_prefix(&emu.base_url()).expect("same host").to_string();
    assert!(get_auth(&a, &emu, &since_path).json()["events"].as_array().expect("events").is_empty());
    assert_eq!(post_event(&a, &emu, &event("paid", "u-1", 6)).status, 202);
    let newer = get_auth(&a, &emu, &since_path).json();
    assert_eq!(names(&newer["events"]), ["paid@6"]);

    // Default page size is Intercom's 15; bad sizes and cursors are refused.
    for t in 10..30 {
        assert_eq!(post_event(&a, &emu, &event("viewed", "u-3", t)).status, 202);
    }
    let v = get_auth(&a, &emu, "/events?type=user&user_id=u-3").json();
    assert_eq!(v["events"].as_array().map(Vec::len), Some(15));
    assert!(v["pages"]["next"].is_string());
    for q in ["per_page=0", "per_page=151", "per_page=x", "before=x"] {
        let msg = get_auth(&a, &emu, &format!("/events?type=user&user_id=u-3&{q}")).assert_error(400, "parameter_invalid");
        assert!(msg.contains(q.split('=').next().unwrap_or_default()), "{q}: {msg}");
    }
}

// ---------------------------------------------------------------- request records

#[test]
fn every_api_request_is_recorded_refusals_with_code_message_and_body() {
    let emu = emulator_with(|c| c.max_event_names = 1);
    let a = agent();
    assert_eq!(post_event(&a, &emu, &event("signed-up", "u-1", 1)).status, 202);
    assert_eq!(post_event(&a, &emu, &event("signed-up", "u-1", 1)).status, 202); // duplicate
    let bad = r#"{"event_name":"x","created_at":"yesterday","user_id":"u-2"}"#;
    assert_eq!(post_event(&a, &emu, bad).status, 400);
    assert_eq!(post_event(&a, &emu, &event("second-name", "u-1", 2)).status, 422);
    assert_eq!(try_post_event(&a, &emu, Some("wrong"), &event("a", "u-4", 1)).expect("response").status, 401);
    emu.script(vec![ScriptedResponse::dropped()]);
    assert!(try_post_event(&a, &emu, Some(TOKEN), &event("lost", "u-5", 1)).is_err());
    assert_eq!(post_json(&a, &emu, "/contacts", true, r#"{"role":"user"}"#).status, 400);
    assert_eq!(get_auth(&a, &emu, "/events?type=user&user_id=u-1").status, 200);

    let v = get(&a, &emu, "/__emulator/requests").json();
    assert_eq!(v["total"], 8);
    let r = v["requests"].as_array().expect("requests").clone();
    let outcomes: Vec<_> = r.iter().map(|x| (x["status"].clone(), x["outcome"].as_str().unwrap_or("").to_string())).collect();
    assert_eq!(
        outcomes,
        [
            (json!(200), "accepted".to_string()),
            (json!(400), "refused".into()),
            (Value::Null, "dropped".into()),
            (json!(401), "refused".into()),
            (json!(422), "refused".into()),
            (json!(400), "refused".into()),
            (json!(202), "duplicate".into()),
            (json!(202), "stored".into()),
        ],
        "newest first"
    );
    let seqs: Vec<u64> = r.iter().map(|x| x["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, [8, 7, 6, 5, 4, 3, 2, 1]);
    let stored = &r[7];
    assert_eq!(stored["event_name"], "signed-up");
    assert_eq!(stored["user_id"], "u-1");
    assert!(stored["intercom_user_id"].is_string());
    assert!(stored["metadata"].is_object());
    assert!(stored.get("body").is_none(), "accepted requests keep no body");
    let invalid = &r[5];
    assert_eq!(invalid["code"], "parameter_invalid");
    assert!(invalid["message"].as_str().expect("message").contains("created_at"));
    assert_eq!(invalid["body"], bad);
    assert_eq!(invalid["user_id"], "u-2", "who it names is read even from an invalid body");
    assert_eq!(r[4]["code"], "event_name_limit_reached");
    assert_eq!(r[3]["code"], "unauthorized");
    assert_eq!(r[1]["path"], "/contacts");
    assert_eq!(r[1]["code"], "parameter_not_found");
    assert_eq!(r[0]["method"], "GET");

    // Filters: contact (any identifier, substring), event name, status.
    let q = |query: &str| -> Vec<u64> {
        get(&a, &emu, &format!("/__emulator/requests?{query}")).json()["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|x| x["seq"].as_u64().expect("seq"))
            .collect()
    };
    assert_eq!(q("contact=u-1"), [8, 4, 2, 1]);
    assert_eq!(q(&format!("contact={}", stored["intercom_user_id"].as_str().expect("id"))), [2, 1]);
    assert_eq!(q("event_name=signed"), [2, 1]);
    assert_eq!(q("status=refused"), [7, 6, 5, 4, 3]);
    assert_eq!(q("status=4xx"), [7, 5, 4, 3]);
    assert_eq!(q("status=422"), [4]);
    assert_eq!(q("status=dropped"), [6]);
    assert_eq!(q("contact=u-1&status=2xx"), [8, 2, 1]);
    // Paging: `before` a seq, `limit` a page; `total` counts every match.
    assert_eq!(q("limit=3"), [8, 7, 6]);
    assert_eq!(q("limit=3&before=6"), [5, 4, 3]);
    assert_eq!(q("limit=3&before=3"), [2, 1]);
    assert_eq!(q("after=6"), [8, 7]);
    assert_eq!(get(&a, &emu, "/__emulator/requests?limit=3&before=3&status=2xx").json()["total"], 3);

    for query in ["limit=0", "limit=1001", "status=7xx", "wait_ms=600000", "colour=red"] {
        get(&a, &emu, &format!("/__emulator/requests?{query}")).assert_error(400, "parameter_invalid");
    }

    // A reset forgets the records but not the numbering, and says so.
    let before = get(&a, &emu, "/__emulator/requests").json();
    assert_eq!(post_json(&a, &emu, "/__emulator/reset", false, "").status, 200);
    let after = get(&a, &emu, "/__emulator/requests").json();
    assert_eq!(after["total"], 0);
    assert_eq!(after["latest_seq"], before["latest_seq"]);
    assert_ne!(after["generation"], before["generation"]);
    assert_eq!(post_event(&a, &emu, &event("again", "u-1", 1)).status, 202);
    assert_eq!(q("")[..], [9]);
}

#[test]
fn long_poll_answers_when_a_matching_request_arrives() {
    let emu = emulator();
    let a = agent();
    assert_eq!(post_event(&a, &emu, &event("first", "u-1", 1)).status, 202);
    // Nothing newer: the poll gives up at its bound with an empty page.
    let started = Instant::now();
    let v = get(&a, &emu, "/__emulator/requests?after=1&wait_ms=150").json();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(v["requests"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["latest_seq"], 1);

    // A request that does not match the filter does not end the wait; one that does, does.
    let base = emu.base_url();
    let poller = std::thread::spawn(move || {
        let a = agent();
        let mut r = a
            .get(format!("{base}/__emulator/requests?after=1&event_name=wanted&wait_ms=30000"))
            .call()
            .expect("poll answers");
        serde_json::from_str::<Value>(&r.body_mut().read_to_string().expect("body")).expect("json")
    });
    assert_eq!(post_event(&a, &emu, &event("other", "u-1", 2)).status, 202);
    assert_eq!(post_event(&a, &emu, &event("wanted", "u-1", 3)).status, 202);
    let started = Instant::now();
    let v = poller.join().expect("poller");
    assert!(started.elapsed() < Duration::from_secs(25), "answered by the arrival, not the bound");
    let got: Vec<_> = v["requests"].as_array().expect("requests").iter().map(|r| r["event_name"].clone()).collect();
    assert_eq!(got, [json!("wanted")]);
}

// ---------------------------------------------------------------- the page

#[test]
fn the_page_is_served_from_the_binary_self_contained() {
    let emu = emulator();
    let a = agent();
    for path in ["/", "/__emulator", "/__emulator/"] {
        let r = to_html(&a, &emu, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert!(r.body.contains("<title>trackcore emulator"), "{path}");
        assert!(r.body.contains("/__emulator/requests"), "{path}: the page reads the records");
        // Self-contained: nothing loaded from elsewhere.
        for external in ["src=\"http", "href=\"http", "<link", "@import", "//cdn", "src=\"//"] {
            assert!(!r.body.contains(external), "{path} loads something external: {external}");
        }
        assert!(r.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    }
    // Other paths still answer Intercom's JSON 404.
    get(&a, &emu, "/nothing-here").assert_error(404, "not_found");
}

fn to_html(a: &ureq::Agent, emu: &trackcore_emulator::Emulator, path: &str) -> Resp {
    let mut r = a
        .get(format!("{}{path}", emu.base_url()))
        .header("Accept", "text/html,application/xhtml+xml")
        .call()
        .expect("a response");
    Resp {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: r.body_mut().read_to_string().expect("body"),
    }
}

#[test]
fn control_api_refuses_other_hosts_and_other_sites() {
    let emu = emulator();
    let a = agent();
    let url = |p: &str| format!("{}{p}", emu.base_url());
    let status = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| r.expect("a response").status().as_u16();
    // DNS rebinding: the right socket under another name.
    assert_eq!(status(a.get(url("/__emulator/config")).header("Host", "attacker.example").call()), 403);
    assert_eq!(status(a.get(url("/")).header("Host", "attacker.example:8089").call()), 403);
    // Another site's page posting from a visitor's browser.
    let foreign = a.post(url("/__emulator/reset")).header("Origin", "http://attacker.example").send("");
    assert_eq!(status(foreign), 403);
    let own_origin = emu.base_url();
    assert_eq!(status(a.post(url("/__emulator/reset")).header("Origin", &own_origin).send("")), 200);
    assert_eq!(status(a.get(url("/__emulator/stats")).header("Host", "localhost").call()), 200);
    // The Intercom API itself is not restricted this way (clients may use any name for 127.0.0.1).
    let r = a
        .post(url("/events"))
        .header("Host", "intercom.local")
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send(event("a", "u", 1).as_str());
    assert_eq!(status(r), 202);
}

// ---------------------------------------------------------------- tokens

#[test]
fn no_control_response_and_no_debug_output_contains_a_token() {
    const SECRET: &str = "tok-SECRET-5b1f0c";
    const SECOND: &str = "tok-SECOND-77aa01";
    let emu = emulator_with(|c| c.tokens = vec![SECRET.into()]);
    let a = agent();
    let send = |token: &str, body: &str| try_post_event(&a, &emu, Some(token), body).expect("response").status;
    assert_eq!(send(SECRET, &event("signed-up", "u-1", 1)), 202);
    assert_eq!(send(SECRET, r#"{"event_name":"bad"}"#), 400);
    assert_eq!(send("not-it", &event("signed-up", "u-1", 2)), 401);

    let mut bodies = Vec::new();
    for path in [
        "/",
        "/__emulator/",
        "/__emulator/events",
        "/__emulator/requests",
        "/__emulator/stats",
        "/__emulator/config",
        "/__emulator/contacts",
        "/__emulator/gate",
        "/__emulator/events/wait?count=1&timeout_ms=1",
        "/__emulator/gate/wait?held=0&timeout_ms=1",
    ] {
        let r = get(&a, &emu, path);
        assert!(r.status == 200, "{path}: {}", r.status);
        bodies.push((path.to_string(), r.body));
    }
    let config = get(&a, &emu, "/__emulator/config").json();
    assert!(config.get("tokens").is_none(), "{config}");
    assert_eq!(config["tokens_configured"], 1);
    // Changing the tokens at run time: the answer shows neither the old nor the new one.
    let r = post_json(&a, &emu, "/__emulator/config", false, &json!({"tokens": [SECRET, SECOND]}).to_string());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tokens_configured"], 2);
    bodies.push(("POST /__emulator/config".into(), r.body));
    assert_eq!(send(SECOND, &event("signed-up", "u-1", 3)), 202, "the new token works");
    for (path, body) in [
        ("/__emulator/script", r#"[{"status":503}]"#),
        ("/__emulator/gate", r#"{"hold":false}"#),
        ("/__emulator/gate/release", r#"{"count":0}"#),
        ("/__emulator/reset", ""),
    ] {
        let r = post_json(&a, &emu, path, false, body);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        bodies.push((format!("POST {path}"), r.body));
    }
    for (path, body) in &bodies {
        for token in [SECRET, SECOND] {
            assert!(!body.contains(token), "{path} shows a token: {body}");
        }
    }

    // Debug output of the configuration types hides them too.
    let c = EmulatorConfig { tokens: vec![SECRET.into()], ..Default::default() };
    let u = ConfigUpdate { tokens: Some(vec![SECOND.into()]), ..Default::default() };
    for shown in [format!("{c:?}"), format!("{u:?}"), format!("{:?}", emu.config()), serde_json::to_string(&u).expect("json")] {
        assert!(!shown.contains(SECRET) && !shown.contains(SECOND), "{shown}");
    }
    assert!(format!("{c:?}").contains("1 redacted"));
}
