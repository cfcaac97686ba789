//! `trackcore send`: one event from the command line, or a JSONL file of
//! them, delivered through the core (which does the pacing, retrying and
//! de-duplication; this module only reads input and reports outcomes).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use trackcore::{Error, Event, OptionValue, Tracker};

use crate::connect::{self, Connect};
use crate::exit;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The event name (omit with --jsonl).
    #[arg(required_unless_present = "jsonl", conflicts_with = "jsonl")]
    pub name: Option<String>,
    /// Your id for the user (Intercom's user_id).
    #[arg(long, group = "identity")]
    pub user_id: Option<String>,
    /// The contact's email.
    #[arg(long, group = "identity")]
    pub email: Option<String>,
    /// Intercom's contact id.
    #[arg(long, group = "identity")]
    pub id: Option<String>,
    /// Unix seconds (default: now).
    #[arg(long, value_name = "SECS")]
    pub created_at: Option<i64>,
    /// Metadata KEY=VALUE (repeatable). A VALUE that parses as JSON keeps its
    /// type: 3, true, {"amount":1999,"currency":"eur"}, {"url":…,"value":…};
    /// anything else is a string.
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Send every line of FILE (- for stdin), one event a line in the API's JSON shape.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<String>,
    /// With --jsonl: validate only, send nothing (needs no token).
    #[arg(long, requires = "jsonl")]
    pub dry_run: bool,
    /// Seconds to wait for Intercom's answer (for --jsonl: for all of them).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub timeout: f64,
    #[command(flatten)]
    pub connect: Connect,
}

/// What the error callback hears, or that the flush ended.
enum Heard {
    Failure(Error),
    Flushed(bool),
}

pub fn run(args: SendArgs) -> i32 {
    if !args.timeout.is_finite() || args.timeout <= 0.0 || args.timeout > 86_400.0 {
        eprintln!("trackcore: --timeout: must be more than 0 and at most 86400 seconds");
        return exit::USAGE;
    }
    match &args.jsonl {
        Some(path) => jsonl(&args, path),
        None => single(&args),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn single(args: &SendArgs) -> i32 {
    let mut event = Event::new(args.name.clone().unwrap_or_default());
    event.user_id = args.user_id.clone();
    event.email = args.email.clone();
    event.id = args.id.clone();
    event.created_at = args.created_at;
    for kv in &args.meta {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("trackcore: -m {kv:?}: expected KEY=VALUE");
            return exit::USAGE;
        };
        event.metadata.push((k.to_string(), meta_value(v)));
    }
    // The core's own validation, before anything is started.
    if let Err(e) = event.prepare(now()) {
        eprintln!("trackcore: invalid event [{}]: {e}", e.code());
        return exit::INVALID;
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    // The core stops retrying by the time this command stops waiting, so the
    // outcome it reports is final.
    let base = [("retry_deadline".to_string(), OptionValue::Float(args.timeout))];
    let (tx, rx) = mpsc::channel();
    let tracker = match start(&args.connect, &base, tx.clone()) {
        Ok(t) => Arc::new(t),
        Err(code) => return code,
    };
    if let Err(e) = tracker.track(event) {
        eprintln!("trackcore: invalid event [{}]: {e}", e.code());
        return exit::INVALID;
    }
    let t = tracker.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Heard::Flushed(t.flush(timeout)));
    });
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Heard::Failure(Error::DeliveryStalled { attempts, reason })) => {
                eprintln!("trackcore: still trying ({attempts} attempts failed: {reason})");
            }
            Ok(Heard::Failure(e)) => return report_failure(&e),
            Ok(Heard::Flushed(true)) => {
                let s = tracker.stats();
                if s.delivered >= 1 {
                    println!("delivered");
                    return exit::OK;
                }
                eprintln!("trackcore: not delivered (stats: {s:?})");
                return exit::FAILED;
            }
            Ok(Heard::Flushed(false)) | Err(_) => {
                eprintln!("trackcore: Intercom did not confirm the event within {} s; it was not delivered", args.timeout);
                return exit::TIMEOUT;
            }
        }
    }
}

/// Print a delivery failure and pick the exit code.
fn report_failure(e: &Error) -> i32 {
    eprintln!("trackcore: not delivered [{}]: {e}", e.code());
    match e {
        Error::Unauthorized { .. } => exit::AUTH,
        _ => exit::FAILED,
    }
}

/// A `-m` value: JSON keeps its type, anything else is a string.
pub fn meta_value(v: &str) -> trackcore::Value {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(j) => trackcore::event::value_from_json(&j),
        Err(_) => trackcore::Value::String(v.to_string()),
    }
}

/// A tracker whose error callback forwards what it hears to `tx`.
fn start(c: &Connect, base: &[(String, OptionValue)], tx: mpsc::Sender<Heard>) -> Result<Tracker, i32> {
    let mut config = match connect::config(c, base, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trackcore: {e}");
            return Err(exit::USAGE);
        }
    };
    let tx = Mutex::new(tx);
    config.on_error = Some(Arc::new(move |_, e: &Error| {
        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(Heard::Failure(e.clone()));
    }));
    Tracker::new(config).map_err(|e| {
        eprintln!("trackcore: [{}] {e}", e.code());
        exit::USAGE
    })
}

