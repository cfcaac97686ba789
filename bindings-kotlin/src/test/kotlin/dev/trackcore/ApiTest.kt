package dev.trackcore

import java.lang.reflect.InvocationTargetException
import java.math.BigDecimal
import java.math.BigInteger
import java.time.Duration
import java.time.Instant
import java.time.LocalDate
import java.time.LocalDateTime
import java.time.ZoneOffset
import kotlin.time.Duration.Companion.seconds
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** The Kotlin surface in memory mode: options, conversions, errors, lifecycle. */
class ApiTest {

    private fun snake(camel: String) = camel.replace(Regex("([A-Z])")) { "_" + it.value.lowercase() }

    private val bindingOptions = setOf("on_error", "flush_at_exit", "exit_timeout")

    @Test
    fun `the constructor names every option of the core's describe and nothing else`() {
        val ctor = Tracker::class.java.constructors
            .filter { c -> c.parameterTypes.none { it.name.endsWith("DefaultConstructorMarker") } }
            .maxByOrNull { it.parameterCount }!!
        val names = ctor.parameters.map { assertTrue(it.isNamePresent, "compiled without parameter names"); snake(it.name) }
        val core = Tracker.options().map { it.name }
        assertEquals(core + bindingOptions.toList(), names, "constructor parameters, in the core's order")
    }

    @Test
    fun `the Java builder has a setter for every option of the core`() {
        val setters = Tracker.Builder::class.java.declaredMethods.filter { it.parameterCount == 1 }.map { snake(it.name) }.toSet()
        assertEquals(Tracker.options().map { it.name }.toSet() + bindingOptions, setters)
    }

    @Test
    fun `options and their defaults come from the core`() {
        val opts = Tracker.options().associateBy { it.name }
        assertEquals("\$INTERCOM_ACCESS_TOKEN", opts.getValue("access_token").default)
        assertEquals("drop_newest", opts.getValue("overflow").default)
        assertEquals("float", opts.getValue("request_timeout").kind)
        assertTrue(Tracker.ERROR_CODES.containsAll(listOf("too_many_metadata_keys", "closed", "invalid_config")))
    }

    @Test
    fun `an invalid option is a ConfigException naming the option and the rule`() {
        val e = assertThrows<ConfigException> { Tracker(memory = true, queueCapacity = 0, flushAtExit = false) }
        assertEquals("invalid_config", e.code)
        assertEquals("config.queue_capacity", e.field)
        assertTrue(e.message!!.contains("minimum"), e.message)
        val d = assertThrows<ConfigException> { Tracker(memory = true, blockTimeout = Duration.ofSeconds(-1), flushAtExit = false) }
        assertEquals("config.block_timeout", d.field)
        val u = assertThrows<ConfigException> { Tracker(baseUrl = "ftp://x", accessToken = "t", flushAtExit = false) }
        assertEquals("config.base_url", u.field)
    }

    @Test
    fun `the token never appears in toString or errors`() {
        val secret = "tok_supersecret_123"
        val e = assertThrows<ConfigException> { Tracker(accessToken = secret, baseUrl = "not a url", flushAtExit = false) }
        assertFalse(e.toString().contains(secret))
        Tracker(accessToken = secret, baseUrl = "http://127.0.0.1:9", flushAtExit = false).use { t ->
            assertFalse(t.toString().contains(secret), t.toString())
        }
    }

