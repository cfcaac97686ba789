//! The bridge's rule file: loading it (every mistake refused with its line and
//! the reason) and turning one webhook payload into events (a pure function of
//! the payload and `now`, so `bridge check` and the server run the same code).
//!
//! ```toml
//! [[route]]
//! path = "/webhooks/stripe"
//! kind = "stripe"                      # stripe | intercom | json
//! secret_env = "STRIPE_WEBHOOK_SECRET" # or secret_file; never the secret itself
//!
//! [[route.rule]]
//! name = "payment failed"
//! when = { "/type" = "invoice.payment_failed" }
//! event = "payment-failed"
//! user_id = "/data/object/customer"
//! created_at = "/created"
//! metadata.invoice = "/data/object/number"
//! metadata.amount = { pointer = "/data/object/amount_due", type = "money", currency = "/data/object/currency" }
//! ```
//!
//! Validation of the events themselves is the core's ([`trackcore::Event::prepare`]);
//! this module only maps payload fields onto an [`Event`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;
type Map<K, V> = indexmap::IndexMap<K, V>;
use toml::Spanned;
use trackcore::{Event, OptionValue, Value};

/// A rule file refused: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFileError {
    /// The file, as given.
    pub path: PathBuf,
    /// 1-based line, when the mistake has one.
    pub line: Option<usize>,
    /// What is wrong and what to write instead.
    pub reason: String,
}

impl std::fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}: line {}: {}", self.path.display(), line, self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// A secret from the environment or a file. Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes (the HMAC key, or the shared header value).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a route checks that a webhook is genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Stripe-Signature: t=…,v1=…`: HMAC-SHA256 of `t.body`, within a tolerance.
    Stripe,
    /// `X-Hub-Signature: sha1=…`: HMAC-SHA1 of the body with the app's client secret.
    Intercom,
    /// Any JSON; optionally a shared secret in a header.
    Json,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stripe => "stripe",
            Kind::Intercom => "intercom",
            Kind::Json => "json",
        }
    }
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Address to listen on.
    pub listen: String,
    /// Largest accepted body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long a webhook may wait for the core to keep its events before it gets 503.
    pub ack_timeout: Duration,
}

/// A loaded, checked rule file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub server: Server,
    /// `[tracker]`: core options by name, handed to `Config::set` unchanged.
    pub tracker: Vec<(String, OptionValue)>,
    pub routes: Vec<Route>,
}

/// One webhook endpoint.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub kind: Kind,
    /// `None` when secrets were not resolved (`bridge check`) or a json route has none.
    pub secret: Option<Secret>,
    /// The header a json route's shared secret arrives in.
    pub secret_header: Option<String>,
    /// Stripe: how old (or how far ahead) a signature's timestamp may be.
    pub tolerance_secs: u64,
    pub rules: Vec<Rule>,
}

/// One mapping from a payload to an event.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's name, or `rule N (line L)`.
    pub name: String,
    /// Pointer → accepted values (one of them must equal the payload's).
    pub when: Vec<(String, Vec<Json>)>,
    pub event: String,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub id: Option<String>,
    pub created_at: Option<String>,
    pub metadata: Vec<(String, Meta)>,
}

/// Where one metadata value comes from and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    /// The pointed value as it is (string, number, boolean).
    Plain(String),
    /// The pointed scalar as text.
    Text(String),
    /// A fixed value from the rule file.
    Fixed(Json),
    /// Amount in cents at a pointer; currency at a pointer or a fixed code.
    Money { amount: String, currency: Source },
    /// Unix seconds at a pointer (the key must end in `_date`: the core says so otherwise).
    Date(String),
    /// A rich link: URL at a pointer, its text at a pointer or fixed (the URL when absent).
    Link { url: String, text: Option<Source> },
}

/// A pointer into the payload (written with a leading `/`) or fixed text.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Pointer(String),
    Fixed(String),
}

