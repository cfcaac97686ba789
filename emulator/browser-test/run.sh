#!/usr/bin/env bash
# The emulator's inspector page in a real browser: headless Debian chromium
# (installed here when missing: CI runs as root on a fresh Debian) driven by
# playwright-core from npm, with events tracked through the Node binding.
# Builds what it needs: the release emulator, the Node binding (bindings-node/setup.sh,
# incremental when scripts/test.sh has just built it), this directory's npm packages.
#
#   bash emulator/browser-test/run.sh                      # screenshot to target/emulator-inspector.png
#   bash emulator/browser-test/run.sh --update-screenshot  # ... to docs/emulator-inspector.png (the README's)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

shot="${CARGO_TARGET_DIR:-$ROOT/target}/emulator-inspector.png"
if [ "${1:-}" = "--update-screenshot" ]; then
    shot="$ROOT/docs/emulator-inspector.png"
    shift
fi

if ! command -v chromium >/dev/null 2>&1; then
    echo "browser test: installing Debian's chromium" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

(cd "$ROOT" && cargo build --locked --release -q -p trackcore-emulator)
bash "$ROOT/bindings-node/setup.sh" >/dev/null
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
export TRACKCORE_EMULATOR="${TRACKCORE_EMULATOR:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trackcore-emulator}"
export SCREENSHOT="$shot"
cd "$HERE"
# A hung test fails after three minutes instead of hanging CI.
node --test --test-timeout=180000 "$@" inspector.test.mjs
echo "browser test: screenshot at $shot"
