//! `trackcore bridge` as a process: webhooks over real HTTP in, events in the
//! emulator out. Signatures are computed here from the documented algorithms.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const STRIPE_SECRET: &str = "whsec_test_5d1e2f";
const INTERCOM_SECRET: &str = "client-secret-9a8b";
const SHOP_SECRET: &str = "shop-token-3c4d";

const RULES: &str = r#"
[server]
max_body_bytes = 4096

[tracker]
backoff_base = 0.05
backoff_max = 0.2

[[route]]
path = "/stripe"
kind = "stripe"
secret_env = "T_STRIPE_SECRET"
tolerance_secs = 300

[[route.rule]]
name = "payment failed"
when = { "/type" = "invoice.payment_failed" }
event = "payment-failed"
user_id = "/data/object/customer"
created_at = "/created"
metadata.amount = { pointer = "/data/object/amount_due", type = "money", currency = "/data/object/currency" }
metadata.invoice = { pointer = "/data/object/hosted_invoice_url", type = "link", text = "/data/object/number" }
metadata.retry_date = { pointer = "/data/object/next_payment_attempt", type = "date" }
metadata.attempt = "/data/object/attempt_count"

[[route]]
path = "/intercom"
kind = "intercom"
secret_file = "intercom.secret"

[[route.rule]]
when = { "/topic" = "contact.user.tag.created" }
event = "tagged"
id = "/data/item/contact/id"
metadata.tag = "/data/item/tag/name"

[[route]]
path = "/shop"
kind = "json"
secret_header = "X-Shop-Token"
secret_env = "T_SHOP_SECRET"

[[route.rule]]
name = "shipped"
when = { "/event" = "order.shipped" }
event = "order-shipped"
email = "/customer/email"
metadata.order = { pointer = "/order/id", type = "string" }

[[route.rule]]
name = "express"
when = { "/event" = "order.shipped", "/order/shipping" = ["express", "overnight"] }
event = "express-order"
email = "/customer/email"
"#;

fn start(emu: &trackcore_emulator::Emulator, rules: &str) -> (Bridge, std::path::PathBuf) {
    let dir = scratch("bridge");
    std::fs::write(dir.join("intercom.secret"), format!("{INTERCOM_SECRET}\n")).unwrap();
    let file = dir.join("bridge.toml");
    std::fs::write(&file, rules).unwrap();
    let b = Bridge::start(emu, &file, &[("T_STRIPE_SECRET", STRIPE_SECRET), ("T_SHOP_SECRET", SHOP_SECRET)]);
    (b, file)
}

fn stripe_body(ty: &str, customer: &str) -> Vec<u8> {
    json!({"id": "evt_1", "type": ty, "created": now() - 60, "data": {"object": {
        "customer": customer, "amount_due": 1999, "currency": "eur", "attempt_count": 2,
        "hosted_invoice_url": "https://invoice.stripe.com/i/1", "number": "INV-7", "next_payment_attempt": 1764806400}}})
    .to_string()
    .into_bytes()
}

fn post_stripe(b: &Bridge, body: &[u8], t: i64, secret: &str) -> (u16, serde_json::Value) {
    post(&format!("{}/stripe", b.url), &[("Stripe-Signature", &stripe_signature(secret, t, body))], body)
}

#[test]
fn stripe_webhook_becomes_an_event_with_money_link_and_date() {
    let emu = emulator();
    let (b, _) = start(&emu, RULES);
    let body = stripe_body("invoice.payment_failed", "cus_1");
    let (status, answer) = post_stripe(&b, &body, now(), STRIPE_SECRET);
    assert_eq!((status, &answer), (200, &json!({"matched": true, "events": 1, "rules": ["payment failed"]})));
    assert!(emu.wait_events(1, Duration::from_secs(20)));
    let e = &emu.events()[0];
    assert_eq!((e.event_name.as_str(), e.user_id.as_deref()), ("payment-failed", Some("cus_1")));
    assert_eq!(
        serde_json::Value::Object(e.metadata.clone()),
        json!({"amount": {"amount": 1999, "currency": "eur"}, "invoice": {"url": "https://invoice.stripe.com/i/1", "value": "INV-7"},
               "retry_date": 1764806400, "attempt": 2})
    );
    assert_eq!(b.metric("trackcore_bridge_events_tracked_total"), 1);
    b.wait_metric("trackcore_delivered_total", 1);
}

