"""The disk spool (``spool_dir``) from Python, against a real emulator: what a
shutdown leaves is delivered by the next tracker, a tracking process killed
with SIGKILL loses nothing it had acknowledged with ``sync()``, and a bad
directory is a ``ConfigError`` naming the option. Outages are a closed port;
the kill waits on the process's own "synced" lines, never on a clock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

import trackcore

from conftest import TOKEN


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def arrived(emulator) -> set:
    return {e["user_id"] for e in emulator.events()}


def test_what_a_shutdown_leaves_is_delivered_by_the_next_tracker(tmp_path, emulator):
    down = f"http://127.0.0.1:{closed_port()}"
    t = trackcore.Tracker(access_token=TOKEN, base_url=down, spool_dir=str(tmp_path), backoff_base=0.05, backoff_max=0.2)
    for i in range(500):
        t.track("spooled", user_id=f"p-{i}")
    assert t.sync(10)
    assert t.shutdown(0.3) is False
    # Counted once the pipeline has stopped: a second shutdown waits for that.
    assert t.shutdown(30) is False
    s = t.stats()
    assert (s["tracked"], s["persisted"], s["dropped"]) == (500, 500, 0), s

    t2 = trackcore.Tracker(access_token=TOKEN, base_url=emulator.url, spool_dir=str(tmp_path))
    assert t2.flush(30)
    s = t2.stats()
    assert (s["recovered"], s["delivered"], s["spooled"], s["queued"]) == (500, 500, 0, 0), s
    assert arrived(emulator) == {f"p-{i}" for i in range(500)}
    assert t2.shutdown(5)


CHILD = textwrap.dedent(
    """
    import sys, threading, trackcore
    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t = trackcore.Tracker(access_token="%s", base_url=url, spool_dir=spool, rate_limiter="none")
    for i in range(n):
        t.track("killed", user_id=f"k-{i}")
        if (i + 1) %% 250 == 0:
            assert t.sync(30)
            print("synced", i + 1, flush=True)
    threading.Event().wait()
    """
    % TOKEN
)


def test_kill_9_mid_stream_loses_nothing_that_sync_acknowledged(tmp_path, start_emulator):
    emulator = start_emulator("--latency-ms", "20")
    n = 5000
    child = subprocess.Popen([sys.executable, "-c", CHILD, emulator.url, str(tmp_path), str(n)],
                             stdout=subprocess.PIPE, text=True)
    synced = 0
    try:
        while synced < n // 2:
            line = child.stdout.readline()
            assert line, "the tracking process ended early"
            if line.startswith("synced "):
                synced = int(line.split()[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    t = trackcore.Tracker(access_token=TOKEN, base_url=emulator.url, spool_dir=str(tmp_path))
    assert t.flush(120)
    s = t.stats()
    assert s["recovered"] > 0 and s["delivered"] == s["recovered"] and s["dropped"] == 0, s
    missing = {f"k-{i}" for i in range(synced)} - arrived(emulator)
    assert not missing, f"{len(missing)} acknowledged events never arrived"
    t.shutdown(5)


def test_a_spool_dir_that_cannot_be_used_is_a_config_error_naming_it(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(trackcore.ConfigError) as e:
        trackcore.Tracker(access_token=TOKEN, base_url="http://127.0.0.1:9", spool_dir=str(not_a_dir / "sub"))
    assert e.value.code == "invalid_config"
    assert "spool_dir" in str(e.value)
    with pytest.raises(trackcore.ConfigError, match="spool_max_bytes"):
        trackcore.Tracker(memory=True, spool_max_bytes=10)
