package dev.trackcore

/**
 * A snapshot of a tracker's counters (the core's `Stats`, same names in
 * camelCase). Every tracked event ends in exactly one of delivered, failed,
 * dropped or deduplicated; until then it is queued or in flight, so
 * [balanced] holds whenever nothing is moving (after a `flush()`).
 */
data class Stats(
    /** Events accepted by `track()`. */
    val tracked: Long,
    /** Events an earlier process left in a disk store (0 with the in-memory store). */
    val recovered: Long,
    /** Events Intercom answered 2xx for. */
    val delivered: Long,
    /** Retry attempts made. */
    val retried: Long,
    /** `failedRejected + failedRetriesExhausted`. */
    val failed: Long,
    /** Refused with a permanent 4xx. */
    val failedRejected: Long,
    /** Ran out of retries or of retry deadline. */
    val failedRetriesExhausted: Long,
    /** `droppedQueueFull + droppedOldest + droppedShutdown + droppedSpool`. */
    val dropped: Long,
    val droppedQueueFull: Long,
    val droppedOldest: Long,
    val droppedShutdown: Long,
    /** Refused by a full spool, or unreadable from it. */
    val droppedSpool: Long,
    /** Copies of an already-sent (identity, name, created_at), not sent again. */
    val deduplicated: Long,
    /** Left in the spool at shutdown for the next tracker on the same `spoolDir`. */
    val persisted: Long,
    /** Waiting to be sent, in memory. */
    val queued: Long,
    /** Waiting to be sent, on disk only (beyond the spool's memory window). */
    val spooled: Long,
    /** Bytes in the spool's files. */
    val spoolBytes: Long,
    /** Corrupt or torn records found in the spool and skipped. */
    val spoolCorrupt: Long,
    /** HTTP requests under way. */
    val inFlight: Long,
    /** Of [queued]: events held because Intercom does not know their contact yet (`unknownContact`). */
    val waitingForContact: Long,
    /** `track()` calls waiting for room now (`Overflow.BLOCK`). */
    val blocked: Long,
    /** 429 responses received. */
    val rateLimited: Long,
    /** Time events were ready but held back by pacing, in milliseconds. */
    val rateLimitWaitMs: Long,
    /** Whether delivery is paused by a refused token (401/403). */
    val authPaused: Boolean,
    /** Error reports that could not reach the listener (queue full, or after shutdown). */
    val reportsDropped: Long,
    /** Fleet mode: times delivery found no leased permit and waited for the shared budget. */
    val fleetPermitWaits: Long,
    /** Fleet mode: Redis commands or connections that failed. */
    val redisErrors: Long,
    /** Fleet mode: time paced locally while Redis was unreachable, in milliseconds. */
    val fleetFallbackMs: Long,
    /** `unknownContact = CREATE`: contacts this tracker created in the workspace (a 409, made elsewhere meanwhile, is not counted). */
    val contactsCreated: Long,
) {
    /** `tracked + recovered == delivered + failed + dropped + deduplicated + persisted + queued + spooled + inFlight`. */
    fun balanced(): Boolean =
        tracked + recovered == delivered + failed + dropped + deduplicated + persisted + queued + spooled + inFlight

    internal companion object {
        fun of(names: List<String>, values: List<Long>): Stats {
            val m = HashMap<String, Long>(names.size * 2)
            for (i in names.indices) m[names[i]] = values[i]
            fun g(n: String) = m[n] ?: 0L
            return Stats(
                g("tracked"), g("recovered"), g("delivered"), g("retried"), g("failed"), g("failed_rejected"),
                g("failed_retries_exhausted"), g("dropped"), g("dropped_queue_full"), g("dropped_oldest"),
                g("dropped_shutdown"), g("dropped_spool"), g("deduplicated"), g("persisted"), g("queued"),
                g("spooled"), g("spool_bytes"), g("spool_corrupt"), g("in_flight"), g("waiting_for_contact"), g("blocked"),
                g("rate_limited"), g("rate_limit_wait_ms"), g("auth_paused") != 0L, g("reports_dropped"),
                g("fleet_permit_waits"), g("redis_errors"), g("fleet_fallback_ms"),
                g("contacts_created"),
            )
        }
    }
}
