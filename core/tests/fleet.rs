//! Fleet mode (`shared_budget`) against a real `redis-server` and the emulator.
//!
//! Each test starts its own Redis on a free port (`tests/fleet/run.sh`
//! installs Debian's `redis-server` when it is missing) and stops it. The
//! multi-process tests run `core/examples/fleet_worker.rs` as the other
//! processes (the same worker `tests/fleet/mixed.py` runs beside the Python,
//! Node and JVM ones); run.sh builds it first.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{config, free_port, TOKEN};
use trackcore::{OptionValue, Tracker};
use trackcore_emulator::{Emulator, EmulatorConfig};

/// A `redis-server` of this test's own, stopped (killed) on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        Redis::on_port(free_port())
    }

    fn on_port(port: u16) -> Redis {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}); tests/fleet/run.sh installs it"));
        let r = Redis { child, port };
        // Ready when it answers PING (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = r.client().get_connection_with_timeout(Duration::from_millis(200)) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return r;
                }
            }
            assert!(Instant::now() < deadline, "redis-server on {port} did not answer within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn emulator(per_minute: u32, max_names: usize) -> Emulator {
    Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        rate_limit_per_minute: per_minute,
        max_event_names: max_names,
        ..Default::default()
    })
    .unwrap()
}

/// The script under many concurrent clients: in every 10-second span of the
/// Redis server's clock, the permits granted (at the time each block becomes
/// usable) never exceed one window's allowance.
#[test]
fn the_lease_script_never_grants_more_than_the_limit_in_any_window() {
    let redis = Redis::start();
    let allowance = 60u64; // 360 a minute
    let clients = 16;
    let run = Duration::from_secs(12);
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (client, start) = (redis.client(), start.clone());
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                let script = redis::Script::new(trackcore::fleet::LEASE_LUA);
                let mut grants = Vec::new();
                start.wait();
                let until = Instant::now() + run;
                let mut k = i as u64;
                while Instant::now() < until {
                    k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let wanted = 1 + (k >> 60); // 1..=16
                    let (granted, wait_ms, now_ms): (u64, u64, u64) = script
                        .key("t:{app}:bucket")
                        .key("t:{app}:stop")
                        .key("t:{app}:limit")
                        .arg(wanted)
                        .arg(allowance)
                        .arg(trackcore::fleet::LEASE_LIFETIME.as_millis() as u64)
                        .arg(0)
                        .arg(trackcore::fleet::RESERVE_AHEAD.as_millis() as u64)
                        .invoke(&mut c)
                        .unwrap();
                    assert!(granted <= wanted);
                    if granted > 0 {
                        // A block is usable from now + wait (a reservation).
                        assert!(wait_ms <= trackcore::fleet::RESERVE_AHEAD.as_millis() as u64 + 1, "{wait_ms}");
                        grants.push((now_ms + wait_ms, granted));
                    } else {
                        assert!(wait_ms > 0, "a refusal says how long to wait");
                        std::thread::sleep(Duration::from_millis(wait_ms.min(5)));
                    }
                }
                grants
            })
        })
        .collect();
    let mut grants: Vec<(u64, u64)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    grants.sort();
    let total: u64 = grants.iter().map(|g| g.1).sum();
    let mut worst = 0;
    for (i, (t0, _)) in grants.iter().enumerate() {
        let in_span: u64 = grants[i..].iter().take_while(|(t, _)| *t < t0 + 10_000).map(|g| g.1).sum();
        worst = worst.max(in_span);
        assert!(in_span <= allowance, "{in_span} permits granted within 10 s of {t0} (allowance {allowance})");
    }
    // And it does grant: at least 85 % of what 12 s allow.
    assert!(total as f64 >= allowance as f64 * 1.2 * 0.85, "only {total} granted in 12 s");
    eprintln!("granted {total} in 12 s to {clients} clients; at most {worst} in any 10 s (allowance {allowance})");
}