#[test]
fn forged_stale_and_missing_signatures_get_401_and_no_event() {
    let emu = emulator();
    let (b, _) = start(&emu, RULES);
    let body = stripe_body("invoice.payment_failed", "cus_1");
    // Signed with another secret.
    assert_eq!(post_stripe(&b, &body, now(), "whsec_forged").0, 401);
    // Signed correctly, but 400 s ago: a replay beyond the 300 s tolerance.
    let (status, answer) = post_stripe(&b, &body, now() - 400, STRIPE_SECRET);
    assert_eq!(status, 401);
    assert!(answer["message"].as_str().unwrap().contains("tolerance"), "{answer}");
    // A correct signature over a different body.
    let sig = stripe_signature(STRIPE_SECRET, now(), b"{}");
    assert_eq!(post(&format!("{}/stripe", b.url), &[("Stripe-Signature", &sig)], &body).0, 401);
    // No signature at all, on each kind.
    assert_eq!(post(&format!("{}/stripe", b.url), &[], &body).0, 401);
    assert_eq!(post(&format!("{}/intercom", b.url), &[], b"{}").0, 401);
    assert_eq!(post(&format!("{}/shop", b.url), &[], b"{}").0, 401);
    assert_eq!(post(&format!("{}/shop", b.url), &[("X-Shop-Token", "guess")], b"{}").0, 401);
    assert_eq!(post(&format!("{}/intercom", b.url), &[("X-Hub-Signature", &intercom_signature("other", b"{}"))], b"{}").0, 401);
    assert_eq!(b.metric("trackcore_bridge_webhooks_rejected_total{reason=\"signature\"}"), 8);
    assert_eq!(b.metric("trackcore_bridge_events_tracked_total"), 0);
    assert_eq!(emu.stats().requests_total, 0, "nothing reached Intercom");
    // The secrets are not in anything the bridge said.
    let (_, stderr) = b.stop();
    for s in [STRIPE_SECRET, INTERCOM_SECRET, SHOP_SECRET, TOKEN] {
        assert!(!stderr.contains(s));
    }
}

#[test]
fn intercom_webhook_becomes_an_event_on_the_contact_by_its_intercom_id() {
    let emu = emulator();
    let (b, _) = start(&emu, RULES);
    let body = json!({"type": "notification_event", "topic": "contact.user.tag.created",
        "data": {"item": {"contact": {"id": "6657add46abd0167d9419cd2"}, "tag": {"name": "vip"}}}})
    .to_string();
    let (status, _) = post(&format!("{}/intercom", b.url), &[("X-Hub-Signature", &intercom_signature(INTERCOM_SECRET, body.as_bytes()))], body.as_bytes());
    assert_eq!(status, 200);
    assert!(emu.wait_events(1, Duration::from_secs(20)));
    let e = &emu.events()[0];
    assert_eq!((e.event_name.as_str(), e.id.as_deref(), e.metadata["tag"].as_str()), ("tagged", Some("6657add46abd0167d9419cd2"), Some("vip")));
}

#[test]
fn one_payload_may_match_several_rules() {
    let emu = emulator();
    let (b, _) = start(&emu, RULES);
    let body = json!({"event": "order.shipped", "customer": {"email": "sam@example.com"}, "order": {"id": 88231, "shipping": "overnight"}}).to_string();
    let (status, answer) = post(&format!("{}/shop", b.url), &[("X-Shop-Token", SHOP_SECRET)], body.as_bytes());
    assert_eq!((status, answer["events"].as_u64()), (200, Some(2)), "{answer}");
    assert!(emu.wait_events(2, Duration::from_secs(20)));
    let mut names: Vec<_> = emu.events().into_iter().map(|e| (e.event_name, e.email, e.metadata.get("order").cloned())).collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(names[0], ("express-order".into(), Some("sam@example.com".into()), None));
    assert_eq!(names[1], ("order-shipped".into(), Some("sam@example.com".into()), Some(json!("88231"))));
}

