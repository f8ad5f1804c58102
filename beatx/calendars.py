"""Exclusion calendars: named sets of times at which the jobs that name them do not fire.

An :class:`ExclusionCalendar` is a value: whole days (dates, ranges of dates, weekdays and the
public holidays of countries or subdivisions) and time windows (cron expressions whose
matching minutes are excluded). It has no timezone of its own: it is read in the timezone
of the job that names it (the trigger's timezone; UTC for a trigger without one, such as an
interval). Stores keep calendars by name (:mod:`beatx.stores.calendar_base`); jobs name them in
``exclude`` and say with ``on_excluded`` what an excluded fire does (see
:mod:`beatx.exclusion`).

Everything here is pure: no clock, no I/O (the holidays tables come from the optional
``holidays`` package, ``pip install beatx[calendars]``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from beatx.errors import InvalidCalendarError, InvalidTriggerError, SerializationError

__all__ = [
    "CALENDAR_STATE_VERSION",
    "WEEKDAY_NAMES",
    "ExclusionCalendar",
    "calendar_from_dict",
    "calendar_to_dict",
]

#: Format version written into every serialised calendar.
CALENDAR_STATE_VERSION = 1
#: Weekday names as calendars spell them, Monday first (``date.weekday()`` order).
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_HOLIDAY_CODE = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z0-9]{1,10}))?$")


def _parse_date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        raise InvalidCalendarError(f"{what}: expected a date such as '2026-12-25', got a datetime {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidCalendarError(f"{what}: expected an ISO date such as '2026-12-25', got {value!r}")


def _parse_weekday(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for number, (short, long) in enumerate(zip(WEEKDAY_NAMES, _WEEKDAY_LONG, strict=True)):
            if key in (short, long.lower()):
                return number
    raise InvalidCalendarError(
        f"weekdays: expected a name ({', '.join(WEEKDAY_NAMES)}) or a number 0 (Monday) to 6 (Sunday), "
        f"got {value!r}"
    )


def _check_window(expression: Any) -> str:
    from beatx.triggers.cron import _parse

    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCalendarError(
            f"windows: expected a cron expression such as '* 0-5 * * *', got {expression!r}"
        )
    text = " ".join(expression.split())
    if len(text.split(" ")) != 5 or text.startswith("@"):
        raise InvalidCalendarError(
            f"windows: {expression!r} must have the five cron fields (minute hour day-of-month month "
            "day-of-week), e.g. '* 0-5 * * *'"
        )
    try:
        _parse(text)
    except InvalidTriggerError as exc:
        raise InvalidCalendarError(f"windows: {exc}") from None
    return text


def _check_holiday_code(value: Any) -> str:
    if not isinstance(value, str) or not (match := _HOLIDAY_CODE.match(value.strip())):
        raise InvalidCalendarError(
            f"holidays: expected a country code such as 'FR', or a country and subdivision such as "
            f"'US-CA', got {value!r}"
        )
    country, subdivision = match.group(1).upper(), match.group(2)
    holiday_table(country, subdivision.upper() if subdivision else None)
    return f"{country}-{subdivision.upper()}" if subdivision else country


_TABLES: dict[tuple[str, str | None], Any] = {}
_TABLES_LOCK = threading.Lock()


def holiday_table(country: str, subdivision: str | None) -> Any:
    """The ``holidays`` table of a country (and subdivision), shared by every calendar.

    :raises InvalidCalendarError: when the ``holidays`` package is missing (naming the
        ``calendars`` extra) or does not know the country or subdivision.
    """
    key = (country, subdivision)
    table = _TABLES.get(key)
    if table is not None:
        return table
    try:
        import holidays
    except ImportError:
        raise InvalidCalendarError(
            "public holidays need the 'holidays' package: pip install 'beatx[calendars]'"
        ) from None
    try:
        table = holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:  # how the holidays package says it has no such country or subdivision
        where = f"{country}-{subdivision}" if subdivision else country
        raise InvalidCalendarError(
            f"holidays: the holidays package has no public holidays for {where!r}"
        ) from None
    with _TABLES_LOCK:
        return _TABLES.setdefault(key, table)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExclusionCalendar:
    """A named set of excluded times, read in the timezone of the job that names it.

    - ``dates``: whole days, e.g. ``{"2026-12-24"}``;
    - ``date_ranges``: ``(first, last)`` whole days, both included;
    - ``weekdays``: days of the week, names (``"sat"``) or numbers (0 Monday .. 6 Sunday);
    - ``windows``: five-field cron expressions; every minute they match is excluded, e.g.
      ``"* 0-5 * * *"`` (00:00 to 05:59 every day) or ``"* 12 * * MON-FRI"``;
    - ``holidays``: the public holidays of countries (``"FR"``) or subdivisions
      (``"US-CA"``), from the ``holidays`` package (``pip install beatx[calendars]``).

    Dates, ranges, weekdays and holidays exclude whole days: a day none of them excludes is a
    *business day* (``on_excluded="next_business_day"`` moves fires onto those).

    :raises InvalidCalendarError: naming the field that is wrong.
    """

    name: str
    description: str = ""
    dates: frozenset[date] = field(default_factory=frozenset)
    date_ranges: tuple[tuple[date, date], ...] = ()
    weekdays: frozenset[int] = field(default_factory=frozenset)
    windows: tuple[str, ...] = ()
    holidays: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidCalendarError(
                f"calendar name must be 1-200 letters, digits, '-', '_', '.' or ':', starting with a letter "
                f"or digit, got {self.name!r}"
            )
        if not isinstance(self.description, str):
            raise InvalidCalendarError(f"calendar {self.name!r}: description must be a string")
        set_ = object.__setattr__
        set_(self, "dates", frozenset(_parse_date(d, "dates") for d in _items(self.dates, "dates")))
        ranges: list[tuple[date, date]] = []
        for item in _items(self.date_ranges, "date_ranges"):
            if isinstance(item, str) or not isinstance(item, Iterable) or len(pair := tuple(item)) != 2:
                raise InvalidCalendarError(
                    f"date_ranges: expected pairs of dates such as ['2026-08-01', '2026-08-15'], got {item!r}"
                )
            first, last = _parse_date(pair[0], "date_ranges"), _parse_date(pair[1], "date_ranges")
            if last < first:
                raise InvalidCalendarError(f"date_ranges: {last} is before {first}")
            ranges.append((first, last))
        set_(self, "date_ranges", tuple(sorted(set(ranges))))
        set_(self, "weekdays", frozenset(_parse_weekday(w) for w in _items(self.weekdays, "weekdays")))
        set_(self, "windows", tuple(dict.fromkeys(_check_window(w) for w in _items(self.windows, "windows"))))
        set_(
            self,
            "holidays",
            tuple(dict.fromkeys(_check_holiday_code(h) for h in _items(self.holidays, "holidays"))),
        )

    # -- reading -------------------------------------------------------------------------------

    def day_reason(self, day: date) -> str | None:
        """Why the whole of ``day`` is excluded (a date, a range, a weekday, a holiday), or None."""
        if day in self.dates:
            return f"{self.name}: {day.isoformat()}"
        for first, last in self.date_ranges:
            if first <= day <= last:
                return f"{self.name}: {first.isoformat()} to {last.isoformat()}"
        if self.weekdays and day.weekday() in self.weekdays:
            return f"{self.name}: {_WEEKDAY_LONG[day.weekday()]}"
        for code in self.holidays:
            country, _, subdivision = code.partition("-")
            holiday = holiday_table(country, subdivision or None).get(day)
            if holiday is not None:
                return f"{self.name}: {holiday} ({code})"
        return None

    def window_reason(self, wall: datetime) -> str | None:
        """Why the local wall time ``wall`` (naive or aware: its fields are read) is excluded
        by a time window, or None."""
        for expression in self.windows:
            if window_matches(expression, wall):
                return f"{self.name}: window {expression!r}"
        return None

    def excluded_reason(self, local: datetime) -> str | None:
        """Why the local time ``local`` (in the job's timezone) is excluded, or None."""
        return self.day_reason(local.date()) or self.window_reason(local)

    def describe(self) -> str:
        """A short plain-English reading, e.g. "fr-holidays: holidays FR; weekdays Sat, Sun"."""
        parts: list[str] = []
        if self.dates:
            shown = sorted(self.dates)
            parts.append(
                "dates " + ", ".join(d.isoformat() for d in shown[:5]) + (" ..." if len(shown) > 5 else "")
            )
        if self.date_ranges:
            parts.append(
                "ranges " + ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in self.date_ranges)
            )
        if self.weekdays:
            parts.append("weekdays " + ", ".join(_WEEKDAY_LONG[w][:3] for w in sorted(self.weekdays)))
        if self.windows:
            parts.append("windows " + ", ".join(self.windows))
        if self.holidays:
            parts.append("holidays " + ", ".join(self.holidays))
        return f"{self.name}: " + ("; ".join(parts) if parts else "excludes nothing")


