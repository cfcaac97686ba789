//! What the inspector shows: a record of every Intercom API request (accepted
//! or refused), the filters of `/__emulator/requests` and `/__emulator/events`,
//! and the one-line request log on stdout.
//!
//! Records live in [`State`](crate::state::State) under its mutex. A record of
//! a stored event points at the event (by index) instead of copying its
//! metadata, so 100,000 stored events cost one small record each; only refusals
//! keep the body that caused them (truncated to [`MAX_BODY_CHARS`]).
//!
//! The stdout log never blocks the server: lines go through a bounded channel to
//! a writer thread, and when stdout is not being read (a parent that only read
//! the first line) lines are dropped instead of wedging the emulator.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use serde_json::{json, Map, Value};

use crate::errors::{self, ApiError};
use crate::state::StoredEvent;

/// The most request records kept; older ones are forgotten (oldest first).
pub const MAX_RECORDS: usize = 200_000;
/// A refused request's body is kept up to this many characters.
pub const MAX_BODY_CHARS: usize = 4_096;
/// The most records one `/__emulator/requests` page returns.
pub const MAX_PAGE: usize = 1_000;
/// Lines the stdout log buffers before it drops them.
const LOG_BUFFER: usize = 10_000;

/// Who an API request named, as sent (best effort for refused bodies).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Subject {
    pub event_name: Option<String>,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub id: Option<String>,
}

impl Subject {
    /// Reads what it can from a body that may be invalid.
    pub fn from_raw(raw: &[u8]) -> Subject {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(raw) else {
            return Subject::default();
        };
        Subject::from_map(&m, "user_id")
    }

    /// From a JSON object; `user_key` is `user_id` for events, `external_id` for contacts.
    pub fn from_map(m: &Map<String, Value>, user_key: &str) -> Subject {
        let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        Subject { event_name: text("event_name"), user_id: text(user_key), email: text("email"), id: text("id") }
    }

    /// The contact as a developer would name it: `user_id`, else email, else id.
    fn contact(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.email.as_deref()).or(self.id.as_deref())
    }
}

/// One Intercom API request as the inspector shows it.
#[derive(Debug, Clone)]
pub(crate) struct RequestRecord {
    pub seq: u64,
    /// Unix seconds (fractional) when it was handled.
    pub at: f64,
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: the connection was closed without an answer.
    pub status: Option<u16>,
    pub subject: Subject,
    /// The contact it was attached to, when stored or a duplicate.
    pub intercom_user_id: Option<String>,
    /// Index of the stored event, if this request stored one.
    pub event: Option<usize>,
    pub duplicate: bool,
    pub scripted: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    /// The body of a refused request (truncated).
    pub body: Option<String>,
}

impl RequestRecord {
    /// `stored`, `duplicate`, `accepted` (a 2xx that stored nothing new, e.g. scripted),
    /// `refused` (any other status) or `dropped`.
    pub fn outcome(&self) -> &'static str {
        match self.status {
            None => "dropped",
            Some(_) if self.event.is_some() && self.is_success() => "stored",
            Some(_) if self.duplicate && self.is_success() => "duplicate",
            Some(_) if self.is_success() => "accepted",
            Some(_) => "refused",
        }
    }

    fn is_success(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// The `/__emulator/requests` form; `events` resolves the stored event's metadata.
    pub fn to_json(&self, events: &[StoredEvent]) -> Value {
        let stored = self.event.and_then(|i| events.get(i));
        let mut v = json!({
            "seq": self.seq,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "outcome": self.outcome(),
            "event_name": self.subject.event_name,
            "user_id": self.subject.user_id,
            "email": self.subject.email,
            "id": self.subject.id,
            "intercom_user_id": self.intercom_user_id,
            "scripted": self.scripted,
            "code": self.code,
            "message": self.message,
        });
        if let Some(e) = stored {
            v["created_at"] = json!(e.created_at);
            v["metadata"] = Value::Object(e.metadata.clone());
            v["ignored_metadata_keys"] = json!(e.ignored_metadata_keys);
            // The full metadata as sent, so the page can show the ignored keys' values.
            v["sent_metadata"] = e.body.get("metadata").cloned().unwrap_or(Value::Null);
        }
        if let Some(b) = &self.body {
            v["body"] = json!(b);
        }
        v
    }

    /// The stdout line: `HH:MM:SS.mmm POST /events 202 stored event=… contact=… code=-`.
    pub fn log_line(&self) -> String {
        let mut s = clock(self.at);
        let status = self.status.map_or_else(|| "---".to_string(), |s| s.to_string());
        let _ = write!(s, " {} {} {} {}", self.method, self.path, status, self.outcome());
        let _ = write!(s, " event={}", field(self.subject.event_name.as_deref()));
        let _ = write!(s, " contact={}", field(self.subject.contact()));
        let _ = write!(s, " code={}", field(self.code.as_deref()));
        s
    }
}

