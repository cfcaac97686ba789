#!/usr/bin/env bash
# Runs every test suite the project has: Rust (core, emulator, conformance,
# delivery against the emulator), Python (the binding, its conformance run,
# delivery, fork/exit and the Django example), Node (the binding and the Express
# example), the emulator's inspector page in a browser, then the demo. Installs what it needs.
# Each runner prints its own summary; the exit code is non-zero if any suite failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
failed=()

echo "==> Rust: cargo test (core, emulator, the trackcore CLI and bridge, the reliability suite)"
cargo test --locked || failed+=("rust")

echo "==> Python: pytest (binding, conformance, delivery, fork/exit, Django example)"
bash bindings-python/run-tests.sh || failed+=("python")

echo "==> Node: node --test (binding, conformance, delivery, exit, worker threads, packed tarball, Express example)"
bash bindings-node/run-tests.sh || failed+=("node")

echo "==> Emulator inspector: the page in headless chromium, events through the Node binding"
bash emulator/browser-test/run.sh || failed+=("inspector")

echo "==> Kotlin/JVM: mvn install (binding, conformance, emulator, exit hook) and the Gradle consumer"
bash bindings-kotlin/run-tests.sh || failed+=("kotlin")

echo "==> Fleet mode: shared_budget against redis-server (Rust suite, then Rust, Python, Node and JVM processes sharing one budget)"
bash tests/fleet/run.sh || failed+=("fleet")

echo "==> Demo: the README's first command, on this clone (fails if any tracked event did not arrive)"
bash scripts/demo.sh || failed+=("demo")

if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED suites: ${failed[*]}"
    exit 1
fi
echo "all suites passed"