impl Source {
    fn parse(s: &str) -> Source {
        if s.starts_with('/') {
            Source::Pointer(s.to_string())
        } else {
            Source::Fixed(s.to_string())
        }
    }
}

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    server: ServerDoc,
    #[serde(default)]
    tracker: Map<String, Spanned<toml::Value>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RouteDoc>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerDoc {
    listen: Option<String>,
    max_body_bytes: Option<Spanned<i64>>,
    ack_timeout_secs: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    path: Spanned<String>,
    kind: Spanned<String>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    secret_header: Option<String>,
    /// Present only to refuse it with a clear reason.
    secret: Option<Spanned<toml::Value>>,
    tolerance_secs: Option<Spanned<i64>>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: Option<String>,
    #[serde(default)]
    when: Map<String, Spanned<toml::Value>>,
    event: Spanned<String>,
    user_id: Option<Spanned<String>>,
    email: Option<Spanned<String>>,
    id: Option<Spanned<String>>,
    created_at: Option<Spanned<String>>,
    #[serde(default)]
    metadata: Map<String, Spanned<toml::Value>>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
const DEFAULT_MAX_BODY: usize = 1024 * 1024;
const DEFAULT_TOLERANCE_SECS: u64 = 300;
const DEFAULT_ACK_TIMEOUT_SECS: f64 = 5.0;

impl Rules {
    /// Read and check a rule file. With `resolve_secrets`, every route's
    /// secret is read from its environment variable or file now (a missing
    /// one refuses the file); `bridge check` passes `false`.
    pub fn load(path: &Path, resolve_secrets: bool) -> Result<Rules, RuleFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleFileError {
            path: path.to_path_buf(),
            line: None,
            reason: format!("cannot read it: {e}"),
        })?;
        Rules::parse(&text, path, resolve_secrets)
    }

    /// [`Rules::load`] from text already read.
    pub fn parse(text: &str, path: &Path, resolve_secrets: bool) -> Result<Rules, RuleFileError> {
        let at = |span: std::ops::Range<usize>, reason: String| RuleFileError {
            path: path.to_path_buf(),
            line: Some(line_of(text, span.start)),
            reason,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| RuleFileError {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(text, s.start)),
            reason: e.message().trim().to_string(),
        })?;

        let max_body_bytes = match doc.server.max_body_bytes {
            None => DEFAULT_MAX_BODY,
            Some(n) if *n.get_ref() >= 1 => *n.get_ref() as usize,
            Some(n) => return Err(at(n.span(), "server.max_body_bytes: must be at least 1".into())),
        };
        let ack_timeout = match doc.server.ack_timeout_secs {
            None => Duration::from_secs_f64(DEFAULT_ACK_TIMEOUT_SECS),
            Some(s) if s.get_ref().is_finite() && (0.0..=3600.0).contains(s.get_ref()) => {
                Duration::from_secs_f64(*s.get_ref())
            }
            Some(s) => return Err(at(s.span(), "server.ack_timeout_secs: must be 0 to 3600 seconds".into())),
        };
        let server = Server { listen: doc.server.listen.unwrap_or_else(|| DEFAULT_LISTEN.into()), max_body_bytes, ack_timeout };

        // Core options are checked by the core, by name, now rather than at start.
        let mut tracker = Vec::new();
        let mut probe = trackcore::Config::default();
        for (name, value) in doc.tracker {
            if name == "access_token" {
                return Err(at(value.span(), "tracker.access_token: the token is never read from the rule file; set INTERCOM_ACCESS_TOKEN or pass --token-file".into()));
            }
            let v = option_value(value.get_ref()).map_err(|r| at(value.span(), format!("tracker.{name}: {r}")))?;
            probe.set(&name, v.clone()).map_err(|e| at(value.span(), format!("tracker.{name}: {e}")))?;
            tracker.push((name, v));
        }

        let mut routes: Vec<Route> = Vec::new();
        for route in doc.routes {
            let route_span = route.span();
            let r = route.into_inner();
            let path_text = r.path.get_ref().clone();
            if !path_text.starts_with('/') || path_text == "/healthz" || path_text == "/metrics" {
                return Err(at(r.path.span(), format!("route.path: {path_text:?} must start with '/' and not be /healthz or /metrics")));
            }
            if routes.iter().any(|x| x.path == path_text) {
                return Err(at(r.path.span(), format!("route.path: {path_text:?} is given twice")));
            }
            let kind = match r.kind.get_ref().as_str() {
                "stripe" => Kind::Stripe,
                "intercom" => Kind::Intercom,
                "json" => Kind::Json,
                other => return Err(at(r.kind.span(), format!("route.kind: {other:?} is not one of stripe, intercom, json"))),
            };
            if let Some(s) = &r.secret {
                return Err(at(s.span(), "route.secret: secrets are never read from the rule file (it is shared and committed); use secret_env = \"VARIABLE\" or secret_file = \"path\"".into()));
            }
            let needs_secret = kind != Kind::Json || r.secret_header.is_some();
            let secret_source = match (&r.secret_env, &r.secret_file) {
                (Some(_), Some(f)) => return Err(at(f.span(), "route: give secret_env or secret_file, not both".into())),
                (None, None) if needs_secret => {
                    let why = if kind == Kind::Json { "secret_header is set" } else { "signatures are verified" };
                    return Err(at(route_span, format!("route {path_text:?}: a {} route needs secret_env or secret_file ({why})", kind.as_str())));
                }
                (e, f) => (e.clone(), f.clone()),
            };
            if kind == Kind::Json && secret_source != (None, None) && r.secret_header.is_none() {
                return Err(at(route_span, format!("route {path_text:?}: a json route with a secret needs secret_header (the header it arrives in)")));
            }
            if kind != Kind::Json && r.secret_header.is_some() {
                return Err(at(route_span, format!("route {path_text:?}: secret_header is for json routes; {} signs in its own header", kind.as_str())));
            }
            let secret = if !resolve_secrets {
                None
            } else {
                match secret_source {
                    (Some(var), _) => match std::env::var(var.get_ref()) {
                        Ok(v) if !v.is_empty() => Some(Secret(v.into_bytes())),
                        _ => return Err(at(var.span(), format!("route.secret_env: environment variable {} is not set or empty", var.get_ref()))),
                    },
                    (_, Some(file)) => {
                        let p = resolve_relative(path, file.get_ref());
                        match std::fs::read_to_string(&p) {
                            Ok(v) if !v.trim_end_matches(['\n', '\r']).is_empty() => {
                                Some(Secret(v.trim_end_matches(['\n', '\r']).as_bytes().to_vec()))
                            }
                            Ok(_) => return Err(at(file.span(), format!("route.secret_file: {} is empty", p.display()))),
                            Err(e) => return Err(at(file.span(), format!("route.secret_file: cannot read {}: {e}", p.display()))),
                        }
                    }
                    (None, None) => None,
                }
            };
            let tolerance_secs = match r.tolerance_secs {
                None => DEFAULT_TOLERANCE_SECS,
                Some(t) if kind != Kind::Stripe => {
                    return Err(at(t.span(), "route.tolerance_secs: only stripe signatures carry a timestamp".into()))
                }
                Some(t) if (1..=86_400).contains(t.get_ref()) => *t.get_ref() as u64,
                Some(t) => return Err(at(t.span(), "route.tolerance_secs: must be 1 to 86400 seconds".into())),
            };
            if r.rules.is_empty() {
                return Err(at(route_span, format!("route {path_text:?}: has no [[route.rule]]")));
            }
            let mut rules = Vec::new();
            for (i, rule) in r.rules.into_iter().enumerate() {
                let line = line_of(text, rule.span().start);
                rules.push(rule_from_doc(rule.into_inner(), i + 1, line, &at)?);
            }
            routes.push(Route { path: path_text, kind, secret, secret_header: r.secret_header, tolerance_secs, rules });
        }
        if routes.is_empty() {
            return Err(RuleFileError { path: path.to_path_buf(), line: None, reason: "no [[route]] defined".into() });
        }
        Ok(Rules { server, tracker, routes })
    }

    /// The route for a request path.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path == path)
    }
}

