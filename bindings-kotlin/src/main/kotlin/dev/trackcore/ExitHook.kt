package dev.trackcore

import java.util.Collections
import java.util.WeakHashMap

/**
 * The JVM shutdown hook: shuts down every live tracker that asked for it
 * (`flushAtExit`, the default), each within its `exitTimeout`, then tells the
 * native side to make no more calls into the JVM. Trackers are held weakly: an
 * unreachable one is shut down by its own cleaner (within `drop_timeout`).
 *
 * The registry's lock is held only to add, remove or copy entries, never
 * across a shutdown.
 */
internal object ExitHook {
    private val live: MutableMap<Tracker, Unit> = Collections.synchronizedMap(WeakHashMap())

    private val hook: Unit by lazy {
        Runtime.getRuntime().addShutdownHook(Thread(::run, "trackcore-exit"))
    }

    fun register(t: Tracker) {
        hook
        live[t] = Unit
    }

    fun unregister(t: Tracker) {
        live.remove(t)
    }

    private fun run() {
        val trackers = synchronized(live) { live.keys.toList() }
        for (t in trackers) {
            try {
                t.shutdownAtExit()
            } catch (e: Throwable) {
                Logging.log(dev.trackcore.ffi.FfiLogLevel.WARN, "trackcore: shutdown at exit failed: $e")
            }
        }
        try {
            dev.trackcore.ffi.setExiting()
        } catch (_: Throwable) {
        }
    }
}
