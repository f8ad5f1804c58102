"""Deterministic jitter: the delay's bounds, finding the nominal time back, the engine sending
each fire at its due time with its nominal task id, and edits of the jitter."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beatx.engine.engine import Engine
from beatx.engine.rules import plan_fires
from beatx.errors import InvalidJobError
from beatx.events import Event, EventBus, EventKind
from beatx.jitter import due_time, jitter_delay, nominal_time
from beatx.jobs import Job, fire_task_id, job_from_dict, job_to_dict
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import CronTrigger, IntervalTrigger
from beatx.triggers.base import Trigger
from tests.engine.conftest import T0


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@settings(max_examples=300, deadline=None)
@given(
    job_id=st.text(min_size=1, max_size=10),
    cron=st.booleans(),
    period=st.integers(1, 600),
    jitter=st.floats(0.001, 10_000),
    offset=st.integers(0, 10_000_000),
)
def test_a_delay_is_forward_shorter_than_the_gap_and_the_nominal_time_is_found_back(
    job_id: str, cron: bool, period: int, jitter: float, offset: int
) -> None:
    trigger: Trigger = (
        CronTrigger(f"*/{max(1, period % 60)} * * * *", "Europe/Paris")
        if cron
        else IntervalTrigger(seconds=period, start_date=T0)
    )
    job = Job(id=job_id, func="m:f", trigger=trigger, jitter=jitter)
    nominal = trigger.next_fire_time(s(offset))
    assert nominal is not None
    following = trigger.next_fire_time(nominal)
    due = due_time(job, nominal)
    assert due is not None and nominal <= due
    assert due - nominal < timedelta(seconds=jitter) or due == nominal
    assert following is None or due < following
    assert due == due_time(job, nominal)
    assert nominal_time(trigger, due, jitter) == nominal


def test_the_delays_spread_over_the_jitter() -> None:
    delays = [jitter_delay("job", s(60 * k), 60, None).total_seconds() for k in range(2000)]
    assert min(delays) < 1 and max(delays) > 59
    assert 25 < sum(delays) / len(delays) < 35


def every_minute(**fields: object) -> Job:
    values: dict[str, object] = {"func": "m:f", "trigger": IntervalTrigger(seconds=60, start_date=T0)}
    values.update(fields)
    job = Job(id="j", **values)  # type: ignore[arg-type]
    job.next_run_time = due_time(job, T0)
    return job


def test_a_fire_waits_for_its_due_time_and_keeps_its_nominal_time() -> None:
    job = every_minute(jitter=50)
    due = job.next_run_time
    assert due is not None and T0 < due < s(50)
    early = plan_fires(job, due - timedelta(microseconds=1))
    assert early.fire_times == () and early.next_run_time == due
    plan = plan_fires(job, due)
    assert plan.fire_times == (T0,) and plan.due_times == (due,)
    assert plan.next_run_time == due_time(job, s(60))


def test_a_jitter_longer_than_the_period_is_capped_by_the_next_fire() -> None:
    job = every_minute(jitter=3600)
    for k in range(50):
        due = due_time(job, s(60 * k))
        assert due is not None and s(60 * k) <= due < s(60 * (k + 1))


def test_misfire_grace_counts_from_the_due_time() -> None:
    job = every_minute(jitter=50, misfire_grace_time=5)
    due = job.next_run_time
    assert due is not None
    plan = plan_fires(job, due + timedelta(seconds=4))
    assert plan.fire_times == (T0,) and plan.missed == 0


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


def test_the_engine_sends_each_fire_at_its_due_time_with_the_nominal_task_id(
    store: MemoryStore, manager: JobManager, clock: FakeClock, bus: EventBus
) -> None:
    seen: list[Event] = []
    bus.subscribe(seen.append, [EventKind.JOB_FIRED])
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, events=bus, clock=clock)
    job = manager.add_job("m:f", IntervalTrigger(seconds=60), id="spread", jitter=45)
    dues = [due_time(job, s(60 * k)) for k in range(5)]
    assert job.next_run_time == dues[0]
    while clock.now() < s(280):
        result = engine.tick(clock.now())
        clock.advance(max(result.sleep, 0.001))
    assert dispatcher.times("spread") == [s(60 * k) for k in range(5)]
    assert [event.data["task_id"] for event in seen] == [fire_task_id("spread", s(60 * k)) for k in range(5)]
    # Each went out at its due time (the fake clock stops there), so none was late.
    assert all(0 <= float(event.data["lateness"]) < 0.01 for event in seen)  # type: ignore[arg-type]
    assert [event.at for event in seen] == dues


def test_changing_the_jitter_moves_the_next_run_to_the_new_due_time(manager: JobManager) -> None:
    job = manager.add_job("m:f", IntervalTrigger(seconds=3600), id="j", jitter=600)
    first = job.next_run_time
    changed = manager.modify_job("j", jitter=None)
    assert changed.next_run_time == T0
    again = manager.modify_job("j", jitter=1200)
    assert again.next_run_time == due_time(again, T0) and again.next_run_time != first
    stored = manager.get_job("j")
    assert stored is not None and stored.next_run_time == again.next_run_time


def test_ensure_job_with_a_new_jitter_moves_the_next_run(manager: JobManager) -> None:
    manager.ensure_job("m:f", IntervalTrigger(seconds=3600, start_date=T0), id="j")
    updated = manager.ensure_job("m:f", IntervalTrigger(seconds=3600, start_date=T0), id="j", jitter=900)
    assert updated.next_run_time == due_time(updated, T0) and updated.jitter == 900


def test_jitter_is_checked_and_round_trips() -> None:
    with pytest.raises(InvalidJobError, match="jitter must be None or a number of seconds >= 0"):
        every_minute(jitter=-1)
    job = every_minute(jitter=12.5)
    assert job_from_dict(job_to_dict(job)).jitter == 12.5
    assert job.describe()["jitter"] == 12.5


def test_a_failover_sends_the_jittered_fire_a_dead_beat_claimed_with_its_task_id(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    job = manager.add_job("m:f", IntervalTrigger(seconds=60), id="j", jitter=50, catchup="none")
    due = job.next_run_time
    assert due is not None
    clock.set(due)
    # The leader claims the job at its due time and dies before sending.
    (claimed,) = store.acquire_due_jobs(clock.now(), limit=10, claim_ttl=10)
    assert claimed.id == "j"
    clock.set(due + timedelta(seconds=11))
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, catch_up_window=40)
    engine.tick(clock.now())
    (fire,) = dispatcher.fires
    assert (fire.scheduled_at, fire.task_id, fire.due) == (T0, fire_task_id("j", T0), due)
    after = manager.get_job("j")
    assert after is not None and after.next_run_time == due_time(after, s(60)) and after.misfire_count == 0
