package dev.trackcore

import ch.qos.logback.classic.Logger
import ch.qos.logback.classic.spi.ILoggingEvent
import ch.qos.logback.core.read.ListAppender
import java.time.Duration
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.slf4j.LoggerFactory

/**
 * The binding against the emulator over real HTTP. Tests wait on the
 * emulator's gate and wait endpoints, never on sleeps; bounds are asserted
 * with generous slack for a loaded 2-core machine.
 */
class DeliveryTest {
    private val started = mutableListOf<AutoCloseable>()
    private val slack = Duration.ofSeconds(3)

    private fun emulator(vararg args: String) = Emulator(*args).also { started += it }

    private fun tracker(emu: Emulator, onError: ErrorListener? = null, backoffBase: Duration? = null, maxInFlight: Int? = null) =
        Tracker(
            accessToken = Emulator.TOKEN, baseUrl = emu.url, onError = onError, backoffBase = backoffBase,
            maxInFlight = maxInFlight, flushAtExit = false,
        ).also { started.add(0, it) }

    @AfterEach
    fun stop() {
        started.forEach { runCatching { it.close() } }
    }

    private class Reports : ErrorListener {
        val q = LinkedBlockingQueue<Pair<FailedEvent, TrackException>>()
        override fun onError(event: FailedEvent, error: TrackException) {
            q.add(event to error)
        }
    }

    @Test
    fun `tracked events arrive with their exact bodies and the JVM user agent`() {
        val emu = emulator()
        val t = tracker(emu)
        t.track("upgraded-plan", userId = "u-1", createdAt = 1_700_000_000, metadata = mapOf("plan" to "pro", "price" to Money(100, "usd")))
        t.track("read-article", email = "r@example.com", metadata = mapOf("doc" to RichLink("https://example.org", "Docs")))
        assertTrue(t.flush(Duration.ofSeconds(20)))
        assertTrue(emu.waitEvents(2))
        val events = emu.events()
        assertEquals(listOf("upgraded-plan", "read-article"), events.map { it["event_name"] }.sortedByDescending { it == "upgraded-plan" })
        val first = events.first { it["event_name"] == "upgraded-plan" }
        assertEquals(mapOf("plan" to "pro", "price" to mapOf("amount" to 100, "currency" to "usd")), first["metadata"])
        assertTrue((first["headers"] as Map<*, *>)["user-agent"].toString().contains("jvm/"), "${first["headers"]}")
        val s = t.stats()
        assertEquals(2, s.delivered)
        assertTrue(s.balanced(), "$s")
    }

    @Test
    fun `a 503 is retried and then delivered`() {
        val emu = emulator()
        emu.script(mapOf("status" to 503))
        val t = tracker(emu, backoffBase = Duration.ofMillis(10))
        t.track("e", userId = "u-1")
        assertTrue(t.flush(Duration.ofSeconds(20)))
        val s = t.stats()
        assertEquals(1, s.delivered)
        assertTrue(s.retried >= 1, "$s")
        assertEquals(1, emu.bodies().size)
    }

    @Test
    fun `a permanent 400 reaches the listener with Intercom's status and code, before flush returns`() {
        val emu = emulator()
        emu.script(mapOf("status" to 400, "code" to "parameter_invalid", "message" to "bad"))
        val reports = Reports()
        val t = tracker(emu, onError = reports)
        t.track("refused", userId = "u-1")
        assertTrue(t.flush(Duration.ofSeconds(20)))
        val (event, error) = reports.q.poll() ?: error("no report reached the listener before flush returned")
        assertTrue(error is DeliveryException)
        assertEquals("rejected", error.code)
        assertEquals(400, error.status)
        assertTrue(error.message!!.contains("parameter_invalid"), error.message)
        assertEquals("refused", event.eventName)
        assertEquals("u-1", event.body["user_id"])
        assertEquals(1, t.stats().failedRejected)
    }

