package example

import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import dev.trackcore.InvalidEventException
import dev.trackcore.Money
import dev.trackcore.RichLink
import dev.trackcore.Tracker
import java.net.InetSocketAddress
import java.net.URI
import java.net.URLDecoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.time.LocalDate

/**
 * A small service whose endpoints track events:
 *
 * - `POST /upgrade?user=…&plan=…&seats=…` tracks `upgraded-plan`
 * - `POST /read?email=…&url=…&title=…` tracks `read-article`
 *
 * Invalid input comes back as `400` with the core's error code and field, at
 * once; delivery happens in the background. `TRACKCORE_BASE_URL` points it at
 * the emulator, `INTERCOM_ACCESS_TOKEN` holds the token.
 */
class Service(private val tracker: Tracker, port: Int) {
    private val server: HttpServer = HttpServer.create(InetSocketAddress("127.0.0.1", port), 0)

    init {
        server.createContext("/upgrade") { ex ->
            handle(ex) { q ->
                tracker.track(
                    "upgraded-plan",
                    userId = q["user"],
                    metadata = mapOf(
                        "plan" to q["plan"],
                        "seats" to q["seats"]?.toIntOrNull(),
                        "price" to Money(129_900, "usd"),
                        "renewal_date" to LocalDate.now().plusYears(1),
                    ),
                )
            }
        }
        server.createContext("/read") { ex ->
            handle(ex) { q ->
                tracker.track("read-article", email = q["email"], metadata = mapOf("article" to RichLink(q["url"] ?: "", q["title"] ?: "")))
            }
        }
    }

    val port: Int get() = server.address.port

    fun start() = apply { server.start() }

    fun stop() = server.stop(0)

    private fun handle(ex: HttpExchange, track: (Map<String, String>) -> Unit) {
        val query = (ex.requestURI.rawQuery ?: "").split('&').filter { it.contains('=') }.associate {
            val (k, v) = it.split('=', limit = 2)
            URLDecoder.decode(k, Charsets.UTF_8) to URLDecoder.decode(v, Charsets.UTF_8)
        }
        val (status, body) = try {
            track(query)
            202 to """{"tracked":true}"""
        } catch (e: InvalidEventException) {
            400 to """{"code":"${e.code}","field":"${e.field}"}"""
        }
        val bytes = body.toByteArray()
        ex.responseHeaders.add("Content-Type", "application/json")
        ex.sendResponseHeaders(status, bytes.size.toLong())
        ex.responseBody.use { it.write(bytes) }
    }
}

fun main(args: Array<String>) {
    val tracker = Tracker(
        baseUrl = System.getenv("TRACKCORE_BASE_URL"),
        onError = { event, error -> println("kotlin: not delivered [${error.code}] ${event.eventName}: ${error.message}") },
    )
    val demo = "--demo" in args
    val service = Service(tracker, if (demo) 0 else 8080).start()
    if (!demo) {
        println("kotlin-jvm example listening on http://127.0.0.1:${service.port} (POST /upgrade?user=u-1&plan=pro&seats=5)")
        return
    }
    // The demo: a client calls the service's endpoints, as a browser or another service would.
    val http = HttpClient.newHttpClient()
    fun post(path: String): String {
        val req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:${service.port}$path")).POST(HttpRequest.BodyPublishers.noBody()).build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        return "${resp.statusCode()} ${resp.body()}"
    }
    println("kotlin: POST /upgrade -> " + post("/upgrade?user=kt-user-1&plan=team&seats=12"))
    println("kotlin: POST /read -> " + post("/read?email=kt-reader@example.com&url=https%3A%2F%2Fexample.org%2Fc.html&title=Kotlin%20guide"))
    println("kotlin: POST /upgrade (no user) -> " + post("/upgrade?plan=team"))
    println("        (deliberate: no user_id, id or email, so track() throws a typed error at once and the endpoint answers 400; nothing is sent)")
    service.stop()
    val done = tracker.flush(Duration.ofSeconds(10))
    val s = tracker.stats()
    println("kotlin: tracked=${s.tracked} delivered=${s.delivered} failed=${s.failed} dropped=${s.dropped} (flush complete: $done)")
    tracker.shutdown(Duration.ofSeconds(5))
}
