#!/usr/bin/env bash
# The Python part of the demo: set up the binding (venv + build) and run examples/demo/demo.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$(bash "$root/bindings-python/setup.sh" | tail -n1)"
"$python" "$root/examples/demo/demo.py"
