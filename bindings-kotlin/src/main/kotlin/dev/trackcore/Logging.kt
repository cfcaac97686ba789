package dev.trackcore

import dev.trackcore.ffi.FfiLogLevel
import dev.trackcore.ffi.LogSink

/**
 * Where the core's log lines (target `trackcore`: one line per change in
 * delivery's state) and the binding's own warnings go: SLF4J's `trackcore`
 * logger when SLF4J is on the classpath, else `System.Logger` (by default
 * `java.util.logging`). Installed once per process, on the first tracker.
 */
internal object Logging {
    private interface Backend {
        fun log(level: FfiLogLevel, message: String, t: Throwable? = null)
        fun maxLevel(): FfiLogLevel
    }

    private class Slf4j : Backend {
        private val logger = org.slf4j.LoggerFactory.getLogger("trackcore")

        override fun log(level: FfiLogLevel, message: String, t: Throwable?) = when (level) {
            FfiLogLevel.ERROR -> logger.error(message, t)
            FfiLogLevel.WARN -> logger.warn(message, t)
            FfiLogLevel.INFO -> logger.info(message, t)
            FfiLogLevel.DEBUG -> logger.debug(message, t)
            FfiLogLevel.TRACE -> logger.trace(message, t)
        }

        override fun maxLevel(): FfiLogLevel = when {
            logger.isTraceEnabled -> FfiLogLevel.TRACE
            logger.isDebugEnabled -> FfiLogLevel.DEBUG
            else -> FfiLogLevel.INFO
        }
    }

    private class Jdk : Backend {
        private val logger = System.getLogger("trackcore")

        private fun of(level: FfiLogLevel) = when (level) {
            FfiLogLevel.ERROR -> System.Logger.Level.ERROR
            FfiLogLevel.WARN -> System.Logger.Level.WARNING
            FfiLogLevel.INFO -> System.Logger.Level.INFO
            FfiLogLevel.DEBUG -> System.Logger.Level.DEBUG
            FfiLogLevel.TRACE -> System.Logger.Level.TRACE
        }

        override fun log(level: FfiLogLevel, message: String, t: Throwable?) {
            if (t == null) logger.log(of(level), message) else logger.log(of(level), message, t)
        }

        override fun maxLevel(): FfiLogLevel = when {
            logger.isLoggable(System.Logger.Level.TRACE) -> FfiLogLevel.TRACE
            logger.isLoggable(System.Logger.Level.DEBUG) -> FfiLogLevel.DEBUG
            else -> FfiLogLevel.INFO
        }
    }

    private val backend: Backend = try {
        Class.forName("org.slf4j.LoggerFactory", false, Logging::class.java.classLoader)
        Slf4j()
    } catch (_: Throwable) {
        Jdk()
    }

    /** Whether log lines go to SLF4J (else `System.Logger`). */
    val usesSlf4j: Boolean get() = backend is Slf4j

    /** The sink handed to the core; called on trackcore's threads, so it never throws. */
    private object Sink : LogSink {
        override fun log(level: FfiLogLevel, target: String, message: String) = Logging.log(level, message)
    }

    private val installed: Unit by lazy {
        dev.trackcore.ffi.installLogSink(Sink, backend.maxLevel())
        Unit
    }

    fun install() = installed

    fun log(level: FfiLogLevel, message: String, t: Throwable? = null) {
        try {
            backend.log(level, message, t)
        } catch (_: Throwable) {
            // A broken logging setup must not take a core thread down with it.
        }
    }
}