struct Worker {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn spawn_worker(mode: &str, env: &[(&str, String)]) -> Worker {
    // core/examples/fleet_worker.rs, built beside this test by tests/fleet/run.sh.
    let exe = std::env::current_exe().unwrap();
    let worker = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples").join("fleet_worker");
    assert!(worker.exists(), "{} is missing: cargo build --release -p trackcore --example fleet_worker (tests/fleet/run.sh does)", worker.display());
    let mut cmd = Command::new(worker);
    cmd.env("FLEET_WORKER", mode)
        .env("FLEET_TOKEN", TOKEN)
        .env("FLEET_BACKOFF_BASE", "0.05")
        .env("FLEET_BACKOFF_MAX", "0.2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for its tracker to be up.
    loop {
        let l = lines.next().expect("worker exited before it was ready").unwrap();
        if l == "ready" {
            break;
        }
    }
    Worker { child, lines }
}

impl Worker {
    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }

    fn result(mut self) -> serde_json::Value {
        let v = loop {
            let l = self.lines.next().expect("worker exited without a result").unwrap();
            if l.starts_with('{') {
                break serde_json::from_str::<serde_json::Value>(&l).unwrap();
            }
        };
        assert!(self.child.wait().unwrap().success());
        v
    }
}

/// Four processes, one emulator limited to 30,000 a minute (5,000 per 10 s):
/// `(delivered, emulator 429s, seconds)`.
fn four_processes(redis: Option<&Redis>, per_process: usize, per_minute: u32) -> (u64, u64, f64, Vec<serde_json::Value>) {
    let emu = emulator(per_minute, 0);
    let mut workers: Vec<Worker> = (0..4)
        .map(|i| {
            spawn_worker(
                "events",
                &[
                    ("FLEET_EMULATOR", emu.base_url()),
                    ("FLEET_REDIS", redis.map(|r| r.url()).unwrap_or_default()),
                    ("FLEET_PREFIX", "fleet-test:".into()),
                    ("FLEET_RATE", per_minute.to_string()),
                    ("FLEET_EVENTS", per_process.to_string()),
                    ("FLEET_NAME", format!("p{i}")),
                ],
            )
        })
        .collect();
    let start = Instant::now();
    for w in &mut workers {
        w.go();
    }
    let total = 4 * per_process;
    assert!(emu.wait_events(total, Duration::from_secs(180)), "not every event arrived: {:?}", emu.stats());
    let secs = start.elapsed().as_secs_f64();
    let results: Vec<serde_json::Value> = workers.into_iter().map(Worker::result).collect();
    let s = emu.stats();
    (s.stored, s.rate_limited, secs, results)
}

/// The headline: four tracking processes share one budget, use at least 90 %
/// of it, get no 429 and lose nothing. (The baseline, the same run without
/// `shared_budget`, is recorded by tests/fleet/mixed.py, whose four processes
/// are of four languages.)
#[test]
fn four_processes_share_one_budget_without_a_single_429() {
    let redis = Redis::start();
    let per_minute = 30_000; // 5,000 per 10-second window, 500 a second
    let per_process = 5_000;
    let (stored, limited, secs, results) = four_processes(Some(&redis), per_process, per_minute);
    // Round trips from the trackers: the scripts' EVALSHAs (and SCRIPT LOADs);
    // `total_commands_processed` would count the commands inside the scripts too.
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut redis.conn()).unwrap();
    let calls = |cmd: &str| -> f64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|v| v.split(',').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let round_trips = calls("evalsha") + calls("script|load") + calls("eval");
    let per_event = round_trips / stored as f64;
    eprintln!("Redis round trips: {round_trips} for {stored} events = {per_event:.3} per delivered event ({} leases)", calls("hmget"));
    assert!(per_event < 0.2, "permits come in blocks: {per_event:.3} round trips per event");
    let rate = per_minute as f64 / 60.0;
    let used = stored as f64 / (secs * rate);
    eprintln!("shared budget: {stored} delivered in {secs:.1} s = {:.1} % of the limit, {limited} 429s", used * 100.0);
    assert_eq!(stored, 4 * per_process as u64, "every event delivered");
    assert_eq!(limited, 0, "no 429 with a shared budget");
    for r in &results {
        assert_eq!(r["delivered"], per_process as u64, "{r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert_eq!(r["rate_limited"], 0, "{r}");
        assert_eq!(r["redis_errors"], 0, "{r}");
        assert!(r["fleet_permit_waits"].as_u64().unwrap() > 0, "the budget held them back: {r}");
    }
    assert!(used >= 0.90, "only {:.1} % of the limit used", used * 100.0);

}

/// Redis killed in the middle of a run and started again on the same port:
/// nothing lost, the fallback counted, shared mode back.
#[test]
fn redis_killed_mid_run_and_restarted_loses_nothing_and_shared_mode_resumes() {
    let mut redis = Redis::start();
    let port = redis.port;
    let emu = emulator(6_000, 0); // 1,000 per window
    let (c, reports) = config(
        &emu.base_url(),
        &[
            ("rate_limit_per_minute", OptionValue::Int(6_000)),
            ("shared_budget", OptionValue::Str(redis.url())),
            ("shared_budget_prefix", OptionValue::Str("kill-test:".into())),
            ("shared_budget_fallback_percent", OptionValue::Int(50)),
        ],
    );
    let tracker = Tracker::new(c).unwrap();
    let n = 1_500;
    for i in 0..n {
        tracker.track(common::ev(i)).unwrap();
    }
    assert!(emu.wait_events(200, Duration::from_secs(30)), "sending started");
    redis.kill();
    // The next round trip fails: fallback.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracker.stats().redis_errors == 0 {
        assert!(Instant::now() < deadline, "Redis errors never counted: {:?}", tracker.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let during = emu.stats().stored;
    // Local pacing goes on while Redis is down.
    assert!(emu.wait_events(during as usize + 50, Duration::from_secs(30)), "delivery stopped with Redis down");
    let redis = Redis::on_port(port);
    // Shared mode resumes: the fallback time is counted when it does, and the
    // lease keys appear in the new Redis.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracker.stats().fleet_fallback_ms == 0 {
        assert!(Instant::now() < deadline, "shared mode did not resume: {:?}", tracker.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tracker.flush(Duration::from_secs(60)));
    let keys: Vec<String> = redis::cmd("KEYS").arg("kill-test:*").query(&mut redis.conn()).unwrap();
    assert!(keys.iter().any(|k| k.ends_with(":bucket")), "the shared bucket is used again: {keys:?}");
    assert!(keys.iter().all(|k| !k.contains(TOKEN)), "keys never hold the token: {keys:?}");
    let s = tracker.stats();
    assert_eq!(s.delivered, n as u64, "{s:?}");
    assert_eq!(emu.stats().stored, n as u64);
    assert_eq!(s.failed + s.dropped, 0, "{s:?}");
    assert_eq!(emu.stats().rate_limited, 0);
    let heard: Vec<String> = reports.lock().unwrap().iter().map(|(code, _, _)| code.clone()).collect();
    assert_eq!(heard, vec!["shared_budget_unavailable"], "the callback hears of the fallback once, and of no lost event");
    assert!(!reports.lock().unwrap()[0].1.contains("redis://"), "the Redis URL (and its password) is not in the report");
    common::assert_accounted(&s);
}

/// Refused in a worker: at `track()` with `EventNameLimitReached` (its local
/// copy of the shared set already had 120 names), or, accepted in the window
/// of optimism, failed and reported as refused by the shared cap. Either way
/// exactly once, and never delivered (checked against the emulator by the caller).
fn assert_refused(r: &serde_json::Value, name: &str) {
    let at_track = r["refused_at_track"].as_array().unwrap().iter().filter(|n| *n == name).count();
    let reported = r["reports"].as_array().unwrap().iter().filter(|x| x["name"] == name).collect::<Vec<_>>();
    assert_eq!(at_track + reported.len(), 1, "{name} refused once, at track() or reported: {r}");
    for x in reported {
        assert_eq!(x["code"], "rejected", "{r}");
        assert!(x["message"].as_str().unwrap().contains("event_name_limit_reached"), "{r}");
    }
}

/// The 121st distinct name is refused in every process with the
/// single-process error; no event with it reaches Intercom.
#[test]
fn the_121st_name_is_refused_across_two_processes() {
    let redis = Redis::start();
    let emu = emulator(0, 0); // the emulator caps nothing: the refusal is the tracker's
    let env = |from: usize, to: usize| {
        vec![
            ("FLEET_EMULATOR", emu.base_url()),
            ("FLEET_REDIS", redis.url()),
            ("FLEET_PREFIX", "names-test:".to_string()),
            ("FLEET_RATE", "600000".into()),
            ("FLEET_FROM", from.to_string()),
            ("FLEET_TO", to.to_string()),
        ]
    };
    // Process A: names 0..60.
    let mut a = spawn_worker("names", &env(0, 60));
    a.go();
    let ra = a.result();
    assert_eq!(ra["delivered"], 60, "{ra}");
    // Process B: names 60..121 — the last one is the 121st across both.
    let mut b = spawn_worker("names", &env(60, 121));
    b.go();
    let rb = b.result();
    assert_eq!(rb["delivered"], 60, "{rb}");
    assert_refused(&rb, "name-120");
    // Process A again, with a new name and an old one: the new one is refused,
    // the old one goes through.
    let mut a2 = spawn_worker("names", &env(119, 122));
    a2.go();
    let ra2 = a2.result();
    for name in ["name-120", "name-121"] {
        assert_refused(&ra2, name);
    }
    assert_eq!(ra2["delivered"], 1, "name-119 is one of the 120: {ra2}");
    let names: std::collections::BTreeSet<String> = emu.events().into_iter().map(|e| e.event_name).collect();
    assert_eq!(names.len(), 120, "Intercom saw exactly 120 names");
    assert!(!names.contains("name-120") && !names.contains("name-121"));
    let members: Vec<String> = redis::cmd("SMEMBERS").arg(redis::cmd("KEYS").arg("names-test:*:names").query::<Vec<String>>(&mut redis.conn()).unwrap()[0].clone()).query(&mut redis.conn()).unwrap();
    assert_eq!(members.len(), 120);
}

/// A 429 one tracker gets reaches every other through Redis: the shared stop
/// holds back a lease asked for by anyone else until the window resets.
#[test]
fn one_trackers_429_stops_every_tracker_until_the_reset() {
    let redis = Redis::start();
    let emu = emulator(600_000, 0);
    emu.script(vec![trackcore_emulator::ScriptedResponse::rate_limited(3)]);
    let (c, _reports) = config(
        &emu.base_url(),
        &[("shared_budget", OptionValue::Str(redis.url())), ("shared_budget_prefix", OptionValue::Str("stop-test:".into()))],
    );
    let a = Tracker::new(c).unwrap();
    a.track(common::ev(1)).unwrap();
    // The 429 is pushed to Redis by a's thread: wait for the shared stop key.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stop_key = loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg("stop-test:*:stop").query(&mut redis.conn()).unwrap();
        if let Some(k) = keys.into_iter().next() {
            break k;
        }
        assert!(Instant::now() < deadline, "the 429 never reached Redis");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The 429 is counted just after it is pushed: wait for the counter too.
    common::eventually("the 429 counted", Duration::from_secs(10), || a.stats().rate_limited >= 1);
    assert_eq!(a.stats().rate_limited, 1);
    // Any other tracker of the app (here: a raw client of the same keys) is told to wait.
    let base = stop_key.trim_end_matches(":stop").to_string();
    let (granted, wait_ms, _): (u64, u64, u64) = redis::Script::new(trackcore::fleet::LEASE_LUA)
        .key(format!("{base}:bucket"))
        .key(&stop_key)
        .key(format!("{base}:limit"))
        .arg(10)
        .arg(100_000)
        .arg(250)
        .arg(0)
        .arg(1)
        .invoke(&mut redis.conn())
        .unwrap();
    assert_eq!(granted, 0, "nothing granted while the app is stopped");
    assert!(wait_ms > 500 && wait_ms <= 3_100, "wait until the reset (3 s): {wait_ms} ms");
    // And a itself delivers once the window has reset: nothing lost.
    assert!(a.flush(Duration::from_secs(20)));
    assert_eq!(a.stats().delivered, 1);
}