#[test]
fn unmatched_malformed_oversized_and_invalid_payloads() {
    let emu = emulator();
    let (b, _) = start(&emu, RULES);
    // Matches no rule: 2xx, counted.
    let (status, answer) = post_stripe(&b, &stripe_body("invoice.paid", "cus_1"), now(), STRIPE_SECRET);
    assert_eq!((status, answer), (200, json!({"matched": false, "events": 0})));
    assert_eq!(b.metric("trackcore_bridge_webhooks_unmatched_total"), 1);
    // Signed, but not JSON: 400.
    assert_eq!(post_stripe(&b, b"{not json", now(), STRIPE_SECRET).0, 400);
    // Over max_body_bytes (4096): 413, whether or not it says its length up front.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_eq!(post(&format!("{}/shop", b.url), &[("X-Shop-Token", SHOP_SECRET)], big.as_bytes()).0, 413);
    assert_eq!(post_chunked(&b.url, "/shop", &[("X-Shop-Token", SHOP_SECRET)], big.as_bytes()), 413);
    // Matched, but the currency is not a code: 422 naming the rule and the field.
    let mut bad: serde_json::Value = serde_json::from_slice(&stripe_body("invoice.payment_failed", "cus_1")).unwrap();
    bad["data"]["object"]["currency"] = json!("euros");
    let bad = bad.to_string();
    let (status, answer) = post_stripe(&b, bad.as_bytes(), now(), STRIPE_SECRET);
    assert_eq!(status, 422);
    assert_eq!((answer["rule"].as_str(), answer["field"].as_str(), answer["code"].as_str()), (Some("payment failed"), Some("metadata.amount"), Some("invalid_money")), "{answer}");
    // Matched without an identity.
    let body = json!({"event": "order.shipped", "customer": {}, "order": {"id": 1}}).to_string();
    let (status, answer) = post(&format!("{}/shop", b.url), &[("X-Shop-Token", SHOP_SECRET)], body.as_bytes());
    assert_eq!((status, answer["code"].as_str()), (422, Some("missing_identity")), "{answer}");
    // Unknown path, wrong method.
    assert_eq!(post(&format!("{}/nope", b.url), &[], b"{}").0, 404);
    assert_eq!(get(&format!("{}/stripe", b.url)).0, 405);
    assert_eq!(get(&format!("{}/healthz", b.url)), (200, "ok\n".into()));
    for (reason, n) in [("malformed", 1), ("too_large", 2), ("invalid_event", 2), ("not_found", 1), ("method", 1)] {
        assert_eq!(b.metric(&format!("trackcore_bridge_webhooks_rejected_total{{reason=\"{reason}\"}}")), n, "{reason}");
    }
    assert_eq!(b.metric("trackcore_bridge_events_tracked_total"), 0);
    // Still serving after all of that.
    assert_eq!(post_stripe(&b, &stripe_body("invoice.payment_failed", "cus_2"), now(), STRIPE_SECRET).0, 200);
    assert!(emu.wait_events(1, Duration::from_secs(20)));
    assert_eq!(emu.events().len(), 1);
}

