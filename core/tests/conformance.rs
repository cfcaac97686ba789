//! Runs the shared conformance vectors (`tests/conformance/*.json`, format in
//! that folder's README) through the Rust public API: one memory-mode
//! `Tracker` per case, every step tracked in order, and the result compared
//! with the expected body or error code. Every failing case is reported (file
//! and case name), not just the first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as J};
use trackcore::event::value_from_json;
use trackcore::{Config, Event, OptionValue, Tracker, Value, ERROR_CODES};

/// The vectors must hold at least this many cases, so a missing or emptied
/// directory cannot pass vacuously.
const MIN_CASES: usize = 70;

/// Codes the vectors cannot express: lifecycle and delivery errors (they never
/// come out of a single `track()` on a fresh memory tracker), configuration
/// errors, and `unsupported_type`, `duplicate_metadata_key` and
/// `invalid_unicode`, which only a binding's foreign value (no JSON or `$`
/// form: a mapping that repeats a key, a lone surrogate) produces.
const NOT_COVERED: &[&str] = &[
    "closed",
    "invalid_config",
    "missing_access_token",
    "queue_full",
    "rejected",
    "contact_not_found",
    "unauthorized",
    "retries_exhausted",
    "undelivered_at_shutdown",
    "delivery_stalled",
    "spool_full",
    "spool_corrupt",
    "shared_budget_unavailable",
    "unsupported_type",
    "duplicate_metadata_key",
    "invalid_unicode",
];

/// The order of the body's top-level fields.
const FIELD_ORDER: &[&str] = &["event_name", "created_at", "user_id", "id", "email", "metadata"];

/// How far `"created_at": "$now"` may be from the clock around the call.
const NOW_SLACK: i64 = 5;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

// ---------------------------------------------------------------- special forms

/// The `$` key of a one-key special form, if `v` is one.
fn special(v: &J) -> Option<(&str, &J)> {
    match v {
        J::Object(o) if o.len() == 1 => {
            o.iter().next().filter(|(k, _)| k.starts_with('$')).map(|(k, a)| (k.as_str(), a))
        }
        _ => None,
    }
}

/// `{"$repeat": [s, n]}` expanded, if `v` is that form.
fn repeat(v: &J) -> Result<Option<String>, String> {
    match special(v) {
        Some(("$repeat", args)) => match args.as_array().map(Vec::as_slice) {
            Some([J::String(s), J::Number(n)]) => {
                let n = n.as_u64().ok_or_else(|| format!("$repeat count {n} is not a count"))?;
                Ok(Some(s.repeat(n as usize)))
            }
            _ => Err(format!("$repeat needs [string, count], got {args}")),
        },
        _ => Ok(None),
    }
}

/// A string input field: a JSON string or `$repeat`.
fn string_field(v: &J, what: &str) -> Result<String, String> {
    match v {
        J::String(s) => Ok(s.clone()),
        _ => repeat(v)?.ok_or_else(|| format!("{what}: expected a string or $repeat, got {v}")),
    }
}

