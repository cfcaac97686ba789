#!/usr/bin/env bash
# Build and test the Node binding from scratch: npm ci (package-lock.json),
# the native module (cargo, release), the emulator binary, the Express
# example's dependencies, then `node --test`.
# Needs only node (18+) with npm, cargo and the package registries.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

bash "$HERE/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --locked --release -q -p trackcore-emulator)
(cd "$ROOT/examples/node-express" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

export TRACKCORE_EMULATOR="${TRACKCORE_EMULATOR:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trackcore-emulator}"
cd "$HERE"
# A hung test fails after two minutes instead of hanging CI.
exec node --test --test-timeout=120000 "$@" test/
