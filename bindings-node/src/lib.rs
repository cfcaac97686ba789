//! `trackcore` for Node.js: the native half of the `trackcore` npm package.
//!
//! This crate only converts values and maps errors; validation, queueing,
//! delivery, retries and every default live in the `trackcore` core crate.
//! `index.js` wraps [`tracker::NativeTracker`] into the public `Tracker`
//! class (options object, `TrackError` classes, Promises, exit handling).

mod convert;
mod errors;
mod logging;
mod tracker;

use napi_derive::napi;

/// One documented option of the core, named for JavaScript.
#[napi(object)]
pub struct OptionDoc {
    /// camelCase name as passed to `new Tracker({...})`.
    pub name: String,
    /// The core's snake_case name (the same in every binding).
    pub core_name: String,
    /// `str`, `int`, `float` (seconds), `bool` or `list`.
    pub kind: String,
    /// The core's default, rendered as text.
    pub default: String,
    /// One line of documentation.
    pub doc: String,
}

/// The core's options in its documented order, with their defaults.
#[napi]
pub fn options() -> Vec<OptionDoc> {
    trackcore::Config::describe()
        .into_iter()
        .map(|o| OptionDoc {
            name: convert::camel_case(o.name),
            core_name: o.name.into(),
            kind: o.kind.into(),
            default: o.default,
            doc: o.doc.into(),
        })
        .collect()
}

/// Every code a `TrackError` can carry.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    trackcore::ERROR_CODES.to_vec()
}

/// The version of the core this binding was built with.
#[napi]
pub fn core_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
