package dev.trackcore

import java.time.Duration
import java.util.concurrent.LinkedBlockingQueue
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/**
 * Events of contacts Intercom does not know yet (404 "User Not Found"): the
 * core's `unknown_contact` scenario once through the Kotlin API, against the
 * emulator run with `--require-known-users` (core/tests/contacts.rs and the
 * Python suite cover every mode).
 */
class ContactsTest {
    private val started = mutableListOf<AutoCloseable>()

    @AfterEach
    fun stop() {
        started.forEach { runCatching { it.close() } }
    }

    @Test
    fun `unknownContact CREATE makes each new contact once and delivers every event`() {
        val emu = Emulator("--require-known-users").also { started += it }
        val errors = LinkedBlockingQueue<String>()
        val t = Tracker(
            accessToken = Emulator.TOKEN, baseUrl = emu.url, unknownContact = UnknownContact.CREATE,
            unknownContactBackoff = Duration.ofMillis(100), backoffBase = Duration.ofMillis(50),
            backoffMax = Duration.ofMillis(200), onError = { _, e -> errors.add(e.code) }, flushAtExit = false,
        ).also { started.add(0, it) }
        for (i in 0 until 200) {
            t.track("signed-up", userId = "new-${i % 10}", createdAt = 1_700_000_000L + i)
        }
        assertTrue(t.flush(Duration.ofSeconds(30)), "${t.stats()}")
        val s = t.stats()
        assertEquals(listOf(200L, 0L, 0L, 0L, 10L), listOf(s.delivered, s.failed, s.waitingForContact, s.queued, s.contactsCreated), "$s")
        assertTrue(s.balanced(), "$s")
        assertEquals(emptyList<String>(), errors.toList())
        assertEquals((0 until 10).map { "new-$it" }.toSet(), emu.contacts().map { it["external_id"] }.toSet())
        assertEquals(10, emu.contacts().size)
        assertEquals(200, emu.events().size)
    }

    @Test
    fun `a bad unknownContact value is a ConfigException naming the option`() {
        val e = assertThrows<ConfigException> {
            Tracker.builder().memory(true).unknownContactWait(Duration.ofSeconds(-1)).build()
        }
        assertEquals("invalid_config", e.code)
        assertEquals("config.unknown_contact_wait", e.field)
    }
}
