//! Where the CLI's tracker comes from: the token (environment or file, never
//! a flag), the host (region or base URL) and any core option by name.

use std::path::PathBuf;

use clap::Args;
use trackcore::{Config, OptionValue, Secret};

/// How to reach Intercom; shared by `send` and `bridge`.
#[derive(Debug, Args, Clone)]
pub struct Connect {
    /// Read the access token from this file (else INTERCOM_ACCESS_TOKEN). There
    /// is deliberately no flag for the token itself: it would land in shell history.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Intercom region: us, eu or au.
    #[arg(long)]
    pub region: Option<String>,
    /// Intercom host to use instead of the region's (the emulator, a proxy).
    #[arg(long, env = "INTERCOM_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Set any core option by name, e.g. --set max_retries=3 (repeatable; see docs/cli.md).
    #[arg(long = "set", value_name = "OPTION=VALUE")]
    pub set: Vec<String>,
}

/// The access token, from `--token-file` or `INTERCOM_ACCESS_TOKEN`.
pub fn token(c: &Connect) -> Result<Secret, String> {
    if let Some(path) = &c.token_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--token-file {}: cannot read it: {e}", path.display()))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("--token-file {}: the file is empty", path.display()));
        }
        return Ok(Secret::new(t));
    }
    match std::env::var("INTERCOM_ACCESS_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
        _ => Err("no access token: set INTERCOM_ACCESS_TOKEN or pass --token-file FILE".into()),
    }
}

/// A text value as the core's options take it: JSON numbers, booleans and
/// lists of strings keep their type, anything else is a string.
pub fn option_from_text(v: &str) -> OptionValue {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Number(n)) => n.as_i64().map_or_else(|| OptionValue::Float(n.as_f64().unwrap_or(f64::NAN)), OptionValue::Int),
        Ok(serde_json::Value::Bool(b)) => OptionValue::Bool(b),
        Ok(serde_json::Value::Array(a)) if a.iter().all(|x| x.is_string()) => {
            OptionValue::List(a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        }
        _ => OptionValue::Str(v.to_string()),
    }
}

/// A core configuration: `base` options (a rule file's `[tracker]`) first,
/// then the flags, which win. Every option goes through `Config::set`, so
/// names, types and ranges are the core's.
pub fn config(c: &Connect, base: &[(String, OptionValue)], with_token: bool) -> Result<Config, String> {
    let mut config = Config { user_agent_suffix: format!("cli/{}", env!("CARGO_PKG_VERSION")), ..Config::default() };
    let set = |config: &mut Config, name: &str, v: OptionValue| config.set(name, v).map_err(|e| format!("{e}"));
    for (name, v) in base {
        set(&mut config, name, v.clone())?;
    }
    for kv in &c.set {
        let (name, v) = kv.split_once('=').ok_or_else(|| format!("--set {kv:?}: expected OPTION=VALUE"))?;
        if name.trim() == "access_token" {
            return Err("--set access_token: not accepted on the command line (shell history); use INTERCOM_ACCESS_TOKEN or --token-file".into());
        }
        set(&mut config, name.trim(), option_from_text(v))?;
    }
    if let Some(r) = &c.region {
        set(&mut config, "region", OptionValue::Str(r.clone()))?;
    }
    if let Some(u) = &c.base_url {
        set(&mut config, "base_url", OptionValue::Str(u.clone()))?;
    }
    if with_token {
        config.access_token = Some(token(c)?);
    }
    Ok(config)
}

/// Warnings from the core (and the CLI) to stderr, one line each.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{} {}: {}", r.level().as_str().to_ascii_lowercase(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Install the stderr logger: warnings, or everything down to debug with `verbose`.
pub fn init_log(verbose: bool) {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if verbose { log::LevelFilter::Debug } else { log::LevelFilter::Warn });
    }
}
