//! `trackcore bridge`: an HTTP server that turns webhooks into events by the
//! rules in a file ([`crate::rules`]), and `bridge check`, which runs those
//! rules on a sample payload without sending anything.
//!
//! A webhook is answered 2xx only after the core accepted its events,
//! [`trackcore::Tracker::sync`] says they are kept (without a spool: in
//! memory, at once; with a disk spool: on disk), and the core dropped no event
//! meanwhile, so the sender's own retries cover a crash or a full queue before
//! that point.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::{Args, Subcommand};
use serde_json::json;
use trackcore::{Error, ErrorKind, Event, OptionValue, Overflow, Stats, Tracker};

use crate::connect::{self, Connect};
use crate::exit;
use crate::rules::{evaluate, Kind, Outcome, Route, Rules};
use crate::signature;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BridgeArgs {
    #[command(subcommand)]
    pub cmd: Option<BridgeCmd>,
    /// The rule file (see docs/cli.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, overriding [server] listen (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log the core's debug lines too.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub connect: Connect,
}

#[derive(Debug, Subcommand)]
pub enum BridgeCmd {
    /// Print the events a payload would produce, or why none; sends nothing.
    Check {
        /// The rule file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A sample webhook body (JSON), or - for stdin.
        #[arg(long, value_name = "FILE")]
        payload: String,
        /// Only this route's rules (default: every route).
        #[arg(long, value_name = "PATH")]
        route: Option<String>,
    },
}

pub fn run(args: BridgeArgs) -> i32 {
    match args.cmd {
        Some(BridgeCmd::Check { config, payload, route }) => check(&config, &payload, route.as_deref()),
        None => match &args.config {
            Some(path) => serve(path.clone(), &args),
            None => {
                eprintln!("trackcore: bridge needs --config FILE (or: bridge check --config FILE --payload FILE)");
                exit::USAGE
            }
        },
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

// ---- bridge check ----

fn check(config: &Path, payload: &str, only: Option<&str>) -> i32 {
    let rules = match Rules::load(config, false) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trackcore: {e}");
            return exit::USAGE;
        }
    };
    let text = if payload == "-" {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read(payload)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("trackcore: --payload {payload}: cannot read it: {e}");
            return exit::USAGE;
        }
    };
    let body: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("trackcore: --payload {payload}: not JSON ({e}); the bridge would answer 400");
            return exit::USAGE;
        }
    };
    let routes: Vec<&Route> = match only {
        Some(p) => match rules.route(p) {
            Some(r) => vec![r],
            None => {
                eprintln!("trackcore: --route {p}: no such route in {}", config.display());
                return exit::USAGE;
            }
        },
        None => rules.routes.iter().collect(),
    };
    let (mut events, mut invalid) = (0, 0);
    for route in routes {
        println!("route {} ({}):", route.path, route.kind.as_str());
        for o in evaluate(route, &body, now()) {
            match o {
                Outcome::Event { rule, body, .. } => {
                    events += 1;
                    println!("  rule {rule:?}: event {body}");
                }
                Outcome::NoMatch { rule, reason } => println!("  rule {rule:?}: no match: {reason}"),
                Outcome::Invalid { rule, code, message, .. } => {
                    invalid += 1;
                    println!("  rule {rule:?}: invalid [{code}]: {message} (the bridge would answer 422)");
                }
            }
        }
    }
    println!("{events} events, {invalid} invalid");
    if events > 0 && invalid == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}

// ---- the server ----

/// Why a webhook was refused, as `/metrics` labels it.
/// `dropped`: 503, the core dropped events (a full queue or spool) while the
/// webhook's were being taken; `unavailable`: 503, shutting down, or the
/// tracker did not take or keep the events in time.
const REASONS: [&str; 8] = ["signature", "malformed", "too_large", "invalid_event", "not_found", "method", "unavailable", "dropped"];

#[derive(Default)]
struct Metrics {
    received: AtomicU64,
    matched: AtomicU64,
    unmatched: AtomicU64,
    events: AtomicU64,
    rejected: [AtomicU64; REASONS.len()],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

struct App {
    rules: RwLock<Arc<Rules>>,
    tracker: Arc<Tracker>,
    metrics: Metrics,
    path: PathBuf,
}

impl App {
    fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn refuse(&self, reason: &'static str, status: StatusCode, body: serde_json::Value) -> Response {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.metrics.rejected[i].fetch_add(1, Relaxed);
        json_response(status, body)
    }

