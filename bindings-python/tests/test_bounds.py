"""Every call keeps its bound and releases the GIL while it waits, whatever
other threads are doing: the binding holds no lock of its own, and fork, exit
and shutdown are the core's job. Synchronised on the emulator's gate (requests
held until the test releases them), never on sleeps."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest
import trackcore


def live(emu, **options: Any) -> trackcore.Tracker:
    options.setdefault("backoff_base", 0.05)
    options.setdefault("backoff_max", 0.2)
    return trackcore.Tracker(emu.token, base_url=emu.url, **options)


def one_request_held(emulator, **options: Any) -> trackcore.Tracker:
    """A tracker with one event sent and its answer held at the emulator's gate."""
    emulator.hold()
    tracker = live(emulator, **options)
    tracker.track("held", user_id="u-1")
    assert emulator.wait_held(1)
    return tracker


@contextmanager
def gil_only_released_by_blocking_calls() -> Iterator[None]:
    """While inside, the interpreter never takes the GIL from this thread on
    its own (a 100 s switch interval): another Python thread runs only if a
    call in this thread releases the GIL."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(100)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_in_thread_once_released(action: Callable[[], None]) -> Callable[[], threading.Thread]:
    """A thread that runs `action` once `go()` is called: see the tests below."""
    go = threading.Event()
    thread = threading.Thread(target=lambda: (go.wait(), action()))
    thread.start()

    def release() -> threading.Thread:
        go.set()
        return thread

    return release


def test_flush_releases_the_gil_while_it_waits(emulator):
    tracker = one_request_held(emulator)
    go = run_in_thread_once_released(emulator.open)
    with gil_only_released_by_blocking_calls():
        thread = go()
        # Only another thread can open the gate, and it can only run if flush()
        # releases the GIL: holding it, the flush would time out.
        settled = tracker.flush(20)
    thread.join()
    assert settled is True
    tracker.shutdown(2)


def test_track_under_block_overflow_releases_the_gil_while_it_waits_for_room(emulator):
    emulator.hold()
    tracker = live(emulator, overflow="block", queue_capacity=1, max_in_flight=1, block_timeout=20)
    tracker.track("in-flight", user_id="u-0")
    assert emulator.wait_held(1)
    tracker.track("queued", user_id="u-1")  # the queue is full now
    go = run_in_thread_once_released(emulator.open)
    with gil_only_released_by_blocking_calls():
        thread = go()
        tracker.track("waits-for-room", user_id="u-2")
    thread.join()
    assert tracker.stats()["dropped_queue_full"] == 0, tracker.stats()
    assert tracker.flush(10)
    assert tracker.stats()["delivered"] == 3


def test_shutdown_keeps_its_bound_while_another_thread_flushes(emulator):
    tracker = one_request_held(emulator)
    flusher = threading.Thread(target=tracker.flush, args=(8,))
    flusher.start()
    start = time.monotonic()
    assert tracker.shutdown(0.5) is False
    assert time.monotonic() - start < 1.5, time.monotonic() - start
    flusher.join(5)
    assert not flusher.is_alive(), "the flush ended with the shutdown"
    emulator.open()


def test_track_answers_at_once_during_another_threads_shutdown(emulator):
    tracker = one_request_held(emulator)
    closer = threading.Thread(target=tracker.shutdown, args=(3,))
    closer.start()
    start = time.monotonic()
    try:
        tracker.track("during-shutdown", user_id="u-2")
    except trackcore.TrackerClosedError:
        pass  # the shutdown got there first: answered at once too
    assert time.monotonic() - start < 0.5, time.monotonic() - start
    emulator.open()
    closer.join()


def test_a_second_shutdown_keeps_its_own_shorter_deadline(emulator):
    tracker = one_request_held(emulator)
    first = threading.Thread(target=tracker.shutdown, args=(20,))
    first.start()
    start = time.monotonic()
    tracker.shutdown(0.1)
    assert time.monotonic() - start < 0.8, time.monotonic() - start
    first.join(10)
    assert not first.is_alive()
    emulator.open()


def test_flush_from_inside_on_error_returns_at_once(emulator):
    emulator.script([{"status": 400}])
    seen = []

    def on_error(event: dict, error: trackcore.TrackError) -> None:
        start = time.monotonic()
        seen.append((tracker.flush(60), time.monotonic() - start))

    tracker = live(emulator, on_error=on_error)
    tracker.track("refused", user_id="u-1")
    assert tracker.flush(10) is True
    assert len(seen) == 1
    assert seen[0][0] is False and seen[0][1] < 1.0, seen
    tracker.shutdown(2)


def test_rate_limiter_is_an_option_not_silently_ignored(emulator):
    assert live(emulator, rate_limiter="none").flush(1)
    with pytest.raises(trackcore.ConfigError) as info:
        live(emulator, rate_limiter="redis-please")
    assert info.value.field == "config.rate_limiter"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
def test_fork_while_another_thread_waits_inside_track_does_not_deadlock(emulator, run_python):
    emulator.hold()
    code = """
import os, sys, threading, time, trackcore
url, token = os.environ["EMU_URL"], os.environ["EMU_TOKEN"]
t = trackcore.Tracker(token, base_url=url, overflow="block", queue_capacity=1, max_in_flight=1, block_timeout=30)
t.track("parent", user_id="p-0")
t.track("parent", user_id="p-1")                 # fills the queue
waiter = threading.Thread(target=t.track, args=("parent",), kwargs={"user_id": "p-2"})
waiter.start()
deadline = time.monotonic() + 20
while t.stats()["blocked"] != 1:                 # the other thread is inside track(), waiting for room
    assert time.monotonic() < deadline, t.stats()
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    t.track("child", user_id="c-0")
    os._exit(0 if t.flush(20) else 3)
print(pid, flush=True)
sys.stdin.readline()                             # the test opens the gate once the child's event is held
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
waiter.join()
assert t.flush(20), t.stats()
assert t.stats()["delivered"] == 3, t.stats()
"""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EMU_URL": emulator.url, "EMU_TOKEN": emulator.token})
    try:
        assert proc.stdout.readline().strip().isdigit(), "forked"
        # The parent's first event and the child's: both held, so the child runs.
        assert emulator.wait_held(2, timeout=20), "the child tracked and sent its event"
        emulator.open()
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    sent = collections.Counter((e["event_name"], e["user_id"]) for e in emulator.events())
    assert sent == {("parent", "p-0"): 1, ("parent", "p-1"): 1, ("parent", "p-2"): 1, ("child", "c-0"): 1}, sent


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
def test_fork_during_a_long_flush_does_not_freeze_other_threads(emulator):
    tracker = one_request_held(emulator)
    flusher = threading.Thread(target=tracker.flush, args=(5,))
    flusher.start()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    forked_in = time.monotonic() - start
    os.waitpid(pid, 0)
    assert forked_in < 0.5, forked_in
    emulator.open()
    flusher.join()
    assert tracker.flush(10)


def test_exit_timeout_bounds_exit_while_another_thread_flushes(emulator, run_python):
    emulator.hold()
    code = """
import os, threading, trackcore
t = trackcore.Tracker(os.environ["EMU_TOKEN"], base_url=os.environ["EMU_URL"], exit_timeout=0.5)
t.track("held", user_id="u-1")
threading.Thread(target=t.flush, args=(30,), daemon=True).start()
"""
    start = time.monotonic()
    result = run_python(code, EMU_URL=emulator.url, EMU_TOKEN=emulator.token)
    took = time.monotonic() - start
    emulator.open()
    assert result.returncode == 0, result.stderr
    assert took < 4.0, took
