//! The one error type of trackcore.
//!
//! Every variant has a stable, machine-readable [`Error::code`] that every
//! binding exposes unchanged, and a message that names the field, what is wrong
//! with its value, and the rule it breaks.

use thiserror::Error;

/// Everything that can go wrong in trackcore, from invalid input at `track()`
/// to an event Intercom refused long after `track()` returned.
///
/// Input errors (`track()` returns them synchronously) are the variants from
/// [`Error::MissingEventName`] to [`Error::EventNameNotAllowed`], plus
/// [`Error::Closed`]. Delivery errors ([`Error::QueueFull`] onwards) never
/// reach the caller's thread: they are counted in [`crate::Stats`] and handed to
/// the error callback.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    // ---- event name ----
    /// `event_name` is empty.
    #[error("event_name: must not be empty")]
    MissingEventName,
    /// `event_name` is longer than 255 characters.
    #[error("event_name: is {len} characters long; the limit is 255")]
    EventNameTooLong { len: usize },
    /// `event_name` holds a control character.
    #[error("event_name: must not contain control characters (found {found:?})")]
    EventNameControlCharacter { found: char },
    /// `event_name` starts or ends with whitespace.
    #[error("event_name: must not start or end with whitespace ({name:?})")]
    EventNameWhitespace { name: String },

    // ---- identity ----
    /// None of `user_id`, `id`, `email` was given.
    #[error("identity: one of user_id, id or email is required (Intercom attaches events to a contact)")]
    MissingIdentity,
    /// An identifier was given but is empty (or only whitespace).
    #[error("{field}: must not be empty")]
    EmptyIdentifier { field: &'static str },
    /// `email` does not contain `@`.
    #[error("email: {value:?} is not an email address (it has no '@')")]
    InvalidEmail { value: String },

    // ---- created_at ----
    /// `created_at` is before the Unix epoch.
    #[error("created_at: {value} is negative; it must be Unix seconds (UTC)")]
    CreatedAtNegative { value: i64 },
    /// `created_at` is more than 24 hours ahead of now.
    #[error("created_at: {value} is more than 24 hours in the future (now is {now}); it must be Unix seconds, not milliseconds")]
    CreatedAtInFuture { value: i64, now: i64 },

    // ---- metadata ----
    /// More than 10 metadata keys (Intercom silently ignores keys past the tenth).
    #[error("metadata: has {count} keys; Intercom keeps at most 10 per event and silently drops the rest")]
    TooManyMetadataKeys { count: usize },
    /// A metadata key is empty.
    #[error("metadata: keys must not be empty")]
    EmptyMetadataKey,
    /// A metadata key is too long or holds control characters.
    #[error("metadata.{key}: key must be at most 255 characters without control characters")]
    InvalidMetadataKey { key: String },
    /// A number is NaN or infinite.
    #[error("metadata.{key}: {value} is not a finite number")]
    NonFiniteNumber { key: String, value: f64 },
    /// An integer does not fit in a signed 64-bit integer.
    #[error("metadata.{key}: integer does not fit in 64 bits")]
    NumberOutOfRange { key: String },
    /// A date under a key that does not end in `_date`.
    #[error("metadata.{key}: dates are only understood under keys ending in \"_date\"; rename the key to \"{key}_date\" or send a number")]
    DateRequiresDateKey { key: String },
    /// A date before the Unix epoch.
    #[error("metadata.{key}: date {value} is before 1970; dates are Unix seconds (UTC)")]
    InvalidDate { key: String, value: i64 },
    /// A rich link whose url is not http(s) or whose value is not a string.
    #[error("metadata.{key}: rich link needs exactly {{\"url\": http(s) URL, \"value\": string}}: {reason}")]
    InvalidRichLink { key: String, reason: String },
    /// A money value with a bad amount or currency.
    #[error("metadata.{key}: money needs exactly {{\"amount\": non-negative integer cents, \"currency\": 3-letter ISO 4217 code}}: {reason}")]
    InvalidMoney { key: String, reason: String },
    /// A nested object that is neither a rich link nor money.
    #[error("metadata.{key}: nested objects are not supported (only rich links {{url, value}} and money {{amount, currency}})")]
    NestedObjectNotSupported { key: String },
    /// An array value.
    #[error("metadata.{key}: arrays are not supported by Intercom; send a string or several keys")]
    ArrayNotSupported { key: String },
    /// A metadata key given twice (only a binding's foreign mapping can do this).
    #[error("metadata.{key}: given twice; each key holds one value")]
    DuplicateMetadataKey { key: String },
    /// Text that is not valid Unicode, such as a lone surrogate (reported by
    /// bindings whose strings can hold one: Python, JavaScript, the JVM).
    #[error("{field}: is not valid Unicode text (it holds a lone surrogate); Intercom needs UTF-8")]
    InvalidUnicode { field: String },
    /// A value of a type trackcore cannot send (reported by bindings).
    #[error("metadata.{key}: values of type {type_name} are not supported (use str, number, bool, date, money or rich link)")]
    UnsupportedType { key: String, type_name: String },

    // ---- whole event ----
    /// The serialized event is over 32 KiB.
    #[error("event: serialized size is {size} bytes; the limit is 32768")]
    EventTooLarge { size: usize },
    /// A new event name past the cap on distinct names.
    #[error("event_name: {name:?} would be distinct name number {limit_plus_one}; the cap is {limit} (Intercom stores at most 120 active event names per workspace)", limit_plus_one = limit + 1)]
    EventNameLimitReached { name: String, limit: usize },
    /// An event name outside the configured allow-list.
    #[error("event_name: {name:?} is not in allowed_event_names")]
    EventNameNotAllowed { name: String },

    // ---- lifecycle and configuration ----
    /// The tracker was shut down; it accepts no more events.
    #[error("tracker: closed by shutdown(); it accepts no more events")]
    Closed,
    /// A configuration value is invalid.
    #[error("config.{option}: {reason}")]
    InvalidConfig { option: String, reason: String },
    /// No access token was given and `INTERCOM_ACCESS_TOKEN` is not set.
    #[error("config.access_token: required (pass it or set INTERCOM_ACCESS_TOKEN); use memory mode for tests")]
    MissingAccessToken,

    // ---- delivery (never returned by track(); reported to the callback) ----
    /// The queue was full and the overflow policy dropped this event.
    #[error("queue: full at {capacity} events; event dropped by the {policy} overflow policy")]
    QueueFull { capacity: usize, policy: &'static str },
    /// Intercom refused the event with a permanent 4xx (400, 404, 422, ...).
    #[error("intercom: HTTP {status} {intercom_code}: {message}")]
    Rejected { status: u16, intercom_code: String, message: String },
    /// Intercom answered `404 User Not Found`: it knows no contact with the
    /// event's identifiers. Reported at once under `unknown_contact="report"`,
    /// after `unknown_contact_wait` (`waited_secs`) under `wait` and `create`.
    #[error("intercom: HTTP 404 {intercom_code}: {message}; {}", if *waited_secs == 0 { "not retried (unknown_contact=report)".to_string() } else { format!("the contact did not appear within {waited_secs} s (unknown_contact_wait)") })]
    ContactNotFound { intercom_code: String, message: String, waited_secs: u64 },
    /// Intercom answered 401/403: delivery pauses and probes until the token works.
    #[error("intercom: HTTP {status}: the access token was refused; delivery is paused and retried every {probe_secs} s")]
    Unauthorized { status: u16, probe_secs: u64 },
    /// Every retry failed, or the retry deadline passed.
    #[error("delivery: gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    /// The tracker shut down before this event could be delivered.
    #[error("shutdown: the event was still undelivered when the shutdown timeout passed")]
    UndeliveredAtShutdown,
    /// The tracker shut down while this event was held for its unknown contact
    /// (same code as [`Error::UndeliveredAtShutdown`]; the message says why).
    #[error("shutdown: the event was still undelivered when the shutdown timeout passed: it was waiting {waited_secs} s for its contact (Intercom answered 404 User Not Found)")]
    HeldForContactAtShutdown { waited_secs: u64 },
    /// A notice, not a loss: delivery keeps failing the same way (the host
    /// cannot be reached, or answers 5xx). The event is kept and retried until
    /// `retry_deadline`; its final outcome is reported separately.
    #[error("delivery: stalled, {attempts} attempts in a row failed: {reason}; events are kept and retried")]
    DeliveryStalled { attempts: u32, reason: String },
    /// The spool reached `spool_max_bytes`: this new event was dropped.
    #[error("spool: full at {max_bytes} bytes (spool_max_bytes); event dropped")]
    SpoolFull { max_bytes: u64 },
    /// A notice: the spool held damaged records (a crash or power loss while
    /// writing) that were skipped. Reported once per start with the count;
    /// the event passed to the callback is empty (`{}`): its bytes are gone.
    #[error(
        "spool: {stretches} corrupt or torn records were skipped while reading the spool back"
    )]
    SpoolCorrupt { stretches: u64 },
    /// A notice, not a loss: fleet mode's Redis cannot be reached (`reason`);
    /// each tracker paces locally at `shared_budget_fallback_percent` of the
    /// limit until it answers again. Reported once per episode, with an empty event.
    #[error("shared_budget: Redis cannot be reached ({reason}); pacing locally at shared_budget_fallback_percent of the limit until it answers")]
    SharedBudgetUnavailable { reason: String },
}

