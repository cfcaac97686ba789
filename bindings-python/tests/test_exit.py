"""Interpreter exit never aborts the process and never loses an event
silently, whatever the callback or daemon threads are doing at the time.
Each case runs in a fresh interpreter, several times (the failures these
guard against showed up in about half of the runs, or in all of them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

RUNS = 4


def run(code: str, emu) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMU_URL": emu.url, "EMU_TOKEN": emu.token}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def assert_clean_exit(result: subprocess.CompletedProcess) -> None:
    died = -result.returncode if result.returncode < 0 else None
    assert died is None, f"killed by {signal.Signals(died).name}: {result.stderr[-2000:]}"
    assert result.returncode == 0, result.stderr[-2000:]


ON_ERROR_RELEASES_THE_GIL = """
import atexit, logging, os, time
logging.basicConfig(level=logging.WARNING)
heard = []
t = None
@atexit.register            # registered first, so it runs after trackcore's exit hook
def report():
    s = t.stats()
    print(len(heard), s["dropped_shutdown"], s["reports_dropped"], s["tracked"], flush=True)
import trackcore
def on_error(event, error):
    time.sleep(0.0005)      # releases the GIL inside the callback
    heard.append(error.code)
t = trackcore.Tracker(os.environ["EMU_TOKEN"], base_url=os.environ["EMU_URL"], on_error=on_error, exit_timeout=2)
for i in range(200):
    t.track("at-exit", user_id=f"u-{i}")
"""


@pytest.mark.parametrize("attempt", range(RUNS))
def test_exit_with_a_callback_that_releases_the_gil_is_clean_and_every_event_is_counted(emulator, attempt):
    emulator.hold()  # nothing can be delivered: every event is given up at exit
    result = run(ON_ERROR_RELEASES_THE_GIL, emulator)
    emulator.open()
    assert_clean_exit(result)
    heard, given_up, unreported, tracked = map(int, result.stdout.split())
    assert (tracked, given_up) == (200, 200), result.stdout
    assert heard + unreported == 200, result.stdout
    assert "shutdown gave up on 200 undelivered events" in result.stderr, result.stderr[-2000:]


DAEMONS_STILL_TRACKING = """
import os, threading, trackcore
t = trackcore.Tracker(os.environ["EMU_TOKEN"], base_url=os.environ["EMU_URL"], exit_timeout=0.5,
                      overflow="block", queue_capacity=50, block_timeout=5)
started = threading.Barrier(5)
def spam(n):
    started.wait()
    i = 0
    while True:
        t.track("daemon", user_id=f"d{n}-{i}")
        i += 1
        if i % 100 == 0:
            t.flush(0.01)
for n in range(4):
    threading.Thread(target=spam, args=(n,), daemon=True).start()
started.wait()
"""


@pytest.mark.parametrize("attempt", range(RUNS))
def test_exit_while_daemon_threads_are_inside_track_and_flush_is_clean(emulator, attempt):
    emulator.hold()  # the queue fills, so the daemons wait inside track() (GIL released) at exit
    result = run(DAEMONS_STILL_TRACKING, emulator)
    emulator.open()
    assert_clean_exit(result)