fn rule_from_doc(
    r: RuleDoc,
    n: usize,
    line: usize,
    at: &dyn Fn(std::ops::Range<usize>, String) -> RuleFileError,
) -> Result<Rule, RuleFileError> {
    let name = r.name.clone().unwrap_or_else(|| format!("rule {n} (line {line})"));
    let pointer = |s: &Spanned<String>, field: &str| -> Result<String, RuleFileError> {
        check_pointer(s.get_ref()).map_err(|why| at(s.span(), format!("rule {name:?}: {field}: {why}")))?;
        Ok(s.get_ref().clone())
    };
    if r.event.get_ref().trim().is_empty() {
        return Err(at(r.event.span(), format!("rule {name:?}: event: must name the event")));
    }
    // The name is checked by the core's own rules now, not at the first webhook.
    if let Err(e) = Event::new(r.event.get_ref().as_str()).user_id("check").prepare(0) {
        return Err(at(r.event.span(), format!("rule {name:?}: event: {e}")));
    }
    let mut when = Vec::new();
    for (p, v) in &r.when {
        check_pointer(p).map_err(|why| at(v.span(), format!("rule {name:?}: when {p:?}: {why}")))?;
        let values = match v.get_ref() {
            toml::Value::Array(a) => a.iter().map(to_json).collect(),
            other => vec![to_json(other)],
        };
        when.push((p.clone(), values));
    }
    let (user_id, email, id) = (
        r.user_id.as_ref().map(|s| pointer(s, "user_id")).transpose()?,
        r.email.as_ref().map(|s| pointer(s, "email")).transpose()?,
        r.id.as_ref().map(|s| pointer(s, "id")).transpose()?,
    );
    if user_id.is_none() && email.is_none() && id.is_none() {
        return Err(at(r.event.span(), format!("rule {name:?}: needs user_id, email or id (a JSON Pointer into the payload)")));
    }
    let created_at = r.created_at.as_ref().map(|s| pointer(s, "created_at")).transpose()?;
    let mut metadata = Vec::new();
    for (key, v) in &r.metadata {
        let bad = |why: String| at(v.span(), format!("rule {name:?}: metadata.{key}: {why}"));
        let meta = match v.get_ref() {
            toml::Value::String(p) => {
                check_pointer(p).map_err(&bad)?;
                Meta::Plain(p.clone())
            }
            toml::Value::Table(t) => meta_from_table(t).map_err(&bad)?,
            _ => return Err(bad("must be a JSON Pointer such as \"/data/object/id\" or a table { pointer = …, type = … }".into())),
        };
        metadata.push((key.clone(), meta));
    }
    Ok(Rule { name, when, event: r.event.into_inner(), user_id, email, id, created_at, metadata })
}

