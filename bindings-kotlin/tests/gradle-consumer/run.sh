#!/usr/bin/env bash
# The Gradle consumer test: a Groovy-DSL build (Debian's gradle 4.4.1) that
# names only dev.trackcore:trackcore:0.1.0 resolves it from the local Maven
# repository with its transitive dependencies (JNA, kotlin-stdlib) from Maven
# Central, and a Java main tracks two events into the emulator.
# Needs: `mvn -f bindings-kotlin install` done, the emulator binary built, gradle
# (installed with apt-get when missing and running as root, as on CI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if ! command -v gradle >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "gradle-consumer: installing Debian's gradle"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gradle) >/dev/null
    else
        echo "gradle-consumer: gradle is not installed (apt-get install -y gradle)" >&2
        exit 1
    fi
fi
work="$(mktemp -d)"
emu_pid=""
trap 'kill $emu_pid 2>/dev/null || true; rm -rf "$work"' EXIT
source "$root/scripts/emulator.sh"
start_emulator "$work" --token test-token || { echo "gradle-consumer: see above" >&2; exit 1; }
base_url="$emu_url"
# A build directory outside the source tree, so the test leaves nothing behind.
cp -r "$here/build.gradle" "$here/settings.gradle" "$here/src" "$work/"
# (gradle 4.4 has no `run --args`: the program reads TRACKCORE_BASE_URL like the demos)
if ! TRACKCORE_BASE_URL="$base_url" INTERCOM_ACCESS_TOKEN=test-token gradle --no-daemon -q -p "$work" run >"$work/gradle.out" 2>&1; then
    cat "$work/gradle.out" >&2
    echo "gradle-consumer: the gradle run failed" >&2
    exit 1
fi
grep -v '^$' "$work/gradle.out" || true
stored="$(curl -s "$base_url/__emulator/stats" | sed -nE 's/.*"stored":([0-9]+).*/\1/p')"
if [ "${stored:-0}" -ne 2 ]; then
    echo "gradle-consumer: the emulator stored ${stored:-0} events, expected 2" >&2
    exit 1
fi
echo "gradle-consumer: passed (the emulator stored 2 events from the Gradle-built Java consumer)"