    @Test
    fun `JVM values become Intercom's types`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            t.track(
                "upgraded-plan", userId = 42L, createdAt = Instant.ofEpochSecond(1_700_000_000),
                metadata = linkedMapOf(
                    "plan" to "pro", "seats" to 5, "big" to 9_000_000_000L, "ratio" to 0.5f, "annual" to true,
                    "gone" to null, "price" to Money(34_999, "eur"), "doc" to RichLink("https://x.org/a", "A"),
                    "renewal_date" to LocalDate.of(2027, 1, 1), "start_date" to Instant.ofEpochSecond(1_767_225_600),
                    "cents" to BigDecimal("10.00"),
                ),
            )
            val body = t.recorded().single()
            assertEquals("42", body["user_id"])
            assertEquals(1_700_000_000L, body["created_at"])
            val m = body["metadata"] as Map<*, *>
            assertEquals(listOf("plan", "seats", "big", "ratio", "annual", "price", "doc", "renewal_date", "start_date", "cents"), m.keys.toList())
            assertEquals(5L, m["seats"])
            assertEquals(9_000_000_000L, m["big"])
            assertEquals(0.5, m["ratio"])
            assertEquals(mapOf("amount" to 34_999L, "currency" to "eur"), m["price"])
            assertEquals(mapOf("url" to "https://x.org/a", "value" to "A"), m["doc"])
            assertEquals(1_798_761_600L, m["renewal_date"])
            assertEquals(10L, m["cents"])
        }
    }

    @Test
    fun `any Unicode crosses intact and generic maps are classified by the core`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            t.track(
                "café ☕", userId = "ü-1", createdAt = 1_700_000_000,
                metadata = linkedMapOf(
                    "emoji" to "😀 \"quoted\" \n", "lone" to "a\uD800b",
                    "price" to mapOf("amount" to 100, "currency" to "eur"),
                    "doc" to mapOf("url" to "https://x.org", "value" to "X"),
                ),
            )
            val body = t.recorded().single()
            assertEquals("café ☕", body["event_name"])
            assertEquals("ü-1", body["user_id"])
            val m = body["metadata"] as Map<*, *>
            assertEquals("😀 \"quoted\" \n", m["emoji"])
            assertEquals("a?b", m["lone"], "an unpaired surrogate is not UTF-8: the JDK's replacement")
            assertEquals(mapOf("amount" to 100L, "currency" to "eur"), m["price"])
            assertEquals(mapOf("url" to "https://x.org", "value" to "X"), m["doc"])
            val deep = assertThrows<InvalidTypeException> { t.track("a", userId = "u", metadata = mapOf("o" to mapOf("a" to mapOf("b" to 1)))) }
            assertEquals("nested_object_not_supported" to "metadata.o", deep.code to deep.field)
        }
    }

    /** A value whose conversion tracks an event of its own, on the same thread. */
    private class Reentrant(val t: Tracker) : CharSequence by "outer-value" {
        override fun toString(): String {
            t.track("inner", userId = "u-2", createdAt = 1_700_000_000, metadata = mapOf("k" to "inner-value"))
            return "outer-value"
        }
    }

    @Test
    fun `a value that tracks while it is converted does not corrupt the event around it`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            t.track("outer", userId = "u-1", createdAt = 1_700_000_000, metadata = mapOf("a" to 1, "k" to Reentrant(t), "z" to 2))
            val bodies = t.recorded().associateBy { it["event_name"] }
            assertEquals(mapOf("k" to "inner-value"), bodies.getValue("inner")["metadata"])
            assertEquals(mapOf("a" to 1L, "k" to "outer-value", "z" to 2L), bodies.getValue("outer")["metadata"])
        }
    }

    @Test
    fun `created_at takes seconds, an Instant, an OffsetDateTime or a LocalDate`() {
        Tracker(memory = true, dedupe = false, flushAtExit = false).use { t ->
            t.track("a", userId = "u", createdAt = 1_700_000_000)
            t.track("a", userId = "u", createdAt = LocalDate.of(2024, 1, 1).atTime(12, 0).atOffset(ZoneOffset.ofHours(2)))
            t.track("a", userId = "u", createdAt = LocalDate.of(2024, 1, 1))
            assertEquals(listOf(1_700_000_000L, 1_704_103_200L, 1_704_067_200L), t.recorded().map { it["created_at"] })
        }
    }

    @Test
    fun `bad values are typed exceptions naming the field and the rule`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            val naive = assertThrows<InvalidTypeException> { t.track("a", userId = "u", metadata = mapOf("when_date" to LocalDateTime.now())) }
            assertEquals("unsupported_type" to "metadata.when_date", naive.code to naive.field)
            val list = assertThrows<InvalidTypeException> { t.track("a", userId = "u", metadata = mapOf("tags" to listOf("x"))) }
            assertEquals("array_not_supported" to "metadata.tags", list.code to list.field)
            val date = assertThrows<InvalidEventException> { t.track("a", userId = "u", metadata = mapOf("signup" to Instant.EPOCH)) }
            assertEquals("date_requires_date_key", date.code)
            assertTrue(date.message!!.contains("signup_date"), date.message)
            val who = assertThrows<InvalidTypeException> { t.track("a", userId = 1.5) }
            assertEquals("unsupported_type" to "user_id", who.code to who.field)
            val none = assertThrows<InvalidEventException> { t.track("a") }
            assertEquals("missing_identity", none.code)
            val big = assertThrows<InvalidEventException> { t.track("a", userId = "u", metadata = mapOf("n" to BigInteger.TEN.pow(30))) }
            assertEquals("number_out_of_range" to "metadata.n", big.code to big.field)
            val ms = assertThrows<InvalidEventException> { t.track("a", userId = "u", createdAt = System.currentTimeMillis()) }
            assertEquals("created_at_in_future", ms.code)
            assertTrue(t.recorded().isEmpty())
        }
    }

    @Test
    fun `a null event name from Java is missing_event_name, not a NullPointerException`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            val m = Tracker::class.java.getMethod("track", String::class.java, Any::class.java)
            val e = assertThrows<InvocationTargetException> { m.invoke(t, null, "u-1") }
            val cause = e.cause as InvalidEventException
            assertEquals("missing_event_name" to "event_name", cause.code to cause.field)
        }
    }

    @Test
    fun `memory mode runs the real pipeline with de-duplication and balanced stats`() {
        Tracker(memory = true, flushAtExit = false).use { t ->
            repeat(3) { t.track("signed-up", email = "a@b.co", createdAt = 1_700_000_000) }
            t.track(Event("upgraded-plan").userId("u-1").meta("plan", "pro"))
            assertEquals(listOf("signed-up", "upgraded-plan"), t.recorded().map { it["event_name"] })
            assertTrue(t.flush(5.seconds))
            val s = t.stats()
            assertEquals(4, s.tracked)
            assertEquals(2, s.deduplicated)
            assertEquals(2, s.delivered)
            assertTrue(s.balanced(), "$s")
            t.clearRecorded()
            assertTrue(t.recorded().isEmpty())
            assertTrue(t.recordedJson().isEmpty())
        }
    }

    @Test
    fun `after close track throws TrackerClosedException and close is idempotent`() {
        val t = Tracker(memory = true, flushAtExit = false)
        t.track("a", userId = "u")
        t.close()
        t.close()
        assertTrue(t.shutdown(Duration.ofSeconds(5)), "a second shutdown has nothing to give up")
        val e = assertThrows<TrackerClosedException> { t.track("a", userId = "u") }
        assertEquals("closed", e.code)
        assertEquals(1, t.stats().tracked)
    }

    @Test
    fun `the builder builds the same tracker for Java callers`() {
        Tracker.builder().memory(true).maxEventNames(1).flushAtExit(false).build().use { t ->
            t.track("one", "u-1")
            val e = assertThrows<InvalidEventException> { t.track("two", "u-1") }
            assertEquals("event_name_limit_reached", e.code)
            assertTrue(t.memory)
        }
    }

    @Test
    fun `the core's log lines go to SLF4J when it is on the classpath`() {
        assertTrue(Logging.usesSlf4j)
    }
}
