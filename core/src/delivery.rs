//! Sending one event over HTTP and classifying Intercom's answer.
//!
//! `Http` is the production [`Transport`]: the sender threads share one
//! keep-alive `ureq` agent; each posts one body and returns its [`Outcome`]
//! with the response's rate-limit headers. Decisions (retry, give up, pause)
//! and feeding the rate limiter are the scheduler's; this module only says
//! what happened. A response body that echoes the access token has it
//! replaced before anything reads it.
//!
//! ## Name resolution
//!
//! ureq (3.x, up to 3.5.2 at least) resolves the URL's host before every
//! request, before it looks in its pool for a kept-alive connection, and when
//! a timeout covers that phase (`timeout_global`, `timeout_per_call` or
//! `timeout_resolve`) its resolver runs each lookup on a thread of its own. Its
//! resolver hook is unstable API (`ureq::unversioned`), which a library cannot
//! use without pinning one ureq minor for every application that links it. So,
//! on the stable API only:
//! - no timeout covers the resolve phase; each later phase (connect including
//!   TLS, sending, waiting for the answer, reading it) is bounded by
//!   `request_timeout` instead, so ureq never spawns a lookup thread and an IP
//!   literal is parsed, not looked up. (One request can so take longer than
//!   `request_timeout` when more than one of its phases is slow.)
//! - an `http` URL with a host name is looked up here, at most once per
//!   [`LOOKUP_TTL`] (on a thread bounded by `request_timeout`), and posted to
//!   that address with the name in `Host`, so a request costs no lookup at all;
//! - an `https` URL keeps its host name (TLS needs it for SNI and for checking
//!   the certificate), so ureq looks it up on the sender's thread per request
//!   with the system resolver's own timeouts; so does any URL when a proxy is
//!   configured (the proxy decides where it goes).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use ureq::http::{HeaderValue, Uri};

use crate::config::{Config, Secret};
use crate::ratelimit::RateLimitInfo;
use crate::transport::{Response, Transport};
use crate::retry;
use crate::Error;

/// How long the addresses of a host name are used before it is looked up
/// again. The system resolver does not tell the record's TTL; this bounds how
/// long a DNS change goes unnoticed (a connection that fails looks up at once).
const LOOKUP_TTL: Duration = Duration::from_secs(30);
/// After a failed lookup, how long the previous addresses are kept in use
/// before the name is looked up again.
const LOOKUP_RETRY: Duration = Duration::from_secs(5);
/// After an address refused or could not be reached, the name is looked up
/// again, but not sooner than this after the last lookup (a server that is
/// down must not cost a lookup per attempt).
const RELOOKUP_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What happened to one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// 2xx: Intercom accepted the event.
    Delivered,
    /// Worth retrying (network error, timeout, 408, 409, 429, 5xx); `wait` is
    /// Intercom's hint (`Retry-After` or `X-RateLimit-Reset`), if any.
    Retry { reason: String, wait: Option<Duration>, status: Option<u16> },
    /// A permanent refusal (400, 404, other 4xx).
    Reject { status: u16, code: String, message: String },
    /// 401/403: the token is refused.
    Unauthorized { status: u16 },
}

/// The HTTP side: one agent, where requests go and the headers every request
/// carries (checked once, at construction).
pub(crate) struct Http {
    agent: ureq::Agent,
    target: Target,
    /// Where contacts are created (`unknown_contact="create"`).
    contacts: Target,
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
    /// To scrub from response bodies (a proxy or server that echoes headers).
    token: Secret,
    api_version: HeaderValue,
    user_agent: HeaderValue,
}

/// Where requests are posted.
enum Target {
    /// The configured URL, resolved by ureq per request: an IP literal (parsed,
    /// no lookup), an `https` host name (TLS needs the name), or any URL when a
    /// proxy is configured.
    AsConfigured(Uri),
    /// An `http` URL with a host name and no proxy: posted to an address of the
    /// host from [`HostAddrs`], with `host` (the URL's authority) in `Host`.
    ByAddress { addrs: HostAddrs, host: HeaderValue },
}

