"""The pytest plugin of trackcore (entry point ``pytest11``, so pytest loads it
whenever trackcore is installed): the ``trackcore_tracker`` fixture. Only pytest
imports this module; ``trackcore.testing`` works without pytest."""

from __future__ import annotations

from typing import Iterator

import pytest

from ._native import Tracker
from .testing import capture

__all__ = ["trackcore_tracker"]


@pytest.fixture
def trackcore_tracker() -> Iterator[Tracker]:
    """A fresh memory-mode tracker per test, shut down afterwards. Assert on
    ``trackcore_tracker.recorded()`` (a list of the event bodies as dicts).

    While the test runs, ``trackcore.django``'s ``track()``, ``track_user()``
    and ``get_tracker()`` use this tracker too, so nothing tracked through
    Django settings is sent anywhere."""
    with capture() as tracker:
        yield tracker
