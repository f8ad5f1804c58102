"""RFC 5545 recurrence rules (``RRULE``), expanded by ``python-dateutil`` (``pip install 'beatx[rrule]'``).

The rule is parsed once. Occurrences are local wall times in the trigger's timezone, turned
into instants by the same daylight-saving rule as cron's fixed-time jobs
(:func:`beatx.triggers.cron.resolve_wall_time`): a wall time skipped by a jump forward fires
once at the instant of the jump, a repeated one once, in its first pass.

dateutil iterates a rule from its ``DTSTART``, which would make the cost of a fire time grow
with the age of the rule. Instead, the rule's periods (years, months, weeks... counted from
``DTSTART`` in steps of ``INTERVAL``) are grouped into *windows* of a few periods; a window
is expanded by a copy of the rule that starts at the window's first period, with every
``BY*`` part that dateutil derives from ``DTSTART`` written out, so it yields exactly the
occurrences of the original rule in that window. Expanded windows are kept in a bounded
cache (pure memoisation: ``next_fire_time(after)`` still depends on ``after`` alone).
A rule with ``COUNT`` is expanded once, whole.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from beatx.errors import InvalidTriggerError, SerializationError
from beatx.triggers.base import (
    STATE_VERSION,
    Trigger,
    check_state,
    get_timezone,
    require_aware,
    timezone_key,
    timezone_name,
)
from beatx.triggers.cron import wall_to_instant
from beatx.triggers.date import parse_iso

__all__ = ["MAX_COUNT", "RRuleTrigger"]

#: The largest ``COUNT`` accepted (such a rule is expanded whole, once).
MAX_COUNT = 100_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = 86400
_YEARLY, _MONTHLY, _WEEKLY, _DAILY, _HOURLY, _MINUTELY, _SECONDLY = range(7)
#: Periods (each INTERVAL long) per cached window, by frequency.
_WINDOW_PERIODS = {
    _YEARLY: 1,
    _MONTHLY: 3,
    _WEEKLY: 4,
    _DAILY: 7,
    _HOURLY: 24,
    _MINUTELY: 60,
    _SECONDLY: 60,
}
_WINDOW_CACHE = 64
_UNTIL = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$", re.IGNORECASE)
_EXTRAS_HINT = "give DTSTART, EXDATE and RDATE as the dtstart=, exdates= and rdates= arguments"


def _dateutil() -> Any:
    try:
        from dateutil import rrule
    except ImportError as exc:
        raise InvalidTriggerError("RRULE triggers need python-dateutil: pip install 'beatx[rrule]'") from exc
    return rrule


def _epoch_seconds(value: datetime) -> int:
    delta = value - _EPOCH
    return delta.days * _DAY + delta.seconds


def _wall(value: datetime, tz: tzinfo) -> datetime:
    """The naive local wall time (whole seconds) of a datetime in ``tz``; a naive one is one already."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value.replace(microsecond=0, fold=0)


