"""The engine under a fake clock: every rule end to end through a store and a dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from beatx.engine.engine import Engine
from beatx.errors import LeaseLostError
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import JobStatus
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger
from tests.engine.conftest import T0


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def engine(store: MemoryStore, dispatcher: RecordingDispatcher) -> Engine:
    return Engine(store, dispatcher)


def run(engine: Engine, clock: FakeClock, until: datetime) -> None:
    """Tick as a beat would: sleep what the engine says, until ``until``."""
    while True:
        result = engine.tick(clock.now())
        wake = clock.now() + timedelta(seconds=result.sleep)
        if wake > until:
            clock.set(until)
            return
        clock.set(wake)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_interval_job_fires_on_its_grid(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    run(engine, clock, at(35))
    assert dispatcher.times("j") == [at(0), at(10), at(20), at(30)]
    job = manager.get_job("j")
    assert job is not None and job.total_run_count == 4 and job.last_run_time == at(30)


def test_start_now_false_waits_one_interval(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_now=False), id="j")
    run(engine, clock, at(25))
    assert dispatcher.times("j") == [at(10), at(20)]


def test_the_engine_sleeps_until_the_next_fire(engine: Engine, manager: JobManager) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=45), id="j")
    assert engine.tick(T0).sleep == 45.0
    assert engine.tick(at(44.5)).sleep == 0.5


def test_a_late_job_is_not_pushed_off_its_grid(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    engine.tick(clock.now())
    clock.set(at(13.7))
    engine.tick(clock.now())
    clock.set(at(20))
    engine.tick(clock.now())
    assert dispatcher.times("j") == [at(0), at(10), at(20)]


def test_a_job_many_periods_late_coalesces_into_one_fire(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", coalesce=True)
    clock.set(at(3600 + 5))
    engine.tick(clock.now())
    assert dispatcher.times("j") == [at(3600)]
    job = manager.get_job("j")
    assert job is not None and job.next_run_time == at(3610) and job.misfire_count == 0


def test_a_job_many_periods_late_without_coalesce_runs_every_fire_inside_its_grace(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job(
        "m:f", IntervalTrigger(seconds=10), id="j", coalesce=False, misfire_grace_time=25, max_instances=5
    )
    clock.set(at(100))
    engine.tick(clock.now())
    assert dispatcher.times("j") == [at(80), at(90), at(100)]
    job = manager.get_job("j")
    assert job is not None and job.misfire_count == 8


def test_a_paused_job_does_not_fire_and_resumes_without_catching_up(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", coalesce=False)
    engine.tick(clock.now())
    assert manager.pause_job("j") is True
    run(engine, clock, at(95))
    assert dispatcher.times("j") == [at(0)]
    assert manager.resume_job("j") is True
    job = manager.get_job("j")
    assert job is not None and job.status is JobStatus.ACTIVE and job.next_run_time == at(100)
    run(engine, clock, at(115))
    assert dispatcher.times("j") == [at(0), at(100), at(110)]
    assert manager.get_job("j").misfire_count == 0  # type: ignore[union-attr]


def test_pause_and_resume_report_what_they_did(manager: JobManager) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    assert manager.resume_job("j") is False
    assert manager.pause_job("missing") is False
    assert manager.pause_job("j") is True
    assert manager.pause_job("j") is True
    assert manager.resume_job("missing") is False


def test_a_one_shot_whose_time_passed_while_paused_completes_without_firing(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", DateTimeTrigger(at(30)), id="once")
    manager.pause_job("once")
    clock.set(at(60))
    manager.resume_job("once")
    run(engine, clock, at(120))
    job = manager.get_job("once")
    assert dispatcher.times("once") == []
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_run_count == 0


def test_a_one_shot_in_the_past_runs_when_inside_its_grace(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", DateTimeTrigger(at(-20)), id="once", misfire_grace_time=30)
    engine.tick(clock.now())
    assert dispatcher.times("once") == [at(-20)]
    job = manager.get_job("once")
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_run_count == 1


def test_a_one_shot_in_the_past_outside_its_grace_is_missed(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", DateTimeTrigger(at(-120)), id="once", misfire_grace_time=30)
    engine.tick(clock.now())
    assert dispatcher.times("once") == []
    job = manager.get_job("once")
    assert job is not None and job.status is JobStatus.COMPLETED and job.total_run_count == 0


def test_a_job_whose_trigger_ends_completes(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, end_date=at(25)), id="j")
    run(engine, clock, at(60))
    assert dispatcher.times("j") == [at(0), at(10), at(20)]
    job = manager.get_job("j")
    assert job is not None and job.status is JobStatus.COMPLETED and job.next_run_time is None


def test_a_failing_dispatch_keeps_the_fire_due_while_other_jobs_fire(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    dispatcher = RecordingDispatcher(fail_jobs=["broken"])
    engine = Engine(store, dispatcher, retry_delay=2.0)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="ok")
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="broken")
    result = engine.tick(clock.now())
    assert result.dispatch_errors == 1 and result.sleep == 2.0
    assert dispatcher.times("ok") == [at(0)]
    broken = manager.get_job("broken")
    assert broken is not None and broken.next_run_time == at(0) and broken.total_run_count == 0
    dispatcher.fail_jobs.clear()
    clock.set(at(2))
    engine.tick(clock.now())
    assert dispatcher.times("broken") == [at(0)]
    assert manager.get_job("broken").total_run_count == 1  # type: ignore[union-attr]


def test_a_dispatcher_that_raises_loses_nothing(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    class Exploding:
        def dispatch(self, fires: object, *, guard: object = None) -> list[BaseException | None]:
            raise ConnectionError("broker down")

    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    result = Engine(store, Exploding()).tick(clock.now())
    assert result.dispatch_errors == 1
    job = manager.get_job("j")
    assert job is not None and job.next_run_time == at(0) and job.status is JobStatus.ACTIVE


def test_overlapping_fires_are_skipped_and_counted(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="slow", max_instances=1)
    assert engine.max_wait == timedelta(seconds=5)  # a fire waits 5 s for the run, then is skipped
    engine.tick(clock.now())
    store.run_started("slow", dispatcher.fires[0].task_id, started_at=clock.now(), timeout=3600)
    run(engine, clock, at(25))
    assert dispatcher.times("slow") == [at(0)]
    assert manager.get_job("slow").skip_count == 2  # type: ignore[union-attr]
    store.run_finished("slow", dispatcher.fires[0].task_id, finished_at=clock.now(), duration=25, error=None)
    run(engine, clock, at(35))
    assert dispatcher.times("slow") == [at(0), at(30)]


def test_max_concurrent_jobs_caps_fires_across_jobs(
    store: MemoryStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    engine = Engine(store, dispatcher, max_concurrent_jobs=2)
    store.run_started("other", "t", started_at=clock.now(), timeout=60)
    for name in "abc":
        manager.add_job("m:f", IntervalTrigger(seconds=10), id=name)
    store.run_started("a", "running-a", started_at=clock.now(), timeout=60)
    result = engine.tick(clock.now())
    # b takes the one free slot, c is skipped by the cap; a waits for its own run to end.
    assert result.fired == 1 and result.skipped == 1


def test_a_job_that_cannot_be_planned_fails_alone(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    class Broken(IntervalTrigger):
        def next_fire_time(self, after: datetime) -> datetime | None:
            raise ArithmeticError("corrupt trigger")

    manager.add_job("m:f", IntervalTrigger(seconds=10), id="good")
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="bad")
    bad = manager.get_job("bad")
    assert bad is not None
    bad.trigger = Broken(seconds=10, start_date=T0)
    manager.store.update_job(bad)
    engine.tick(clock.now())
    assert dispatcher.times("good") == [at(0)]
    bad = manager.get_job("bad")
    assert bad is not None and bad.status is JobStatus.FAILED
    assert bad.last_error is not None and "corrupt trigger" in bad.last_error


def test_a_cron_job_fires_in_its_timezone(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", CronTrigger("30 14 * * *", timezone="Europe/Paris"), id="c")
    run(engine, clock, at(86400))
    assert dispatcher.times("c") == [datetime(2026, 3, 2, 13, 30, tzinfo=UTC)]


def test_a_lost_lease_dispatches_nothing(
    store: MemoryStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.acquire_lease("beat-1", now=clock.now(), ttl=30)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", coalesce=False, max_instances=10)
    engine = Engine(store, dispatcher, owner="beat-1", guard=lambda: False, claim_ttl=30)
    with pytest.raises(LeaseLostError):
        engine.tick(clock.now())
    assert dispatcher.fires == []
    clock.advance(31)
    store.acquire_lease("beat-2", now=clock.now(), ttl=30)
    Engine(store, dispatcher, owner="beat-2").tick(clock.now())
    assert [f.task_id for f in dispatcher.fires] == [engine_task_id("j", at(t)) for t in (0, 10, 20, 30)]


def engine_task_id(job_id: str, when: datetime) -> str:
    from beatx.jobs import fire_task_id

    return fire_task_id(job_id, when)


def test_a_batch_larger_than_the_claim_limit_ticks_again_at_once(
    store: MemoryStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    engine = Engine(store, dispatcher, batch_size=2)
    for i in range(5):
        manager.add_job("m:f", IntervalTrigger(seconds=10), id=f"j{i}")
    assert engine.tick(clock.now()).sleep == 0.0
    engine.tick(clock.now())
    result = engine.tick(clock.now())
    assert len(dispatcher.fires) == 5 and result.sleep == 10.0


def test_events_report_fires_misses_and_skips(
    store: MemoryStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    engine = Engine(store, dispatcher, events=bus)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", misfire_grace_time=5, coalesce=False)
    clock.set(at(21))
    engine.tick(clock.now())
    kinds = [e.kind for e in seen]
    assert kinds.count(EventKind.JOB_FIRED) == 1 and EventKind.JOB_MISSED in kinds
    fired = next(e for e in seen if e.kind is EventKind.JOB_FIRED)
    assert fired.scheduled_at == at(20) and fired.data["lateness"] == pytest.approx(1.0)


def test_fire_ids_are_deterministic(
    engine: Engine, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    engine.tick(clock.now())
    assert dispatcher.fires[0].task_id == engine_task_id("j", at(0))
    assert engine_task_id("j", at(0)) != engine_task_id("j", at(10))
    assert engine_task_id("j", at(0)) != engine_task_id("k", at(0))


def test_a_leader_that_cannot_reach_the_store_steps_down_when_its_lease_runs_out(clock: FakeClock) -> None:
    from beatx.beat import Leadership
    from beatx.errors import StoreError

    class FlakyStore(MemoryStore):
        down = False

        def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
            if self.down:
                raise StoreError("store unreachable")
            return super().acquire_lease(owner, now=now, ttl=ttl)

    store = FlakyStore(clock=clock)
    lost: list[Event] = []
    bus = EventBus()
    bus.subscribe(lost.append, kinds={EventKind.LEADER_LOST})
    leadership = Leadership(store, lease_timeout=10, clock=clock, events=bus)
    assert leadership.ensure() is True
    store.down = True
    clock.advance(4)
    assert leadership.ensure() is True  # still inside its own lease
    clock.advance(10)
    assert leadership.ensure() is False
    assert leadership.leader_since is None and len(lost) == 1


def test_ensure_job_tolerates_another_process_adding_the_same_job_first(
    store: MemoryStore, clock: FakeClock
) -> None:
    class RacingStore(MemoryStore):
        def get_job(self, job_id: str):  # type: ignore[no-untyped-def]
            found = super().get_job(job_id)
            if found is None and not hasattr(self, "raced"):
                self.raced = True
                JobManager(store_under_race, clock=clock).add_job(
                    "m:f", IntervalTrigger(seconds=5), id=job_id
                )
            return found

    store_under_race = RacingStore(clock=clock)
    job = JobManager(store_under_race, clock=clock).ensure_job("m:f", IntervalTrigger(seconds=5), id="shared")
    assert job.id == "shared"
    assert [j.id for j in store_under_race.get_jobs()] == ["shared"]


def test_a_leader_frozen_mid_batch_sends_nothing_more_and_writes_nothing_back(
    store: MemoryStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.acquire_lease("beat-1", now=clock.now(), ttl=30)
    for i in range(5):
        manager.add_job("m:f", IntervalTrigger(seconds=10), id=f"j{i}")
    checks = iter([True, True, False, False, False])
    engine = Engine(store, dispatcher, owner="beat-1", guard=lambda: next(checks), claim_ttl=30)
    with pytest.raises(LeaseLostError, match="3 of 5 fires not sent"):
        engine.tick(clock.now())
    assert len(dispatcher.fires) == 2
    assert all(job.total_run_count == 0 for job in store.get_jobs())


def test_lateness_is_measured_when_the_fire_is_sent(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    class SlowDispatcher(RecordingDispatcher):
        def dispatch(self, fires, *, guard=None):  # type: ignore[no-untyped-def]
            clock.advance(0.25)
            return super().dispatch(fires, guard=guard)

    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append, kinds={EventKind.JOB_FIRED})
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j")
    Engine(store, SlowDispatcher(), events=bus, clock=clock).tick(clock.now())
    assert seen[0].data["lateness"] == pytest.approx(0.25)


def test_a_listener_subscribes_to_one_kind_or_several_and_a_bad_kind_is_refused() -> None:
    bus = EventBus()
    seen: list[EventKind] = []
    bus.subscribe(lambda e: seen.append(e.kind), EventKind.JOB_FIRED)
    bus.subscribe(lambda e: seen.append(e.kind), [EventKind.JOB_MISSED, EventKind.JOB_FIRED])
    for kind in (EventKind.JOB_FIRED, EventKind.JOB_MISSED, EventKind.JOB_SKIPPED):
        bus.emit(Event(kind, T0, "j"))
    assert seen == [EventKind.JOB_FIRED, EventKind.JOB_FIRED, EventKind.JOB_MISSED]
    with pytest.raises(ValueError):
        bus.subscribe(lambda e: None, ["job_fried"])  # type: ignore[list-item]


def test_a_fire_held_back_by_a_run_in_flight_waits_for_it_instead_of_being_skipped(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_date=at(0)), id="j")
    store.run_started("j", "earlier-run", started_at=clock.now(), timeout=3600)
    result = engine.tick(clock.now())
    assert dispatcher.times("j") == [] and result.skipped == 0
    assert result.sleep <= 0.1  # it looks again soon
    clock.advance(0.05)
    engine.tick(clock.now())
    assert dispatcher.times("j") == []
    store.run_finished("j", "earlier-run", finished_at=clock.now(), duration=0.05, error=None)
    clock.advance(0.05)
    engine.tick(clock.now())
    assert dispatcher.times("j") == [at(0)]
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 0 and job.next_run_time == at(10)


def test_a_fire_held_back_too_long_is_skipped_and_counted(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_date=at(0)), id="j")
    store.run_started("j", "long-run", started_at=clock.now(), timeout=3600)
    engine.tick(clock.now())
    clock.advance(engine.max_wait.total_seconds() + 0.01)
    result = engine.tick(clock.now())
    assert result.skipped == 1 and dispatcher.times("j") == []
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 1 and job.next_run_time == at(10)
    # Nothing is held any more: the job is back in the store's schedule, unclaimed.
    assert store.acquire_due_jobs(at(10), limit=10)[0].id == "j"


def test_closing_the_engine_gives_back_a_job_held_back_by_a_run(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_date=at(0)), id="j")
    store.run_started("j", "run", started_at=clock.now(), timeout=3600)
    engine.tick(clock.now())
    assert store.acquire_due_jobs(clock.now(), limit=10) == []  # held under the engine's claim
    engine.close()
    assert [job.id for job in store.acquire_due_jobs(clock.now(), limit=10)] == ["j"]


def test_after_a_wait_the_fire_that_waited_goes_and_those_due_during_the_run_are_skipped(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    engine.catch_up_window = timedelta(seconds=60)
    manager.add_job("m:f", IntervalTrigger(seconds=1, start_date=at(0)), id="j")
    store.run_started("j", "run", started_at=clock.now(), timeout=3600)
    for _ in range(3):
        engine.tick(clock.now())
        clock.advance(1)
    store.run_finished("j", "run", finished_at=clock.now(), duration=3, error=None)
    result = engine.tick(clock.now())
    # One run goes (max_instances=1): the fire that waited for the run; the three that came
    # due while the run went on are skipped.
    assert dispatcher.times("j") == [at(0)]
    assert result.skipped == 3
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 3 and job.next_run_time == at(4)


def test_after_a_wait_a_fire_due_once_the_run_had_ended_goes_too(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    engine.catch_up_window = timedelta(seconds=60)
    manager.add_job("m:f", IntervalTrigger(seconds=1, start_date=at(0)), id="j")
    store.run_started("j", "run", started_at=clock.now(), timeout=3600)
    engine.tick(clock.now())
    clock.advance(0.9)
    store.run_finished("j", "run", finished_at=clock.now(), duration=0.9, error=None)
    clock.advance(0.2)  # the beat looks again after fire 1 came due, with no run in flight
    result = engine.tick(clock.now())
    assert dispatcher.times("j") == [at(0), at(1)] and result.skipped == 0


def test_a_failover_gap_held_back_by_a_run_in_flight_sends_every_late_fire_once_the_run_ends(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    """A new leader takes over 4.3 s after the last fire went out, while the worker runs that
    fire: the gap's fires wait for the run, then each goes (a failover is not an overlap: the
    run of the chaos scenario on a loaded machine, where the newest alone went and 4 fires of
    each such job were lost)."""
    engine.catch_up_window = timedelta(seconds=5 + 5 / 3)  # a 5 s lease, as a beat sets it
    manager.add_job("m:f", IntervalTrigger(seconds=1, start_date=at(0)), id="j")
    clock.advance(4.3)
    store.run_started("j", "run-of-the-dead-leaders-last-fire", started_at=clock.now(), timeout=3600)
    engine.tick(clock.now())
    assert dispatcher.times("j") == []  # held back: a run is in flight
    clock.advance(0.3)
    engine.tick(clock.now())
    store.run_finished(
        "j", "run-of-the-dead-leaders-last-fire", finished_at=clock.now(), duration=0.3, error=None
    )
    # The beat sees the run's end only after the next fire came due (a slow tick): that fire
    # came due with no run in flight, so it goes too.
    clock.advance(0.45)
    result = engine.tick(clock.now())
    assert dispatcher.times("j") == [at(0), at(1), at(2), at(3), at(4), at(5)]
    assert result.skipped == 0
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 0 and job.next_run_time == at(6)


def test_a_fire_due_while_a_failover_gap_waits_for_a_run_goes_with_the_gap(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    """The new leader's gap fires wait for a run that ends just after the next fire came due:
    that fire goes too (it would have waited for the run itself), nothing is skipped."""
    engine.catch_up_window = timedelta(seconds=5 + 5 / 3)
    manager.add_job("m:f", IntervalTrigger(seconds=1, start_date=at(0)), id="j")
    clock.advance(4.95)
    store.run_started("j", "run", started_at=clock.now(), timeout=3600)
    engine.tick(clock.now())
    clock.advance(0.1)  # 5.05: fire 5 came due while the run went on
    store.run_finished("j", "run", finished_at=clock.now(), duration=0.1, error=None)
    result = engine.tick(clock.now())
    assert dispatcher.times("j") == [at(0), at(1), at(2), at(3), at(4), at(5)]
    assert result.skipped == 0
