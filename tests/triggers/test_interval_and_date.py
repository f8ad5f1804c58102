from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from beatx.errors import InvalidTriggerError, SerializationError
from beatx.triggers import DateTimeTrigger, IntervalTrigger, build_trigger, trigger_from_dict

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("after", "expected"),
    [(s(-5), s(0)), (s(0), s(90)), (s(1), s(90)), (s(89.999), s(90)), (s(90), s(180))],
    ids=["before-start", "at-start", "just-after", "just-before-next", "on-a-fire"],
)
def test_interval_fire_times_are_start_plus_k_intervals(after: datetime, expected: datetime) -> None:
    assert IntervalTrigger(minutes=1, seconds=30, start_date=T0).next_fire_time(after) == expected


def test_interval_units_add_up() -> None:
    trigger = IntervalTrigger(weeks=1, days=1, hours=1, minutes=1, seconds=1, start_date=T0)
    assert trigger.interval == timedelta(days=8, hours=1, minutes=1, seconds=1)
    assert trigger.describe() == "every 1 week 1 day 1 hour 1 minute 1 second"


def test_interval_never_drifts_over_years() -> None:
    trigger = IntervalTrigger(seconds=0.1, start_date=T0)
    after = T0 + timedelta(days=3 * 365, microseconds=50_000)
    assert trigger.next_fire_time(after) == T0 + timedelta(days=3 * 365, microseconds=100_000)


def test_start_now_false_skips_the_anchor() -> None:
    trigger = IntervalTrigger(seconds=10, start_now=False, start_date=T0)
    assert trigger.first_fire_time(T0) == s(10)


def test_resolve_anchors_an_interval_at_the_time_it_is_added() -> None:
    trigger = IntervalTrigger(hours=1).resolve(now=s(7), timezone=UTC)
    assert trigger.start_date == s(7)
    assert trigger.first_fire_time(s(7)) == s(7)


def test_an_interval_with_a_past_start_first_fires_on_its_grid() -> None:
    trigger = IntervalTrigger(seconds=10, start_date=s(-25))
    assert trigger.first_fire_time(T0) == s(5)


def test_an_interval_stops_after_its_end_date() -> None:
    trigger = IntervalTrigger(seconds=10, start_date=T0, end_date=s(20))
    assert trigger.next_fire_time(s(10)) == s(20)
    assert trigger.next_fire_time(s(20)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "greater than 0"),
        ({"seconds": 0}, "greater than 0"),
        ({"seconds": -1}, "negative"),
        ({"minutes": "5"}, "must be a number"),
        ({"seconds": 1, "start_date": "nope"}, "start_date 'nope' is not a date"),
        ({"seconds": 1, "start_date": T0, "end_date": s(-1)}, "before start_date"),
    ],
    ids=["nothing", "zero", "negative", "not-a-number", "bad-start", "end-before-start"],
)
def test_bad_intervals_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message) as info:
        IntervalTrigger(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        IntervalTrigger(seconds=1, start_date=T0).next_fire_time(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-25T10:30:00", datetime(2026, 12, 25, 10, 30, tzinfo=UTC)),
        ("2026-12-25T10:30:00+00:00", datetime(2026, 12, 25, 10, 30, tzinfo=UTC)),
        ("2026-12-25T10:30:00+01:00", datetime(2026, 12, 25, 9, 30, tzinfo=UTC)),
        ("2026-12-25 10:30:00", datetime(2026, 12, 25, 10, 30, tzinfo=UTC)),
        ("2026-12-25", datetime(2026, 12, 25, tzinfo=UTC)),
        ("2026-12-25T10:30:00Z", datetime(2026, 12, 25, 10, 30, tzinfo=UTC)),
        (date(2026, 12, 25), datetime(2026, 12, 25, tzinfo=UTC)),
        (datetime(2026, 12, 25, 10, 30), datetime(2026, 12, 25, 10, 30, tzinfo=UTC)),
    ],
    ids=["iso-naive", "iso-utc", "iso-offset", "space", "date-only", "zulu", "date-object", "naive-datetime"],
)
def test_one_shot_forms_mean_utc_unless_they_say_otherwise(value: object, expected: datetime) -> None:
    trigger = DateTimeTrigger(value).resolve(now=T0, timezone=UTC)  # type: ignore[arg-type]
    assert trigger.first_fire_time(T0) == expected


def test_a_naive_one_shot_takes_the_scheduler_timezone_when_resolved() -> None:
    trigger = DateTimeTrigger("2026-07-14 10:00").resolve(now=T0, timezone=PARIS)
    assert trigger.first_fire_time(T0) == datetime(2026, 7, 14, 8, 0, tzinfo=UTC)


def test_a_one_shot_with_its_own_timezone_keeps_it() -> None:
    trigger = DateTimeTrigger("2026-07-14 10:00", timezone="Europe/Paris").resolve(now=T0, timezone=UTC)
    assert trigger.first_fire_time(T0) == datetime(2026, 7, 14, 8, 0, tzinfo=UTC)


def test_a_one_shot_fires_once() -> None:
    trigger = DateTimeTrigger(s(30))
    assert trigger.next_fire_time(T0) == s(30)
    assert trigger.next_fire_time(s(30)) is None
    assert trigger.first_fire_time(s(60)) == s(30)


def test_a_bad_date_names_the_forms_it_accepts() -> None:
    with pytest.raises(InvalidTriggerError, match="2026-12-25T10:30:00"):
        DateTimeTrigger("25/12/2026")


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(InvalidTriggerError, match="unknown timezone 'Mars/Olympus'"):
        DateTimeTrigger("2026-12-25", timezone="Mars/Olympus")


@pytest.mark.parametrize(
    "trigger",
    [
        IntervalTrigger(seconds=2.5, start_date=T0, end_date=s(100), start_now=False),
        DateTimeTrigger("2026-12-25T10:30:00", timezone="Europe/Paris"),
        DateTimeTrigger(s(5)),
    ],
    ids=["interval", "date-with-zone", "date-utc"],
)
def test_triggers_round_trip_through_dicts(trigger: IntervalTrigger | DateTimeTrigger) -> None:
    again = trigger_from_dict(trigger.to_dict())
    assert again == trigger
    assert again.first_fire_time(T0) == trigger.first_fire_time(T0)


def test_a_newer_stored_format_is_refused_with_advice() -> None:
    data = IntervalTrigger(seconds=1, start_date=T0).to_dict() | {"version": 99}
    with pytest.raises(SerializationError, match="upgrade beatx"):
        trigger_from_dict(data)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(SerializationError, match="unknown trigger kind 'lunar'"):
        trigger_from_dict({"kind": "lunar"})


def test_build_trigger_speaks_the_seed_spelling() -> None:
    assert build_trigger("date", run_date="2026-12-25") == DateTimeTrigger("2026-12-25")
    assert isinstance(build_trigger("interval", hours=1), IntervalTrigger)
    with pytest.raises(InvalidTriggerError, match="unknown argument"):
        build_trigger("interval", hourz=1)
    with pytest.raises(InvalidTriggerError, match="unknown trigger 'weekly'"):
        build_trigger("weekly")
