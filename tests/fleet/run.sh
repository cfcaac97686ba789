#!/usr/bin/env bash
# Fleet mode (shared_budget): the Rust suite against real redis-server
# instances (core/tests/fleet.rs: the lease script under concurrent clients,
# four processes sharing one budget plus the baseline, Redis killed and
# restarted mid-run, the 121st name across processes), then the same budget
# shared by Rust, Python, Node and JVM processes at once (tests/fleet/mixed.py).
#
# Installs Debian's redis-server when it is missing (as root, which CI is).
# Reuses what the bindings' run-tests.sh built before it in scripts/test.sh:
# bindings-python/.venv, bindings-node's native module, the Kotlin jar.
# FLEET_WORKERS picks the languages of the mixed run (default: all four).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "fleet: installing Debian's redis-server"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null
    else
        echo "fleet: redis-server is missing (apt-get install redis-server)" >&2
        exit 1
    fi
fi

# Release: four tracking processes, the emulator and Redis share the machine;
# debug builds spend most of it on HTTP and TLS code paths, not on pacing.
# The Rust worker process of both suites.
cargo build --locked --release -q -p trackcore --example fleet_worker
cargo test --locked --release -p trackcore --test fleet

workers="${FLEET_WORKERS:-rust,python,node,jvm}"
cargo build --locked --release -q -p trackcore-emulator
if [[ ",$workers," == *,jvm,* ]]; then
    jar="$(ls bindings-kotlin/target/trackcore-*.jar | head -n1)"
    mvn -B -q -ntp -Dstyle.color=never -f bindings-kotlin/pom.xml dependency:build-classpath \
        -Dmdep.includeScope=runtime -Dmdep.outputFile="$root/target/fleet-jvm-deps.txt" >&2
    echo "$root/$jar:$(cat "$root/target/fleet-jvm-deps.txt")" > "$root/target/fleet-jvm-classpath.txt"
fi
python3 tests/fleet/mixed.py --workers "$workers"