def _split_rule(rule: str) -> tuple[str, str | None]:
    """The rule text without its UNTIL part, and that UNTIL value."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if "\n" in text or "\r" in text or ":" in text:
        raise InvalidTriggerError(
            f"invalid RRULE {rule!r}: give one RRULE value such as 'FREQ=DAILY'; {_EXTRAS_HINT}"
        )
    parts = [part for part in text.split(";") if part]
    names = [part.partition("=")[0].upper() for part in parts]
    for name in ("DTSTART", "EXDATE", "RDATE"):
        if name in names:
            raise InvalidTriggerError(f"invalid RRULE {rule!r}: {name} is not a rule part; {_EXTRAS_HINT}")
    if "COUNT" in names and "UNTIL" in names:
        raise InvalidTriggerError(f"invalid RRULE {rule!r}: COUNT and UNTIL cannot both be given (RFC 5545)")
    until: str | None = None
    kept: list[str] = []
    for part, name in zip(parts, names, strict=True):
        if name == "UNTIL":
            until = part.partition("=")[2]
        else:
            kept.append(part)
    return ";".join(kept), until


def _parse_until(value: str, rule: str) -> datetime:
    match = _UNTIL.match(value.strip())
    if not match:
        raise InvalidTriggerError(
            f"invalid RRULE {rule!r}: UNTIL={value} is not a date (use 20261231 or 20261231T235959Z)"
        )
    year, month, day, hour, minute, second, zulu = match.groups()
    try:
        until = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise InvalidTriggerError(f"invalid RRULE {rule!r}: UNTIL={value}: {exc}") from None
    return until.replace(tzinfo=UTC) if zulu else until


class _Expansion:
    """Windows of one rule's occurrences, as sorted UTC epoch seconds."""

    __slots__ = (
        "base",
        "count",
        "dtstart",
        "exdates",
        "freq",
        "params",
        "rule",
        "span",
        "tz",
        "until",
        "windows",
    )

    def __init__(
        self, text: str, dtstart: datetime, tz: tzinfo, until: int | None, exdates: frozenset[datetime]
    ) -> None:
        module = _dateutil()
        try:
            rule = module.rrulestr(text, dtstart=dtstart)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidTriggerError(f"invalid RRULE {text!r}: {exc}") from None
        if not isinstance(rule, module.rrule):
            raise InvalidTriggerError(f"invalid RRULE {text!r}: expected one rule")
        self.rule = rule
        self.dtstart = dtstart
        self.tz = tz
        self.until = until
        self.exdates = exdates
        self.count: int | None = rule._count
        if self.count is not None and self.count > MAX_COUNT:
            raise InvalidTriggerError(
                f"invalid RRULE {text!r}: COUNT is at most {MAX_COUNT}, got {self.count}"
            )
        self.freq: int = rule._freq
        interval: int = rule._interval
        self.span = interval * _WINDOW_PERIODS[self.freq]
        # Every BY* part written out, so a copy starting later yields the same occurrences.
        weekdays = [module.weekday(day) for day in rule._byweekday or ()]
        weekdays += [module.weekday(day, n) for day, n in rule._bynweekday or ()]
        monthdays = list(rule._bymonthday or ()) + list(rule._bynmonthday or ())
        self.params: dict[str, Any] = {
            "interval": interval,
            "wkst": rule._wkst,
            "bysetpos": rule._bysetpos,
            "bymonth": rule._bymonth,
            "bymonthday": monthdays or None,
            "byyearday": rule._byyearday,
            "byeaster": rule._byeaster,
            "byweekno": rule._byweekno,
            "byweekday": weekdays or None,
            "byhour": rule._byhour,
            "byminute": rule._byminute,
            "bysecond": rule._bysecond,
            "cache": False,
        }
        # The start of period 0, from which the window starts are counted.
        if self.freq == _YEARLY:
            self.base = datetime(dtstart.year, 1, 1)
        elif self.freq == _MONTHLY:
            self.base = datetime(dtstart.year, dtstart.month, 1)
        elif self.freq == _WEEKLY:
            day = dtstart.date() - timedelta(days=(dtstart.weekday() - rule._wkst) % 7)
            self.base = datetime(day.year, day.month, day.day)
        elif self.freq == _DAILY:
            self.base = datetime(dtstart.year, dtstart.month, dtstart.day)
        elif self.freq == _HOURLY:
            self.base = dtstart.replace(minute=0, second=0)
        elif self.freq == _MINUTELY:
            self.base = dtstart.replace(second=0)
        else:
            self.base = dtstart
        self.windows: dict[int, tuple[tuple[int, ...], datetime | None]] = {}

    # -- windows -------------------------------------------------------------------------

    def _period(self, wall: datetime) -> int:
        """The index of the period (counted from period 0, not in INTERVAL steps) of ``wall``."""
        base, freq = self.base, self.freq
        if freq == _YEARLY:
            return wall.year - base.year
        if freq == _MONTHLY:
            return (wall.year - base.year) * 12 + wall.month - base.month
        delta = wall - base
        if freq == _WEEKLY:
            return delta.days // 7
        if freq == _DAILY:
            return delta.days
        seconds = delta.days * _DAY + delta.seconds
        return seconds // {_HOURLY: 3600, _MINUTELY: 60, _SECONDLY: 1}[freq]

    def _period_start(self, period: int) -> datetime | None:
        base, freq = self.base, self.freq
        try:
            if freq == _YEARLY:
                return base.replace(year=base.year + period)
            if freq == _MONTHLY:
                months = base.year * 12 + base.month - 1 + period
                return datetime(months // 12, months % 12 + 1, 1)
            step = {
                _WEEKLY: timedelta(weeks=1),
                _DAILY: timedelta(days=1),
                _HOURLY: timedelta(hours=1),
                _MINUTELY: timedelta(minutes=1),
                _SECONDLY: timedelta(seconds=1),
            }[freq]
            return base + step * period
        except (ValueError, OverflowError):
            return None  # past year 9999

    def window_of(self, wall: datetime) -> int:
        if self.count is not None or wall <= self.dtstart:
            return 0
        return max(self._period(wall) // self.span, 0)

    def window(self, index: int) -> tuple[tuple[int, ...], datetime | None]:
        """The window's fire instants, and the wall time of the rule's first occurrence after
        the window (None: there is none)."""
        found = self.windows.get(index)
        if found is not None:
            return found
        module = _dateutil()
        if index == 0:
            rule = self.rule
        else:
            start = self._period_start(index * self.span)
            if start is None:
                return (), None
            rule = module.rrule(self.freq, dtstart=start, **self.params)
        end = None if self.count is not None else self._period_start((index + 1) * self.span)
        walls: list[datetime] = []
        following: datetime | None = None
        for occurrence in rule:
            if end is not None and occurrence >= end:
                following = occurrence
                break
            walls.append(occurrence)
        instants: list[int] = []
        tz, until, exdates = self.tz, self.until, self.exdates
        for wall in walls:
            if wall in exdates:
                continue
            instant = _epoch_seconds(wall_to_instant(wall, tz))
            if until is not None and instant > until:
                following = None
                break
            if not instants or instant != instants[-1]:  # skipped wall times collapse at the jump
                instants.append(instant)
        result = (tuple(instants), following)
        if len(self.windows) >= _WINDOW_CACHE:
            self.windows.clear()
        self.windows[index] = result
        return result

    def next_after(self, ts: int, wall: datetime) -> int | None:
        """The first occurrence strictly after epoch second ``ts`` (whose wall time is ``wall``)."""
        index = self.window_of(wall)
        while True:
            instants, following = self.window(index)
            position = bisect_right(instants, ts)
            if position < len(instants):
                return instants[position]
            if following is None:
                return None
            index = max(self.window_of(following), index + 1)


@lru_cache(maxsize=1024)
def _shared_expansion(
    text: str, dtstart: datetime, tz: tzinfo, until: int | None, exdates: frozenset[datetime]
) -> _Expansion:
    # Triggers are rebuilt from storage on every claim: equal ones share the parsed rule and
    # its expanded windows.
    return _Expansion(text, dtstart, tz, until, exdates)


class RRuleTrigger(Trigger):
    """Fires on the occurrences of an RFC 5545 recurrence rule, e.g.
    ``RRuleTrigger("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1", dtstart="2026-01-01T09:00", timezone="Europe/Paris")``
    (09:00 on the last Friday of every month).

    ``rule`` is one ``RRULE`` value (an ``RRULE:`` prefix is allowed), with ``COUNT`` or
    ``UNTIL`` if wanted; ``UNTIL`` ending in ``Z`` is an instant, otherwise a wall time in
    ``timezone``. ``dtstart`` anchors the rule (its ``INTERVAL`` steps, and the ``BY*`` parts
    a rule leaves out: ``FREQ=MONTHLY`` fires on dtstart's day of the month, at its time);
    a naive one is a wall time in ``timezone``. Without it, :meth:`resolve` fixes it to the
    moment the job is added, so it never moves afterwards. As in dateutil, dtstart is an
    occurrence only when it matches the rule. ``exdates`` removes occurrences (matched by their
    local wall time), ``rdates`` adds fire times (a naive one is a wall time in ``timezone``).

    Wall times skipped or repeated by daylight saving follow cron's rule for fixed-time jobs.
    ``timezone=None`` means the scheduler's timezone, filled in by :meth:`resolve`. Needs
    ``pip install 'beatx[rrule]'`` (python-dateutil).
    """

    kind = "rrule"

    def __init__(
        self,
        rule: str,
        dtstart: datetime | date | str | None = None,
        timezone: str | tzinfo | None = None,
        *,
        exdates: Iterable[datetime | date | str] = (),
        rdates: Iterable[datetime | date | str] = (),
    ) -> None:
        if not isinstance(rule, str) or not rule.strip():
            raise InvalidTriggerError(
                f"an RRULE must be a non-empty string such as 'FREQ=DAILY', got {rule!r}"
            )
        if isinstance(exdates, str | datetime | date) or isinstance(rdates, str | datetime | date):
            raise InvalidTriggerError("exdates and rdates must be lists of dates")
        self.rule: str = rule.strip()
        self._text, until_text = _split_rule(self.rule)
        self.timezone: tzinfo | None = None if timezone is None else get_timezone(timezone)
        self._dtstart_raw = None if dtstart is None else parse_iso(dtstart, "dtstart")
        self._exdates_raw = tuple(parse_iso(value, "exdates") for value in exdates)
        self._rdates_raw = tuple(parse_iso(value, "rdates") for value in rdates)
        zone = self.timezone if self.timezone is not None else UTC
        self._zone = zone
        self._until: int | None = None
        if until_text is not None:
            until = _parse_until(until_text, self.rule)
            self._until = _epoch_seconds(until if until.tzinfo is not None else wall_to_instant(until, zone))
        exdate_walls = frozenset(_wall(value, zone) for value in self._exdates_raw)
        rdate_instants: set[int] = set()
        for value in self._rdates_raw:
            if value.tzinfo is not None and value.utcoffset() is not None:
                instant = value.astimezone(UTC).replace(microsecond=0)
            else:
                instant = wall_to_instant(_wall(value, zone), zone)
            if _wall(value, zone) not in exdate_walls:
                rdate_instants.add(_epoch_seconds(instant))
        self._rdates = tuple(sorted(rdate_instants))
        self.dtstart: datetime | None = None
        self._expansion: _Expansion | None = None
        if self._dtstart_raw is None:
            # Checked now (the rule text), anchored by resolve().
            _Expansion(self._text, datetime(2000, 1, 1), zone, self._until, exdate_walls)
        else:
            wall = _wall(self._dtstart_raw, zone)
            self.dtstart = wall.replace(tzinfo=zone)
            self._expansion = _shared_expansion(self._text, wall, zone, self._until, exdate_walls)
            if self.next_fire_time(self.dtstart - timedelta(seconds=1)) is None and not self._rdates:
                raise InvalidTriggerError(f"RRULE {self.rule!r} from {wall.isoformat()} never fires")

    # -- fire times --------------------------------------------------------------------

    def next_fire_time(self, after: datetime) -> datetime | None:
        if after.tzinfo is None or after.utcoffset() is None:
            require_aware(after)
        expansion = self._expansion
        if expansion is None:
            raise InvalidTriggerError("this rrule trigger has no dtstart yet; resolve() it first")
        delta = after - _EPOCH
        ts = delta.days * _DAY + delta.seconds
        try:
            wall = after.astimezone(self._zone).replace(tzinfo=None, microsecond=0, fold=0)
        except OverflowError:
            return None
        best = expansion.next_after(ts, wall)
        rdates = self._rdates
        if rdates:
            position = bisect_right(rdates, ts)
            if position < len(rdates) and (best is None or rdates[position] < best):
                best = rdates[position]
        if best is None:
            return None
        return datetime.fromtimestamp(best, UTC)

    @property
    def anchor(self) -> datetime | None:
        return self.dtstart

    def resolve(self, *, now: datetime, timezone: tzinfo) -> RRuleTrigger:
        if self.timezone is not None and self._dtstart_raw is not None:
            return self
        zone = self.timezone if self.timezone is not None else timezone
        dtstart = self._dtstart_raw
        if dtstart is None:
            dtstart = now.astimezone(zone).replace(tzinfo=None, microsecond=0)
        return RRuleTrigger(self.rule, dtstart, zone, exdates=self._exdates_raw, rdates=self._rdates_raw)

    # -- description and state -----------------------------------------------------------

    def describe(self) -> str:
        text = f"RRULE {self.rule}"
        if self.dtstart is not None:
            text += f" from {self.dtstart.replace(tzinfo=None).isoformat()}"
        if self._exdates_raw:
            text += f", except {len(self._exdates_raw)} date{'s' if len(self._exdates_raw) > 1 else ''}"
        if self._rdates_raw:
            text += f", plus {len(self._rdates_raw)} date{'s' if len(self._rdates_raw) > 1 else ''}"
        if self.timezone is not None:
            text += f" ({timezone_key(self.timezone)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "rule": self.rule,
            "dtstart": None if self._dtstart_raw is None else self._dtstart_raw.isoformat(),
            "timezone": None if self.timezone is None else timezone_name(self.timezone),
            "exdates": [value.isoformat() for value in self._exdates_raw],
            "rdates": [value.isoformat() for value in self._rdates_raw],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RRuleTrigger:
        check_state(data, cls.kind)
        if "rule" not in data:
            raise SerializationError("rrule trigger: missing rule")
        return cls(
            data["rule"],
            data.get("dtstart"),
            data.get("timezone"),
            exdates=data.get("exdates") or (),
            rdates=data.get("rdates") or (),
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self.rule,
            None if self._dtstart_raw is None else self._dtstart_raw.isoformat(),
            timezone_key(self.timezone),
            tuple(value.isoformat() for value in self._exdates_raw),
            tuple(value.isoformat() for value in self._rdates_raw),
        )

    def __repr__(self) -> str:
        parts = [repr(self.rule)]
        if self._dtstart_raw is not None:
            parts.append(f"dtstart={self._dtstart_raw.isoformat()!r}")
        if self.timezone is not None:
            parts.append(f"timezone={timezone_key(self.timezone)!r}")
        if self._exdates_raw:
            parts.append(f"exdates={[value.isoformat() for value in self._exdates_raw]!r}")
        if self._rdates_raw:
            parts.append(f"rdates={[value.isoformat() for value in self._rdates_raw]!r}")
        return f"RRuleTrigger({', '.join(parts)})"
