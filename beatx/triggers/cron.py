"""Cron triggers: five-field Vixie / Debian cron expressions evaluated in a timezone.

Two opt-in extensions, per trigger, so that a five-field expression never changes meaning:
``extended=True`` accepts the Quartz day tokens (``L``, ``L-n``, ``nW``, ``LW`` and ``?`` in
day-of-month; ``d#n`` and ``dL`` in day-of-week) and ``seconds=True`` reads six fields, seconds
first.

The expression is parsed once into sorted tuples. Fire times are computed in integer epoch
seconds:

* a *matching date* is found from a per-year tuple of matching day numbers (bisect);
* within a date, the fire instants are ``date * 86400 + time_of_day - utc_offset``; for a
  date on which the zone's offset does not change this is pure arithmetic, and for the few
  dates around a daylight-saving transition the date's sorted tuple of UTC instants is built
  once with the Debian cron rule applied (see :class:`CronTrigger`).

The caches are bounded and only memoise pure functions, so ``next_fire_time(after)`` still
depends on ``after`` alone.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import (
    STATE_VERSION,
    Trigger,
    as_aware,
    check_state,
    get_timezone,
    require_aware,
    timezone_key,
    timezone_name,
)
from beatx.triggers.cron_hash import expand_hash, has_hash
from beatx.triggers.date import parse_iso

__all__ = ["CronTrigger", "describe_cron", "resolve_wall_time", "validate_cron", "wall_to_instant"]

_DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * _DAY - 1
_CACHE_LIMIT = 512
# Every wall time of one local date lies within this many seconds of that date in UTC.
_WINDOW = 16 * 3600
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})

ALIASES: dict[str, str] = {
    "@every_minute": "* * * * *",
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_FULL = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DOW_FULL = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Longest month for each month number (February may have 29 days).
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Field(NamedTuple):
    name: str
    low: int
    high: int
    names: tuple[str, ...]
    name_base: int


_FIELDS = (
    _Field("minute", 0, 59, (), 0),
    _Field("hour", 0, 23, (), 0),
    _Field("day-of-month", 1, 31, (), 0),
    _Field("month", 1, 12, _MONTH_NAMES, 1),
    _Field("day-of-week", 0, 7, _DOW_NAMES, 0),
)
_SECOND_FIELD = _Field("second", 0, 59, (), 0)

# Extended (Quartz) day tokens, accepted with extended=True only.
_DOM_LAST = re.compile(r"^L(?:-(\d{1,2}))?$", re.IGNORECASE)
_DOM_WEEKDAY = re.compile(r"^(\d{1,2})W$", re.IGNORECASE)
_DOW_NTH = re.compile(r"^([A-Za-z]{3}|\d)#(\d)$")
_DOW_LAST = re.compile(r"^([A-Za-z]{3}|\d)L$", re.IGNORECASE)
_EXTENDED_HINT = (
    "pass extended=True for the Quartz tokens L, L-n, nW, LW, ? (day-of-month) and d#n, dL (day-of-week)"
)

#: A day-of-month special: ("L", n) the n-th day before the last (n=0: the last day),
#: ("W", n) the weekday nearest day n, ("LW", 0) the last weekday; a day-of-week special:
#: ("#", weekday, n) the n-th such weekday of the month, ("L", weekday, 0) the last one.
_Special = tuple[str, int, int]


class _FieldError(Exception):
    pass


def _value(text: str, field: _Field) -> int:
    if text.isdigit() and text.isascii():
        number = int(text)
        if not field.low <= number <= field.high:
            raise _FieldError(f"value {text} is out of range {field.low}-{field.high}")
        return number
    if not text:
        raise _FieldError("missing value")
    upper = text.upper()
    if field.names and upper in field.names:
        return field.names.index(upper) + field.name_base
    if field.names and text.isalpha():
        raise _FieldError(f"unknown name {text!r} (use {', '.join(field.names)})")
    raise _FieldError(f"{text!r} is not a number")


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldError("empty item in list")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isdigit() and step_text.isascii()):
                raise _FieldError(f"step {step_text!r} in {item!r} is not a positive number")
            step = int(step_text)
            if step == 0:
                raise _FieldError(f"step 0 in {item!r} is not allowed")
        if base == "*":
            start, stop = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _value(first, field), _value(last, field)
            if stop < start:
                raise _FieldError(f"range {base} is reversed")
        else:
            start = _value(base, field)
            stop = field.high if slash else start  # "a/n" means "a-max/n", as in Debian cron
        values.update(range(start, stop + 1, step))
    if field.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _looks_extended(item: str, field: _Field) -> bool:
    if "#" in item or item == "?":
        return True
    if field.name == "day-of-month":
        return "L" in item.upper() or "W" in item.upper()
    return item.upper().endswith("L")


def _special(item: str, field: _Field) -> _Special | None:
    """Read one extended day token, or None when ``item`` is an ordinary cron item."""
    if field.name == "day-of-month":
        if item.upper() == "LW":
            return ("LW", 0, 0)
        if match := _DOM_LAST.match(item):
            back = int(match.group(1) or 0)
            if back > 30:
                raise _FieldError(f"{item!r}: L-n takes n from 0 to 30")
            return ("L", back, 0)
        if match := _DOM_WEEKDAY.match(item):
            day = int(match.group(1))
            if not 1 <= day <= 31:
                raise _FieldError(f"{item!r}: nW takes a day from 1 to 31")
            return ("W", day, 0)
        return None
    if item.upper() == "L":
        raise _FieldError(
            "'L' alone is ambiguous in day-of-week: write 6L for the last Saturday, or use L in day-of-month"
        )
    if match := _DOW_NTH.match(item):
        weekday = _value(match.group(1), field) % 7
        nth = int(match.group(2))
        if not 1 <= nth <= 5:
            raise _FieldError(f"{item!r}: d#n takes n from 1 to 5")
        return ("#", weekday, nth)
    if match := _DOW_LAST.match(item):
        return ("L", _value(match.group(1), field) % 7, 0)
    return None


def _parse_day_field(text: str, field: _Field, extended: bool) -> tuple[frozenset[int], tuple[_Special, ...]]:
    """A day field: its plain values and (with ``extended``) its special tokens."""
    if not extended:
        for item in text.split(","):
            if _looks_extended(item, field):
                raise _FieldError(f"{item!r} is an extended token; {_EXTENDED_HINT}")
        return _parse_field(text, field), ()
    if text == "?":
        return _parse_field("*", field), ()
    plain: list[str] = []
    specials: list[_Special] = []
    for item in text.split(","):
        found = _special(item, field)
        if found is None:
            if item == "?":
                raise _FieldError("'?' must be the whole field")
            plain.append(item)
        else:
            specials.append(found)
    values = _parse_field(",".join(plain), field) if plain else frozenset()
    return values, tuple(sorted(set(specials)))


class _Spec(NamedTuple):
    fields: tuple[str, ...]
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    day_and: bool
    wildcard: bool
    seconds: frozenset[int] = frozenset({0})
    dom_specials: tuple[_Special, ...] = ()
    dow_specials: tuple[_Special, ...] = ()
    second_field: str | None = None


def _split(expression: str, seconds: bool = False) -> list[str]:
    text = expression.strip()
    if text.startswith("@"):
        alias = ALIASES.get(text.lower())
        if alias is None:
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: unknown alias {text!r} "
                f"(use one of {', '.join(ALIASES)})"
            )
        return (["0"] if seconds else []) + alias.split()
    parts = text.split()
    if seconds and len(parts) != 6:
        raise InvalidTriggerError(
            f"invalid cron expression {expression!r}: with seconds=True it takes 6 fields "
            f"(second minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    if not seconds and len(parts) == 6:
        raise InvalidTriggerError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week), got 6; for a seconds field first, "
            "pass seconds=True (the field count is never guessed)"
        )
    if not seconds and len(parts) != 5:
        raise InvalidTriggerError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    return parts


def _month_days(
    year: int,
    month: int,
    dom_flags: Sequence[bool],
    dow_flags: Sequence[bool],
    day_and: bool,
    dom_specials: tuple[_Special, ...],
    dow_specials: tuple[_Special, ...],
) -> list[int]:
    """The matching days (1-31) of one month."""
    first_weekday = date(year, month, 1).isoweekday() % 7  # cron weekday of the 1st
    last = calendar.monthrange(year, month)[1]
    extra_dom: set[int] = set()
    for kind, number, _ in dom_specials:
        if kind == "L":
            if last - number >= 1:
                extra_dom.add(last - number)
        elif kind == "W":
            if number <= last:
                weekday = (first_weekday + number - 1) % 7
                if weekday == 6:  # Saturday: the Friday before, or Monday the 3rd for the 1st
                    extra_dom.add(number - 1 if number > 1 else number + 2)
                elif weekday == 0:  # Sunday: the Monday after, or the Friday before at month end
                    extra_dom.add(number + 1 if number < last else number - 2)
                else:
                    extra_dom.add(number)
        else:  # LW
            weekday = (first_weekday + last - 1) % 7
            extra_dom.add(last - 1 if weekday == 6 else last - 2 if weekday == 0 else last)
    extra_dow: set[int] = set()
    for kind, weekday, nth in dow_specials:
        first = 1 + (weekday - first_weekday) % 7
        if kind == "#":
            if first + 7 * (nth - 1) <= last:
                extra_dow.add(first + 7 * (nth - 1))
        else:
            extra_dow.add(first + 7 * ((last - first) // 7))
    found: list[int] = []
    for day in range(1, last + 1):
        dom_ok = dom_flags[day] or day in extra_dom
        dow_ok = dow_flags[(first_weekday + day - 1) % 7] or day in extra_dow
        if (dom_ok and dow_ok) if day_and else (dom_ok or dow_ok):
            found.append(day)
    return found


@lru_cache(maxsize=1024)
def _parse(expression: str, extended: bool = False, seconds: bool = False) -> _Spec:
    parts = _split(expression, seconds)
    second_text = parts.pop(0) if seconds else None
    second_values = frozenset({0})
    if second_text is not None:
        try:
            second_values = _parse_field(second_text, _SECOND_FIELD)
        except _FieldError as exc:
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: second field: {exc}"
            ) from None
    sets: list[frozenset[int]] = []
    specials: dict[str, tuple[_Special, ...]] = {}
    for text, field in zip(parts, _FIELDS, strict=True):
        try:
            if field.name in ("day-of-month", "day-of-week"):
                values, found = _parse_day_field(text, field, extended)
                specials[field.name] = found
                sets.append(values)
            else:
                sets.append(_parse_field(text, field))
        except _FieldError as exc:
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: {field.name} field: {exc}"
            ) from None
    minutes, hours, doms, months, dows = sets
    dom_text, dow_text = ("*" if p == "?" else p for p in (parts[2], parts[4]))
    day_and = dom_text.startswith("*") or dow_text.startswith("*")
    dom_specials, dow_specials = specials["day-of-month"], specials["day-of-week"]
    if dom_specials or dow_specials:
        dom_flags = tuple(day in doms for day in range(32))
        dow_flags = tuple(day in dows for day in range(7))
        # Every (month length, weekday of the 1st) pair occurs in any 28 years of 1901-2099.
        if not any(
            _month_days(year, month, dom_flags, dow_flags, day_and, dom_specials, dow_specials)
            for year in range(2000, 2028)
            for month in months
        ):
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: it never fires "
                "(no month in the month field has a day that matches the day fields)"
            )
    elif dow_text.startswith("*") and not any(
        day <= _MONTH_MAX_DAYS[month - 1] for month in months for day in doms
    ):
        raise InvalidTriggerError(
            f"invalid cron expression {expression!r}: it never fires "
            "(no month in the month field has any day in the day-of-month field)"
        )
    return _Spec(
        tuple(parts),
        minutes,
        hours,
        doms,
        months,
        dows,
        day_and,
        parts[0].startswith("*") or parts[1].startswith("*"),
        second_values,
        dom_specials,
        dow_specials,
        second_text,
    )


def validate_cron(expression: str, *, extended: bool = False, seconds: bool = False) -> None:
    """Check a cron expression (with the same flags as :class:`CronTrigger`).

    :raises InvalidTriggerError: naming the field that is wrong, or saying it never fires.
    """
    if not isinstance(expression, str):
        raise InvalidTriggerError(f"cron expression must be a string, got {expression!r}")
    text = expression.strip()
    _parse(expand_hash(text, "", seconds=bool(seconds)), bool(extended), bool(seconds))


@lru_cache(maxsize=1)
def _year_starts() -> tuple[int, ...]:
    """Epoch day number of January 1st of the years 1..10000 (index = year - 1)."""
    starts = [date(year, 1, 1).toordinal() - _EPOCH_ORDINAL for year in range(1, 10000)]
    starts.append(starts[-1] + 365)
    return tuple(starts)


class _Engine:
    """Fire-time arithmetic for one parsed expression in one timezone."""

    __slots__ = (
        "day_and",
        "dom_flags",
        "dow_flags",
        "entries",
        "fixed_offset",
        "months",
        "next_days",
        "span",
        "specials",
        "times",
        "tz",
        "wildcard",
        "years",
    )

    def __init__(self, spec: _Spec, tz: tzinfo) -> None:
        self.times = tuple(
            sorted(h * 3600 + m * 60 + s for h in spec.hours for m in spec.minutes for s in spec.seconds)
        )
        self.specials = (spec.dom_specials, spec.dow_specials)
        self.months = tuple(sorted(spec.months))
        self.dom_flags = tuple(day in spec.doms for day in range(32))
        self.dow_flags = tuple(day in spec.dows for day in range(7))
        self.day_and = spec.day_and
        self.wildcard = spec.wildcard
        self.tz = tz
        self.fixed_offset = _fixed_offset(tz)
        self.years: dict[int, tuple[int, ...]] = {}
        self.next_days: dict[int, int | None] = {}
        self.entries: dict[int, int | tuple[int, ...]] = {}
        # An interval of instants (low, high, offset) over which the zone's offset is constant.
        self.span: tuple[int, int, int] = (1, 0, 0)

    # -- dates -------------------------------------------------------------------------

    def _year_days(self, year: int) -> tuple[int, ...]:
        days = self.years.get(year)
        if days is None:
            found: list[int] = []
            dom_flags, dow_flags, day_and = self.dom_flags, self.dow_flags, self.day_and
            dom_specials, dow_specials = self.specials
            for month in self.months:
                if dom_specials or dow_specials:
                    base = date(year, month, 1).toordinal() - _EPOCH_ORDINAL - 1
                    days_found = _month_days(
                        year, month, dom_flags, dow_flags, day_and, dom_specials, dow_specials
                    )
                    found.extend(base + day for day in days_found)
                    continue
                first = date(year, month, 1)
                base = first.toordinal() - _EPOCH_ORDINAL - 1
                weekday = first.isoweekday() % 7 - 1  # cron weekday of "day 0"
                for day in range(1, calendar.monthrange(year, month)[1] + 1):
                    if day_and:
                        if dom_flags[day] and dow_flags[(weekday + day) % 7]:
                            found.append(base + day)
                    elif dom_flags[day] or dow_flags[(weekday + day) % 7]:
                        found.append(base + day)
            days = tuple(found)
            if len(self.years) >= 64:
                self.years.clear()
            self.years[year] = days
        return days

    def next_day(self, day: int) -> int | None:
        """The first matching date (epoch day number) on or after ``day``."""
        try:
            return self.next_days[day]
        except KeyError:
            pass
        starts = _year_starts()
        index = max(bisect_right(starts, day) - 1, 0)
        result: int | None = None
        while index < 9999:
            days = self._year_days(index + 1)
            position = bisect_left(days, day)
            if position < len(days):
                result = days[position]
                break
            index += 1
        if len(self.next_days) >= _CACHE_LIMIT:
            self.next_days.clear()
        self.next_days[day] = result
        return result

    # -- instants ----------------------------------------------------------------------

    def _offset_at(self, instant: int) -> int:
        offset = datetime.fromtimestamp(instant, self.tz).utcoffset()
        return 0 if offset is None else offset.days * _DAY + offset.seconds

    def entry(self, day: int) -> int | tuple[int, ...]:
        """For a matching date: its UTC offset when the offset is constant across the date,
        else the sorted tuple of the date's fire instants with the daylight-saving rule
        applied."""
        found = self.entries.get(day)
        if found is not None:
            return found
        start = day * _DAY
        points = (start - _WINDOW, start + _DAY // 2, start + _DAY + _WINDOW)
        result: int | tuple[int, ...]
        span_low, span_high, span_offset = self.span
        if span_low <= points[0] and points[2] <= span_high:
            result = span_offset
        elif (
            span_low <= points[0] <= span_high
            and points[2] - span_high <= _DAY + _DAY // 6
            and self._offset_at(points[2]) == span_offset
        ):
            # The next date of a run of constant-offset dates: only its new end is sampled.
            result = span_offset
            self.span = (span_low, points[2], span_offset)
        elif (offsets := [self._offset_at(point) for point in points])[0] == offsets[1] == offsets[2]:
            result = offsets[0]
            self.span = (points[0], points[2], result)
        else:
            # (instant, offset from that instant on), found by bisection between the samples.
            changes: list[tuple[int, int]] = []
            for index in (0, 1):
                if offsets[index] != offsets[index + 1]:
                    low, high = points[index], points[index + 1]
                    while high - low > 1:
                        middle = (low + high) // 2
                        if self._offset_at(middle) == offsets[index]:
                            low = middle
                        else:
                            high = middle
                    changes.append((high, self._offset_at(high)))
            result = self._transition_day(start, offsets[0], changes)
        if len(self.entries) >= _CACHE_LIMIT:
            self.entries.clear()
        self.entries[day] = result
        return result

    def _transition_day(self, start: int, first: int, changes: list[tuple[int, int]]) -> tuple[int, ...]:
        def offset_at(instant: int) -> int:
            offset = first
            for change, after in changes:
                if instant >= change:
                    offset = after
            return offset

        candidates = sorted({first, *(offset for _, offset in changes)})
        instants: set[int] = set()
        for time in self.times:
            instants.update(resolve_wall_time(start + time, candidates, offset_at, wildcard=self.wildcard))
        return tuple(sorted(instants))

    def next_after(self, ts: int, after: datetime) -> int | None:
        """The first fire instant strictly after epoch second ``ts`` (``after`` floored)."""
        times = self.times
        offset = self.fixed_offset
        if offset is not None:
            local = ts + offset
            today = local // _DAY
            day = self.next_day(today)
            if day == today:
                position = bisect_right(times, local - today * _DAY)
                if position < len(times):
                    return today * _DAY + times[position] - offset
                day = self.next_day(today + 1)
            return None if day is None else day * _DAY + times[0] - offset

        wall_day = after.astimezone(self.tz).toordinal() - _EPOCH_ORDINAL
        best: int | None = None
        day = self.next_day(wall_day - 1)
        while day is not None:
            entry = self.entry(day)
            if type(entry) is int:
                base = day * _DAY - entry
                if best is not None and base + times[0] >= best:
                    break
                position = bisect_right(times, ts - base)
                if position < len(times):
                    candidate = base + times[position]
                    if best is None or candidate < best:
                        best = candidate
            elif entry:
                assert isinstance(entry, tuple)
                if best is not None and entry[0] >= best:
                    break
                position = bisect_right(entry, ts)
                if position < len(entry):
                    candidate = entry[position]
                    if best is None or candidate < best:
                        best = candidate
            # Later dates start no earlier than their midnight at UTC+16:00.
            if best is not None and best <= (day + 1) * _DAY - _WINDOW:
                break
            day = self.next_day(day + 1)
        return best


@lru_cache(maxsize=4096)
def _shared_engine(expression: str, zone: tzinfo, extended: bool = False, seconds: bool = False) -> _Engine:
    # Triggers are rebuilt from storage on every claim; sharing the engine (and its bounded
    # per-date tables) between equal triggers keeps that from redoing the table work.
    return _Engine(_parse(expression, extended, seconds), zone)


# -- daylight saving: the one rule for local wall times ------------------------------------------


def resolve_wall_time(
    wall: int, offsets: Sequence[int], offset_at: Callable[[int], int], *, wildcard: bool = False
) -> tuple[int, ...]:
    """The instants (epoch seconds) at which the local wall time ``wall`` (epoch seconds of the
    wall clock read as if it were UTC) fires, by the Debian cron rule every beatx trigger uses.

    ``offsets`` are the sorted UTC offsets (seconds) the zone can have around ``wall`` and
    ``offset_at(instant)`` the zone's offset at an instant. A *fixed-time* wall time
    (``wildcard=False``) fires once: a repeated one in its first pass, a skipped one at the
    first instant after the gap. A *wildcard* one follows the wall clock: both passes of a
    repeated time, none for a skipped one.
    """
    valid = [wall - offset for offset in offsets if offset_at(wall - offset) == offset]
    if valid:
        # Fixed-time: a repeated wall time fires once, in its first pass; wildcard: in both.
        return tuple(sorted(valid)) if wildcard else (min(valid),)
    if wildcard:
        return ()
    # A skipped wall time fires once, at the first instant after the gap.
    low, high = wall - offsets[-1], wall - offsets[0]
    while high - low > 1:
        middle = (low + high) // 2
        if middle + offset_at(middle) > wall:
            high = middle
        else:
            low = middle
    return (high,)


def _offset_seconds(value: timedelta | None) -> int:
    return 0 if value is None else value.days * _DAY + value.seconds


def wall_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant a fixed local wall time (a naive datetime, whole seconds) fires at in
    ``tz``: :func:`resolve_wall_time` with the offsets ``tz`` gives the time in either fold."""
    fixed = _fixed_offset(tz)
    if fixed is not None:
        return (wall - timedelta(seconds=fixed)).replace(tzinfo=UTC)
    naive = wall.replace(tzinfo=None, microsecond=0)
    offsets = sorted(
        {
            _offset_seconds(naive.replace(tzinfo=tz, fold=0).utcoffset()),
            _offset_seconds(naive.replace(tzinfo=tz, fold=1).utcoffset()),
        }
    )
    seconds = _epoch_seconds(naive.replace(tzinfo=UTC))
    if len(offsets) == 1:
        instant = seconds - offsets[0]
    else:

        def offset_at(instant: int) -> int:
            return _offset_seconds(datetime.fromtimestamp(instant, tz).utcoffset())

        instant = resolve_wall_time(seconds, offsets, offset_at)[0]
    return _EPOCH + timedelta(seconds=instant)


