"""The exclusion calendars against a brute-force oracle.

For random calendars (dates, ranges, weekdays, time windows), random cron and interval
triggers, both policies and four zones (UTC, Europe/Paris and the odd shifts of
Australia/Lord_Howe and Pacific/Chatham), ``ExcludingTrigger.next_fire_time(after)`` must
equal what the oracle finds by applying the documented rules literally: every fire of the
trigger in a window is kept when allowed, or moved (next_business_day) to the first minute
whose wall time reaches the same time on the next business day, found by walking minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beatx.calendars import ExclusionCalendar
from beatx.errors import InvalidCalendarError
from beatx.exclusion import MAX_SHIFT_DAYS, ExcludingTrigger
from beatx.triggers import CronTrigger, IntervalTrigger
from beatx.triggers.base import Trigger

ZONES = ["UTC", "Europe/Paris", "Australia/Lord_Howe", "Pacific/Chatham"]
#: Days around which `after` is drawn: the 2026 daylight-saving changes of the zones above.
TRANSITION_DAYS = [
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 9, 27),
]
CRONS = [
    "0 9 * * *",
    "30 2 * * *",
    "45 2 * * *",
    "0 9 1 * *",
    "15 */3 * * *",
    "*/20 * * * *",
    "0 9 * * MON",
    "0 9,17 * * 1-5",
    "0 0 * * *",
    "30 1 * * SUN",
    "*/30 1-3 * * *",
    "0 10 15 * *",
]


def _hours(low: int, high: int) -> Callable[[datetime], bool]:
    return lambda wall: low <= wall.hour <= high


#: Windows, each with the oracle's own reading of it.
WINDOWS: list[tuple[str, Callable[[datetime], bool]]] = [
    ("* 0-5 * * *", _hours(0, 5)),
    ("0-29 9 * * *", lambda w: w.hour == 9 and w.minute < 30),
    ("* 12 * * MON-FRI", lambda w: w.hour == 12 and w.weekday() < 5),
    ("* 2 * * *", _hours(2, 2)),
    ("30-59 1 * * *", lambda w: w.hour == 1 and w.minute >= 30),
    ("* 22-23 1-15 * *", lambda w: w.hour >= 22 and w.day <= 15),
    ("* 9 * * SAT,SUN", lambda w: w.hour == 9 and w.weekday() >= 5),
]


@st.composite
def calendars(draw: st.DrawFn) -> tuple[list[ExclusionCalendar], dict[str, object]]:
    base = draw(st.sampled_from(TRANSITION_DAYS))
    near = st.integers(-25, 25).map(lambda n: base + timedelta(days=n))
    dates = draw(st.frozensets(near, max_size=4))
    # Now and then a range longer than the longest move (31 days).
    lengths = st.one_of(st.integers(0, 8), st.integers(25, 45))
    ranges = [
        (first, first + timedelta(days=length))
        for first, length in draw(st.lists(st.tuples(near, lengths), max_size=2))
    ]
    weekdays = draw(st.frozensets(st.integers(0, 6), max_size=3))
    windows = draw(st.lists(st.sampled_from(range(len(WINDOWS))), max_size=2, unique=True))
    split = draw(st.booleans())
    if split:
        made = [
            ExclusionCalendar(name="days", dates=dates, date_ranges=ranges),
            ExclusionCalendar(name="week", weekdays=weekdays, windows=[WINDOWS[i][0] for i in windows]),
        ]
    else:
        made = [
            ExclusionCalendar(
                name="all",
                dates=dates,
                date_ranges=ranges,
                weekdays=weekdays,
                windows=[WINDOWS[i][0] for i in windows],
            )
        ]
    spec = {
        "dates": dates,
        "ranges": ranges,
        "weekdays": weekdays,
        "windows": [WINDOWS[i][1] for i in windows],
    }
    return made, spec


@st.composite
def triggers(draw: st.DrawFn, zone: str) -> Trigger:
    if draw(st.booleans()):
        return CronTrigger(draw(st.sampled_from(CRONS)), zone)
    minutes = draw(st.sampled_from([50, 90, 360, 1440, 1500, 7 * 1440]))
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 1440)))
    return IntervalTrigger(minutes=minutes, start_date=start)


class Oracle:
    def __init__(self, spec: dict[str, object], zone: ZoneInfo) -> None:
        self.spec = spec
        self.zone = zone

    def day_excluded(self, day: date) -> bool:
        spec = self.spec
        return (
            day in spec["dates"]  # type: ignore[operator]
            or day.weekday() in spec["weekdays"]  # type: ignore[operator]
            or any(a <= day <= b for a, b in spec["ranges"])  # type: ignore[attr-defined]
        )

    def excluded(self, instant: datetime) -> bool:
        local = instant.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        return self.day_excluded(local.date()) or any(w(wall) for w in self.spec["windows"])  # type: ignore[attr-defined]

    def first_reaching(self, day: date, wall_time: time) -> datetime:
        """Walk UTC minutes to the first whose wall time reaches ``day`` at ``wall_time``."""
        target = datetime.combine(day, wall_time)
        floor = target.replace(second=0, microsecond=0)
        # Start well before the answer (three hours before the zone's own reading of it, more
        # than any daylight-saving shift), and check that it is before.
        guess = floor.replace(tzinfo=self.zone).astimezone(UTC)
        minute = (guess - timedelta(hours=3)).replace(second=0, microsecond=0)
        assert minute.astimezone(self.zone).replace(tzinfo=None) < floor
        while True:
            wall = minute.astimezone(self.zone).replace(tzinfo=None)
            if wall >= floor:
                return minute + (target - floor) if wall == floor else minute
            minute += timedelta(minutes=1)

    def next_fire(self, base: Trigger, policy: str, after: datetime, end: datetime) -> datetime | None:
        return min((x for x in self.effective_fires(base, policy, after, end) if x > after), default=None)

    def effective_fires(self, base: Trigger, policy: str, after: datetime, end: datetime) -> list[datetime]:
        """Every fire in ``(after, end]`` by the rules (complete: a moved fire comes from an
        earlier fire, and the walk starts further back than the longest move)."""
        effective: set[datetime] = set()
        fire = base.next_fire_time(after - timedelta(days=MAX_SHIFT_DAYS + 2))
        while fire is not None and fire <= end:
            local = fire.astimezone(self.zone)
            if not self.excluded(fire):
                effective.add(fire)
            elif policy == "next_business_day" and self.day_excluded(local.date()):
                day = local.date() + timedelta(days=1)
                while self.day_excluded(day):
                    day += timedelta(days=1)
                if (day - local.date()).days <= MAX_SHIFT_DAYS:
                    moved = self.first_reaching(day, local.replace(tzinfo=None).time())
                    if not self.excluded(moved):
                        effective.add(moved)
            fire = base.next_fire_time(fire)
        return sorted(x for x in effective if after < x <= end)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_next_fire_matches_the_oracle(data: st.DataObject) -> None:
    check_against_oracle(data)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_next_fire_matches_the_oracle_many_cases(data: st.DataObject) -> None:
    check_against_oracle(data)


def check_against_oracle(data: st.DataObject) -> None:
    zone_name = data.draw(st.sampled_from(ZONES), label="zone")
    zone = ZoneInfo(zone_name)
    base = data.draw(triggers(zone_name), label="trigger")
    made, spec = data.draw(calendars(), label="calendars")
    policy = data.draw(st.sampled_from(["skip", "next_business_day"]), label="policy")
    day = data.draw(st.sampled_from(TRANSITION_DAYS))
    after = datetime.combine(day, time(), tzinfo=UTC) + timedelta(
        minutes=data.draw(st.integers(-20 * 1440, 3 * 1440)),
        seconds=data.draw(st.sampled_from([0, 0, 1, 59])),
    )
    # An interval has no timezone of its own (its calendars are read in UTC): name the zone.
    wrapped = ExcludingTrigger(base, made, policy, timezone=zone)  # type: ignore[arg-type]
    end = after + timedelta(days=70)
    expected = Oracle(spec, zone).next_fire(base, policy, after, end)
    try:
        got = wrapped.next_fire_time(after)
    except InvalidCalendarError:
        assert expected is None, f"raised, but the oracle fires at {expected}"
        return
    if expected is None:
        assert got is None or got > end
    else:
        assert got == expected, f"{got} != oracle {expected} ({wrapped!r}, after {after})"


@pytest.mark.parametrize("zone_name", ZONES)
def test_chained_fires_match_the_oracle_over_a_season(zone_name: str) -> None:
    """Fire after fire, as the engine chains them, for a month around a transition."""
    zone = ZoneInfo(zone_name)
    spec = {
        "dates": frozenset({date(2026, 3, 30), date(2026, 4, 6), date(2026, 10, 5)}),
        "ranges": [(date(2026, 4, 1), date(2026, 4, 3))],
        "weekdays": frozenset({5, 6}),
        "windows": [WINDOWS[3][1]],
    }
    made = [
        ExclusionCalendar(
            name="season",
            dates=spec["dates"],  # type: ignore[arg-type]
            date_ranges=spec["ranges"],  # type: ignore[arg-type]
            weekdays=spec["weekdays"],  # type: ignore[arg-type]
            windows=[WINDOWS[3][0]],
        )
    ]
    oracle = Oracle(spec, zone)
    for expression in ("30 1 * * *", "*/30 1-3 * * *", "0 9 * * *"):
        for policy in ("skip", "next_business_day"):
            base = CronTrigger(expression, zone_name)
            wrapped = ExcludingTrigger(base, made, policy)  # type: ignore[arg-type]
            at = datetime(2026, 3, 20, tzinfo=UTC)
            expected = oracle.effective_fires(base, policy, at, at + timedelta(days=60))[:40]
            got: list[datetime] = []
            while len(got) < len(expected):
                following = wrapped.next_fire_time(at)
                assert following is not None
                got.append(at := following)
            assert got == expected, (expression, policy)


def test_a_stretch_longer_than_the_longest_move_moves_its_last_fires() -> None:
    """Mondays in a 45-day shutdown: those of its last 31 days run on the day after it."""
    first, last = date(2026, 6, 1), date(2026, 7, 15)
    spec = {"dates": frozenset(), "ranges": [(first, last)], "weekdays": frozenset(), "windows": []}
    made = [ExclusionCalendar(name="shutdown", date_ranges=[(first, last)])]
    base = CronTrigger("0 9 * * MON", "UTC")
    wrapped = ExcludingTrigger(base, made, "next_business_day")
    after = datetime(2026, 5, 31, 12, tzinfo=UTC)
    expected = Oracle(spec, ZoneInfo("UTC")).next_fire(
        base, "next_business_day", after, after + timedelta(days=70)
    )
    assert expected == datetime(2026, 7, 16, 9, tzinfo=UTC)
    assert wrapped.next_fire_time(after) == expected
