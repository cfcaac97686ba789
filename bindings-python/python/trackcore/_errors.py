"""Exceptions of trackcore, and the glue that hands delivery failures to
``on_error`` and the ``trackcore`` logger.

Every exception carries the core's stable machine-readable ``code`` (the same
string in Python, Node, Kotlin and Rust) and, when there is one, the ``field``
it is about (``"event_name"``, ``"metadata.plan"``, ``"config.overflow"``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Optional

__all__ = [
    "TrackError",
    "InvalidEventError",
    "InvalidTypeError",
    "TrackerClosedError",
    "ConfigError",
    "DeliveryError",
]

_logger = logging.getLogger("trackcore")


class TrackError(Exception):
    """Base class of every trackcore error.

    ``code`` is the core's stable error code (see ``trackcore.ERROR_CODES``),
    ``field`` the input it is about or ``None``, ``status`` the HTTP status for
    errors Intercom answered (``rejected``, ``unauthorized``) or ``None``.
    """

    code: str
    field: Optional[str]
    status: Optional[int]

    def __init__(self, message: str, code: str = "", field: Optional[str] = None, status: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.field = field
        self.status = status

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.code, self.field, self.status))


class InvalidEventError(TrackError, ValueError):
    """``track()`` was given an invalid value (empty name, no identity, a date
    under a key not ending in ``_date``, more than 10 metadata keys, ...)."""


class InvalidTypeError(TrackError, TypeError):
    """``track()`` was given a value of a type Intercom cannot store (a list,
    a nested dict that is neither money nor a rich link, a foreign object)."""


class TrackerClosedError(TrackError, RuntimeError):
    """``track()`` was called after ``shutdown()`` (code ``closed``)."""


class ConfigError(TrackError, ValueError):
    """A tracker option is unknown or has an invalid value (code
    ``invalid_config``), or no access token was found (``missing_access_token``)."""


class DeliveryError(TrackError):
    """An event could not be delivered. Never raised: passed to ``on_error``
    and logged to the ``trackcore`` logger. Codes: ``queue_full``,
    ``rejected``, ``contact_not_found``, ``retries_exhausted``, ``undelivered_at_shutdown``; and two
    notices about an event that is kept and retried: ``unauthorized`` (delivery
    paused on a refused token) and ``delivery_stalled`` (attempts keep failing)."""


def _report(callback: Optional[Callable[[dict, DeliveryError], Any]], body: str, error: TrackError) -> None:
    """Called by the core's reporter thread (with the GIL) for each failure."""
    try:
        event = json.loads(body)
    except ValueError:
        event = {}
    # The core logs losses itself (to this logger, at most a line per 5 s with
    # counts) and delivery's state once per change: nothing to log per event here.
    if callback is None:
        return
    try:
        callback(event, error)
    except Exception:
        _logger.exception("the on_error callback raised; trackcore carries on")
