"""trackcore: server-side events for Intercom's Data Events API.

``track()`` validates on your thread in about a microsecond and never waits on
the network; a background pipeline delivers, paces and retries. Quickstart::

    import trackcore

    tracker = trackcore.Tracker("<access token>")      # or INTERCOM_ACCESS_TOKEN
    tracker.track("upgraded-plan", user_id="u-123", metadata={"plan": "pro"})

Delivery problems never raise: they go to ``on_error(event, error)`` and to the
``trackcore`` logger. Trackers flush at interpreter exit (bounded by
``exit_timeout``) and keep working in a child after ``os.fork()``.
"""

from __future__ import annotations

import atexit as _atexit
from typing import List, NamedTuple

from . import _native
from ._errors import (
    ConfigError,
    DeliveryError,
    InvalidEventError,
    InvalidTypeError,
    TrackError,
    TrackerClosedError,
)
from ._native import ERROR_CODES, Money, RichLink, Tracker
from ._options import describe_tracker as _describe_tracker

__all__ = [
    "Tracker",
    "Money",
    "RichLink",
    "TrackError",
    "InvalidEventError",
    "InvalidTypeError",
    "TrackerClosedError",
    "ConfigError",
    "DeliveryError",
    "ERROR_CODES",
    "OptionInfo",
    "options",
    "__version__",
]

__version__: str = _native.CORE_VERSION
"""The version of trackcore (the core and this binding share it)."""


class OptionInfo(NamedTuple):
    """One tracker option as the core documents it."""

    name: str
    """The keyword argument of ``Tracker``."""
    kind: str
    """``str``, ``int``, ``float`` (seconds), ``bool`` or ``list``."""
    default: str
    """The core's default, rendered as text (empty: unset)."""
    doc: str
    """One line of documentation."""


def options() -> List[OptionInfo]:
    """Every ``Tracker`` keyword option with its default, read from the core."""
    return [OptionInfo(*o) for o in _native.options()]


for _cls in (TrackError, InvalidEventError, InvalidTypeError, TrackerClosedError, ConfigError, DeliveryError):
    _cls.__module__ = __name__

# help(Tracker) and inspect.signature(Tracker) list every option with its type
# and default, from the core (computed on first use; track() is untouched).
_describe_tracker(Tracker)

# Flush every tracker at interpreter exit (per-tracker opt-out: flush_at_exit=False).
_atexit.register(_native._at_exit)
# No fork hook is needed: after os.fork() the core notices it is in the child
# on the next call, starts a fresh pipeline and never resends the parent's queue.
