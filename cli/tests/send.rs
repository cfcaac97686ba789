//! `trackcore send` as a process against the emulator over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use trackcore_emulator::ScriptedResponse;

#[test]
fn send_keeps_the_json_type_of_each_value_and_exits_0_once_accepted() {
    let emu = emulator();
    let r = run(trackcore(&emu).args([
        "send", "upgraded-plan", "--user-id", "u-1", "--created-at", "1764547200",
        "-m", "plan=pro", "-m", "seats=3", "-m", "ratio=0.5", "-m", "annual=true",
        "-m", r#"price={"amount":1999,"currency":"eur"}"#,
        "-m", r#"doc={"url":"https://example.org/d","value":"Doc"}"#,
        "-m", r#"code="42""#, "-m", "note=not json {",
    ]));
    assert_eq!((r.code, r.stdout.trim()), (0, "delivered"), "{}", r.stderr);
    let events = emu.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.event_name.as_str(), e.user_id.as_deref(), e.created_at), ("upgraded-plan", Some("u-1"), 1764547200));
    assert_eq!(
        serde_json::Value::Object(e.metadata.clone()),
        json!({"plan": "pro", "seats": 3, "ratio": 0.5, "annual": true,
               "price": {"amount": 1999, "currency": "eur"},
               "doc": {"url": "https://example.org/d", "value": "Doc"},
               "code": "42", "note": "not json {"})
    );
}

