"""Shared fixtures: a real trackcore-emulator process on 127.0.0.1 per test.

The emulator binary comes from $TRACKCORE_EMULATOR (run-tests.sh builds it);
without it the delivery tests fail loudly rather than skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

TOKEN = "test-token"
REPO = Path(__file__).resolve().parents[2]


def emulator_binary() -> str:
    path = os.environ.get("TRACKCORE_EMULATOR") or str(REPO / "target" / "release" / "trackcore-emulator")
    if not os.path.exists(path):
        pytest.fail(
            f"emulator binary not found at {path}: build it with `cargo build --release -p trackcore-emulator` "
            "or set TRACKCORE_EMULATOR (bindings-python/run-tests.sh does both)"
        )
    return path


class Emulator:
    """A running trackcore-emulator and its test endpoints."""

    def __init__(self, *args: str) -> None:
        cmd = [emulator_binary(), "--port", "0", "--token", TOKEN, "--exit-on-stdin-close", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        prefix = "trackcore-emulator listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line[len(prefix):].strip()
        self.token = TOKEN

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def events(self) -> List[Dict[str, Any]]:
        """Every stored event (body as received plus headers, received_at)."""
        return self._call("GET", "/__emulator/events")

    def stats(self) -> Dict[str, Any]:
        return self._call("GET", "/__emulator/stats")

    def script(self, responses: List[Dict[str, Any]]) -> None:
        """Answer the next POST /events with these responses, in order."""
        self._call("POST", "/__emulator/script", responses)

    def configure(self, **changes: Any) -> None:
        self._call("POST", "/__emulator/config", changes)

    def wait_for_events(self, n: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """Wait (on the emulator's side, no polling) until `n` events are stored."""
        self._wait(f"/__emulator/events/wait?count={n}&timeout_ms={int(timeout * 1000)}", timeout)
        return self.events()

    def hold(self) -> None:
        """Close the gate: POST /events responses are held until released."""
        self._call("POST", "/__emulator/gate", {"hold": True})

    def open(self) -> None:
        """Open the gate and release every held request."""
        self._call("POST", "/__emulator/gate", {"hold": False})

    def wait_held(self, n: int, timeout: float = 10.0) -> bool:
        """Whether `n` requests are held at the gate within `timeout`."""
        return self._wait(f"/__emulator/gate/wait?held={n}&timeout_ms={int(timeout * 1000)}", timeout)

    def _wait(self, path: str, timeout: float) -> bool:
        req = urllib.request.Request(self.url + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout + 10):
                return True
        except urllib.error.HTTPError as e:
            if e.code == 408:
                return False
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator with extra flags (e.g. "--latency-ms", "500")."""
    started: List[Emulator] = []

    def start(*args: str) -> Emulator:
        emu = Emulator("--rate-limit-per-minute", "0", *args)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """A fresh emulator (no rate limit, no latency) for this test."""
    return start_emulator()


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess]:
    """Run a Python snippet in a fresh interpreter (with this venv's trackcore)."""

    def run(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **env})

    return run
