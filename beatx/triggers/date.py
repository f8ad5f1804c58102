"""One-shot triggers: fire once at a given time."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import (
    STATE_VERSION,
    Trigger,
    as_aware,
    check_state,
    get_timezone,
    require_aware,
    timezone_name,
)

__all__ = ["DateTimeTrigger", "parse_datetime", "parse_iso"]


def parse_iso(value: datetime | date | str, what: str = "run_at") -> datetime:
    """Parse a datetime, a date, or one of the ISO forms ``2026-12-25T10:30:00``,
    ``2026-12-25T10:30:00+00:00``, ``2026-12-25 10:30:00`` and ``2026-12-25``.

    The result is naive when the value carries no offset.

    :raises InvalidTriggerError: naming ``what`` and the value when it cannot be read.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        raise InvalidTriggerError(f"{what} must be a datetime or an ISO 8601 string, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTriggerError(
            f"{what} {value!r} is not a date: use forms such as '2026-12-25T10:30:00', "
            "'2026-12-25T10:30:00+00:00', '2026-12-25 10:30:00' or '2026-12-25'"
        ) from None


def parse_datetime(value: datetime | date | str, tz: tzinfo, what: str = "run_at") -> datetime:
    """:func:`parse_iso`, with ``tz`` attached when the value has no offset. The result is aware."""
    return as_aware(parse_iso(value, what), tz)


class DateTimeTrigger(Trigger):
    """Fires once, at ``run_at``.

    A naive ``run_at`` (or a string without an offset) means ``timezone``; when that is
    ``None`` too, the scheduler's timezone, fixed when the job is added (UTC by default).
    """

    kind = "date"
    __slots__ = ("_naive", "run_at", "timezone")

    def __init__(self, run_at: datetime | date | str, timezone: str | tzinfo | None = None) -> None:
        self.timezone: tzinfo | None = None if timezone is None else get_timezone(timezone)
        probe = parse_datetime(run_at, UTC)
        self._naive: datetime | date | str | None = None
        if self.timezone is None and not _has_offset(run_at):
            # Keep the wall time until resolve() learns the scheduler's timezone.
            self._naive = run_at
        self.run_at: datetime = parse_datetime(run_at, self.timezone or UTC) if self.timezone else probe

    def next_fire_time(self, after: datetime) -> datetime | None:
        require_aware(after)
        run_at = self.run_at.astimezone(UTC)
        return run_at if run_at > after else None

    def first_fire_time(self, now: datetime) -> datetime | None:
        return self.run_at.astimezone(UTC)

    def resolve(self, *, now: datetime, timezone: tzinfo) -> DateTimeTrigger:
        if self._naive is None:
            return self
        return DateTimeTrigger(self._naive, timezone)

    def describe(self) -> str:
        return f"once at {self.run_at.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "run_at": self.run_at.isoformat(),
            "timezone": timezone_name(self.timezone) if self.timezone else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DateTimeTrigger:
        check_state(data, cls.kind)
        return cls(data["run_at"], data.get("timezone"))

    def _key(self) -> tuple[Any, ...]:
        return (self.run_at,)

    def __repr__(self) -> str:
        return f"DateTimeTrigger({self.run_at.isoformat()!r})"


def _has_offset(value: datetime | date | str) -> bool:
    if isinstance(value, datetime):
        return value.tzinfo is not None and value.utcoffset() is not None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            return True
        try:
            return datetime.fromisoformat(text).tzinfo is not None
        except ValueError:
            return False
    return False