def _items(value: Any, what: str) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidCalendarError(f"{what}: expected a list, got {value!r}")
    return list(value)


def window_matches(expression: str, wall: datetime) -> bool:
    """Whether the cron expression matches the minute of the wall time ``wall``."""
    from beatx.triggers.cron import _parse

    spec = _parse(expression)
    if wall.minute not in spec.minutes or wall.hour not in spec.hours or wall.month not in spec.months:
        return False
    dom_ok = wall.day in spec.doms
    cron_dow = (wall.weekday() + 1) % 7
    dow_ok = cron_dow in spec.dows or (cron_dow == 0 and 7 in spec.dows)
    return (dom_ok and dow_ok) if spec.day_and else (dom_ok or dow_ok)


def calendar_to_dict(calendar: ExclusionCalendar) -> dict[str, Any]:
    """A JSON-compatible dict of the calendar, with a format ``version``."""
    return {
        "version": CALENDAR_STATE_VERSION,
        "name": calendar.name,
        "description": calendar.description,
        "dates": sorted(d.isoformat() for d in calendar.dates),
        "date_ranges": [[a.isoformat(), b.isoformat()] for a, b in calendar.date_ranges],
        "weekdays": [WEEKDAY_NAMES[w] for w in sorted(calendar.weekdays)],
        "windows": list(calendar.windows),
        "holidays": list(calendar.holidays),
    }


