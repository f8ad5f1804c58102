"""Table tests for the pure scheduling rules (misfire grace, coalesce, overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beatx.engine.rules import MAX_FIRES_PER_PLAN, latest_fire_time, plan_fires
from beatx.jobs import Job, JobStatus
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def every(seconds: float, **job_fields: object) -> Job:
    trigger = IntervalTrigger(seconds=seconds, start_date=T0)
    fields: dict[str, object] = {"func": "m:f", "trigger": trigger, "next_run_time": T0}
    fields.update(job_fields)
    return Job(id="j", **fields)  # type: ignore[arg-type]


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("job", "now", "fires", "missed", "skipped", "next_run"),
    [
        (every(10), s(0), [s(0)], 0, 0, s(10)),
        (every(10), s(3), [s(0)], 0, 0, s(10)),
        (every(10), s(-1), [], 0, 0, s(0)),
        (every(10, coalesce=True), s(35), [s(30)], 0, 0, s(40)),
        (every(10, coalesce=False, max_instances=9), s(35), [s(0), s(10), s(20), s(30)], 0, 0, s(40)),
        (
            every(10, coalesce=False, max_instances=9, misfire_grace_time=16),
            s(35),
            [s(20), s(30)],
            2,
            0,
            s(40),
        ),
        (every(10, coalesce=True, misfire_grace_time=16), s(35), [s(30)], 2, 0, s(40)),
        (every(10, coalesce=False, max_instances=1), s(35), [s(0), s(10), s(20), s(30)], 0, 0, s(40)),
        (every(10, misfire_grace_time=4), s(35), [], 4, 0, s(40)),
        (every(10, misfire_grace_time=0), s(0), [s(0)], 0, 0, s(10)),
        (every(10, max_instances=1, running=1), s(0), [], 0, 1, s(10)),
        (every(10, max_instances=3, running=3, coalesce=False), s(35), [], 0, 4, s(40)),
        (every(10, max_instances=2, running=5), s(5), [], 0, 1, s(10)),
    ],
    ids=[
        "on-time",
        "a-little-late",
        "not-yet-due",
        "coalesce-collapses-a-backlog-into-the-latest",
        "no-coalesce-runs-every-missed-fire",
        "grace-drops-the-old-fires-and-runs-the-rest",
        "grace-then-coalesce",
        "max-instances-counts-runs-in-flight-not-the-fires-of-one-plan",
        "everything-outside-grace-is-missed",
        "zero-grace-still-runs-an-exact-fire",
        "a-running-instance-blocks-the-fire",
        "runs-in-flight-at-the-limit-skip-every-fire",
        "more-running-than-allowed-is-not-negative",
    ],
)
def test_plan(
    job: Job, now: datetime, fires: list[datetime], missed: int, skipped: int, next_run: datetime
) -> None:
    plan = plan_fires(job, now)
    assert list(plan.fire_times) == fires
    assert (plan.missed, plan.skipped) == (missed, skipped)
    assert plan.next_run_time == next_run
    assert plan.status is JobStatus.ACTIVE


def test_coalescing_counts_the_merged_fires() -> None:
    plan = plan_fires(every(10, coalesce=True), s(35))
    assert plan.coalesced == 3


def test_the_global_cap_limits_fires_below_max_instances() -> None:
    plan = plan_fires(every(10, max_instances=5, coalesce=False), s(35), free_slots=1)
    assert list(plan.fire_times) == [s(0)]
    assert plan.skipped == 3


def test_a_one_shot_in_the_past_runs_inside_its_grace() -> None:
    job = Job(id="once", func="m:f", trigger=DateTimeTrigger(s(0)), next_run_time=s(0), misfire_grace_time=60)
    plan = plan_fires(job, s(30))
    assert list(plan.fire_times) == [s(0)]
    assert plan.next_run_time is None
    assert plan.status is JobStatus.COMPLETED


def test_a_one_shot_past_its_grace_is_missed_and_completes() -> None:
    job = Job(id="once", func="m:f", trigger=DateTimeTrigger(s(0)), next_run_time=s(0), misfire_grace_time=60)
    plan = plan_fires(job, s(61))
    assert plan.fire_times == ()
    assert plan.missed == 1
    assert plan.status is JobStatus.COMPLETED


def test_a_trigger_that_ends_completes_the_job_after_its_last_fire() -> None:
    trigger = IntervalTrigger(seconds=10, start_date=T0, end_date=s(20))
    job = Job(id="j", func="m:f", trigger=trigger, next_run_time=s(20))
    plan = plan_fires(job, s(20))
    assert list(plan.fire_times) == [s(20)]
    assert plan.next_run_time is None
    assert plan.status is JobStatus.COMPLETED


def test_a_failed_job_keeps_its_status_while_it_still_fires() -> None:
    plan = plan_fires(every(10, status=JobStatus.FAILED), s(0))
    assert plan.status is JobStatus.FAILED
    assert list(plan.fire_times) == [s(0)]


def test_a_huge_backlog_without_coalesce_is_sent_in_bounded_chunks() -> None:
    job = every(1, coalesce=False, max_instances=5000)
    plan = plan_fires(job, s(5000))
    assert len(plan.fire_times) == MAX_FIRES_PER_PLAN
    assert plan.next_run_time == s(MAX_FIRES_PER_PLAN)


def test_a_job_years_behind_coalesces_to_its_latest_fire_without_walking_every_period() -> None:
    calls = 0
    trigger = IntervalTrigger(seconds=1, start_date=T0)
    original = trigger.next_fire_time

    def counting(after: datetime) -> datetime | None:
        nonlocal calls
        calls += 1
        return original(after)

    trigger.next_fire_time = counting  # type: ignore[method-assign]
    job = Job(id="j", func="m:f", trigger=trigger, next_run_time=T0)
    now = s(3 * 365 * 86400 + 0.5)
    plan = plan_fires(job, now)
    assert list(plan.fire_times) == [s(3 * 365 * 86400)]
    assert plan.next_run_time == s(3 * 365 * 86400 + 1)
    assert calls < MAX_FIRES_PER_PLAN + 200


def test_latest_fire_time_finds_the_last_cron_fire_before_now() -> None:
    trigger = CronTrigger("0 3 * * *")
    start = datetime(2020, 1, 1, 3, 0, tzinfo=UTC)
    now = datetime(2026, 3, 2, 2, 59, tzinfo=UTC)
    assert latest_fire_time(trigger, start, now) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_a_job_without_next_run_time_plans_nothing() -> None:
    plan = plan_fires(every(10, next_run_time=None), s(100))
    assert plan.fire_times == () and plan.next_run_time is None


@pytest.mark.parametrize(
    ("job", "window", "fires", "coalesced"),
    [
        (every(10), 15, [s(20), s(30)], 2),
        (every(10), 60, [s(0), s(10), s(20), s(30)], 0),
        (every(10), 3, [s(30)], 3),
        (every(10, misfire_grace_time=16), 60, [s(20), s(30)], 0),
        (every(10, coalesce=False), 3, [s(0), s(10), s(20), s(30)], 0),
    ],
    ids=[
        "an-outage-collapses-and-the-failover-gap-runs-fire-by-fire",
        "a-gap-inside-the-window-runs-every-fire-despite-coalesce",
        "no-fire-in-the-window-coalesces-to-the-latest",
        "misfire-grace-still-applies-inside-the-window",
        "no-coalesce-runs-everything-anyway",
    ],
)
def test_fires_inside_the_catch_up_window_are_never_coalesced(
    job: Job, window: float, fires: list[datetime], coalesced: int
) -> None:
    plan = plan_fires(job, s(35), catch_up_window=timedelta(seconds=window))
    assert list(plan.fire_times) == fires
    assert plan.coalesced == coalesced
    assert plan.next_run_time == s(40)


def _oracle(job: Job, now: datetime, window: timedelta) -> tuple[list[datetime], int, datetime | None]:
    """The policy table read directly: every fire time from the job's next run to now, one by one."""
    times: list[datetime] = []
    current = job.next_run_time
    while current is not None and current <= now:
        times.append(current)
        current = job.trigger.next_fire_time(current)
    grace = job.misfire_grace_time
    missed = [t for t in times if grace is not None and t < now - timedelta(seconds=grace)]
    kept = [t for t in times if t not in missed]
    if job.coalesce:
        old = [t for t in kept if t < now - window]
        recent = [t for t in kept if t >= now - window]
        kept = recent if recent else old[-1:]
    if job.running >= job.max_instances:
        kept = []
    return kept, len(missed), current


@given(
    period=st.integers(1, 120),
    behind=st.integers(0, 900),
    window=st.integers(0, 300),
    grace=st.one_of(st.none(), st.integers(0, 600)),
    coalesce=st.booleans(),
    running=st.integers(0, 2),
    max_instances=st.integers(1, 2),
)
def test_plan_fires_matches_a_direct_reading_of_the_policy(
    period: int, behind: int, window: int, grace: int | None, coalesce: bool, running: int, max_instances: int
) -> None:
    job = every(
        period, coalesce=coalesce, misfire_grace_time=grace, running=running, max_instances=max_instances
    )
    now = s(behind + 0.5)
    fires, missed, following = _oracle(job, now, timedelta(seconds=window))
    plan = plan_fires(job, now, catch_up_window=timedelta(seconds=window))
    assert list(plan.fire_times) == fires
    assert plan.missed == missed
    assert plan.next_run_time == following
