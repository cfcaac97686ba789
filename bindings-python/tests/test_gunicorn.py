"""A real `gunicorn --preload` deployment: the tracker is created in the master
before the workers fork, events are queued in the master at fork time, and each
worker must deliver its own events without resending the master's."""
import collections
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

APP = textwrap.dedent(
    """
    import itertools
    import os
    import trackcore

    requests = itertools.count()  # distinct users, so no two requests are copies of one event

    tracker = trackcore.Tracker(os.environ["EMU_TOKEN"], base_url=os.environ["EMU_URL"], max_in_flight=1)
    # Queued in the master, still there when the workers fork (the test holds the emulator's answers).
    for i in range(3):
        tracker.track("booted", user_id=f"master-{i}")

    def app(environ, start_response):
        tracker.track("served", user_id=f"worker-{os.getpid()}-{next(requests)}", metadata={"path": environ["PATH_INFO"]})
        ok = tracker.flush(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{os.getpid()} {ok}".encode()]
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_preload_workers_deliver_their_own_events_and_never_the_masters_twice(start_emulator, tmp_path):
    emu = start_emulator()
    emu.hold()  # the master's first event stays in flight and the other two queued until a worker has sent one
    opener = threading.Thread(target=lambda: emu.wait_held(2, timeout=60) and emu.open())
    opener.start()
    (tmp_path / "wsgi_app.py").write_text(APP)
    port = free_port()
    env = dict(os.environ, EMU_URL=emu.url, EMU_TOKEN=emu.token, PYTHONPATH=str(tmp_path))
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi_app:app"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        answers = []
        deadline = time.monotonic() + 30
        while len({a.split()[0] for a in answers}) < 2 and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/upgrade", timeout=15) as resp:
                    answers.append(resp.read().decode())
            except OSError:
                time.sleep(0.2)
        assert len({a.split()[0] for a in answers}) == 2, f"both workers answered: {answers}"
        assert all(a.endswith("True") for a in answers), answers
    finally:
        gunicorn.terminate()  # the master's atexit flush delivers what it queued
        out, _ = gunicorn.communicate(timeout=30)
    opener.join()
    assert gunicorn.returncode == 0, out
    events = emu.wait_for_events(3 + len(answers), timeout=15)
    sent = collections.Counter((e["event_name"], e["user_id"]) for e in events)
    assert sent[("booted", "master-0")] == sent[("booted", "master-1")] == sent[("booted", "master-2")] == 1, sent
    assert sum(n for (name, _), n in sent.items() if name == "served") == len(answers), sent
    stats = emu.stats()
    assert stats["duplicates"] == 0 and stats["event_posts"] == 3 + len(answers), stats