impl Error {
    /// The stable machine-readable code of this error, identical in every binding.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            MissingEventName => "missing_event_name",
            EventNameTooLong { .. } => "event_name_too_long",
            EventNameControlCharacter { .. } => "event_name_control_character",
            EventNameWhitespace { .. } => "event_name_whitespace",
            MissingIdentity => "missing_identity",
            EmptyIdentifier { .. } => "empty_identifier",
            InvalidEmail { .. } => "invalid_email",
            CreatedAtNegative { .. } => "created_at_negative",
            CreatedAtInFuture { .. } => "created_at_in_future",
            TooManyMetadataKeys { .. } => "too_many_metadata_keys",
            EmptyMetadataKey => "empty_metadata_key",
            InvalidMetadataKey { .. } => "invalid_metadata_key",
            NonFiniteNumber { .. } => "non_finite_number",
            NumberOutOfRange { .. } => "number_out_of_range",
            DateRequiresDateKey { .. } => "date_requires_date_key",
            InvalidDate { .. } => "invalid_date",
            InvalidRichLink { .. } => "invalid_rich_link",
            InvalidMoney { .. } => "invalid_money",
            NestedObjectNotSupported { .. } => "nested_object_not_supported",
            ArrayNotSupported { .. } => "array_not_supported",
            UnsupportedType { .. } => "unsupported_type",
            DuplicateMetadataKey { .. } => "duplicate_metadata_key",
            InvalidUnicode { .. } => "invalid_unicode",
            EventTooLarge { .. } => "event_too_large",
            EventNameLimitReached { .. } => "event_name_limit_reached",
            EventNameNotAllowed { .. } => "event_name_not_allowed",
            Closed => "closed",
            InvalidConfig { .. } => "invalid_config",
            MissingAccessToken => "missing_access_token",
            QueueFull { .. } => "queue_full",
            Rejected { .. } => "rejected",
            ContactNotFound { .. } => "contact_not_found",
            Unauthorized { .. } => "unauthorized",
            RetriesExhausted { .. } => "retries_exhausted",
            UndeliveredAtShutdown | HeldForContactAtShutdown { .. } => "undelivered_at_shutdown",
            DeliveryStalled { .. } => "delivery_stalled",
            SpoolFull { .. } => "spool_full",
            SpoolCorrupt { .. } => "spool_corrupt",
            SharedBudgetUnavailable { .. } => "shared_budget_unavailable",
        }
    }

    /// The field the error is about (`event_name`, `metadata.plan`, ...), when
    /// there is one. Bindings expose it so callers can point at the input.
    pub fn field(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            MissingEventName
            | EventNameTooLong { .. }
            | EventNameControlCharacter { .. }
            | EventNameWhitespace { .. }
            | EventNameLimitReached { .. }
            | EventNameNotAllowed { .. } => "event_name".into(),
            MissingIdentity => "user_id".into(),
            EmptyIdentifier { field } => (*field).into(),
            InvalidEmail { .. } => "email".into(),
            CreatedAtNegative { .. } | CreatedAtInFuture { .. } => "created_at".into(),
            TooManyMetadataKeys { .. } | EmptyMetadataKey => "metadata".into(),
            InvalidMetadataKey { key }
            | NonFiniteNumber { key, .. }
            | NumberOutOfRange { key }
            | DateRequiresDateKey { key }
            | InvalidDate { key, .. }
            | InvalidRichLink { key, .. }
            | InvalidMoney { key, .. }
            | NestedObjectNotSupported { key }
            | ArrayNotSupported { key }
            | UnsupportedType { key, .. }
            | DuplicateMetadataKey { key } => format!("metadata.{key}"),
            InvalidUnicode { field } => field.clone(),
            InvalidConfig { option, .. } => format!("config.{option}"),
            MissingAccessToken => "config.access_token".into(),
            _ => return None,
        })
    }

    /// The HTTP status Intercom answered with, for delivery errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Rejected { status, .. } | Error::Unauthorized { status, .. } => Some(*status),
            Error::ContactNotFound { .. } => Some(404),
            _ => None,
        }
    }

    /// Which family of exception this error is in every binding: invalid
    /// input (a bad value, or a value of the wrong type), a closed tracker, a
    /// configuration problem, or a delivery failure (never raised; reported).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Closed => ErrorKind::Closed,
            Error::InvalidConfig { .. } | Error::MissingAccessToken => ErrorKind::Config,
            e if e.is_type_error() => ErrorKind::InvalidType,
            e if e.is_input_error() => ErrorKind::InvalidEvent,
            _ => ErrorKind::Delivery,
        }
    }

    /// Whether this error is about the caller's input (a bad value: Python
    /// raises `ValueError`/`TypeError`, Node `TypeError`/`RangeError`) rather than
    /// the tracker's state or delivery.
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            Error::Closed
                | Error::QueueFull { .. }
                | Error::Rejected { .. }
                | Error::ContactNotFound { .. }
                | Error::Unauthorized { .. }
                | Error::RetriesExhausted { .. }
                | Error::UndeliveredAtShutdown
                | Error::HeldForContactAtShutdown { .. }
                | Error::DeliveryStalled { .. }
                | Error::SpoolFull { .. }
                | Error::SpoolCorrupt { .. }
                | Error::SharedBudgetUnavailable { .. }
        )
    }

    /// Whether a wrong *type* of value caused it (Python maps these to `TypeError`).
    pub fn is_type_error(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedType { .. } | Error::ArrayNotSupported { .. } | Error::NestedObjectNotSupported { .. }
        )
    }
}

