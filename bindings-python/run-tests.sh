#!/usr/bin/env bash
# Build and test the Python binding from scratch: venv, dev dependencies,
# the extension (maturin, release), the emulator binary, then pytest.
# Needs only python3 (3.9+, with venv and pip), cargo and the package registries.
# Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"

bash "$HERE/setup.sh" >/dev/null
(cd "$ROOT" && cargo build --locked --release -p trackcore-emulator)

export TRACKCORE_EMULATOR="${TRACKCORE_EMULATOR:-$ROOT/target/release/trackcore-emulator}"
status=0
(cd "$HERE" && "$VENV/bin/python" -m pytest tests "$@") || status=$?
if [ "$status" -eq 5 ]; then
  echo "run-tests.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$status"
