package consumer;

import dev.trackcore.Event;
import dev.trackcore.InvalidEventException;
import dev.trackcore.Money;
import dev.trackcore.Stats;
import dev.trackcore.Tracker;
import java.time.Duration;
import java.time.LocalDate;
import java.util.LinkedHashMap;
import java.util.Map;

/** A plain Java caller: builder, overloads, a map of metadata, typed errors. */
public class Main {
    public static void main(String[] args) {
        String baseUrl = System.getenv("TRACKCORE_BASE_URL");
        try (Tracker tracker = Tracker.builder()
                .accessToken(System.getenv("INTERCOM_ACCESS_TOKEN"))
                .baseUrl(baseUrl)
                .onError((event, error) -> System.out.println("java: not delivered [" + error.getCode() + "] " + event.getJson()))
                .build()) {
            Map<String, Object> metadata = new LinkedHashMap<>();
            metadata.put("plan", "pro");
            metadata.put("seats", 5);
            metadata.put("price", new Money(34999, "eur"));
            metadata.put("renewal_date", LocalDate.of(2027, 1, 1));
            tracker.track("gradle-consumer", "java-user-1", null, null, null, metadata);
            tracker.track(new Event("gradle-consumer-builder").email("java@example.com").meta("annual", true));
            // The typed error also proves the library was loaded from the jar once:
            // a second copy would keep the error in thread-locals of its own.
            try {
                tracker.track("gradle-consumer", "java-user-1", null, null, null, Map.of("tags", java.util.List.of("a")));
                throw new AssertionError("a list in metadata was accepted");
            } catch (InvalidEventException e) {
                System.out.println("java: rejected at track(): [" + e.getCode() + "] field " + e.getField());
            }
            boolean flushed = tracker.flush(Duration.ofSeconds(20));
            Stats s = tracker.stats();
            System.out.println("java: tracked=" + s.getTracked() + " delivered=" + s.getDelivered() + " (flush complete: " + flushed + ")");
            if (!flushed || s.getDelivered() != 2) {
                System.exit(1);
            }

        }
    }
}