fn meta_from_table(t: &toml::Table) -> Result<Meta, String> {
    const KEYS: [&str; 5] = ["pointer", "type", "currency", "text", "value"];
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key {k:?} (expected pointer, type, currency, text or value)"));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{k} must be a string")),
        }
    };
    if let Some(v) = t.get("value") {
        if t.len() > 1 {
            return Err("value (a fixed value) stands alone, without pointer or type".into());
        }
        return Ok(Meta::Fixed(to_json(v)));
    }
    let Some(pointer) = text("pointer")? else { return Err("needs pointer (or value for a fixed value)".into()) };
    check_pointer(&pointer)?;
    let ty = text("type")?.unwrap_or_else(|| "plain".into());
    let (currency, label) = (text("currency")?, text("text")?);
    if currency.is_some() && ty != "money" {
        return Err("currency is only for type = \"money\"".into());
    }
    if label.is_some() && ty != "link" {
        return Err("text is only for type = \"link\"".into());
    }
    let source = |s: String| -> Result<Source, String> {
        let src = Source::parse(&s);
        if let Source::Pointer(p) = &src {
            check_pointer(p)?;
        }
        Ok(src)
    };
    Ok(match ty.as_str() {
        "plain" => Meta::Plain(pointer),
        "string" => Meta::Text(pointer),
        "date" => Meta::Date(pointer),
        "money" => match currency {
            Some(c) => Meta::Money { amount: pointer, currency: source(c)? },
            None => return Err("type = \"money\" needs currency (a pointer such as \"/data/object/currency\" or a code such as \"eur\")".into()),
        },
        "link" => Meta::Link { url: pointer, text: label.map(source).transpose()? },
        other => return Err(format!("type {other:?} is not one of plain, string, money, date, link")),
    })
}