/// One JSONL line as an event: the API's JSON shape.
pub fn parse_line(line: &str) -> Result<Event, (String, String)> {
    let bad = |code: &str, m: String| (code.to_string(), m);
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad("invalid_json", format!("not JSON: {e}")))?;
    let serde_json::Value::Object(o) = v else { return Err(bad("invalid_json", "not a JSON object".into())) };
    let mut e = Event::default();
    for (k, v) in o {
        let text = |field: &str| match &v {
            serde_json::Value::String(s) => Ok(Some(s.clone())),
            serde_json::Value::Number(n) if field != "event_name" => Ok(Some(n.to_string())),
            serde_json::Value::Null => Ok(None),
            _ => Err(bad("wrong_type", format!("{field}: must be a string"))),
        };
        match k.as_str() {
            "event_name" => e.event_name = text("event_name")?.unwrap_or_default(),
            "user_id" => e.user_id = text("user_id")?,
            "email" => e.email = text("email")?,
            "id" => e.id = text("id")?,
            "created_at" => {
                e.created_at = match &v {
                    serde_json::Value::Null => None,
                    v => Some(v.as_i64().ok_or_else(|| bad("wrong_type", "created_at: must be an integer (Unix seconds)".into()))?),
                }
            }
            "metadata" => match &v {
                serde_json::Value::Object(m) => {
                    e.metadata = m.iter().map(|(k, v)| (k.clone(), trackcore::event::value_from_json(v))).collect()
                }
                serde_json::Value::Null => {}
                _ => return Err(bad("wrong_type", "metadata: must be an object".into())),
            },
            other => {
                return Err(bad(
                    "unknown_field",
                    format!("{other}: not a field of an event (event_name, created_at, user_id, id, email, metadata)"),
                ))
            }
        }
    }
    Ok(e)
}

#[derive(Default)]
struct Tally {
    lines: u64,
    invalid: Vec<(u64, String, String)>,
}

fn jsonl(args: &SendArgs, path: &str) -> i32 {
    if args.name.is_some() || args.user_id.is_some() || args.email.is_some() || args.id.is_some() || !args.meta.is_empty() {
        eprintln!("trackcore: --jsonl takes every field from the file; drop NAME, --user-id/--email/--id and -m");
        return exit::USAGE;
    }
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("trackcore: --jsonl {path}: cannot read it: {e}");
                return exit::USAGE;
            }
        }
    };
    // Counted up front for a file, so the bar has a length.
    let total = (path != "-").then(|| std::fs::read(path).map(|b| count_lines(&b)).unwrap_or(0));
    if args.dry_run {
        return dry_run(reader);
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    // Backpressure instead of drops: a file is read as fast as the core takes it.
    let base = [
        ("overflow".to_string(), OptionValue::Str("block".into())),
        ("block_timeout".to_string(), OptionValue::Float(args.timeout)),
    ];
    let (tx, rx) = mpsc::channel();
    let tracker = match start(&args.connect, &base, tx.clone()) {
        Ok(t) => Arc::new(t),
        Err(code) => return code,
    };
    let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let auth: Arc<Mutex<Option<Error>>> = Arc::default();
    // Outcomes are tallied off the reading thread.
    let collector = {
        let (failures, auth) = (failures.clone(), auth.clone());
        std::thread::spawn(move || {
            for heard in rx {
                match heard {
                    Heard::Failure(Error::DeliveryStalled { .. }) | Heard::Flushed(_) => {}
                    Heard::Failure(e @ Error::Unauthorized { .. }) => {
                        eprintln!("trackcore: [{}] {e}", e.code());
                        *auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                    Heard::Failure(e) => {
                        let key = match &e {
                            Error::Rejected { status, intercom_code, .. } => format!("HTTP {status} {intercom_code}"),
                            other => other.code().to_string(),
                        };
                        *failures.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
                    }
                }
            }
        })
    };
    drop(tx);
    let progress = Progress::start(tracker.clone(), total);
    let mut tally = Tally::default();
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                tally.lines += 1;
                tally.invalid.push((n, "unreadable".into(), format!("cannot read the line: {e}")));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        tally.lines += 1;
        match parse_line(&line) {
            Err((code, m)) => tally.invalid.push((n, code, m)),
            Ok(ev) => {
                if let Err(e) = tracker.track(ev) {
                    tally.invalid.push((n, e.code().into(), e.to_string()));
                }
            }
        }
        progress.read(tally.lines);
        if auth.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            break;
        }
    }
    let settled = auth.lock().unwrap_or_else(|p| p.into_inner()).is_none() && flush_unless_refused(&tracker, timeout, &auth);
    progress.finish();
    let s = tracker.stats();
    let refused = auth.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    let _ = tracker.shutdown(Duration::from_millis(500));
    drop(tracker);
    let _ = collector.join();
    let failures = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failed: u64 = failures.values().sum();
    println!(
        "summary: {} lines, {} delivered, {} failed, {} de-duplicated, {} invalid",
        tally.lines,
        s.delivered,
        failed,
        s.deduplicated,
        tally.invalid.len()
    );
    for (why, n) in &failures {
        println!("failed: {n} x {why}");
    }
    for (n, code, m) in &tally.invalid {
        println!("invalid line {n}: [{code}] {m}");
    }
    if refused {
        return exit::AUTH;
    }
    if !settled {
        println!("not settled: {} events were still waiting after {} s", s.queued + s.in_flight, args.timeout);
        return exit::TIMEOUT;
    }
    if failed > 0 || !tally.invalid.is_empty() || s.dropped > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Flush in short steps, so a refused token ends the wait at once.
