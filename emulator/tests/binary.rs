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
