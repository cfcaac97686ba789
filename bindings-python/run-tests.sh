#!/usr/bin/env bash
# Build and test the Python binding from scratch: venv, dev dependencies,
# the extension (maturin, release), the emulator binary, then pytest.
# Needs only python3 (3.9+, with venv and pip), cargo and the package registries.
# Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements-dev.txt"

(cd "$ROOT" && cargo build --release -p trackcore-emulator)
(cd "$HERE" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --release --quiet)

export TRACKCORE_EMULATOR="${TRACKCORE_EMULATOR:-$ROOT/target/release/trackcore-emulator}"
status=0
(cd "$HERE" && "$VENV/bin/python" -m pytest tests "$@") || status=$?
if [ "$status" -eq 5 ]; then
  echo "run-tests.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$status"
