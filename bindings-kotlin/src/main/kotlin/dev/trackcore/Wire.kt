package dev.trackcore

import com.sun.jna.Native
import java.math.BigDecimal
import java.math.BigInteger
import java.time.Instant
import java.time.LocalDate
import java.time.LocalDateTime
import java.time.OffsetDateTime
import java.time.ZonedDateTime

/**
 * The hot path of `track()`: the event written as bytes (the format `Wire`
 * in `src/lib.rs` reads: little-endian, strings as u32 length + UTF-8) and
 * passed through one JNA direct-mapped function of primitives. UniFFI's
 * generated path allocates JNA `Structure`s per call, which costs more than
 * the core's whole `track()`; this path allocates nothing once warm (a
 * reusable buffer per thread). Pure conversion, as [Convert]: every rule is
 * the core's.
 */
internal class Wire {
    private var buf = ByteArray(512)
    private var pos = 0

    val bytes: ByteArray get() = buf
    val length: Int get() = pos

    private fun room(n: Int) {
        if (pos + n > buf.size) buf = buf.copyOf(maxOf(buf.size * 2, pos + n))
    }

    private fun u8(v: Int) {
        room(1)
        buf[pos++] = v.toByte()
    }

    private fun u32(v: Int) {
        room(4)
        buf[pos] = v.toByte(); buf[pos + 1] = (v ushr 8).toByte(); buf[pos + 2] = (v ushr 16).toByte(); buf[pos + 3] = (v ushr 24).toByte()
        pos += 4
    }

    private fun i64(v: Long) {
        room(8)
        for (i in 0 until 8) buf[pos + i] = (v ushr (8 * i)).toByte()
        pos += 8
    }

    private fun str(s: String) {
        val n = s.length
        room(4 + n)
        val start = pos + 4
        var i = 0
        // ASCII straight in; anything else through the JDK's UTF-8 encoder.
        while (i < n) {
            val c = s[i]
            if (c.code >= 0x80) break
            buf[start + i] = c.code.toByte()
            i++
        }
        if (i == n) {
            u32(n)
            pos += n
        } else {
            val b = s.toByteArray(Charsets.UTF_8)
            u32(b.size)
            room(b.size)
            System.arraycopy(b, 0, buf, pos, b.size)
            pos += b.size
        }
    }

    private fun optStr(s: String?) {
        if (s == null) u8(0) else { u8(1); str(s) }
    }

    fun event(eventName: String, userId: String?, id: String?, email: String?, createdAt: Long?, metadata: Map<*, *>?) {
        pos = 0
        str(eventName)
        optStr(userId)
        optStr(id)
        optStr(email)
        if (createdAt == null) u8(0) else { u8(1); i64(createdAt) }
        if (metadata == null) {
            u32(0)
            return
        }
        u32(metadata.size)
        for ((k, v) in metadata) {
            if (k !is String) {
                throw InvalidTypeException("metadata: keys must be Strings, got ${Convert.typeName(k)}", "invalid_metadata_key", "metadata")
            }
            str(k)
            value(v, nested = false)
        }
    }

