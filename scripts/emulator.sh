# Sourced by scripts that run against the emulator binary (the demo, the Kotlin
# bench and Gradle consumer test): `start_emulator WORK_DIR [emulator args...]`
# starts target/release/trackcore-emulator on a free port of 127.0.0.1, with its
# output in WORK_DIR/emulator.log, and sets `emu_pid` and `emu_url`. It ends with
# the emulator's standard input, so it never outlives the script. If the emulator
# does not start, it prints what it said and returns 1 (never passes an error
# text on as a URL). The caller kills `emu_pid` on exit.
start_emulator() {
    local work="$1"
    shift
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    "$root/target/release/trackcore-emulator" --port 0 --exit-on-stdin-close "$@" \
        >"$work/emulator.log" 2>&1 < <(sleep 36000) &
    emu_pid=$!
    emu_url=""
    for _ in $(seq 1 200); do
        # The log may not exist yet (the background shell has not opened it):
        # under `set -e -o pipefail` a failing sed would end the caller's script.
        emu_url="$(sed -nE 's/.*listening on (http:\/\/127\.0\.0\.1:[0-9]+).*/\1/p' "$work/emulator.log" 2>/dev/null | head -n1 || true)"
        [ -n "$emu_url" ] && return 0
        kill -0 "$emu_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "the emulator did not start; it printed:" >&2
    sed 's/^/    /' "$work/emulator.log" >&2
    return 1
}
