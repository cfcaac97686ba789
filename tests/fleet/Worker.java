// One JVM tracking process of the fleet-mode run (tests/fleet/mixed.py), through
// the Kotlin binding's Java builder; run with the single-file source launcher:
// java -cp <trackcore jar and its dependencies> tests/fleet/Worker.java
// Same protocol as core/examples/fleet_worker.rs: environment FLEET_*, prints
// `ready`, starts on a line from stdin, prints its stats as one JSON line.
import dev.trackcore.Stats;
import dev.trackcore.Tracker;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.Map;

public class Worker {
    public static void main(String[] args) throws Exception {
        Map<String, String> env = System.getenv();
        Tracker.Builder b = Tracker.builder()
                .accessToken(env.get("FLEET_TOKEN"))
                .baseUrl(env.get("FLEET_EMULATOR"))
                .rateLimitPerMinute(Integer.parseInt(env.get("FLEET_RATE")))
                .maxInFlight(16);
        String redis = env.getOrDefault("FLEET_REDIS", "");
        if (!redis.isEmpty()) {
            b.sharedBudget(redis).sharedBudgetPrefix(env.get("FLEET_PREFIX"));
        }
        try (Tracker tracker = b.build()) {
            System.out.println("ready");
            System.out.flush();
            new BufferedReader(new InputStreamReader(System.in)).readLine();
            String who = env.get("FLEET_NAME");
            int n = Integer.parseInt(env.get("FLEET_EVENTS"));
            for (int i = 0; i < n; i++) {
                tracker.track("fleet-run", who + "-" + i, null, null, null, Map.of("i", i));
            }
            boolean flushed = tracker.flush(Duration.ofSeconds(120));
            Stats s = tracker.stats();
            System.out.println("{\"flushed\": " + flushed + ", \"tracked\": " + s.getTracked() + ", \"delivered\": " + s.getDelivered()
                    + ", \"failed\": " + s.getFailed() + ", \"dropped\": " + s.getDropped() + ", \"rate_limited\": " + s.getRateLimited()
                    + ", \"redis_errors\": " + s.getRedisErrors() + ", \"fleet_permit_waits\": " + s.getFleetPermitWaits() + "}");
            System.out.flush();
        }
    }
}
