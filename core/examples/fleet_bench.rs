//! Fleet mode's Redis figures for docs/benchmarks.md: the latency one lease
//! round trip adds (the wait of a permit when the local lease is empty), and
//! how many lease round trips and permits a second one Redis grants to many
//! concurrent clients. Starts its own redis-server on a free port.
//!
//!     cargo run --release -p trackcore --example fleet_bench [clients] [seconds]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use trackcore::fleet::{LEASE_LIFETIME, LEASE_LUA, MAX_BLOCK, RESERVE_AHEAD};

fn lease(c: &mut redis::Connection, script: &redis::Script, app: &str, wanted: u32, allowance: u64) -> u64 {
    let (granted, _wait, _now): (u64, u64, u64) = script
        .key(format!("bench:{{{app}}}:bucket"))
        .key(format!("bench:{{{app}}}:stop"))
        .key(format!("bench:{{{app}}}:limit"))
        .arg(wanted)
        .arg(allowance)
        .arg(LEASE_LIFETIME.as_millis() as u64)
        .arg(0)
        .arg(RESERVE_AHEAD.as_millis() as u64)
        .invoke(c)
        .unwrap();
    granted
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).map_or(8, |a| a.parse().unwrap());
    let secs: u64 = args.get(2).map_or(5, |a| a.parse().unwrap());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        if let Ok(c) = client.get_connection() {
            break c;
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let script = redis::Script::new(LEASE_LUA);

    // Latency: one client, one lease at a time (what a permit waits when the pool is empty).
    for _ in 0..1000 {
        lease(&mut c, &script, "lat", 1, u64::MAX / 4);
    }
    let mut lat: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            lease(&mut c, &script, "lat", 1, u64::MAX / 4);
            t.elapsed()
        })
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    println!("lease round trip, 1 client: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs", pct(0.5), pct(0.99), pct(0.999));

    // Throughput: many clients of one app leasing blocks of MAX_BLOCK with an allowance that never binds.
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (client, script, start) = (client.clone(), script.clone(), start.clone());
            std::thread::spawn(move || {
                let mut c = client.get_connection().unwrap();
                start.wait();
                let until = Instant::now() + Duration::from_secs(secs);
                let (mut calls, mut permits) = (0u64, 0u64);
                while Instant::now() < until {
                    permits += lease(&mut c, &script, "tput", MAX_BLOCK, u64::MAX / 4);
                    calls += 1;
                }
                (calls, permits)
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    let (calls, permits) = threads.into_iter().map(|t| t.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let el = t.elapsed().as_secs_f64();
    println!(
        "{clients} clients, {secs} s: {:.0} lease round trips/s, {:.0} permits/s (blocks of {MAX_BLOCK})",
        calls as f64 / el,
        permits as f64 / el
    );
    let _ = server.kill();
    let _ = server.wait();
}
