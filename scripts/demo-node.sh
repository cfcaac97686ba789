#!/usr/bin/env bash
# The Node part of the demo: set up the binding (npm ci + native build) and run
# examples/demo/demo.js, which requires 'trackcore' as an app would.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="$(bash "$root/bindings-node/setup.sh" | tail -n1)"
modules="$(mktemp -d)"
trap 'rm -rf "$modules"' EXIT
ln -s "$pkg" "$modules/trackcore"
NODE_PATH="$modules" node "$root/examples/demo/demo.js"
