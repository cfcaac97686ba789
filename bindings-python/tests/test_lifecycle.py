"""Interpreter exit and os.fork(), each in a fresh Python process, against the emulator."""

from __future__ import annotations

import collections
import os
import sys
import time

import pytest

PRELUDE = """
import os, sys, time, trackcore
url, token = os.environ["EMU_URL"], os.environ["EMU_TOKEN"]
"""


def test_queued_events_are_delivered_at_interpreter_exit(start_emulator, run_python):
    emu = start_emulator("--latency-ms", "100")
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, max_in_flight=1)
for i in range(5):
    t.track("exit-flush", user_id=f"u-{i}")
print(t.stats()["delivered"])
"""
    result = run_python(code, EMU_URL=emu.url, EMU_TOKEN=emu.token)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) < 5  # still queued when the script ended
    assert sorted(e["user_id"] for e in emu.events()) == [f"u-{i}" for i in range(5)]


def test_exit_flush_is_bounded_by_exit_timeout(start_emulator, run_python):
    emu = start_emulator("--latency-ms", "10000")
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, exit_timeout=0.5)
t.track("never-answered", user_id="u-1")
"""
    start = time.monotonic()
    result = run_python(code, EMU_URL=emu.url, EMU_TOKEN=emu.token)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 5.0


def test_flush_at_exit_false_exits_without_waiting(start_emulator, run_python):
    emu = start_emulator("--latency-ms", "10000")
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, flush_at_exit=False, exit_timeout=8)
t.track("abandoned", user_id="u-1")
"""
    start = time.monotonic()
    result = run_python(code, EMU_URL=emu.url, EMU_TOKEN=emu.token)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 4.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
def test_after_fork_parent_and_child_both_deliver_and_nothing_is_sent_twice(start_emulator, run_python):
    emu = start_emulator("--latency-ms", "300")
    code = PRELUDE + """
t = trackcore.Tracker(token, base_url=url, max_in_flight=1, batch_size=1)
for i in range(3):
    t.track("before-fork", user_id=f"p-{i}")   # still queued at fork time
pid = os.fork()
if pid == 0:
    t.track("in-child", user_id="c-1")
    ok = t.flush(10)
    os._exit(0 if ok else 3)
t.track("in-parent", user_id="p-after")
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert t.flush(15)
print(t.stats()["delivered"])
"""
    result = run_python(code, EMU_URL=emu.url, EMU_TOKEN=emu.token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    events = emu.events()
    sent = collections.Counter((e["event_name"], e["user_id"]) for e in events)
    assert sent == {("before-fork", "p-0"): 1, ("before-fork", "p-1"): 1, ("before-fork", "p-2"): 1,
                    ("in-child", "c-1"): 1, ("in-parent", "p-after"): 1}, sent
    stats = emu.stats()
    assert stats["event_posts"] == 5 and stats["duplicates"] == 0, stats
