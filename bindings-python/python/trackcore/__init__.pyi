"""trackcore: server-side events for Intercom's Data Events API (typing stub)."""

from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Callable, Dict, List, Literal, Mapping, NamedTuple, Optional, Sequence, Type, Union

__version__: str
ERROR_CODES: List[str]
"""Every stable error code the core can produce."""

MetadataValue = Union[str, int, float, bool, None, datetime, date, Decimal, "Money", "RichLink"]
"""A metadata value. ``datetime``/``date`` only under keys ending in ``_date``."""

OnError = Callable[[Dict[str, Any], "TrackError"], Any]
"""``on_error(event, error)``: the event body as a dict and a ``DeliveryError``."""

class TrackError(Exception):
    """Base class of every trackcore error; ``code`` is the core's stable code."""

    code: str
    field: Optional[str]
    status: Optional[int]
    def __init__(self, message: str, code: str = ..., field: Optional[str] = ..., status: Optional[int] = ...) -> None: ...

class InvalidEventError(TrackError, ValueError):
    """``track()`` got an invalid value."""

class InvalidTypeError(TrackError, TypeError):
    """``track()`` got a value of a type Intercom cannot store."""

class TrackerClosedError(TrackError, RuntimeError):
    """``track()`` after ``shutdown()`` (code ``closed``)."""

class ConfigError(TrackError, ValueError):
    """An unknown or invalid option, or no access token."""

class DeliveryError(TrackError):
    """An event that could not be delivered; passed to ``on_error``, never raised."""

class Money:
    """A monetary amount: integer cents and an ISO 4217 code. Sent as ``{"amount", "currency"}``."""

    amount_cents: int
    currency: str
    def __init__(self, amount_cents: int, currency: str) -> None: ...

class RichLink:
    """A rich link: an http(s) URL and its text. Sent as ``{"url", "value"}``."""

    url: str
    value: str
    def __init__(self, url: str, value: str) -> None: ...

class OptionInfo(NamedTuple):
    """One tracker option as the core documents it."""

    name: str
    kind: str
    default: str
    doc: str

def options() -> List[OptionInfo]:
    """Every ``Tracker`` keyword option with its default, read from the core."""

class Tracker:
    """Sends events to Intercom in the background. Thread-safe; one per process.

    Every keyword option is the core's (see ``trackcore.options()``); omitted
    options keep the core's defaults. ``flush_at_exit``/``exit_timeout`` govern
    the flush at interpreter exit; ``on_error`` receives delivery failures.
    """

    def __init__(
        self,
        access_token: Optional[str] = None,
        region: Optional[Literal["us", "eu", "au"]] = None,
        *,
        on_error: Optional[OnError] = None,
        flush_at_exit: bool = True,
        exit_timeout: Optional[float] = None,
        base_url: Optional[str] = ...,
        api_version: str = ...,
        queue_capacity: int = ...,
        max_pending: int = ...,
        overflow: Literal["drop_newest", "drop_oldest", "block"] = ...,
        block_timeout: float = ...,
        max_in_flight: int = ...,
        rate_limit_per_minute: int = ...,
        request_timeout: float = ...,
        max_retries: int = ...,
        retry_deadline: float = ...,
        backoff_base: float = ...,
        backoff_max: float = ...,
        auth_probe_interval: float = ...,
        max_event_names: int = ...,
        allowed_event_names: Optional[Sequence[str]] = ...,
        dedupe: bool = ...,
        memory: bool = ...,
        batch_size: int = ...,
        drop_timeout: float = ...,
        user_agent_suffix: str = ...,
    ) -> None: ...
    def track(
        self,
        event_name: str,
        *,
        user_id: Optional[Union[str, int]] = None,
        id: Optional[str] = None,
        email: Optional[str] = None,
        created_at: Optional[Union[int, datetime]] = None,
        metadata: Optional[Mapping[str, MetadataValue]] = None,
    ) -> None:
        """Validate the event and queue it. Never waits on the network (except
        up to ``block_timeout`` under ``overflow="block"``, without the GIL).

        Raises ``InvalidEventError``/``InvalidTypeError`` for invalid input and
        ``TrackerClosedError`` after ``shutdown()``.
        """
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait (without the GIL) until everything tracked so far is settled;
        ``True`` if it all settled within ``timeout`` seconds (default: ``drop_timeout``)."""
    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush for at most ``timeout`` seconds, then stop; later ``track()`` raises."""
    def stats(self) -> Dict[str, Union[int, bool]]:
        """The core's counters (``tracked``, ``delivered``, ``failed``, ``dropped``, ...)."""
    def recorded(self) -> List[Dict[str, Any]]:
        """In memory mode, the recorded event bodies, oldest first."""
    def clear_recorded(self) -> None:
        """In memory mode, forget the recorded events."""
    @property
    def memory(self) -> bool:
        """Whether this tracker records instead of sending."""
    def __enter__(self) -> "Tracker": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

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