impl Http {
    /// Checks that the token, the URL and the other headers can form a valid
    /// request (an [`Error::InvalidConfig`] naming the option if not; the token
    /// itself is never in the reason) and builds the agent. Never touches the
    /// network: host names are looked up on the first request.
    pub fn new(cfg: &Config, token: &Secret) -> Result<Http, Error> {
        let bad = |option: &str, reason: String| Error::InvalidConfig { option: option.into(), reason };
        let uri = events_uri(&cfg.events_url()).map_err(|r| bad("base_url", r))?;
        let contacts_uri = events_uri(&cfg.contacts_url()).map_err(|r| bad("base_url", r))?;
        let mut authorization = bearer(token.expose()).map_err(|r| bad("access_token", r))?;
        authorization.set_sensitive(true);
        let header = |option: &str, value: String| {
            HeaderValue::from_str(&value)
                .map_err(|_| bad(option, "contains a line break or another control character, which an HTTP header cannot carry".into()))
        };
        let api_version = header("api_version", cfg.api_version.clone())?;
        let user_agent = header(
            "user_agent_suffix",
            format!("trackcore/{} ({})", env!("CARGO_PKG_VERSION"), cfg.user_agent_suffix),
        )?;
        let t = Some(cfg.request_timeout);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET without the token:
            // treat 3xx as a refusal instead of counting a login page as delivered.
            .max_redirects(0)
            // No global, per-call or resolve timeout: any of them makes ureq
            // look the host up on a new thread for every request (module doc).
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_send_body(t)
            .timeout_recv_response(t)
            .timeout_recv_body(t)
            .max_idle_connections(cfg.max_in_flight.max(8))
            .max_idle_connections_per_host(cfg.max_in_flight.max(8))
            .build();
        let proxied = config.proxy().is_some();
        let target = Target::new(uri, proxied, cfg.request_timeout);
        let contacts = Target::new(contacts_uri, proxied, cfg.request_timeout);
        Ok(Http { agent: config.new_agent(), target, contacts, authorization, token: token.clone(), api_version, user_agent })
    }

    /// Post one body and classify the answer, with what its headers said
    /// about the rate limit.
    pub fn send(&self, body: &[u8]) -> Response {
        self.post_to(&self.target, body, classify)
    }

    /// Create a contact; 409 `conflict` (it exists already) counts as done.
    pub fn create_contact(&self, body: &[u8]) -> Response {
        self.post_to(&self.contacts, body, classify_contact)
    }

    fn post_to(&self, target: &Target, body: &[u8], classify: fn(u16, &str, Option<&str>, Option<i64>) -> Outcome) -> Response {
        let result = match target {
            Target::AsConfigured(uri) => self.post(uri.clone(), None, body).map_err(|e| transport_reason(&e)),
            Target::ByAddress { addrs, host } => self.post_by_address(addrs, host, body),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(reason) => return Response { outcome: Outcome::Retry { reason, wait: None, status: None }, rate: None },
        };
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let num = |name: &str| header(name).and_then(|v| v.trim().parse::<i64>().ok());
        let info = RateLimitInfo {
            status,
            limit: num("x-ratelimit-limit").and_then(|n| u64::try_from(n).ok()),
            remaining: num("x-ratelimit-remaining").and_then(|n| u64::try_from(n).ok()),
            reset: num("x-ratelimit-reset"),
        };
        let retry_after = header("retry-after");
        // Read the body to the end so the connection can be reused.
        let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
        let text = scrub(text, self.token.expose());
        Response { outcome: classify(status, &text, retry_after.as_deref(), info.reset), rate: Some(info) }
    }

