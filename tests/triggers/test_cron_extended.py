"""Extended cron (``extended=True``: Quartz day tokens; ``seconds=True``: six fields) against
independent brute-force oracles, in UTC and daylight-saving zones."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from beatx.errors import BeatxError, InvalidTriggerError
from beatx.triggers import CronTrigger, build_trigger, trigger_from_dict
from tests.triggers.cron_reference import reference_next
from tests.triggers.extended_reference import ExtendedFields, reference_next_seconds
from tests.triggers.test_cron_properties import END, START, transitions

CI = os.environ.get("CI", "").lower() == "true"
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
SETTINGS = settings(
    max_examples=120 if CI else 200,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.too_slow],
)
DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def small_field(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.sampled_from(["*", "value", "list", "range", "step"]))
    if kind == "*":
        return "*"
    if kind == "value":
        return str(draw(st.integers(low, high)))
    if kind == "list":
        values = draw(st.lists(st.integers(low, high), min_size=1, max_size=3, unique=True))
        return ",".join(map(str, values))
    if kind == "range":
        a = draw(st.integers(low, high))
        return f"{a}-{draw(st.integers(a, high))}"
    return f"*/{draw(st.integers(2, max(2, (high - low) // 2)))}"


@st.composite
def dom_field(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["L", "L-n", "W", "LW", "plain"]))
        if kind == "L":
            items.append("L")
        elif kind == "L-n":
            items.append(f"L-{draw(st.integers(1, 10))}")
        elif kind == "W":
            items.append(f"{draw(st.integers(1, 31))}W")
        elif kind == "LW":
            items.append("LW")
        else:
            items.append(str(draw(st.integers(1, 28))))
    return ",".join(dict.fromkeys(items))


@st.composite
def dow_field(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(1, 2))):
        weekday = draw(st.integers(0, 7))
        token = DOW_NAMES[weekday % 7] if draw(st.booleans()) else str(weekday)
        kind = draw(st.sampled_from(["#", "L", "plain"]))
        if kind == "#":
            items.append(f"{token}#{draw(st.integers(1, 5))}")
        elif kind == "L":
            items.append(f"{token}L")
        else:
            items.append(token)
    return ",".join(dict.fromkeys(items))


@st.composite
def extended_expressions(draw: st.DrawFn) -> str:
    minute = draw(small_field(0, 59))
    hour = draw(small_field(0, 23))
    shape = draw(st.sampled_from(["dom", "dow", "both", "?dom", "?dow"]))
    dom = draw(dom_field()) if shape in ("dom", "both", "?dow") else ("?" if shape == "?dom" else "*")
    dow = draw(dow_field()) if shape in ("dow", "both", "?dom") else ("?" if shape == "?dow" else "*")
    month = draw(st.sampled_from(["*", "*", "2", "1-6", "2,11"]))
    return f"{minute} {hour} {dom} {month} {dow}"


@st.composite
def afters(draw: st.DrawFn, zone: str) -> datetime:
    near = transitions(zone)
    if near and draw(st.integers(0, 3)) > 0:
        instant = draw(st.sampled_from(near))
        return instant + timedelta(seconds=draw(st.integers(-6 * 3600, 6 * 3600)))
    seconds = draw(st.integers(0, int((END - START).total_seconds())))
    return START + timedelta(seconds=seconds, microseconds=draw(st.sampled_from([0, 0, 1, 999999])))


def build(expression: str, zone: str, **flags: bool) -> CronTrigger:
    try:
        return CronTrigger(expression, zone, **flags)
    except InvalidTriggerError as exc:
        assert "never fires" in str(exc), exc
        assume(False)
        raise


@SETTINGS
@given(st.data())
def test_extended_days_agree_with_the_brute_force_oracle(data: st.DataObject) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    expression = data.draw(extended_expressions())
    moment = data.draw(afters(zone))
    trigger = build(expression, zone, extended=True)
    fields = ExtendedFields(expression)
    tz = ZoneInfo(zone)
    for _ in range(3):
        got = trigger.next_fire_time(moment)
        expected = reference_next(fields, tz, moment, years=3)
        if expected is None:
            assert got is None or got > moment + timedelta(days=366 * 3), (expression, zone, moment, got)
            return
        assert got == expected, (expression, zone, moment.isoformat(), got, expected)
        moment = got


@st.composite
def seconds_expressions(draw: st.DrawFn) -> str:
    second = draw(small_field(0, 59))
    minute = draw(small_field(0, 59))
    hour = draw(small_field(0, 23))
    day = draw(st.sampled_from(["* * *", "* * *", "L * *", "? * 5L", "15W * ?", "* * 1-5"]))
    return f"{second} {minute} {hour} {day}"


@settings(SETTINGS, max_examples=60 if CI else 100)
@given(st.data())
def test_seconds_mode_agrees_with_a_second_by_second_walk(data: st.DataObject) -> None:
    zone = data.draw(st.sampled_from(ZONES))
    expression = data.draw(seconds_expressions())
    moment = data.draw(afters(zone))
    extended = any(token in expression for token in ("L", "W", "?"))
    trigger = build(expression, zone, seconds=True, extended=extended)
    fields = ExtendedFields(expression, seconds=True)
    window = timedelta(days=2)
    for _ in range(3):
        got = trigger.next_fire_time(moment)
        expected = reference_next_seconds(fields, ZoneInfo(zone), moment, window=window)
        if expected is None:
            assert got is None or got > moment + window, (expression, zone, moment, got)
            return
        assert got == expected, (expression, zone, moment.isoformat(), got, expected)
        moment = got


# -- fixed examples -------------------------------------------------------------------------------


def fires(trigger: CronTrigger, after: str, count: int) -> list[str]:
    moment = datetime.fromisoformat(after)
    out = []
    for _ in range(count):
        nxt = trigger.next_fire_time(moment)
        assert nxt is not None
        out.append(nxt.astimezone(trigger.timezone or UTC).isoformat())
        moment = nxt
    return out


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 9 L * *", ["2026-01-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00"]),
        ("0 9 L-3 * *", ["2026-01-28T09:00:00+00:00", "2026-02-25T09:00:00+00:00"]),
        ("0 9 LW * *", ["2026-01-30T09:00:00+00:00", "2026-02-27T09:00:00+00:00"]),
        # 2026-02-15 is a Sunday: the Monday after; 2026-03-15 a Sunday too.
        ("0 9 15W * *", ["2026-01-15T09:00:00+00:00", "2026-02-16T09:00:00+00:00"]),
        # 2026-08-01 is a Saturday: 1W is Monday the 3rd (never the previous month).
        ("0 9 1W 8 *", ["2026-08-03T09:00:00+00:00", "2027-08-02T09:00:00+00:00"]),
        ("0 9 * * 5#3", ["2026-01-16T09:00:00+00:00", "2026-02-20T09:00:00+00:00"]),
        ("0 9 * * FRI#3", ["2026-01-16T09:00:00+00:00", "2026-02-20T09:00:00+00:00"]),
        ("0 9 * * 5L", ["2026-01-30T09:00:00+00:00", "2026-02-27T09:00:00+00:00"]),
        ("0 9 ? * 1#1", ["2026-01-05T09:00:00+00:00", "2026-02-02T09:00:00+00:00"]),
    ],
)
def test_quartz_day_tokens(expression: str, expected: list[str]) -> None:
    trigger = CronTrigger(expression, "UTC", extended=True)
    assert fires(trigger, "2026-01-01T00:00:00+00:00", len(expected)) == expected


def test_seconds_mode_and_its_dst_rule() -> None:
    # Paris 2026-03-29: 02:00-02:59 is skipped; fixed-time seconds collapse into one fire.
    trigger = CronTrigger("*/20 30 2 * * *", "Europe/Paris", seconds=True)
    assert fires(trigger, "2026-03-29T00:00:00+01:00", 4) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-30T02:30:20+02:00",
        "2026-03-30T02:30:40+02:00",
    ]
    every = CronTrigger("* * * * * *", seconds=True)
    after = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert every.next_fire_time(after) == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "flags", "message"),
    [
        ("0 9 L * *", {}, "extended=True"),
        ("0 9 15W * *", {}, "extended=True"),
        ("0 9 * * 5#3", {}, "extended=True"),
        ("0 9 * * 5L", {}, "extended=True"),
        ("0 9 ? * 1", {}, "extended=True"),
        ("0 0 9 * * *", {}, "seconds=True"),
        ("0 0 9 * * *", {"extended": True}, "seconds=True"),
        ("0 9 * * *", {"seconds": True}, "6 fields"),
        ("0 9 * * L", {"extended": True}, "ambiguous"),
        ("0 9 * * 5#6", {"extended": True}, "from 1 to 5"),
        ("0 9 L-31 * *", {"extended": True}, "from 0 to 30"),
        ("0 9 32W * *", {"extended": True}, "from 1 to 31"),
        ("0 9 L/2 * *", {"extended": True}, "day-of-month"),
        ("0 0 30W 2 *", {"extended": True}, "never fires"),
        ("61 0 9 * * *", {"seconds": True}, "second field"),
    ],
)
def test_errors_name_the_field_and_the_flag(expression: str, flags: dict[str, bool], message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message) as info:
        CronTrigger(expression, **flags)
    assert isinstance(info.value, BeatxError)


def test_five_field_meaning_never_changes_with_the_flags() -> None:
    after = datetime(2026, 3, 28, 12, tzinfo=UTC)
    for expression in ("0 3 * * *", "*/7 1-5 1,15 * mon-fri", "@daily"):
        plain = CronTrigger(expression, "Europe/Paris")
        extended = CronTrigger(expression, "Europe/Paris", extended=True)
        moment = after
        for _ in range(20):
            assert plain.next_fire_time(moment) == extended.next_fire_time(moment)
            moment = plain.next_fire_time(moment)  # type: ignore[assignment]


def test_serialization_round_trips_and_old_dicts_load_unchanged() -> None:
    old = {
        "kind": "cron",
        "version": 1,
        "expression": "0 3 * * *",
        "timezone": "Europe/Paris",
        "start_date": None,
        "end_date": None,
    }
    plain = trigger_from_dict(old)
    assert plain == CronTrigger("0 3 * * *", "Europe/Paris")
    assert plain.to_dict() == old  # no new keys for a plain trigger
    for trigger in (
        CronTrigger("0 9 L * *", "Europe/Paris", extended=True),
        CronTrigger("*/5 * * * * *", seconds=True),
        CronTrigger("0 0 9 ? * 5#3", "America/New_York", extended=True, seconds=True),
    ):
        data = trigger.to_dict()
        assert trigger_from_dict(data) == trigger
        assert CronTrigger.from_dict(data).to_dict() == data
        assert data.get("extended", False) == trigger.extended
        assert data.get("seconds", False) == trigger.seconds
    assert CronTrigger("0 9 L * *", extended=True) != CronTrigger(
        "0 9 L * *", extended=True, seconds=False
    ).resolve(now=datetime(2026, 1, 1, tzinfo=UTC), timezone=ZoneInfo("Europe/Paris"))
    resolved = CronTrigger("0 0 9 L * *", extended=True, seconds=True).resolve(
        now=datetime(2026, 1, 1, tzinfo=UTC), timezone=ZoneInfo("Europe/Paris")
    )
    assert isinstance(resolved, CronTrigger) and resolved.extended and resolved.seconds


def test_build_trigger_and_describe() -> None:
    trigger = build_trigger("cron", expression="30 0 9 L * *", extended=True, seconds=True, timezone="UTC")
    assert isinstance(trigger, CronTrigger)
    assert trigger.describe() == "At 09:00, at second 30 on the last day of the month (UTC)"
    assert "third Friday" in CronTrigger("0 9 * * 5#3", extended=True).describe()
    assert "last weekday" in CronTrigger("0 9 LW * *", extended=True).describe()
    assert "nearest day 15" in CronTrigger("0 9 15W * *", extended=True).describe()
    assert "every 10 seconds" in CronTrigger("*/10 * * * * *", seconds=True).describe()
    with pytest.raises(InvalidTriggerError, match="extended must be true or false"):
        CronTrigger("0 9 * * *", extended="yes")  # type: ignore[arg-type]
