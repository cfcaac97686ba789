//! Bridge throughput and time to 2xx on loopback.
//!
//! `cargo bench -p trackcore-cli --bench bridge [-- WEBHOOKS CLIENTS]`
//!
//! Starts the in-process emulator (rate limit off), the release `trackcore`
//! binary as `trackcore bridge` on a Stripe route, and CLIENTS threads that
//! each POST signed `invoice.payment_failed` webhooks over keep-alive
//! connections (HMAC-SHA256 computed per request, as Stripe sends them).
//! Prints the accepted webhooks per second, the time to each 2xx (p50, p99,
//! max) and checks that every accepted webhook's event reached the emulator.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use trackcore_emulator::{Emulator, EmulatorConfig};

const TOKEN: &str = "tok-bench";
const SECRET: &str = "whsec_bench";

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(20_000);
    let clients = args.get(1).copied().unwrap_or(16);
    let emu = Emulator::start(EmulatorConfig { tokens: vec![TOKEN.into()], rate_limit_per_minute: 0, max_event_names: 0, ..Default::default() })
        .expect("emulator");
    let dir = std::env::temp_dir().join(format!("trackcore-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("bridge.toml");
    std::fs::write(
        &rules,
        r#"
[tracker]
rate_limit_per_minute = 10000000
max_in_flight = 32

[[route]]
path = "/stripe"
kind = "stripe"
secret_env = "BENCH_STRIPE_SECRET"

[[route.rule]]
when = { "/type" = "invoice.payment_failed" }
event = "payment-failed"
user_id = "/data/object/customer"
metadata.amount = { pointer = "/data/object/amount_due", type = "money", currency = "/data/object/currency" }
metadata.invoice = { pointer = "/data/object/hosted_invoice_url", type = "link", text = "/data/object/number" }
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trackcore"))
        .args(["bridge", "--listen", "127.0.0.1:0", "--config"])
        .arg(&rules)
        .env("INTERCOM_ACCESS_TOKEN", TOKEN)
        .env("INTERCOM_BASE_URL", emu.base_url())
        .env("BENCH_STRIPE_SECRET", SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .expect("bridge starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = format!("{}/stripe", line.trim().rsplit(' ').next().unwrap());

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, url) = (next.clone(), url.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut times = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return times;
                    }
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                    let body = format!(
                        r#"{{"id":"evt_{i}","type":"invoice.payment_failed","created":{now},"data":{{"object":{{"customer":"cus_{i}","amount_due":1999,"currency":"eur","number":"INV-{i}","hosted_invoice_url":"https://invoice.stripe.com/i/{i}"}}}}}}"#
                    );
                    let t0 = Instant::now();
                    let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(SECRET.as_bytes()).unwrap();
                    mac.update(format!("{now}.").as_bytes());
                    mac.update(body.as_bytes());
                    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
                    let resp = agent.post(&url).header("Stripe-Signature", &format!("t={now},v1={sig}")).send(body.as_bytes()).expect("answer");
                    assert_eq!(resp.status().as_u16(), 200);
                    times.push(t0.elapsed());
                }
            })
        })
        .collect();
    let mut times: Vec<Duration> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let elapsed = start.elapsed();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let delivered = emu.wait_events(total, Duration::from_secs(120));
    println!(
        "bridge: {total} webhooks from {clients} clients in {:.2} s = {:.0} accepted/s; time to 2xx p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; all {} events in the emulator: {delivered}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        total,
    );
    // SAFETY: SIGTERM to the child this program started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(delivered, "not every accepted webhook's event reached the emulator");
}