    fn post(&self, uri: Uri, host: Option<&HeaderValue>, body: &[u8]) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = self.agent.post(uri);
        if let Some(host) = host {
            req = req.header("Host", host.clone());
        }
        req.header("Authorization", self.authorization.clone())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Intercom-Version", self.api_version.clone())
            .header("User-Agent", self.user_agent.clone())
            .send(body)
    }

    /// Post to the host's addresses, the one that last worked first. Like
    /// ureq's own connector, an address that refuses or cannot be routed to
    /// (nothing was sent) is passed over for the next at once; after a connect
    /// timeout the next request starts with the next address.
    fn post_by_address(&self, addrs: &HostAddrs, host: &HeaderValue, body: &[u8]) -> Result<ureq::http::Response<ureq::Body>, String> {
        let (list, first) = addrs.candidates(Instant::now())?;
        let mut last = None;
        for k in 0..list.len() {
            let i = (first + k) % list.len();
            match self.post(list[i].1.clone(), Some(host), body) {
                Err(e) if nothing_sent(&e) => {
                    addrs.failed(&list, i);
                    // A connect timeout has used this request's budget.
                    let slow = matches!(e, ureq::Error::Timeout(_));
                    last = Some(e);
                    if slow {
                        break;
                    }
                }
                other => {
                    if i != first {
                        addrs.worked(&list, i);
                    }
                    return other.map_err(|e| transport_reason(&e));
                }
            }
        }
        Err(last.map_or_else(|| "network error: no address to connect to".into(), |e| transport_reason(&e)))
    }
}

impl Transport for Http {
    fn send(&self, body: &[u8]) -> Response {
        Http::send(self, body)
    }
    fn create_contact(&self, body: &[u8]) -> Response {
        Http::create_contact(self, body)
    }
}

impl Target {
    fn new(uri: Uri, proxied: bool, lookup_timeout: Duration) -> Target {
        let by_address = !proxied && uri.scheme() == Some(&ureq::http::uri::Scheme::HTTP) && host_ip(&uri).is_none();
        let Some(authority) = uri.authority().filter(|_| by_address) else { return Target::AsConfigured(uri) };
        let Ok(host) = HeaderValue::from_str(authority.as_str()) else { return Target::AsConfigured(uri) };
        let port = authority.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let addrs = HostAddrs::new(authority.host().to_string(), port, path, LOOKUP_TTL, move |h: &str, p: u16| lookup(h, p, lookup_timeout));
        Target::ByAddress { addrs, host }
    }
}

/// The IP address of a URL whose host is an IP literal (`[::1]` included).
fn host_ip(uri: &Uri) -> Option<IpAddr> {
    let host = uri.host()?;
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// Whether ureq gave up before anything was sent (so another address may be
/// tried at once): the errors its own connector passes over, and a connect timeout.
fn nothing_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) | ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// `url` as a URI ureq can post to, or why not (for `base_url`). The reason
/// never shows the URL: a misplaced token or a password could be in it.
fn events_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("is not a valid URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must start with http:// or https://".into()),
    }
    let Some(authority) = uri.authority() else { return Err("has no host".into()) };
    if authority.as_str().contains('@') {
        return Err("must not hold credentials (user:password@): the access token is sent as a bearer token".into());
    }
    if authority.host().is_empty() {
        return Err("has no host".into());
    }
    // `Uri` accepts any digits as the port and then reports none (ureq would use 80).
    let port = authority.as_str()[authority.host().len()..].strip_prefix(':');
    if port.is_some_and(|p| !p.is_empty() && !p.parse::<u16>().is_ok_and(|n| n > 0)) {
        return Err("has a port that is not between 1 and 65535".into());
    }
    Ok(uri)
}

/// `text` with every occurrence of `token` replaced: what Intercom (or a proxy)
/// answered reaches callbacks and logs, and must never carry the token there.
fn scrub(text: String, token: &str) -> String {
    if token.len() < 4 || !text.contains(token) {
        return text;
    }
    text.replace(token, "<redacted>")
}

/// The `Authorization` value for `token`, or why it cannot be one. The reason
/// never contains the token, nor any part of it.
fn bearer(token: &str) -> Result<HeaderValue, String> {
    let why = if token.is_empty() {
        Some("is empty".to_string())
    } else if token.ends_with('\n') || token.ends_with('\r') {
        Some("ends with a line break (a token read from a file or an environment variable often keeps its trailing newline)".into())
    } else if let Some(c) = token.chars().find(|c| c.is_control()) {
        Some(format!("contains the control character U+{:04X}", c as u32))
    } else if token.contains(' ') {
        Some("contains a space (an access token has none: check for spaces around it)".into())
    } else if !token.is_ascii() {
        Some("contains a non-ASCII character".into())
    } else {
        None
    };
    if let Some(why) = why {
        return Err(format!("the token {why}; it cannot be sent in an Authorization header"));
    }
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "the token cannot be sent in an Authorization header".into())
}

type Lookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// The addresses of one host name, each with the URL that posts to it. Looked
/// up at most once per `ttl` (sooner after a connect failure, at most once per
/// [`RELOOKUP_AFTER_FAILURE`]): while one sender looks up again, the others
/// keep using the addresses they have; only the very first lookup is waited for.
struct HostAddrs {
    host: String,
    port: u16,
    path: String,
    ttl: Duration,
    lookup: Box<Lookup>,
    state: Mutex<AddrState>,
    /// Held while looking up, so only one sender does it.
    looking_up: Mutex<()>,
}

/// Addresses of a host, with the URL that posts to each.
type AddrList = Arc<[(SocketAddr, Uri)]>;

struct AddrState {
    list: AddrList,
    /// The index to try first: the address that last worked.
    preferred: usize,
    /// Until when `list` is used without a new lookup (`None`: look up now).
    fresh_until: Option<Instant>,
    /// When the name was last looked up (successfully or not).
    looked_up: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostAddrs {
    fn new(host: String, port: u16, path: String, ttl: Duration, lookup: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static) -> HostAddrs {
        HostAddrs {
            host,
            port,
            path,
            ttl,
            lookup: Box::new(lookup),
            state: Mutex::new(AddrState { list: Arc::from(Vec::new()), preferred: 0, fresh_until: None, looked_up: None }),
            looking_up: Mutex::new(()),
        }
    }

    /// The addresses to try and the index to start from, looking the name up
    /// when the last lookup is older than the TTL (or failed, or an address
    /// stopped answering). An error is a lookup that failed with no earlier
    /// addresses to fall back on.
    fn candidates(&self, now: Instant) -> Result<(AddrList, usize), String> {
        {
            let s = lock(&self.state);
            if s.fresh_until.is_some_and(|t| now < t) {
                return Ok((s.list.clone(), s.preferred));
            }
        }
        let _turn = match self.looking_up.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                {
                    let s = lock(&self.state);
                    if !s.list.is_empty() {
                        return Ok((s.list.clone(), s.preferred)); // another sender is refreshing them
                    }
                }
                let g = lock(&self.looking_up); // the first lookup: wait for it
                let s = lock(&self.state);
                if !s.list.is_empty() {
                    return Ok((s.list.clone(), s.preferred));
                }
                drop(s);
                g
            }
        };
        {
            // Another sender may have finished a lookup since the check above.
            let s = lock(&self.state);
            if s.fresh_until.is_some_and(|t| now < t) {
                return Ok((s.list.clone(), s.preferred));
            }
        }
        let found = (self.lookup)(&self.host, self.port).and_then(|addrs| self.with_urls(addrs));
        let mut s = lock(&self.state);
        match found {
            Ok(list) => {
                // Keep starting from the address that worked if it is still there.
                let current = s.list.get(s.preferred).map(|a| a.0);
                s.preferred = current.and_then(|c| list.iter().position(|a| a.0 == c)).unwrap_or(0);
                s.list = list;
                s.fresh_until = Some(now + self.ttl);
                s.looked_up = Some(now);
                Ok((s.list.clone(), s.preferred))
            }
            Err(e) if !s.list.is_empty() => {
                log::debug!("looking up {} failed ({e}); using its earlier addresses", self.host);
                s.fresh_until = Some(now + LOOKUP_RETRY.min(self.ttl));
                s.looked_up = Some(now);
                Ok((s.list.clone(), s.preferred))
            }
            Err(e) => Err(format!("network error: looking up {}: {e}", self.host)),
        }
    }

    fn with_urls(&self, addrs: Vec<SocketAddr>) -> io::Result<AddrList> {
        let mut list = Vec::with_capacity(addrs.len());
        for a in addrs {
            if list.iter().any(|(b, _)| *b == a) {
                continue;
            }
            let uri: Uri = format!("http://{a}{}", self.path).parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}")))?;
            list.push((a, uri));
        }
        if list.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        }
        Ok(list.into())
    }

    /// The address at `i` of `list` answered: start from it next time.
    fn worked(&self, list: &AddrList, i: usize) {
        let mut s = lock(&self.state);
        if Arc::ptr_eq(&s.list, list) {
            s.preferred = i;
        }
    }

    /// Connecting to the address at `i` of `list` failed: start from the next
    /// one, and look the name up again soon (the addresses may have changed).
    fn failed(&self, list: &AddrList, i: usize) {
        let mut s = lock(&self.state);
        if Arc::ptr_eq(&s.list, list) {
            s.preferred = (i + 1) % list.len().max(1);
            let soon = s.looked_up.map(|t| t + RELOOKUP_AFTER_FAILURE);
            s.fresh_until = s.fresh_until.min(soon);
        }
    }
}