#[test]
fn send_by_email_or_intercom_id_and_token_from_a_file() {
    let emu = emulator();
    let dir = scratch("token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let r = run(bare().env("INTERCOM_BASE_URL", emu.base_url()).args(["send", "a", "--email", "jo@example.com", "--token-file"]).arg(&token_file));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(trackcore(&emu).args(["send", "b", "--id", "6657add46abd0167d9419cd2"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let events = emu.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].email.as_deref(), Some("jo@example.com"));
    assert_eq!(events[1].id.as_deref(), Some("6657add46abd0167d9419cd2"));
}

#[test]
fn intercoms_refusal_exits_1_with_its_code_and_message() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(400).with_error("parameter_invalid", "metadata plan is frozen")]);
    let r = run(trackcore(&emu).args(["send", "upgraded-plan", "--user-id", "u-1"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 400 parameter_invalid: metadata plan is frozen"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(emu.events().is_empty());
}

#[test]
fn a_refused_token_exits_3_at_once_and_is_never_printed() {
    let emu = emulator();
    let secret = "tok-wrong-8d7a6c5b4e3f";
    let r = run(trackcore(&emu).env("INTERCOM_ACCESS_TOKEN", secret).args(["send", "a", "--user-id", "u", "--timeout", "600"]));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("[unauthorized]") && r.stderr.contains("HTTP 401"), "{}", r.stderr);
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
}

#[test]
fn invalid_input_exits_2_naming_the_field_and_sends_nothing() {
    let emu = emulator();
    let r = run(trackcore(&emu).args(["send", "a", "--user-id", "u", "-m", "tags=[1,2]"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("[array_not_supported]") && r.stderr.contains("metadata.tags"), "{}", r.stderr);
    let r = run(trackcore(&emu).args(["send", "a", "-m", "x=1"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("[missing_identity]"), "{}", r.stderr);
    let r = run(trackcore(&emu).args(["send", "a", "--user-id", "u", "-m", "signup={\"$date\":5}"]));
    assert!(r.stderr.contains("signup_date"), "{}", r.stderr);
    let r = run(bare().args(["send", "a", "--user-id", "u", "--base-url", &emu.base_url()]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("INTERCOM_ACCESS_TOKEN") && r.stderr.contains("--token-file"), "{}", r.stderr);
    let r = run(trackcore(&emu).args(["send", "a", "--user-id", "u", "--set", "max_in_flight=0"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("max_in_flight"), "{}", r.stderr);
    assert_eq!(emu.stats().requests_total, 0, "nothing reached Intercom");
}

#[test]
fn an_unconfirmed_event_exits_4_after_the_timeout() {
    let emu = emulator();
    emu.hold();
    let child = trackcore(&emu)
        .args(["send", "a", "--user-id", "u", "--timeout", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(20)), "the request reached Intercom and is held there");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("did not confirm"), "{stderr}");
    assert!(emu.events().is_empty());
}

const LINES: &str = r#"{"event_name":"ordered","user_id":"u-1","created_at":1764547200,"metadata":{"total":{"amount":4999,"currency":"usd"}}}
{"event_name":"ordered","user_id":"u-2","created_at":1764547200}

not json
{"event_name":"ordered","user_id":"u-1","created_at":1764547200,"metadata":{"note":"a copy"}}
{"event_name":"ordered","email":"x@example.com","metadata":{"tags":["a"]}}
{"event_name":"ordered","id":"c-9","created_at":1764547201,"metadata":{"shipped_date":{"$date":1764547300}}}
"#;

#[test]
fn jsonl_delivers_and_summarises_valid_invalid_and_duplicate_lines() {
    let emu = emulator();
    let dir = scratch("jsonl");
    let file = dir.join("events.jsonl");
    std::fs::write(&file, LINES).unwrap();
    let r = run(trackcore(&emu).args(["send", "--jsonl"]).arg(&file));
    assert_eq!(r.code, 1, "invalid lines make the run fail\n{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "summary: 6 lines, 3 delivered, 0 failed, 1 de-duplicated, 2 invalid", "{}", r.stdout);
    assert!(lines[1].starts_with("invalid line 4: [invalid_json]"), "{}", r.stdout);
    assert!(lines[2].starts_with("invalid line 6: [array_not_supported] metadata.tags"), "{}", r.stdout);
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    let mut got: Vec<_> = emu.events().into_iter().map(|e| (e.user_id, e.id, e.metadata)).collect();
    got.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(got.len(), 3);
    assert_eq!(serde_json::Value::Object(got[0].2.clone()), json!({"shipped_date": 1764547300}));
    assert_eq!(serde_json::Value::Object(got[1].2.clone()), json!({"total": {"amount": 4999, "currency": "usd"}}));
}

#[test]
fn jsonl_counts_intercoms_refusals_by_code_and_exits_non_zero() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(422).with_error("parameter_invalid", "nope")]);
    let input: String = (0..5).map(|i| format!("{{\"event_name\":\"e\",\"user_id\":\"u-{i}\"}}\n")).collect();
    let r = run_with_stdin(trackcore(&emu).args(["send", "--jsonl", "-"]), &input);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "summary: 5 lines, 4 delivered, 1 failed, 0 de-duplicated, 0 invalid\nfailed: 1 x HTTP 422 parameter_invalid\n"
    );
    assert_eq!(emu.events().len(), 4);
}

#[test]
fn jsonl_all_good_exits_0() {
    let emu = emulator();
    let input: String = (0..50).map(|i| format!("{{\"event_name\":\"e\",\"user_id\":\"u-{i}\"}}\n")).collect();
    let r = run_with_stdin(trackcore(&emu).args(["send", "--jsonl", "-"]), &input);
    assert_eq!((r.code, r.stdout.as_str()), (0, "summary: 50 lines, 50 delivered, 0 failed, 0 de-duplicated, 0 invalid\n"), "{}", r.stderr);
    assert_eq!(emu.events().len(), 50);
}

#[test]
fn jsonl_dry_run_validates_without_a_token_and_sends_nothing() {
    let emu = emulator();
    let dir = scratch("dry");
    let file = dir.join("events.jsonl");
    std::fs::write(&file, LINES).unwrap();
    let r = run(bare().env("INTERCOM_BASE_URL", emu.base_url()).args(["send", "--dry-run", "--jsonl"]).arg(&file));
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "dry run: 6 lines, 4 valid (1 would be de-duplicated), 2 invalid, nothing sent");
    assert!(lines[1].starts_with("invalid line 4: [invalid_json]"));
    assert!(lines[2].starts_with("invalid line 6: [array_not_supported]"));
    std::fs::write(&file, "{\"event_name\":\"e\",\"user_id\":\"u\"}\n").unwrap();
    let r = run(bare().args(["send", "--dry-run", "--jsonl"]).arg(&file));
    assert_eq!((r.code, r.stdout.as_str()), (0, "dry run: 1 lines, 1 valid (0 would be de-duplicated), 0 invalid, nothing sent\n"));
    assert_eq!(emu.stats().requests_total, 0);
}
