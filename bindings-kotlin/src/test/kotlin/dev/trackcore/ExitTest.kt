package dev.trackcore

import java.io.File
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/**
 * A separate JVM (this test's classpath) tracks events and returns from
 * `main` without calling shutdown: the shutdown hook flushes them, so every
 * event is stored by the emulator by the time the process has exited.
 */
class ExitTest {
    private fun runChild(vararg args: String): Pair<Int, String> {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val proc = ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), ExitChild::class.java.name, *args)
            .redirectErrorStream(true).start()
        val out = proc.inputStream.bufferedReader().readText()
        assertTrue(proc.waitFor(2, TimeUnit.MINUTES), "child did not exit: $out")
        return proc.exitValue() to out
    }

    @Test
    fun `a JVM that exits after tracking has delivered every event`() {
        Emulator().use { emu ->
            val (code, out) = runChild(emu.url, "200")
            assertEquals(0, code, out)
            assertTrue(out.contains("child: tracked 200"), out)
            assertEquals(200, (emu.stats()["stored"] as Number).toInt(), out)
        }
    }

    @Test
    fun `a JVM that opted out of the exit flush still exits promptly`() {
        Emulator().use { emu ->
            emu.hold()
            val start = System.nanoTime()
            val (code, out) = runChild(emu.url, "5", "no-flush")
            assertEquals(0, code, out)
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(60), out)
            emu.open()
        }
    }
}

/** The child process of [ExitTest]. */
object ExitChild {
    @JvmStatic
    fun main(args: Array<String>) {
        val n = args[1].toInt()
        trackAndForget(args[0], n, flush = args.getOrNull(2) != "no-flush")
        // The tracker is unreachable now: the exit flush must not depend on it staying alive.
        System.gc()
        println("child: tracked $n")
    }

    private fun trackAndForget(url: String, n: Int, flush: Boolean) {
        val t = Tracker(accessToken = Emulator.TOKEN, baseUrl = url, flushAtExit = flush, exitTimeout = java.time.Duration.ofSeconds(60))
        repeat(n) { t.track("exit-test", userId = "u-$it", metadata = mapOf("i" to it)) }
    }
}
