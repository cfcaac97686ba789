#!/usr/bin/env bash
# JMH: caller cost of track() beside Segment's analytics-java and posthog-server,
# all in one run against one emulator (rate limit off), then the table of ratios
# for docs/benchmarks.md. Extra arguments go to JMH (e.g. `-f 2`, `-i 10`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
(cd "$root" && cargo build --locked --release -q -p trackcore-emulator --bin trackcore-emulator)
mvn -B -q -ntp -Dstyle.color=never -f "$root/bindings-kotlin/pom.xml" install -DskipTests
mvn -B -q -ntp -Dstyle.color=never -f "$here/pom.xml" package dependency:build-classpath -Dmdep.outputFile="$here/target/classpath.txt"

work="$(mktemp -d)"
emu_pid=""
trap 'kill $emu_pid 2>/dev/null || true; rm -rf "$work"' EXIT
source "$root/scripts/emulator.sh"
start_emulator "$work" --token test-token --rate-limit-per-minute 0 || { echo "bench: see above" >&2; exit 1; }
url="$emu_url"

java -Dbench.url="$url" -cp "$here/target/classes:$(cat "$here/target/classpath.txt")" \
    org.openjdk.jmh.Main -rf json -rff "$here/target/jmh.json" "$@" TrackBench
python3 - "$here/target/jmh.json" <<'PY'
import json, statistics, sys
rows = {}
for r in json.load(open(sys.argv[1])):
    its = [x for fork in r["primaryMetric"]["rawData"] for x in fork]
    rows[r["benchmark"].rsplit(".", 1)[1]] = (statistics.median(its), min(its), max(its), r["primaryMetric"]["score"])
base = rows["trackcore_track"][0]
print("\n| benchmark | median ns per call (all iterations) | range | mean | vs trackcore_track (medians) |")
print("| --- | --- | --- | --- | --- |")
for name, (med, lo, hi, mean) in rows.items():
    print(f"| `{name}` | {med:,.0f} | {lo:,.0f}–{hi:,.0f} | {mean:,.0f} | {med / base:.2f}× |")
PY