/// A metadata value: `$` forms become native values, plain JSON goes through
/// the core's own `value_from_json`, objects and arrays recursively so a `$`
/// form inside them is converted too.
fn metadata_value(v: &J) -> Result<Value, String> {
    if let Some((form, arg)) = special(v) {
        let bad = || format!("{form}: malformed argument {arg}");
        return Ok(match form {
            "$date" => Value::Date(arg.as_i64().ok_or_else(bad)?),
            "$money" => match arg.as_array().map(Vec::as_slice) {
                Some([J::Number(a), J::String(c)]) => {
                    Value::Money { amount: a.as_i64().ok_or_else(bad)?, currency: c.clone() }
                }
                _ => return Err(bad()),
            },
            "$rich_link" => match arg.as_array().map(Vec::as_slice) {
                Some([J::String(url), J::String(value)]) => Value::RichLink { url: url.clone(), value: value.clone() },
                _ => return Err(bad()),
            },
            "$float" => Value::Float(match arg.as_str() {
                Some("nan") => f64::NAN,
                Some("inf") => f64::INFINITY,
                Some("-inf") => f64::NEG_INFINITY,
                _ => return Err(bad()),
            }),
            // A binding's big-integer type: values that fit are plain integers,
            // wider ones reach the core as `BigInt` (→ number_out_of_range).
            "$bigint" => {
                let s = arg.as_str().ok_or_else(bad)?;
                if s.is_empty() || !s.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                match s.parse::<i64>() {
                    Ok(n) => Value::Int(n),
                    Err(_) => Value::BigInt(s.to_string()),
                }
            }
            "$repeat" => Value::String(repeat(v)?.ok_or_else(bad)?),
            _ => return Err(format!("unknown special form {form} in metadata")),
        });
    }
    Ok(match v {
        J::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| Ok((k.clone(), metadata_value(v)?))).collect::<Result<_, String>>()?)
        }
        J::Array(a) => Value::Array(a.iter().map(metadata_value).collect::<Result<_, _>>()?),
        scalar => value_from_json(scalar),
    })
}

fn event_from_input(input: &J, now: i64) -> Result<Event, String> {
    let o = input.as_object().ok_or("input must be an object")?;
    let mut e = Event::default();
    for (k, v) in o {
        match k.as_str() {
            "event_name" => e.event_name = string_field(v, k)?,
            "user_id" => {
                e.user_id = Some(match v {
                    // Bindings accept integer user ids and send them as strings.
                    J::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    _ => string_field(v, k)?,
                })
            }
            "id" => e.id = Some(string_field(v, k)?),
            "email" => e.email = Some(string_field(v, k)?),
            "created_at" => {
                e.created_at = Some(match (v.as_i64(), special(v)) {
                    (Some(n), _) => n,
                    (None, Some(("$now_plus", J::Number(n)))) => {
                        now + n.as_i64().ok_or_else(|| format!("$now_plus {n} is not an integer"))?
                    }
                    _ => return Err(format!("created_at: expected an integer or $now_plus, got {v}")),
                })
            }
            "metadata" => {
                let m = v.as_object().ok_or_else(|| format!("metadata must be an object, got {v}"))?;
                for (key, val) in m {
                    e.metadata.push((key.clone(), metadata_value(val).map_err(|x| format!("metadata.{key}: {x}"))?));
                }
            }
            other => return Err(format!("unknown input key {other:?}")),
        }
    }
    Ok(e)
}

fn option_value(v: &J) -> Result<OptionValue, String> {
    Ok(match v {
        J::Null => OptionValue::None,
        J::Bool(b) => OptionValue::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => OptionValue::Int(i),
            None => OptionValue::Float(n.as_f64().ok_or_else(|| format!("option value {n}"))?),
        },
        J::String(s) => OptionValue::Str(s.clone()),
        J::Array(a) => OptionValue::List(
            a.iter()
                .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("list option holds a non-string {x}")))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(_) => return Err(format!("option value {v} is an object")),
    })
}

// ---------------------------------------------------------------- comparison

