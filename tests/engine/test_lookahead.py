"""The engine's lookahead: claim and plan ahead, send each fire when it comes due."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from beatx.engine.engine import IDLE_PIECE, IDLE_WORK_MIN, Engine
from beatx.errors import LeaseLostError
from beatx.events import EventBus, EventKind
from beatx.jobs import Fire, Job
from beatx.manager import JobManager
from beatx.stores.base import JobRelease
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import DateTimeTrigger, IntervalTrigger
from tests.engine.conftest import T0


def ms(milliseconds: float) -> datetime:
    return T0 + timedelta(milliseconds=milliseconds)


class TimedDispatcher(RecordingDispatcher):
    """Records each dispatch call with the clock time it was made at."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.calls: list[tuple[datetime, list[str]]] = []

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        self.calls.append((self.clock.now(), [f.job_id for f in fires]))
        return super().dispatch(fires, guard=guard)


@pytest.fixture
def dispatcher(clock: FakeClock) -> TimedDispatcher:
    return TimedDispatcher(clock)


def engine_with_lookahead(
    store: MemoryStore, dispatcher: TimedDispatcher, clock: FakeClock, seconds: float = 0.05, **kwargs: object
) -> tuple[Engine, list[datetime]]:
    waits: list[datetime] = []

    def wait_until(when: datetime) -> None:
        waits.append(when)
        clock.set(max(when, clock.now()))

    engine = Engine(store, dispatcher, lookahead=seconds, wait_until=wait_until, clock=clock, **kwargs)  # type: ignore[arg-type]
    return engine, waits


def test_a_fire_due_within_the_lookahead_is_prepared_early_and_sent_when_due(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    result = engine.tick(clock.now())
    assert result.fired == 1
    assert waits == [ms(30)]
    assert dispatcher.calls == [(ms(30), ["soon"])]
    assert dispatcher.times("soon") == [ms(30)]


def test_without_a_lookahead_a_fire_is_not_claimed_before_it_is_due(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    result = Engine(store, dispatcher).tick(clock.now())
    assert result.fired == 0 and dispatcher.calls == []
    assert result.sleep == pytest.approx(0.03)


def test_what_is_already_due_goes_out_before_the_lookahead_is_claimed(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(20)), id="later")
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="sooner")
    clock.set(ms(15))  # "sooner" is 5 ms late
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    assert dispatcher.calls == [(ms(15), ["sooner"]), (ms(20), ["later"])]
    assert waits == [ms(20)]


def test_fires_due_together_go_out_in_one_dispatch(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    for i in range(5):
        manager.add_job("t.job", DateTimeTrigger(ms(40)), id=f"same-{i}")
    manager.add_job("t.job", DateTimeTrigger(ms(45)), id="next")
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    assert engine.tick(clock.now()).fired == 6
    assert dispatcher.calls == [(ms(40), [f"same-{i}" for i in range(5)]), (ms(45), ["next"])]


def test_a_job_beyond_the_lookahead_waits_for_a_later_tick(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(500)), id="far")
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    result = engine.tick(clock.now())
    assert result.fired == 0 and waits == []
    # The beat is woken a lookahead before the fire is due.
    assert result.sleep == pytest.approx(0.45)