#[test]
fn sighup_reloads_rules_without_losing_accepted_events_and_a_broken_reload_keeps_the_old_ones() {
    let emu = emulator();
    let (b, file) = start(&emu, RULES);
    // Webhooks accepted while Intercom holds every request: events in the core.
    emu.hold();
    for i in 0..3 {
        assert_eq!(post_stripe(&b, &stripe_body("invoice.payment_failed", &format!("cus_{i}")), now(), STRIPE_SECRET).0, 200);
    }
    std::fs::write(&file, RULES.replace("event = \"payment-failed\"", "event = \"invoice-failed\"")).unwrap();
    b.signal(libc::SIGHUP);
    b.wait_metric("trackcore_bridge_reloads_total{result=\"ok\"}", 1);
    assert_eq!(post_stripe(&b, &stripe_body("invoice.payment_failed", "cus_9"), now(), STRIPE_SECRET).0, 200);
    // A broken file: refused, the last good rules stay.
    std::fs::write(&file, "[[route]]\npath = \"/stripe\"\nkind = \"strype\"\n").unwrap();
    b.signal(libc::SIGHUP);
    b.wait_metric("trackcore_bridge_reloads_total{result=\"failed\"}", 1);
    assert_eq!(post_stripe(&b, &stripe_body("invoice.payment_failed", "cus_10"), now(), STRIPE_SECRET).0, 200);
    emu.open();
    assert!(emu.wait_events(5, Duration::from_secs(20)));
    let mut got: Vec<_> = emu.events().into_iter().map(|e| (e.user_id.unwrap_or_default(), e.event_name)).collect();
    got.sort();
    assert_eq!(
        got,
        [("cus_0", "payment-failed"), ("cus_1", "payment-failed"), ("cus_10", "invoice-failed"), ("cus_2", "payment-failed"), ("cus_9", "invoice-failed")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (code, stderr) = b.stop();
    assert_eq!(code, 0);
    assert!(stderr.contains("line 3") && stderr.contains("strype") && stderr.contains("keeping the old rules"), "{stderr}");
}

#[test]
fn a_broken_rule_file_is_refused_at_start_with_line_and_reason() {
    let emu = emulator();
    let dir = scratch("broken");
    let file = dir.join("bridge.toml");
    std::fs::write(&file, "[[route]]\npath = \"/x\"\nkind = \"json\"\n\n[[route.rule]]\nevent = \"e\"\nuser_id = \"user.id\"\n").unwrap();
    let r = run(trackcore(&emu).args(["bridge", "--config"]).arg(&file));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 7") && r.stderr.contains("not a JSON Pointer"), "{}", r.stderr);
    // A secret the environment does not hold.
    std::fs::write(&file, "[[route]]\npath = \"/x\"\nkind = \"stripe\"\nsecret_env = \"T_UNSET_SECRET\"\n[[route.rule]]\nevent = \"e\"\nuser_id = \"/u\"\n").unwrap();
    let r = run(trackcore(&emu).args(["bridge", "--config"]).arg(&file));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 4") && r.stderr.contains("T_UNSET_SECRET"), "{}", r.stderr);
}

// ---- the examples, checked and served ----

#[test]
fn bridge_check_runs_every_example_payload() {
    let ex = examples();
    let cases = [
        ("stripe-invoice-payment-failed.json", vec![r#"rule "stripe payment failed": event {"event_name":"payment-failed","created_at":1764547200,"email":"jane@example.com","metadata":{"invoice":{"url":"https://invoice.stripe.com/i/acct_1/test_inv_7","value":"A1B2C3-0007"},"amount":{"amount":1999,"currency":"eur"},"attempt":2,"next_attempt_date":1764806400,"stripe_customer":"cus_QExample"}}"#]),
        ("intercom-conversation-user-created.json", vec![r#"rule "intercom conversation started": event {"event_name":"started-conversation","created_at":1764547300,"id":"6657add46abd0167d9419cd2","metadata":{"conversation":{"url":"https://app.intercom.com/a/apps/abc123/conversations/1911149811","value":"1911149811"},"channel":"customer_initiated"}}"#]),
        ("shop-order-shipped.json", vec![
            r#"rule "order shipped": event {"event_name":"order-shipped","created_at":1764547400,"user_id":"u-1042","email":"sam@example.com","metadata":{"order":"88231","total":{"amount":4999,"currency":"usd"},"tracking":{"url":"https://parcels.example/t/88231","value":"Track parcel"},"items":3}}"#,
            r#"rule "express order": event {"event_name":"express-order","created_at":1764547400,"user_id":"u-1042","metadata":{"shipping":"express"}}"#,
        ]),
    ];
    for (sample, want) in cases {
        let r = run(bare().args(["bridge", "check", "--config"]).arg(ex.join("bridge.toml")).arg("--payload").arg(ex.join(sample)));
        assert_eq!(r.code, 0, "{sample}: {}{}", r.stdout, r.stderr);
        let events: Vec<&str> = r.stdout.lines().map(str::trim).filter(|l| l.contains(": event ")).collect();
        assert_eq!(events, want, "{sample}");
        assert!(r.stdout.ends_with(&format!("{} events, 0 invalid\n", want.len())), "{}", r.stdout);
    }
}

#[test]
fn bridge_check_says_why_nothing_matched() {
    let dir = scratch("check");
    let payload = dir.join("p.json");
    std::fs::write(&payload, r#"{"type":"invoice.paid"}"#).unwrap();
    let r = run(bare().args(["bridge", "check", "--route", "/webhooks/stripe", "--config"]).arg(examples().join("bridge.toml")).arg("--payload").arg(&payload));
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "route /webhooks/stripe (stripe):\n  rule \"stripe payment failed\": no match: /type is \"invoice.paid\", wanted \"invoice.payment_failed\"\n0 events, 0 invalid\n"
    );
    std::fs::write(&payload, "{oops").unwrap();
    let r = run(bare().args(["bridge", "check", "--config"]).arg(examples().join("bridge.toml")).arg("--payload").arg(&payload));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not JSON"), "{}", r.stderr);
}

#[test]
fn the_example_bridge_serves_its_signed_samples_into_intercom() {
    let emu = emulator();
    let ex = examples();
    let b = Bridge::start(
        &emu,
        &ex.join("bridge.toml"),
        &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET), ("INTERCOM_CLIENT_SECRET", INTERCOM_SECRET), ("SHOP_WEBHOOK_TOKEN", SHOP_SECRET)],
    );
    let read = |f: &str| std::fs::read(ex.join(f)).unwrap();
    let stripe = read("stripe-invoice-payment-failed.json");
    let sig = stripe_signature(STRIPE_SECRET, now(), &stripe);
    assert_eq!(post(&format!("{}/webhooks/stripe", b.url), &[("Stripe-Signature", &sig)], &stripe).0, 200);
    let intercom = read("intercom-conversation-user-created.json");
    let sig = intercom_signature(INTERCOM_SECRET, &intercom);
    assert_eq!(post(&format!("{}/webhooks/intercom", b.url), &[("X-Hub-Signature", &sig)], &intercom).0, 200);
    let shop = read("shop-order-shipped.json");
    assert_eq!(post(&format!("{}/webhooks/shop", b.url), &[("X-Shop-Token", SHOP_SECRET)], &shop).0, 200);
    assert!(emu.wait_events(4, Duration::from_secs(20)));
    let mut names: Vec<_> = emu.events().into_iter().map(|e| e.event_name).collect();
    names.sort();
    assert_eq!(names, ["express-order", "order-shipped", "payment-failed", "started-conversation"]);
    assert_eq!(b.metric("trackcore_bridge_webhooks_matched_total"), 3);
    assert_eq!(b.metric("trackcore_bridge_webhooks_received_total"), 3);
    assert_eq!(b.metric("trackcore_bridge_events_tracked_total"), 4);
    let (_, metrics) = get(&format!("{}/metrics", b.url));
    assert!(!metrics.contains(TOKEN) && !metrics.contains(STRIPE_SECRET));
    assert_eq!(b.stop().0, 0);
}

#[test]
fn with_a_spool_a_2xx_means_on_disk_so_a_kill_9_after_it_loses_nothing() {
    let emu = emulator();
    let spool = scratch("bridge-spool").join("spool");
    let rules = RULES.replace("[tracker]\n", &format!("[tracker]\nspool_dir = {:?}\n", spool.display().to_string()));
    // Intercom answers nothing while the bridge runs: the event can only be on disk.
    emu.hold();
    let (b, _) = start(&emu, &rules);
    let body = stripe_body("invoice.payment_failed", "cus_spooled");
    let (status, _) = post_stripe(&b, &body, now(), STRIPE_SECRET);
    assert_eq!(status, 200);
    drop(b); // SIGKILL, right after the acknowledgement
    emu.open();
    // A tracker on the same spool (the bridge restarted) delivers it.
    let mut c = trackcore::Config::default();
    for (k, v) in [("access_token", TOKEN), ("base_url", &emu.base_url()), ("spool_dir", &spool.display().to_string())] {
        c.set(k, trackcore::OptionValue::Str(v.to_string())).unwrap();
    }
    let t = trackcore::Tracker::new(c).unwrap();
    assert!(t.flush(Duration::from_secs(30)), "{:?}", t.stats());
    assert_eq!(t.stats().recovered, 1);
    assert!(emu.events().iter().any(|e| e.user_id.as_deref() == Some("cus_spooled")));
}

// ---- a full core queue: 503, never a 2xx for a dropped event ----

/// A bridge on one unsigned json route, `[tracker]` options prepended to the table.
fn start_tiny(emu: &trackcore_emulator::Emulator, tracker: &str) -> Bridge {
    let rules = format!("[tracker]\n{tracker}\n[[route]]\npath = \"/hook\"\nkind = \"json\"\n\n[[route.rule]]\nname = \"hooked\"\nevent = \"hooked\"\nuser_id = \"/user\"\ncreated_at = \"/at\"\n");
    start(emu, &rules).0
}

fn post_hook(b: &Bridge, user: &str, at: i64) -> (u16, serde_json::Value) {
    post(&format!("{}/hook", b.url), &[], json!({"user": user, "at": at}).to_string().as_bytes())
}

/// Wait until the emulator holds an event for each of `users` (woken by each
/// new event, not by a clock); fails after 30 s.
fn wait_delivered(emu: &trackcore_emulator::Emulator, users: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = emu.events();
        let missing: Vec<_> = users.iter().filter(|u| !events.iter().any(|e| e.user_id.as_deref() == Some(u.as_str()) && e.event_name == "hooked")).collect();
        if missing.is_empty() {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "acknowledged but never delivered: {missing:?}; delivered: {:?}", events.iter().map(|e| &e.user_id).collect::<Vec<_>>());
        emu.wait_events(events.len() + 1, left);
    }
}

#[test]
fn a_webhook_whose_event_the_full_queue_dropped_gets_503_and_every_2xx_is_delivered() {
    let emu = emulator();
    // Intercom answers nothing: one event in flight, one queued, the rest find the queue full.
    emu.hold();
    let b = start_tiny(&emu, "queue_capacity = 1\noverflow = \"drop_newest\"\nmax_in_flight = 1");
    let at = now() - 60;
    let (status, answer) = post_hook(&b, "u-0", at);
    assert_eq!(status, 200, "{answer}");
    assert!(emu.wait_held(1, Duration::from_secs(20)), "the first event never reached Intercom");
    let (mut acked, mut refused) = (vec!["u-0".to_string()], Vec::new());
    for i in 1..6 {
        let user = format!("u-{i}");
        match post_hook(&b, &user, at) {
            (200, _) => acked.push(user),
            (503, answer) => {
                assert_eq!(answer["error"], "not_kept", "{answer}");
                assert!(answer["message"].as_str().unwrap().contains("full queue"), "{answer}");
                refused.push(user);
            }
            other => panic!("{user}: {other:?}"),
        }
    }
    // One in flight and one queued at most; the others were dropped.
    assert!(acked.len() <= 2 && !refused.is_empty(), "acknowledged {acked:?}, refused {refused:?}");
    assert_eq!(b.metric("trackcore_bridge_webhooks_rejected_total{reason=\"dropped\"}"), refused.len() as u64);
    assert!(b.metric("trackcore_dropped_queue_full_total") >= refused.len() as u64);
    emu.open();
    wait_delivered(&emu, &acked);
    // The sender's retries, each once the queue is empty again: kept and
    // delivered (a dropped event left no de-duplication key behind).
    for user in &refused {
        let (status, answer) = post_hook(&b, user, at);
        assert_eq!(status, 200, "{user}: {answer}");
        wait_delivered(&emu, std::slice::from_ref(user));
    }
}

#[test]
fn by_default_a_full_queue_makes_the_webhook_wait_for_room_instead_of_dropping() {
    let emu = emulator();
    emu.hold();
    // No overflow in [tracker]: the bridge's default is "block".
    let b = start_tiny(&emu, "queue_capacity = 1\nmax_in_flight = 1\nblock_timeout = 120");
    let at = now() - 60;
    assert_eq!(post_hook(&b, "u-0", at).0, 200);
    assert!(emu.wait_held(1, Duration::from_secs(20)));
    assert_eq!(post_hook(&b, "u-1", at).0, 200);
    // The queue is full: this one waits in track() (and /metrics still answers).
    let url = b.url.clone();
    let waiting = std::thread::spawn(move || post(&format!("{url}/hook"), &[], json!({"user": "u-2", "at": at}).to_string().as_bytes()));
    b.wait_metric("trackcore_blocked", 1);
    emu.open();
    let (status, answer) = waiting.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    wait_delivered(&emu, &["u-0", "u-1", "u-2"].map(String::from));
    assert_eq!(b.metric("trackcore_dropped_total"), 0);
}

#[test]
fn drop_oldest_is_refused_at_start_because_it_would_drop_acknowledged_events() {
    let emu = emulator();
    let dir = scratch("drop-oldest");
    let file = dir.join("bridge.toml");
    std::fs::write(&file, "[tracker]\noverflow = \"drop_oldest\"\n[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \"e\"\nuser_id = \"/u\"\n").unwrap();
    let r = run(trackcore(&emu).args(["bridge", "--listen", "127.0.0.1:0", "--config"]).arg(&file));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("drop_oldest") && r.stderr.contains("answered 2xx"), "{}", r.stderr);
    // The same from the command line.
    std::fs::write(&file, "[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \"e\"\nuser_id = \"/u\"\n").unwrap();
    let r = run(trackcore(&emu).args(["bridge", "--listen", "127.0.0.1:0", "--set", "overflow=drop_oldest", "--config"]).arg(&file));
    assert_eq!(r.code, 2, "{}", r.stderr);
}
