"""Catch-up after an outage: ``catchup``, ``catchup_window``, ``catchup_limit``.

The rules as a table, against a direct reading of the table in ``docs/concepts/rules.md``
(hypothesis), the cost of planning a long outage, and the engine under the fake clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beatx.engine.engine import Engine
from beatx.engine.rules import MAX_COUNT_WALK, plan_fires
from beatx.errors import InvalidJobError, SerializationError
from beatx.jitter import due_time
from beatx.jobs import CatchUp, Job, Overlap, job_from_dict, job_to_dict
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import CronTrigger, IntervalTrigger
from beatx.triggers.base import Trigger
from tests.engine.conftest import T0


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def every(seconds: float, **fields: object) -> Job:
    values: dict[str, object] = {
        "func": "m:f",
        "trigger": IntervalTrigger(seconds=seconds, start_date=T0),
        "next_run_time": T0,
        "max_instances": 100,
    }
    values.update(fields)
    return Job(id="j", **values)  # type: ignore[arg-type]


# -- the table -----------------------------------------------------------------------------------


# A job every 10 s, due since T0, planned at 95 s with a failover window of 20 s: the fires at
# 0..70 are an outage's, 80 and 90 fell due while leadership moved.
@pytest.mark.parametrize(
    ("fields", "fires", "coalesced", "not_caught_up"),
    [
        ({"catchup": "latest"}, [80, 90], 8, 0),
        ({"coalesce": True}, [80, 90], 8, 0),
        ({"catchup": "earliest"}, [0, 80, 90], 7, 0),
        ({"catchup": "all"}, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], 0, 0),
        ({"coalesce": False}, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], 0, 0),
        ({"catchup": "none"}, [80, 90], 0, 8),
        ({"catchup": "all", "catchup_limit": 3}, [50, 60, 70, 80, 90], 0, 5),
        ({"catchup": "all", "catchup_window": 40}, [60, 70, 80, 90], 0, 6),
        ({"catchup": "earliest", "catchup_window": 40}, [60, 80, 90], 1, 6),
        ({"catchup": "all", "catchup_window": 5}, [80, 90], 0, 8),
        ({"catchup": "none", "catchup_window": 40}, [80, 90], 0, 8),
    ],
    ids=[
        "latest-the-first-recent-fire-stands-for-the-outage",
        "coalesce-true-is-latest",
        "earliest-runs-the-first-late-fire",
        "all-runs-every-late-fire",
        "coalesce-false-is-all",
        "none-drops-the-outage-but-not-the-failover-gap",
        "the-limit-keeps-the-newest-late-fires",
        "the-window-drops-older-fires",
        "earliest-inside-the-window",
        "a-window-shorter-than-the-failover-gap-drops-only-the-outage",
        "none-with-a-window",
    ],
)
def test_catch_up_policy(
    fields: dict[str, object], fires: list[int], coalesced: int, not_caught_up: int
) -> None:
    plan = plan_fires(every(10, **fields), s(95), catch_up_window=timedelta(seconds=20))
    assert list(plan.fire_times) == [s(t) for t in fires]
    assert (plan.coalesced, plan.not_caught_up, plan.missed) == (coalesced, not_caught_up, 0)
    assert plan.caught_up == len([t for t in fires if t < 75])
    assert plan.next_run_time == s(100)


@pytest.mark.parametrize(
    ("catchup", "fires", "coalesced", "not_caught_up", "next_run"),
    [
        ("latest", [70], 7, 0, 80),
        ("earliest", [0], 7, 0, 80),
        ("none", [], 0, 8, 80),
    ],
)
def test_an_outage_with_no_recent_fire(
    catchup: str, fires: list[int], coalesced: int, not_caught_up: int, next_run: int
) -> None:
    plan = plan_fires(every(10, catchup=catchup), s(75))
    assert list(plan.fire_times) == [s(t) for t in fires]
    assert (plan.coalesced, plan.not_caught_up) == (coalesced, not_caught_up)
    assert plan.next_run_time == s(next_run)


def test_misfire_grace_comes_first_then_catch_up() -> None:
    plan = plan_fires(every(10, catchup="earliest", misfire_grace_time=45), s(95))
    # 0..40 later than the grace: missed; 50 is the earliest left, 60..90 merged into it.
    assert list(plan.fire_times) == [s(50)]
    assert (plan.missed, plan.coalesced) == (5, 4)


def test_max_instances_counts_runs_in_flight_not_caught_up_fires() -> None:
    plan = plan_fires(every(10, catchup="all", max_instances=1), s(35))
    assert list(plan.fire_times) == [s(0), s(10), s(20), s(30)]
    busy = plan_fires(every(10, catchup="all", max_instances=1, running=1), s(35))
    assert busy.fire_times == () and busy.skipped == 4


def test_a_limit_larger_than_one_plan_sends_the_rest_on_the_next_plan() -> None:
    job = every(1, catchup="all", catchup_limit=1500)
    plan = plan_fires(job, s(3000))
    assert plan.fire_times[0] == s(1500) and len(plan.fire_times) == 1000
    assert plan.not_caught_up == 1500
    job.next_run_time = plan.next_run_time
    rest = plan_fires(job, s(3000))
    assert rest.fire_times[0] == s(2500) and rest.fire_times[-1] == s(3000)
    assert rest.not_caught_up == 0


# -- the cost of planning a long outage ----------------------------------------------------------


class CountingTrigger(Trigger):
    """Wraps a trigger and counts its evaluations."""

    kind = "counting"

    def __init__(self, inner: Trigger) -> None:
        self.inner = inner
        self.calls = 0

    def next_fire_time(self, after: datetime) -> datetime | None:
        self.calls += 1
        return self.inner.next_fire_time(after)

    def count_fire_times(self, start: datetime, end: datetime) -> int | None:
        self.calls += 1
        return self.inner.count_fire_times(start, end)

    def describe(self) -> str:
        return self.inner.describe()

    def to_dict(self) -> dict[str, Any]:
        return self.inner.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        raise NotImplementedError


@pytest.mark.parametrize("catchup", ["latest", "none", "earliest"])
@pytest.mark.parametrize("grace", [None, 30.0])
def test_a_job_a_thousand_intervals_overdue_jumps_to_its_last_due_time(
    catchup: str, grace: float | None
) -> None:
    trigger = CountingTrigger(IntervalTrigger(seconds=60, start_date=T0))
    job = Job(
        id="j",
        func="m:f",
        trigger=trigger,
        next_run_time=T0,
        catchup=catchup,
        misfire_grace_time=grace,  # type: ignore[arg-type]
    )
    now = s(1000 * 60 + 1)
    plan = plan_fires(job, now, catch_up_window=timedelta(seconds=40))
    assert plan.next_run_time == s(1001 * 60)
    assert trigger.calls <= 40, trigger.calls
    if grace is None:
        assert plan.coalesced + plan.not_caught_up + len(plan.fire_times) == 1001


def test_a_cron_job_far_behind_counts_what_it_does_not_run_up_to_the_walk_limit() -> None:
    trigger = CountingTrigger(CronTrigger("* * * * *", timezone="UTC"))
    job = Job(id="j", func="m:f", trigger=trigger, next_run_time=T0, catchup=CatchUp.NONE)
    plan = plan_fires(job, s(1000 * 60 + 1))
    assert plan.fire_times == ()
    assert plan.not_caught_up == MAX_COUNT_WALK
    assert plan.next_run_time == s(1001 * 60)
    assert trigger.calls <= MAX_COUNT_WALK + 40


def test_the_newest_fires_of_a_limit_cost_about_the_fires_sent() -> None:
    trigger = CountingTrigger(CronTrigger("* * * * *", timezone="UTC"))
    job = Job(id="j", func="m:f", trigger=trigger, next_run_time=T0, catchup=CatchUp.ALL, catchup_limit=5)
    plan = plan_fires(job, s(100_000 * 60 + 1))
    assert list(plan.fire_times) == [s(60 * t) for t in range(99_996, 100_001)]
    assert trigger.calls < 200 + MAX_COUNT_WALK


# -- a direct reading of the table ---------------------------------------------------------------


def _oracle(
    job: Job, first: datetime, now: datetime, failover: timedelta
) -> tuple[list[datetime], int, int, datetime | None]:
    """The table in docs/concepts/rules.md, read one fire at a time from the nominal time
    ``first``: (fires sent, missed, not caught up, next run). A fire is due at its nominal
    time plus its jitter; it is considered once due, and its lateness counts from then."""
    times: list[datetime] = []
    current: datetime | None = first
    while current is not None and (due_time(job, current) or current) <= now:
        times.append(current)
        current = job.trigger.next_fire_time(current)

    def due(t: datetime) -> datetime:
        return due_time(job, t) or t

    grace = job.misfire_grace_time
    missed = [t for t in times if grace is not None and due(t) < now - timedelta(seconds=grace)]
    kept = [t for t in times if t not in missed]
    recent = [t for t in kept if due(t) >= now - failover]
    late = [t for t in kept if due(t) < now - failover]
    dropped: list[datetime] = []
    if job.catchup_window is not None:
        dropped = [t for t in late if due(t) < now - timedelta(seconds=job.catchup_window)]
        late = [t for t in late if t not in dropped]
    policy = job.catchup_policy
    if policy is CatchUp.NONE:
        dropped, late = dropped + late, []
    elif policy is CatchUp.LATEST:
        late = [] if recent else late[-1:]
    elif policy is CatchUp.EARLIEST:
        late = late[:1]
    elif job.catchup_limit is not None and len(late) > job.catchup_limit:
        dropped, late = dropped + late[: -job.catchup_limit], late[-job.catchup_limit :]
    fires = late + recent
    following = due_time(job, current)
    # The overlap row: what the fires do with ``running`` runs in flight.
    room = max(job.max_instances - job.running, 0)
    overlap = job.overlap
    if overlap is Overlap.SKIP and not room:
        fires = []
    elif overlap is Overlap.BUFFER_ONE and len(fires) > room:
        if room:
            fires = fires[-room:]
        else:
            fires, following = [], due_time(job, fires[-1])
    elif overlap is Overlap.BUFFER_ALL and len(fires) > room:
        fires, following = fires[:room], due_time(job, fires[room])
    elif overlap.cancels and not room:
        fires = fires[-job.max_instances :]
    return fires, len(missed), len(dropped), following


@settings(max_examples=300, deadline=None)
@given(
    cron=st.booleans(),
    # Divisors of 60, so "*/p" minutes is a regular grid like an interval of p.
    period=st.sampled_from([1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]),
    behind=st.integers(0, 95),
    failover=st.integers(0, 20),
    grace=st.one_of(st.none(), st.integers(0, 100)),
    catchup=st.sampled_from(list(CatchUp)),
    catchup_window=st.one_of(st.none(), st.integers(0, 100)),
    catchup_limit=st.one_of(st.none(), st.integers(1, 10)),
    running=st.integers(0, 2),
    max_instances=st.integers(1, 2),
    jitter=st.one_of(st.none(), st.integers(0, 30)),
    overlap=st.sampled_from(list(Overlap)),
)
def test_the_fires_sent_are_what_the_table_says(
    cron: bool,
    period: int,
    behind: int,
    failover: int,
    grace: int | None,
    catchup: CatchUp,
    catchup_window: int | None,
    catchup_limit: int | None,
    running: int,
    max_instances: int,
    jitter: int | None,
    overlap: Overlap,
) -> None:
    # Times in units of ``period`` minutes (a cron job) or seconds (an interval job), so both
    # kinds of trigger see outages from none to ~95 fires.
    unit = 60 * period if cron else period
    trigger: Trigger = (
        CronTrigger(f"*/{period} * * * *", timezone="UTC")
        if cron
        else IntervalTrigger(seconds=period, start_date=T0)
    )
    job = Job(
        id="j",
        func="m:f",
        trigger=trigger,
        next_run_time=T0,
        misfire_grace_time=None if grace is None else grace * unit / 10,
        catchup=catchup,
        catchup_window=None if catchup_window is None else catchup_window * unit / 10,
        catchup_limit=catchup_limit,
        running=running,
        max_instances=max_instances,
        jitter=None if jitter is None else jitter * unit / 10,
        overlap=overlap,
    )
    job.next_run_time = due_time(job, T0)
    now = s(behind * unit + unit / 2)
    failover_window = timedelta(seconds=failover * unit / 10)
    fires, missed, not_caught_up, following = _oracle(job, T0, now, failover_window)
    plan = plan_fires(job, now, catch_up_window=failover_window)
    assert list(plan.fire_times) == fires
    assert (plan.missed, plan.not_caught_up) == (missed, not_caught_up)
    assert plan.next_run_time == following


# -- the job's fields ----------------------------------------------------------------------------


def test_catchup_and_coalesce_stand_for_each_other() -> None:
    assert every(10, coalesce=False).catchup is CatchUp.ALL
    assert every(10, coalesce=True).catchup is CatchUp.LATEST
    assert every(10, catchup="none").coalesce is True
    assert every(10, catchup="all").coalesce is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"catchup": "sometimes"}, "catchup must be one of 'latest', 'earliest', 'all', 'none'"),
        ({"catchup_window": -1}, "catchup_window must be None or a number of seconds >= 0"),
        ({"catchup_limit": 0}, "catchup_limit must be None or an integer >= 1"),
        ({"catchup_limit": True}, "catchup_limit must be None or an integer >= 1"),
    ],
)
def test_bad_catch_up_fields_are_refused_by_name(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJobError, match=message):
        every(10, **fields)


def test_the_manager_refuses_a_coalesce_that_contradicts_catchup(manager: JobManager) -> None:
    with pytest.raises(InvalidJobError, match="disagree"):
        manager.add_job("m:f", "interval", seconds=10, coalesce=False, catchup="latest")
    job = manager.add_job("m:f", "interval", seconds=10, id="j", catchup="none", catchup_window=60)
    assert (job.catchup, job.coalesce, job.catchup_window) == (CatchUp.NONE, True, 60)
    changed = manager.modify_job("j", coalesce=False)
    assert (changed.catchup, changed.coalesce, changed.catchup_window) == (CatchUp.ALL, False, 60)
    changed = manager.modify_job("j", catchup="earliest", catchup_limit=4)
    assert (changed.catchup, changed.coalesce, changed.catchup_limit) == (CatchUp.EARLIEST, True, 4)


def test_the_catch_up_fields_round_trip_and_a_version_1_record_reads_from_coalesce() -> None:
    job = every(10, catchup="earliest", catchup_window=120.0, catchup_limit=3)
    data = job_to_dict(job)
    assert data["version"] == 2
    again = job_from_dict(data)
    assert (again.catchup, again.catchup_window, again.catchup_limit) == (CatchUp.EARLIEST, 120.0, 3)
    old = {k: v for k, v in data.items() if not k.startswith("catchup")} | {"version": 1, "coalesce": False}
    assert job_from_dict(old).catchup is CatchUp.ALL
    with pytest.raises(SerializationError, match="format version 3"):
        job_from_dict(data | {"version": 3})


# -- the engine under the fake clock -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "sent", "misfires"),
    [
        ({"catchup": "latest"}, [80, 90], 0),
        ({"catchup": "earliest"}, [10, 80, 90], 0),
        ({"catchup": "all"}, [10, 20, 30, 40, 50, 60, 70, 80, 90], 0),
        ({"catchup": "all", "catchup_limit": 2}, [60, 70, 80, 90], 5),
        ({"catchup": "none"}, [80, 90], 7),
        ({"catchup": "all", "catchup_window": 40}, [60, 70, 80, 90], 5),
    ],
)
def test_a_beat_back_from_an_outage_catches_up_as_the_job_says(
    store: MemoryStore,
    manager: JobManager,
    clock: FakeClock,
    fields: dict[str, object],
    sent: list[int],
    misfires: int,
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, catch_up_window=20, max_sleep=1)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", max_instances=50, **fields)
    engine.tick(clock.now())
    clock.set(s(95))  # the beat was down from 1 s to 95 s
    engine.tick(clock.now())
    assert dispatcher.times("j") == [s(0)] + [s(t) for t in sent]
    job = manager.get_job("j")
    assert job is not None
    assert (job.misfire_count, job.total_run_count, job.next_run_time) == (misfires, 1 + len(sent), s(100))
    # The next tick sends nothing again.
    engine.tick(clock.now())
    assert len(dispatcher.times("j")) == 1 + len(sent)


def test_a_failover_gap_is_sent_fire_by_fire_even_with_catchup_none(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, catch_up_window=40)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", catchup="none")
    engine.tick(clock.now())
    clock.set(s(35))  # leadership moved for 35 s: inside the window
    engine.tick(clock.now())
    assert dispatcher.times("j") == [s(0), s(10), s(20), s(30)]
    job = manager.get_job("j")
    assert job is not None and job.misfire_count == 0


def test_catch_up_fires_skipped_while_a_run_is_in_flight(
    store: MemoryStore, manager: JobManager, clock: FakeClock
) -> None:
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, claim_ttl=5)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", catchup="earliest")
    engine.tick(clock.now())
    store.run_started("j", "t-0", started_at=clock.now(), timeout=3600)
    clock.set(s(45))
    engine.tick(clock.now())  # the fire waits for the run to end
    clock.set(s(49))
    engine.tick(clock.now())  # the wait is over: skipped
    assert dispatcher.times("j") == [s(0)]
    job = manager.get_job("j")
    assert job is not None and job.skip_count == 1 and job.next_run_time == s(50)


def test_catch_up_events_say_why(store: MemoryStore, manager: JobManager, clock: FakeClock) -> None:
    from beatx.events import Event, EventBus, EventKind

    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append, [EventKind.JOB_MISSED])
    engine = Engine(store, RecordingDispatcher(), events=bus)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", catchup="none", misfire_grace_time=25)
    engine.tick(clock.now())
    clock.set(s(95))
    engine.tick(clock.now())
    reasons = {event.data["reason"]: event.data["count"] for event in seen}
    assert reasons == {"misfire_grace_time": 6, "catchup": 3}


def test_a_catch_up_is_an_event(store: MemoryStore, manager: JobManager, clock: FakeClock) -> None:
    from beatx.events import Event, EventBus, EventKind

    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append, [EventKind.JOB_CAUGHT_UP])
    engine = Engine(store, RecordingDispatcher(), events=bus, catch_up_window=20)
    manager.add_job("m:f", IntervalTrigger(seconds=10), id="j", catchup="latest")
    engine.tick(clock.now())
    assert seen == []  # an ordinary fire is no catch-up
    clock.set(s(95))  # the beat was down from 1 s to 95 s
    engine.tick(clock.now())
    # The fires of 10 s to 70 s are older than the 20 s window: catchup="latest" merges them
    # into the fire it sends (the event counts them; none was sent for the outage alone).
    assert [(event.job_id, event.data) for event in seen] == [
        ("j", {"count": 0, "coalesced": 7, "catchup": "latest"})
    ]
