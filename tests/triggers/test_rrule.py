"""RRuleTrigger against an independent oracle and against dateutil itself.

The oracle takes the rule's occurrences (local wall times) from dateutil's plain iteration
from DTSTART (no windows, no re-anchoring), and finds each one's instant by walking UTC
minutes around it: the first-pass minute whose wall time equals it, or, when the wall clock
jumped over it, the first minute after the jump. It shares no code with beatx.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from beatx.errors import BeatxError, InvalidTriggerError
from beatx.triggers import RRuleTrigger, build_trigger, trigger_from_dict
from tests.triggers.test_cron_properties import transitions

CI = os.environ.get("CI", "").lower() == "true"
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
MINUTE = timedelta(minutes=1)
FREQS = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY"]
#: How far before ``after`` dtstart may be, per frequency (keeps dateutil's walk from DTSTART short).
DTSTART_SPAN = {
    "YEARLY": 366 * 30,
    "MONTHLY": 366 * 10,
    "WEEKLY": 366 * 3,
    "DAILY": 366 * 2,
    "HOURLY": 60,
    "MINUTELY": 3,
}
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def instant_of(wall: datetime, tz: tzinfo) -> datetime:
    """Walk UTC minutes around ``wall``: its first pass, else the first minute after the gap."""
    t = (wall - timedelta(hours=16)).replace(tzinfo=UTC)
    previous = t.astimezone(tz).replace(tzinfo=None)
    while True:
        t += MINUTE
        local = t.astimezone(tz)
        naive = local.replace(tzinfo=None, fold=0)
        if naive == wall and local.fold == 0:
            return t
        if previous < wall < naive:  # the wall clock jumped over ``wall``
            return t
        previous = naive


def oracle_next(
    text: str,
    dtstart: datetime,
    tz: tzinfo,
    after: datetime,
    exdates: set[datetime] = frozenset(),  # type: ignore[assignment]
    rdates: list[datetime] = (),  # type: ignore[assignment]
    limit: int = 2000,
) -> datetime | None:
    rule = rrulestr(text, dtstart=dtstart)
    low = after.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
    best: datetime | None = None
    seen = 0
    for wall in rule:
        seen += 1
        if seen > 200_000:
            break
        if wall < low or wall in exdates:
            continue
        instant = instant_of(wall, tz)
        if instant > after:
            best = instant
            break
        limit -= 1
        if limit == 0:
            break
    for value in rdates:
        instant = value if value.tzinfo else instant_of(value, tz)
        if instant > after and (best is None or instant < best):
            best = instant
    return best


@st.composite
def rules(draw: st.DrawFn) -> str:
    """Random rules that always fire again (an impossible rule makes dateutil walk to 9999)."""
    freq = draw(st.sampled_from(FREQS))
    parts = [f"FREQ={freq}"]
    interval = 1
    if freq in ("YEARLY", "WEEKLY"):
        interval = draw(st.integers(1, 3))
    elif freq == "DAILY":
        interval = draw(st.integers(1, 6))
    elif freq == "HOURLY":
        interval = draw(st.sampled_from([1, 1, 5, 7]))
    elif freq == "MINUTELY":
        interval = draw(st.sampled_from([1, 7, 13]))
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    byday = draw(st.lists(st.sampled_from(DAYS), max_size=3, unique=True))
    monthday = draw(st.lists(st.integers(-28, 28).filter(bool), max_size=2, unique=True))
    if freq == "MONTHLY" and byday and not monthday and draw(st.booleans()):
        byday = [f"{draw(st.sampled_from([1, 2, -1, 4]))}{day}" for day in byday]
    if byday:
        parts.append("BYDAY=" + ",".join(byday))
    if monthday and freq in ("YEARLY", "MONTHLY", "DAILY"):
        parts.append("BYMONTHDAY=" + ",".join(map(str, monthday)))
    if freq in ("YEARLY", "DAILY", "HOURLY") and draw(st.booleans()):
        parts.append(
            "BYMONTH="
            + ",".join(map(str, draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))))
        )
    if freq in ("YEARLY", "MONTHLY", "WEEKLY", "DAILY") and draw(st.booleans()):
        parts.append(
            "BYHOUR="
            + ",".join(map(str, draw(st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True))))
        )
    if freq != "MINUTELY" and draw(st.booleans()):
        parts.append(
            "BYMINUTE="
            + ",".join(map(str, draw(st.lists(st.integers(0, 59), min_size=1, max_size=2, unique=True))))
        )
    if (
        freq in ("MONTHLY", "YEARLY")
        and byday
        and not monthday
        and "BYMONTH" not in " ".join(parts)
        and draw(st.booleans())
    ):
        parts.append(f"BYSETPOS={draw(st.sampled_from([1, -1, 2]))}")
    if freq == "WEEKLY" and draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(DAYS))}")
    ending = draw(st.sampled_from(["", "", "", "count"]))
    if ending:
        parts.append(f"COUNT={draw(st.integers(1, 30))}")
    return ";".join(parts)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    zone = draw(st.sampled_from(ZONES))
    text = draw(rules())
    near = transitions(zone)
    start = datetime(2001, 1, 1, tzinfo=UTC)
    if near and draw(st.integers(0, 3)) > 0:
        after = draw(st.sampled_from([t for t in near if t.year >= 2004]))
        after += timedelta(seconds=draw(st.integers(-6 * 3600, 6 * 3600)))
    else:
        after = start + timedelta(seconds=draw(st.integers(3 * 366 * 86400, 35 * 366 * 86400)))
    freq = text.split(";")[0][5:]
    back = draw(st.integers(0, DTSTART_SPAN[freq] * 1440))
    dtstart = (after.astimezone(ZoneInfo(zone)).replace(tzinfo=None) - timedelta(minutes=back)).replace(
        second=0, microsecond=0
    )
    return text, zone, dtstart, after


@settings(
    max_examples=80 if CI else 150,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_it_agrees_with_the_oracle(case: tuple[str, str, datetime, datetime]) -> None:
    text, zone, dtstart, after = case
    tz = ZoneInfo(zone)
    try:
        trigger = RRuleTrigger(text, dtstart, zone)
    except InvalidTriggerError as exc:
        assert "never fires" in str(exc)
        assume(False)
        raise
    moment = after
    for _ in range(3):
        got = trigger.next_fire_time(moment)
        expected = oracle_next(text, dtstart, tz, moment)
        assert got == expected, (text, zone, dtstart.isoformat(), moment.isoformat(), got, expected)
        if got is None:
            return
        moment = got


@settings(
    max_examples=60 if CI else 100,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rules(), st.integers(0, 40 * 366 * 1440))
def test_in_utc_it_is_dateutils_own_iteration(text: str, minutes: int) -> None:
    after = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes, seconds=17)
    freq = text.split(";")[0][5:]
    dtstart = (after - timedelta(minutes=minutes % (DTSTART_SPAN[freq] * 1440))).replace(
        tzinfo=None, second=0
    )
    rule = rrulestr(text, dtstart=dtstart)
    trigger = RRuleTrigger(text, dtstart, "UTC")
    moment = after
    for _ in range(3):
        theirs = rule.after(moment.replace(tzinfo=None))
        ours = trigger.next_fire_time(moment)
        assert ours == (None if theirs is None else theirs.replace(tzinfo=UTC)), (text, dtstart, moment)
        if ours is None:
            return
        moment = ours


def fires(trigger: RRuleTrigger, after: str, count: int) -> list[str | None]:
    tz = trigger.timezone or UTC
    moment: datetime | None = datetime.fromisoformat(after)
    out: list[str | None] = []
    for _ in range(count):
        assert moment is not None
        moment = trigger.next_fire_time(moment)
        out.append(None if moment is None else moment.astimezone(tz).isoformat())
        if moment is None:
            break
    return out


def test_last_friday_of_the_month_in_paris() -> None:
    trigger = RRuleTrigger(
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1", dtstart="2020-01-01T09:00", timezone="Europe/Paris"
    )
    assert fires(trigger, "2026-03-01T00:00:00+00:00", 2) == [
        "2026-03-27T09:00:00+01:00",
        "2026-04-24T09:00:00+02:00",
    ]


def test_dst_follows_crons_fixed_time_rule() -> None:
    # Paris 2026-03-29 02:30 does not exist: fires at the jump (03:00 +02:00). 2026-10-25
    # 02:30 happens twice: fires once, in the first pass (+02:00).
    trigger = RRuleTrigger("FREQ=DAILY", dtstart="2026-03-01T02:30", timezone="Europe/Paris")
    assert fires(trigger, "2026-03-28T12:00:00+00:00", 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert fires(trigger, "2026-10-24T12:00:00+00:00", 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    hourly = RRuleTrigger("FREQ=MINUTELY;INTERVAL=20", dtstart="2026-03-29T01:00", timezone="Europe/Paris")
    assert fires(hourly, "2026-03-29T01:30:00+01:00", 3) == [
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00, 02:20, 02:40 collapse into the jump
        "2026-03-29T03:20:00+02:00",
    ]


def test_count_until_exdates_and_rdates() -> None:
    counted = RRuleTrigger("FREQ=WEEKLY;COUNT=3", dtstart="2026-01-05T09:00", timezone="UTC")
    assert fires(counted, "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-05T09:00:00+00:00",
        "2026-01-12T09:00:00+00:00",
        "2026-01-19T09:00:00+00:00",
        None,
    ]
    until = RRuleTrigger(
        "FREQ=DAILY;UNTIL=20260103T090000Z", dtstart="2026-01-01T10:00", timezone="Europe/Paris"
    )
    assert fires(until, "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-01T10:00:00+01:00",
        "2026-01-02T10:00:00+01:00",
        "2026-01-03T10:00:00+01:00",
        None,
    ]
    floating = RRuleTrigger(
        "FREQ=DAILY;UNTIL=20260102T100000", dtstart="2026-01-01T10:00", timezone="Europe/Paris"
    )
    assert fires(floating, "2026-01-01T00:00:00+00:00", 3)[-1] is None
    mixed = RRuleTrigger(
        "RRULE:FREQ=DAILY",
        dtstart="2026-01-01T08:00",
        timezone="America/New_York",
        exdates=["2026-01-02T08:00"],
        rdates=["2026-01-02T12:00", datetime(2026, 1, 3, 0, 0, tzinfo=UTC)],
    )
    assert fires(mixed, "2026-01-01T00:00:00-05:00", 4) == [
        "2026-01-01T08:00:00-05:00",
        "2026-01-02T12:00:00-05:00",
        "2026-01-02T19:00:00-05:00",
        "2026-01-03T08:00:00-05:00",
    ]
    assert oracle_next(
        "FREQ=DAILY",
        datetime(2026, 1, 1, 8),
        ZoneInfo("America/New_York"),
        datetime(2026, 1, 1, 13, 0, 1, tzinfo=UTC),
        exdates={datetime(2026, 1, 2, 8)},
        rdates=[datetime(2026, 1, 2, 12)],
    ) == datetime(2026, 1, 2, 17, tzinfo=UTC)


def test_dtstart_is_fixed_by_resolve_and_serialized() -> None:
    floating = RRuleTrigger("FREQ=HOURLY")
    with pytest.raises(InvalidTriggerError, match="resolve"):
        floating.next_fire_time(datetime(2026, 1, 1, tzinfo=UTC))
    now = datetime(2026, 5, 1, 10, 17, 31, 123, tzinfo=UTC)
    resolved = floating.resolve(now=now, timezone=ZoneInfo("Europe/Paris"))
    assert isinstance(resolved, RRuleTrigger)
    assert resolved.to_dict()["dtstart"] == "2026-05-01T12:17:31"
    assert resolved.to_dict()["timezone"] == "Europe/Paris"
    again = trigger_from_dict(resolved.to_dict())
    assert again == resolved
    assert again.next_fire_time(now) == datetime(2026, 5, 1, 11, 17, 31, tzinfo=UTC)
    assert resolved.resolve(now=now + timedelta(days=3), timezone=UTC) is resolved


def test_serialization_round_trip() -> None:
    trigger = RRuleTrigger(
        "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;COUNT=12",
        dtstart=datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris")),
        timezone="Europe/Paris",
        exdates=["2026-02-27T09:00"],
        rdates=["2026-12-24T18:00"],
    )
    data = trigger.to_dict()
    assert data["kind"] == "rrule" and data["version"] == 1
    rebuilt = trigger_from_dict(data)
    assert rebuilt == trigger and hash(rebuilt) == hash(trigger)
    assert RRuleTrigger.from_dict(data).to_dict() == data
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(14):
        assert rebuilt.next_fire_time(moment) == trigger.next_fire_time(moment)
        moment = trigger.next_fire_time(moment) or moment
    assert "RRULE FREQ=MONTHLY" in trigger.describe()
    assert build_trigger(
        "rrule", rule="FREQ=DAILY", dtstart="2026-01-01T09:00", timezone="UTC"
    ) == RRuleTrigger("FREQ=DAILY", "2026-01-01T09:00", "UTC")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rule": "FREQ=SOMETIMES", "dtstart": "2026-01-01"}, "invalid RRULE"),
        ({"rule": "FREQ=DAILY;COUNT=2;UNTIL=20260105T000000Z", "dtstart": "2026-01-01"}, "COUNT and UNTIL"),
        ({"rule": "FREQ=DAILY;UNTIL=2026-01-05", "dtstart": "2026-01-01"}, "UNTIL"),
        ({"rule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"}, "dtstart="),
        ({"rule": "FREQ=DAILY;EXDATE=20260102", "dtstart": "2026-01-01"}, "exdates="),
        ({"rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "dtstart": "2026-01-01"}, "never fires"),
        ({"rule": f"FREQ=DAILY;COUNT={10**6}", "dtstart": "2026-01-01"}, "COUNT is at most"),
        ({"rule": "", "dtstart": "2026-01-01"}, "non-empty"),
        ({"rule": "FREQ=DAILY", "dtstart": "yesterday"}, "dtstart"),
        ({"rule": "FREQ=DAILY", "timezone": "Mars/Base"}, "unknown timezone"),
        ({"rule": "FREQ=DAILY", "byday": "MO"}, "unknown argument"),
    ],
)
def test_errors_are_beatx_errors_naming_what_is_wrong(arguments: dict[str, str], message: str) -> None:
    with pytest.raises(BeatxError, match=message):
        build_trigger("rrule", **arguments)


def test_an_old_fine_grained_rule_keeps_its_interval_lattice() -> None:
    # Windows re-anchor the rule near ``after``; the 7-minute lattice from 1990 must hold.
    tz = ZoneInfo("Europe/Paris")
    old = RRuleTrigger("FREQ=MINUTELY;INTERVAL=7", dtstart="1990-01-01T00:00", timezone="Europe/Paris")
    after = datetime(2026, 3, 29, 0, 40, tzinfo=UTC)
    wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
    recent = datetime(1990, 1, 1) + ((wall - datetime(1990, 1, 1)) // (7 * MINUTE)) * 7 * MINUTE
    moment = after
    for _ in range(12):
        got = old.next_fire_time(moment)
        assert got == oracle_next("FREQ=MINUTELY;INTERVAL=7", recent, tz, moment)
        assert got is not None
        moment = got


def test_ensure_job_keeps_the_dtstart_an_rrule_was_given_when_first_added() -> None:
    """A beat restart (``beat_schedule``, YAML) calls ``ensure_job`` again with the same
    RRULE and no dtstart: the job keeps the dtstart fixed when it was first added, and is
    not rescheduled."""
    from beatx.manager import JobManager
    from beatx.stores.memory import MemoryStore
    from beatx.testing import FakeClock

    clock = FakeClock(datetime(2026, 3, 2, 12, 0, 7, tzinfo=UTC))
    manager = JobManager(MemoryStore(clock=clock), timezone="Europe/Paris", clock=clock)
    first = manager.ensure_job("m:f", RRuleTrigger("FREQ=HOURLY;INTERVAL=5"), id="r")
    clock.advance(3 * 3600 + 11)
    again = manager.ensure_job("m:f", RRuleTrigger("FREQ=HOURLY;INTERVAL=5"), id="r")
    assert again.trigger == first.trigger and again.revision == first.revision
    assert again.next_run_time == first.next_run_time
