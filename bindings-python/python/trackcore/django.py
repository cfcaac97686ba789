"""Django integration: one tracker per process, configured from settings.

In ``settings.py``::

    TRACKCORE = {
        "access_token": os.environ["INTERCOM_ACCESS_TOKEN"],
        "region": "eu",
        "on_error": "myapp.tracking.report_failure",   # a callable or a dotted path
    }

Keys are the keyword arguments of :class:`trackcore.Tracker`. Then, from a
view, a signal receiver or a task::

    from trackcore.django import track, track_user

    track("upgraded-plan", user_id=account.pk, metadata={"plan": "pro"})
    track_user(request.user, "upgraded-plan", metadata={"plan": "pro"})

The tracker is created on first use, flushed at interpreter exit, and keeps
working in forked workers (gunicorn ``--preload``, uWSGI). Changing
``TRACKCORE`` with ``override_settings`` in tests replaces it; inside
``use_tracker(tracker)`` (and so under the ``trackcore_tracker`` pytest fixture
or ``trackcore.testing.capture()``) every call uses that tracker instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, Iterator, Optional

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ._native import Tracker

__all__ = ["get_tracker", "track", "track_user", "reset_tracker", "use_tracker"]

_logger = logging.getLogger("trackcore")
_lock = threading.Lock()
_tracker: Optional[Tracker] = None
# Set by use_tracker(): the tracker every call uses meanwhile, in every thread.
_override: Optional[Tracker] = None


def _options() -> Dict[str, Any]:
    options = dict(getattr(settings, "TRACKCORE", None) or {})
    on_error = options.get("on_error")
    if isinstance(on_error, str):
        options["on_error"] = import_string(on_error)
    return options


def get_tracker() -> Tracker:
    """The process's tracker, created from ``settings.TRACKCORE`` on first use;
    inside a ``use_tracker()`` block, that block's tracker. Thread-safe.
    Raises ``trackcore.ConfigError`` if the settings are invalid."""
    global _tracker
    override = _override
    if override is not None:
        return override
    tracker = _tracker
    if tracker is None:
        with _lock:
            if _tracker is None:
                _tracker = Tracker(**_options())
            tracker = _tracker
    return tracker


def track(event_name: str, **kwargs: Any) -> None:
    """``get_tracker().track(event_name, **kwargs)``: validate and queue one event.
    Raises ``InvalidEventError``/``InvalidTypeError`` for invalid input; never
    waits on the network."""
    get_tracker().track(event_name, **kwargs)


def track_user(user: Any, event_name: str, **kwargs: Any) -> bool:
    """Track an event for a Django user: ``user_id`` is ``user.pk`` and, when
    the user has one, ``email`` is ``user.email``. Extra keywords as in ``track``.

    Returns ``True`` when the event was queued. An anonymous user
    (``AnonymousUser``) or one not saved yet (``pk`` is ``None``) is not a
    contact Intercom knows: the event is skipped with one WARNING on the
    ``trackcore`` logger and ``False`` is returned; nothing is sent, never a
    made-up contact. Raises like ``track`` for invalid input."""
    pk = getattr(user, "pk", None)
    if pk is None or getattr(user, "is_anonymous", False) is True:
        _logger.warning(
            "track_user(%r) skipped: the user is anonymous or not saved (pk is None), so there is no "
            "contact to track it for; check request.user.is_authenticated first", event_name)
        return False
    kwargs.setdefault("user_id", str(pk))
    email = getattr(user, "email", None)
    if email and "email" not in kwargs:
        kwargs["email"] = email
    get_tracker().track(event_name, **kwargs)
    return True


def reset_tracker(timeout: Optional[float] = None) -> None:
    """Shut the current tracker down (flushing for at most ``timeout`` seconds)
    and forget it; the next use builds a new one from the settings."""
    global _tracker
    with _lock:
        tracker, _tracker = _tracker, None
    if tracker is not None:
        tracker.shutdown(timeout)


@contextlib.contextmanager
def use_tracker(tracker: Tracker) -> Iterator[Tracker]:
    """Make ``get_tracker()``, ``track()`` and ``track_user()`` use ``tracker``,
    in every thread, until the block ends; then restore what was there. The
    settings' tracker is neither created nor shut down. For tests:
    ``trackcore.testing.capture()`` and the ``trackcore_tracker`` fixture use it."""
    global _override
    previous, _override = _override, tracker
    try:
        yield tracker
    finally:
        _override = previous


@receiver(setting_changed)
def _settings_changed(setting: str, **_: Any) -> None:
    if setting == "TRACKCORE":
        reset_tracker(0)
