//! HTTP layer: axum routes over a hyper HTTP/1.1 accept loop.
//!
//! We run our own accept loop (rather than `axum::serve`) for two reasons:
//! every accepted socket gets `TCP_NODELAY` (no Nagle/delayed-ACK stalls for
//! keep-alive clients), and a handler can ask for the connection to be closed
//! without any response (fault injection), which hyper does when the service
//! returns an error.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::handler::Handler;
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Service;

use crate::config::ConfigUpdate;
use crate::errors::{self, ApiError};
use crate::gate::GateStatus;
use crate::inspect::{body_text, error_of, EventFilter, RequestFilter, RequestRecord, Subject};
use crate::script::ScriptedResponse;
use crate::state::{Admission, EventNote, Reply, State};
use crate::validate::validate_event;

/// State shared by all connections.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere must not take the emulator down with it.
pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `ready` holds for the state, or `timeout` passes (`false`).
///
/// Event-driven: it re-checks only when the state signals a change (events
/// stored, gate changed), never by polling.
pub(crate) async fn wait_until(shared: &Shared, timeout: Duration, ready: impl Fn(&State) -> bool) -> bool {
    let mut changes = {
        let st = lock(shared);
        if ready(&st) {
            return true;
        }
        // Subscribed under the same lock as the check: no change can slip between.
        st.subscribe()
    };
    let wait = async {
        loop {
            if changes.changed().await.is_err() {
                return false;
            }
            if ready(&lock(shared)) {
                return true;
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.unwrap_or(false)
}

/// Forgets a held request if its handler is dropped before the reply came,
/// which is what hyper does when the client disconnects.
struct ForgetIfDropped {
    shared: Shared,
    id: Option<u64>,
}

impl Drop for ForgetIfDropped {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&self.shared).forget_held(id);
        }
    }
}

/// Response extension asking the accept loop to close the connection unanswered.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

/// The error that makes hyper abort a connection.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for ConnectionDropped {}

const RECORDED_HEADERS: [&str; 4] = ["user-agent", "intercom-version", "content-type", "accept"];

fn authorization(h: &HeaderMap) -> Option<&str> {
    h.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

fn json_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn set_num(r: &mut Response, name: &'static str, v: Option<u64>) {
    if let Some(v) = v {
        r.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from(v));
    }
}

async fn respond(reply: Reply) -> Response {
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.drop {
        let mut r = Response::new(Body::empty());
        r.extensions_mut().insert(DropConnection);
        return r;
    }
    let mut r = match reply.body {
        Some(b) => json_response(reply.status, b),
        None => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::ACCEPTED);
            r
        }
    };
    set_num(&mut r, "x-ratelimit-limit", reply.rate_limit.map(u64::from));
    set_num(&mut r, "x-ratelimit-remaining", reply.rate_remaining.map(u64::from));
    set_num(&mut r, "x-ratelimit-reset", reply.rate_reset);
    set_num(&mut r, "retry-after", reply.retry_after);
    r
}

async fn post_events(AxState(s): AxState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let recorded: BTreeMap<String, String> = RECORDED_HEADERS
        .iter()
        .filter_map(|n| {
            headers.get(*n).and_then(|v| v.to_str().ok()).map(|v| ((*n).to_string(), v.to_string()))
        })
        .collect();
    let parsed = validate_event(&body);
    let subject = match &parsed {
        Ok(ev) => Subject {
            event_name: Some(ev.event_name.clone()),
            user_id: ev.user_id.clone(),
            email: ev.email.clone(),
            id: ev.id.clone(),
        },
        Err(_) => Subject::from_raw(&body),
    };
    let note = EventNote { subject, raw: body };
    let admission = lock(&s).receive_event(authorization(&headers), parsed, recorded, note, SystemTime::now());
    let reply = match admission {
        Admission::Answer(reply) => reply,
        Admission::Held { id, reply } => {
            let mut guard = ForgetIfDropped { shared: s.clone(), id: Some(id) };
            let reply = reply.await;
            guard.id = None;
            match reply {
                Ok(reply) => reply,
                // Every path that takes a request off the gate answers it; if one
                // ever does not, the client sees a closed connection, not a hang.
                Err(_) => Reply::dropped(),
            }
        }
    };
    respond(reply).await
}

