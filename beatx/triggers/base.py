"""The trigger interface and the time helpers every trigger shares.

A trigger is pure fire-time math: it never reads the clock, never does I/O and keeps no
iteration state. ``next_fire_time(after)`` depends on ``after`` alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beatx.errors import InvalidTriggerError, SerializationError

__all__ = [
    "STATE_VERSION",
    "Trigger",
    "as_aware",
    "get_timezone",
    "timezone_name",
]

#: Format version written into every serialised trigger.
STATE_VERSION = 1

_ONE_MICROSECOND = timedelta(microseconds=1)


def get_timezone(value: str | tzinfo | None, *, default: tzinfo = UTC) -> tzinfo:
    """Return a tzinfo for an IANA name, a tzinfo, or ``None`` (meaning ``default``).

    :raises InvalidTriggerError: if the name is not a known IANA timezone.
    """
    if value is None:
        return default
    if isinstance(value, tzinfo):
        return value
    if not isinstance(value, str) or not value:
        raise InvalidTriggerError(f"timezone must be an IANA name such as 'Europe/Paris', got {value!r}")
    if value.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTriggerError(f"unknown timezone {value!r}") from exc


def timezone_name(tz: tzinfo) -> str:
    """The name a timezone is stored under (an IANA key, or "UTC")."""
    if tz is UTC:
        return "UTC"
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    name = tz.tzname(None)
    if name in ("UTC", "UTC+00:00"):
        return "UTC"
    raise InvalidTriggerError(f"timezone {tz!r} has no IANA name; pass a zoneinfo.ZoneInfo or a name")


def timezone_key(tz: tzinfo | None) -> str | None:
    """A timezone as triggers compare it: its stored name, else its repr (a zone with no
    name); None for none."""
    if tz is None:
        return None
    try:
        return timezone_name(tz)
    except InvalidTriggerError:
        return repr(tz)


def as_aware(value: datetime, tz: tzinfo) -> datetime:
    """The instant of a naive datetime read as a wall time in ``tz``; an aware one as it is.

    beatx's one rule for naive datetimes, the rule of a fixed-time cron job: a wall time that
    daylight saving skips is the instant of the jump (02:30 on a spring-forward night is the
    moment clocks show 03:00), a repeated one is its first pass.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    from beatx.triggers.cron import wall_to_instant

    instant = wall_to_instant(value.replace(microsecond=0), tz) + timedelta(microseconds=value.microsecond)
    return instant.astimezone(tz)


def require_aware(value: datetime, name: str = "after") -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTriggerError(f"{name} must be a timezone-aware datetime, got naive {value!r}")


def check_state(data: dict[str, Any], kind: str) -> None:
    """Validate the envelope of a serialised trigger."""
    if data.get("kind") != kind:
        raise SerializationError(f"expected a {kind!r} trigger, got kind {data.get('kind')!r}")
    version = data.get("version", STATE_VERSION)
    if not isinstance(version, int) or version > STATE_VERSION:
        raise SerializationError(
            f"this {kind} trigger was stored with format version {version!r}, but this beatx "
            f"reads versions up to {STATE_VERSION}; upgrade beatx to read it"
        )


class Trigger(ABC):
    """Computes when a job fires.

    Subclasses are immutable value objects: two triggers with the same fields are equal.
    """

    #: The name under which the trigger is serialised ("interval", "cron", "date").
    kind: ClassVar[str]

    def _key(self) -> tuple[Any, ...]:
        """The fields that make two triggers of this class equal (by default none: a trigger
        is only equal to itself)."""
        return (id(self),)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Trigger)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.kind, *self._key()))

    @abstractmethod
    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the earliest fire time strictly after ``after``.

        :param after: a timezone-aware datetime.
        :returns: a timezone-aware datetime in UTC, or ``None`` if the trigger never fires again.
        :raises ValueError: if ``after`` is naive.
        """

    def for_job(self, job_id: str) -> Trigger:
        """This trigger as the job ``job_id`` uses it: a trigger whose times depend on the job
        (a cron ``H`` field, hashed from the job id) returns a copy keyed by it; the default
        returns ``self``. A :class:`~beatx.Job` calls it when it is built."""
        return self

    def count_fire_times(self, start: datetime, end: datetime) -> int | None:
        """How many fire times lie in ``[start, end)``, where ``start`` is one, when the
        trigger can say so without walking them (a fixed period); None when it cannot, and
        the caller walks them. The planning of a long outage uses it to count the fires it
        does not run at the cost of one evaluation."""
        return None

    def first_fire_time(self, now: datetime) -> datetime | None:
        """Return the first fire time of a job created at ``now``: the earliest at or after it.

        One-shot triggers override this to return their run time even when it is in the past,
        so the misfire rules, not the trigger, decide whether a late one-shot still runs.
        """
        return self.next_fire_time(now - _ONE_MICROSECOND)

    @property
    def anchor(self) -> datetime | None:
        """The instant :meth:`resolve` fixed from its ``now`` (an interval's start, an RRULE's
        dtstart), so the same unresolved trigger resolved at it again compares equal; None
        for a trigger whose :meth:`resolve` does not use ``now``."""
        return None

    def resolve(self, *, now: datetime, timezone: tzinfo) -> Trigger:
        """Return this trigger with every default fixed: the timezone when none was given,
        and for an interval without ``start_date`` the anchor ``now``.

        A job stores the resolved trigger, so its fire times never depend on when they are
        computed. The default implementation returns ``self``.
        """
        return self

    @abstractmethod
    def describe(self) -> str:
        """A short plain-English reading, e.g. "every 5 minutes" or "At 03:00 (Europe/Paris)"."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict with ``kind`` and ``version`` keys that ``from_dict`` reads."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        """Rebuild a trigger written by :meth:`to_dict`.

        :raises SerializationError: on an unknown kind or a newer format version.
        """
