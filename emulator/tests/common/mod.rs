//! Helpers shared by the integration tests: a ureq agent that treats every
//! status as a response, and a small response snapshot.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use trackcore_emulator::{Emulator, EmulatorConfig};

pub const TOKEN: &str = "test-token";

/// A started emulator with default settings.
pub fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("emulator starts")
}

/// An emulator with `f` applied to the default config.
pub fn emulator_with(f: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut c = EmulatorConfig::default();
    f(&mut c);
    Emulator::start(c).expect("emulator starts")
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// What came back.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_u64(&self, name: &str) -> Option<u64> {
        self.header(name).and_then(|v| v.parse().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an Intercom `error.list` body with one error of `code`.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let v = self.json();
        assert_eq!(v["type"], "error.list", "body: {}", self.body);
        let rid = v["request_id"].as_str().expect("request_id is a string");
        assert!(!rid.is_empty());
        let errors = v["errors"].as_array().expect("errors is a list");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["code"], code, "body: {}", self.body);
        let msg = errors[0]["message"].as_str().expect("message is a string");
        assert!(!msg.is_empty());
        assert_eq!(
            self.header("content-type").map(|c| c.starts_with("application/json")),
            Some(true)
        );
        msg.to_string()
    }

    /// Asserts the three `X-RateLimit-*` headers are present and sane.
    pub fn assert_rate_headers(&self) {
        let limit = self.header_u64("x-ratelimit-limit").expect("X-RateLimit-Limit");
        let remaining = self.header_u64("x-ratelimit-remaining").expect("X-RateLimit-Remaining");
        let reset = self.header_u64("x-ratelimit-reset").expect("X-RateLimit-Reset");
        assert!(remaining <= limit);
        assert!(reset > now_secs().saturating_sub(30) && reset <= now_secs() + 11, "reset {reset}");
    }
}

fn to_resp(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, ureq::Error> {
    let mut r = r?;
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.body_mut().read_to_string()?;
    Ok(Resp { status, headers, body })
}

/// `POST /events` with a bearer token (or none) and a raw body; `Err` on transport errors.
pub fn try_post_event(agent: &ureq::Agent, emu: &Emulator, token: Option<&str>, body: &str) -> Result<Resp, ureq::Error> {
    let mut req = agent
        .post(format!("{}/events", emu.base_url()))
        .header("Accept", "application/json")
        .header("Intercom-Version", "2.14")
        .content_type("application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    to_resp(req.send(body))
}

/// `POST /events` with the default token.
pub fn post_event(agent: &ureq::Agent, emu: &Emulator, body: &str) -> Resp {
    try_post_event(agent, emu, Some(TOKEN), body).expect("a response")
}

/// `POST /events` of a well-formed event.
pub fn post_simple(agent: &ureq::Agent, emu: &Emulator, name: &str, user: &str, created_at: i64) -> Resp {
    let body = serde_json::json!({"event_name": name, "created_at": created_at, "user_id": user});
    post_event(agent, emu, &body.to_string())
}

/// Authenticated `GET {path}`.
pub fn get_auth(agent: &ureq::Agent, emu: &Emulator, path: &str) -> Resp {
    to_resp(
        agent
            .get(format!("{}{path}", emu.base_url()))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call(),
    )
    .expect("a response")
}

/// Unauthenticated `GET {path}`.
pub fn get(agent: &ureq::Agent, emu: &Emulator, path: &str) -> Resp {
    to_resp(agent.get(format!("{}{path}", emu.base_url())).call()).expect("a response")
}

/// `POST {path}` with a JSON body, optionally authenticated.
pub fn post_json(agent: &ureq::Agent, emu: &Emulator, path: &str, auth: bool, body: &str) -> Resp {
    let mut req = agent.post(format!("{}{path}", emu.base_url())).content_type("application/json");
    if auth {
        req = req.header("Authorization", format!("Bearer {TOKEN}"));
    }
    to_resp(req.send(body)).expect("a response")
}

/// `DELETE {path}`.
pub fn delete(agent: &ureq::Agent, emu: &Emulator, path: &str) -> Resp {
    to_resp(agent.delete(format!("{}{path}", emu.base_url())).call()).expect("a response")
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Sleeps, if needed, until at most `secs_into_window` seconds have passed in
/// the current 10-second window, so a short burst stays inside one window.
pub fn align_to_window_start(max_secs_into_window: u64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let into = now.as_secs() % 10;
        if into <= max_secs_into_window {
            return;
        }
        let to_next = Duration::from_secs(10 - into) - Duration::from_nanos(u64::from(now.subsec_nanos()));
        std::thread::sleep(to_next + Duration::from_millis(20));
    }
}
