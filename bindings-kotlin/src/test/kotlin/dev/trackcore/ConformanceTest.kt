package dev.trackcore

import java.io.File
import java.math.BigInteger
import java.time.Duration
import java.time.Instant
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.fail

/**
 * Runs every shared conformance vector (the JSON files under tests/conformance, format in
 * that folder's README) through the public Kotlin API: one memory-mode Tracker
 * per case, each step tracked in order, the recorded body or thrown error code
 * compared with the expectation.
 */
class ConformanceTest {
    private val vectors = File(Repo.root, "tests/conformance")
    private val fieldOrder = listOf("event_name", "created_at", "user_id", "id", "email", "metadata")

    @Suppress("UNCHECKED_CAST")
    private fun cases(): List<Pair<String, Map<String, Any?>>> =
        vectors.listFiles { f -> f.name.endsWith(".json") }!!.sortedBy { it.name }.flatMap { f ->
            val data = Emulator.json.readValue(f, Map::class.java) as Map<String, Any?>
            (data["cases"] as List<Map<String, Any?>>).map { "${f.nameWithoutExtension}::${it["name"]}" to it }
        }

    @Test
    fun `the conformance directory holds at least 60 cases`() {
        assertTrue(cases().size >= 60, "only ${cases().size} cases under $vectors")
    }

    @Test
    fun `every error code the vectors expect is a known core code`() {
        val used = cases().flatMap { (_, c) -> steps(c) }.mapNotNull { (it["expect"] as Map<*, *>)["error"] as String? }.toSet()
        assertTrue(used.isNotEmpty())
        assertTrue(Tracker.ERROR_CODES.containsAll(used), "${used - Tracker.ERROR_CODES.toSet()}")
    }

    @TestFactory
    fun `every conformance vector gives the same body or error as the core`(): List<DynamicTest> =
        cases().map { (name, case) -> DynamicTest.dynamicTest(name) { run(case) } }

    @Suppress("UNCHECKED_CAST")
    private fun steps(case: Map<String, Any?>): List<Map<String, Any?>> =
        (case["steps"] as List<Map<String, Any?>>?) ?: listOf(mapOf("input" to case["input"], "expect" to case["expect"]))

    @Suppress("UNCHECKED_CAST")
    private fun tracker(options: Map<String, Any?>): Tracker {
        var maxEventNames: Int? = null
        var allowed: List<String>? = null
        var unknownContact: UnknownContact? = null
        var unknownContactWait: Duration? = null
        var unknownContactBackoff: Duration? = null
        fun secs(v: Any?) = Duration.ofNanos(((v as Number).toDouble() * 1e9).toLong())
        for ((k, v) in options) when (k) {
            "max_event_names" -> maxEventNames = (v as Number).toInt()
            "allowed_event_names" -> allowed = v as List<String>?
            "unknown_contact" -> unknownContact = UnknownContact.valueOf((v as String).uppercase())
            "unknown_contact_wait" -> unknownContactWait = secs(v)
            "unknown_contact_backoff" -> unknownContactBackoff = secs(v)
            else -> fail("the Kotlin conformance harness does not know option $k yet")
        }
        return Tracker(
            memory = true, maxEventNames = maxEventNames, allowedEventNames = allowed, unknownContact = unknownContact,
            unknownContactWait = unknownContactWait, unknownContactBackoff = unknownContactBackoff, flushAtExit = false,
        )
    }

    @Suppress("UNCHECKED_CAST")
    private fun run(case: Map<String, Any?>) {
        val tracker = tracker((case["options"] as Map<String, Any?>?).orEmpty())
        val problems = mutableListOf<String>()
        tracker.use {
            for ((i, step) in steps(case).withIndex()) {
                val n = i + 1
                val input = step["input"] as Map<String, Any?>
                val expect = step["expect"] as Map<String, Any?>
                val before = Instant.now().epochSecond
                val recordedBefore = tracker.recorded().size
                var error: TrackException? = null
                try {
                    tracker.track(
                        eventName = string(input["event_name"]) as String? ?: "",
                        userId = input["user_id"]?.let { if (it is Number) it else string(it) },
                        id = string(input["id"]) as String?,
                        email = string(input["email"]) as String?,
                        createdAt = input["created_at"]?.let { c ->
                            special(c)?.let { (form, arg) -> if (form == "\$now_plus") before + (arg as Number).toLong() else null } ?: c
                        },
                        metadata = (input["metadata"] as Map<String, Any?>?)?.mapValues { native(it.value) },
                    )
                } catch (e: TrackException) {
                    error = e
                }
                val after = Instant.now().epochSecond
                val recorded = tracker.recorded()
                if ("body" in expect) {
                    when {
                        error != null -> problems += "step $n: threw ${error.code}: ${error.message}"
                        recorded.size != recordedBefore + 1 -> problems += "step $n: recorded ${recorded.size - recordedBefore} bodies"
                        else -> problems += checkBody(recorded.last(), expect["body"] as Map<String, Any?>, before, after).map { "step $n: $it" }
                    }
                } else {
                    if (error == null) {
                        problems += "step $n: expected error ${expect["error"]}, got body ${recorded.lastOrNull()}"
                        continue
                    }
                    if (error.code != expect["error"]) problems += "step $n: threw ${error.code} (${error.message}), expected ${expect["error"]}"
                    if ("field" in expect && error.field != expect["field"]) problems += "step $n: field ${error.field}, expected ${expect["field"]}"
                    if (error !is InvalidEventException) problems += "step $n: ${error.javaClass.simpleName} is not an InvalidEventException"
                    if (recorded.size != recordedBefore) problems += "step $n: an invalid event was recorded"
                }
            }
        }
        if (problems.isNotEmpty()) fail(problems.joinToString("\n"))
    }

