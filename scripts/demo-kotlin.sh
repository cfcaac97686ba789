#!/usr/bin/env bash
# The Kotlin part of the demo: install the binding into the local Maven
# repository, build examples/kotlin-jvm against it, and run its demo (a client
# calling the service's endpoints, which track events).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
example="$root/examples/kotlin-jvm"
mvn -B -q -ntp -Dstyle.color=never -f "$root/bindings-kotlin/pom.xml" install -DskipTests >&2
mvn -B -q -ntp -Dstyle.color=never -f "$example/pom.xml" package dependency:build-classpath -Dmdep.outputFile="$example/target/classpath.txt" >&2
java -cp "$example/target/classes:$(cat "$example/target/classpath.txt")" example.MainKt --demo
