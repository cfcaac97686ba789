package dev.trackcore

/**
 * Base class of every trackcore error.
 *
 * [code] is the core's stable error code (one of [Tracker.ERROR_CODES], the
 * same string in Rust, Python, Node and Kotlin), [field] the input it is
 * about (`event_name`, `metadata.plan`, `config.overflow`) or `null`, and
 * [status] the HTTP status for errors Intercom answered (`rejected`,
 * `unauthorized`) or `null`. Unchecked, so Java callers need no `throws`.
 */
sealed class TrackException(
    message: String,
    val code: String,
    val field: String?,
    val status: Int?,
) : RuntimeException(message)

/**
 * `track()` was given an invalid value (empty name, no identity, a date under
 * a key not ending in `_date`, more than 10 metadata keys, ...).
 */
open class InvalidEventException(message: String, code: String, field: String?) :
    TrackException(message, code, field, null)

/**
 * `track()` was given a value of a type Intercom cannot store (a list, a
 * nested map that is neither money nor a rich link, a foreign object).
 * An [InvalidEventException], so one `catch` covers every bad input.
 */
class InvalidTypeException(message: String, code: String, field: String?) :
    InvalidEventException(message, code, field)

/** `track()` was called after `shutdown()`/`close()` (code `closed`). */
class TrackerClosedException(message: String, code: String) : TrackException(message, code, null, null)

/**
 * A tracker option is unknown or invalid (code `invalid_config`), or no
 * access token was found (`missing_access_token`). Thrown by the constructor.
 */
class ConfigException(message: String, code: String, field: String?) : TrackException(message, code, field, null)

/**
 * An event could not be delivered. Never thrown: passed to the [ErrorListener]
 * and logged. Codes: `queue_full`, `rejected`, `contact_not_found`, `retries_exhausted`,
 * `undelivered_at_shutdown`; and two notices about an event that is kept and
 * retried: `unauthorized` (delivery paused on a refused token) and
 * `delivery_stalled` (attempts keep failing).
 */
class DeliveryException(message: String, code: String, field: String?, status: Int?) :
    TrackException(message, code, field, status)