/// A log field: `-` when absent, quoted when it holds spaces or quotes (so a grep
/// on `event=name` and a split on spaces both work).
fn field(v: Option<&str>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c.is_control()) => {
            format!("{v:?}")
        }
        Some(v) => v.to_string(),
    }
}

/// `HH:MM:SS.mmm` in UTC.
fn clock(at: f64) -> String {
    let ms = (at * 1000.0) as u64;
    let (s, ms) = (ms / 1000, ms % 1000);
    format!("{:02}:{:02}:{:02}.{ms:03}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// The text of a refused body, truncated on a character boundary.
pub(crate) fn body_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    match text.char_indices().nth(MAX_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// The code and message of an Intercom error body, if it is one.
pub(crate) fn error_of(body: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(v) = body.and_then(|b| serde_json::from_str::<Value>(b).ok()) else { return (None, None) };
    let e = &v["errors"][0];
    (e["code"].as_str().map(str::to_string), e["message"].as_str().map(str::to_string))
}

/// Bounded, ordered request records.
#[derive(Debug, Default)]
pub(crate) struct Records {
    list: VecDeque<RequestRecord>,
    next_seq: u64,
    /// Resets so far: a page that sees it change starts over.
    generation: u64,
}

impl Records {
    /// Empty records after a reset: sequence numbers keep growing (so a
    /// long poll waiting for `seq > n` still sees new requests) and the
    /// generation moves on.
    pub fn after_reset(&self) -> Records {
        Records { list: VecDeque::new(), next_seq: self.next_seq, generation: self.generation + 1 }
    }

    /// Resets since start.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends a record, giving it the next sequence number (from 1).
    pub fn push(&mut self, mut r: RequestRecord) -> &RequestRecord {
        self.next_seq += 1;
        r.seq = self.next_seq;
        if self.list.len() >= MAX_RECORDS {
            self.list.pop_front();
        }
        self.list.push_back(r);
        self.list.back().expect("just pushed")
    }

    /// The sequence number of the newest record (0 when none yet).
    pub fn latest_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether a record newer than `after` matches `f`.
    pub fn any_after(&self, after: u64, f: &RequestFilter) -> bool {
        self.list.iter().rev().take_while(|r| r.seq > after).any(|r| f.matches(r))
    }

    /// A page, newest first: records matching `f` with `after < seq < before`,
    /// at most `f.limit`; and how many records match `f` in all.
    pub fn page(&self, f: &RequestFilter) -> (Vec<&RequestRecord>, usize) {
        if f.contact.is_none() && f.event_name.is_none() && f.status.is_none() {
            // Unfiltered (the page's usual view): no need to visit every record.
            let page = self
                .list
                .iter()
                .rev()
                .skip_while(|r| f.before.is_some_and(|b| r.seq >= b))
                .take_while(|r| r.seq > f.after)
                .take(f.limit)
                .collect();
            return (page, self.list.len());
        }
        let mut page = Vec::new();
        let mut total = 0;
        for r in self.list.iter().rev() {
            if !f.matches(r) {
                continue;
            }
            total += 1;
            let in_range = f.before.is_none_or(|b| r.seq < b) && r.seq > f.after;
            if in_range && page.len() < f.limit {
                page.push(r);
            }
        }
        (page, total)
    }
}

/// A status filter: an exact code, a class (`2xx`), `dropped` or `refused`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StatusFilter {
    Exact(u16),
    Class(u16),
    Dropped,
    /// Anything but a 2xx (dropped included).
    Refused,
}

impl StatusFilter {
    fn parse(v: &str) -> Result<StatusFilter, String> {
        let rule = "status must be a status code (e.g. 202), a class (2xx, 4xx, 5xx), refused or dropped";
        match v {
            "dropped" => Ok(StatusFilter::Dropped),
            "refused" => Ok(StatusFilter::Refused),
            _ if v.len() == 3 && v.ends_with("xx") => match v[..1].parse::<u16>() {
                Ok(c @ 1..=5) => Ok(StatusFilter::Class(c)),
                _ => Err(format!("{rule}, got {v:?}")),
            },
            _ => match v.parse::<u16>() {
                Ok(s @ 100..=599) => Ok(StatusFilter::Exact(s)),
                _ => Err(format!("{rule}, got {v:?}")),
            },
        }
    }

    pub fn matches(&self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusFilter::Exact(e), Some(s)) => *e == s,
            (StatusFilter::Class(c), Some(s)) => s / 100 == *c,
            (StatusFilter::Dropped, None) => true,
            (StatusFilter::Refused, s) => !matches!(s, Some(200..=299)),
            _ => false,
        }
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(400, errors::PARAMETER_INVALID, message)
}

fn refuse_unknown(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(format!("unknown parameter {k:?}; expected one of {}", allowed.join(", ")))),
        None => Ok(()),
    }
}

