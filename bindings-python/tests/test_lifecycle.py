"""Interpreter exit and os.fork(), each in a fresh Python process, against the emulator."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

import pytest

PRELUDE = """
import os, sys, time, trackcore
url, token = os.environ["EMU_URL"], os.environ["EMU_TOKEN"]
"""


class Script:
    """A Python snippet in a fresh interpreter that the test can talk to: it
    prints a line when it reaches a point, and waits for a line to go on."""

    def __init__(self, code: str, emu) -> None:
        env = {**os.environ, "EMU_URL": emu.url, "EMU_TOKEN": emu.token}
        self.proc = subprocess.Popen([sys.executable, "-c", PRELUDE + code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def read(self) -> str:
        return self.proc.stdout.readline().strip()

    def go_on(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def test_queued_events_are_delivered_at_interpreter_exit(emulator):
    emulator.hold()
    script = Script("""
t = trackcore.Tracker(token, base_url=url, max_in_flight=1, exit_timeout=20)
for i in range(5):
    t.track("exit-flush", user_id=f"u-{i}")
print(t.stats()["delivered"], flush=True)
sys.stdin.readline()
""", emulator)
    assert script.read() == "0"  # nothing can be delivered while the gate is closed
    assert emulator.wait_held(1)
    emulator.open()
    script.go_on()  # the script ends now, with four events still queued
    result = script.finish()
    assert result.returncode == 0, result.stderr
    assert sorted(e["user_id"] for e in emulator.events()) == [f"u-{i}" for i in range(5)]


def test_exit_flush_is_bounded_by_exit_timeout(emulator, run_python):
    emulator.hold()
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, exit_timeout=0.5)
t.track("never-answered", user_id="u-1")
"""
    start = time.monotonic()
    result = run_python(code, EMU_URL=emulator.url, EMU_TOKEN=emulator.token)
    emulator.open()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 5.0


def test_flush_at_exit_false_exits_without_waiting(emulator, run_python):
    emulator.hold()
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, flush_at_exit=False, exit_timeout=8)
t.track("abandoned", user_id="u-1")
"""
    start = time.monotonic()
    result = run_python(code, EMU_URL=emulator.url, EMU_TOKEN=emulator.token)
    emulator.open()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 4.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
def test_after_fork_parent_and_child_both_deliver_and_nothing_is_sent_twice(emulator):
    emulator.hold()
    script = Script("""
t = trackcore.Tracker(token, base_url=url, max_in_flight=1)
for i in range(3):
    t.track("before-fork", user_id=f"p-{i}")   # one in flight, two queued at fork time
while t.stats()["in_flight"] != 1:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    t.track("in-child", user_id="c-1")
    ok = t.flush(20)
    os._exit(0 if ok else 3)
t.track("in-parent", user_id="p-after")
print("forked", flush=True)
sys.stdin.readline()
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert t.flush(20)
print(t.stats()["delivered"])
""", emulator)
    assert script.read() == "forked"
    assert emulator.wait_held(2, timeout=20), "the parent's first event and the child's"
    emulator.open()
    script.go_on()
    result = script.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    sent = collections.Counter((e["event_name"], e["user_id"]) for e in emulator.events())
    assert sent == {("before-fork", "p-0"): 1, ("before-fork", "p-1"): 1, ("before-fork", "p-2"): 1,
                    ("in-child", "c-1"): 1, ("in-parent", "p-after"): 1}, sent
    stats = emulator.stats()
    assert stats["event_posts"] == 5 and stats["duplicates"] == 0, stats
