#!/usr/bin/env bash
# Set up the Python binding from scratch: a venv at bindings-python/.venv with
# the pinned dev dependencies, and the extension built into it (maturin, release).
# Needs only python3 (3.10+, with venv and pip), cargo and the package registries.
# Prints the venv's python on its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements-dev.txt"
# A version-specific _native.cpython-3XX-*.so left by an older build would be
# imported ahead of the abi3 one maturin writes now: remove stale builds first.
rm -f "$HERE"/python/trackcore/_native.*.so
# pip builds through build_backend/trackcore_build.py, which wraps maturin's
# backend; maturin would warn that build-backend is not literally "maturin".
export MATURIN_NO_MISSING_BUILD_BACKEND_WARNING=1
(cd "$HERE" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --release --quiet)
echo "$VENV/bin/python"