fn number<T: std::str::FromStr>(q: &HashMap<String, String>, k: &str, rule: &str) -> Result<Option<T>, ApiError> {
    match q.get(k) {
        None => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|_| bad(format!("{k} must be {rule}, got {v:?}"))),
    }
}

fn text(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k).filter(|v| !v.is_empty()).cloned()
}

/// The query of `GET /__emulator/requests`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestFilter {
    /// Substring of `user_id`, `email`, `id` or the Intercom contact id.
    pub contact: Option<String>,
    /// Substring of the event name.
    pub event_name: Option<String>,
    pub status: Option<StatusFilter>,
    /// Only records with `seq > after`.
    pub after: u64,
    /// Only records with `seq < before`.
    pub before: Option<u64>,
    pub limit: usize,
    /// Long poll: wait up to this long for a matching record newer than `after`.
    pub wait_ms: u64,
}

impl RequestFilter {
    pub const PARAMS: [&'static str; 7] = ["contact", "event_name", "status", "after", "before", "limit", "wait_ms"];

    pub fn parse(q: &HashMap<String, String>) -> Result<RequestFilter, ApiError> {
        refuse_unknown(q, &Self::PARAMS)?;
        let limit = number::<usize>(q, "limit", "an integer from 1 to 1000")?.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad(format!("limit must be an integer from 1 to {MAX_PAGE}, got {limit}")));
        }
        let wait_ms = number::<u64>(q, "wait_ms", "a non-negative integer (milliseconds, at most 60000)")?.unwrap_or(0);
        if wait_ms > 60_000 {
            return Err(bad(format!("wait_ms must be at most 60000, got {wait_ms}")));
        }
        Ok(RequestFilter {
            contact: text(q, "contact"),
            event_name: text(q, "event_name"),
            status: q.get("status").filter(|v| !v.is_empty()).map(|v| StatusFilter::parse(v)).transpose().map_err(bad)?,
            after: number(q, "after", "a non-negative integer (a seq)")?.unwrap_or(0),
            before: number(q, "before", "a non-negative integer (a seq)")?,
            limit,
            wait_ms,
        })
    }

    pub fn matches(&self, r: &RequestRecord) -> bool {
        if let Some(c) = &self.contact {
            let s = &r.subject;
            let hit = [s.user_id.as_deref(), s.email.as_deref(), s.id.as_deref(), r.intercom_user_id.as_deref()]
                .into_iter()
                .flatten()
                .any(|v| v.contains(c.as_str()));
            if !hit {
                return false;
            }
        }
        if let Some(n) = &self.event_name {
            if !r.subject.event_name.as_deref().is_some_and(|e| e.contains(n.as_str())) {
                return false;
            }
        }
        self.status.as_ref().is_none_or(|s| s.matches(r.status))
    }
}

