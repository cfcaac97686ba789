package dev.trackcore

/**
 * A monetary amount for event metadata: an integer number of cents and an
 * ISO 4217 currency code. Sent as `{"amount": ..., "currency": ...}`; the core
 * validates it when the event is tracked.
 */
data class Money(val amountCents: Long, val currency: String)

/**
 * A rich link for event metadata: an http(s) URL and the text shown for it.
 * Sent as `{"url": ..., "value": ...}`; the core validates it when tracked.
 */
data class RichLink(val url: String, val value: String)

/** Intercom's regional API hosts (option `region`). */
enum class Region(internal val option: String) {
    US("us"),
    EU("eu"),
    AU("au"),
}

/** What `track()` does when the queue is full (option `overflow`). */
enum class Overflow(internal val option: String) {
    /** Drop the event being tracked (counted, reported). Never blocks. */
    DROP_NEWEST("drop_newest"),

    /** Drop the oldest waiting event to make room (counted, reported). Never blocks. */
    DROP_OLDEST("drop_oldest"),

    /** Wait up to `blockTimeout` for room, then drop the new event. */
    BLOCK("block"),
}

/** What happens to an event whose contact Intercom does not know, 404 "User Not Found" (option `unknown_contact`). */
enum class UnknownContact(internal val option: String) {
    /** Report it at once (`contact_not_found`); never retried. */
    REPORT("report"),

    /** Hold it and retry its contact with backoff for `unknownContactWait`, then report it. */
    WAIT("wait"),

    /** Create the contact (`POST /contacts`) once, then send its events; an Intercom `id` alone waits. */
    CREATE("create"),
}

/** Where delivery permits come from (option `rate_limiter`). */
enum class RateLimiter(internal val option: String) {
    /** This process paces itself to `rateLimitPerMinute`. */
    LOCAL("local"),

    /** No pacing (Intercom's 429s still slow delivery down). */
    NONE("none"),
}

/** One documented option of the core (`Config::describe()`), with its default as text. */
data class OptionInfo(val name: String, val kind: String, val default: String, val doc: String)

/**
 * An event that could not be delivered, as it was (or would have been) posted.
 * [json] is the exact body; [body] the same parsed into maps.
 */
class FailedEvent internal constructor(val json: String) {
    /** The body parsed (`event_name`, `created_at`, identifiers, `metadata`). */
    val body: Map<String, Any?> by lazy { @Suppress("UNCHECKED_CAST") (Json.parse(json) as? Map<String, Any?>).orEmpty() }

    /** The event's name. */
    val eventName: String? get() = body["event_name"] as? String

    override fun toString(): String = "FailedEvent($json)"
}

/**
 * Told about every event that could not be delivered, on trackcore's reporter
 * thread (never the caller's). Whatever it throws is caught and logged.
 * A `fun interface`, so Java passes a lambda.
 */
fun interface ErrorListener {
    fun onError(event: FailedEvent, error: TrackException)
}
