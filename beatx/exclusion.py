"""A job's trigger with its exclusion calendars applied: when the job really fires.

:class:`ExcludingTrigger` wraps a job's trigger, the calendars the job names and its
``on_excluded`` policy; it is a trigger like the others (pure, ``next_fire_time(after)``
depends on ``after`` alone), so the engine's rules plan it unchanged. It is never stored:
jobs store their own trigger and the names of their calendars, and the engine, the
management API and the previews wrap them with the calendars as they are now.

The policies, in the job's timezone (see :mod:`beatx.calendars`):

- ``skip``: an excluded fire does not run.
- ``next_business_day``: a fire on a day a calendar excludes as a whole (a date, a range, a
  weekday, a public holiday) runs instead at the same wall time on the next *business day*
  (a day none of the job's calendars excludes as a whole), at most :data:`MAX_SHIFT_DAYS`
  later. On that day the wall time is read as fixed-time cron jobs read it: a skipped time
  runs at the instant of the jump, a repeated one in its first pass. A moved fire that falls
  in a time window, and a fire excluded by a time window only, do not run. Fires that land on
  the same instant (two moved fires, or a moved fire and a regular one) run once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from beatx.calendars import ExclusionCalendar, window_matches
from beatx.errors import InvalidCalendarError, InvalidJobError, SerializationError
from beatx.triggers.base import Trigger, require_aware, timezone_key
from beatx.triggers.cron import _parse, wall_to_instant

__all__ = [
    "EXCLUDE_OPTION",
    "MAX_SHIFT_DAYS",
    "ON_EXCLUDED",
    "ON_EXCLUDED_OPTION",
    "SEARCH_DAYS",
    "ExcludingTrigger",
    "OnExcluded",
    "PreviewFire",
    "check_on_excluded",
    "exclusion_options",
    "preview_fires",
    "trigger_zone",
]

OnExcluded = Literal["skip", "next_business_day"]
#: The ``on_excluded`` policies.
ON_EXCLUDED: tuple[OnExcluded, ...] = ("skip", "next_business_day")
#: How far the search for the next allowed fire looks ahead before giving up.
SEARCH_DAYS = 732
#: The furthest a fire is moved by ``next_business_day``; a fire with no business day within
#: this many days after it does not run.
MAX_SHIFT_DAYS = 31

_TICK = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
#: Wider than any daylight-saving shift, so a scan around one sees both passes.
_SHIFT_MARGIN = timedelta(hours=3)
_DAY_CACHE_LIMIT = 20_000
#: Fires of one stretch of non-business days above which the fires moved onto the next
#: business day are searched each time rather than listed once and remembered.
_MOVED_LIMIT = 2_000
_MOVED_DAYS_LIMIT = 1_024


#: The message options of a Celery ``beat_schedule`` entry that name the job's calendars and
#: policy instead (Celery's beat takes no other key): ``"options": {"beatx_exclude":
#: ["fr-holidays"], "beatx_on_excluded": "next_business_day"}``.
EXCLUDE_OPTION = "beatx_exclude"
ON_EXCLUDED_OPTION = "beatx_on_excluded"


def exclusion_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take :data:`EXCLUDE_OPTION` and :data:`ON_EXCLUDED_OPTION` out of ``options`` (in
    place) and return them as job fields (``exclude``, ``on_excluded``)."""
    fields: dict[str, Any] = {}
    for option, name in ((EXCLUDE_OPTION, "exclude"), (ON_EXCLUDED_OPTION, "on_excluded")):
        if option in options:
            fields[name] = options.pop(option)
    return fields


