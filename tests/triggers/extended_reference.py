"""Brute-force oracles for extended cron (Quartz day tokens, seconds), sharing no code with
``beatx.triggers.cron``.

Day tokens are read literally from their definitions: ``L`` is the month's last day, ``L-n``
that day minus n, ``nW`` the Monday-to-Friday day of the month closest to day n, ``LW`` the
largest Monday-to-Friday day, ``d#k`` the day that is the k-th of weekday d counted from
the 1st, ``dL`` the weekday-d day with no weekday-d day a week later in the month.

Minute expressions are walked by :func:`tests.triggers.cron_reference.reference_next`; the
seconds walk below applies the same daylight-saving rule second by second.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, tzinfo

from tests.triggers.cron_reference import DAYS, MONTHS, Fields, expand

SECOND = timedelta(seconds=1)


def _weekday(d: date) -> int:
    return d.isoweekday() % 7  # cron numbering, 0 = Sunday


def _is_business(d: date) -> bool:
    return d.isoweekday() <= 5


def _dom_token(token: str, d: date) -> bool:
    last = calendar.monthrange(d.year, d.month)[1]
    upper = token.upper()
    if upper == "L":
        return d.day == last
    if upper.startswith("L-"):
        return d.day == last - int(upper[2:])
    if upper == "LW":
        return d.day == max(k for k in range(1, last + 1) if _is_business(d.replace(day=k)))
    if upper.endswith("W"):
        target = int(upper[:-1])
        if target > last:
            return False
        business = [k for k in range(1, last + 1) if _is_business(d.replace(day=k))]
        return d.day == min(business, key=lambda k: (abs(k - target), k))
    raise AssertionError(token)


def _dow_number(text: str) -> int:
    return (DAYS.index(text.upper()) if text.upper() in DAYS else int(text)) % 7


def _dow_token(token: str, d: date) -> bool:
    last = calendar.monthrange(d.year, d.month)[1]
    if "#" in token:
        weekday, nth = token.split("#")
        count = sum(1 for k in range(1, d.day + 1) if _weekday(d.replace(day=k)) == _dow_number(weekday))
        return _weekday(d) == _dow_number(weekday) and count == int(nth)
    weekday = _dow_number(token[:-1])
    return _weekday(d) == weekday and d.day + 7 > last


def _is_special(token: str, dom: bool) -> bool:
    upper = token.upper()
    if dom:
        return "L" in upper or "W" in upper
    return "#" in upper or upper.endswith("L")


class ExtendedFields(Fields):
    """``cron_reference.Fields`` with the day tokens and a seconds field (``reference_next`` walks it)."""

    def __init__(self, expression: str, seconds: bool = False) -> None:
        parts = expression.split()
        second = parts.pop(0) if seconds else "0"
        minute, hour, dom, month, dow = parts
        dom = "*" if dom == "?" else dom
        dow = "*" if dow == "?" else dow
        self.seconds = expand(second, 0, 59)
        self.minutes = expand(minute, 0, 59)
        self.hours = expand(hour, 0, 23)
        self.months = expand(month, 1, 12, MONTHS, 1)
        dom_items = dom.split(",")
        dow_items = dow.split(",")
        plain_dom = [t for t in dom_items if not _is_special(t, True)]
        plain_dow = [t for t in dow_items if not _is_special(t, False)]
        self.dom_special = [t for t in dom_items if _is_special(t, True)]
        self.dow_special = [t for t in dow_items if _is_special(t, False)]
        self.doms = expand(",".join(plain_dom), 1, 31) if plain_dom else set()
        self.dows = {d % 7 for d in expand(",".join(plain_dow), 0, 7, DAYS)} if plain_dow else set()
        self.day_or = not (dom.startswith("*") or dow.startswith("*"))
        self.wildcard = minute.startswith("*") or hour.startswith("*")

    def date_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom_ok = d.day in self.doms or any(_dom_token(t, d) for t in self.dom_special)
        dow_ok = _weekday(d) in self.dows or any(_dow_token(t, d) for t in self.dow_special)
        return (dom_ok or dow_ok) if self.day_or else (dom_ok and dow_ok)

    def matches(self, wall: datetime) -> bool:
        return (
            wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and self.date_matches(wall.date())
        )


def reference_next_seconds(
    fields: ExtendedFields, tz: tzinfo, after: datetime, *, window: timedelta
) -> datetime | None:
    """The first fire strictly after ``after`` within ``window``, walking UTC seconds.

    A UTC second ``t`` fires when its wall time matches (wildcard job), or matches in the
    first pass (fixed-time job), or is the first instant after a gap in which some skipped
    wall second matches (fixed-time job). Whole local minutes whose date, hour and minute do
    not match are skipped when the offset is the same at both ends.
    """
    start = after.astimezone(UTC)
    t = start.replace(microsecond=0) + SECOND
    limit = start + window
    while t <= limit:
        wall = t.astimezone(tz)
        naive = wall.replace(tzinfo=None, fold=0)
        if fields.matches(wall) and (fields.wildcard or wall.fold == 0):
            return t
        if not fields.wildcard:
            previous = (t - SECOND).astimezone(tz).replace(tzinfo=None, fold=0)
            skipped = previous + SECOND
            while skipped < naive:
                if fields.matches(skipped):
                    return t
                skipped += SECOND
        minute_ok = (
            wall.minute in fields.minutes and wall.hour in fields.hours and fields.date_matches(wall.date())
        )
        if not minute_ok:
            jump = t + timedelta(seconds=60 - wall.second)
            if (jump - SECOND).astimezone(tz).utcoffset() == wall.utcoffset():
                t = jump
                continue
        t += SECOND
    return None
