//! What the integration tests share: an emulator, a tracker pointed at it
//! whose error callback records what it hears, and the accounting check.
#![allow(dead_code)] // each test binary uses its own part of this

use std::sync::{Arc, Mutex};

use trackcore::{Config, Event, OptionValue, Stats, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

pub const TOKEN: &str = "tok-delivery-test";

pub fn emulator() -> Emulator {
    emulator_with(EmulatorConfig { tokens: vec![TOKEN.into()], ..Default::default() })
}

pub fn emulator_with(cfg: EmulatorConfig) -> Emulator {
    Emulator::start(cfg).expect("emulator binds 127.0.0.1")
}

pub type Reports = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

/// A tracker pointed at `emu` with fast retries, plus the reports its error callback got.
pub fn tracker(emu: &Emulator, options: &[(&str, OptionValue)]) -> (Tracker, Reports) {
    let (c, reports) = config(&emu.base_url(), options);
    (Tracker::new(c).unwrap(), reports)
}

/// The configuration `tracker` uses, for a tracker built another way.
pub fn config(base_url: &str, options: &[(&str, OptionValue)]) -> (Config, Reports) {
    let reports: Reports = Arc::default();
    let mut c = Config::default();
    c.set("access_token", OptionValue::Str(TOKEN.into())).unwrap();
    c.set("base_url", OptionValue::Str(base_url.into())).unwrap();
    c.set("backoff_base", OptionValue::Float(0.05)).unwrap();
    c.set("backoff_max", OptionValue::Float(0.2)).unwrap();
    for (k, v) in options {
        c.set(k, v.clone()).unwrap();
    }
    let sink = reports.clone();
    c.on_error = Some(Arc::new(move |ev, err| {
        sink.lock().unwrap().push((err.code().to_string(), err.to_string(), ev.to_json()))
    }));
    (c, reports)
}

/// A port on 127.0.0.1 that nothing listens on once this returns: an
/// Intercom that is down, or a free port for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn ev(i: usize) -> Event {
    Event::new("upgraded-plan").user_id(format!("u-{i}")).meta("plan", "pro").meta("seats", i as i64)
}

/// Wait until `cond` holds (polled; it reads what the tracker or the
/// callback has reported, never a guess at how long that takes), or panic
/// naming `what` after `timeout`.
pub fn eventually(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(std::time::Instant::now() < end, "{what}: not within {timeout:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn codes(r: &Reports) -> Vec<String> {
    r.lock().unwrap().iter().map(|(c, _, _)| c.clone()).collect()
}

/// Every tracked event is accounted for exactly once, by counters kept independently.
pub fn assert_accounted(s: &Stats) {
    assert!(s.balanced(), "tracked + recovered != outcomes + queued + in_flight: {s:?}");
}

/// Run `child` in a forked child process and return its exit code.
/// `child` returns the code; a panic in it is code 101.
pub fn in_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs trackcore and std code, then `_exit`s
    // without running the parent's destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        unsafe { libc::_exit(code) }
    }
    pid
}

pub fn exit_code(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "the child died: status {status}");
    libc::WEXITSTATUS(status)
}
