"""A job's life: ``max_runs`` / ``remaining_runs``, a pause's note, author and time, and
``resume_job(from_=...)``, under the fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from beatx.engine.engine import Engine
from beatx.engine.rules import plan_fires
from beatx.errors import InvalidJobError
from beatx.jobs import Job, JobStatus, job_from_dict, job_to_dict
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.engine.conftest import T0


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(engine: Engine, clock: FakeClock, until: datetime) -> None:
    while clock.now() < until:
        result = engine.tick(clock.now())
        clock.set(min(clock.now() + timedelta(seconds=max(result.sleep, 0.001)), until))
    engine.tick(clock.now())


# -- max_runs ------------------------------------------------------------------------------------


def test_the_fire_that_reaches_max_runs_completes_the_job(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, max_sleep=5)
    job = manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", max_runs=3)
    assert job.remaining_runs == 3
    run(engine, clock, s(60))
    assert dispatcher.times("j") == [s(0), s(10), s(20)]
    done = manager.get_job("j")
    assert done is not None
    assert (done.status, done.next_run_time, done.remaining_runs) == (JobStatus.COMPLETED, None, 0)
    assert done.describe()["remaining_runs"] == 0


def test_a_catch_up_sends_no_more_than_the_runs_left() -> None:
    job = Job(
        id="j",
        func="m:f",
        trigger=IntervalTrigger(seconds=10, start_date=T0),
        next_run_time=T0,
        catchup="all",
        max_instances=10,
        max_runs=5,
        total_run_count=3,
    )
    plan = plan_fires(job, s(95))
    assert plan.fire_times == (s(0), s(10))
    assert (plan.status, plan.next_run_time) == (JobStatus.COMPLETED, None)


def test_raising_max_runs_lets_a_completed_job_go_on_and_lowering_it_ends_one(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    engine = Engine(store, RecordingDispatcher())
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", max_runs=1)
    engine.tick(clock.now())
    job = manager.get_job("j")
    assert job is not None and job.status is JobStatus.COMPLETED
    clock.set(s(25))
    more = manager.modify_job("j", max_runs=4)
    assert (more.status, more.next_run_time, more.remaining_runs) == (JobStatus.ACTIVE, s(30), 3)
    fewer = manager.modify_job("j", max_runs=1)
    assert (fewer.status, fewer.next_run_time) == (JobStatus.COMPLETED, None)
    unlimited = manager.modify_job("j", max_runs=None)
    assert (unlimited.status, unlimited.remaining_runs) == (JobStatus.ACTIVE, None)


def test_max_runs_is_checked() -> None:
    with pytest.raises(InvalidJobError, match="max_runs must be None or an integer >= 1"):
        Job(id="j", func="m:f", trigger=IntervalTrigger(seconds=1, start_date=T0), max_runs=0)


# -- pause and resume ----------------------------------------------------------------------------


def test_a_pause_keeps_why_who_and_when_until_the_resume(manager: JobManager, clock: FakeClock) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    clock.set(s(5))
    assert manager.pause_job("j", note="Partner API down until Monday", by="alice")
    job = manager.get_job("j")
    assert job is not None
    assert (job.status, job.pause_note, job.paused_by, job.paused_at) == (
        JobStatus.PAUSED,
        "Partner API down until Monday",
        "alice",
        s(5),
    )
    described = job.describe()
    assert (described["pause_note"], described["paused_by"]) == ("Partner API down until Monday", "alice")
    # A new note on a paused job: the pause (and its time) stay.
    clock.set(s(7))
    assert manager.pause_job("j", note="until Tuesday")
    again = manager.get_job("j")
    assert again is not None and (again.pause_note, again.paused_by, again.paused_at) == (
        "until Tuesday",
        "alice",
        s(5),
    )
    # A definition edit and an ensure keep them.
    manager.modify_job("j", name="renamed")
    kept = manager.get_job("j")
    assert kept is not None and kept.pause_note == "until Tuesday"
    assert manager.resume_job("j")
    resumed = manager.get_job("j")
    assert resumed is not None and (resumed.pause_note, resumed.paused_by, resumed.paused_at) == (
        None,
        None,
        None,
    )
    round_trip = job_from_dict(job_to_dict(again))
    assert (round_trip.pause_note, round_trip.paused_by, round_trip.paused_at) == (
        "until Tuesday",
        "alice",
        s(5),
    )


@pytest.mark.parametrize(
    ("from_", "sent_at_resume"),
    [
        ("now", []),
        ("catch_up", [30]),  # catchup="latest": the paused period's fires run once, the latest
        (T0 + timedelta(seconds=15), [30]),
    ],
    ids=["now", "catch-up", "a-datetime"],
)
def test_resume_from(
    store: MemoryStore, manager: JobManager, clock: FakeClock, from_: object, sent_at_resume: list[int]
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    engine.tick(clock.now())
    manager.pause_job("j")
    clock.set(s(35))
    engine.tick(clock.now())
    assert manager.resume_job("j", from_=from_)  # type: ignore[arg-type]
    engine.tick(clock.now())
    assert dispatcher.times("j") == [s(0)] + [s(t) for t in sent_at_resume]
    job = manager.get_job("j")
    assert job is not None and job.next_run_time == s(40) and job.status is JobStatus.ACTIVE


def test_resume_from_all_replays_the_paused_period_with_catchup_all(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", catchup="all", max_instances=5)
    engine.tick(clock.now())
    manager.pause_job("j")
    clock.set(s(35))
    manager.resume_job("j", from_="catch_up")
    engine.tick(clock.now())
    assert dispatcher.times("j") == [s(0), s(10), s(20), s(30)]


def test_resume_from_refuses_anything_else(manager: JobManager) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", paused=True)
    with pytest.raises(InvalidJobError, match="from_ must be 'now', 'catch_up' or a datetime"):
        manager.resume_job("j", from_="yesterday")