fn flush_unless_refused(tracker: &Tracker, timeout: Duration, auth: &Mutex<Option<Error>>) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if tracker.flush(left.min(Duration::from_millis(200))) {
            return true;
        }
        if left.is_zero() || auth.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return false;
        }
    }
}

fn count_lines(b: &[u8]) -> u64 {
    b.split(|&c| c == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count() as u64
}

fn dry_run(reader: Box<dyn BufRead>) -> i32 {
    let now = now();
    let mut seen = std::collections::HashSet::new();
    let (mut lines, mut valid, mut dupes, mut invalid) = (0u64, 0u64, 0u64, Vec::new());
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let Ok(line) = line else {
            lines += 1;
            invalid.push((n, "unreadable".to_string(), "cannot read the line".to_string()));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        match parse_line(&line).and_then(|e| e.prepare(now).map_err(|e| (e.code().to_string(), e.to_string()))) {
            Err((code, m)) => invalid.push((n, code, m)),
            Ok(p) => {
                valid += 1;
                if !seen.insert(p.dedupe_key()) {
                    dupes += 1;
                }
            }
        }
    }
    println!("dry run: {lines} lines, {valid} valid ({dupes} would be de-duplicated), {} invalid, nothing sent", invalid.len());
    for (n, code, m) in &invalid {
        println!("invalid line {n}: [{code}] {m}");
    }
    if invalid.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// A bar on a terminal; plain lines (at most one a second) otherwise.
struct Progress {
    done: Arc<std::sync::atomic::AtomicBool>,
    read: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(tracker: Arc<Tracker>, total: Option<u64>) -> Progress {
        use std::sync::atomic::Ordering::Relaxed;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, r) = (done.clone(), read.clone());
        let thread = std::thread::spawn(move || {
            let settled = |t: &Tracker| {
                let s = t.stats();
                (s.delivered + s.failed + s.deduplicated + s.dropped, s.failed)
            };
            if std::io::stderr().is_terminal() {
                let bar = match total {
                    Some(n) => indicatif::ProgressBar::new(n),
                    None => indicatif::ProgressBar::new_spinner(),
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} settled, {msg} [{elapsed}]")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                while !d.load(Relaxed) {
                    let (n, failed) = settled(&tracker);
                    if total.is_none() {
                        bar.set_length(r.load(Relaxed));
                    }
                    bar.set_position(n);
                    bar.set_message(format!("{failed} failed"));
                    std::thread::park_timeout(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            } else {
                let mut last = Instant::now();
                while !d.load(Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(100));
                    if last.elapsed() >= Duration::from_secs(1) {
                        last = Instant::now();
                        let (n, failed) = settled(&tracker);
                        eprintln!("progress: {n} of {} settled, {failed} failed", total.unwrap_or(r.load(Relaxed)));
                    }
                }
            }
        });
        Progress { done, read, thread: Some(thread) }
    }

    fn read(&self, n: u64) {
        self.read.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn finish(mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_values_keep_their_json_type() {
        use trackcore::Value;
        assert_eq!(meta_value("3"), Value::Int(3));
        assert_eq!(meta_value("2.5"), Value::Float(2.5));
        assert_eq!(meta_value("true"), Value::Bool(true));
        assert_eq!(meta_value("pro"), Value::String("pro".into()));
        assert_eq!(meta_value("\"42\""), Value::String("42".into()));
    }

    #[test]
    fn jsonl_lines_name_what_is_wrong() {
        assert_eq!(parse_line("{\"event_name\":\"a\",\"user_id\":7}").unwrap().user_id.as_deref(), Some("7"));
        assert_eq!(parse_line("{\"event_name\":\"a\",\"tags\":[]}").unwrap_err().0, "unknown_field");
        assert_eq!(parse_line("nope").unwrap_err().0, "invalid_json");
        assert_eq!(parse_line("[1]").unwrap_err().0, "invalid_json");
        assert_eq!(parse_line("{\"created_at\":\"soon\"}").unwrap_err().0, "wrong_type");
    }
}
