package dev.trackcore

import java.net.ServerSocket
import java.nio.file.Files
import java.time.Duration
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/**
 * The disk spool once through the Kotlin API: what a shutdown leaves during an
 * outage (a closed port) is delivered by the next tracker on the same
 * `spoolDir` (core/tests/spool.rs and tests/reliability cover the rest).
 */
class SpoolTest {
    private val started = mutableListOf<AutoCloseable>()

    @AfterEach
    fun stop() {
        started.forEach { runCatching { it.close() } }
    }

    @Test
    fun `what a shutdown leaves in the spool is delivered by the next tracker`() {
        val dir = Files.createTempDirectory("trackcore-kotlin-spool")
        val port = ServerSocket(0).use { it.localPort }
        val down = Tracker(
            accessToken = Emulator.TOKEN, baseUrl = "http://127.0.0.1:$port", spoolDir = dir,
            backoffBase = Duration.ofMillis(50), backoffMax = Duration.ofMillis(200), flushAtExit = false,
        ).also { started.add(0, it) }
        for (i in 0 until 100) down.track("spooled", userId = "k-$i")
        assertTrue(down.sync(Duration.ofSeconds(10)))
        assertFalse(down.shutdown(Duration.ofMillis(300)))
        // Counted once the pipeline has stopped: a second shutdown waits for that.
        assertFalse(down.shutdown(Duration.ofSeconds(30)))
        val left = down.stats()
        assertEquals(listOf(100L, 100L, 0L), listOf(left.tracked, left.persisted, left.dropped), "$left")

        val emu = Emulator().also { started += it }
        val t = Tracker(accessToken = Emulator.TOKEN, baseUrl = emu.url, spoolDir = dir, flushAtExit = false)
            .also { started.add(0, it) }
        assertTrue(t.flush(Duration.ofSeconds(30)), "${t.stats()}")
        val s = t.stats()
        assertEquals(listOf(100L, 100L, 0L, 0L), listOf(s.recovered, s.delivered, s.spooled, s.queued), "$s")
        assertTrue(s.balanced(), "$s")
        assertEquals((0 until 100).map { "k-$it" }.toSet(), emu.events().map { it["user_id"] }.toSet())
    }
}
