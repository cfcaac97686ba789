#!/usr/bin/env bash
# Build and test the Python binding from scratch: venv, dev dependencies,
# the extension (maturin, release), the wheel, the emulator binary, then pytest.
# Needs only python3 (3.10+, with venv and pip), cargo and the package registries.
# Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
WHEELS="$ROOT/target/wheels"

bash "$HERE/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --locked --release -p trackcore-emulator)

# The wheel users install (abi3, manylinux tag where this toolchain allows):
# tests/test_wheel.py installs it into a fresh venv with no cargo on PATH.
rm -f "$WHEELS"/trackcore-*.whl
(cd "$HERE" && MATURIN_NO_MISSING_BUILD_BACKEND_WARNING=1 "$VENV/bin/maturin" build --release --quiet --interpreter "$VENV/bin/python" --out "$WHEELS")
wheels=("$WHEELS"/trackcore-*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
  echo "run-tests.sh: expected one wheel in $WHEELS, found: ${wheels[*]}" >&2
  exit 1
fi
export TRACKCORE_WHEEL="${TRACKCORE_WHEEL:-${wheels[0]}}"

export TRACKCORE_EMULATOR="${TRACKCORE_EMULATOR:-$ROOT/target/release/trackcore-emulator}"
status=0
(cd "$HERE" && "$VENV/bin/python" -m pytest tests "$@") || status=$?
if [ "$status" -eq 5 ]; then
  echo "run-tests.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$status"
