//! Sending one event over HTTP and classifying Intercom's answer.
//!
//! A pool of sender threads shares one keep-alive `ureq` agent. Each takes a
//! job from the dispatcher, posts it, tells the rate limiter what the response
//! headers said, and returns an [`Outcome`]. Decisions (retry, give up, pause)
//! are the dispatcher's; this module only says what happened.

use std::time::Duration;

use std::net::{IpAddr, SocketAddr};
use ureq::http::{HeaderValue, Uri};
// `unversioned` is ureq's unstable extension API: the workspace pins ureq to ~3.5.
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::{Config, Secret};
use crate::ratelimit::RateLimitInfo;
use crate::transport::{Response, Transport};
use crate::retry;
use crate::Error;

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

/// The HTTP side: one agent, the URL and the headers every request carries
/// (checked once, at construction).
pub(crate) struct Http {
    agent: ureq::Agent,
    url: Uri,
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
    api_version: HeaderValue,
    user_agent: HeaderValue,
}

impl Http {
    /// Checks that the token, the URL and the other headers can form a valid
    /// request (an [`Error::InvalidConfig`] naming the option if not; the token
    /// itself is never in the reason) and builds the agent.
    pub fn new(cfg: &Config, token: &Secret) -> Result<Http, Error> {
        let bad = |option: &str, reason: String| Error::InvalidConfig { option: option.into(), reason };
        let url = events_uri(&cfg.events_url()).map_err(|r| bad("base_url", r))?;
        let mut authorization = bearer(token.expose()).map_err(|r| bad("access_token", r))?;
        authorization.set_sensitive(true);
        let header = |option: &str, value: String| {
            HeaderValue::from_str(&value).map_err(|_| bad(option, format!("{value:?} cannot be sent in an HTTP header")))
        };
        let api_version = header("api_version", cfg.api_version.clone())?;
        let user_agent = header(
            "user_agent_suffix",
            format!("trackcore/{} ({})", env!("CARGO_PKG_VERSION"), cfg.user_agent_suffix),
        )?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET without the token:
            // treat 3xx as a refusal instead of counting a login page as delivered.
            .max_redirects(0)
            .timeout_global(Some(cfg.request_timeout))
            .max_idle_connections(cfg.max_in_flight.max(8))
            .max_idle_connections_per_host(cfg.max_in_flight.max(8))
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), LiteralResolver(DefaultResolver::default()));
        Ok(Http { agent, url, authorization, api_version, user_agent })
    }

    /// Post one body and classify the answer, with what its headers said
    /// about the rate limit.
    pub fn send(&self, body: &[u8]) -> Response {
        let result = self
            .agent
            .post(self.url.clone())
            .header("Authorization", self.authorization.clone())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Intercom-Version", self.api_version.clone())
            .header("User-Agent", self.user_agent.clone())
            .send(body);
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                return Response { outcome: Outcome::Retry { reason: transport_reason(&e), wait: None, status: None }, rate: None }
            }
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
        Response { outcome: classify(status, &text, retry_after.as_deref(), info.reset), rate: Some(info) }
    }
}

impl Transport for Http {
    fn send(&self, body: &[u8]) -> Response {
        Http::send(self, body)
    }
}

/// ureq resolves the host before every request, even when a pooled
/// connection will be used, and with a timeout set its default resolver
/// spawns a thread per lookup. An IP literal (a local emulator or proxy) needs
/// no lookup: its one address is returned at once. Host names go to ureq's
/// default resolver unchanged.
#[derive(Debug)]
struct LiteralResolver(DefaultResolver);

impl Resolver for LiteralResolver {
    fn resolve(&self, uri: &ureq::http::Uri, config: &ureq::config::Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.scheme().zip(uri.authority()).and_then(|(scheme, authority)| {
            let host = authority.host();
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            let ip = host.parse::<IpAddr>().ok()?;
            let default_port = match scheme.as_str() {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            };
            let port = authority.port_u16().or(default_port)?;
            Some(SocketAddr::new(ip, port))
        });
        let Some(addr) = literal else { return self.0.resolve(uri, config, timeout) };
        let mut result = self.empty();
        for a in config.ip_family().keep_wanted(std::iter::once(addr)) {
            result.push(a);
        }
        if result.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(result)
    }
}

/// `url` as a URI ureq can post to, or why not (for `base_url`). The URL is
/// quoted only when it cannot hold credentials.
fn events_uri(url: &str) -> Result<Uri, String> {
    let shown = if url.contains('@') { "the URL".to_string() } else { format!("{url:?}") };
    let uri: Uri = url.parse().map_err(|e| format!("{shown} is not a valid URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{shown} does not start with http:// or https://")),
    }
    let Some(authority) = uri.authority() else { return Err(format!("{shown} has no host")) };
    if authority.as_str().contains('@') {
        return Err("must not hold credentials (user:password@): the access token is sent as a bearer token".into());
    }
    if authority.host().is_empty() {
        return Err(format!("{shown} has no host"));
    }
    // `Uri` accepts any digits as the port and then reports none (ureq would use 80).
    let port = authority.as_str()[authority.host().len()..].strip_prefix(':');
    if port.is_some_and(|p| !p.is_empty() && !p.parse::<u16>().is_ok_and(|n| n > 0)) {
        return Err(format!("{shown} has a port that is not between 1 and 65535"));
    }
    Ok(uri)
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

    fn config(base_url: &str) -> Config {
        Config { base_url: Some(base_url.into()), ..Config::default() }
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
        for url in ["http://127.0.0.1:8080", "https://api.intercom.io", "http://[::1]:9/prefix", "http://localhost"] {
            assert!(Http::new(&config(url), &Secret::new("tok")).is_ok(), "{url}");
        }
    }

    #[test]
    fn headers_from_other_options_are_checked_too() {
        let cfg = Config { api_version: "2.14\n".into(), ..config("http://127.0.0.1:1") };
        assert_eq!(invalid(&cfg, "tok").0, "api_version");
        let cfg = Config { user_agent_suffix: "rust\r\nX-Evil: 1".into(), ..config("http://127.0.0.1:1") };
        assert_eq!(invalid(&cfg, "tok").0, "user_agent_suffix");
    }

    #[test]
    fn ip_literals_resolve_without_a_lookup() {
        let config = ureq::config::Config::default();
        let timeout = NextTimeout { after: ureq::unversioned::transport::time::Duration::NotHappening, reason: ureq::Timeout::Global, per_read: None, per_write: None };
        let r = LiteralResolver(DefaultResolver::default());
        let got = |u: &str| r.resolve(&u.parse().unwrap(), &config, timeout).unwrap().iter().copied().collect::<Vec<_>>();
        assert_eq!(got("http://127.0.0.1:8080/events"), vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        assert_eq!(got("https://10.1.2.3/events"), vec!["10.1.2.3:443".parse::<SocketAddr>().unwrap()]);
        assert_eq!(got("http://[::1]:9/events"), vec!["[::1]:9".parse::<SocketAddr>().unwrap()]);
        // Host names still go through ureq's resolver.
        assert!(got("http://localhost:8080/events").iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
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
}
