package dev.trackcore.bench;

import com.posthog.server.PostHog;
import com.posthog.server.PostHogCaptureOptions;
import com.posthog.server.PostHogConfig;
import com.posthog.server.PostHogInterface;
import com.segment.analytics.Analytics;
import com.segment.analytics.messages.TrackMessage;
import dev.trackcore.Tracker;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Caller-thread cost of one track call with three properties
 * ({plan: "pro", seats: 5, annual: true}, a fresh map per call), event
 * upgraded-plan, user u-123, every SDK's background delivery pointed at the
 * local emulator (-Dbench.url). Each SDK in its own fork; one run.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class TrackBench {
    static String url() {
        String u = System.getProperty("bench.url");
        if (u == null) throw new IllegalStateException("-Dbench.url=<emulator URL> is required");
        return u;
    }

    static Map<String, Object> properties() {
        Map<String, Object> m = new HashMap<>(4);
        m.put("plan", "pro");
        m.put("seats", 5);
        m.put("annual", true);
        return m;
    }

    @State(Scope.Benchmark)
    public static class Trackcore {
        Tracker tracker;

        @Setup(Level.Trial)
        public void start() {
            // Every option at the core's default. The same event in the same
            // second is a copy: the dispatcher drops it (counted in
            // `deduplicated`), so the queue stays short however fast the loop
            // runs, and the caller does exactly the work of a real track().
            tracker = Tracker.builder().accessToken("test-token").baseUrl(url()).flushAtExit(false).build();
        }

        @TearDown(Level.Trial)
        public void stop() {
            System.out.println("\ntrackcore stats: " + tracker.stats());
            tracker.shutdown(Duration.ofSeconds(2));
        }
    }

    @State(Scope.Benchmark)
    public static class Segment {
        Analytics analytics;

        @Setup(Level.Trial)
        public void start() {
            analytics = Analytics.builder("write-key").endpoint(url()).queueCapacity(Integer.MAX_VALUE).build();
        }

        @TearDown(Level.Trial)
        public void stop() {
            analytics.shutdown();
        }
    }

    @State(Scope.Benchmark)
    public static class Posthog {
        PostHogInterface posthog;

        @Setup(Level.Trial)
        public void start() {
            PostHogConfig config = PostHogConfig.builder("phc_key").host(url()).maxQueueSize(Integer.MAX_VALUE).build();
            posthog = PostHog.with(config);
        }

        @TearDown(Level.Trial)
        public void stop() {
            posthog.close();
        }
    }

    @Benchmark
    public void trackcore_track(Trackcore s) {
        s.tracker.track("upgraded-plan", "u-123", null, null, null, properties());
    }

    /** The binding's own work on the caller's thread: the event written as bytes (no crossing). */
    @Benchmark
    public int trackcore_encode_only() {
        dev.trackcore.Wire w = dev.trackcore.Wire.Companion.get();
        w.event("upgraded-plan", "u-123", null, null, null, properties());
        int n = w.getLength();
        dev.trackcore.Wire.Companion.release(w);
        return n;
    }

    /** The FFI crossing alone: the same bytes through the same JNA call into a function that does nothing. */
    @Benchmark
    public int trackcore_ffi_crossing_only() {
        dev.trackcore.Wire w = dev.trackcore.Wire.Companion.get();
        int rc = dev.trackcore.FastPath.INSTANCE.trackcore_kotlin_probe(1L, w.getBytes(), w.getLength());
        dev.trackcore.Wire.Companion.release(w);
        return rc;
    }

    @Benchmark
    public void segment_enqueue(Segment s) {
        s.analytics.enqueue(TrackMessage.builder("upgraded-plan").userId("u-123").properties(properties()));
    }

    @Benchmark
    public void posthog_capture(Posthog s) {
        s.posthog.capture("u-123", "upgraded-plan", new PostHogCaptureOptions.Builder().properties(properties()).build());
    }
}
