//! The tracker owns its lifecycle behind `&self`: fork, concurrent shutdowns,
//! calls from inside the error callback, and memory mode running the real
//! pipeline. Over real HTTP against the in-process emulator; synchronised on
//! the emulator's gate, never on sleeps.

mod common;

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::*;
use trackcore::{Config, Event, OptionValue, Tracker};
use trackcore_emulator::ScriptedResponse;

#[test]
fn a_forked_child_starts_a_fresh_pipeline_and_never_resends_the_parents_events() {
    let emu = emulator();
    emu.hold();
    let (t, _) = tracker(&emu, &[("max_in_flight", OptionValue::Int(1))]);
    t.track(ev(1)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)), "the parent's first event is in flight");
    t.track(ev(2)).unwrap(); // queued in the parent
    let mut slot = Some(t);
    let pid = in_child(|| {
        let t = slot.take().unwrap();
        // The parent's threads do not exist here; its counters are not ours.
        if t.stats().tracked != 0 {
            return 10;
        }
        if t.track(ev(100)).is_err() {
            return 11;
        }
        if !t.flush(Duration::from_secs(30)) {
            return 12;
        }
        let s = t.stats();
        if (s.tracked, s.delivered, s.queued, s.in_flight) != (1, 1, 0, 0) {
            return 13;
        }
        // Dropping it here shuts the child's pipeline down and leaves the parent's alone.
        drop(t);
        0
    });
    assert!(emu.wait_held(2, Duration::from_secs(30)), "the child's event reached the emulator: {:?}", emu.gate());
    emu.open();
    assert_eq!(exit_code(pid), 0);
    let t = slot.expect("the parent still has its tracker");
    assert!(t.flush(Duration::from_secs(10)));
    let mut ids: Vec<String> = emu.events().iter().filter_map(|e| e.user_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec!["u-1", "u-100", "u-2"], "each event exactly once");
    assert_eq!(emu.stats().event_posts, 3, "nothing was sent twice");
    let s = t.stats();
    assert_eq!((s.tracked, s.delivered), (2, 2), "{s:?}");
}

#[test]
fn a_tracker_shut_down_before_a_fork_stays_closed_in_the_child() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[]);
    assert!(t.shutdown(Duration::from_secs(5)));
    let pid = in_child(|| match t.track(ev(1)) {
        Err(e) if e.code() == "closed" => 0,
        _ => 1,
    });
    assert_eq!(exit_code(pid), 0);
    assert_eq!(emu.stats().event_posts, 0);
}

#[test]
fn concurrent_shutdowns_each_keep_their_own_deadline() {
    let emu = emulator();
    emu.hold();
    let (t, reports) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)));
    std::thread::scope(|s| {
        let long = s.spawn(|| {
            let start = Instant::now();
            (t.shutdown(Duration::from_secs(20)), start.elapsed())
        });
        // 1 s, so its last fifth (200 ms) gives the report of the event it
        // gives up time to reach the callback on a loaded machine.
        let start = Instant::now();
        let clean = t.shutdown(Duration::from_secs(1));
        let short = start.elapsed();
        assert!(!clean);
        assert!(short < Duration::from_millis(1500), "the 1 s shutdown took {short:?}");
        let (clean, took) = long.join().unwrap();
        assert!(!clean, "the event was given up");
        assert!(took < Duration::from_secs(5), "the pipeline stopped by the earliest deadline: {took:?}");
    });
    assert_eq!(codes(&reports), vec!["undelivered_at_shutdown"]);
    emu.open();
}

/// What each call from inside the callback returned, and how long it took.
type Calls = Arc<Mutex<Vec<(bool, Duration)>>>;

/// A tracker whose error callback calls back into the tracker with `during`.
fn reentrant(base_url: &str, during: fn(&Tracker) -> bool) -> (Arc<Tracker>, Calls) {
    let (mut c, _) = config(base_url, &[]);
    let cell: Arc<OnceLock<Weak<Tracker>>> = Arc::default();
    let calls: Calls = Arc::default();
    let (cb_cell, cb_calls) = (cell.clone(), calls.clone());
    c.on_error = Some(Arc::new(move |_, _| {
        if let Some(t) = cb_cell.get().and_then(Weak::upgrade) {
            let start = Instant::now();
            let r = during(&t);
            cb_calls.lock().unwrap().push((r, start.elapsed()));
        }
    }));
    let t = Arc::new(Tracker::new(c).unwrap());
    cell.set(Arc::downgrade(&t)).unwrap();
    (t, calls)
}

#[test]
fn flush_from_inside_the_error_callback_returns_at_once() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(400).with_error("parameter_invalid", "bad")]);
    let (t, calls) = reentrant(&emu.base_url(), |t| t.flush(Duration::from_secs(60)));
    t.track(ev(1)).unwrap();
    assert!(t.flush(Duration::from_secs(10)), "the report reached the callback, which returned");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(!calls[0].0, "a flush from the callback cannot vouch for anything");
    assert!(calls[0].1 < Duration::from_secs(1), "it returned at once: {:?}", calls[0].1);
}