/// A JSON Pointer (RFC 6901) as `serde_json::Value::pointer` reads it.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not a JSON Pointer: it must start with '/', e.g. \"/data/object/customer\""));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("{p:?}: '~' must be written ~0 (and '/' inside a key ~1)"));
        }
    }
    Ok(())
}

fn to_json(v: &toml::Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// A `[tracker]` value as the core's `Config::set` takes it.
pub fn option_value(v: &toml::Value) -> Result<OptionValue, String> {
    Ok(match v {
        toml::Value::String(s) => OptionValue::Str(s.clone()),
        toml::Value::Integer(n) => OptionValue::Int(*n),
        toml::Value::Float(f) => OptionValue::Float(*f),
        toml::Value::Boolean(b) => OptionValue::Bool(*b),
        toml::Value::Array(a) => OptionValue::List(
            a.iter()
                .map(|x| x.as_str().map(str::to_string).ok_or_else(|| "a list must hold strings".to_string()))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err("must be a string, number, boolean or list of strings".into()),
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn resolve_relative(rule_file: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        rule_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

// ---- evaluation ----

/// What one rule made of one payload.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The rule matched and its event passed the core's validation.
    Event { rule: String, event: Event, body: Json },
    /// The rule's `when` did not hold.
    NoMatch { rule: String, reason: String },
    /// The rule matched but its event is invalid.
    Invalid { rule: String, field: String, code: String, message: String },
}

/// Run every rule of `route` on `payload`. `now` is Unix seconds, for the
/// core's `created_at` checks.
pub fn evaluate(route: &Route, payload: &Json, now: i64) -> Vec<Outcome> {
    route.rules.iter().map(|r| evaluate_rule(r, payload, now)).collect()
}

fn evaluate_rule(rule: &Rule, payload: &Json, now: i64) -> Outcome {
    for (p, wanted) in &rule.when {
        let got = payload.pointer(p);
        if !got.is_some_and(|g| wanted.contains(g)) {
            let want = if wanted.len() == 1 { wanted[0].to_string() } else { format!("one of {}", Json::Array(wanted.clone())) };
            let reason = match got {
                None => format!("{p} is missing, wanted {want}"),
                Some(g) => format!("{p} is {g}, wanted {want}"),
            };
            return NoMatch(rule.name.clone(), reason);
        }
    }
    match build_event(rule, payload) {
        Err((field, code, message)) => Outcome::Invalid { rule: rule.name.clone(), field, code, message },
        Ok(event) => match event.prepare(now) {
            Ok(p) => Outcome::Event {
                rule: rule.name.clone(),
                body: serde_json::from_slice(&p.body).unwrap_or(Json::Null),
                event,
            },
            Err(e) => Outcome::Invalid {
                rule: rule.name.clone(),
                field: e.field().unwrap_or_else(|| "event".into()),
                code: e.code().into(),
                message: e.to_string(),
            },
        },
    }
}

#[allow(non_snake_case)]
fn NoMatch(rule: String, reason: String) -> Outcome {
    Outcome::NoMatch { rule, reason }
}

type Bad = (String, String, String);

fn bad(field: &str, code: &str, message: String) -> Bad {
    (field.to_string(), code.to_string(), format!("{field}: {message}"))
}

fn build_event(rule: &Rule, payload: &Json) -> Result<Event, Bad> {
    let mut event = Event::new(rule.event.as_str());
    let ident = |field: &str, p: &Option<String>| -> Result<Option<String>, Bad> {
        let Some(p) = p else { return Ok(None) };
        match payload.pointer(p) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(Json::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(field, "invalid_identity", format!("{p} holds {}, not a string", kind_of(other)))),
        }
    };
    event.user_id = ident("user_id", &rule.user_id)?;
    event.email = ident("email", &rule.email)?;
    event.id = ident("id", &rule.id)?;
    if let Some(p) = &rule.created_at {
        event.created_at = match payload.pointer(p) {
            None | Some(Json::Null) => None,
            Some(v) => Some(seconds(v).ok_or_else(|| {
                bad("created_at", "invalid_created_at", format!("{p} holds {v}, not Unix seconds"))
            })?),
        };
    }
    for (key, meta) in &rule.metadata {
        let field = format!("metadata.{key}");
        let value = match meta {
            Meta::Fixed(v) => trackcore::event::value_from_json(v),
            Meta::Plain(p) => payload.pointer(p).map_or(Value::Null, trackcore::event::value_from_json),
            Meta::Text(p) => match payload.pointer(p) {
                None | Some(Json::Null) => Value::Null,
                Some(Json::String(s)) => Value::String(s.clone()),
                Some(v @ (Json::Number(_) | Json::Bool(_))) => Value::String(v.to_string()),
                Some(v) => return Err(bad(&field, "invalid_text", format!("{p} holds {}, not a scalar", kind_of(v)))),
            },
            Meta::Date(p) => match payload.pointer(p) {
                None | Some(Json::Null) => Value::Null,
                Some(v) => Value::Date(
                    seconds(v).ok_or_else(|| bad(&field, "invalid_date", format!("{p} holds {v}, not Unix seconds")))?,
                ),
            },
            Meta::Money { amount, currency } => match payload.pointer(amount) {
                None | Some(Json::Null) => Value::Null,
                Some(a) => {
                    let cents = a.as_i64().ok_or_else(|| {
                        bad(&field, "invalid_money", format!("{amount} holds {a}, not an integer amount in cents"))
                    })?;
                    let code = match currency {
                        Source::Fixed(c) => c.clone(),
                        Source::Pointer(p) => match payload.pointer(p) {
                            Some(Json::String(c)) => c.clone(),
                            other => {
                                let got = other.map_or("nothing".to_string(), |v| v.to_string());
                                return Err(bad(&field, "invalid_money", format!("currency {p} holds {got}, not a currency code")));
                            }
                        },
                    };
                    Value::Money { amount: cents, currency: code }
                }
            },
            Meta::Link { url, text } => match payload.pointer(url) {
                None | Some(Json::Null) => Value::Null,
                Some(Json::String(u)) => {
                    let label = match text {
                        None => u.clone(),
                        Some(Source::Fixed(t)) => t.clone(),
                        Some(Source::Pointer(p)) => match payload.pointer(p) {
                            Some(Json::String(t)) => t.clone(),
                            Some(v @ Json::Number(_)) => v.to_string(),
                            _ => u.clone(),
                        },
                    };
                    Value::RichLink { url: u.clone(), value: label }
                }
                Some(v) => return Err(bad(&field, "invalid_rich_link", format!("{url} holds {v}, not a URL string"))),
            },
        };
        event.metadata.push((key.clone(), value));
    }
    Ok(event)
}

/// Unix seconds from an integer or a string of digits.
fn seconds(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Rules, RuleFileError> {
        Rules::parse(text, Path::new("bridge.toml"), false)
    }

    const STRIPE: &str = r#"
[[route]]
path = "/stripe"
kind = "stripe"
secret_env = "X"

[[route.rule]]
name = "failed"
when = { "/type" = ["invoice.payment_failed", "invoice.payment_action_required"] }
event = "payment-failed"
user_id = "/data/object/customer"
created_at = "/created"
metadata.amount = { pointer = "/data/object/amount_due", type = "money", currency = "/data/object/currency" }
metadata.invoice = { pointer = "/data/object/hosted_invoice_url", type = "link", text = "/data/object/number" }
metadata.due_date = { pointer = "/data/object/due_date", type = "date" }
metadata.attempt = "/data/object/attempt_count"
metadata.source = { value = "stripe" }
"#;

    #[test]
    fn maps_a_payload_by_pointer_with_money_link_and_date() {
        let rules = parse(STRIPE).unwrap();
        let payload = json!({"type": "invoice.payment_failed", "created": 1_700_000_000,
            "data": {"object": {"customer": "cus_1", "amount_due": 1999, "currency": "eur",
            "hosted_invoice_url": "https://pay.example/i/1", "number": "INV-1", "due_date": 1_700_100_000, "attempt_count": 2}}});
        let out = evaluate(&rules.routes[0], &payload, 1_700_000_100);
        let Outcome::Event { body, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!(
            body,
            &json!({"event_name": "payment-failed", "created_at": 1_700_000_000, "user_id": "cus_1", "metadata": {
                "amount": {"amount": 1999, "currency": "eur"},
                "invoice": {"url": "https://pay.example/i/1", "value": "INV-1"},
                "due_date": 1_700_100_000, "attempt": 2, "source": "stripe"}})
        );
    }

    #[test]
    fn says_why_a_rule_did_not_match() {
        let rules = parse(STRIPE).unwrap();
        let out = evaluate(&rules.routes[0], &json!({"type": "invoice.paid"}), 0);
        let Outcome::NoMatch { reason, .. } = &out[0] else { panic!("{out:?}") };
        assert!(reason.contains("/type is \"invoice.paid\""), "{reason}");
        let out = evaluate(&rules.routes[0], &json!({}), 0);
        let Outcome::NoMatch { reason, .. } = &out[0] else { panic!("{out:?}") };
        assert!(reason.contains("/type is missing"), "{reason}");
    }

    #[test]
    fn a_matched_payload_with_a_bad_value_names_the_field_and_rule() {
        let rules = parse(STRIPE).unwrap();
        let payload = json!({"type": "invoice.payment_failed", "data": {"object": {"customer": "c", "amount_due": 5, "currency": "euro"}}});
        let out = evaluate(&rules.routes[0], &payload, 0);
        let Outcome::Invalid { rule, field, code, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!((rule.as_str(), field.as_str(), code.as_str()), ("failed", "metadata.amount", "invalid_money"));
        let no_identity = json!({"type": "invoice.payment_failed"});
        let Outcome::Invalid { code, .. } = &evaluate(&rules.routes[0], &no_identity, 0)[0] else { panic!() };
        assert_eq!(code, "missing_identity");
    }

    #[test]
    fn refuses_broken_files_with_line_and_reason() {
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"stripe\"\nsecret = \"whsec_1\"\n[[route.rule]]\nevent = \"a\"\nuser_id = \"/u\"\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.reason.contains("never read from the rule file"), "{e}");
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"jsn\"\n").unwrap_err();
        assert_eq!((e.line, e.reason.contains("not one of stripe, intercom, json")), (Some(3), true), "{e}");
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \"a\"\nuser_id = \"data.user\"\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.reason.contains("not a JSON Pointer"), "{e}");
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \"a\"\nuser_id = \"/u\"\nmetadata.m = { pointer = \"/m\", type = \"euros\" }\n").unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        let e = parse("[tracker]\nmax_in_flight = 0\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.reason.contains("max_in_flight"), "{e}");
        let e = parse("[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \" a\"\nuser_id = \"/u\"\n").unwrap_err();
        assert!(e.reason.contains("whitespace"), "{e}");
        let e = parse("[[route]\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn tracker_table_passes_options_by_name() {
        let r = parse("[tracker]\nmax_in_flight = 4\nbackoff_base = 0.5\n[[route]]\npath = \"/x\"\nkind = \"json\"\n[[route.rule]]\nevent = \"a\"\nuser_id = \"/u\"\n").unwrap();
        assert_eq!(r.tracker, vec![("max_in_flight".into(), OptionValue::Int(4)), ("backoff_base".into(), OptionValue::Float(0.5))]);
        let e = parse("[tracker]\nno_such = 1\n").unwrap_err();
        assert!(e.reason.contains("unknown option"), "{e}");
    }
}
