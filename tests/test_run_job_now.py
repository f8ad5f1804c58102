"""``JobManager.run_job_now`` goes through the claim and policy path of a scheduled fire: the
job is claimed in the store, the overlap policy is applied to the claimed job, the fire is
recorded ``sent`` in the run ledger and the claim ends with its write-back; a beat planning
the job at the same moment is excluded. On the memory store and on Redis."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

import beatx.manager
from beatx.engine.engine import Engine
from beatx.errors import JobClaimedError, JobLookupError, TransientDispatchError
from beatx.jobs import Fire, Job, JobStatus, Overlap
from beatx.ledger import RunOutcome
from beatx.manager import JobManager
from beatx.stores.base import JobRelease, JobStore
from beatx.stores.memory import MemoryStore
from beatx.stores.redis import RedisStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class StartingDispatcher(RecordingDispatcher):
    """Records each fire and starts its run at once, as a worker picking it up would: the
    store then counts it in flight (``running``), which ``overlap="skip"`` reads."""

    def __init__(
        self, store: JobStore, clock: Callable[[], datetime], *, fail_jobs: Sequence[str] = ()
    ) -> None:
        super().__init__(fail_jobs=fail_jobs)
        self.store, self.clock = store, clock

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        results = super().dispatch(fires, guard=guard)
        for fire, error in zip(fires, results, strict=False):
            if error is None:
                self.store.run_started(fire.job_id, fire.task_id, started_at=self.clock(), timeout=600)
        return results


def due_job(job_id: str, at: datetime, **fields: object) -> Job:
    values: dict[str, object] = {
        "func": "tests.sample_tasks:record",
        "trigger": IntervalTrigger(hours=1, start_date=at),
        "next_run_time": at,
    }
    values.update(fields)
    return Job(id=job_id, **values)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[JobStore]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    redis_store = RedisStore(
        request.getfixturevalue("redis_url"), key_prefix=request.getfixturevalue("key_prefix"), clock=clock
    )
    yield redis_store
    redis_store.close()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher(fail_jobs=["down"])


@pytest.fixture
def manager(store: JobStore, clock: FakeClock, dispatcher: RecordingDispatcher) -> JobManager:
    return JobManager(store, dispatcher=dispatcher, clock=clock)


def test_a_fire_is_recorded_sent_and_its_claim_ends_with_the_schedule_unchanged(
    store: JobStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.add_job(due_job("j", T0 + timedelta(minutes=10), max_runs=1))
    clock.advance(seconds=5)
    task_id = manager.run_job_now("j")
    (fire,) = dispatcher.fires
    assert task_id == fire.task_id and fire.scheduled_at == clock.now()
    (run,) = store.job_runs("j")
    assert (run.task_id, run.outcome, run.scheduled_at) == (task_id, RunOutcome.SENT, clock.now())
    assert run.sent_at == clock.now()
    got = store.get_job("j")
    assert got is not None and got.claim is None
    # Not a scheduled run: the schedule, the counters and max_runs stay as they were.
    assert got.next_run_time == T0 + timedelta(minutes=10) and got.status is JobStatus.ACTIVE
    assert (got.total_run_count, got.remaining_runs, got.last_run_time, got.skip_count) == (0, 1, None, 0)
    # The claim ended: nothing holds the job (claimable again, and due for the beat at its time).
    assert store.acquire_due_jobs(T0 + timedelta(minutes=9), limit=10) == []
    assert store.next_run_time() == T0 + timedelta(minutes=10)
    (due,) = store.acquire_due_jobs(T0 + timedelta(minutes=10), limit=10)
    assert due.id == "j" and due.next_run_time == T0 + timedelta(minutes=10)


def test_a_manual_fire_does_not_take_the_scheduled_fire_due_before_it(
    store: JobStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    """The write-back leaves ``last_run_time`` alone: a beat still sends the fire that was
    due at or before the manual one, and ``max_runs`` is not used up by it."""
    store.add_job(due_job("j", T0, max_runs=1, overlap=Overlap.ALLOW_ALL))
    clock.advance(seconds=1)
    manual = manager.run_job_now("j")
    result = Engine(store, dispatcher, clock=clock).tick(clock.now())
    assert result.fired == 1
    assert dispatcher.fires[0].task_id == manual
    assert dispatcher.times("j") == [clock.now(), T0]
    got = store.get_job("j")
    assert got is not None and got.total_run_count == 1 and got.last_run_time == T0
    assert got.status is JobStatus.COMPLETED  # by its one scheduled run


def test_a_skip_is_recorded_under_the_claim(
    store: JobStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.add_job(due_job("j", T0 + timedelta(minutes=10), max_instances=1))
    store.run_started("j", "running-1", started_at=clock.now(), timeout=600)
    assert manager.run_job_now("j", overlap="skip") is None
    assert dispatcher.fires == []
    got = store.get_job("j")
    assert got is not None and got.skip_count == 1 and got.next_run_time == T0 + timedelta(minutes=10)
    outcomes = [run.outcome for run in store.job_runs("j")]
    assert RunOutcome.SKIPPED in outcomes and RunOutcome.SENT not in outcomes
    # The claim ended: claimable again at once.
    again = store.claim_job("j")
    assert again is not None
    store.release_jobs([JobRelease.unchanged(again)])
    # A fire sent and not started yet counts too (the run ledger), as the beat counts it.
    store.run_finished("j", "running-1", finished_at=clock.now(), duration=1.0, error=None)
    assert manager.run_job_now("j", overlap="skip") is not None
    assert manager.run_job_now("j", overlap="skip") is None
    got = store.get_job("j")
    assert got is not None and got.skip_count == 2 and len(dispatcher.fires) == 1


def test_a_failed_dispatch_writes_the_job_back_unchanged(
    store: JobStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.add_job(due_job("down", T0))
    with pytest.raises(TransientDispatchError, match="down"):
        manager.run_job_now("down")
    got = store.get_job("down")
    assert got is not None and got.next_run_time == T0 and got.skip_count == 0
    assert store.job_runs("down") == []
    (due,) = store.acquire_due_jobs(T0, limit=10)  # not left claimed
    assert due.id == "down"


def test_a_missing_job_raises(manager: JobManager) -> None:
    with pytest.raises(JobLookupError):
        manager.run_job_now("nope")


def test_the_fire_waits_for_a_beat_s_claim_to_end(
    store: JobStore, manager: JobManager, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    store.add_job(due_job("j", T0))
    (held,) = store.acquire_due_jobs(T0, limit=10)
    timer = threading.Timer(0.2, lambda: store.release_jobs([JobRelease.unchanged(held)]))
    started = time.monotonic()
    timer.start()
    try:
        task_id = manager.run_job_now("j")
    finally:
        timer.join()
    assert time.monotonic() - started >= 0.2
    assert task_id is not None and [f.task_id for f in dispatcher.fires] == [task_id]


def test_a_beat_holding_the_job_past_the_wait_is_an_error(
    store: JobStore, manager: JobManager, dispatcher: RecordingDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(beatx.manager, "JOB_CLAIM_WAIT", 0.1)
    store.add_job(due_job("j", T0))
    store.acquire_due_jobs(T0, limit=10)
    with pytest.raises(JobClaimedError, match="'j' is held by a beat") as raised:
        manager.run_job_now("j", overlap="skip")
    assert raised.value.job_id == "j" and dispatcher.fires == []
    got = store.get_job("j")
    assert got is not None and got.skip_count == 0 and store.job_runs("j") == []


def race_round(
    store: RedisStore, manager: JobManager, beat_fires: RecordingDispatcher, job_id: str, rng: random.Random
) -> list[str]:
    """One round of the race: a fresh job due now, a beat's tick and ``run_job_now`` started
    together from two threads (each after a random pause of up to 3 ms). Returns who sent a
    fire (``"beat"``, ``"manual"``), and checks that both calls ended without an error."""
    store.add_job(
        due_job(job_id, datetime.now(UTC) - timedelta(seconds=1), max_instances=1, overlap=Overlap.SKIP)
    )
    manual_fires = manager.dispatcher
    assert isinstance(manual_fires, RecordingDispatcher)
    engine = Engine(store, beat_fires, claim_ttl=5)
    barrier = threading.Barrier(2)
    done: list[str] = []
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            barrier.wait()
            time.sleep(rng.uniform(0, 0.003))
            engine.tick(datetime.now(UTC))
            done.append("tick")
        except BaseException as exc:
            errors.append(exc)

    def run_now() -> None:
        try:
            barrier.wait()
            time.sleep(rng.uniform(0, 0.003))
            manager.run_job_now(job_id, overlap="skip")
            done.append("run_job_now")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick), threading.Thread(target=run_now)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    engine.close()  # gives back a job it still holds for the run in flight
    store.remove_job(job_id)
    assert errors == [] and sorted(done) == ["run_job_now", "tick"], (errors, done)
    return ["beat" for f in beat_fires.fires if f.job_id == job_id] + [
        "manual" for f in manual_fires.fires if f.job_id == job_id
    ]


@pytest.mark.redis
def test_a_beat_tick_and_run_job_now_together_send_at_most_one_fire(redis_url: str, key_prefix: str) -> None:
    """A job with ``max_instances=1`` and ``overlap="skip"``, due now: a beat's tick (a real
    engine on Redis) and ``run_job_now(overlap="skip")`` start together from two threads,
    50 times with a fresh job each time. Whichever claims the job first decides; the other
    sees the run in flight (each fire's run starts at once, as a worker's would) and skips
    it, or finds the job claimed. Without the claim both can read no run in flight, and both
    send."""
    store = RedisStore(redis_url, key_prefix=key_prefix)
    beat_fires = StartingDispatcher(store, lambda: datetime.now(UTC))
    manager = JobManager(store, dispatcher=StartingDispatcher(store, lambda: datetime.now(UTC)))
    rng = random.Random(11)
    won_by = {"beat": 0, "manual": 0}
    try:
        for n in range(50):
            senders = race_round(store, manager, beat_fires, f"race-{n}", rng)
            assert len(senders) == 1, f"round {n}: sent by {senders}"
            won_by[senders[0]] += 1
    finally:
        store.close()
    # The race went both ways: each side sent first in some rounds.
    assert won_by["beat"] > 0 and won_by["manual"] > 0, won_by