    /// Re-read the rule file. In-flight webhooks keep the rules they started
    /// with; a broken file keeps the old rules.
    fn reload(&self) {
        match Rules::load(&self.path, true) {
            Ok(new) => {
                let old = self.rules();
                if old.server != new.server || old.tracker != new.tracker {
                    log::warn!(target: "trackcore::bridge", "[server] and [tracker] changes take effect at the next start; routes and rules reloaded");
                }
                *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
                self.metrics.reloads_ok.fetch_add(1, Relaxed);
                eprintln!("trackcore bridge: reloaded {}", self.path.display());
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Relaxed);
                eprintln!("trackcore bridge: reload refused, keeping the old rules: {e}");
            }
        }
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn serve(path: PathBuf, args: &BridgeArgs) -> i32 {
    connect::init_log(args.verbose);
    let rules = match Rules::load(&path, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trackcore: {e}");
            return exit::USAGE;
        }
    };
    // A burst waits (up to block_timeout) for room instead of being dropped
    // at once; [tracker] overflow and --set overflow=... still win.
    let base: Vec<(String, OptionValue)> =
        std::iter::once(("overflow".to_string(), OptionValue::Str("block".into()))).chain(rules.tracker.iter().cloned()).collect();
    let config = match connect::config(&args.connect, &base, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trackcore: {e}");
            return exit::USAGE;
        }
    };
    if config.overflow == Overflow::DropOldest {
        // The webhook answer cannot be taken back: evicting the oldest queued
        // event loses one whose sender was already told 2xx.
        eprintln!("trackcore: overflow = \"drop_oldest\" is refused by the bridge: it drops events of webhooks already answered 2xx; use \"block\" (the bridge's default) or \"drop_newest\" (the sender is answered 503 and retries)");
        return exit::USAGE;
    }
    let tracker = match Tracker::new(config) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("trackcore: [{}] {e}", e.code());
            return exit::USAGE;
        }
    };
    let listen = args.listen.clone().unwrap_or_else(|| rules.server.listen.clone());
    let app = Arc::new(App { rules: RwLock::new(Arc::new(rules)), tracker: tracker.clone(), metrics: Metrics::default(), path });
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trackcore: cannot start the server's runtime: {e}");
            return exit::FAILED;
        }
    };
    let code = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("trackcore: cannot listen on {listen}: {e}");
                return exit::USAGE;
            }
        };
        let addr = listener.local_addr().map_or(listen.clone(), |a| a.to_string());
        // Handlers first, then the line a supervisor waits for: a SIGHUP or
        // SIGTERM sent as soon as it reads that line must not kill the process.
        use tokio::signal::unix::{signal, SignalKind};
        let (mut hup, mut term) = match (signal(SignalKind::hangup()), signal(SignalKind::terminate())) {
            (Ok(h), Ok(t)) => (h, t),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("trackcore: cannot install signal handlers: {e}");
                return exit::FAILED;
            }
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "trackcore bridge listening on http://{addr}");
            let _ = out.flush();
        }
        let reloader = app.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reloader.reload();
            }
        });
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .fallback(webhook)
            .with_state(app);
        let stop = async move {
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            eprintln!("trackcore bridge: stopping; answering what is in flight");
        };
        match axum::serve(listener, router).with_graceful_shutdown(stop).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("trackcore: server error: {e}");
                exit::FAILED
            }
        }
    });
    // Everything acknowledged gets its chance to be delivered.
    if !tracker.shutdown(Duration::from_secs(10)) {
        eprintln!("trackcore bridge: some accepted events were not delivered before shutdown: {:?}", tracker.stats());
    }
    code
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    use std::fmt::Write;
    let m = &app.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n");
    };
    counter("trackcore_bridge_webhooks_received_total", "Webhooks received on a configured route.", m.received.load(Relaxed));
    counter("trackcore_bridge_webhooks_matched_total", "Webhooks that produced at least one event.", m.matched.load(Relaxed));
    counter("trackcore_bridge_webhooks_unmatched_total", "Webhooks that matched no rule (answered 2xx).", m.unmatched.load(Relaxed));
    counter("trackcore_bridge_events_tracked_total", "Events handed to the core.", m.events.load(Relaxed));
    let _ = write!(out, "# HELP trackcore_bridge_webhooks_rejected_total Webhooks refused, by reason.\n# TYPE trackcore_bridge_webhooks_rejected_total counter\n");
    for (i, r) in REASONS.iter().enumerate() {
        let _ = writeln!(out, "trackcore_bridge_webhooks_rejected_total{{reason=\"{r}\"}} {}", m.rejected[i].load(Relaxed));
    }
    let _ = write!(out, "# HELP trackcore_bridge_reloads_total Rule file reloads (SIGHUP), by result.\n# TYPE trackcore_bridge_reloads_total counter\n");
    let _ = writeln!(out, "trackcore_bridge_reloads_total{{result=\"ok\"}} {}", m.reloads_ok.load(Relaxed));
    let _ = writeln!(out, "trackcore_bridge_reloads_total{{result=\"failed\"}} {}", m.reloads_failed.load(Relaxed));
    // The core's own counters, under the names every binding uses.
    for (name, v) in app.tracker.stats().fields() {
        let gauge = matches!(name, "queued" | "in_flight" | "blocked" | "auth_paused");
        let full = if gauge { format!("trackcore_{name}") } else { format!("trackcore_{name}_total") };
        let _ = write!(out, "# TYPE {full} {}\n{full} {v}\n", if gauge { "gauge" } else { "counter" });
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn webhook(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let rules = app.rules();
    let Some(route) = rules.route(uri.path()) else {
        return app.refuse("not_found", StatusCode::NOT_FOUND, json!({"error": "not_found", "message": format!("no route {}", uri.path())}));
    };
    app.metrics.received.fetch_add(1, Relaxed);
    if method != Method::POST {
        return app.refuse("method", StatusCode::METHOD_NOT_ALLOWED, json!({"error": "method_not_allowed", "message": "webhooks are POSTed"}));
    }
    let max = rules.server.max_body_bytes;
    let too_large = || json!({"error": "too_large", "message": format!("the body is over the cap of {max} bytes")});
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return app.refuse("too_large", StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let bytes = match to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return app.refuse("too_large", StatusCode::PAYLOAD_TOO_LARGE, too_large()),
        Err(e) => {
            return app.refuse("malformed", StatusCode::BAD_REQUEST, json!({"error": "unreadable_body", "message": e.to_string()}))
        }
    };
    let now = now();
    if let Err(why) = verify(route, &headers, &bytes, now) {
        return app.refuse("signature", StatusCode::UNAUTHORIZED, json!({"error": "bad_signature", "message": why.0}));
    }
    let payload: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return app.refuse("malformed", StatusCode::BAD_REQUEST, json!({"error": "malformed_json", "message": e.to_string()})),
    };
    let outcomes = evaluate(route, &payload, now);
    // Nothing is tracked unless every matched rule made a valid event: the
    // sender's retry of a fixed payload then never duplicates half of it.
    if let Some(Outcome::Invalid { rule, field, code, message }) = outcomes.iter().find(|o| matches!(o, Outcome::Invalid { .. })) {
        return app.refuse(
            "invalid_event",
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "invalid_event", "rule": rule, "field": field, "code": code, "message": message}),
        );
    }
    let events: Vec<_> = outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Event { rule, event, .. } => Some((rule, event)),
            _ => None,
        })
        .collect();
    if events.is_empty() {
        app.metrics.unmatched.fetch_add(1, Relaxed);
        return json_response(StatusCode::OK, json!({"matched": false, "events": 0}));
    }
    // track() may wait for room (overflow="block") and sync() for the disk:
    // both run off the server's two worker threads.
    let (a, bound) = (app.clone(), rules.server.ack_timeout);
    let fate = tokio::task::spawn_blocking(move || take(&a, events, bound)).await.unwrap_or(Fate::NotKept);
    match fate {
        Fate::Kept(names) => {
            app.metrics.matched.fetch_add(1, Relaxed);
            json_response(StatusCode::OK, json!({"matched": true, "events": names.len(), "rules": names}))
        }
        Fate::Refused { rule, error } => {
            let (reason, status, body) = track_refusal(&rule, &error);
            app.refuse(reason, status, body)
        }
        Fate::NotKept => {
            app.refuse("unavailable", StatusCode::SERVICE_UNAVAILABLE, json!({"error": "not_kept", "message": "the events were not stored in time; retry"}))
        }
        Fate::Dropped(n) => app.refuse(
            "dropped",
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not_kept", "message": format!("the core dropped {n} events (a full queue or spool) while this webhook's were taken; they may be among them; retry")}),
        ),
    }
}

