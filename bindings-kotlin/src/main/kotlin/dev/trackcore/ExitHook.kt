package dev.trackcore

import dev.trackcore.ffi.NativeTracker
import java.time.Duration
import java.util.concurrent.ConcurrentHashMap

/**
 * The JVM shutdown hook: shuts down every tracker not shut down yet, each
 * within its `exitTimeout` (at once with `flushAtExit = false`), then tells
 * the native side to make no more calls into the JVM.
 *
 * Entries hold the native tracker strongly until `shutdown()`/`close()`:
 * a tracker kept in a local of `main` is unreachable once `main` returns,
 * and its queued events must still be delivered at exit. No lock is taken.
 */
internal object ExitHook {
    class Entry(val native: NativeTracker, val timeout: Duration)

    private val live: MutableSet<Entry> = ConcurrentHashMap.newKeySet()

    private val hook: Unit by lazy {
        Runtime.getRuntime().addShutdownHook(Thread(::run, "trackcore-exit"))
    }

    fun register(e: Entry) {
        hook
        live.add(e)
    }

    fun unregister(e: Entry) {
        live.remove(e)
    }

    private fun run() {
        for (e in live.toList()) {
            try {
                e.native.shutdown(Convert.seconds(e.timeout))
            } catch (t: Throwable) {
                Logging.log(dev.trackcore.ffi.FfiLogLevel.WARN, "trackcore: shutdown at exit failed: $t")
            }
        }
        try {
            dev.trackcore.ffi.setExiting()
        } catch (_: Throwable) {
        }
    }
}