/// The query of `GET /__emulator/events`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventFilter {
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub id: Option<String>,
    pub event_name: Option<String>,
    pub status: Option<StatusFilter>,
    /// `received_at >= since` (Unix seconds, may be fractional).
    pub since: Option<f64>,
    pub limit: Option<usize>,
    /// Newest first instead of arrival order.
    pub newest_first: bool,
}

impl EventFilter {
    pub const PARAMS: [&'static str; 8] = ["user_id", "email", "id", "event_name", "status", "since", "limit", "order"];

    pub fn parse(q: &HashMap<String, String>) -> Result<EventFilter, ApiError> {
        refuse_unknown(q, &Self::PARAMS)?;
        let since = number::<f64>(q, "since", "Unix seconds (a number)")?;
        if since.is_some_and(|s| !s.is_finite()) {
            return Err(bad("since must be Unix seconds (a finite number)".into()));
        }
        let newest_first = match q.get("order").map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(v) => return Err(bad(format!("order must be asc or desc, got {v:?}"))),
        };
        Ok(EventFilter {
            user_id: text(q, "user_id"),
            email: text(q, "email"),
            id: text(q, "id"),
            event_name: text(q, "event_name"),
            status: q.get("status").filter(|v| !v.is_empty()).map(|v| StatusFilter::parse(v)).transpose().map_err(bad)?,
            since,
            limit: number(q, "limit", "a non-negative integer")?,
            newest_first,
        })
    }

    /// Whether a contact filter is given (then only that contact's events match).
    pub fn names_contact(&self) -> bool {
        self.user_id.is_some() || self.email.is_some() || self.id.is_some()
    }

    /// The non-contact conditions.
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.event_name.as_ref().is_none_or(|n| *n == e.event_name)
            && self.status.as_ref().is_none_or(|s| s.matches(e.response_status))
            && self.since.is_none_or(|s| e.received_at >= s)
    }
}

/// The stdout request log: a writer thread fed by a bounded channel.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    tx: SyncSender<String>,
}

impl RequestLog {
    /// Starts the writer thread; `None` if the thread cannot start (then nothing is logged).
    pub fn to_stdout() -> Option<RequestLog> {
        let (tx, rx) = sync_channel::<String>(LOG_BUFFER);
        std::thread::Builder::new()
            .name("trackcore-emulator-log".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                while let Ok(line) = rx.recv() {
                    let mut out = stdout.lock();
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(RequestLog { tx })
    }

    /// Queues a line; drops it if the writer is behind (stdout not read).
    pub fn line(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters() {
        assert_eq!(StatusFilter::parse("202"), Ok(StatusFilter::Exact(202)));
        assert_eq!(StatusFilter::parse("4xx"), Ok(StatusFilter::Class(4)));
        assert!(StatusFilter::parse("9xx").is_err());
        assert!(StatusFilter::parse("abc").is_err());
        assert!(StatusFilter::Class(4).matches(Some(422)));
        assert!(!StatusFilter::Class(4).matches(Some(202)));
        assert!(StatusFilter::Refused.matches(None));
        assert!(StatusFilter::Refused.matches(Some(429)));
        assert!(!StatusFilter::Refused.matches(Some(202)));
        assert!(StatusFilter::Dropped.matches(None));
    }

    #[test]
    fn log_fields_are_greppable() {
        assert_eq!(field(None), "-");
        assert_eq!(field(Some("signed-up")), "signed-up");
        assert_eq!(field(Some("two words")), "\"two words\"");
        assert_eq!(clock(3661.5), "01:01:01.500");
    }

    #[test]
    fn body_text_truncates_on_a_char_boundary() {
        let long = "é".repeat(MAX_BODY_CHARS + 5);
        let t = body_text(long.as_bytes());
        assert_eq!(t.chars().count(), MAX_BODY_CHARS + 1);
        assert!(t.ends_with('…'));
    }
}
