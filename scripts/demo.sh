#!/usr/bin/env bash
# The main job: start the Intercom emulator, track real events through every
# language trackcore has (Rust, Python), and print what the emulator received.
# Sets up what it needs (release builds, the Python venv) on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
token="demo-token"

echo "==> building the emulator and the Rust demo"
cargo build --locked --release -q -p trackcore-emulator -p trackcore --example demo

log="$(mktemp)"
"$root/target/release/trackcore-emulator" --port 0 --token "$token" --exit-on-stdin-close >"$log" 2>&1 < <(sleep 3600) &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.1
done
base_url="$(head -n1 "$log" | sed -E 's/.*listening on (http[^ ]+).*/\1/')"
echo "==> emulator at $base_url"
export TRACKCORE_BASE_URL="$base_url" INTERCOM_ACCESS_TOKEN="$token"

echo "==> Rust"
"$root/target/release/examples/demo"

echo "==> Python"
bash "$root/scripts/demo-python.sh"

echo "==> what Intercom (the emulator) received"
python3 - "$base_url" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
events = json.load(urllib.request.urlopen(base + "/__emulator/events"))
events = events.get("events", events) if isinstance(events, dict) else events
for e in events:
    body = e.get("body", e)
    who = body.get("user_id") or body.get("email") or body.get("id")
    ua = e.get("headers", {}).get("user-agent", "")
    print(f"  {body['event_name']:<18} {who:<22} {json.dumps(body.get('metadata', {}))}  [{ua}]")
stats = json.load(urllib.request.urlopen(base + "/__emulator/stats"))
print(f"stored {stats['stored']} events; responses by status {stats['by_status']}")
PY
