"""Exclusion calendars end to end under a fake clock: the management API refuses what it
must, and the engine never fires at an excluded time, moves fires with next_business_day and
follows calendars that change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beatx.calendars import ExclusionCalendar
from beatx.engine.engine import Engine
from beatx.errors import CalendarInUseError, CalendarLookupError, InvalidCalendarError
from beatx.exclusion import ExcludingTrigger
from beatx.jobs import JobStatus
from beatx.manager import JobManager
from beatx.stores.calendar_base import calendar_storage_of
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import CronTrigger
from tests.engine.conftest import T0

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def engine(store: MemoryStore, dispatcher: RecordingDispatcher) -> Engine:
    return Engine(store, dispatcher, max_sleep=3600)


def run(engine: Engine, clock: FakeClock, until: datetime) -> None:
    while True:
        result = engine.tick(clock.now())
        wake = clock.now() + timedelta(seconds=result.sleep)
        if wake > until:
            clock.set(until)
            return
        clock.set(wake)


def test_a_job_never_fires_inside_an_excluded_time(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    calendar = ExclusionCalendar(name="quiet", dates=["2026-03-03"], windows=["* 14-15 * * *"])
    manager.add_calendar(calendar)
    trigger = CronTrigger("*/30 * * * *", "UTC")
    manager.add_job("m:f", trigger, id="j", exclude=["quiet"])
    until = T0 + timedelta(days=3)
    run(engine, clock, until)
    expected, at = [], T0 - timedelta(microseconds=1)
    while (at := trigger.next_fire_time(at)) <= until:  # type: ignore[operator,assignment]
        if at.date() != datetime(2026, 3, 3).date() and at.hour not in (14, 15):
            expected.append(at)
    assert dispatcher.times("j") == expected
    assert len(expected) == 2 * 24 * 2 - 2 * 2 * 2 + 1


def test_next_business_day_moves_the_fire_once(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_calendar(name="weekends", weekdays=["sat", "sun"])
    clock.set(datetime(2026, 7, 30, tzinfo=UTC))
    manager.add_job(
        "m:f",
        CronTrigger("0 9 1 * *", "Europe/Paris"),
        id="pay",
        exclude="weekends",
        on_excluded="next_business_day",
    )
    # 2026-08-01 is a Saturday: the run goes on Monday the 3rd, at 09:00 Paris time.
    run(engine, clock, datetime(2026, 9, 2, tzinfo=UTC))
    assert [t.astimezone(PARIS).isoformat() for t in dispatcher.times("pay")] == [
        "2026-08-03T09:00:00+02:00",
        "2026-09-01T09:00:00+02:00",
    ]


def test_a_changed_calendar_reschedules_its_jobs(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_calendar(name="c")
    manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["c"])
    assert manager.get_job("j").next_run_time == datetime(2026, 3, 2, 13, tzinfo=UTC)  # type: ignore[union-attr]
    manager.add_calendar(name="c", dates=["2026-03-02"], replace_existing=True)
    assert manager.get_job("j").next_run_time == datetime(2026, 3, 3, 13, tzinfo=UTC)  # type: ignore[union-attr]
    run(engine, clock, datetime(2026, 3, 4, tzinfo=UTC))
    assert dispatcher.times("j") == [datetime(2026, 3, 3, 13, tzinfo=UTC)]


def test_the_engine_reads_a_calendar_changed_behind_its_back(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_calendar(name="c")
    manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["c"])
    run(engine, clock, datetime(2026, 3, 3, tzinfo=UTC))  # the engine has read the calendar
    # Written to the storage directly (no reschedule): the job's stored next run is excluded.
    calendar_storage_of(store).put_calendar(ExclusionCalendar(name="c", dates=["2026-03-03"]))
    run(engine, clock, datetime(2026, 3, 5, tzinfo=UTC))
    assert dispatcher.times("j") == [T0 + timedelta(hours=1), datetime(2026, 3, 4, 13, tzinfo=UTC)]


def test_unknown_calendars_are_refused_and_used_ones_kept(manager: JobManager) -> None:
    with pytest.raises(CalendarLookupError, match="job 'j' excludes calendar 'nope'"):
        manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["nope"])
    assert manager.get_job("j") is None
    manager.add_calendar(name="c")
    manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["c"])
    with pytest.raises(CalendarLookupError):
        manager.modify_job("j", exclude=["c", "nope"])
    assert manager.get_job("j").exclude == ("c",)  # type: ignore[union-attr]
    with pytest.raises(CalendarInUseError, match="'c' is used by 1 job"):
        manager.remove_calendar("c")
    manager.modify_job("j", exclude=[])
    assert manager.remove_calendar("c") is True
    assert manager.get_calendars() == []
    with pytest.raises(InvalidCalendarError, match="exists"):
        manager.add_calendar(name="d") and manager.add_calendar(name="d")


def test_a_job_whose_calendar_vanished_fails_with_the_reason(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock
) -> None:
    manager.add_calendar(name="c")
    manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["c"])
    calendar_storage_of(store).remove_calendar("c")
    run(engine, clock, T0 + timedelta(hours=2))
    job = manager.get_job("j")
    assert job is not None and job.status is JobStatus.FAILED
    assert "no exclusion calendar named 'c'" in (job.last_error or "")


def test_calendars_that_exclude_every_fire_are_refused(manager: JobManager) -> None:
    manager.add_calendar(name="no-mondays", weekdays=["mon"])
    with pytest.raises(InvalidCalendarError, match="exclude every fire"):
        manager.add_job("m:f", CronTrigger("0 9 * * MON", "UTC"), id="j", exclude=["no-mondays"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    weekdays=st.frozensets(st.integers(0, 6), max_size=3),
    dates=st.frozensets(st.integers(0, 12).map(lambda n: (T0 + timedelta(days=n)).date()), max_size=3),
    window=st.sampled_from([None, "* 0-5 * * *", "0-29 9 * * *", "* 12 * * MON-FRI"]),
    expression=st.sampled_from(["0 9 * * *", "*/30 * * * *", "30 2 * * *", "0 9 * * MON", "0 */5 * * *"]),
    policy=st.sampled_from(["skip", "next_business_day"]),
)
def test_the_engine_fires_exactly_the_calendar_fires(
    weekdays: frozenset[int], dates: frozenset[object], window: str | None, expression: str, policy: str
) -> None:
    """Whatever the calendars, the beat sends exactly the fires of the wrapped trigger, each
    once, and none at an excluded time (skip) or on a non-business day."""
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    manager = JobManager(store, clock=clock)
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, max_sleep=3600)
    calendar = ExclusionCalendar(name="c", weekdays=weekdays, dates=dates, windows=[window] if window else [])
    manager.add_calendar(calendar)
    trigger = CronTrigger(expression, "Europe/Paris")
    try:
        manager.add_job("m:f", trigger, id="j", exclude=["c"], on_excluded=policy)
    except InvalidCalendarError:
        return  # every fire excluded: refused, nothing to run
    until = T0 + timedelta(days=14)
    run(engine, clock, until)
    wrapped = ExcludingTrigger(trigger, [calendar], policy)  # type: ignore[arg-type]
    expected, at = [], T0 - timedelta(microseconds=1)
    while (at := wrapped.next_fire_time(at)) is not None and at <= until:  # type: ignore[assignment]
        expected.append(at)
    sent = dispatcher.times("j")
    assert sent == expected
    for fire in sent:
        local = fire.astimezone(PARIS)
        assert local.date() not in dates and local.weekday() not in weekdays
        if policy == "skip":
            assert wrapped.excluded_reason(fire) is None


@pytest.mark.redis
def test_on_redis_the_beat_reads_calendars_again_when_they_change(redis_url: str, key_prefix: str) -> None:
    from beatx.stores.redis import RedisStore

    clock = FakeClock(T0)
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock)
    try:
        manager = JobManager(store, clock=clock)
        dispatcher = RecordingDispatcher()
        engine = Engine(store, dispatcher, max_sleep=3600)
        manager.add_calendar(name="c", dates=["2026-03-04"])
        manager.add_job("m:f", CronTrigger("0 13 * * *", "UTC"), id="j", exclude=["c"])
        run(engine, clock, datetime(2026, 3, 3, tzinfo=UTC))
        # Behind the manager's back: the stored next run (03-03 13:00) is now excluded.
        calendar_storage_of(store).put_calendar(ExclusionCalendar(name="c", dates=["2026-03-03"]))
        run(engine, clock, datetime(2026, 3, 6, tzinfo=UTC))
        assert dispatcher.times("j") == [
            datetime(2026, 3, 2, 13, tzinfo=UTC),
            datetime(2026, 3, 4, 13, tzinfo=UTC),
            datetime(2026, 3, 5, 13, tzinfo=UTC),
        ]
    finally:
        store.close()