/// The family of an [`Error`] ([`Error::kind`]): which exception class each
/// binding raises or reports it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad value (Python `ValueError`).
    InvalidEvent,
    /// A value of a type trackcore cannot send (Python `TypeError`).
    InvalidType,
    /// `track()` after `shutdown()`.
    Closed,
    /// An unknown or invalid option, or no access token.
    Config,
    /// A delivery failure or notice: passed to the error callback, never raised.
    Delivery,
}

impl ErrorKind {
    /// `invalid_event`, `invalid_type`, `closed`, `config` or `delivery`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidEvent => "invalid_event",
            ErrorKind::InvalidType => "invalid_type",
            ErrorKind::Closed => "closed",
            ErrorKind::Config => "config",
            ErrorKind::Delivery => "delivery",
        }
    }
}

/// Every code [`Error::code`] can return, for bindings and docs that list them.
pub const ERROR_CODES: &[&str] = &[
    "missing_event_name",
    "event_name_too_long",
    "event_name_control_character",
    "event_name_whitespace",
    "missing_identity",
    "empty_identifier",
    "invalid_email",
    "created_at_negative",
    "created_at_in_future",
    "too_many_metadata_keys",
    "empty_metadata_key",
    "invalid_metadata_key",
    "non_finite_number",
    "number_out_of_range",
    "date_requires_date_key",
    "invalid_date",
    "invalid_rich_link",
    "invalid_money",
    "nested_object_not_supported",
    "array_not_supported",
    "unsupported_type",
    "duplicate_metadata_key",
    "invalid_unicode",
    "event_too_large",
    "event_name_limit_reached",
    "event_name_not_allowed",
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
];