/// What became of a matched payload's events in the core.
enum Fate {
    /// Tracked and kept, with nothing dropped meanwhile: 2xx (the rules' names).
    Kept(Vec<String>),
    /// `track()` returned an error for the event of `rule`.
    Refused { rule: String, error: Error },
    /// `sync()` did not say they are kept within `ack_timeout`.
    NotKept,
    /// The core dropped this many events between the first `track()` and the
    /// end of `sync()`.
    Dropped(u64),
}

/// Hand a payload's events to the core and see whether they are kept.
///
/// `track()` returns `Ok` even for an event it drops on a full queue
/// (`drop_newest`, or `block` past `block_timeout`), and a full spool drops
/// one in the dispatcher, before `sync()` answers; `sync()` counts a dropped
/// event as settled. So the core's drop counters are read before the first
/// `track()` and after `sync()`: if they grew, one of these events may be
/// lost and the sender is told to retry. Under concurrency that is
/// conservative (another payload's drop refuses this one too); the retry of
/// an event that was in fact kept is dropped by the core's de-duplication on
/// (identity, name, `created_at`), so nothing is sent twice when the rules
/// map `created_at` from the payload.
fn take(app: &App, events: Vec<(String, Event)>, bound: Duration) -> Fate {
    let t = &app.tracker;
    let before = lost(&t.stats());
    let mut names = Vec::with_capacity(events.len());
    for (rule, event) in events {
        if let Err(error) = t.track(event) {
            return Fate::Refused { rule, error };
        }
        app.metrics.events.fetch_add(1, Relaxed);
        names.push(rule);
    }
    // The durability seam: 2xx only once the core keeps what it accepted.
    if !t.sync(bound) {
        return Fate::NotKept;
    }
    match lost(&t.stats()).saturating_sub(before) {
        0 => Fate::Kept(names),
        n => Fate::Dropped(n),
    }
}

