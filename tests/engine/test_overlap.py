"""The overlap policies (``Job.overlap``) under a fake clock: the engine, a memory store and a
simulated worker that records each run's start and end in the store as the Celery hooks do."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beatx.engine.engine import Engine
from beatx.engine.overlap import SENT_IN_FLIGHT, in_flight
from beatx.engine.rules import plan_fires
from beatx.events import Event, EventKind
from beatx.jobs import Fire, Job, Overlap, fire_task_id
from beatx.ledger import RunOutcome, RunRecord
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.engine.conftest import T0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Worker:
    """Runs every fire the dispatcher sent: starts it ``delay`` seconds after it was sent,
    ends it ``duration`` seconds later (run records in the store), and drops or ends (with
    ``terminate``) the runs the dispatcher revoked."""

    store: MemoryStore
    dispatcher: RecordingDispatcher
    duration: float
    delay: float = 0.0
    seen: int = 0
    queued: list[tuple[Fire, datetime]] = field(default_factory=list)
    running: dict[str, tuple[Fire, datetime]] = field(default_factory=dict)
    #: (nominal time, outcome) per run that ended, in order.
    ended: list[tuple[datetime, RunOutcome]] = field(default_factory=list)
    peak: int = 0
    revokes_seen: int = 0
    #: Per-run durations, in the order runs start (then ``duration``).
    durations: list[float] = field(default_factory=list)
    starts: int = 0
    run_length: dict[str, float] = field(default_factory=dict)
    #: When the beat sent each fire (task id -> the step's time).
    sent_at: dict[str, datetime] = field(default_factory=dict)

    def step(self, now: datetime) -> None:
        for fire in self.dispatcher.fires[self.seen :]:
            self.queued.append((fire, now))
            self.sent_at.setdefault(fire.task_id, now)
        self.seen = len(self.dispatcher.fires)
        for task_ids, terminate in self.dispatcher.revoked[self.revokes_seen :]:
            for fire, _ in [q for q in self.queued if q[0].task_id in task_ids]:
                self.queued = [q for q in self.queued if q[0].task_id != fire.task_id]
                self._end(fire, now, RunOutcome.REVOKED)
            for task_id in task_ids:
                if terminate and task_id in self.running:
                    fire, _ = self.running.pop(task_id)
                    self._end(fire, now, RunOutcome.REVOKED)
        self.revokes_seen = len(self.dispatcher.revoked)
        for task_id, (fire, started) in list(self.running.items()):
            if (now - started).total_seconds() >= self.run_length.get(task_id, self.duration):
                del self.running[task_id]
                self._end(fire, now, RunOutcome.SUCCEEDED)
        for fire, sent in list(self.queued):
            if (now - sent).total_seconds() >= self.delay:
                self.queued.remove((fire, sent))
                self.store.run_started(fire.job_id, fire.task_id, started_at=now, timeout=3600)
                self.running[fire.task_id] = (fire, now)
                if self.starts < len(self.durations):
                    self.run_length[fire.task_id] = self.durations[self.starts]
                self.starts += 1
        self.peak = max(self.peak, len(self.running))

    def _end(self, fire: Fire, now: datetime, outcome: RunOutcome) -> None:
        self.store.run_finished(
            fire.job_id, fire.task_id, finished_at=now, duration=None, error=None, outcome=outcome
        )
        self.ended.append((fire.scheduled_at, outcome))


def simulate(engine: Engine, clock: FakeClock, worker: Worker, until: datetime, step: float = 0.05) -> None:
    """Tick as a beat would (never sleeping past ``step``, so the worker moves too)."""
    while clock.now() < until:
        worker.step(clock.now())
        result = engine.tick(clock.now())
        for fire in worker.dispatcher.fires[worker.seen :]:
            worker.sent_at.setdefault(fire.task_id, clock.now())
        clock.advance(min(max(result.sleep, 0.001), step))


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def engine(store: MemoryStore, dispatcher: RecordingDispatcher, clock: FakeClock) -> Engine:
    return Engine(store, dispatcher, clock=clock, catch_up_window=90)


def add(manager: JobManager, overlap: str, every: float = 1.0, **fields: object) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=every, start_date=T0), id="j", overlap=overlap, **fields)


# -- the pure parts ---------------------------------------------------------------------------


def _job(overlap: str, running: int, **fields: object) -> Job:
    values: dict[str, object] = {"coalesce": False, "max_instances": 1} | fields
    return Job(
        id="j",
        func="m:f",
        trigger=IntervalTrigger(seconds=10, start_date=T0),
        next_run_time=T0,
        running=running,
        overlap=overlap,  # type: ignore[arg-type]
        **values,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("overlap", "running", "fires", "skipped", "buffered", "next_run", "cancel"),
    [
        ("skip", 1, [], 3, 0, at(30), False),
        ("skip", 0, [at(0), at(10), at(20)], 0, 0, at(30), False),
        ("buffer_one", 1, [], 2, 1, at(20), False),
        ("buffer_one", 0, [at(20)], 2, 0, at(30), False),
        ("buffer_all", 1, [], 0, 3, at(0), False),
        ("buffer_all", 0, [at(0)], 0, 2, at(10), False),
        ("cancel_other", 1, [at(20)], 2, 0, at(30), True),
        ("terminate_other", 1, [at(20)], 2, 0, at(30), True),
        ("cancel_other", 0, [at(0), at(10), at(20)], 0, 0, at(30), False),
        ("allow_all", 5, [at(0), at(10), at(20)], 0, 0, at(30), False),
    ],
)
def test_the_overlap_row_of_the_table(
    overlap: str,
    running: int,
    fires: list[datetime],
    skipped: int,
    buffered: int,
    next_run: datetime,
    cancel: bool,
) -> None:
    # Three fires due (catchup="all", inside the failover window), max_instances=1.
    plan = plan_fires(_job(overlap, running), at(25), catch_up_window=timedelta(seconds=100))
    assert list(plan.fire_times) == fires
    assert (plan.skipped, plan.buffered, plan.cancel_running) == (skipped, buffered, cancel)
    assert plan.next_run_time == next_run


def test_buffer_policies_wait_first_and_cancel_policies_do_not() -> None:
    for overlap in ("skip", "buffer_one", "buffer_all"):
        assert plan_fires(_job(overlap, 1), at(5), wait=True).waiting
    for overlap in ("cancel_other", "terminate_other", "allow_all"):
        assert not plan_fires(_job(overlap, 1), at(5), wait=True).waiting


def test_max_instances_is_the_room_of_the_buffer_policies() -> None:
    plan = plan_fires(_job("buffer_all", 1, max_instances=3), at(35), catch_up_window=timedelta(seconds=100))
    assert list(plan.fire_times) == [at(0), at(10)] and plan.buffered == 2
    assert plan.next_run_time == at(20)


def test_max_runs_ends_a_buffer() -> None:
    plan = plan_fires(_job("buffer_all", 0, max_runs=1), at(25), catch_up_window=timedelta(seconds=100))
    assert list(plan.fire_times) == [at(0)] and plan.next_run_time is None


def test_a_fire_sent_and_not_started_counts_in_flight_for_a_while() -> None:
    def sent(task_id: str, seconds: float) -> RunRecord:
        return RunRecord(job_id="j", task_id=task_id, outcome=RunOutcome.SENT, sent_at=at(seconds))

    records = [
        sent("new", 100),
        sent("old", 100 - SENT_IN_FLIGHT.total_seconds() - 1),
        RunRecord(job_id="j", task_id="run", outcome=RunOutcome.RUNNING, sent_at=at(0)),
        RunRecord(job_id="j", task_id="done", outcome=RunOutcome.SUCCEEDED, sent_at=at(0)),
    ]
    found = in_flight(1, records, at(100))
    assert found.count == 2 and set(found.task_ids) == {"new", "run"}


def test_bad_overlap_fields_are_refused_by_name(manager: JobManager) -> None:
    from beatx.errors import InvalidJobError

    with pytest.raises(InvalidJobError, match="overlap must be one of 'skip', 'buffer_one'"):
        add(manager, "sometimes")
    with pytest.raises(InvalidJobError, match="pause_after_failures must be None or an integer >= 1"):
        add(manager, "skip", pause_after_failures=0)


# -- the engine -------------------------------------------------------------------------------


def test_skip_is_todays_behaviour_and_reads_no_ledger(
    engine: Engine,
    manager: JobManager,
    store: MemoryStore,
    clock: FakeClock,
    dispatcher: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add(manager, "skip")
    reads: list[str] = []
    real = store.job_runs
    monkeypatch.setattr(
        store, "job_runs", lambda job_id, limit=20: reads.append(job_id) or real(job_id, limit=limit)
    )
    worker = Worker(store, dispatcher, duration=2.5)
    simulate(engine, clock, worker, at(10))
    # Fires held back past the longest wait are skipped; the hot path reads no run ledger.
    assert all(t.microsecond == 0 for t in dispatcher.times("j"))
    job = manager.get_job("j")
    assert job is not None and job.skip_count > 0
    assert reads == []


def test_buffer_one_sends_the_newest_fire_when_the_run_ends(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "buffer_one")
    worker = Worker(store, dispatcher, duration=2.2)
    simulate(engine, clock, worker, at(8.9))
    # Runs of 2.2 s on a 1 s grid: each run ends between two fires, and the newest fire due
    # then (its own nominal time and task id) goes at once; the older ones are skipped.
    assert dispatcher.times("j") == [at(0), at(2), at(4), at(6)]
    assert [f.task_id for f in dispatcher.fires] == [fire_task_id("j", t) for t in dispatcher.times("j")]
    assert worker.peak == 1
    runs = sorted(
        (run for run in store.job_runs("j", limit=50) if run.scheduled_at is not None),
        key=lambda run: run.scheduled_at or T0,
    )
    # Each buffered fire went out as soon as the run before it ended (within a poll).
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.sent_at is not None
        assert timedelta(0) <= after.sent_at - before.finished_at <= timedelta(seconds=0.15)
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 3  # 1, 3, 5


def test_buffer_one_outlives_the_longest_wait_and_keeps_the_buffered_fire_in_the_store(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "buffer_one", every=1.0)
    worker = Worker(store, dispatcher, duration=12.0)
    simulate(engine, clock, worker, at(11))
    # Longer than the engine's longest hold (5 s): the job was written back with its buffered
    # fire as its next run (due, in the store), claimed again, and still nothing more went out.
    assert dispatcher.times("j") == [at(0)]
    job = store.get_job("j")
    assert job is not None and job.next_run_time is not None and job.next_run_time <= at(11)
    simulate(engine, clock, worker, at(12.5))
    assert dispatcher.times("j") == [at(0), at(12)]


def test_buffer_all_sends_every_fire_one_run_at_a_time(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "buffer_all", every=1.0, catchup="all")
    # The worker picks a fire up 0.3 s after it was sent: the next buffered fire still waits
    # for it (the ledger's "sent" record counts it in flight).
    worker = Worker(store, dispatcher, duration=1.5, delay=0.3)
    simulate(engine, clock, worker, at(12))
    times = dispatcher.times("j")
    assert times == [at(n) for n in range(len(times))]  # every nominal time, in order
    assert len(times) >= 6
    assert worker.peak == 1
    assert manager.get_job("j").skip_count == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("overlap", ["cancel_other", "terminate_other"])
def test_cancel_policies_revoke_the_run_in_flight_then_send(
    overlap: str,
    engine: Engine,
    manager: JobManager,
    store: MemoryStore,
    clock: FakeClock,
    dispatcher: RecordingDispatcher,
) -> None:
    add(manager, overlap, every=2.0)
    worker = Worker(store, dispatcher, duration=3.0)
    simulate(engine, clock, worker, at(4.5))
    assert dispatcher.times("j") == [at(0), at(2), at(4)]
    terminate = overlap == "terminate_other"
    assert dispatcher.revoked == [
        ((fire_task_id("j", at(0)),), terminate),
        ((fire_task_id("j", at(2)),), terminate),
    ]
    if terminate:
        assert worker.ended == [(at(0), RunOutcome.REVOKED), (at(2), RunOutcome.REVOKED)]
    else:  # a revoke does not stop a run already executing
        assert worker.peak == 2


def test_cancel_other_revokes_a_fire_still_queued(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "cancel_other", every=1.0)
    worker = Worker(store, dispatcher, duration=0.5, delay=10.0)  # nobody picks it up
    simulate(engine, clock, worker, at(1.5))
    assert dispatcher.revoked == [((fire_task_id("j", at(0)),), False)]
    assert worker.ended == [(at(0), RunOutcome.REVOKED)]


def test_allow_all_ignores_max_instances(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "allow_all")
    worker = Worker(store, dispatcher, duration=3.5)
    simulate(engine, clock, worker, at(5.5))
    assert dispatcher.times("j") == [at(n) for n in range(6)]
    assert worker.peak == 4


# -- interplay: catch-up, max_instances, failover ----------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "catchup", "expected"),
    [
        # Every 10 s; the run of 0 lasts until ~48; the beat is down from 0.5 to 35.
        # skip: 30 and 40 wait (at most 5 s each) and are skipped; 50 runs.
        ("skip", "latest", [0, 50]),
        # buffer_one: the newest fire due when the run ends (40) goes then.
        ("buffer_one", "latest", [0, 40]),
        ("buffer_one", "all", [0, 40]),
        # buffer_all keeps what the catch-up policy keeps: a buffered fire older than the
        # failover window (5 s here) is an outage's; "latest" merges 30 into 40 ...
        ("buffer_all", "latest", [0, 40]),
        # ... and "all" keeps every one (the outage's 10 and 20 too): 10 goes when the run
        # ends, the others one run at a time after it.
        ("buffer_all", "all", [0, 10]),
    ],
)
def test_an_outage_with_a_run_in_flight(
    overlap: str,
    catchup: str,
    expected: list[float],
    manager: JobManager,
    store: MemoryStore,
    clock: FakeClock,
    dispatcher: RecordingDispatcher,
) -> None:
    add(manager, overlap, every=10.0, catchup=catchup)
    engine = Engine(store, dispatcher, clock=clock, catch_up_window=5)
    worker = Worker(store, dispatcher, duration=47.9)
    simulate(engine, clock, worker, at(0.5))
    clock.set(at(35))
    simulate(engine, clock, worker, at(50.5))
    assert dispatcher.times("j") == [at(t) for t in expected]
    assert worker.peak == 1


def test_buffer_all_with_two_instances_keeps_two_running(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "buffer_all", every=1.0, catchup="all", max_instances=2)
    worker = Worker(store, dispatcher, duration=3.0)
    simulate(engine, clock, worker, at(12))
    times = dispatcher.times("j")
    assert times == [at(n) for n in range(len(times))] and worker.peak == 2


def test_a_buffered_fire_survives_a_failover(
    manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    add(manager, "buffer_one", every=1.0)
    first = Engine(store, dispatcher, clock=clock, claim_ttl=3.0)
    worker = Worker(store, dispatcher, duration=20.0)
    simulate(first, clock, worker, at(8))  # the fire of 0 runs; later ones are buffered
    assert dispatcher.times("j") == [at(0)]
    # The first beat dies (it holds the job, or wrote its buffered fire back); another takes
    # over once the claim expired and sends the buffered fire when the run ends.
    second = Engine(store, dispatcher, clock=clock, claim_ttl=3.0)
    simulate(second, clock, worker, at(20.5))
    assert dispatcher.times("j") == [at(0), at(20)]
    assert dispatcher.fires[-1].task_id == fire_task_id("j", at(20))


# -- a property: random schedules and run durations, the fires sent as the table says ----------


@settings(max_examples=60, deadline=None)
@given(
    overlap=st.sampled_from(list(Overlap)),
    period=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    max_instances=st.integers(1, 2),
    durations=st.lists(st.floats(0.1, 7.0), min_size=1, max_size=12),
    delay=st.sampled_from([0.0, 0.2]),
)
def test_random_runs_follow_the_overlap_row(
    overlap: Overlap, period: float, max_instances: int, durations: list[float], delay: float
) -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock, run_history=200)
    manager = JobManager(store, clock=clock)
    dispatcher = RecordingDispatcher()
    manager.add_job(
        "m:f",
        IntervalTrigger(seconds=period, start_date=T0),
        id="j",
        overlap=overlap,
        max_instances=max_instances,
        catchup="all",
    )
    engine = Engine(store, dispatcher, clock=clock, catch_up_window=90)
    worker = Worker(store, dispatcher, duration=1.0, delay=delay, durations=durations)
    end = at(15)
    simulate(engine, clock, worker, end)
    trigger = IntervalTrigger(seconds=period, start_date=T0)
    nominal = []
    t: datetime | None = T0
    while t is not None and t <= end:
        nominal.append(t)
        t = trigger.next_fire_time(t)
    sent = dispatcher.times("j")
    assert sent == sorted(set(sent)), "each fire at most once, in nominal order"
    assert [f.task_id for f in dispatcher.fires] == [fire_task_id("j", t) for t in sent]
    if overlap in (Overlap.ALLOW_ALL, Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER):
        # Every fire goes on time (the cancel policies revoke instead of waiting).
        assert sent in (nominal, nominal[:-1])
        for fire in dispatcher.fires:
            assert worker.sent_at[fire.task_id] - fire.scheduled_at <= timedelta(seconds=0.06)
    if overlap is Overlap.TERMINATE_OTHER or overlap.buffers:
        # (skip counts only the runs workers reported started, and after a wait lets every
        # fire that waited go: its own rows are in tests/engine/test_engine.py.)
        assert worker.peak <= max_instances
    if overlap.cancels:
        # Only fires sent earlier are revoked, and only while they were in flight.
        earlier = {fire.task_id for fire in dispatcher.fires}
        for task_ids, terminate in dispatcher.revoked:
            assert set(task_ids) <= earlier and terminate is (overlap is Overlap.TERMINATE_OTHER)
    if overlap is Overlap.BUFFER_ALL:
        # Every fire, in order, none skipped; the backlog drains from the oldest.
        assert sent == nominal[: len(sent)]
    if overlap is Overlap.BUFFER_ONE:
        # Each fire went among the newest that fit: fewer than max_instances newer fires were
        # due when it went (up to a poll's delay).
        for fire in dispatcher.fires:
            went = worker.sent_at[fire.task_id] - timedelta(seconds=0.06)
            newer = [t for t in nominal if fire.scheduled_at < t <= went]
            assert len(newer) < max_instances


def test_modify_job_changes_the_overlap_fields_and_the_audit_log_says_so(manager: JobManager) -> None:
    add(manager, "skip")
    job = manager.modify_job("j", overlap="buffer_all", pause_after_failures=4)
    assert (job.overlap, job.pause_after_failures) == (Overlap.BUFFER_ALL, 4)
    stored = manager.get_job("j")
    assert stored is not None and stored.overlap is Overlap.BUFFER_ALL
    assert manager.job_history("j")[0].changes == {
        "overlap": ["skip", "buffer_all"],
        "pause_after_failures": [None, 4],
    }


def test_a_buffered_fire_is_an_event(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    events: list[Event] = []
    engine.events.subscribe(events.append, kinds={EventKind.JOB_BUFFERED, EventKind.JOB_REVOKED})
    add(manager, "buffer_one")
    worker = Worker(store, dispatcher, duration=12.0)
    simulate(engine, clock, worker, at(2.5))
    # A fire waiting in the beat (at most its longest wait, 5 s) is not buffered yet.
    assert events == []
    simulate(engine, clock, worker, at(7))
    # The run of 0 s outlived the wait: the newest fire due was written back to the store,
    # buffered until the run ends.
    assert events and {event.kind for event in events} == {EventKind.JOB_BUFFERED}
    first = events[0]
    job = store.get_job("j")
    assert job is not None and first.job_id == "j" and first.scheduled_at == job.next_run_time
    assert first.data["count"] >= 1 and first.data["overlap"] == "buffer_one" and first.data["running"] == 1


def test_a_revoke_is_an_event(
    engine: Engine, manager: JobManager, store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher
) -> None:
    events: list[Event] = []
    engine.events.subscribe(events.append, kinds={EventKind.JOB_BUFFERED, EventKind.JOB_REVOKED})
    add(manager, "terminate_other", every=2.0)
    worker = Worker(store, dispatcher, duration=3.0)
    simulate(engine, clock, worker, at(4.5))
    assert [(event.kind, event.job_id, event.data) for event in events] == [
        (EventKind.JOB_REVOKED, "j", {"task_ids": [fire_task_id("j", at(0))], "terminate": True}),
        (EventKind.JOB_REVOKED, "j", {"task_ids": [fire_task_id("j", at(2))], "terminate": True}),
    ]