def calendar_from_dict(data: Mapping[str, Any]) -> ExclusionCalendar:
    """Rebuild a calendar written by :func:`calendar_to_dict` (or typed in YAML, without a
    ``version``).

    :raises SerializationError: for a newer format version or a record that is not a mapping.
    :raises InvalidCalendarError: for a field that is wrong.
    """
    if not isinstance(data, Mapping):
        raise SerializationError(f"a calendar must be a mapping, got {data!r}")
    version = data.get("version", CALENDAR_STATE_VERSION)
    if not isinstance(version, int) or version > CALENDAR_STATE_VERSION:
        raise SerializationError(
            f"calendar {data.get('name')!r} was stored with format version {version!r}; this beatx reads "
            f"versions up to {CALENDAR_STATE_VERSION}, upgrade beatx to read it"
        )
    known = {"version", "name", "description", "dates", "date_ranges", "weekdays", "windows", "holidays"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidCalendarError(
            f"calendar {data.get('name')!r}: unknown key(s) {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(known - {'version'}))}"
        )
    return ExclusionCalendar(
        name=data.get("name"),  # type: ignore[arg-type]  # checked by the calendar
        description=data.get("description") or "",
        dates=data.get("dates") or (),  # type: ignore[arg-type]
        date_ranges=data.get("date_ranges") or (),
        weekdays=data.get("weekdays") or (),  # type: ignore[arg-type]
        windows=data.get("windows") or (),
        holidays=data.get("holidays") or (),
    )