/// Events the core gave up on before delivery: `dropped` is the sum of
/// `dropped_queue_full`, `dropped_oldest`, `dropped_spool` (full, or damaged
/// on disk) and `dropped_shutdown`. Not `deduplicated` (a copy of an event
/// already kept is no loss) nor `failed_*` (Intercom's answer to an event the
/// core kept and sent).
fn lost(s: &Stats) -> u64 {
    s.dropped
}

/// The answer to a `track()` error: 422 only when the event itself is
/// invalid; anything about the tracker's state is a 503 the sender retries.
fn track_refusal(rule: &str, e: &Error) -> (&'static str, StatusCode, serde_json::Value) {
    match e.kind() {
        ErrorKind::InvalidEvent | ErrorKind::InvalidType => (
            "invalid_event",
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "invalid_event", "rule": rule, "field": e.field(), "code": e.code(), "message": e.to_string()}),
        ),
        ErrorKind::Closed => ("unavailable", StatusCode::SERVICE_UNAVAILABLE, json!({"error": "shutting_down", "message": e.to_string()})),
        _ => (
            "unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not_kept", "rule": rule, "code": e.code(), "message": format!("the core did not keep the event: {e}; retry")}),
        ),
    }
}

/// Whether reading a body failed on the size cap (anything else is the
/// sender's connection or framing).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn verify(route: &Route, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), signature::Refused> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(secret) = &route.secret else { return Ok(()) };
    match route.kind {
        Kind::Stripe => signature::stripe(h("stripe-signature"), body, secret.bytes(), route.tolerance_secs, now),
        Kind::Intercom => signature::intercom(h("x-hub-signature"), body, secret.bytes()),
        Kind::Json => {
            let name = route.secret_header.as_deref().unwrap_or("x-webhook-secret");
            signature::shared(name, h(name), secret.bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // track() returns only input errors and `closed` today, so a
    // delivery-kind error cannot be provoked through the process; the
    // mapping is checked here for every family.
    #[test]
    fn a_track_error_is_422_only_for_an_invalid_event() {
        let cases = [
            (Error::MissingIdentity, "invalid_event", 422, "invalid_event"),
            (Error::ArrayNotSupported { key: "k".into() }, "invalid_event", 422, "invalid_event"),
            (Error::Closed, "unavailable", 503, "shutting_down"),
            (Error::QueueFull { capacity: 1, policy: "drop_newest" }, "unavailable", 503, "not_kept"),
            (Error::SpoolFull { max_bytes: 4096 }, "unavailable", 503, "not_kept"),
            (Error::UndeliveredAtShutdown, "unavailable", 503, "not_kept"),
            (Error::MissingAccessToken, "unavailable", 503, "not_kept"),
        ];
        for (e, reason, status, error) in cases {
            let (r, s, body) = track_refusal("rule", &e);
            assert_eq!((r, s.as_u16(), body["error"].as_str()), (reason, status, Some(error)), "{e:?}");
            assert!(REASONS.contains(&r));
        }
        let (_, _, body) = track_refusal("rule", &Error::SpoolFull { max_bytes: 4096 });
        assert_eq!(body["code"], "spool_full");
    }
}
