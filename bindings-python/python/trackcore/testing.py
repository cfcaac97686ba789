"""Test helpers for code that tracks events. Needs nothing but trackcore:
usable from unittest, Django's test runner or a script, without pytest.

``memory_tracker()`` is a tracker that validates exactly like production and
records instead of sending; ``capture()`` is one for a ``with`` block that also
receives what ``trackcore.django.track()``/``track_user()`` send meanwhile::

    with trackcore.testing.capture() as tracker:
        client.post("/accounts/42/upgrade/", {"plan": "pro"})
    assert tracker.recorded()[0]["event_name"] == "upgraded-plan"

With pytest, the ``trackcore_tracker`` fixture (``trackcore.pytest_plugin``,
registered when trackcore is installed) is ``capture()`` around each test.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any, Iterator

from ._native import Tracker

__all__ = ["memory_tracker", "capture"]


def memory_tracker(**options: Any) -> Tracker:
    """A ``Tracker(memory=True, **options)``: events are validated with the
    production rules and recorded instead of sent (``recorded()``,
    ``clear_recorded()``). Needs no access token."""
    return Tracker(memory=True, **options)


@contextlib.contextmanager
def capture(**options: Any) -> Iterator[Tracker]:
    """A ``memory_tracker(**options)`` for the block. When the block ends the
    tracker records what is still on its way through the pipeline, then shuts
    down (at most ``drop_timeout``), so ``recorded()`` after the block has
    every event tracked inside it.

    While the block runs, ``trackcore.django.get_tracker()`` returns it (when
    Django is installed), so ``track()`` and ``track_user()`` anywhere in the
    code under test record into it, from any thread, whatever ``TRACKCORE``
    says; the settings' tracker is neither created nor used."""
    tracker = memory_tracker(**options)
    try:
        if importlib.util.find_spec("django") is None:
            yield tracker
        else:
            from . import django as trackcore_django

            with trackcore_django.use_tracker(tracker):
                yield tracker
    finally:
        tracker.shutdown()
