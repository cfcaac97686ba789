//! The disk spool (`spool_dir`) in a live pipeline, over real HTTP against the
//! in-process emulator: what a shutdown leaves is delivered by the next
//! tracker on the same directory, events beyond the memory window wait on
//! disk, `sync()` means on disk, a forked child writes its own slot, and the
//! token is never written. Outages are a closed port, not sleeps.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use trackcore::spool::scan;
use trackcore::{OptionValue, Tracker};
use trackcore_emulator::EmulatorConfig;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trackcore-spool-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spool(dir: &Path) -> (&'static str, OptionValue) {
    ("spool_dir", OptionValue::Str(dir.display().to_string()))
}

/// Every EVENT record in a slot's segments, and whether any file holds `needle`.
fn on_disk(slot: &Path, needle: &[u8]) -> (usize, bool) {
    let (mut events, mut found) = (0, false);
    for e in std::fs::read_dir(slot).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        found |= !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle);
        scan(&bytes, true, |kind, _, _, _| {
            events += usize::from(kind == 1)
        });
    }
    (events, found)
}

fn user_ids(emu: &trackcore_emulator::Emulator) -> Vec<String> {
    let mut ids: Vec<String> = emu
        .events()
        .iter()
        .filter_map(|e| e.user_id.clone())
        .collect();
    ids.sort();
    ids
}

