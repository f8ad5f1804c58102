"""Cron triggers: five-field Vixie / Debian cron expressions evaluated in a timezone.

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
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import Trigger, check_state, get_timezone, require_aware, timezone_name
from beatx.triggers.date import parse_iso

__all__ = ["CronTrigger", "describe_cron", "validate_cron"]

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


class _Spec(NamedTuple):
    fields: tuple[str, ...]
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    day_and: bool
    wildcard: bool


def _split(expression: str) -> list[str]:
    text = expression.strip()
    if text.startswith("@"):
        alias = ALIASES.get(text.lower())
        if alias is None:
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: unknown alias {text!r} "
                f"(use one of {', '.join(ALIASES)})"
            )
        return alias.split()
    parts = text.split()
    if len(parts) != 5:
        raise InvalidTriggerError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    return parts


@lru_cache(maxsize=1024)
def _parse(expression: str) -> _Spec:
    parts = _split(expression)
    sets: list[frozenset[int]] = []
    for text, field in zip(parts, _FIELDS, strict=True):
        try:
            sets.append(_parse_field(text, field))
        except _FieldError as exc:
            raise InvalidTriggerError(
                f"invalid cron expression {expression!r}: {field.name} field: {exc}"
            ) from None
    minutes, hours, doms, months, dows = sets
    day_and = parts[2].startswith("*") or parts[4].startswith("*")
    if parts[4].startswith("*") and not any(
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
    )


def validate_cron(expression: str) -> None:
    """Check a cron expression.

    :raises InvalidTriggerError: naming the field that is wrong, or saying it never fires.
    """
    if not isinstance(expression, str):
        raise InvalidTriggerError(f"cron expression must be a string, got {expression!r}")
    _parse(expression.strip())


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
        "times",
        "tz",
        "wildcard",
        "years",
    )

    def __init__(self, spec: _Spec, tz: tzinfo) -> None:
        self.times = tuple(sorted(h * 3600 + m * 60 for h in spec.hours for m in spec.minutes))
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
            for month in self.months:
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
            wall = start + time
            valid = [wall - offset for offset in candidates if offset_at(wall - offset) == offset]
            if valid:
                if self.wildcard:
                    instants.update(valid)
                else:
                    # A repeated wall time fires once, in the first pass.
                    instants.add(min(valid))
            elif not self.wildcard:
                # A skipped wall time fires once, at the first instant after the gap.
                low, high = wall - candidates[-1], wall - candidates[0]
                while high - low > 1:
                    middle = (low + high) // 2
                    if middle + offset_at(middle) > wall:
                        high = middle
                    else:
                        low = middle
                instants.add(high)
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
def _shared_engine(expression: str, zone: tzinfo) -> _Engine:
    # Triggers are rebuilt from storage on every claim; sharing the engine (and its bounded
    # per-date tables) between equal triggers keeps that from redoing the table work.
    return _Engine(_parse(expression), zone)


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
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=tz)
    return value


def _tz_key(tz: tzinfo | None) -> str | None:
    if tz is None:
        return None
    try:
        return timezone_name(tz)
    except InvalidTriggerError:
        return repr(tz)


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
    """

    kind = "cron"

    def __init__(
        self,
        expression: str,
        timezone: str | tzinfo | None = None,
        *,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
    ) -> None:
        if not isinstance(expression, str):
            raise InvalidTriggerError(f"cron expression must be a string, got {expression!r}")
        self.expression: str = expression.strip()
        self._spec = _parse(self.expression)
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
            seconds = _epoch_seconds(self.start_date)
            self._start_floor = seconds - 1 if self.start_date.microsecond == 0 else seconds
        if self.end_date is not None:
            self._end_ts = _epoch_seconds(self.end_date)
        if self.start_date is not None and self.end_date is not None and self.end_date < self.start_date:
            raise InvalidTriggerError(
                f"end_date {self.end_date.isoformat()} is before start_date {self.start_date.isoformat()}"
            )
        self._engine = _shared_engine(self.expression, zone)

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
        return CronTrigger(self.expression, timezone, start_date=self._start_raw, end_date=self._end_raw)

    # -- description and state -----------------------------------------------------------

    @property
    def is_wildcard(self) -> bool:
        """True when the minute or hour field starts with ``*`` (the job follows the wall clock)."""
        return self._spec.wildcard

    def describe(self) -> str:
        text = describe_cron(self.expression)
        if self.timezone is not None:
            text += f" ({_tz_key(self.timezone)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": 1,
            "expression": self.expression,
            "timezone": None if self.timezone is None else timezone_name(self.timezone),
            "start_date": None if self._start_raw is None else self._start_raw.isoformat(),
            "end_date": None if self._end_raw is None else self._end_raw.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CronTrigger:
        check_state(data, "cron")
        return cls(
            data["expression"],
            data.get("timezone"),
            start_date=data.get("start_date"),
            end_date=data.get("end_date"),
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self.expression,
            _tz_key(self.timezone),
            None if self.start_date is None else self.start_date.isoformat(),
            None if self.end_date is None else self.end_date.isoformat(),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronTrigger):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("cron", *self._key()))

    def __repr__(self) -> str:
        parts = [repr(self.expression)]
        if self.timezone is not None:
            parts.append(f"timezone={_tz_key(self.timezone)!r}")
        if self.start_date is not None:
            parts.append(f"start_date={self.start_date.isoformat()!r}")
        if self.end_date is not None:
            parts.append(f"end_date={self.end_date.isoformat()!r}")
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


def describe_cron(expression: str) -> str:
    """A short plain-English reading of a cron expression, e.g. "At 03:00, Monday through
    Friday" or "Every 15 minutes".

    :raises InvalidTriggerError: if the expression is invalid.
    """
    spec = _parse(expression.strip())
    minute, hour, dom, month, dow = spec.fields
    text = _describe_time(minute, hour)
    dom_part = ""
    if dom != "*":
        if dom.startswith("*/"):
            dom_part = f"every {_ordinal(int(dom[2:]))} day of the month"
        else:
            items = _describe_items(dom, _FIELDS[2], "day")
            label = "day" if items.isdigit() else "days"
            dom_part = f"on {label} {items} of the month"
    dow_part = ""
    if dow != "*":
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
