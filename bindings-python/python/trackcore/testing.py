"""Test helpers for code that tracks events: a pytest fixture with a
memory-mode tracker (validates exactly like production, sends nothing).

Installed as a pytest plugin, so the fixture is available in any test suite
once trackcore is installed::

    def test_upgrade_tracks_an_event(trackcore_tracker):
        upgrade(user, tracker=trackcore_tracker)
        assert trackcore_tracker.recorded()[0]["event_name"] == "upgraded-plan"
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from ._native import Tracker

__all__ = ["memory_tracker", "trackcore_tracker"]


def memory_tracker(**options: Any) -> Tracker:
    """A ``Tracker(memory=True, **options)``: events are validated with the
    production rules and recorded instead of sent (``recorded()``,
    ``clear_recorded()``). Needs no access token."""
    return Tracker(memory=True, **options)


@pytest.fixture
def trackcore_tracker() -> Iterator[Tracker]:
    """A fresh memory-mode tracker per test, shut down afterwards. Assert on
    ``trackcore_tracker.recorded()`` (a list of the event bodies as dicts)."""
    tracker = memory_tracker()
    try:
        yield tracker
    finally:
        tracker.shutdown(0)