def _fixed_offset(tz: tzinfo) -> int | None:
    """The offset in seconds of a zone that never changes it (UTC, fixed offsets), else None."""
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        return offset.days * _DAY + offset.seconds
    if getattr(tz, "key", None) in _UTC_KEYS:
        return 0
    return None


def _epoch_seconds(value: datetime) -> int:
    delta = value - _EPOCH
    return delta.days * _DAY + delta.seconds


def _aware(value: datetime, tz: tzinfo) -> datetime:
    # beatx's one rule for naive datetimes (a skipped wall time is the instant of the jump).
    return as_aware(value, tz)


class CronTrigger(Trigger):
    """Fires when the local wall time in ``timezone`` matches a five-field cron expression.

    Daylight saving follows Debian cron. A job whose minute or hour field starts with ``*``
    is a *wildcard* job: it follows the wall clock, never fires in a skipped hour and fires
    in both passes of a repeated hour. Every other job is *fixed-time*: a skipped local time
    fires once at the instant of the jump (several skipped times collapse into that one fire)
    and a repeated local time fires once, in the first pass.

    ``timezone=None`` means the scheduler's timezone, filled in by :meth:`resolve`; until
    then the trigger computes in UTC. A naive ``start_date`` / ``end_date`` means the
    trigger's timezone. No fire is earlier than ``start_date`` or later than ``end_date``.

    ``extended=True`` accepts the Quartz day tokens: in day-of-month ``L`` (the last day),
    ``L-n`` (n days before the last), ``nW`` (the weekday, Monday to Friday, nearest day n
    within the month), ``LW`` (the last weekday) and ``?`` (same as ``*``); in day-of-week
    ``d#n`` (the n-th weekday d of the month, e.g. ``5#3`` the third Friday) and ``dL`` (the
    last one, e.g. ``5L``), with cron's day numbers (0 or 7 = Sunday) or names (``FRI#3``).
    The two day fields still combine as in cron: either one matches when both are
    restricted. ``seconds=True`` reads six fields, seconds first (the seconds field never
    makes a job a wildcard job). Neither is ever guessed from the expression.

    ``H`` in a field (``H * * * *``, ``H(0-29)/10 H(1-5) * * *``) is a value hashed from
    ``hash_key`` (see :mod:`beatx.triggers.cron_hash`). A job sets its id as the key
    (:meth:`for_job`), so each job gets its own minutes and keeps them; the key is not
    stored with the trigger.
    """

    kind = "cron"

    def __init__(
        self,
        expression: str,
        timezone: str | tzinfo | None = None,
        *,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        extended: bool = False,
        seconds: bool = False,
        hash_key: str | None = None,
    ) -> None:
        if not isinstance(expression, str):
            raise InvalidTriggerError(f"cron expression must be a string, got {expression!r}")
        for flag, value in (("extended", extended), ("seconds", seconds)):
            if not isinstance(value, bool):
                raise InvalidTriggerError(f"cron {flag} must be true or false, got {value!r}")
        self.expression: str = expression.strip()
        self.extended: bool = extended
        self.seconds: bool = seconds
        #: Whether the expression has ``H`` items, and the key they are hashed from.
        self.hashed: bool = has_hash(self.expression)
        self.hash_key: str | None = hash_key if self.hashed else None
        #: The expression as evaluated: ``H`` items replaced by their values.
        self.evaluated: str = (
            expand_hash(self.expression, hash_key or "", seconds=seconds) if self.hashed else self.expression
        )
        self._spec = _parse(self.evaluated, extended, seconds)
        self.timezone: tzinfo | None = None if timezone is None else get_timezone(timezone)
        self._start_raw = None if start_date is None else parse_iso(start_date, "start_date")
        self._end_raw = None if end_date is None else parse_iso(end_date, "end_date")
        zone = self.timezone if self.timezone is not None else UTC
        self.start_date: datetime | None = None if self._start_raw is None else _aware(self._start_raw, zone)
        self.end_date: datetime | None = None if self._end_raw is None else _aware(self._end_raw, zone)
        self._start_floor: int | None = None
        self._end_ts: int | None = None
        if self.start_date is not None:
            # A fire at or after start_date is a fire strictly after ceil(start) - 1.
            start_ts = _epoch_seconds(self.start_date)
            self._start_floor = start_ts - 1 if self.start_date.microsecond == 0 else start_ts
        if self.end_date is not None:
            self._end_ts = _epoch_seconds(self.end_date)
        if self.start_date is not None and self.end_date is not None and self.end_date < self.start_date:
            raise InvalidTriggerError(
                f"end_date {self.end_date.isoformat()} is before start_date {self.start_date.isoformat()}"
            )
        self._engine = _shared_engine(self.evaluated, zone, extended, seconds)

    # -- fire times --------------------------------------------------------------------

    def next_fire_time(self, after: datetime) -> datetime | None:
        if after.tzinfo is None or after.utcoffset() is None:
            require_aware(after)
        delta = after - _EPOCH
        ts = delta.days * _DAY + delta.seconds
        if self._start_floor is not None and ts < self._start_floor:
            ts = self._start_floor
            after = _EPOCH + timedelta(seconds=ts)
        try:
            result = self._engine.next_after(ts, after)
        except (OverflowError, ValueError):
            if after.year < 9999:
                raise
            return None  # the local date runs past the last representable day
        if result is None or result > _MAX_TS:
            return None
        if self._end_ts is not None and result > self._end_ts:
            return None
        return datetime.fromtimestamp(result, UTC)

    def resolve(self, *, now: datetime, timezone: tzinfo) -> CronTrigger:
        if self.timezone is not None:
            return self
        return CronTrigger(
            self.expression,
            timezone,
            start_date=self._start_raw,
            end_date=self._end_raw,
            extended=self.extended,
            seconds=self.seconds,
            hash_key=self.hash_key,
        )

    def for_job(self, job_id: str) -> CronTrigger:
        if not self.hashed or self.hash_key == job_id:
            return self
        return CronTrigger(
            self.expression,
            self.timezone,
            start_date=self._start_raw,
            end_date=self._end_raw,
            extended=self.extended,
            seconds=self.seconds,
            hash_key=job_id,
        )

    # -- description and state -----------------------------------------------------------

    @property
    def is_wildcard(self) -> bool:
        """True when the minute or hour field starts with ``*`` (the job follows the wall clock)."""
        return self._spec.wildcard

    def describe(self) -> str:
        text = describe_cron(self.evaluated, extended=self.extended, seconds=self.seconds)
        if self.hashed:
            text += f" (H: {self.expression})"
        if self.timezone is not None:
            text += f" ({timezone_key(self.timezone)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "version": STATE_VERSION,
            "expression": self.expression,
            "timezone": None if self.timezone is None else timezone_name(self.timezone),
            "start_date": None if self._start_raw is None else self._start_raw.isoformat(),
            "end_date": None if self._end_raw is None else self._end_raw.isoformat(),
        }
        # Written only when set, so a plain cron trigger keeps the form it always had.
        if self.extended:
            data["extended"] = True
        if self.seconds:
            data["seconds"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CronTrigger:
        check_state(data, "cron")
        return cls(
            data["expression"],
            data.get("timezone"),
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
            extended=data.get("extended", False),
            seconds=data.get("seconds", False),
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self.expression,
            timezone_key(self.timezone),
            None if self.start_date is None else self.start_date.isoformat(),
            None if self.end_date is None else self.end_date.isoformat(),
            self.extended,
            self.seconds,
            self.hash_key,
        )

    def __repr__(self) -> str:
        parts = [repr(self.expression)]
        if self.timezone is not None:
            parts.append(f"timezone={timezone_key(self.timezone)!r}")
        if self.start_date is not None:
            parts.append(f"start_date={self.start_date.isoformat()!r}")
        if self.end_date is not None:
            parts.append(f"end_date={self.end_date.isoformat()!r}")
        if self.extended:
            parts.append("extended=True")
        if self.seconds:
            parts.append("seconds=True")
        if self.hash_key is not None:
            parts.append(f"hash_key={self.hash_key!r}")
        return f"CronTrigger({', '.join(parts)})"


# -- describe ---------------------------------------------------------------------------------


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _join(items: list[str], word: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _name_of(text: str, field: _Field) -> str:
    number = _value(text, field)
    if field.name == "month":
        return _MONTH_FULL[number - 1]
    if field.name == "day-of-week":
        return _DOW_FULL[number]
    return str(number)


def _describe_items(text: str, field: _Field, unit: str) -> str:
    """Read a field's items aloud: "1, 15 and 20", "Monday through Friday", "every 2nd day"."""
    items: list[str] = []
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if base == "*":
            what = ""
        elif "-" in base:
            first, _, last = base.partition("-")
            what = f"{_name_of(first, field)} through {_name_of(last, field)}"
        else:
            what = _name_of(base, field)
            if slash:
                what = f"{what} onwards"
        if slash:
            every = f"every {_ordinal(int(step))} {unit}" if int(step) > 1 else f"every {unit}"
            items.append(f"{every} from {what}" if what else every)
        else:
            items.append(what)
    return _join(items)


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _simple_values(text: str, field: _Field) -> list[int] | None:
    """The values of a field made only of plain numbers, else None."""
    try:
        if all(part.isdigit() for part in text.split(",")):
            return sorted({_value(part, field) for part in text.split(",")})
    except _FieldError:
        return None
    return None


def _describe_time(minute: str, hour: str) -> str:
    minute_field, hour_field = _FIELDS[0], _FIELDS[1]
    minutes = _simple_values(minute, minute_field)
    hours = _simple_values(hour, hour_field)
    if minutes is not None and hours is not None and len(minutes) * len(hours) <= 6:
        return "At " + _join([_clock(h, m) for h in hours for m in minutes])
    if minute == "*":
        text = "Every minute"
    elif minute.startswith("*/") and "," not in minute:
        text = f"Every {int(minute[2:])} minutes" if int(minute[2:]) > 1 else "Every minute"
    elif minutes is not None:
        label = "minute" if len(minutes) == 1 else "minutes"
        text = f"At {label} {_join([str(m) for m in minutes])}"
    else:
        text = f"At minutes {_describe_items(minute, minute_field, 'minute')}"
    if hour == "*":
        if minute.startswith("*"):
            return text
        return f"{text} past every hour"
    if hour.startswith("*/") and "," not in hour:
        step = int(hour[2:])
        return f"{text} past every {_ordinal(step)} hour" if step > 1 else f"{text} past every hour"
    if "-" in hour and "," not in hour and "/" not in hour:
        first, _, last = hour.partition("-")
        return f"{text}, between {_clock(int(first), 0)} and {_clock(int(last), 59)}"
    if hours is not None:
        label = "hour" if len(hours) == 1 else "hours"
        return f"{text}, during {label} {_join([str(h) for h in hours])}"
    items = _describe_items(hour, hour_field, "hour")
    return f"{text} past {items}" if items.startswith("every") else f"{text}, during hours {items}"


_NTH = ("first", "second", "third", "fourth", "fifth")


def _describe_seconds(text: str) -> str:
    field = _SECOND_FIELD
    if text == "*":
        return "every second"
    if text.startswith("*/") and "," not in text:
        step = int(text[2:])
        return f"every {step} seconds" if step > 1 else "every second"
    values = _simple_values(text, field)
    if values is not None:
        return f"at second{'s' if len(values) > 1 else ''} {_join([str(v) for v in values])}"
    return f"at seconds {_describe_items(text, field, 'second')}"


def describe_cron(expression: str, *, extended: bool = False, seconds: bool = False) -> str:
    """A short plain-English reading of a cron expression, e.g. "At 03:00, Monday through
    Friday" or "Every 15 minutes" (with the same flags as :class:`CronTrigger`).

    An expression with ``H`` items is read with them hashed from an empty key; a trigger
    describes its own values (:meth:`CronTrigger.describe`).

    :raises InvalidTriggerError: if the expression is invalid.
    """
    spec = _parse(expand_hash(expression.strip(), "", seconds=seconds), extended, seconds)
    minute, hour, dom, month, dow = spec.fields
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else dow
    text = _describe_time(minute, hour)
    if spec.second_field is not None and spec.second_field != "0":
        text += f", {_describe_seconds(spec.second_field)}"
    dom_part = ""
    if dom != "*":
        if spec.dom_specials:
            pieces = [
                "the last day of the month"
                if kind == "L" and number == 0
                else f"the last day of the month minus {number} day{'s' if number > 1 else ''}"
                if kind == "L"
                else f"the weekday nearest day {number} of the month"
                if kind == "W"
                else "the last weekday of the month"
                for kind, number, _ in spec.dom_specials
            ]
            plain = [item for item in dom.split(",") if _special(item, _FIELDS[2]) is None]
            if plain:
                pieces.insert(
                    0,
                    f"day{'s' if len(plain) > 1 or '-' in plain[0] else ''} "
                    f"{_describe_items(','.join(plain), _FIELDS[2], 'day')} of the month",
                )
            dom_part = f"on {_join(pieces, 'or')}"
        elif dom.startswith("*/"):
            dom_part = f"every {_ordinal(int(dom[2:]))} day of the month"
        else:
            items = _describe_items(dom, _FIELDS[2], "day")
            label = "day" if items.isdigit() else "days"
            dom_part = f"on {label} {items} of the month"
    dow_part = ""
    if dow != "*":
        if spec.dow_specials:
            pieces = [
                f"the {_NTH[nth - 1]} {_DOW_FULL[weekday]} of the month"
                if kind == "#"
                else f"the last {_DOW_FULL[weekday]} of the month"
                for kind, weekday, nth in spec.dow_specials
            ]
            plain = [item for item in dow.split(",") if _special(item, _FIELDS[4]) is None]
            if plain:
                pieces.insert(0, _describe_items(",".join(plain), _FIELDS[4], "day of the week"))
            dow_part = f"only on {_join(pieces, 'or')}"
        else:
            items = _describe_items(dow, _FIELDS[4], "day of the week")
            dow_part = items if ("through" in items or "every" in items) else f"only on {items}"
    if dom_part and dow_part and not spec.day_and:
        text += f" {dom_part}, or {dow_part.removeprefix('only ')}"
    else:
        if dom_part:
            text += f" {dom_part}"
        if dow_part:
            text += f", {dow_part}"
    if month != "*":
        items = _describe_items(month, _FIELDS[3], "month")
        text += f", {items}" if ("through" in items or "every" in items) else f", only in {items}"
    return text