#[test]
fn what_a_shutdown_leaves_in_the_spool_is_delivered_by_the_next_tracker() {
    let dir = temp_dir("handover");
    let down = format!("http://127.0.0.1:{}", free_port());
    let (c, reports) = config(&down, &[spool(&dir)]);
    let t = Tracker::new(c).unwrap();
    for i in 0..3000 {
        t.track(ev(i)).unwrap();
    }
    assert!(
        !t.shutdown(Duration::from_millis(500)),
        "nothing could be delivered"
    );
    // The bounded call may return while a slow machine's dispatcher is still
    // writing; a second shutdown returns as soon as it has stopped (and let go
    // of its slot), so the counts below and the next tracker see the end state.
    assert!(!t.shutdown(Duration::from_secs(30)));
    let s = t.stats();
    assert_eq!(
        (s.tracked, s.persisted, s.dropped, s.delivered),
        (3000, 3000, 0, 0),
        "{s:?}"
    );
    assert_accounted(&s);
    assert!(
        codes(&reports).iter().all(|c| c == "delivery_stalled"),
        "nothing reported lost: {:?}",
        codes(&reports)
    );
    // The closed tracker object lives on: its slot is free once it has stopped.
    let closed = t;

    let emu = emulator();
    let (t, reports) = tracker(&emu, &[spool(&dir)]);
    assert!(t.flush(Duration::from_secs(60)));
    let s = t.stats();
    assert_eq!(
        (s.tracked, s.recovered, s.delivered, s.spooled, s.queued),
        (0, 3000, 3000, 0, 0),
        "{s:?}"
    );
    assert_accounted(&s);
    assert!(codes(&reports).is_empty(), "{:?}", codes(&reports));
    let mut want: Vec<String> = (0..3000).map(|i| format!("u-{i}")).collect();
    want.sort();
    assert_eq!(
        user_ids(&emu),
        want,
        "every event once, from the earlier tracker's spool"
    );
    assert!(t.shutdown(Duration::from_secs(5)));
    let (left, _) = on_disk(&dir.join("w0"), b"");
    let s2 = Tracker::new(config(&emu.base_url(), &[spool(&dir)]).0).unwrap();
    assert!(s2.flush(Duration::from_secs(5)));
    assert_eq!(
        s2.stats().recovered,
        0,
        "a drained spool gives nothing back ({left} event records still in its files, all settled)"
    );
    drop(closed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn events_beyond_the_memory_window_wait_on_disk_and_all_arrive_when_intercom_is_back() {
    let dir = temp_dir("window");
    let port = free_port();
    let (t, reports) = {
        let (c, r) = config(
            &format!("http://127.0.0.1:{port}"),
            &[
                spool(&dir),
                ("queue_capacity", OptionValue::Int(2000)),
                ("rate_limiter", OptionValue::Str("none".into())),
            ],
        );
        (Tracker::new(c).unwrap(), r)
    };
    let n = 20_000;
    for i in 0..n {
        // overflow=drop_newest with queue_capacity=2000: only the memory
        // window is bounded by it; the dispatcher moves the rest to disk.
        t.track(ev(i)).unwrap();
        if i % 1000 == 999 {
            assert!(t.sync(Duration::from_secs(10)));
        }
    }
    assert!(t.sync(Duration::from_secs(10)));
    let s = t.stats();
    assert_eq!(s.dropped, 0, "{s:?}");
    assert!(
        s.spooled >= (n - 2000) as u64,
        "beyond the window events wait on disk only: {s:?}"
    );
    assert!(s.spool_bytes > 0);
    assert_accounted(&s);
    let emu = emulator_with(EmulatorConfig {
        port,
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: 0,
        ..Default::default()
    });
    assert!(t.flush(Duration::from_secs(120)), "{:?}", t.stats());
    let s = t.stats();
    assert_eq!(
        (s.delivered, s.spooled, s.queued, s.dropped),
        (n as u64, 0, 0, 0),
        "{s:?}"
    );
    assert_accounted(&s);
    assert_eq!(emu.stats().stored, n as u64);
    assert!(
        codes(&reports).iter().all(|c| c == "delivery_stalled"),
        "{:?}",
        codes(&reports)
    );
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sync_means_on_disk_and_the_token_never_is() {
    let dir = temp_dir("sync");
    let down = format!("http://127.0.0.1:{}", free_port());
    let (t, _) = {
        let (c, r) = config(&down, &[spool(&dir)]);
        (Tracker::new(c).unwrap(), r)
    };
    for i in 0..100 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.sync(Duration::from_secs(10)));
    let (events, token) = on_disk(&dir.join("w0"), TOKEN.as_bytes());
    assert_eq!(
        events, 100,
        "every event tracked before sync() is in the spool's files"
    );
    assert!(!token, "the access token is never written");
    let debug = format!("{:?} {:?}", t.config(), t.stats());
    assert!(!debug.contains(TOKEN));
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spool_dir_that_cannot_be_used_is_a_config_error_naming_the_option() {
    let file = temp_dir("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (c, _) = config("http://127.0.0.1:9", &[spool(&file.join("sub"))]);
    match Tracker::new(c) {
        Err(e) => {
            assert_eq!(
                (e.code(), e.field().as_deref()),
                ("invalid_config", Some("config.spool_dir"))
            );
            assert!(e.to_string().starts_with("config.spool_dir:"), "{e}");
        }
        Ok(_) => panic!("a spool under a regular file cannot work"),
    }
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_forked_child_writes_its_own_slot_never_its_parents() {
    let dir = temp_dir("fork");
    let down = format!("http://127.0.0.1:{}", free_port());
    let (c, _) = config(&down, &[spool(&dir)]);
    let t = Tracker::new(c).unwrap();
    for i in 0..10 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.sync(Duration::from_secs(10)));
    let pid = in_child(|| {
        for i in 100..105 {
            if t.track(ev(i)).is_err() {
                return 2;
            }
        }
        if !t.sync(Duration::from_secs(10)) {
            return 3;
        }
        0
    });
    assert_eq!(exit_code(pid), 0);
    assert_eq!(
        on_disk(&dir.join("w0"), b"").0,
        10,
        "the parent's slot holds only the parent's events"
    );
    assert_eq!(
        on_disk(&dir.join("w1"), b"").0,
        5,
        "the child took the next slot"
    );
    t.track(ev(10)).unwrap();
    assert!(t.sync(Duration::from_secs(10)));
    assert_eq!(on_disk(&dir.join("w0"), b"").0, 11);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn past_spool_max_bytes_new_events_are_dropped_counted_and_reported() {
    let dir = temp_dir("full");
    let down = format!("http://127.0.0.1:{}", free_port());
    let (t, reports) = {
        let (c, r) = config(&down, &[spool(&dir), ("spool_max_bytes", OptionValue::Int(8192))]);
        (Tracker::new(c).unwrap(), r)
    };
    for i in 0..200 {
        t.track(ev(i)).unwrap();
    }
    assert!(t.sync(Duration::from_secs(10)));
    let s = t.stats();
    assert!(s.dropped_spool > 0 && s.dropped_spool < 200, "{s:?}");
    assert!(s.spool_bytes <= 8192, "{s:?}");
    assert_accounted(&s);
    // The reports travel on the reporter thread: wait for them, not for a
    // shutdown's last 60 ms on a loaded machine.
    let full = || codes(&reports).iter().filter(|c| *c == "spool_full").count() as u64;
    eventually("a report per dropped event", Duration::from_secs(10), || full() >= s.dropped_spool);
    assert!(!t.shutdown(Duration::from_millis(300)));
    let full = full();
    assert_eq!(full, s.dropped_spool, "one report per dropped event");
    let (events, _) = on_disk(&dir.join("w0"), b"");
    assert_eq!(events as u64, 200 - s.dropped_spool, "what was not dropped is on disk");
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}
