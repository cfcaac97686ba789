#!/usr/bin/env python3
"""Fleet mode across languages: four tracking processes (Rust, Python, Node,
JVM), each tracking FLEET_EVENTS events, against one emulator limited to a low
rate, sharing one budget through one Redis (started here on a free port and
stopped at the end). Then the same run without ``shared_budget``: the baseline.

Asserts for the shared run: every event delivered, zero 429s, together at least
90 % of the limit. For the baseline it records the 429 count (and asserts there
are some: four processes each pacing to the whole limit overrun it).

    python3 tests/fleet/mixed.py [--events 5000] [--rate 30000] [--workers rust,python,node,jvm]

Needs the built artefacts (see tests/fleet/run.sh): target/release/trackcore-emulator,
target/release/examples/fleet_worker, bindings-python/.venv with trackcore,
bindings-node's native module, the Kotlin jar's classpath in
target/fleet-jvm-classpath.txt. Writes the figures to target/fleet-mixed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fleet-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [os.environ.get("REDIS_SERVER", "redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.02)


def start_emulator(rate: int) -> tuple[subprocess.Popen, str]:
    (ROOT / "target").mkdir(exist_ok=True)
    log = ROOT / "target/fleet-emulator.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(ROOT / "target/release/trackcore-emulator"), "--port", "0", "--token", TOKEN,
             "--rate-limit-per-minute", str(rate), "--max-event-names", "0", "--exit-on-stdin-close"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())
        if m:
            return proc, m.group(1)
        time.sleep(0.05)
    raise SystemExit("the emulator did not start: " + log.read_text())


def get(url: str, timeout: float = 10) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def worker_command(kind: str) -> list[str]:
    if kind == "rust":
        return [str(ROOT / "target/release/examples/fleet_worker")]
    if kind == "python":
        return [str(ROOT / "bindings-python/.venv/bin/python"), str(ROOT / "tests/fleet/worker.py")]
    if kind == "node":
        return ["node", str(ROOT / "tests/fleet/worker.js")]
    if kind == "jvm":
        cp = (ROOT / "target/fleet-jvm-classpath.txt").read_text().strip()
        return ["java", "-cp", cp, str(ROOT / "tests/fleet/Worker.java")]
    raise SystemExit(f"unknown worker {kind}")


def snake(d: dict) -> dict:
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in d.items()}


def run(workers: list[str], events: int, rate: int, redis_url: str | None) -> dict:
    emu, url = start_emulator(rate)
    procs = []
    try:
        for i, kind in enumerate(workers):
            env = dict(os.environ, FLEET_EMULATOR=url, FLEET_TOKEN=TOKEN, FLEET_RATE=str(rate), FLEET_EVENTS=str(events),
                       FLEET_NAME=f"{kind}{i}", FLEET_REDIS=redis_url or "", FLEET_PREFIX="fleet-mixed:")
            p = subprocess.Popen(worker_command(kind), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append((f"{kind}{i}", p))
        for kind, p in procs:
            line = p.stdout.readline()
            while line and line.strip() != "ready":
                line = p.stdout.readline()
            if not line:
                raise SystemExit(f"{kind} worker exited before it was ready")
        start = time.monotonic()
        for _, p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        total = events * len(workers)
        waited = get(f"{url}/__emulator/events/wait?count={total}&timeout_ms=240000", timeout=250)
        secs = time.monotonic() - start
        results = {}
        for kind, p in procs:
            out, _ = p.communicate(timeout=180)
            last = [l for l in out.splitlines() if l.startswith("{")]
            if p.returncode != 0 or not last:
                raise SystemExit(f"{kind} worker failed (exit {p.returncode})")
            results[kind] = snake(json.loads(last[-1]))
        stats = get(f"{url}/__emulator/stats")
        return {"stored": stats["stored"], "waited": waited, "rate_limited": stats["rate_limited"], "seconds": round(secs, 2),
                "share_of_limit": stats["stored"] / (secs * rate / 60), "workers": results}
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
        emu.stdin.close()
        emu.kill()
        emu.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=30000)
    ap.add_argument("--workers", default="rust,python,node,jvm")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    workers = a.workers.split(",")
    if not shutil.which(os.environ.get("REDIS_SERVER", "redis-server")):
        raise SystemExit("redis-server not found (tests/fleet/run.sh installs it)")
    redis, redis_url = start_redis()
    failures = []
    try:
        shared = run(workers, a.events, a.rate, redis_url)
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"INFO commandstats\r\n")
            data = b""
            while b"\r\n" not in data or len(data) < data.index(b"\r\n") + 2 + int(data[1:data.index(b"\r\n")]):
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
            info = data.decode()
        # Round trips from the trackers: the scripts' EVALSHAs (and SCRIPT LOADs),
        # not the commands the scripts run inside Redis.
        commands = sum(int(m) for m in re.findall(r"cmdstat_(?:evalsha|eval|script\|load):calls=(\d+)", info))
        shared["redis_round_trips"] = commands
        shared["redis_round_trips_per_event"] = commands / max(shared["stored"], 1)
    finally:
        redis.kill()
        redis.wait()
    total = a.events * len(workers)
    print(f"shared budget: {shared['stored']}/{total} delivered in {shared['seconds']} s = "
          f"{shared['share_of_limit'] * 100:.1f} % of the limit, {shared['rate_limited']} 429s, "
          f"{shared['redis_round_trips_per_event']:.3f} Redis round trips per event")
    if shared["stored"] != total:
        failures.append(f"{total - shared['stored']} events missing")
    if shared["rate_limited"] != 0:
        failures.append(f"{shared['rate_limited']} 429s with a shared budget")
    if shared["share_of_limit"] < 0.90:
        failures.append(f"only {shared['share_of_limit'] * 100:.1f} % of the limit used")
    for kind, r in shared["workers"].items():
        print(f"  {kind}: delivered {r['delivered']}, failed {r['failed']}, 429s {r['rate_limited']}, "
              f"permit waits {r['fleet_permit_waits']}, redis errors {r['redis_errors']}")
        if r["delivered"] != a.events or r["failed"] or r["rate_limited"] or r["redis_errors"]:
            failures.append(f"{kind}: {r}")
    out = {"events_per_process": a.events, "rate_limit_per_minute": a.rate, "shared": shared}
    if not a.no_baseline:
        base = run(workers, a.events, a.rate, None)
        out["baseline"] = base
        print(f"baseline (no shared_budget): {base['stored']}/{total} delivered in {base['seconds']} s, {base['rate_limited']} 429s")
        if base["stored"] != total:
            failures.append(f"baseline: {total - base['stored']} events missing")
        if base["rate_limited"] == 0:
            failures.append("baseline: no 429 (the limit is not low enough to show the problem)")
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target/fleet-mixed.json").write_text(json.dumps(out, indent=2))
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
