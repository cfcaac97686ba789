//! Delivery trouble is visible as soon as it is known: one log line per change
//! of state, and a report to the error callback once a failure is persistent,
//! long before any event is given up. (Its own test binary: it installs the
//! process's logger.)

mod common;

use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use common::*;
use trackcore::{OptionValue, Tracker};

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("trackcore") && m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap().push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// Start capturing the process's log lines, and run alone: the logger is the
/// process's, and both tests point a tracker at a closed port, so one test's
/// "delivery failing" line would otherwise land in the other's capture.
/// Returns the guard to hold for the whole test and where its lines begin.
fn capture_logs() -> (MutexGuard<'static, ()>, usize) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
    let from = LINES.lock().unwrap().len();
    (guard, from)
}

#[test]
fn a_closed_port_is_logged_once_and_reported_before_any_event_is_lost() {
    let (_alone, from) = capture_logs();
    // A port nothing listens on: every connection is refused.
    let port = free_port();
    let (mut c, _) = config(&format!("http://127.0.0.1:{port}"), &[("retry_deadline", OptionValue::Float(600.0))]);
    let (tx, rx) = crossbeam_channel::unbounded();
    c.on_error = Some(std::sync::Arc::new(move |_, e| {
        let _ = tx.send(e.code());
    }));
    let t = Tracker::new(c).unwrap();
    for i in 0..20 {
        t.track(ev(i)).unwrap();
    }
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("the callback hears of the stall");
    assert_eq!(first, "delivery_stalled");
    let s = t.stats();
    assert_eq!((s.failed, s.dropped), (0, 0), "no event was lost: {s:?}");
    assert!(s.queued + s.in_flight == 20, "{s:?}");
    let lines = LINES.lock().unwrap()[from..].to_vec();
    let failing: Vec<_> = lines.iter().filter(|(_, m)| m.starts_with("delivery failing")).collect();
    assert_eq!(failing.len(), 1, "one line for the change of state, however many attempts failed: {lines:?}");
    assert_eq!(failing[0].0, log::Level::Warn);
    assert!(failing[0].1.contains("refused") || failing[0].1.contains("connect"), "{failing:?}");
    assert!(rx.try_recv().is_err(), "one report per stall, not one per attempt");
    t.shutdown(Duration::ZERO);
}

#[test]
fn the_spool_says_when_it_grows_and_drains_and_nothing_anywhere_holds_the_token() {
    let (_alone, from) = capture_logs();
    let dir = std::env::temp_dir().join(format!("trackcore-trouble-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let (c, reports) = config(
        &format!("http://127.0.0.1:{port}"),
        &[
            ("spool_dir", OptionValue::Str(dir.display().to_string())),
            ("queue_capacity", OptionValue::Int(200)),
            ("rate_limiter", OptionValue::Str("none".into())),
        ],
    );
    let debug = format!("{c:?}");
    let t = Tracker::new(c).unwrap();
    for i in 0..1000 {
        t.track(ev(i)).unwrap();
        if i % 100 == 99 {
            assert!(t.sync(Duration::from_secs(10)));
        }
    }
    assert!(t.stats().spooled > 0, "{:?}", t.stats());
    let emu = trackcore_emulator::Emulator::start(trackcore_emulator::EmulatorConfig {
        port,
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 0,
        ..Default::default()
    })
    .unwrap();
    assert!(t.flush(Duration::from_secs(60)), "{:?}", t.stats());
    assert_eq!(emu.stats().stored, 1000);
    assert!(t.shutdown(Duration::from_secs(5)));
    let lines = LINES.lock().unwrap()[from..].to_vec();
    let growing = lines.iter().filter(|(_, m)| m.starts_with("the spool is growing")).count();
    let drained = lines.iter().filter(|(_, m)| m.starts_with("the spool has drained")).count();
    assert!(growing >= 1 && drained >= 1, "{lines:?}");
    // The token: not in a log line, an error, Debug output or a spool file.
    assert!(lines.iter().all(|(_, m)| !m.contains(TOKEN)));
    assert!(reports.lock().unwrap().iter().all(|(_, m, ev)| !m.contains(TOKEN) && !ev.to_string().contains(TOKEN)));
    assert!(!debug.contains(TOKEN) && !format!("{:?}", t.config()).contains(TOKEN));
    for slot in std::fs::read_dir(&dir).unwrap() {
        for f in std::fs::read_dir(slot.unwrap().path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
