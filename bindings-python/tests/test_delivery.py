"""Delivery through the Python API against the real emulator over HTTP."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, List, Tuple

import pytest

import trackcore


def live(emu, **options: Any) -> trackcore.Tracker:
    options.setdefault("backoff_base", 0.05)
    options.setdefault("backoff_max", 0.2)
    return trackcore.Tracker(emu.token, base_url=emu.url, **options)


class Collector:
    """An on_error callback that remembers what it got and on which thread."""

    def __init__(self) -> None:
        self.calls: List[Tuple[dict, trackcore.TrackError]] = []
        self.threads: List[int] = []

    def __call__(self, event: dict, error: trackcore.TrackError) -> None:
        self.calls.append((event, error))
        self.threads.append(threading.get_ident())


def test_tracked_event_arrives_with_the_exact_body_and_a_python_user_agent(emulator):
    tracker = live(emulator)
    tracker.track("upgraded-plan", user_id=42, created_at=1_700_000_000,
                  metadata={"plan": "pro", "seats": 5, "annual": True, "price": trackcore.Money(34999, "eur")})
    assert tracker.flush(5) is True
    (event,) = emulator.events()
    assert {k: event[k] for k in ("event_name", "created_at", "user_id", "metadata")} == {
        "event_name": "upgraded-plan", "created_at": 1_700_000_000, "user_id": "42",
        "metadata": {"plan": "pro", "seats": 5, "annual": True, "price": {"amount": 34999, "currency": "eur"}},
    }
    assert "python/3." in event["headers"]["user-agent"]
    stats = tracker.stats()
    assert stats["delivered"] == 1 and stats["tracked"] == 1 and stats["queued"] == 0
    assert stats["auth_paused"] is False
    tracker.shutdown(2)


def test_retries_503s_then_delivers_once(emulator):
    emulator.script([{"status": 503}, {"status": 503}])
    tracker = live(emulator)
    tracker.track("retried", user_id="u-1")
    assert tracker.flush(10) is True
    assert len(emulator.events()) == 1
    stats = tracker.stats()
    assert stats["retried"] == 2 and stats["delivered"] == 1 and stats["failed"] == 0
    tracker.shutdown(2)


def test_permanent_400_reaches_on_error_off_the_caller_thread_and_the_trackcore_logger(emulator, caplog):
    caplog.set_level(logging.WARNING, logger="trackcore")
    emulator.script([{"status": 400, "code": "parameter_invalid", "message": "bad plan"}])
    errors = Collector()
    tracker = live(emulator, on_error=errors)
    tracker.track("refused", user_id="u-1", metadata={"plan": "pro"})
    assert tracker.flush(10) is True  # settled (failed), and reported before flush returns
    assert len(errors.calls) == 1
    event, error = errors.calls[0]
    assert event["event_name"] == "refused" and event["metadata"] == {"plan": "pro"}
    assert isinstance(error, trackcore.DeliveryError) and isinstance(error, trackcore.TrackError)
    assert error.code == "rejected" and error.status == 400 and "bad plan" in str(error)
    assert errors.threads[0] != threading.get_ident()
    assert tracker.stats()["failed_rejected"] == 1
    assert emulator.events() == []
    assert any(r.name == "trackcore" and "rejected" in r.getMessage() for r in caplog.records)
    tracker.shutdown(2)


def test_failures_are_logged_even_without_on_error(emulator, caplog):
    caplog.set_level(logging.WARNING, logger="trackcore")
    emulator.script([{"status": 422, "code": "parameter_invalid", "message": "nope"}])
    tracker = live(emulator)
    tracker.track("refused", user_id="u-1")
    assert tracker.flush(10) is True
    assert any("refused" in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records)
    tracker.shutdown(2)


def test_unknown_contact_404_is_reported_at_once_under_unknown_contact_report(start_emulator):
    emu = start_emulator("--require-known-users", "--known-user-id", "known")
    errors = Collector()
    tracker = live(emu, on_error=errors, unknown_contact="report")
    tracker.track("signed-up", user_id="stranger")
    tracker.track("signed-up", user_id="known")
    assert tracker.flush(10) is True
    assert [(e["user_id"], err.code, err.status) for e, err in errors.calls] == [("stranger", "contact_not_found", 404)]
    assert [e["user_id"] for e in emu.events()] == ["known"]
    tracker.shutdown(2)


def test_an_exception_in_on_error_is_logged_and_delivery_carries_on(emulator, caplog):
    caplog.set_level(logging.WARNING, logger="trackcore")
    emulator.script([{"status": 400}])

    def broken(event: dict, error: trackcore.TrackError) -> None:
        raise RuntimeError("callback bug")

    tracker = live(emulator, on_error=broken)
    tracker.track("first", user_id="u-1")
    assert tracker.flush(10) is True
    tracker.track("second", user_id="u-1")
    assert tracker.flush(10) is True
    assert [e["event_name"] for e in emulator.events()] == ["second"]
    assert any("on_error callback raised" in r.getMessage() and r.exc_info for r in caplog.records)
    tracker.shutdown(2)


def test_retries_exhausted_is_reported_once_with_its_code(emulator):
    emulator.script([{"status": 500}] * 3)
    errors = Collector()
    tracker = live(emulator, on_error=errors, max_retries=2)
    tracker.track("doomed", user_id="u-1")
    assert tracker.flush(10) is True
    # Three failures in a row: a notice that delivery is stalled, then the final outcome.
    assert [err.code for _, err in errors.calls] == ["delivery_stalled", "retries_exhausted"]
    assert tracker.stats()["failed_retries_exhausted"] == 1
    tracker.shutdown(2)


def test_flush_returns_false_within_its_timeout_when_intercom_is_slow(emulator):
    emulator.hold()
    tracker = live(emulator)
    tracker.track("slow", user_id="u-1")
    assert emulator.wait_held(1)
    start = time.monotonic()
    assert tracker.flush(0.3) is False
    assert time.monotonic() - start < 1.0
    tracker.shutdown(0)
    emulator.open()


def test_shutdown_is_bounded_and_reports_what_was_not_delivered(emulator):
    emulator.hold()
    errors = Collector()
    tracker = live(emulator, on_error=errors, max_in_flight=1)
    for i in range(3):
        tracker.track("pending", user_id=f"u-{i}")
    assert emulator.wait_held(1)
    start = time.monotonic()
    # The last fifth of the bound (200 ms) is the reports' time to reach the
    # callback: room for a loaded machine's scheduling, still a tight bound.
    assert tracker.shutdown(1.0) is False
    assert time.monotonic() - start < 1.5
    stats = tracker.stats()
    assert stats["dropped_shutdown"] == 3, stats
    assert sorted(err.code for _, err in errors.calls) == ["undelivered_at_shutdown"] * 3
    with pytest.raises(trackcore.TrackerClosedError) as info:
        tracker.track("late", user_id="u-1")
    assert info.value.code == "closed" and isinstance(info.value, RuntimeError)
    emulator.open()


def test_block_overflow_drops_the_event_after_block_timeout(emulator):
    emulator.hold()
    errors = Collector()
    tracker = live(emulator, on_error=errors, overflow="block", queue_capacity=1, max_in_flight=1, block_timeout=0.2)
    tracker.track("burst", user_id="u-0")
    assert emulator.wait_held(1)
    start = time.monotonic()
    for i in range(1, 4):
        tracker.track("burst", user_id=f"u-{i}")
    elapsed = time.monotonic() - start
    stats = tracker.stats()
    assert stats["dropped_queue_full"] == 2, stats  # one fits the queue; two wait 0.2 s each, then drop
    assert 0.4 <= elapsed < 2.0, elapsed
    emulator.open()
    assert tracker.flush(10)
    assert [err.code for _, err in errors.calls] == ["queue_full"] * 2
    tracker.shutdown(0)


def test_context_manager_delivers_on_exit_then_refuses_events(emulator):
    with live(emulator) as tracker:
        tracker.track("in-block", user_id="u-1")
    assert [e["event_name"] for e in emulator.events()] == ["in-block"]
    with pytest.raises(trackcore.TrackerClosedError):
        tracker.track("after", user_id="u-1")


def test_access_token_never_appears_in_repr_errors_or_logs(start_emulator, caplog):
    caplog.set_level(logging.DEBUG)
    emu = start_emulator()
    secret = "tok_do_not_leak_81723"
    errors = Collector()
    tracker = trackcore.Tracker(secret, base_url=emu.url, on_error=errors, max_retries=0, backoff_base=0.05)
    tracker.track("refused-token", user_id="u-1")
    tracker.flush(3)
    shown = [repr(tracker), str(tracker.stats())] + [f"{e} {err!r} {err}" for e, err in errors.calls]
    shown += [r.getMessage() for r in caplog.records]
    assert errors.calls and errors.calls[0][1].code == "unauthorized"
    assert not [s for s in shown if secret in s]
    tracker.shutdown(0)
    with pytest.raises(trackcore.ConfigError) as info:
        trackcore.Tracker(secret, base_url="ftp://nope")
    assert secret not in str(info.value) and info.value.field == "config.base_url"
