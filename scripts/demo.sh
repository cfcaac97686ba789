#!/usr/bin/env bash
# The main job: start the Intercom emulator, track real events through every
# language trackcore has (Rust, Python, Node, Kotlin), and print what the emulator received.
# Sets up what it needs (release builds, the Python venv) on a fresh machine.
# Exits non-zero if any step fails or the emulator received fewer events than
# the demos tracked (CI runs it after the test suites). Ends by printing the URL
# of the emulator's inspector page; with --keep-open it leaves the emulator (and
# the page) running, with its request log on screen, until Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
token="demo-token"
keep_open=0
for arg in "$@"; do
    case "$arg" in
        --keep-open) keep_open=1 ;;
        -h|--help) echo "usage: scripts/demo.sh [--keep-open]"; exit 0 ;;
        *) echo "demo: unknown argument $arg (usage: scripts/demo.sh [--keep-open])" >&2; exit 2 ;;
    esac
done

echo "==> building the emulator and the Rust demo"
# Two commands: naming an example narrows a build to it, so one command with
# both would never build the emulator binary.
cargo build --locked --release -q -p trackcore-emulator --bin trackcore-emulator
cargo build --locked --release -q -p trackcore --example demo

work="$(mktemp -d)"
emu_pid=""
trap 'kill $emu_pid 2>/dev/null || true; rm -rf "$work"' EXIT
source "$root/scripts/emulator.sh"
start_emulator "$work" --token "$token" || { echo "demo: see above" >&2; exit 1; }
base_url="$emu_url"
echo "==> emulator at $base_url"
export TRACKCORE_BASE_URL="$base_url" INTERCOM_ACCESS_TOKEN="$token"

echo "==> Rust"
"$root/target/release/examples/demo" | tee "$work/rust.out"

echo "==> Python"
bash "$root/scripts/demo-python.sh" | tee "$work/python.out"

echo "==> Node"
bash "$root/scripts/demo-node.sh" | tee "$work/node.out"

echo "==> Kotlin"
bash "$root/scripts/demo-kotlin.sh" | tee "$work/kotlin.out"

tracked="$(sed -nE 's/.* tracked=([0-9]+) .*/\1/p' "$work"/*.out | awk '{s+=$1} END {print s+0}')"
echo "==> what Intercom (the emulator) received"
python3 - "$base_url" "${tracked:-0}" <<'PY'
import json, sys, urllib.request
base, tracked = sys.argv[1], int(sys.argv[2])
events = json.load(urllib.request.urlopen(base + "/__emulator/events"))
events = events.get("events", events) if isinstance(events, dict) else events
for e in events:
    body = e.get("body", e)
    who = body.get("user_id") or body.get("email") or body.get("id")
    ua = e.get("headers", {}).get("user-agent", "")
    print(f"  {body['event_name']:<18} {who:<22} {json.dumps(body.get('metadata', {}))}  [{ua}]")
stats = json.load(urllib.request.urlopen(base + "/__emulator/stats"))
print(f"stored {stats['stored']} events; responses by status {stats['by_status']}")
if tracked == 0 or stats["stored"] < tracked:
    sys.exit(f"demo: the demos tracked {tracked} events but the emulator stored {stats['stored']}")
print(f"demo: all {tracked} tracked events reached the emulator")
PY

echo "==> inspector: $base_url/  (every request the demos sent, live; token: $token)"
if [ "$keep_open" = 1 ]; then
    echo "    the emulator stays up for you to try events against; Ctrl-C stops it. Its request log:"
    # The log's first two lines are the address lines printed above.
    tail -n +3 -f "$work/emulator.log" &
    tail_pid=$!
    trap 'kill $tail_pid $emu_pid 2>/dev/null || true; rm -rf "$work"' EXIT
    trap 'exit 0' INT TERM
    wait "$emu_pid" || true
else
    echo "    (the emulator stops with this script; scripts/demo.sh --keep-open leaves it running)"
fi