async fn get_events(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = match headers.get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => "http://127.0.0.1".to_string(),
    };
    let reply = lock(&s).list_events(authorization(&headers), &q, &base, SystemTime::now());
    respond(reply).await
}

async fn post_contacts(AxState(s): AxState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = lock(&s).post_contact(authorization(&headers), &body, SystemTime::now());
    respond(reply).await
}

fn bad_request(message: String) -> Response {
    json_response(400, ApiError::new(400, errors::PARAMETER_INVALID, message).body())
}

/// `GET /__emulator/events?user_id=&email=&id=&event_name=&status=&since=&limit=&order=`.
async fn control_events(AxState(s): AxState<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    match EventFilter::parse(&q) {
        Ok(f) => {
            let body = lock(&s).events_json(&f);
            json_response(200, body)
        }
        Err(e) => json_response(400, e.body()),
    }
}

/// `GET /__emulator/requests?contact=&event_name=&status=&after=&before=&limit=&wait_ms=`:
/// every Intercom API request (refused ones too), newest first. With `wait_ms`,
/// answers as soon as a matching request newer than `after` exists, or after
/// `wait_ms` with what there is (a long poll: the inspector page's live feed).
async fn control_requests(AxState(s): AxState<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let f = match RequestFilter::parse(&q) {
        Ok(f) => f,
        Err(e) => return json_response(400, e.body()),
    };
    if f.wait_ms > 0 {
        let (after, cond) = (f.after, f.clone());
        wait_until(&s, Duration::from_millis(f.wait_ms), move |st| st.has_request_after(after, &cond)).await;
    }
    let body = lock(&s).requests_json(&f);
    json_response(200, body.to_string())
}

/// The inspector page, from the binary.
const INSPECTOR_HTML: &str = include_str!("inspector.html");

async fn inspector_page() -> Response {
    let mut r = Response::new(Body::from(INSPECTOR_HTML));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(HeaderName::from_static("cache-control"), HeaderValue::from_static("no-store"));
    // Everything is inline and same-origin; nothing may be framed or fetched elsewhere.
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    );
    r
}

/// Whether a control request comes from this machine's own pages and tools:
/// the `Host` must name the loopback address (so a DNS-rebinding page cannot
/// reach the control API under another name), and a browser's `Origin`, when
/// sent, must be the emulator itself (so another site cannot reset it or
/// change its configuration from a visitor's browser).
fn local_request(headers: &HeaderMap) -> bool {
    let loopback = |authority: &str| {
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    };
    let host_ok = headers.get(HOST).and_then(|h| h.to_str().ok()).is_none_or(loopback);
    let origin_ok = match headers.get(ORIGIN).and_then(|h| h.to_str().ok()) {
        None => true,
        Some(o) => o.strip_prefix("http://").is_some_and(|rest| {
            headers.get(HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| h == rest) && loopback(rest)
        }),
    };
    host_ok && origin_ok
}

async fn local_only(req: Request<Body>, next: Next) -> Response {
    if local_request(req.headers()) {
        next.run(req).await
    } else {
        json_response(
            403,
            ApiError::new(403, "forbidden", "the emulator's control API and page answer only 127.0.0.1 itself").body(),
        )
    }
}

