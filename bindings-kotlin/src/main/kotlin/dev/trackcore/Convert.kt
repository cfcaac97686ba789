package dev.trackcore

import dev.trackcore.ffi.FfiOption
import dev.trackcore.ffi.FfiOptionValue
import java.math.BigInteger
import java.time.Duration
import java.time.Instant
import java.time.LocalDate
import java.time.LocalDateTime
import java.time.OffsetDateTime
import java.time.ZonedDateTime

/**
 * JVM values → the FFI's values (options, identifiers, `created_at`;
 * metadata is written by [Wire]). Pure conversion: every rule about what
 * Intercom accepts is the core's, applied when it prepares the event. Values
 * the binding cannot express go to the core as `Unsupported` so its error order
 * (name, identity, created_at, metadata in key order) is the same in every language.
 */
internal object Convert {
    const val NAIVE = "LocalDateTime (a date-time without a zone is ambiguous; use Instant, OffsetDateTime or ZonedDateTime)"
    private val LONG_MIN = BigInteger.valueOf(Long.MIN_VALUE)
    private val LONG_MAX = BigInteger.valueOf(Long.MAX_VALUE)

    /** `user_id` (a String or an integer, sent as text), `id`, `email` (Strings). */
    fun identifier(field: String, v: Any?, allowInt: Boolean): String? = when {
        v == null -> null
        v is String -> v
        allowInt && (v is Long || v is Int || v is Short || v is Byte || v is BigInteger) -> v.toString()
        allowInt && (v is ULong || v is UInt) -> v.toString()
        else -> throw InvalidTypeException(
            "$field: must be ${if (allowInt) "a String or an integer" else "a String"}, got ${typeName(v)}",
            "unsupported_type", field,
        )
    }

    /** `created_at`: Unix seconds (an integer) or a point in time. */
    fun createdAt(v: Any?): Long? = when (v) {
        null -> null
        is Long -> v
        is Int -> v.toLong()
        is Short -> v.toLong()
        is Byte -> v.toLong()
        is Instant -> v.epochSecond
        is OffsetDateTime -> v.toEpochSecond()
        is ZonedDateTime -> v.toEpochSecond()
        is LocalDate -> v.toEpochDay() * 86_400
        is java.util.Date -> Math.floorDiv(v.time, 1000L)
        is BigInteger -> if (v in LONG_MIN..LONG_MAX) v.toLong() else throw InvalidEventException(
            "created_at: integer does not fit in 64 bits; it must be Unix seconds (UTC)", "number_out_of_range", "created_at",
        )
        is LocalDateTime -> throw InvalidTypeException(
            "created_at: a LocalDateTime is ambiguous; pass an Instant, an OffsetDateTime or Unix seconds",
            "unsupported_type", "created_at",
        )
        else -> throw InvalidTypeException(
            "created_at: must be Unix seconds (Long) or an Instant, OffsetDateTime, ZonedDateTime or LocalDate, got ${typeName(v)}",
            "unsupported_type", "created_at",
        )
    }

    fun typeName(v: Any?): String = when (v) {
        null -> "null"
        else -> v.javaClass.kotlin.qualifiedName ?: v.javaClass.name
    }

    /** An option the caller gave → the core's option value (set by name through `Config::set`). */
    fun option(name: String, v: Any): FfiOption = FfiOption(
        name,
        when (v) {
            is String -> FfiOptionValue.Text(v)
            is java.nio.file.Path -> FfiOptionValue.Text(v.toString())
            is Region -> FfiOptionValue.Text(v.option)
            is Overflow -> FfiOptionValue.Text(v.option)
            is RateLimiter -> FfiOptionValue.Text(v.option)
            is UnknownContact -> FfiOptionValue.Text(v.option)
            is Boolean -> FfiOptionValue.Flag(v)
            is Int -> FfiOptionValue.Integer(v.toLong())
            is Long -> FfiOptionValue.Integer(v)
            is Duration -> FfiOptionValue.Real(seconds(v))
            is Collection<*> -> FfiOptionValue.Names(v.map { it.toString() })
            else -> throw ConfigException("config.$name: values of type ${typeName(v)} are not accepted", "invalid_config", "config.$name")
        },
    )

    /** A `Duration` as seconds, negative ones kept so the core can refuse them by name. */
    fun seconds(d: Duration): Double = d.seconds.toDouble() + d.nano / 1e9
}