#[test]
fn shutdown_from_inside_the_error_callback_does_not_wait_for_itself() {
    let emu = emulator();
    emu.script(vec![ScriptedResponse::status(400).with_error("parameter_invalid", "bad")]);
    let (t, calls) = reentrant(&emu.base_url(), |t| t.shutdown(Duration::from_secs(60)));
    t.track(ev(1)).unwrap();
    t.flush(Duration::from_secs(10));
    let start = Instant::now();
    t.shutdown(Duration::from_secs(10));
    assert!(start.elapsed() < Duration::from_secs(5));
    // The callback's own shutdown may already have stopped the tracker, so
    // this one can return while the callback is still finishing: a running
    // callback is waited for with the call made for that.
    assert!(t.wait_for_callbacks(Duration::from_secs(5)), "the callback returned");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].1 < Duration::from_secs(5), "{:?}", calls[0].1);
    assert_eq!(t.track(ev(2)).unwrap_err().code(), "closed");
}

#[test]
fn memory_mode_runs_the_real_pipeline_de_duplication_included() {
    let mut c = Config::default();
    c.set("memory", OptionValue::Bool(true)).unwrap();
    let t = Tracker::new(c).unwrap();
    let signup = || Event::new("signed-up").user_id("u-1").created_at(1_700_000_000);
    t.track(signup()).unwrap();
    t.track(signup()).unwrap();
    assert_eq!(t.recorded().len(), 1, "the copy is dropped, as in live mode");
    let s = t.stats();
    assert_eq!((s.tracked, s.delivered, s.deduplicated), (2, 1, 1), "{s:?}");
    assert!(s.balanced(), "{s:?}");
}

#[test]
fn track_never_waits_on_a_shutdown_in_progress() {
    let emu = emulator();
    emu.hold();
    let (t, _) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(emu.wait_held(1, Duration::from_secs(10)));
    std::thread::scope(|s| {
        let shutdown = s.spawn(|| t.shutdown(Duration::from_secs(3)));
        // Whether it lands before or after the shutdown began, track() answers at once.
        let start = Instant::now();
        let _ = t.track(ev(2));
        assert!(start.elapsed() < Duration::from_millis(200), "{:?}", start.elapsed());
        emu.open();
        shutdown.join().unwrap();
    });
    assert!(t.stats().balanced(), "{:?}", t.stats());
}

#[test]
fn a_second_shutdown_answers_at_once_with_the_first_ones_result() {
    let emu = emulator();
    let (t, _) = tracker(&emu, &[]);
    t.track(ev(1)).unwrap();
    assert!(t.shutdown(Duration::from_secs(10)));
    let start = Instant::now();
    assert!(t.shutdown(Duration::ZERO), "nothing was given up");
    assert!(start.elapsed() < Duration::from_millis(100));
}

/// A rate limiter that holds the dispatcher inside `reserve` until released:
/// a dispatcher that cannot keep up, on demand.
struct Stuck(crossbeam_channel::Receiver<()>);

impl trackcore::RateLimiter for Stuck {
    fn reserve(&mut self, wanted: u32, _now: Instant) -> trackcore::Reservation {
        let _ = self.0.recv();
        trackcore::Reservation::Granted(wanted)
    }
    fn observe(&mut self, _info: &trackcore::RateLimitInfo, _now: Instant) {}
}

#[test]
fn drop_oldest_keeps_memory_bounded_when_the_dispatcher_falls_behind() {
    let emu = emulator();
    let (release, stuck) = crossbeam_channel::unbounded();
    let (mut c, _) = config(&emu.base_url(), &[("queue_capacity", OptionValue::Int(10)), ("overflow", OptionValue::Str("drop_oldest".into()))]);
    let slot = std::sync::Mutex::new(Some(stuck));
    c.rate_limiter = trackcore::LimiterChoice::custom(move |_| Stuck(slot.lock().unwrap().take().expect("built once")));
    let t = Tracker::new(c).unwrap();
    t.track(ev(0)).unwrap();
    // The dispatcher is held inside reserve() now (or about to be): it takes nothing more.
    for i in 1..5_000 {
        t.track(ev(i)).unwrap();
    }
    let s = t.stats();
    assert!(s.queued <= 10 + 1024 + 1, "queued {} with a capacity of 10", s.queued);
    assert!(s.dropped >= 5_000 - 10 - 1024 - 1, "{s:?}");
    drop(release);
    assert!(t.flush(Duration::from_secs(20)), "{:?}", t.stats());
    assert!(t.stats().balanced(), "{:?}", t.stats());
}