    private fun special(v: Any?): Pair<String, Any?>? =
        if (v is Map<*, *> && v.size == 1) (v.entries.first().key as String).let { k -> if (k.startsWith("$")) k to v[k] else null } else null

    private fun string(v: Any?): Any? = special(v)?.let { (form, arg) ->
        check(form == "\$repeat") { "unexpected $form" }
        (arg as List<*>).let { (it[0] as String).repeat((it[1] as Number).toInt()) }
    } ?: v

    /** A vector's metadata value as the Kotlin value a user would pass. */
    private fun native(v: Any?): Any? {
        special(v)?.let { (form, arg) ->
            return when (form) {
                "\$date" -> Instant.ofEpochSecond((arg as Number).toLong())
                "\$money" -> (arg as List<*>).let { Money((it[0] as Number).toLong(), it[1] as String) }
                "\$rich_link" -> (arg as List<*>).let { RichLink(it[0] as String, it[1] as String) }
                "\$float" -> when (arg) { "nan" -> Double.NaN; "inf" -> Double.POSITIVE_INFINITY; "-inf" -> Double.NEGATIVE_INFINITY; else -> (arg as String).toDouble() }
                "\$bigint" -> BigInteger(arg as String)
                "\$repeat" -> string(v)
                else -> fail("unknown special form $form")
            }
        }
        return when (v) {
            is Map<*, *> -> v.entries.associate { (k, x) -> k to native(x) }
            is List<*> -> v.map { native(it) }
            else -> v
        }
    }

    private fun expand(v: Any?): Any? = when {
        special(v)?.first == "\$repeat" -> string(v)
        v is Map<*, *> -> v.entries.associate { (k, x) -> k to expand(x) }
        v is List<*> -> v.map { expand(it) }
        else -> v
    }

    @Suppress("UNCHECKED_CAST")
    private fun checkBody(actual: Map<String, Any?>, expected0: Map<String, Any?>, before: Long, after: Long): List<String> {
        var expected = expand(expected0) as Map<String, Any?>
        val diffs = mutableListOf<String>()
        if (expected["created_at"] == "\$now") {
            val t = (actual["created_at"] as? Number)?.toLong()
            if (t == null || t < before - 5 || t > after + 5) diffs += "created_at: got $t, expected now ($before..$after)"
            expected = expected + ("created_at" to actual["created_at"])
        }
        compare("$", actual, expected, diffs)
        val fields = actual.keys.toList()
        if (fields != fieldOrder.filter { it in actual }) diffs += "field order: $fields"
        val am = (actual["metadata"] as Map<String, Any?>?)?.keys?.toList().orEmpty()
        val em = (expected["metadata"] as Map<String, Any?>?)?.keys?.toList().orEmpty()
        if (diffs.isEmpty() && am != em) diffs += "metadata key order: got $am"
        return diffs
    }

    private fun compare(path: String, actual: Any?, expected: Any?, diffs: MutableList<String>) {
        when {
            expected is Boolean || actual is Boolean -> if (actual != expected) diffs += "$path: got $actual, expected $expected"
            expected is Number && actual is Number -> {
                val same = if (isIntegral(expected) && isIntegral(actual)) BigInteger(expected.toString()) == BigInteger(actual.toString())
                else expected.toDouble() == actual.toDouble()
                if (!same) diffs += "$path: got $actual, expected $expected"
            }
            expected is Map<*, *> && actual is Map<*, *> -> {
                for ((k, ev) in expected) if (k !in actual) diffs += "$path.$k: missing" else compare("$path.$k", actual[k], ev, diffs)
                for (k in actual.keys) if (k !in expected) diffs += "$path.$k: unexpected ${actual[k]}"
            }
            expected is List<*> && actual is List<*> && expected.size == actual.size ->
                expected.indices.forEach { compare("$path[$it]", actual[it], expected[it], diffs) }
            actual != expected -> diffs += "$path: got ${actual.toString().take(120)}, expected ${expected.toString().take(120)}"
        }
    }

    private fun isIntegral(n: Number) = n is Int || n is Long || n is BigInteger || n is Short || n is Byte
}