def test_an_interval_job_claimed_ahead_is_planned_at_its_own_time_not_coalesced(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", IntervalTrigger(seconds=0.01, start_date=ms(10)), id="fast")
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    assert dispatcher.times("fast") == [ms(10)]
    job = store.get_job("fast")
    assert job is not None and job.next_run_time == ms(20) and job.misfire_count == 0


def test_lateness_events_count_from_the_moment_each_fire_was_sent(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    events = EventBus()
    lateness: dict[str, float] = {}
    events.subscribe(
        lambda e: lateness.__setitem__(e.job_id or "", float(e.data["lateness"])), [EventKind.JOB_FIRED]
    )
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    engine, _ = engine_with_lookahead(store, dispatcher, clock, events=events)
    engine.tick(clock.now())
    assert lateness == {"soon": 0.0}


def test_a_lease_lost_while_waiting_sends_nothing_more_and_writes_nothing_back(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="first")
    manager.add_job("t.job", DateTimeTrigger(ms(20)), id="second")
    leading = iter([True, False])
    engine, _ = engine_with_lookahead(store, dispatcher, clock, guard=lambda: next(leading, False))
    with pytest.raises(LeaseLostError):
        engine.tick(clock.now())
    assert [job_ids for _, job_ids in dispatcher.calls] == [["first"], ["second"]]
    assert dispatcher.times("second") == []
    second = store.get_job("second")
    assert second is not None and second.total_run_count == 0


def test_a_lookahead_needs_a_way_to_wait() -> None:
    with pytest.raises(ValueError, match="wait_until"):
        Engine(MemoryStore(), RecordingDispatcher(), lookahead=0.05)
    with pytest.raises(ValueError, match="lookahead"):
        Engine(MemoryStore(), RecordingDispatcher(), lookahead=-1, wait_until=lambda when: None)


class RecordingStore(MemoryStore):
    """A memory store that notes each claim's horizon and each write-back's size."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.claims: list[tuple[datetime, int, int]] = []  # horizon, limit, jobs claimed
        self.release_sizes: list[int] = []
        self.next_run_reads = 0

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        jobs = super().acquire_due_jobs(now, limit=limit, owner=owner, claim_ttl=claim_ttl)
        self.claims.append((now, limit, len(jobs)))
        return jobs

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        self.release_sizes.append(len(releases))
        super().release_jobs(releases, owner=owner)

    def next_run_time(self) -> datetime | None:
        self.next_run_reads += 1
        return super().next_run_time()


@pytest.fixture
def recording_store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(clock)


def test_the_next_window_is_claimed_while_waiting_and_sent_by_the_next_tick(
    recording_store: RecordingStore, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager = JobManager(recording_store, clock=clock)
    for at in (10, 30, 70, 90):
        manager.add_job("t.job", DateTimeTrigger(ms(at)), id=f"at-{at}")
    engine, _ = engine_with_lookahead(recording_store, dispatcher, clock)
    first = engine.tick(clock.now())
    assert first.fired == 2 and first.sleep == 0.0
    # Claimed while the tick waited for its first fire: the window after this one.
    assert (ms(100), IDLE_PIECE, 2) in recording_store.claims
    assert recording_store.acquire_due_jobs(ms(100), limit=10) == []
    recording_store.claims.clear()
    second = engine.tick(clock.now())
    assert second.fired == 2
    assert dispatcher.calls[2:] == [(ms(70), ["at-70"]), (ms(90), ["at-90"])]
    assert all(claimed == 0 for _, _, claimed in recording_store.claims)


def test_a_tick_writes_back_what_it_sent_in_pieces_while_it_waits(
    recording_store: RecordingStore, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager = JobManager(recording_store, clock=clock)
    count = IDLE_PIECE + 4
    for n in range(count):
        manager.add_job("t.job", DateTimeTrigger(ms(2 * n + 1)), id=f"job-{n:02d}")
    engine, _ = engine_with_lookahead(recording_store, dispatcher, clock)
    assert engine.tick(clock.now()).fired == count
    assert recording_store.release_sizes[-2:] == [IDLE_PIECE, 4]
    assert all(job.total_run_count == 1 for job in recording_store.get_jobs())


def test_no_idle_work_is_done_when_the_next_fire_is_too_close(
    recording_store: RecordingStore, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager = JobManager(recording_store, clock=clock)
    manager.add_job("t.job", DateTimeTrigger(T0 + IDLE_WORK_MIN / 2), id="close")
    manager.add_job("t.job", DateTimeTrigger(ms(70)), id="next-window")
    engine, _ = engine_with_lookahead(recording_store, dispatcher, clock)
    assert engine.tick(clock.now()).fired == 1
    assert [horizon for horizon, _, _ in recording_store.claims] == [T0, ms(50)]


def test_closing_the_engine_gives_the_next_window_back_unchanged(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="now")
    manager.add_job("t.job", DateTimeTrigger(ms(70)), id="next")
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    assert store.acquire_due_jobs(ms(100), limit=10) == []
    engine.close()
    (given_back,) = store.acquire_due_jobs(ms(100), limit=10)
    assert given_back.id == "next" and given_back.next_run_time == ms(70)
    assert given_back.total_run_count == 0


def test_a_lost_lease_drops_the_next_window_without_writing_it(
    recording_store: RecordingStore, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager = JobManager(recording_store, clock=clock)
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="now")
    manager.add_job("t.job", DateTimeTrigger(ms(70)), id="next")
    engine, _ = engine_with_lookahead(recording_store, dispatcher, clock, guard=lambda: False)
    with pytest.raises(LeaseLostError):
        engine.tick(clock.now())
    engine.close()
    assert recording_store.release_sizes == []
    # Still claimed: the new leader re-plans it once the claim expires.
    assert recording_store.acquire_due_jobs(ms(100), limit=10) == []


def test_a_tick_reads_the_next_run_time_once_though_it_claims_twice(
    recording_store: RecordingStore, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager = JobManager(recording_store, clock=clock)
    manager.add_job("t.job", DateTimeTrigger(ms(110)), id="late")
    manager.add_job("t.job", DateTimeTrigger(ms(140)), id="ahead")
    manager.add_job("t.job", DateTimeTrigger(ms(600)), id="far")
    engine, _ = engine_with_lookahead(recording_store, dispatcher, clock)
    # An idle tick costs one read and no claim; it learns when to wake.
    assert engine.tick(clock.now()).claimed == 0
    assert recording_store.next_run_reads == 1 and recording_store.claims == []
    # Woken for the jobs it read of, the beat claims at once: one read, at the end.
    clock.set(ms(115))
    recording_store.next_run_reads = 0
    result = engine.tick(clock.now())
    assert result.fired == 2 and len(recording_store.claims) >= 2
    assert recording_store.next_run_reads == 1
    assert result.sleep == pytest.approx(0.6 - 0.05 - 0.115)


def test_a_fire_held_back_by_a_run_in_flight_is_looked_at_again_soon_with_a_lookahead(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    """A run's end wakes nobody: the tick that holds a fire back must ask to be called again
    within WAIT_POLL, even when its lookahead part finds nothing to claim (the fire then goes
    at most WAIT_POLL after the run ended, not at the job's next fire time)."""
    from beatx.engine.engine import WAIT_POLL

    manager.add_job("m:f", IntervalTrigger(seconds=10), id="slow", max_instances=1)
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    (first,) = [fire for fire in dispatcher.fires if fire.job_id == "slow"]
    store.run_started("slow", first.task_id, started_at=clock.now(), timeout=3600)
    clock.set(T0 + timedelta(seconds=10))
    result = engine.tick(clock.now())
    assert result.fired == 0 and 0 < result.sleep <= WAIT_POLL
    store.run_finished("slow", first.task_id, finished_at=clock.now(), duration=10.5, error=None)
    clock.set(T0 + timedelta(seconds=10.5))
    result = engine.tick(clock.now())
    assert dispatcher.times("slow") == [T0, T0 + timedelta(seconds=10)]
