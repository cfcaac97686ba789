package dev.trackcore

import dev.trackcore.ffi.ErrorSink
import dev.trackcore.ffi.FfiErrorInfo
import dev.trackcore.ffi.FfiErrorKind
import dev.trackcore.ffi.FfiException
import dev.trackcore.ffi.FfiLogLevel
import dev.trackcore.ffi.FfiOption
import dev.trackcore.ffi.NativeTracker
import java.time.Duration

/**
 * Sends events to Intercom's Data Events API in the background.
 *
 * Every parameter but [onError], [flushAtExit] and [exitTimeout] is an option
 * of the core (`Config::describe()`, listed by [Tracker.options]) under its
 * camelCase name; `null` means the core's default, which lives only in the
 * core. `accessToken` defaults to `$INTERCOM_ACCESS_TOKEN`. Durations are
 * `java.time.Duration`s.
 *
 * Thread-safe: share one per process. [track] validates on the caller's
 * thread and never waits on the network; delivery problems are retried,
 * counted in [stats] and reported to [onError] (on trackcore's reporter
 * thread), never thrown. No method waits longer than the bound it is given.
 * At JVM exit a shutdown hook flushes for at most [exitTimeout] (default:
 * `dropTimeout`) unless [flushAtExit] is false; until [shutdown] or [close]
 * the hook keeps the tracker's pipeline alive, so close trackers you discard
 * (one per process is the intended use). Java callers use [builder].
 *
 * @throws ConfigException for an invalid option or a missing token.
 */