/// Records `GET /events` and `POST /contacts` for the inspector (`POST /events`
/// is recorded by the state as it is handled): who the request named, the
/// status, and for a refusal the error and the request body.
async fn record_api(AxState(s): AxState<Shared>, req: Request<Body>, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let raw = axum::body::to_bytes(body, 2 * 1024 * 1024).await.unwrap_or_default();
    let path: &'static str = if parts.uri.path() == "/contacts" { "/contacts" } else { "/events" };
    let method: &'static str = if parts.method == axum::http::Method::POST { "POST" } else { "GET" };
    let subject = if method == "POST" {
        match serde_json::from_slice::<serde_json::Value>(&raw) {
            Ok(serde_json::Value::Object(m)) => Subject::from_map(&m, "external_id"),
            _ => Subject::default(),
        }
    } else {
        let q: HashMap<String, String> = parts
            .uri
            .query()
            .and_then(query_pairs)
            .unwrap_or_default();
        let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        Subject { event_name: None, user_id: get("user_id"), email: get("email"), id: get("intercom_user_id") }
    };
    let resp = next.run(Request::from_parts(parts, Body::from(raw.clone()))).await;
    let dropped = resp.extensions().get::<DropConnection>().is_some();
    let status = resp.status().as_u16();
    let refused = dropped || !(200..300).contains(&status);
    let (resp, code, message) = if refused && !dropped {
        let (rparts, rbody) = resp.into_parts();
        let bytes = axum::body::to_bytes(rbody, 1024 * 1024).await.unwrap_or_default();
        let (code, message) = error_of(std::str::from_utf8(&bytes).ok());
        (Response::from_parts(rparts, Body::from(bytes)), code, message)
    } else {
        (resp, None, None)
    };
    lock(&s).record(RequestRecord {
        seq: 0,
        at: unix_now(),
        method,
        path,
        status: (!dropped).then_some(status),
        subject,
        intercom_user_id: None,
        event: None,
        duplicate: false,
        scripted: false,
        code,
        message,
        body: (refused && method == "POST").then(|| body_text(&raw)),
    });
    resp
}

/// Splits a query string into decoded pairs (the last value of a key wins).
fn query_pairs(q: &str) -> Option<HashMap<String, String>> {
    Query::<HashMap<String, String>>::try_from_uri(&format!("/?{q}").parse().ok()?).ok().map(|Query(m)| m)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

async fn control_stats(AxState(s): AxState<Shared>) -> Response {
    let stats = lock(&s).stats(SystemTime::now());
    json_response(200, serde_json::to_string(&stats).unwrap_or_default())
}

async fn control_reset(AxState(s): AxState<Shared>) -> Response {
    lock(&s).reset(SystemTime::now());
    json_response(200, json!({"reset": true}).to_string())
}

async fn control_contacts(AxState(s): AxState<Shared>) -> Response {
    let contacts = lock(&s).contacts();
    json_response(200, serde_json::to_string(&contacts).unwrap_or_default())
}

async fn control_script_set(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Vec<ScriptedResponse>>(&body) {
        Ok(list) => {
            let n = list.len();
            let mut st = lock(&s);
            st.push_script(list);
            let pending = st.stats(SystemTime::now()).script_pending;
            json_response(200, json!({"queued": n, "pending": pending}).to_string())
        }
        Err(e) => bad_request(format!("expected a JSON list of scripted responses: {e}")),
    }
}

async fn control_script_clear(AxState(s): AxState<Shared>) -> Response {
    lock(&s).clear_script();
    json_response(200, json!({"pending": 0}).to_string())
}

/// The configuration as the control API shows it: never the tokens
/// themselves (`EmulatorConfig` does not serialize them), only how many there are.
fn config_json(c: &crate::config::EmulatorConfig) -> String {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["tokens_configured"] = json!(c.tokens.len());
    v.to_string()
}

async fn control_config_get(AxState(s): AxState<Shared>) -> Response {
    let c = lock(&s).config.clone();
    json_response(200, config_json(&c))
}

async fn control_config_set(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<ConfigUpdate>(&body) {
        Ok(u) => {
            let mut st = lock(&s);
            u.apply(&mut st.config);
            json_response(200, config_json(&st.config))
        }
        Err(e) => bad_request(format!("invalid config update: {e}")),
    }
}

fn gate_response(status: u16, g: GateStatus) -> Response {
    json_response(status, serde_json::to_string(&g).unwrap_or_default())
}

/// `{"hold": bool}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSet {
    hold: bool,
}

/// `{"count": n}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GateRelease {
    count: usize,
}

/// Default bound of the `/wait` endpoints when `timeout_ms` is not given.
const DEFAULT_WAIT_MS: u64 = 5_000;

/// Reads the `/wait` query: each of `allowed` (a number, default 0) plus
/// `timeout_ms`. Unknown parameters are refused so a typo cannot turn a wait
/// into an immediate success. `Err` is the message of the 400.
fn wait_query(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(Vec<u64>, Duration), String> {
    if let Some(k) = q.keys().find(|k| k.as_str() != "timeout_ms" && !allowed.contains(&k.as_str())) {
        return Err(format!("unknown parameter {k:?}; expected {} or timeout_ms", allowed.join(", ")));
    }
    let num = |k: &str, default: u64| -> Result<u64, String> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| format!("{k} must be a non-negative integer, got {v:?}")),
        }
    };
    let values = allowed.iter().map(|k| num(k, 0)).collect::<Result<Vec<_>, _>>()?;
    Ok((values, Duration::from_millis(num("timeout_ms", DEFAULT_WAIT_MS)?)))
}