    private fun value(v: Any?, nested: Boolean) {
        when (v) {
            null -> u8(0)
            is String -> { u8(1); str(v) }
            is Int -> { u8(2); i64(v.toLong()) }
            is Long -> { u8(2); i64(v) }
            is Boolean -> { u8(4); u8(if (v) 1 else 0) }
            is Double -> { u8(3); i64(v.toRawBits()) }
            is Short -> { u8(2); i64(v.toLong()) }
            is Byte -> { u8(2); i64(v.toLong()) }
            is Float -> { u8(3); i64(v.toDouble().toRawBits()) }
            is BigInteger -> if (v.bitLength() < 64) { u8(2); i64(v.toLong()) } else { u8(11); str(v.toString()) }
            is BigDecimal -> bigDecimal(v)
            is UInt -> { u8(2); i64(v.toLong()) }
            is UShort -> { u8(2); i64(v.toLong()) }
            is UByte -> { u8(2); i64(v.toLong()) }
            is ULong -> if (v <= Long.MAX_VALUE.toULong()) { u8(2); i64(v.toLong()) } else { u8(11); str(v.toString()) }
            is CharSequence -> { u8(1); str(v.toString()) }
            is Char -> { u8(1); str(v.toString()) }
            is Money -> if (nested) unsupported(v) else { u8(6); i64(v.amountCents); str(v.currency) }
            is RichLink -> if (nested) unsupported(v) else { u8(7); str(v.url); str(v.value) }
            is Instant -> if (nested) unsupported(v) else date(v.epochSecond)
            is OffsetDateTime -> if (nested) unsupported(v) else date(v.toEpochSecond())
            is ZonedDateTime -> if (nested) unsupported(v) else date(v.toEpochSecond())
            is LocalDate -> if (nested) unsupported(v) else date(v.toEpochDay() * 86_400)
            is java.util.Date -> if (nested) unsupported(v) else date(Math.floorDiv(v.time, 1000L))
            is LocalDateTime -> { u8(9); str(Convert.NAIVE) }
            is Map<*, *> -> if (nested) unsupported(v) else {
                u8(8)
                u32(v.size)
                for ((k, x) in v) {
                    str(k.toString())
                    value(x, nested = true)
                }
            }
            is Collection<*> -> { u8(10); u32(v.size) }
            is Array<*> -> { u8(10); u32(v.size) }
            is IntArray, is LongArray, is DoubleArray, is FloatArray, is ShortArray, is BooleanArray, is CharArray -> { u8(10); u32(0) }
            else -> unsupported(v)
        }
    }

    private fun date(secs: Long) {
        u8(5)
        i64(secs)
    }

    private fun unsupported(v: Any) {
        u8(9)
        str(Convert.typeName(v))
    }

    /** Integral and in range: an integer; otherwise a float (as Python's `Decimal`). */
    private fun bigDecimal(v: BigDecimal) {
        if (v.signum() == 0 || v.stripTrailingZeros().scale() <= 0) {
            val i = v.toBigInteger()
            if (i.bitLength() < 64) {
                u8(2)
                i64(i.toLong())
                return
            }
        }
        u8(3)
        i64(v.toDouble().toRawBits())
    }

    private var inUse = false

    companion object {
        private const val KEEP = 64 * 1024
        private val perThread = ThreadLocal.withInitial { Wire() }

        /**
         * This thread's buffer, or a fresh one if it is in use (a metadata
         * value whose `toString()` or map iteration tracks an event itself).
         */
        fun get(): Wire {
            val w = perThread.get()
            if (w.inUse) return Wire()
            w.inUse = true
            return w
        }

        /** Hand the buffer back (one that grew past 64 KiB for a large event is not kept that large). */
        fun release(w: Wire) {
            w.inUse = false
            if (w.buf.size > KEEP) w.buf = ByteArray(512)
        }
    }
}

/** `trackcore_kotlin_track` from the library UniFFI's bindings loaded, direct-mapped by JNA. */
internal object FastPath {
    init {
        // Exactly the call UniFFI's bindings make (name and this class loader), so JNA
        // returns the library instance it already loaded. A second instance (JNA
        // extracts a library from a jar afresh for each distinct load) would have
        // statics and thread-locals of its own.
        Native.register(
            FastPath::class.java,
            // The name UniFFI's bindings load (and its override property).
            System.getProperty("uniffi.component.trackcore_kotlin.libraryOverride") ?: "trackcore_kotlin",
        )
    }

    /** 0: queued; 1: refused (see `takeTrackError()`); 2: the call itself failed. */
    external fun trackcore_kotlin_track(handle: Long, data: ByteArray, len: Int): Int

    /** The same crossing doing nothing (for the benchmark). */
    external fun trackcore_kotlin_probe(handle: Long, data: ByteArray, len: Int): Int
}
