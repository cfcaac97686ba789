//! What the CLI's tests share: an emulator in this process, the `trackcore`
//! binary run as a process against it, a bridge process and an HTTP client.
#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use trackcore_emulator::{Emulator, EmulatorConfig};

pub const TOKEN: &str = "tok-cli-test-4f1c9e";

pub fn emulator() -> Emulator {
    emulator_with(EmulatorConfig { tokens: vec![TOKEN.into()], ..Default::default() })
}

pub fn emulator_with(cfg: EmulatorConfig) -> Emulator {
    Emulator::start(cfg).expect("emulator binds 127.0.0.1")
}

/// `trackcore` pointed at `emu` with the token in the environment (and no
/// other Intercom variable inherited from the machine running the tests).
pub fn trackcore(emu: &Emulator) -> Command {
    let mut c = bare();
    c.env("INTERCOM_ACCESS_TOKEN", TOKEN).env("INTERCOM_BASE_URL", emu.base_url());
    c
}

/// `trackcore` with no token and no host.
pub fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trackcore"));
    c.env_remove("INTERCOM_ACCESS_TOKEN").env_remove("INTERCOM_BASE_URL");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(c: &mut Command) -> Run {
    let out = c.output().expect("trackcore runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run with `input` on stdin.
pub fn run_with_stdin(c: &mut Command, input: &str) -> Run {
    use std::io::Write;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trackcore-cli-{}-{}-{name}", std::process::id(), fastrand_u64()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// A running `trackcore bridge`, stopped (by its own pid) when dropped.
pub struct Bridge {
    pub child: Child,
    pub url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Bridge {
    /// Start `trackcore bridge --config config --listen 127.0.0.1:0` with
    /// `env` set, and read its address from the first line it prints.
    pub fn start(emu: &Emulator, config: &std::path::Path, env: &[(&str, &str)]) -> Bridge {
        let mut c = trackcore(emu);
        c.args(["bridge", "--config"]).arg(config).args(["--listen", "127.0.0.1:0"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("bridge starts");
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let url = line
            .trim()
            .strip_prefix("trackcore bridge listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Bridge { child, url, stderr: Some(stderr) }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Stop it with SIGTERM and return (exit code, everything it wrote to stderr).
    pub fn stop(mut self) -> (i32, String) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().expect("bridge exits");
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (status.code().unwrap_or(-1), stderr)
    }

    /// One value from /metrics, by its full name with labels.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = get(&format!("{}/metrics", self.url));
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).map(|v| v.trim().parse().expect("a number")))
            .unwrap_or_else(|| panic!("no metric {name} in\n{body}"))
    }

    /// Wait until a metric reaches `n` (the bridge says when a reload is done
    /// only through its metrics and stderr); fails the test after 20 s.
    pub fn wait_metric(&self, name: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.metric(name) < n {
            assert!(Instant::now() < deadline, "{name} never reached {n}");
            std::thread::yield_now();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// POST `body` with `headers`; (status, body).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    let mut req = agent().post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).expect("bridge answers");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// POST with `Transfer-Encoding: chunked` (no length up front) over a raw
/// socket; the answer's status.
pub fn post_chunked(base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut wire = req.into_bytes();
    for chunk in body.chunks(1000) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = s.write_all(&wire);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

pub fn get(url: &str) -> (u16, String) {
    let mut resp = agent().get(url).call().expect("bridge answers");
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `Stripe-Signature` as Stripe computes it: `t=<t>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = <Hmac<sha2::Sha256>>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    format!("t={t},v1={}", hex(&m.finalize().into_bytes()))
}

/// `X-Hub-Signature` as Intercom computes it: `sha1=<hex HMAC-SHA1 of the body>`.
pub fn intercom_signature(secret: &str, body: &[u8]) -> String {
    let mut m = <Hmac<sha1::Sha1>>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    format!("sha1={}", hex(&m.finalize().into_bytes()))
}

/// The repository's examples/bridge folder.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bridge")
}