/// The system resolver's answer for `host:port`, waited for at most `timeout`
/// (on a thread of its own, as ureq does: `getaddrinfo` cannot be interrupted).
/// Runs once per [`LOOKUP_TTL`], not per request.
fn lookup(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let name = host.to_string();
    thread::Builder::new()
        .name("trackcore-lookup".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(found) => found,
        Err(RecvTimeoutError::Timeout) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {timeout:?}"))),
        Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("the lookup thread stopped without an answer")),
    }
}

fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timeout ({t})"),
        other => format!("network error: {other}"),
    }
}

/// Turn a status and body into an [`Outcome`].
pub(crate) fn classify(status: u16, body: &str, retry_after: Option<&str>, reset: Option<i64>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        401 | 403 => Outcome::Unauthorized { status },
        408 | 409 | 429 | 500..=599 => {
            let (code, message) = intercom_error(body);
            let reason = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} {code}: {message}")
            };
            let wait = retry::server_hint(retry_after, if status == 429 { reset } else { None }, crate::unix_now().as_secs_f64());
            Outcome::Retry { reason, wait, status: Some(status) }
        }
        _ => {
            let (code, message) = intercom_error(body);
            Outcome::Reject {
                status,
                code: if code.is_empty() { format!("http_{status}") } else { code },
                message: if message.is_empty() { "no error message".into() } else { message },
            }
        }
    }
}

/// Turn the answer to `POST /contacts` into an [`Outcome`]: a 409 means a
/// contact with those details exists, which is all the caller wanted.
pub(crate) fn classify_contact(status: u16, body: &str, retry_after: Option<&str>, reset: Option<i64>) -> Outcome {
    match status {
        409 => Outcome::Delivered,
        _ => classify(status, body, retry_after, reset),
    }
}

/// Whether a refusal is Intercom's "no contact matches this event" (`404
/// not_found` "User Not Found"), not some other 404 (a wrong `base_url` answers
/// "Resource Not Found").
pub(crate) fn is_unknown_contact(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == 404 && (m.contains("user") || m.contains("contact"))
}

