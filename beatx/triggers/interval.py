"""Fixed-period triggers: fire times are ``start + k * interval``, so a late run never drifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import STATE_VERSION, Trigger, as_aware, check_state, require_aware
from beatx.triggers.date import parse_datetime, parse_iso

__all__ = ["IntervalTrigger"]

_MICROSECOND = timedelta(microseconds=1)
_UNITS = (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))


class IntervalTrigger(Trigger):
    """Fires every ``weeks + days + hours + minutes + seconds``.

    The anchor is ``start_date`` or, when it is not given, the moment the job is added. With
    ``start_now=True`` the first fire is at the anchor; otherwise one interval after it.
    No fire is later than ``end_date``. A naive ``start_date`` / ``end_date`` (or a string
    without an offset) is a wall time in the scheduler's timezone, fixed when the job is added
    (as for cron and one-shot jobs); until then it is read as UTC.
    """

    kind = "interval"
    __slots__ = ("_wall_end", "_wall_start", "end_date", "interval", "start_date", "start_now")

    def __init__(
        self,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
        start_now: bool = True,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
    ) -> None:
        amounts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days, "weeks": weeks}
        for unit, amount in amounts.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise InvalidTriggerError(f"interval {unit} must be a number, got {amount!r}")
            if amount < 0:
                raise InvalidTriggerError(f"interval {unit} must not be negative, got {amount!r}")
        self.interval = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks)
        if self.interval <= timedelta(0):
            raise InvalidTriggerError(
                "interval must be greater than 0: give seconds, minutes, hours, days or weeks"
            )
        self.start_now = bool(start_now)
        self.start_date = None if start_date is None else parse_datetime(start_date, UTC, "start_date")
        self.end_date = None if end_date is None else parse_datetime(end_date, UTC, "end_date")
        # Naive values keep their wall time until resolve() learns the scheduler's timezone.
        self._wall_start = _wall_time(start_date, "start_date")
        self._wall_end = _wall_time(end_date, "end_date")
        self._check_order()

    def _check_order(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise InvalidTriggerError(
                f"end_date {self.end_date.isoformat()} is before start_date {self.start_date.isoformat()}"
            )

    def _first(self) -> datetime:
        assert self.start_date is not None
        return self.start_date if self.start_now else self.start_date + self.interval

    def next_fire_time(self, after: datetime) -> datetime | None:
        require_aware(after)
        if self.start_date is None:
            raise InvalidTriggerError("this interval trigger has no anchor yet; resolve() it first")
        first = self._first()
        if after < first:
            candidate = first
        else:
            # Integer microseconds keep start + k * interval exact over years.
            step = self.interval // _MICROSECOND
            elapsed = (after - first) // _MICROSECOND
            candidate = first + timedelta(microseconds=(elapsed // step + 1) * step)
        if self.end_date is not None and candidate > self.end_date:
            return None
        return candidate

    def count_fire_times(self, start: datetime, end: datetime) -> int | None:
        # start + k * interval < end (and <= end_date): k < span / interval.
        last = end if self.end_date is None else min(end, self.end_date + _MICROSECOND)
        if last <= start:
            return 0
        step = self.interval // _MICROSECOND
        span = (last - start) // _MICROSECOND
        return -(-span // step)

    @property
    def anchor(self) -> datetime | None:
        return self.start_date

    def resolve(self, *, now: datetime, timezone: tzinfo) -> IntervalTrigger:
        if self.start_date is not None and self._wall_start is None and self._wall_end is None:
            return self
        resolved = self._copy()
        if self._wall_start is not None:
            resolved.start_date = as_aware(self._wall_start, timezone).astimezone(UTC)
        if self._wall_end is not None:
            resolved.end_date = as_aware(self._wall_end, timezone).astimezone(UTC)
        resolved._wall_start = resolved._wall_end = None
        if resolved.start_date is None:
            resolved.start_date = now.astimezone(UTC)
        resolved._check_order()
        return resolved

    def _copy(self) -> IntervalTrigger:
        clone = object.__new__(IntervalTrigger)
        for name in self.__slots__:
            setattr(clone, name, getattr(self, name))
        return clone

    def describe(self) -> str:
        remaining = int(self.interval.total_seconds())
        if remaining != self.interval.total_seconds():
            return f"every {self.interval.total_seconds():g} seconds"
        parts = []
        for unit, size in _UNITS:
            count, remaining = divmod(remaining, size)
            if count:
                parts.append(f"{count} {unit[:-1] if count == 1 else unit}")
        return "every " + " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "seconds": self.interval.total_seconds(),
            "start_now": self.start_now,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalTrigger:
        check_state(data, cls.kind)
        return cls(
            seconds=data["seconds"],
            start_now=data.get("start_now", True),
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
        )

    def _key(self) -> tuple[Any, ...]:
        return (self.interval, self.start_now, self.start_date, self.end_date)

    def __repr__(self) -> str:
        start = f", start_date={self.start_date.isoformat()!r}" if self.start_date else ""
        return (
            f"IntervalTrigger(seconds={self.interval.total_seconds():g}, start_now={self.start_now}{start})"
        )


def _wall_time(value: datetime | str | None, what: str) -> datetime | None:
    """``value`` as a naive wall time when it carries no offset, else None."""
    if value is None:
        return None
    parsed = parse_iso(value, what)
    return parsed if parsed.tzinfo is None or parsed.utcoffset() is None else None
