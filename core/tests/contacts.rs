//! Events of contacts Intercom does not know yet (`404 User Not Found`), in the
//! three `unknown_contact` modes, over real HTTP against the emulator run with
//! `require_known_users` (it answers 404 for unknown contacts, creates contacts
//! on `POST /contacts` and answers 409 `conflict` for one that exists).
//!
//! The tests order themselves on what the tracker and the emulator report
//! (events held, requests seen), never on sleeps.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use trackcore::{Event, OptionValue, Stats, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig, ScriptedResponse};

fn strict_emulator() -> Emulator {
    emulator_with(EmulatorConfig { tokens: vec![TOKEN.into()], require_known_users: true, ..Default::default() })
}

fn mode(m: &str) -> (&'static str, OptionValue) {
    ("unknown_contact", OptionValue::Str(m.into()))
}

/// Small windows so the tests take seconds, not the 15-minute default.
fn quick(window: f64) -> [(&'static str, OptionValue); 2] {
    [("unknown_contact_wait", OptionValue::Float(window)), ("unknown_contact_backoff", OptionValue::Float(0.1))]
}

/// Wait until `cond` holds for the tracker's stats (it is polled: the stats
/// are the scheduler's own report of where the events are).
fn until(t: &Tracker, timeout: Duration, cond: impl Fn(&Stats) -> bool) -> Stats {
    let end = Instant::now() + timeout;
    loop {
        let s = t.stats();
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < end, "condition not reached within {timeout:?}: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn event_for(user: &str, i: usize) -> Event {
    Event::new("signed-up").user_id(user).created_at(1_700_000_000 + i as i64).meta("n", i as i64)
}

#[test]
fn wait_delivers_every_event_once_its_contact_appears() {
    let emu = strict_emulator();
    emu.add_contact(Some("known"), None).unwrap();
    let [w, b] = quick(60.0);
    let (t, reports) = tracker(&emu, &[mode("wait"), w, b]);
    for i in 0..20 {
        t.track(event_for("late-user", i)).unwrap();
    }
    t.track(event_for("known", 0)).unwrap();
    // Every event of the unknown contact was answered 404 once and is held
    // (at most one is out again as the contact's probe).
    let s = until(&t, Duration::from_secs(10), |s| s.waiting_for_contact >= 19 && s.delivered == 1);
    assert_eq!((s.failed, s.dropped), (0, 0), "{s:?}");
    assert_accounted(&s);
    assert!(s.queued >= s.waiting_for_contact, "waiting events are part of queued: {s:?}");
    // The contact appears elsewhere (the app's sign-up code, a sync).
    emu.add_contact(Some("late-user"), None).unwrap();
    assert!(t.flush(Duration::from_secs(10)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!((s.delivered, s.failed, s.waiting_for_contact, s.queued), (21, 0, 0, 0), "{s:?}");
    assert_accounted(&s);
    let stored: HashSet<i64> = emu
        .events()
        .iter()
        .filter(|e| e.user_id.as_deref() == Some("late-user"))
        .map(|e| e.body["created_at"].as_i64().unwrap())
        .collect();
    assert_eq!(stored.len(), 20, "every held event delivered once, with its own created_at");
    assert!(stored.contains(&1_700_000_000), "created_at kept from track() time");
    assert!(codes(&reports).is_empty(), "{:?}", codes(&reports));
    assert_eq!(emu.contacts().len(), 2, "wait mode creates nothing");
}

#[test]
fn wait_reports_events_whose_contact_never_appears_after_the_window_with_few_requests() {
    let emu = strict_emulator();
    let [w, b] = quick(1.0);
    let (t, reports) = tracker(&emu, &[mode("wait"), w, b, ("backoff_max", OptionValue::Float(0.4))]);
    let start = Instant::now();
    for i in 0..10 {
        t.track(event_for("ghost", i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(10)), "settled (reported) after the window: {:?}", t.stats());
    assert!(start.elapsed() >= Duration::from_millis(950), "reported before the window: {:?}", start.elapsed());
    let got = reports.lock().unwrap().clone();
    assert_eq!(got.len(), 10, "one report per event: {got:?}");
    for (code, message, body) in &got {
        assert_eq!(code, "contact_not_found");
        assert!(message.contains("User Not Found") && message.contains("did not appear within"), "{message}");
        assert_eq!(body["user_id"], "ghost");
    }
    let s = t.stats();
    assert_eq!((s.failed_rejected, s.delivered, s.waiting_for_contact, s.queued), (10, 0, 0, 0), "{s:?}");
    assert_accounted(&s);
    // One probe per contact per backoff (0.1 s doubling to 0.4 s), not one per
    // event. How many of the 10 go out before the first 404 comes back depends
    // on the machine (all 10 in one batch, or only the first): the rest wait
    // behind the contact's probe. So: at least the first send and one probe,
    // at most every event once plus the probes the window leaves room for.
    let posts = emu.stats().event_posts;
    assert!((2..=20).contains(&posts), "{posts} POST /events for 10 events over a 1 s window");
}

#[test]
fn report_reports_each_event_once_and_never_retries() {
    let emu = strict_emulator();
    let (t, reports) = tracker(&emu, &[mode("report")]);
    for i in 0..5 {
        t.track(event_for("nobody", i)).unwrap();
    }
    assert!(t.flush(Duration::from_secs(10)));
    let got = reports.lock().unwrap().clone();
    assert_eq!(got.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), vec!["contact_not_found"; 5]);
    assert!(got[0].1.contains("not retried (unknown_contact=report)"), "{}", got[0].1);
    let s = t.stats();
    assert_eq!((s.failed_rejected, s.retried, s.waiting_for_contact), (5, 0, 0), "{s:?}");
    assert_accounted(&s);
    assert_eq!(emu.stats().event_posts, 5, "no retry");
    assert!(emu.contacts().is_empty());
}

#[test]
fn create_makes_each_of_50_contacts_once_and_delivers_all_1000_events() {
    let emu = strict_emulator();
    let (t, reports) = tracker(&emu, &[mode("create"), ("unknown_contact_backoff", OptionValue::Float(0.1))]);
    for i in 0..1000 {
        let ev = if i % 5 == 0 {
            // Some carry an email as well: it goes into the contact.
            event_for(&format!("new-{}", i % 50), i).email(format!("new-{}@example.com", i % 50))
        } else {
            event_for(&format!("new-{}", i % 50), i)
        };
        t.track(ev).unwrap();
    }
    assert!(t.flush(Duration::from_secs(30)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!((s.delivered, s.failed, s.dropped, s.waiting_for_contact, s.queued), (1000, 0, 0, 0, 0), "{s:?}");
    assert_accounted(&s);
    assert!(codes(&reports).is_empty(), "{:?}", codes(&reports));
    let contacts = emu.contacts();
    assert_eq!(contacts.len(), 50, "exactly one contact per user");
    assert_eq!(s.contacts_created, 50, "stats count the contacts created: {s:?}");
    let ids: HashSet<_> = contacts.iter().filter_map(|c| c.external_id.clone()).collect();
    assert_eq!(ids.len(), 50);
    assert!(ids.contains("new-0") && ids.contains("new-49"));
    assert_eq!(emu.events().len(), 1000, "every event stored once");
}

#[test]
fn create_counts_a_contact_created_elsewhere_meanwhile_409_as_success() {
    let emu = strict_emulator();
    // The contact exists, but the event's first answer is a 404 (it was made
    // elsewhere between that answer and our POST /contacts): the creation gets 409.
    emu.add_contact(Some("racer"), None).unwrap();
    emu.script(vec![ScriptedResponse::status(404)]);
    let (t, reports) = tracker(&emu, &[mode("create"), ("max_in_flight", OptionValue::Int(1))]);
    t.track(event_for("racer", 1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!((s.delivered, s.failed), (1, 0), "{s:?}");
    assert!(codes(&reports).is_empty(), "{:?}", codes(&reports));
    assert_eq!(emu.contacts().len(), 1, "no second contact");
    assert_eq!(s.contacts_created, 0, "a 409 is not a contact this tracker created: {s:?}");
    assert_eq!(emu.stats().by_status.get("409").copied(), Some(1), "{:?}", emu.stats().by_status);
}

#[test]
fn create_falls_back_to_wait_for_events_known_only_by_intercom_id_and_shutdown_reports_them() {
    let emu = strict_emulator();
    let [w, b] = quick(60.0);
    let (t, reports) = tracker(&emu, &[mode("create"), w, b]);
    t.track(Event::new("signed-up").id("65a1f3c2ffffffffffffffff")).unwrap();
    until(&t, Duration::from_secs(10), |s| s.waiting_for_contact == 1);
    let start = Instant::now();
    assert!(!t.shutdown(Duration::from_secs(5)), "something was given up");
    assert!(start.elapsed() < Duration::from_secs(2), "shutdown does not wait for a contact: {:?}", start.elapsed());
    let got = reports.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "undelivered_at_shutdown");
    assert!(got[0].1.contains("waiting") && got[0].1.contains("contact"), "{}", got[0].1);
    let s = t.stats();
    assert_eq!((s.dropped_shutdown, s.waiting_for_contact, s.queued), (1, 0, 0), "{s:?}");
    assert_accounted(&s);
    assert!(emu.contacts().is_empty(), "an Intercom id cannot be created");
    assert_eq!(emu.stats().by_status.get("409"), None);
}

#[test]
fn the_mode_is_checked_by_name() {
    let mut c = trackcore::Config::default();
    let e = c.set("unknown_contact", OptionValue::Str("ignore".into())).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    assert_eq!(e.to_string(), "config.unknown_contact: must be one of report, wait, create; got \"ignore\"");
    assert_eq!(c.get("unknown_contact"), Some(OptionValue::Str("wait".into())), "wait is the default");
    assert_eq!(c.get("unknown_contact_wait"), Some(OptionValue::Float(900.0)), "15 minutes by default");
}