/// The first `{code, message}` of Intercom's `error.list` body.
fn intercom_error(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let e = &v["errors"][0];
    let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
    (s(&e["code"]), s(&e["message"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use trackcore_emulator::{Emulator, EmulatorConfig};

    fn config(base_url: &str) -> Config {
        Config { base_url: Some(base_url.into()), ..Config::default() }
    }

    fn http(base_url: &str) -> Http {
        Http::new(&config(base_url), &Secret::new("tok")).unwrap()
    }

    fn invalid(cfg: &Config, token: &str) -> (String, String, String) {
        match Http::new(cfg, &Secret::new(token)) {
            Err(e @ Error::InvalidConfig { .. }) => {
                let Error::InvalidConfig { option, reason } = &e else { unreachable!() };
                (option.clone(), reason.clone(), format!("{e} {e:?}"))
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("accepted {:?} with token {token:?}", cfg.base_url),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A `HostAddrs` whose lookups are counted and answer `answer()`.
    fn counted(answer: impl Fn() -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static) -> (HostAddrs, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        let addrs = HostAddrs::new("api.test".into(), 8080, "/events".into(), LOOKUP_TTL, move |host: &str, port: u16| {
            assert_eq!((host, port), ("api.test", 8080));
            m.fetch_add(1, Ordering::SeqCst);
            answer()
        });
        (addrs, n)
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_a_config_error_that_never_shows_the_token() {
        let cfg = config("http://127.0.0.1:1");
        for token in ["SeCrEt-Xq9\n", "SeCrEt-Xq9\r\n", "SeCrEt\tXq9", "SeCrEt\u{7f}Xq9", "SeCrEt\0Xq9", " SeCrEt-Xq9", "SeCrEt Xq9", "SeCrEt-Xq9ö", ""] {
            let (option, reason, shown) = invalid(&cfg, token);
            assert_eq!(option, "access_token", "{token:?}");
            for part in ["SeCrEt", "Xq9"] {
                assert!(!shown.contains(part), "{token:?} shows up in {shown:?}");
            }
            assert!(!reason.is_empty());
        }
        let (_, reason, _) = invalid(&cfg, "abc\n");
        assert!(reason.contains("line break"), "{reason}");
        let (_, reason, _) = invalid(&cfg, "a\u{1b}c");
        assert!(reason.contains("U+001B"), "{reason}");
        assert!(Http::new(&cfg, &Secret::new("dG9rOjEyMzQ1Njc4OTA=_-.~+/")).is_ok());
    }

    #[test]
    fn a_base_url_that_cannot_form_a_request_is_a_config_error() {
        for url in ["http://exa mple.com", "ftp://example.com", "http://", "http://:8080", "http://example.com:0", "http://example.com:99999", "localhost:8080"] {
            let (option, reason, _) = invalid(&config(url), "tok");
            assert_eq!(option, "base_url", "{url:?}: {reason}");
        }
        let (option, reason, shown) = invalid(&config("http://user:pa55word@example.com"), "tok");
        assert_eq!(option, "base_url");
        assert!(reason.contains("credentials") && !shown.contains("pa55word"), "{shown}");
        // A token pasted into the URL is not echoed either.
        let (_, _, shown) = invalid(&config("http://example.com/ dG9rOjEyMzQ1Njc4OTA"), "tok");
        assert!(!shown.contains("dG9rOjEyMzQ1Njc4OTA"), "{shown}");
        for url in ["http://127.0.0.1:8080", "https://api.intercom.io", "http://[::1]:9/prefix", "http://localhost"] {
            assert!(Http::new(&config(url), &Secret::new("tok")).is_ok(), "{url}");
        }
    }

    #[test]
    fn headers_from_other_options_are_checked_too() {
        let cfg = Config { api_version: "2.14\n".into(), ..config("http://127.0.0.1:1") };
        assert_eq!(invalid(&cfg, "tok").0, "api_version");
        let cfg = Config { user_agent_suffix: "rust\r\nX-Evil: 1".into(), ..config("http://127.0.0.1:1") };
        let (option, _, shown) = invalid(&cfg, "tok");
        assert_eq!(option, "user_agent_suffix");
        assert!(!shown.contains("X-Evil"), "the value is not echoed: {shown}");
    }

    #[test]
    fn no_timeout_covers_the_lookup_phase_so_ureq_never_spawns_a_lookup_thread() {
        let cfg = Config { request_timeout: Duration::from_millis(2500), ..config("http://127.0.0.1:1") };
        let t = Http::new(&cfg, &Secret::new("tok")).unwrap().agent.config().timeouts();
        assert_eq!((t.global, t.per_call, t.resolve), (None, None, None));
        let bound = Some(Duration::from_millis(2500));
        assert_eq!([t.connect, t.send_request, t.send_body, t.recv_response, t.recv_body], [bound; 5]);
    }

    #[test]
    fn only_http_host_names_are_posted_to_a_looked_up_address() {
        let by_address = |url: &str| matches!(http(url).target, Target::ByAddress { .. });
        assert!(by_address("http://localhost:8080"));
        assert!(by_address("http://api.example.com/base"));
        // IP literals need no lookup; https needs the name for SNI and the certificate.
        assert!(!by_address("http://127.0.0.1:8080"));
        assert!(!by_address("http://[::1]:8080"));
        assert!(!by_address("https://api.intercom.io"));
        assert!(!by_address("https://localhost:8443"));
        // With a proxy, the proxy decides where the URL goes.
        let uri: Uri = "http://localhost:8080/events".parse().unwrap();
        assert!(matches!(Target::new(uri, true, Duration::from_secs(1)), Target::AsConfigured(_)));
    }

    #[test]
    fn a_host_name_is_looked_up_once_per_ttl() {
        let (addrs, lookups) = counted(|| Ok(vec![addr("10.0.0.1:8080"), addr("10.0.0.2:8080")]));
        let t0 = Instant::now();
        let (list, first) = addrs.candidates(t0).unwrap();
        assert_eq!(list.iter().map(|a| a.1.to_string()).collect::<Vec<_>>(), ["http://10.0.0.1:8080/events", "http://10.0.0.2:8080/events"]);
        assert_eq!(first, 0);
        for s in [0, 1, 29] {
            addrs.candidates(t0 + Duration::from_secs(s)).unwrap();
        }
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        addrs.candidates(t0 + LOOKUP_TTL).unwrap();
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_lookup_keeps_the_earlier_addresses_and_tries_again_later() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = fail.clone();
        let (addrs, lookups) = counted(move || if f.load(Ordering::SeqCst) { Err(io::ErrorKind::TimedOut.into()) } else { Ok(vec![addr("10.0.0.1:8080")]) });
        let t0 = Instant::now();
        addrs.candidates(t0).unwrap();
        fail.store(true, Ordering::SeqCst);
        let t1 = t0 + LOOKUP_TTL;
        assert_eq!(addrs.candidates(t1).unwrap().0[0].0, addr("10.0.0.1:8080"));
        addrs.candidates(t1 + LOOKUP_RETRY - Duration::from_millis(1)).unwrap();
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
        addrs.candidates(t1 + LOOKUP_RETRY).unwrap();
        assert_eq!(lookups.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_first_lookup_that_fails_is_a_retry_reason() {
        let (addrs, _) = counted(|| Err(io::Error::new(io::ErrorKind::NotFound, "no such host")));
        let reason = addrs.candidates(Instant::now()).unwrap_err();
        assert!(reason.contains("api.test") && reason.contains("no such host"), "{reason}");
        let (empty, _) = counted(|| Ok(vec![]));
        assert!(empty.candidates(Instant::now()).is_err());
    }

    #[test]
    fn a_connect_failure_moves_to_the_next_address_and_looks_up_again() {
        let (addrs, lookups) = counted(|| Ok(vec![addr("10.0.0.1:8080"), addr("10.0.0.2:8080")]));
        let t0 = Instant::now();
        let (list, first) = addrs.candidates(t0).unwrap();
        addrs.failed(&list, first);
        let (list, first) = addrs.candidates(t0).unwrap();
        assert_eq!((list[first].0, lookups.load(Ordering::SeqCst)), (addr("10.0.0.2:8080"), 1));
        addrs.failed(&list, first);
        let (list, first) = addrs.candidates(t0 + RELOOKUP_AFTER_FAILURE).unwrap();
        assert_eq!((list[first].0, lookups.load(Ordering::SeqCst)), (addr("10.0.0.1:8080"), 2));
        // The address that works stays first across lookups.
        addrs.worked(&list, 1);
        let (list, first) = addrs.candidates(t0 + LOOKUP_TTL + RELOOKUP_AFTER_FAILURE).unwrap();
        assert_eq!((list[first].0, lookups.load(Ordering::SeqCst)), (addr("10.0.0.2:8080"), 3));
    }

    #[test]
    fn an_http_host_name_is_looked_up_once_not_per_request_and_sent_as_the_host_header() {
        let emu = Emulator::start(EmulatorConfig { tokens: vec!["tok".into()], rate_limit_per_minute: 0, ..Default::default() }).unwrap();
        let mut h = http(&format!("http://localhost:{}", emu.port()));
        let lookups = Arc::new(AtomicUsize::new(0));
        let (n, port) = (lookups.clone(), emu.port());
        let Target::ByAddress { host, .. } = &h.target else { panic!("not by address") };
        assert_eq!(host.to_str().unwrap(), format!("localhost:{port}"));
        // Answer [::1] first: nothing listens there, so the request moves on to 127.0.0.1 at once.
        h.target = Target::ByAddress {
            addrs: HostAddrs::new("localhost".into(), port, "/events".into(), LOOKUP_TTL, move |_: &str, p: u16| {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(vec![SocketAddr::new("::1".parse().unwrap(), p), SocketAddr::new("127.0.0.1".parse().unwrap(), p)])
            }),
            host: host.clone(),
        };
        let start = Instant::now();
        for i in 0..20 {
            let body = format!(r#"{{"event_name":"e","created_at":1700000000,"user_id":"u-{i}"}}"#);
            assert_eq!(h.send(body.as_bytes()).outcome, Outcome::Delivered, "request {i}");
        }
        assert_eq!(emu.stats().stored, 20);
        // One lookup; [::1] refusing prompts another, but not within RELOOKUP_AFTER_FAILURE.
        let n = lookups.load(Ordering::SeqCst);
        assert!(n == 1 || (n == 2 && start.elapsed() >= RELOOKUP_AFTER_FAILURE), "{n} lookups");
    }

    #[test]
    fn a_request_to_an_http_host_name_carries_the_name_in_one_host_header() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").unwrap();
            String::from_utf8(head).unwrap()
        });
        let h = http(&format!("http://localhost:{port}/v1"));
        assert_eq!(h.send(b"{}").outcome, Outcome::Delivered);
        let head = server.join().unwrap();
        assert!(head.starts_with("POST /v1/events HTTP/1.1\r\n"), "{head}");
        let hosts: Vec<String> = head.lines().map(str::to_ascii_lowercase).filter(|l| l.starts_with("host:")).collect();
        assert_eq!(hosts, [format!("host: localhost:{port}")], "{head}");
    }

    #[test]
    fn the_default_lookup_finds_localhost() {
        let found = lookup("localhost", 8080, Duration::from_secs(5)).unwrap();
        assert!(!found.is_empty() && found.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()), "{found:?}");
    }

    #[test]
    fn classifies_intercom_statuses() {
        assert_eq!(classify(202, "", None, None), Outcome::Delivered);
        assert_eq!(classify(401, "", None, None), Outcome::Unauthorized { status: 401 });
        let body = r#"{"type":"error.list","errors":[{"code":"not_found","message":"User Not Found"}]}"#;
        assert_eq!(
            classify(404, body, None, None),
            Outcome::Reject { status: 404, code: "not_found".into(), message: "User Not Found".into() }
        );
        match classify(503, "", Some("2"), None) {
            Outcome::Retry { wait, status, .. } => {
                assert_eq!(wait, Some(Duration::from_secs(2)));
                assert_eq!(status, Some(503));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_contact_that_exists_already_counts_as_created_and_only_user_404s_are_unknown_contacts() {
        let conflict = r#"{"type":"error.list","errors":[{"code":"conflict","message":"A contact matching those details already exists with id=1"}]}"#;
        assert_eq!(classify_contact(409, conflict, None, None), Outcome::Delivered);
        assert_eq!(classify_contact(200, "{}", None, None), Outcome::Delivered);
        assert!(matches!(classify_contact(503, "", None, None), Outcome::Retry { status: Some(503), .. }));
        assert!(matches!(classify(409, conflict, None, None), Outcome::Retry { .. }), "an event's 409 is still retried");
        assert!(is_unknown_contact(404, "User Not Found"));
        assert!(!is_unknown_contact(404, "Resource Not Found"), "a wrong base_url is not an unknown contact");
        assert!(!is_unknown_contact(400, "User Not Found"));
    }
}