/// Expand `$repeat` anywhere in an expected body.
fn expand(v: &J) -> Result<J, String> {
    if let Some(s) = repeat(v)? {
        return Ok(J::String(s));
    }
    Ok(match v {
        J::Object(o) => {
            J::Object(o.iter().map(|(k, v)| Ok((k.clone(), expand(v)?))).collect::<Result<Map<_, _>, String>>()?)
        }
        J::Array(a) => J::Array(a.iter().map(expand).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

/// Numbers compare by value (`3` equals `3.0`); integers exactly.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

fn short(v: &J) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let cut = (0..=117).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...({} bytes)", &s[..cut], s.len())
    } else {
        s
    }
}

fn compare(path: &str, actual: &J, expected: &J, diffs: &mut Vec<String>) {
    match (actual, expected) {
        (J::Number(a), J::Number(b)) if numbers_equal(a, b) => {}
        (J::Object(a), J::Object(b)) => {
            for (k, ev) in b {
                match a.get(k) {
                    Some(av) => compare(&format!("{path}.{k}"), av, ev, diffs),
                    None => diffs.push(format!("{path}.{k}: missing (expected {})", short(ev))),
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                diffs.push(format!("{path}.{k}: unexpected {}", short(&a[k])));
            }
        }
        (J::Array(a), J::Array(b)) if a.len() == b.len() => {
            for (i, (av, ev)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}[{i}]"), av, ev, diffs);
            }
        }
        (a, b) if a == b => {}
        (a, b) => diffs.push(format!("{path}: got {}, expected {}", short(a), short(b))),
    }
}

fn keys(v: Option<&J>) -> Vec<String> {
    v.and_then(J::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Compare a recorded body with the expectation; `now` is the clock range
/// around the call, for `"created_at": "$now"`.
fn check_body(actual: &J, expected: &J, now: (i64, i64)) -> Result<(), String> {
    let mut expected = expand(expected)?;
    let mut diffs = Vec::new();
    if expected.get("created_at") == Some(&J::String("$now".into())) {
        match actual.get("created_at").and_then(J::as_i64) {
            Some(t) if t >= now.0 - NOW_SLACK && t <= now.1 + NOW_SLACK => {}
            other => diffs.push(format!("$.created_at: got {other:?}, expected now ({}..={})", now.0, now.1)),
        }
        if let (Some(a), Some(e)) = (actual.get("created_at"), expected.as_object_mut()) {
            e.insert("created_at".into(), a.clone());
        }
    }
    compare("$", actual, &expected, &mut diffs);
    // Vectors may list fields in any order (README), but the core's body
    // always follows the documented one.
    let fields = keys(Some(actual));
    let canonical: Vec<&str> = FIELD_ORDER.iter().copied().filter(|f| fields.iter().any(|x| x == f)).collect();
    if fields != canonical {
        diffs.push(format!("field order: got {fields:?}, expected the order {FIELD_ORDER:?}"));
    }
    let (am, em) = (keys(actual.get("metadata")), keys(expected.get("metadata")));
    if diffs.is_empty() && am != em {
        diffs.push(format!("metadata key order: got {am:?}, expected {em:?}"));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

// ---------------------------------------------------------------- running

/// Run one case; `Err` describes every way it failed.
fn run_case(case: &Map<String, J>, expected_codes: &mut Vec<String>) -> Result<(), String> {
    let mut config = Config::default();
    if let Some(opts) = case.get("options") {
        let opts = opts.as_object().ok_or("options must be an object")?;
        for (name, v) in opts {
            config.set(name, option_value(v)?).map_err(|e| format!("option {name}: {e}"))?;
        }
    }
    config.set("memory", OptionValue::Bool(true)).map_err(|e| e.to_string())?;
    let tracker = Tracker::new(config).map_err(|e| format!("Tracker::new: {e}"))?;

    let steps: Vec<(&J, &J)> = match (case.get("steps"), case.get("input"), case.get("expect")) {
        (Some(J::Array(steps)), None, None) if !steps.is_empty() => steps
            .iter()
            .map(|s| match (s.get("input"), s.get("expect")) {
                (Some(i), Some(e)) => Ok((i, e)),
                _ => Err(format!("a step needs input and expect: {}", short(s))),
            })
            .collect::<Result<_, _>>()?,
        (None, Some(i), Some(e)) => vec![(i, e)],
        _ => return Err("a case needs either input + expect or a non-empty steps list".into()),
    };

    let mut problems = Vec::new();
    for (n, (input, expect)) in steps.into_iter().enumerate() {
        let step = |msg: String| format!("step {}: {msg}", n + 1);
        let before = unix_now();
        let event = event_from_input(input, before).map_err(|e| step(format!("bad input: {e}")))?;
        let recorded_before = tracker.recorded_json().len();
        let result = tracker.track(event);
        let after = unix_now();
        let recorded = tracker.recorded();
        if let Some(J::String(code)) = expect.get("error") {
            expected_codes.push(code.clone());
        }
        match (expect.get("body"), expect.get("error"), result) {
            (Some(body), None, Ok(())) => {
                if recorded.len() != recorded_before + 1 {
                    problems.push(step(format!(
                        "track() returned Ok but recorded {} new bodies",
                        recorded.len() - recorded_before
                    )));
                } else if let Err(d) = check_body(recorded.last().unwrap_or(&J::Null), body, (before, after)) {
                    problems.push(step(d));
                }
            }
            (Some(_), None, Err(e)) => problems.push(step(format!("expected a body, got error {} ({e})", e.code()))),
            (None, Some(J::String(code)), Ok(())) => problems.push(step(format!(
                "expected error {code}, got body {}",
                recorded.last().map(short).unwrap_or_default()
            ))),
            (None, Some(J::String(code)), Err(e)) => {
                if e.code() != code {
                    problems.push(step(format!("expected error {code}, got {} ({e})", e.code())));
                } else if let Some(field) = expect.get("field") {
                    let want = field.as_str().ok_or_else(|| step(format!("field must be a string, got {field}")))?;
                    if e.field().as_deref() != Some(want) {
                        problems.push(step(format!("error {code}: field {:?}, expected {want:?}", e.field())));
                    }
                }
                if recorded.len() != recorded_before {
                    problems.push(step("a rejected event was recorded".into()));
                }
            }
            _ => return Err(step(format!("expect must be {{body}} or {{error[, field]}}: {}", short(expect)))),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n      "))
    }
}

#[test]
fn every_conformance_vector_passes() {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.json vectors in {}", dir.display());

    let mut failures = Vec::new();
    let mut total = 0;
    let mut names = std::collections::HashMap::new();
    let mut expected_codes = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let doc: J = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
        {
            Ok(doc) => doc,
            Err(e) => {
                failures.push(format!("{file}: unreadable: {e}"));
                continue;
            }
        };
        let Some(cases) = doc.get("cases").and_then(J::as_array).filter(|c| !c.is_empty()) else {
            failures.push(format!("{file}: no \"cases\" list"));
            continue;
        };
        for (i, case) in cases.iter().enumerate() {
            total += 1;
            let Some(case) = case.as_object() else {
                failures.push(format!("{file} case #{i}: not an object"));
                continue;
            };
            let name = case.get("name").and_then(J::as_str).unwrap_or("").to_string();
            if name.is_empty() {
                failures.push(format!("{file} case #{i}: no name"));
            } else if let Some(other) = names.insert(name.clone(), file.clone()) {
                failures.push(format!("{file} {name}: name also used in {other}"));
            }
            if let Err(e) = run_case(case, &mut expected_codes) {
                failures.push(format!("{file} {name}:\n      {e}"));
            }
        }
    }

    let missing: Vec<&str> = ERROR_CODES
        .iter()
        .copied()
        .filter(|c| !NOT_COVERED.contains(c) && !expected_codes.iter().any(|x| x == c))
        .collect();
    if !missing.is_empty() {
        failures.push(format!("input error codes no vector expects: {missing:?}"));
    }

    let mut report = String::new();
    for f in &failures {
        let _ = writeln!(report, "  {f}");
    }
    assert!(failures.is_empty(), "{} problems in {total} conformance cases:\n{report}", failures.len());
    assert!(total >= MIN_CASES, "only {total} conformance cases in {}; expected at least {MIN_CASES}", dir.display());
    eprintln!("{total} conformance cases in {} files passed", files.len());
}