class Tracker(
    accessToken: String? = null,
    region: Region? = null,
    baseUrl: String? = null,
    apiVersion: String? = null,
    queueCapacity: Int? = null,
    overflow: Overflow? = null,
    blockTimeout: Duration? = null,
    maxInFlight: Int? = null,
    rateLimitPerMinute: Int? = null,
    rateLimiter: RateLimiter? = null,
    /** Fleet mode: a `redis://` or `rediss://` URL; every tracker of the app with it shares one budget. */
    sharedBudget: String? = null,
    sharedBudgetPrefix: String? = null,
    sharedBudgetFallbackPercent: Int? = null,
    requestTimeout: Duration? = null,
    maxRetries: Int? = null,
    retryDeadline: Duration? = null,
    backoffBase: Duration? = null,
    backoffMax: Duration? = null,
    authProbeInterval: Duration? = null,
    maxEventNames: Int? = null,
    allowedEventNames: Collection<String>? = null,
    dedupe: Boolean? = null,
    /** Directory of the disk spool that keeps events until delivered, across crashes and restarts. */
    spoolDir: java.nio.file.Path? = null,
    spoolMaxBytes: Long? = null,
    spoolSyncInterval: Duration? = null,
    unknownContact: UnknownContact? = null,
    unknownContactWait: Duration? = null,
    unknownContactBackoff: Duration? = null,
    memory: Boolean? = null,
    dropTimeout: Duration? = null,
    userAgentSuffix: String? = null,
    /** Told about every event that could not be delivered. */
    onError: ErrorListener? = null,
    /** Whether the JVM shutdown hook flushes this tracker (else it stops it at once). */
    val flushAtExit: Boolean = true,
    /** The bound of the shutdown hook's flush; `null` means `dropTimeout`. */
    exitTimeout: Duration? = null,
) : AutoCloseable {
    private val native: NativeTracker

    /** Whether this tracker records events instead of sending them ([recorded]). */
    val memory: Boolean

    /** The default bound of [flush], [shutdown] and [close]: the core's `drop_timeout`. */
    val defaultTimeout: Duration

    /** The bound of the shutdown hook's flush. */
    val exitTimeout: Duration

    private val baseUrlShown: String

    private val exitEntry: ExitHook.Entry

    /** The native tracker for the fast path of [track]; released by [HANDLES] when this is unreachable. */
    private val fastHandle: Long

    init {
        Logging.install()
        val given = ArrayList<FfiOption>(8)
        given.add(Convert.option("user_agent_suffix", "jvm/${Runtime.version().feature()}"))
        fun opt(name: String, v: Any?) {
            if (v != null) given.add(Convert.option(name, v))
        }
        opt("access_token", accessToken)
        opt("region", region)
        opt("base_url", baseUrl)
        opt("api_version", apiVersion)
        opt("queue_capacity", queueCapacity)
        opt("overflow", overflow)
        opt("block_timeout", blockTimeout)
        opt("max_in_flight", maxInFlight)
        opt("rate_limit_per_minute", rateLimitPerMinute)
        opt("rate_limiter", rateLimiter)
        opt("shared_budget", sharedBudget)
        opt("shared_budget_prefix", sharedBudgetPrefix)
        opt("shared_budget_fallback_percent", sharedBudgetFallbackPercent)
        opt("request_timeout", requestTimeout)
        opt("max_retries", maxRetries)
        opt("retry_deadline", retryDeadline)
        opt("backoff_base", backoffBase)
        opt("backoff_max", backoffMax)
        opt("auth_probe_interval", authProbeInterval)
        opt("max_event_names", maxEventNames)
        opt("allowed_event_names", allowedEventNames)
        opt("dedupe", dedupe)
        opt("spool_dir", spoolDir)
        opt("spool_max_bytes", spoolMaxBytes)
        opt("spool_sync_interval", spoolSyncInterval)
        opt("unknown_contact", unknownContact)
        opt("unknown_contact_wait", unknownContactWait)
        opt("unknown_contact_backoff", unknownContactBackoff)
        opt("memory", memory)
        opt("drop_timeout", dropTimeout)
        opt("user_agent_suffix", userAgentSuffix)
        if (exitTimeout != null && (exitTimeout.isNegative)) {
            throw ConfigException("config.exit_timeout: $exitTimeout is not a duration (it is negative)", "invalid_config", "config.exit_timeout")
        }
        native = try {
            NativeTracker(given, Reporter(onError))
        } catch (e: FfiException.Failed) {
            throw exception(e.info)
        }
        this.memory = native.option("memory") == "true"
        this.defaultTimeout = secondsToDuration(native.option("drop_timeout"))
        this.exitTimeout = exitTimeout ?: defaultTimeout
        this.baseUrlShown = native.option("base_url")?.takeIf { it.isNotEmpty() } ?: "region=${native.option("region")}"
        fastHandle = native.fastHandle().toLong()
        HANDLES.register(this, ReleaseHandle(fastHandle))
        exitEntry = ExitHook.Entry(native, if (flushAtExit) this.exitTimeout else Duration.ZERO)
        ExitHook.register(exitEntry)
    }

    /**
     * Validate one event against Intercom's rules and queue it for delivery.
     *
     * One of [userId] (a String or an integer), [id], [email] is required.
     * [createdAt] is Unix seconds or an `Instant`/`OffsetDateTime`/
     * `ZonedDateTime`/`LocalDate` (default: now). [metadata] holds at most 10
     * values: `String`, numbers, `Boolean`, `null` (omitted), `Instant`/
     * `LocalDate` under keys ending in `_date`, [Money], [RichLink]; its
     * iteration order is kept.
     *
     * @throws InvalidEventException for invalid input ([InvalidTypeException]
     *   for a value of the wrong type), naming the field and the rule.
     * @throws TrackerClosedException after [shutdown] or [close].
     * Never waits on the network; under `Overflow.BLOCK` waits at most `blockTimeout`.
     */
    @JvmOverloads
    fun track(
        eventName: String,
        userId: Any? = null,
        id: String? = null,
        email: String? = null,
        createdAt: Any? = null,
        metadata: Map<String, *>? = null,
    ) {
        val wire = Wire.get()
        val rc = try {
            @Suppress("USELESS_ELVIS") // Java callers may pass null
            wire.event(
                eventName ?: "",
                Convert.identifier("user_id", userId, true),
                Convert.identifier("id", id, false),
                Convert.identifier("email", email, false),
                Convert.createdAt(createdAt),
                metadata,
            )
            FastPath.trackcore_kotlin_track(fastHandle, wire.bytes, wire.length)
        } finally {
            Wire.release(wire)
            java.lang.ref.Reference.reachabilityFence(this) // the handle lives as long as this object
        }
        if (rc != 0) {
            val info = dev.trackcore.ffi.takeTrackError()
                ?: throw IllegalStateException("trackcore: the native track() call failed (code $rc)")
            throw exception(info)
        }
    }

    /** [track] for an [Event] built step by step (convenient from Java). */
    fun track(event: Event) = track(event.eventName, event.userId, event.id, event.email, event.createdAt, event.metadata)

    /**
     * Wait until every event tracked before this call is settled (delivered,
     * failed or dropped, and reported to the listener) or [timeout] passes.
     * Returns whether all settled. From inside the error listener it returns
     * `false` at once (it would wait for itself).
     */
    @JvmOverloads
    fun flush(timeout: Duration = defaultTimeout): Boolean = native.flush(Convert.seconds(timeout))

    /**
     * Wait until every event tracked before this call is written to the spool
     * (`spoolDir`) and synced to disk, or [timeout] passes. Returns `true` once
     * it is (at once without a spool).
     */
    @JvmOverloads
    fun sync(timeout: Duration = defaultTimeout): Boolean = native.sync(Convert.seconds(timeout))

    /** [flush] with a Kotlin duration. */
    @JvmSynthetic
    fun flush(timeout: kotlin.time.Duration): Boolean = flush(java.time.Duration.ofNanos(timeout.inWholeNanoseconds))

    /**
     * Flush for at most [timeout], then stop the background threads. What is
     * still undelivered is counted (`droppedShutdown`) and reported; no listener
     * call happens after it returns and later [track] calls throw
     * [TrackerClosedException]. Idempotent; each concurrent caller returns
     * within its own bound. Returns whether nothing had to be given up.
     */
    @JvmOverloads
    fun shutdown(timeout: Duration = defaultTimeout): Boolean {
        val clean = native.shutdown(Convert.seconds(timeout))
        ExitHook.unregister(exitEntry)
        return clean
    }

    /** [shutdown] with a Kotlin duration. */
    @JvmSynthetic
    fun shutdown(timeout: kotlin.time.Duration): Boolean = shutdown(java.time.Duration.ofNanos(timeout.inWholeNanoseconds))

    /** [shutdown] within [defaultTimeout]. */
    override fun close() {
        shutdown(defaultTimeout)
    }

    /** A snapshot of the counters. Cheap; never blocks. */
    fun stats(): Stats {
        val s = native.stats()
        return Stats.of(s.names, s.values)
    }

    /**
     * In memory mode, the events recorded so far as maps (oldest first), once
     * events tracked before the call have passed through the pipeline
     * (de-duplication included). Empty otherwise.
     */
    fun recorded(): List<Map<String, Any?>> =
        @Suppress("UNCHECKED_CAST")
        recordedJson().map { Json.parse(it) as Map<String, Any?> }

    /** In memory mode, the exact JSON bodies recorded so far (oldest first). */
    fun recordedJson(): List<String> = native.recordedJson()

    /** In memory mode, forget the recorded events. */
    fun clearRecorded() = native.clearRecorded()

    /** Never shows the access token. */
    override fun toString(): String = "Tracker($baseUrlShown, memory=$memory)"

    /** Collects options by name; the Java-friendly way to build a [Tracker]. */
    class Builder internal constructor() {
        private var accessToken: String? = null
        private var region: Region? = null
        private var baseUrl: String? = null
        private var apiVersion: String? = null
        private var queueCapacity: Int? = null
        private var overflow: Overflow? = null
        private var blockTimeout: Duration? = null
        private var maxInFlight: Int? = null
        private var rateLimitPerMinute: Int? = null
        private var rateLimiter: RateLimiter? = null
        private var sharedBudget: String? = null
        private var sharedBudgetPrefix: String? = null
        private var sharedBudgetFallbackPercent: Int? = null
        private var requestTimeout: Duration? = null
        private var maxRetries: Int? = null
        private var retryDeadline: Duration? = null
        private var backoffBase: Duration? = null
        private var backoffMax: Duration? = null
        private var authProbeInterval: Duration? = null
        private var maxEventNames: Int? = null
        private var allowedEventNames: Collection<String>? = null
        private var dedupe: Boolean? = null
        private var spoolDir: java.nio.file.Path? = null
        private var spoolMaxBytes: Long? = null
        private var spoolSyncInterval: Duration? = null
        private var unknownContact: UnknownContact? = null
        private var unknownContactWait: Duration? = null
        private var unknownContactBackoff: Duration? = null
        private var memory: Boolean? = null
        private var dropTimeout: Duration? = null
        private var userAgentSuffix: String? = null
        private var onError: ErrorListener? = null
        private var flushAtExit: Boolean = true
        private var exitTimeout: Duration? = null

        fun accessToken(v: String?) = apply { accessToken = v }
        fun region(v: Region?) = apply { region = v }
        fun baseUrl(v: String?) = apply { baseUrl = v }
        fun apiVersion(v: String?) = apply { apiVersion = v }
        fun queueCapacity(v: Int) = apply { queueCapacity = v }
        fun overflow(v: Overflow?) = apply { overflow = v }
        fun blockTimeout(v: Duration?) = apply { blockTimeout = v }
        fun maxInFlight(v: Int) = apply { maxInFlight = v }
        fun rateLimitPerMinute(v: Int) = apply { rateLimitPerMinute = v }
        fun rateLimiter(v: RateLimiter?) = apply { rateLimiter = v }
        fun sharedBudget(v: String?) = apply { sharedBudget = v }
        fun sharedBudgetPrefix(v: String?) = apply { sharedBudgetPrefix = v }
        fun sharedBudgetFallbackPercent(v: Int) = apply { sharedBudgetFallbackPercent = v }
        fun requestTimeout(v: Duration?) = apply { requestTimeout = v }
        fun maxRetries(v: Int) = apply { maxRetries = v }
        fun retryDeadline(v: Duration?) = apply { retryDeadline = v }
        fun backoffBase(v: Duration?) = apply { backoffBase = v }
        fun backoffMax(v: Duration?) = apply { backoffMax = v }
        fun authProbeInterval(v: Duration?) = apply { authProbeInterval = v }
        fun maxEventNames(v: Int) = apply { maxEventNames = v }
        fun allowedEventNames(v: Collection<String>?) = apply { allowedEventNames = v }
        fun dedupe(v: Boolean) = apply { dedupe = v }
        fun spoolDir(v: java.nio.file.Path?) = apply { spoolDir = v }
        fun spoolMaxBytes(v: Long) = apply { spoolMaxBytes = v }
        fun spoolSyncInterval(v: Duration?) = apply { spoolSyncInterval = v }
        fun unknownContact(v: UnknownContact?) = apply { unknownContact = v }
        fun unknownContactWait(v: Duration?) = apply { unknownContactWait = v }
        fun unknownContactBackoff(v: Duration?) = apply { unknownContactBackoff = v }
        fun memory(v: Boolean) = apply { memory = v }
        fun dropTimeout(v: Duration?) = apply { dropTimeout = v }
        fun userAgentSuffix(v: String?) = apply { userAgentSuffix = v }
        fun onError(v: ErrorListener?) = apply { onError = v }
        fun flushAtExit(v: Boolean) = apply { flushAtExit = v }
        fun exitTimeout(v: Duration?) = apply { exitTimeout = v }

        /** @throws ConfigException for an invalid option or a missing token. */
        fun build(): Tracker = Tracker(
            accessToken, region, baseUrl, apiVersion, queueCapacity, overflow, blockTimeout, maxInFlight,
            rateLimitPerMinute, rateLimiter, sharedBudget, sharedBudgetPrefix, sharedBudgetFallbackPercent, requestTimeout,
            maxRetries, retryDeadline, backoffBase, backoffMax, authProbeInterval, maxEventNames, allowedEventNames, dedupe,
            spoolDir, spoolMaxBytes, spoolSyncInterval, unknownContact, unknownContactWait, unknownContactBackoff, memory,
            dropTimeout, userAgentSuffix,
            onError, flushAtExit, exitTimeout,
        )
    }

    companion object {
        /** A [Builder] with every option at the core's default. */
        @JvmStatic
        fun builder(): Builder = Builder()

        /** The core's documented options, in its order, with defaults rendered by the core. */
        @JvmStatic
        fun options(): List<OptionInfo> =
            dev.trackcore.ffi.describeOptions().map { OptionInfo(it.name, it.kind, it.defaultValue, it.doc) }

        /** Every stable error code, as in every binding. */
        @JvmField
        val ERROR_CODES: List<String> = dev.trackcore.ffi.errorCodes()

        /** Releases each tracker's fast-path handle once the tracker is unreachable. */
        private val HANDLES: java.lang.ref.Cleaner = java.lang.ref.Cleaner.create()

        private fun secondsToDuration(s: String?): Duration {
            val d = s?.toDoubleOrNull() ?: 5.0
            return Duration.ofNanos((d * 1e9).toLong())
        }

        internal fun exception(e: FfiErrorInfo): TrackException = when (e.kind) {
            FfiErrorKind.INVALID_EVENT -> InvalidEventException(e.message, e.code, e.field)
            FfiErrorKind.INVALID_TYPE -> InvalidTypeException(e.message, e.code, e.field)
            FfiErrorKind.CLOSED -> TrackerClosedException(e.message, e.code)
            FfiErrorKind.CONFIG -> ConfigException(e.message, e.code, e.field)
            FfiErrorKind.DELIVERY -> DeliveryException(e.message, e.code, e.field, e.status?.toInt())
        }
    }

    private class ReleaseHandle(private val handle: Long) : Runnable {
        override fun run() = dev.trackcore.ffi.releaseFastHandle(handle.toULong())
    }

    /**
     * Receives the core's reports on trackcore's reporter thread and hands
     * them to the listener. Nothing is logged here: the core logs losses itself
     * (at most a line per 5 s, with counts) and delivery's state once per
     * change. Never lets an exception reach the core's thread.
     */
    private class Reporter(private val listener: ErrorListener?) : ErrorSink {
        override fun onError(eventJson: String, error: FfiErrorInfo) {
            try {
                listener?.onError(FailedEvent(eventJson), exception(error))
            } catch (t: Throwable) {
                Logging.log(FfiLogLevel.WARN, "the trackcore error listener threw; trackcore carries on", t)
            }
        }
    }
}

/**
 * One event built step by step, for callers (Java) without named arguments:
 * `tracker.track(new Event("upgraded-plan").userId("u-123").meta("plan", "pro"))`.
 * Not validated until tracked.
 */
class Event(val eventName: String) {
    var userId: Any? = null
        private set
    var id: String? = null
        private set
    var email: String? = null
        private set
    var createdAt: Any? = null
        private set
    val metadata: LinkedHashMap<String, Any?> = LinkedHashMap()

    fun userId(v: Any?) = apply { userId = v }
    fun id(v: String?) = apply { id = v }
    fun email(v: String?) = apply { email = v }
    fun createdAt(v: Any?) = apply { createdAt = v }
    fun meta(key: String, value: Any?) = apply { metadata[key] = value }

    override fun toString(): String = "Event($eventName, userId=$userId, id=$id, email=$email, createdAt=$createdAt, metadata=$metadata)"
}