    @Test
    fun `a listener that throws does not stop delivery`() {
        val emu = emulator()
        emu.script(mapOf("status" to 400))
        val calls = LinkedBlockingQueue<String>()
        val t = tracker(emu, onError = { e, _ -> calls.add(e.eventName!!); throw IllegalStateException("listener bug") })
        t.track("first", userId = "u-1")
        assertTrue(t.flush(Duration.ofSeconds(20)))
        t.track("second", userId = "u-1")
        assertTrue(t.flush(Duration.ofSeconds(20)))
        assertEquals(listOf("first"), calls.toList())
        val s = t.stats()
        assertEquals(1, s.delivered)
        assertEquals(1, s.failed)
    }

    @Test
    fun `flush returns false within its bound while a request is held, true once it is answered`() {
        val emu = emulator()
        emu.hold()
        val t = tracker(emu)
        t.track("held", userId = "u-1")
        assertTrue(emu.waitHeld(1))
        val start = System.nanoTime()
        assertFalse(t.flush(Duration.ofMillis(200)))
        val took = Duration.ofNanos(System.nanoTime() - start)
        assertTrue(took < Duration.ofMillis(200) + slack, "flush(200 ms) took $took")
        assertEquals(1, t.stats().inFlight)
        emu.open()
        assertTrue(t.flush(Duration.ofSeconds(20)))
        assertEquals(1, t.stats().delivered)
    }

    @Test
    fun `shutdown returns within its bound and reports what it gave up`() {
        val emu = emulator()
        emu.hold()
        val reports = Reports()
        val t = tracker(emu, onError = reports)
        t.track("held", userId = "u-1")
        assertTrue(emu.waitHeld(1))
        val start = System.nanoTime()
        // The last fifth of the bound (200 ms) is the report's time to reach the
        // listener through JNA: room for a loaded machine, still a tight bound.
        assertFalse(t.shutdown(Duration.ofSeconds(1)))
        val took = Duration.ofNanos(System.nanoTime() - start)
        assertTrue(took < Duration.ofSeconds(1) + slack, "shutdown(1 s) took $took")
        val (_, error) = reports.q.poll() ?: error("the give-up report did not reach the listener before shutdown returned")
        assertEquals("undelivered_at_shutdown", error.code)
        assertEquals(1, t.stats().droppedShutdown)
        assertThrows<TrackerClosedException> { t.track("late", userId = "u-1") }
        emu.open()
    }

    @Test
    fun `many threads tracking at once lose nothing`() {
        val emu = emulator()
        val t = tracker(emu, maxInFlight = 8)
        val threads = 8
        val each = 150
        val go = CountDownLatch(1)
        val workers = (0 until threads).map { n ->
            Thread {
                go.await()
                repeat(each) { i -> t.track("burst", userId = "u-$n-$i", metadata = mapOf("i" to i)) }
            }.apply { start() }
        }
        go.countDown()
        workers.forEach { it.join(TimeUnit.MINUTES.toMillis(2)) }
        assertTrue(t.flush(Duration.ofSeconds(60)), "${t.stats()}")
        assertTrue(emu.waitEvents(threads * each))
        val s = t.stats()
        assertEquals((threads * each).toLong(), s.tracked)
        assertEquals((threads * each).toLong(), s.delivered)
        assertTrue(s.balanced(), "$s")
        assertEquals(threads * each, emu.bodies().map { it["user_id"] }.toSet().size)
    }

    @Test
    fun `the core's log lines reach SLF4J's trackcore logger`() {
        val appender = ListAppender<ILoggingEvent>().apply { start() }
        val logger = LoggerFactory.getLogger("trackcore") as Logger
        logger.addAppender(appender)
        try {
            val emu = emulator()
            emu.script(mapOf("status" to 400))
            val t = tracker(emu)
            t.track("refused", userId = "u-1")
            assertTrue(t.flush(Duration.ofSeconds(20)))
            val lines = appender.list.toList().map { it.level.toString() + " " + it.formattedMessage }
            assertTrue(lines.any { it.startsWith("WARN") && it.contains("refused") && it.contains("[rejected]") }, "$lines")
        } finally {
            logger.detachAppender(appender)
        }
    }
}
