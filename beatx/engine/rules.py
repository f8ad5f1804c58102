"""The scheduling rules, as pure functions: misfire grace, coalescing and overlap.

:func:`plan_fires` looks at one due job and the time, and says which fires to send, how many
were missed or skipped, and when the job fires next. It reads no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from beatx.jobs import Job, JobStatus
from beatx.triggers.base import Trigger

__all__ = ["MAX_FIRES_PER_PLAN", "MAX_MISSED_COUNTED", "FirePlan", "latest_fire_time", "plan_fires"]

#: A job that is further behind than this many fires (coalesce off, no grace limit) sends
#: this many now and the rest on the next ticks, so one job cannot stall a tick.
MAX_FIRES_PER_PLAN = 1000
#: Missed fires are counted one by one up to this many per plan; past it the count stops
#: there and the job jumps straight to its next eligible fire.
MAX_MISSED_COUNTED = 100_000

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FirePlan:
    """What to do with one due job at one moment."""

    #: Scheduled times to dispatch, oldest first.
    fire_times: tuple[datetime, ...] = ()
    #: Fires later than the misfire grace time, not run.
    missed: int = 0
    #: Fires merged into a later one by coalescing (counted up to :data:`MAX_FIRES_PER_PLAN`).
    coalesced: int = 0
    #: Fires not run because ``max_instances`` (or the global cap) runs were in flight.
    skipped: int = 0
    #: Scheduled times of the skipped fires (the first few), for events and logs.
    skipped_times: tuple[datetime, ...] = ()
    next_run_time: datetime | None = None
    status: JobStatus = JobStatus.ACTIVE
    #: True when every fire is held back by runs in flight and the caller allowed a wait:
    #: nothing is sent or skipped yet, and the job keeps its next run time.
    waiting: bool = False


def latest_fire_time(trigger: Trigger, start: datetime, now: datetime) -> datetime:
    """The latest fire time of ``trigger`` in ``[start, now]``, where ``start`` is one.

    Searches backwards from ``now`` in doubling windows, so a job years behind costs a few
    dozen trigger evaluations rather than one per missed fire.
    """
    window = timedelta(seconds=1)
    while True:
        probe_from = now - window
        if probe_from < start:
            candidate = start
        else:
            found = trigger.next_fire_time(probe_from - _TICK)
            if found is None or found > now:
                window *= 2
                continue
            candidate = found
        while (following := trigger.next_fire_time(candidate)) is not None and following <= now:
            candidate = following
        return candidate


def plan_fires(
    job: Job,
    now: datetime,
    *,
    free_slots: int | None = None,
    catch_up_window: timedelta = timedelta(0),
    wait: bool = False,
    held_back: bool = False,
) -> FirePlan:
    """Decide what a due job does at ``now``.

    1. Fires scheduled before ``now - misfire_grace_time`` are missed (counted, not run).
    2. Fires scheduled within ``catch_up_window`` of ``now`` each run, with their own time,
       whatever ``coalesce`` says: they fell due while leadership moved or a tick ran late,
       which is not an outage (the beat passes the lease timeout plus a claim's lifetime).
    3. With ``coalesce``, the older late fires (a real outage) collapse into one run at the
       latest of them, or into the first recent fire when there is one; without it, each
       runs (at most :data:`MAX_FIRES_PER_PLAN` per plan).
    4. ``max_instances`` counts runs in flight: when ``job.running`` reached it, the plan
       waits (``wait``: the engine holds the job a short while for a run to end, so a burst
       of catch-up runs does not cost the next fire) or, when the wait is over, every fire
       is skipped (counted); otherwise every fire of the plan is sent, except after such a
       wait (``held_back``): then only the newest ``max_instances - running`` go and the
       older ones are skipped. At most ``free_slots`` (the room left under
       ``max_concurrent_jobs``) are sent.
    5. The job's next run time is the first fire time after the last one considered; a
       trigger with none left makes the job COMPLETED.

    A fire time at or before ``job.last_run_time`` is never planned again (an edit that put
    the job back onto a fire it already ran).

    ``job.next_run_time`` must be set; a job not yet due gets an empty plan.
    """
    first = job.next_run_time
    if first is None or first > now:
        return FirePlan(next_run_time=first, status=job.status)
    trigger = job.trigger
    if job.last_run_time is not None and first <= job.last_run_time:
        # Sent already (an edit rescheduled the job onto a fire it had run): a job never
        # fires at or before its last run.
        first = trigger.next_fire_time(job.last_run_time)
        if first is None or first > now:
            status = JobStatus.COMPLETED if first is None and job.status.schedulable else job.status
            return FirePlan(next_run_time=first, status=status)

    missed = 0
    candidate: datetime | None = first
    if job.misfire_grace_time is not None:
        cutoff = now - timedelta(seconds=job.misfire_grace_time)
        while candidate is not None and candidate < cutoff:
            missed += 1
            if missed >= MAX_MISSED_COUNTED:
                candidate = trigger.next_fire_time(cutoff - _TICK)
                break
            candidate = trigger.next_fire_time(candidate)

    eligible: list[datetime] = []
    coalesced = 0
    next_run: datetime | None
    recent_from = now - catch_up_window
    if candidate is None or candidate > now:
        next_run = candidate
    elif job.coalesce and candidate < recent_from:
        # An outage: its fires collapse into one, then the recent ones each run.
        recent = trigger.next_fire_time(recent_from - _TICK)
        if recent is not None and recent <= now:
            coalesced = _count_fires(trigger, candidate, recent)
            eligible, next_run = _fires_until(trigger, recent, now)
        else:
            latest = latest_fire_time(trigger, candidate, now)
            coalesced = _count_fires(trigger, candidate, latest)
            eligible, next_run = [latest], trigger.next_fire_time(latest)
    else:
        eligible, next_run = _fires_until(trigger, candidate, now)

    skipped_times: tuple[datetime, ...] = ()
    if job.running >= job.max_instances and eligible:
        if wait:
            return FirePlan(next_run_time=job.next_run_time, status=job.status, waiting=True)
        skipped_times, eligible = tuple(eligible), []
    room = max(job.max_instances - job.running, 0)
    if held_back and len(eligible) > room:
        skipped_times, eligible = tuple(eligible[: len(eligible) - room]), eligible[len(eligible) - room :]
    if free_slots is not None and len(eligible) > max(free_slots, 0):
        skipped_times += tuple(eligible[max(free_slots, 0) :])
        eligible = eligible[: max(free_slots, 0)]

    status = job.status
    if next_run is None and status.schedulable:
        status = JobStatus.COMPLETED
    return FirePlan(
        fire_times=tuple(eligible),
        missed=missed,
        coalesced=coalesced,
        skipped=len(skipped_times),
        skipped_times=skipped_times[:10],
        next_run_time=next_run,
        status=status,
    )


def _fires_until(trigger: Trigger, first: datetime, now: datetime) -> tuple[list[datetime], datetime | None]:
    """The fire times from ``first`` to ``now`` (at most :data:`MAX_FIRES_PER_PLAN`), and the
    fire time after the last of them."""
    fires: list[datetime] = []
    following: datetime | None = first
    while len(fires) < MAX_FIRES_PER_PLAN and following is not None and following <= now:
        fires.append(following)
        following = trigger.next_fire_time(following)
    return fires, following


def _count_fires(trigger: Trigger, first: datetime, until: datetime) -> int:
    """How many fire times lie in ``[first, until)``, counted up to :data:`MAX_FIRES_PER_PLAN`."""
    count = 0
    current: datetime | None = first
    while current is not None and current < until and count < MAX_FIRES_PER_PLAN:
        count += 1
        current = trigger.next_fire_time(current)
    return count