async fn control_gate_get(AxState(s): AxState<Shared>) -> Response {
    let g = lock(&s).gate_status();
    gate_response(200, g)
}

async fn control_gate_set(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<GateSet>(&body) {
        Ok(GateSet { hold }) => {
            let g = lock(&s).set_hold(hold, SystemTime::now());
            gate_response(200, g)
        }
        Err(e) => bad_request(format!("expected {{\"hold\": true|false}}: {e}")),
    }
}

async fn control_gate_release(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<GateRelease>(&body) {
        Ok(GateRelease { count }) => {
            let mut st = lock(&s);
            st.release_held(count, SystemTime::now());
            gate_response(200, st.gate_status())
        }
        Err(e) => bad_request(format!("expected {{\"count\": n}}: {e}")),
    }
}

/// `GET /__emulator/gate/wait?held=N&gone=M&timeout_ms=T`: 200 once at least N
/// requests are held and at least M have gone, else 408 after T.
async fn control_gate_wait(AxState(s): AxState<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (min, timeout) = match wait_query(&q, &["held", "gone"]) {
        Ok(x) => x,
        Err(message) => return bad_request(message),
    };
    let (held, gone) = (min[0], min[1]);
    let ok = wait_until(&s, timeout, |st| {
        let g = st.gate_status();
        g.held as u64 >= held && g.gone >= gone
    })
    .await;
    let g = lock(&s).gate_status();
    gate_response(if ok { 200 } else { 408 }, g)
}

/// `GET /__emulator/events/wait?count=N&timeout_ms=T`: 200 once at least N
/// events are stored, else 408 after T; body `{"stored": n}`.
async fn control_events_wait(AxState(s): AxState<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (min, timeout) = match wait_query(&q, &["count"]) {
        Ok(x) => x,
        Err(message) => return bad_request(message),
    };
    let count = min[0];
    let ok = wait_until(&s, timeout, |st| st.stored_count() as u64 >= count).await;
    let stored = lock(&s).stored_count();
    json_response(if ok { 200 } else { 408 }, json!({ "stored": stored }).to_string())
}

async fn fallback() -> Response {
    json_response(404, ApiError::new(404, errors::NOT_FOUND, "Resource Not Found").body())
}

/// All routes.
pub(crate) fn router(shared: Shared) -> Router {
    let recorded = || from_fn_with_state(shared.clone(), record_api);
    let control = Router::new()
        .route("/", get(inspector_page))
        .route("/__emulator", get(inspector_page))
        .route("/__emulator/", get(inspector_page))
        .route("/__emulator/requests", get(control_requests))
        .route("/__emulator/events", get(control_events))
        .route("/__emulator/events/wait", get(control_events_wait))
        .route("/__emulator/gate", get(control_gate_get).post(control_gate_set))
        .route("/__emulator/gate/release", post(control_gate_release))
        .route("/__emulator/gate/wait", get(control_gate_wait))
        .route("/__emulator/stats", get(control_stats))
        .route("/__emulator/reset", post(control_reset))
        .route("/__emulator/contacts", get(control_contacts))
        .route(
            "/__emulator/script",
            post(control_script_set).delete(control_script_clear),
        )
        .route("/__emulator/config", get(control_config_get).post(control_config_set))
        .route_layer(from_fn(local_only));
    Router::new()
        .route("/events", post(post_events).get(get_events.layer(recorded())))
        .route("/contacts", post(post_contacts).layer(recorded()))
        .merge(control)
        .fallback(fallback)
        .with_state(shared)
}

/// Accepts connections until `shutdown` flips to `true`.
pub(crate) async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut app = app.clone();
                async move {
                    let resp: Result<Response, Infallible> = app.call(req).await;
                    match resp {
                        Ok(r) if r.extensions().get::<DropConnection>().is_some() => {
                            Err(ConnectionDropped)
                        }
                        Ok(r) => Ok(r),
                        Err(never) => match never {},
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}
