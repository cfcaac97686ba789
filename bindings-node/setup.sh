#!/usr/bin/env bash
# Install the binding's dev dependencies (npm ci) and build its native module
# (cargo, release) into ./trackcore.<platform>.node. Idempotent; prints the
# package's directory on its last line.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
npm ci --no-audit --no-fund --loglevel=error >&2
node scripts/build.js >&2
echo "$HERE"