def check_on_excluded(value: Any, *, where: str) -> OnExcluded:
    """``value`` as a policy name.

    :raises InvalidJobError: naming the policies when it is not one.
    """
    if value not in ON_EXCLUDED:
        raise InvalidJobError(
            f"{where}: on_excluded must be one of {', '.join(map(repr, ON_EXCLUDED))}, got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def trigger_zone(trigger: Trigger) -> tzinfo:
    """The timezone a job's calendars are read in: its trigger's, UTC when it has none."""
    zone = getattr(trigger, "timezone", None)
    return zone if isinstance(zone, tzinfo) else UTC


def wall_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The earliest instant (UTC) whose wall time in ``zone`` is at or after the naive
    ``wall``: the instant itself, its first pass when it repeats, the jump when it is skipped."""
    if zone is UTC:
        return wall.replace(tzinfo=UTC)
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return wall_to_instant(wall, zone)


class _Rules:
    """The union of a job's calendars in its timezone, with a cache of whole-day answers."""

    __slots__ = ("calendars", "days", "has_windows", "steady_days", "windows", "zone")

    def __init__(self, calendars: Sequence[ExclusionCalendar], zone: tzinfo) -> None:
        self.calendars = tuple(calendars)
        self.zone = zone
        self.windows = tuple(
            (expression, calendar.name, _parse(expression))
            for calendar in calendars
            for expression in calendar.windows
        )
        self.has_windows = bool(self.windows)
        self.days: dict[date, str | None] = {}
        self.steady_days: dict[date, bool] = {}

    def day_reason(self, day: date) -> str | None:
        try:
            return self.days[day]
        except KeyError:
            pass
        reason = None
        for calendar in self.calendars:
            reason = calendar.day_reason(day)
            if reason is not None:
                break
        if len(self.days) >= _DAY_CACHE_LIMIT:
            self.days.clear()
        self.days[day] = reason
        return reason

    def window_reason(self, wall: datetime) -> str | None:
        for expression, name, _spec in self.windows:
            if window_matches(expression, wall):
                return f"{name}: window {expression!r}"
        return None

    def reason(self, local: datetime) -> str | None:
        reason = self.day_reason(local.date())
        if reason is None and self.has_windows:
            reason = self.window_reason(local)
        return reason

    def window_end(self, wall: datetime) -> datetime:
        """The first whole-minute wall time after ``wall`` that no window matches (bounded)."""
        minute = wall.replace(second=0, microsecond=0, tzinfo=None, fold=0) + _MINUTE
        for _ in range(4000):
            spec = next((s for expression, _n, s in self.windows if window_matches(expression, minute)), None)
            if spec is None:
                return minute
            if len(spec.minutes) == 60:
                if len(spec.hours) == 24:
                    minute = datetime.combine(minute.date() + _DAY, time())
                else:
                    minute = minute.replace(minute=0) + timedelta(hours=1)
            else:
                minute += _MINUTE
        return minute


class ExcludingTrigger(Trigger):
    """``base`` with the times ``calendars`` exclude taken out (``on_excluded="skip"``) or
    moved to the next business day (``"next_business_day"``); see the module docstring.

    ``timezone``: the zone the calendars are read in; by default the base trigger's (UTC when
    it has none).

    :raises InvalidCalendarError: from ``next_fire_time`` when the calendars exclude every
        fire of ``base`` for :data:`SEARCH_DAYS` days.
    """

    kind = "excluding"

    def __init__(
        self,
        base: Trigger,
        calendars: Sequence[ExclusionCalendar],
        on_excluded: OnExcluded = "skip",
        *,
        timezone: tzinfo | None = None,
    ) -> None:
        if isinstance(base, ExcludingTrigger):
            raise InvalidCalendarError("an ExcludingTrigger wraps a job's own trigger, not another one")
        self.base = base
        self.calendars = tuple(calendars)
        self.on_excluded: OnExcluded = check_on_excluded(on_excluded, where="ExcludingTrigger")
        self.zone = timezone if timezone is not None else trigger_zone(base)
        self._rules = _Rules(self.calendars, self.zone)
        #: Business day -> the fires moved onto it (see :meth:`_moved_onto`).
        self._moved: dict[date, tuple[datetime, ...] | None] = {}

    def _key(self) -> tuple[Any, ...]:
        return (self.base, self.calendars, self.on_excluded, timezone_key(self.zone))

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.calendars)
        return f"ExcludingTrigger({self.base!r}, [{names}], {self.on_excluded!r})"

    # -- reading -------------------------------------------------------------------------------

    def excluded_reason(self, at: datetime) -> str | None:
        """Why the instant ``at`` is excluded ("calendar: reason"), or None when it is not."""
        require_aware(at, "at")
        return self._rules.reason(at.astimezone(self.zone))

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.calendars)
        policy = "skipped" if self.on_excluded == "skip" else "moved to the next business day"
        return f"{self.base.describe()}, except times {names} exclude ({policy})"

    @property
    def anchor(self) -> datetime | None:
        return self.base.anchor

    def to_dict(self) -> dict[str, Any]:
        raise SerializationError(
            "an ExcludingTrigger is not stored: store the job's own trigger and its calendar names"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        raise SerializationError("an ExcludingTrigger is not stored and cannot be read back")

    def moved_time(self, fire: datetime) -> datetime | None:
        """Where ``next_business_day`` moves the excluded ``fire`` (None: it does not run, or
        the policy is ``skip``)."""
        if self.on_excluded != "next_business_day":
            return None
        rules, zone = self._rules, self.zone
        local = fire.astimezone(zone)
        day = local.date()
        if rules.day_reason(day) is None:
            return None
        target = day + _DAY
        while rules.day_reason(target) is not None:
            target += _DAY
            if (target - day).days > MAX_SHIFT_DAYS:
                return None
        moved = wall_instant(datetime.combine(target, local.replace(tzinfo=None).time()), zone)
        return moved if rules.reason(moved.astimezone(zone)) is None else None

    # -- fire times ----------------------------------------------------------------------------

    def first_fire_time(self, now: datetime) -> datetime | None:
        first = self.base.first_fire_time(now)
        start = first if first is not None and first < now else now
        return self.next_fire_time(start - _TICK)

    def next_fire_time(self, after: datetime) -> datetime | None:
        require_aware(after)
        limit = after + timedelta(days=SEARCH_DAYS)
        moving = self.on_excluded == "next_business_day"
        skipped_days: list[date] | None = [] if moving else None
        regular, exhausted = self._next_allowed_regular(after, limit, skipped_days)
        if skipped_days is not None:
            make_up = self._next_make_up(after, regular if regular is not None else limit, skipped_days)
            if make_up is not None and (regular is None or make_up < regular):
                return make_up
        if regular is None and exhausted:
            names = ", ".join(repr(c.name) for c in self.calendars)
            raise InvalidCalendarError(
                f"the calendars {names} exclude every fire of {self.base.describe()!r} for "
                f"{SEARCH_DAYS} days after {after.isoformat()}"
            )
        return regular

    def _next_allowed_regular(
        self, after: datetime, limit: datetime, skipped_days: list[date] | None = None
    ) -> tuple[datetime | None, bool]:
        """The first fire of ``base`` after ``after`` that no calendar excludes, and whether
        the search stopped at ``limit`` (rather than at the end of ``base``). The days of the
        excluded fires met on a non-business day go into ``skipped_days`` (one at least per
        stretch of non-business days that has fires)."""
        base, rules, zone = self.base, self._rules, self.zone
        fire = base.next_fire_time(after)
        while fire is not None:
            if fire > limit:
                return None, True
            local = fire.astimezone(zone)
            if rules.reason(local) is None:
                return fire, False
            if skipped_days is not None and rules.day_reason(local.date()) is not None:
                skipped_days.append(local.date())
            fire = base.next_fire_time(self._resume_point(fire, local, limit) - _TICK)
        return None, False

    def _resume_point(self, fire: datetime, local: datetime, limit: datetime) -> datetime:
        """An instant after the excluded ``fire`` such that every instant between them is
        excluded too (the end of the excluded stretch, or a daylight-saving transition)."""
        rules, zone = self._rules, self.zone
        day = local.date()
        if rules.day_reason(day) is not None:
            last = (limit.astimezone(zone) + _DAY).date()
            day += _DAY
            while rules.day_reason(day) is not None and day <= last:
                day += _DAY
            wall = datetime.combine(day, time())
        else:
            wall = rules.window_end(local)
        resume = wall_instant(wall, zone)
        naive = local.replace(tzinfo=None)
        if wall > naive:
            resume = min(resume, fire + (wall - naive))
        if zone is not UTC:
            resume = self._before_transition(fire, resume)
        return resume if resume > fire else fire + _TICK

    def _before_transition(self, start: datetime, end: datetime) -> datetime:
        """``end``, or the first UTC offset change after ``start`` when one comes before it
        (to the second): wall times repeat after a change, so a stretch stops there."""
        zone = self.zone
        offset = start.astimezone(zone).utcoffset()
        if end.astimezone(zone).utcoffset() == offset:
            return end
        low, high = start, end
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(zone).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return high.replace(microsecond=0) if high.microsecond else high

    # -- next_business_day ---------------------------------------------------------------------

    def _next_make_up(self, after: datetime, until: datetime, skipped_days: list[date]) -> datetime | None:
        """The first moved fire after ``after``, at or before ``until``.

        A moved fire lands on the business day that ends a stretch of non-business days with
        fires in it: the stretch around ``after`` (its fires may be before ``after``), and
        those :meth:`_next_allowed_regular` met between ``after`` and ``until``."""
        rules = self._rules
        today = after.astimezone(self.zone).date()
        targets: set[date] = set()
        if rules.day_reason(today) is not None or rules.day_reason(today - _DAY) is not None:
            target = self._next_business_day(today - _DAY)
            if target is not None:
                targets.add(target)
        for day in skipped_days:
            # However long the stretch, its last MAX_SHIFT_DAYS days move onto its end.
            target = self._next_business_day(day, within=SEARCH_DAYS)
            if target is not None:
                targets.add(target)
        for target in sorted(targets):
            moved = self._moved_onto(target)
            if moved is None:
                found = self._make_up_on(target, after, until)
            else:
                index = bisect_right(moved, after)
                found = moved[index] if index < len(moved) and moved[index] < until else None
            if found is not None:
                return found
        return None

    def _moved_onto(self, business_day: date) -> tuple[datetime, ...] | None:
        """Every allowed fire moved onto ``business_day``, in order, remembered per day (as a
        beat keeps the trigger, the next fires read it again); None when the non-business
        days before it hold more than :data:`_MOVED_LIMIT` fires (then each search scans)."""
        try:
            return self._moved[business_day]
        except KeyError:
            pass
        rules, zone, base = self._rules, self.zone, self.base
        first = self._stretch_start(business_day)
        found: set[datetime] | None = set()
        if first is not None:
            end = wall_instant(datetime.combine(business_day, time()), zone)
            fire = base.next_fire_time(wall_instant(datetime.combine(first, time()), zone) - _TICK)
            seen = 0
            while fire is not None and fire < end and found is not None:
                seen += 1
                if seen > _MOVED_LIMIT:
                    found = None
                    break
                wall = fire.astimezone(zone).replace(tzinfo=None, fold=0)
                moved = wall_instant(datetime.combine(business_day, wall.time()), zone)
                if moved not in found and rules.reason(moved.astimezone(zone)) is None:
                    found.add(moved)
                fire = base.next_fire_time(fire)
        result = None if found is None else tuple(sorted(found))
        if len(self._moved) >= _MOVED_DAYS_LIMIT:
            self._moved.clear()
        self._moved[business_day] = result
        return result

    def _stretch_start(self, business_day: date) -> date | None:
        """The first of the non-business days just before ``business_day`` (at most
        :data:`MAX_SHIFT_DAYS` back), or None when the day before is a business day."""
        rules = self._rules
        first = business_day - _DAY
        if rules.day_reason(first) is None:
            return None
        while (business_day - first).days < MAX_SHIFT_DAYS and rules.day_reason(first - _DAY) is not None:
            first -= _DAY
        return first

    def _next_business_day(self, day: date, within: int = MAX_SHIFT_DAYS) -> date | None:
        """The first business day after ``day``, at most ``within`` days later."""
        rules = self._rules
        for shift in range(1, within + 1):
            following = day + timedelta(days=shift)
            if rules.day_reason(following) is None:
                return following
        return None

    def _make_up_on(self, business_day: date, after: datetime, until: datetime) -> datetime | None:
        """The earliest fire moved onto ``business_day`` that is after ``after``, before
        ``until`` and allowed, in one pass over the fires of the non-business days before it.

        Wall times map onto the business day in order, so on a day without a daylight-saving
        change the pass starts at ``after``'s wall time (when the business day is ``after``'s
        day) and leaves the day at its first candidate; around a change it looks a few hours
        wider."""
        rules, zone, base = self._rules, self.zone, self.base
        first = self._stretch_start(business_day)
        if first is None:
            return None
        after_local = after.astimezone(zone)
        same_day = after_local.date() == business_day
        steady_target = self._no_transition(business_day)
        end = min(wall_instant(datetime.combine(business_day, time()), zone), until)

        def start_of(day: date) -> datetime:
            """The wall time on ``day`` from which its fires can land after ``after``."""
            if not same_day:
                return datetime.combine(day, time())
            threshold = datetime.combine(day, after_local.time())
            if steady_target and self._no_transition(day):
                return threshold
            return max(datetime.combine(day, time()), threshold - _SHIFT_MARGIN)

        best = until
        day = first
        fire = base.next_fire_time(wall_instant(start_of(day), zone) - _TICK)
        best_wall: datetime | None = None
        while fire is not None and fire < end:
            local = fire.astimezone(zone)
            wall = local.replace(tzinfo=None, fold=0)
            if local.date() != day:
                day, best_wall = local.date(), None
                jump = wall_instant(start_of(day), zone)
                if jump > fire:
                    fire = base.next_fire_time(jump - _TICK)
                    continue
            steady = steady_target and self._no_transition(day)
            leave = best_wall is not None and wall > best_wall + _SHIFT_MARGIN
            if not leave:
                moved = wall_instant(datetime.combine(business_day, wall.time()), zone)
                if moved > after:
                    if moved < best and rules.reason(moved.astimezone(zone)) is None:
                        best = moved
                    if moved >= best:
                        # A candidate: later fires of a steady day have later wall times.
                        best_wall = best_wall or wall
                        leave = steady
            if leave:
                day += _DAY
                best_wall = None
                fire = base.next_fire_time(wall_instant(start_of(day), zone) - _TICK)
                continue
            fire = base.next_fire_time(fire)
        return best if best < until else None

    def _no_transition(self, day: date) -> bool:
        """Whether the UTC offset is the same all through ``day`` (cached)."""
        zone = self.zone
        if zone is UTC:
            return True
        steady = self._rules.steady_days.get(day)
        if steady is None:
            start = datetime.combine(day, time()).replace(tzinfo=zone)
            steady = start.utcoffset() == (start + timedelta(hours=26)).utcoffset()
            if len(self._rules.steady_days) >= _DAY_CACHE_LIMIT:
                self._rules.steady_days.clear()
            self._rules.steady_days[day] = steady
        return steady


@dataclass(frozen=True, slots=True)
class PreviewFire:
    """One fire of a job's own trigger, as a preview shows it."""

    #: The trigger's fire time.
    at: datetime
    #: Why the calendars exclude it ("calendar: reason"); None: it runs.
    reason: str | None = None
    #: With ``next_business_day``: when it runs instead (None: it does not run).
    moved_to: datetime | None = None

    @property
    def runs(self) -> bool:
        return self.reason is None or self.moved_to is not None


def preview_fires(trigger: ExcludingTrigger, after: datetime, count: int) -> list[PreviewFire]:
    """The base trigger's fires after ``after``, each with the reason it is excluded (and
    where it moves), until ``count`` of them run (at most ``20 * count`` looked at)."""
    shown: list[PreviewFire] = []
    runs = 0
    fire = trigger.base.next_fire_time(after)
    while fire is not None and runs < count and len(shown) < 20 * count:
        reason = trigger.excluded_reason(fire)
        entry = PreviewFire(fire, reason, trigger.moved_time(fire) if reason else None)
        shown.append(entry)
        runs += entry.runs
        fire = trigger.base.next_fire_time(fire)
    return shown
