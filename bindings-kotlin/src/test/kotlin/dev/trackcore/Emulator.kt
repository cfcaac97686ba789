package dev.trackcore

import com.fasterxml.jackson.databind.ObjectMapper
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration

/** The repository root and the emulator binary (set by Surefire from pom.xml). */
object Repo {
    val root: File = File(System.getProperty("trackcore.repo") ?: "..").canonicalFile
    val emulatorBinary: File = File(System.getProperty("trackcore.emulator") ?: "${root}/target/release/trackcore-emulator")
}

/**
 * A running `trackcore-emulator` process on 127.0.0.1 and its test endpoints.
 * Tests synchronise on its gate and wait endpoints (answered the moment the
 * condition holds), never on sleeps.
 */
class Emulator(vararg args: String) : AutoCloseable {
    companion object {
        const val TOKEN = "test-token"
        val json = ObjectMapper()
        private val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build()
    }

    private val proc: Process
    val url: String

    init {
        check(Repo.emulatorBinary.exists()) {
            "emulator binary not found at ${Repo.emulatorBinary}: build it with `cargo build --release -p trackcore-emulator`"
        }
        val cmd = listOf(Repo.emulatorBinary.path, "--port", "0", "--token", TOKEN, "--exit-on-stdin-close", "--rate-limit-per-minute", "0") + args
        proc = ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        val line = proc.inputStream.bufferedReader().readLine() ?: ""
        val prefix = "trackcore-emulator listening on "
        if (!line.startsWith(prefix)) {
            close()
            error("emulator did not start: $line")
        }
        url = line.removePrefix(prefix).trim()
    }

    private fun call(method: String, path: String, body: Any? = null, timeout: Duration = Duration.ofSeconds(20)): HttpResponse<String> {
        val pub = if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(json.writeValueAsString(body))
        val req = HttpRequest.newBuilder(URI.create(url + path)).timeout(timeout)
            .header("Content-Type", "application/json").method(method, pub).build()
        return http.send(req, HttpResponse.BodyHandlers.ofString())
    }

    private fun ok(method: String, path: String, body: Any? = null): Any? {
        val r = call(method, path, body)
        check(r.statusCode() in 200..299) { "$method $path: ${r.statusCode()} ${r.body()}" }
        return if (r.body().isEmpty()) null else json.readValue(r.body(), Any::class.java)
    }

    /** Every stored event: the body as received plus `headers`, `received_at`. */
    @Suppress("UNCHECKED_CAST")
    fun events(): List<Map<String, Any?>> = ok("GET", "/__emulator/events") as List<Map<String, Any?>>

    /** The stored bodies only. */
    @Suppress("UNCHECKED_CAST")
    fun bodies(): List<Map<String, Any?>> = events().map { (it["body"] ?: it) as Map<String, Any?> }

    @Suppress("UNCHECKED_CAST")
    fun stats(): Map<String, Any?> = ok("GET", "/__emulator/stats") as Map<String, Any?>

    /** Every contact the emulator knows (`external_id`, `email`, `id`, ...). */
    @Suppress("UNCHECKED_CAST")
    fun contacts(): List<Map<String, Any?>> = ok("GET", "/__emulator/contacts") as List<Map<String, Any?>>

    /** Answer the next POST /events with these responses, in order. */
    fun script(vararg responses: Map<String, Any?>) {
        ok("POST", "/__emulator/script", responses.toList())
    }

    /** Close the gate: POST /events are held, unanswered, until released. */
    fun hold() {
        ok("POST", "/__emulator/gate", mapOf("hold" to true))
    }

    /** Open the gate and release every held request. */
    fun open() {
        ok("POST", "/__emulator/gate", mapOf("hold" to false))
    }

    /** Whether `n` requests are held at the gate within `timeout`. */
    fun waitHeld(n: Int, timeout: Duration = Duration.ofSeconds(20)): Boolean =
        waitFor("/__emulator/gate/wait?held=$n&timeout_ms=${timeout.toMillis()}", timeout)

    /** Whether `n` events are stored within `timeout` (the emulator answers the moment they are). */
    fun waitEvents(n: Int, timeout: Duration = Duration.ofSeconds(20)): Boolean =
        waitFor("/__emulator/events/wait?count=$n&timeout_ms=${timeout.toMillis()}", timeout)

    private fun waitFor(path: String, timeout: Duration): Boolean {
        val r = call("GET", path, null, timeout.plusSeconds(10))
        return when (r.statusCode()) {
            200 -> true
            408 -> false
            else -> error("GET $path: ${r.statusCode()} ${r.body()}")
        }
    }

    override fun close() {
        proc.outputStream.close() // --exit-on-stdin-close
        if (!proc.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) {
            proc.destroyForcibly()
            proc.waitFor()
        }
    }
}
