//! The `trackcore-emulator` binary, as Python tests and humans run it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trackcore-emulator"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    (Child(child), line, reader)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

#[test]
fn binary_prints_its_address_as_first_line_and_serves_events() {
    let (_child, line, _rest) = spawn(&["--port", "0", "--token", "abc", "--rate-limit-per-minute", "1000"]);
    let prefix = "trackcore-emulator listening on http://127.0.0.1:";
    assert!(line.starts_with(prefix), "first line: {line:?}");
    let port: u16 = line.trim_end()[prefix.len()..].parse().expect("a port");
    assert_ne!(port, 0);
    let base = format!("http://127.0.0.1:{port}");
    let a = agent();
    let mut r = a
        .post(format!("{base}/events"))
        .header("Authorization", "Bearer abc")
        .content_type("application/json")
        .send(r#"{"event_name":"a","created_at":1,"user_id":"u"}"#)
        .expect("response");
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.headers().get("x-ratelimit-limit").and_then(|v| v.to_str().ok()), Some("167"));
    assert_eq!(r.body_mut().read_to_string().expect("body"), "");
    let r = a
        .post(format!("{base}/events"))
        .header("Authorization", "Bearer test-token")
        .send("{}")
        .expect("response");
    assert_eq!(r.status().as_u16(), 401, "only the given tokens are accepted");
    let events = a
        .get(format!("{base}/__emulator/events"))
        .call()
        .expect("response")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert!(events.contains("\"event_name\":\"a\""), "{events}");
}

#[test]
fn binary_registers_known_users_from_flags() {
    let (_child, line, _rest) = spawn(&[
        "--port", "0", "--require-known-users", "--known-user-id", "u-1", "--known-email", "e@example.org",
    ]);
    let base = line.trim_end().rsplit(' ').next().expect("url").to_string();
    let a = agent();
    let post = |body: &str| {
        a.post(format!("{base}/events"))
            .header("Authorization", "Bearer test-token")
            .send(body.to_string())
            .expect("response")
            .status()
            .as_u16()
    };
    assert_eq!(post(r#"{"event_name":"a","created_at":1,"user_id":"u-1"}"#), 202);
    assert_eq!(post(r#"{"event_name":"a","created_at":1,"email":"e@example.org"}"#), 202);
    assert_eq!(post(r#"{"event_name":"a","created_at":1,"user_id":"u-2"}"#), 404);
}

#[test]
fn binary_exits_when_stdin_closes_if_asked() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trackcore-emulator"))
        .args(["--port", "0", "--exit-on-stdin-close"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    assert!(line.starts_with("trackcore-emulator listening on "));
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit after stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binary_rejects_out_of_range_probability() {
    let out = Command::new(env!("CARGO_BIN_EXE_trackcore-emulator"))
        .args(["--port", "0", "--error-rate", "1.5"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

fn post_status(a: &ureq::Agent, base: &str, token: &str, body: &str) -> u16 {
    a.post(format!("{base}/events"))
        .header("Authorization", format!("Bearer {token}"))
        .send(body.to_string())
        .expect("response")
        .status()
        .as_u16()
}

/// Reads lines until one satisfies `f` (the log is written by its own thread,
/// so a line comes shortly after its response); panics at end of output.
fn read_until(reader: &mut BufReader<std::process::ChildStdout>, f: impl Fn(&str) -> bool) -> String {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read");
        assert!(n > 0, "output ended before the expected line");
        if f(&line) {
            return line;
        }
    }
}

#[test]
fn binary_logs_one_greppable_line_per_request_after_the_address_lines() {
    let (_child, line, mut rest) = spawn(&["--port", "0", "--token", "secret-log-token"]);
    let base = line.trim_end().rsplit(' ').next().expect("url").to_string();
    let mut second = String::new();
    rest.read_line(&mut second).expect("second line");
    assert_eq!(second.trim_end(), format!("inspector: open {base}/ in a browser"));
    let a = agent();
    assert_eq!(post_status(&a, &base, "secret-log-token", r#"{"event_name":"signed-up","created_at":1,"user_id":"u-1"}"#), 202);
    assert_eq!(post_status(&a, &base, "secret-log-token", r#"{"event_name":"two words","created_at":"x","user_id":"u-2"}"#), 400);
    assert_eq!(post_status(&a, &base, "wrong-token", r#"{"event_name":"a","created_at":1,"email":"e@example.org"}"#), 401);
    let ok = read_until(&mut rest, |l| l.contains(" POST /events 202 "));
    assert!(ok.contains(" stored event=signed-up contact=u-1 code=-"), "{ok:?}");
    let bad = read_until(&mut rest, |l| l.contains(" POST /events 400 "));
    assert!(bad.contains(" refused event=\"two words\" contact=u-2 code=parameter_invalid"), "{bad:?}");
    let unauthorized = read_until(&mut rest, |l| l.contains(" POST /events 401 "));
    assert!(unauthorized.contains("contact=e@example.org code=unauthorized"), "{unauthorized:?}");
    for l in [&ok, &bad, &unauthorized] {
        assert!(!l.contains("secret-log-token") && !l.contains("wrong-token"), "a token in the log: {l:?}");
    }
}

#[test]
fn binary_quiet_prints_only_the_address_lines() {
    let (mut child, line, mut rest) = spawn(&["--port", "0", "--quiet"]);
    let base = line.trim_end().rsplit(' ').next().expect("url").to_string();
    let a = agent();
    assert_eq!(post_status(&a, &base, "test-token", r#"{"event_name":"a","created_at":1,"user_id":"u"}"#), 202);
    assert_eq!(post_status(&a, &base, "test-token", "{}"), 400);
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut rest, &mut out).expect("read");
    assert_eq!(out, format!("inspector: open {base}/ in a browser\n"));
}

/// A parent that reads only the first line (as the Python tests do) must not
/// wedge the emulator once the pipe is full: log lines are dropped instead.
#[test]
fn binary_keeps_answering_when_nobody_reads_its_log() {
    let (_child, line, _unread) = spawn(&["--port", "0", "--rate-limit-per-minute", "0"]);
    let base = line.trim_end().rsplit(' ').next().expect("url").to_string();
    let a = agent();
    // ~100 bytes a line: 3,000 lines are several times a 64 KiB pipe buffer.
    for i in 0..3_000 {
        let body = format!(r#"{{"event_name":"e","created_at":{i},"user_id":"u"}}"#);
        assert_eq!(post_status(&a, &base, "test-token", &body), 202, "request {i}");
    }
}
