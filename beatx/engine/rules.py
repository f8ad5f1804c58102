"""The scheduling rules, as pure functions: misfire grace, catch-up and overlap.

:func:`plan_fires` looks at one due job and the time, and says which fires to send, how many
were missed or skipped, and when the job fires next. It reads no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from beatx.jitter import due_time, nominal_time
from beatx.jobs import CatchUp, Job, JobStatus, Overlap
from beatx.triggers.base import Trigger

__all__ = ["MAX_COUNT_WALK", "MAX_FIRES_PER_PLAN", "FirePlan", "latest_fire_time", "plan_fires"]

#: A job that is further behind than this many fires (``catchup="all"``, no grace limit)
#: sends this many now and the rest on the next ticks, so one job cannot stall a tick.
MAX_FIRES_PER_PLAN = 1000
#: Fires a plan does not run (missed, coalesced, not caught up) are counted at the cost of
#: one evaluation when the trigger can count them (a fixed period); otherwise they are
#: walked one by one up to this many, and the count stops there (a lower bound), so the
#: planning of a long outage never costs more than the fires it sends.
MAX_COUNT_WALK = 100

_TICK = timedelta(microseconds=1)
_SKIP = Overlap.SKIP


@dataclass(frozen=True, slots=True, kw_only=True)
class FirePlan:
    """What to do with one due job at one moment."""

    #: Scheduled times to dispatch, oldest first.
    fire_times: tuple[datetime, ...] = ()
    #: Fires later than the misfire grace time, not run.
    missed: int = 0
    #: An outage's fires merged into one run (``catchup="latest"`` or ``"earliest"``).
    coalesced: int = 0
    #: An outage's fires not run by its catch-up policy: older than ``catchup_window``,
    #: beyond ``catchup_limit``, or ``catchup="none"``. Counted as missed.
    not_caught_up: int = 0
    #: An outage's fires that run (in ``fire_times``).
    caught_up: int = 0
    #: When each fire of ``fire_times`` goes out, for a job with ``jitter`` (empty without).
    due_times: tuple[datetime, ...] = ()
    #: Fires not run because ``max_instances`` (or the global cap) runs were in flight.
    skipped: int = 0
    #: Scheduled times of the skipped fires (the first few), for events and logs.
    skipped_times: tuple[datetime, ...] = ()
    next_run_time: datetime | None = None
    status: JobStatus = JobStatus.ACTIVE
    #: True when every fire is held back by runs in flight and the caller allowed a wait:
    #: nothing is sent or skipped yet, and the job keeps its next run time.
    waiting: bool = False
    #: Fires kept for when a run ends (``overlap="buffer_one"`` / ``"buffer_all"``): the
    #: first of them is the job's next run (``next_run_time``), so they stay in the store.
    buffered: int = 0
    #: The runs in flight are to be revoked before ``fire_times`` go (``overlap=
    #: "cancel_other"`` / ``"terminate_other"``).
    cancel_running: bool = False


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
    held_since: datetime | None = None,
) -> FirePlan:
    """Decide what a due job does at ``now`` (the table in ``docs/concepts/rules.md``).

    1. Fires scheduled before ``now - misfire_grace_time`` are missed (counted, not run).
    2. Fires scheduled within ``catch_up_window`` of ``now`` each run, with their own time,
       whatever the catch-up policy says: they fell due while leadership moved or a tick ran
       late, which is not an outage (the beat passes the lease timeout plus a claim's
       lifetime).
    3. The older late fires are an outage's, and ``job.catchup`` decides: those before
       ``now - catchup_window`` are not caught up (counted as missed); of the rest,
       ``latest`` runs one at the latest of them (none when a recent fire follows: it stands
       for them), ``earliest`` one at the earliest, ``all`` each of them (the newest
       ``catchup_limit`` when set, the older ones not caught up; at most
       :data:`MAX_FIRES_PER_PLAN` per plan) and ``none`` none of them.
    4. ``max_instances`` counts runs in flight: when ``job.running`` reached it, the plan
       waits (``wait``: the engine holds the job a short while for a run to end, so a burst
       of catch-up runs does not cost the next fire) or, when the wait is over, every fire
       is skipped (counted); otherwise every fire of the plan is sent, except after such a
       wait (``held_since``: when the wait began): then the fires that waited go, every one
       of them (after a failover, each late fire: ``max_instances`` counts runs, never the
       fires of one plan, and with them every fire due since); when one fire waited, those
       that came due while the run still went on are skipped (not those due after it ended,
       ``job.last_finished_at``). That is ``overlap="skip"``; the other overlap policies:
       ``buffer_all`` sends the oldest fires that fit under ``max_instances`` and keeps the
       others (the first of them is the job's next run), sent as runs end; ``buffer_one``
       sends the newest that fit and skips the older ones, and with no room keeps the newest
       as the job's next run, sent when a run ends; ``cancel_other`` / ``terminate_other`` do not wait:
       the newest ``max_instances`` fires go and the runs in flight are to be revoked
       (``cancel_running``); ``allow_all`` sends every fire, whatever runs. At most
       ``free_slots`` (the room left under ``max_concurrent_jobs``) are sent.
    5. The job's next run time is the first fire time after the last one considered; a
       trigger with none left makes the job COMPLETED, and so does the fire that reaches
       ``max_runs`` (fires sent in the job's life, ``total_run_count``).

    Apart from ``catchup="all"``, the plan jumps over the fires it does not run (a few dozen
    trigger evaluations for a job years behind) and counts them as
    :data:`MAX_COUNT_WALK` says.

    A fire time at or before ``job.last_run_time`` is never planned again (an edit that put
    the job back onto a fire it already ran).

    With ``jitter``, ``job.next_run_time`` is the due time of a fire (see
    :mod:`beatx.jitter`): the plan works on nominal times, sends a fire only once its due
    time has come, and returns the due time of the next one.

    ``job.next_run_time`` must be set; a job not yet due gets an empty plan.
    """
    first = job.next_run_time
    if first is None or first > now:
        return FirePlan(next_run_time=first, status=job.status)
    trigger = job.trigger
    if job.jitter:
        first = nominal_time(trigger, first, job.jitter)
    if job.last_run_time is not None and first <= job.last_run_time:
        # Sent already (an edit rescheduled the job onto a fire it had run): a job never
        # fires at or before its last run.
        first = trigger.next_fire_time(job.last_run_time)
        if first is None or first > now:
            status = JobStatus.COMPLETED if first is None and job.status.schedulable else job.status
            return FirePlan(next_run_time=due_time(job, first), status=status)
    # The fires considered are those up to ``horizon``: ``now``, or just before the latest
    # fire when its jittered due time is still ahead.
    horizon = _due_horizon(job, first, now) if job.jitter else now

    # Lateness counts from a fire's due time (its nominal time without jitter): each bound
    # below is turned into the first fire time due at or after it.
    missed = 0
    candidate: datetime | None = first
    if job.misfire_grace_time is not None:
        cutoff = now - timedelta(seconds=job.misfire_grace_time)
        if first < cutoff:
            candidate = _first_due_from(job, cutoff)
            missed = _count_fires(trigger, first, horizon + _TICK if candidate is None else candidate)

    catch_up = _CatchUpPlan()
    if candidate is not None and candidate < now - catch_up_window:
        late_end = _first_due_from(job, now - catch_up_window)
        late_end = horizon + _TICK if late_end is None else min(late_end, horizon + _TICK)
        if candidate < late_end:
            catch_up = _plan_outage(job, candidate, now, late_end, horizon)
            candidate = catch_up.resume_at
    eligible = list(catch_up.fire_times)
    next_run: datetime | None = candidate
    if candidate is not None and candidate <= horizon:
        recent, next_run = _fires_until(trigger, candidate, horizon, MAX_FIRES_PER_PLAN - len(eligible))
        eligible += recent

    held = _apply_overlap(job, eligible, next_run, wait=wait, held_since=held_since)
    if held is None:
        return FirePlan(next_run_time=job.next_run_time, status=job.status, waiting=True)
    eligible, next_run, skipped_times, kept = held.fire_times, held.next_run, held.skipped, held.kept
    if free_slots is not None and len(eligible) > max(free_slots, 0):
        skipped_times += tuple(eligible[max(free_slots, 0) :])
        eligible = eligible[: max(free_slots, 0)]

    # max_runs: the fire that reaches it is the job's last.
    remaining = job.remaining_runs
    last_run = remaining is not None and len(eligible) >= remaining
    if last_run:
        eligible, next_run = eligible[:remaining], None
    status = job.status
    if next_run is None and status.schedulable:
        status = JobStatus.COMPLETED
    return FirePlan(
        fire_times=tuple(eligible),
        missed=missed,
        coalesced=catch_up.coalesced,
        not_caught_up=catch_up.not_caught_up,
        caught_up=len(catch_up.fire_times),
        skipped=len(skipped_times),
        skipped_times=skipped_times[:10],
        next_run_time=due_time(job, next_run),
        status=status,
        due_times=tuple(due_time(job, t) or t for t in eligible) if job.jitter else (),
        buffered=len(kept) if kept and next_run is not None else 0,
        cancel_running=held.busy and bool(eligible) and job.overlap.cancels,
    )


@dataclass(slots=True, kw_only=True)
class _Held:
    """What the overlap policy made of a plan's fires (step 4 of :func:`plan_fires`)."""

    fire_times: list[datetime]
    next_run: datetime | None
    skipped: tuple[datetime, ...] = ()
    #: Fires kept in the store for when a run ends (the buffer policies).
    kept: tuple[datetime, ...] = ()
    #: ``max_instances`` runs were in flight.
    busy: bool = False


def _apply_overlap(
    job: Job, eligible: list[datetime], next_run: datetime | None, *, wait: bool, held_since: datetime | None
) -> _Held | None:
    """Step 4 of :func:`plan_fires`: the fires ``eligible`` (due, oldest first) under the
    job's overlap policy and ``max_instances``; None when the plan waits for a run to end."""
    overlap = job.overlap
    held = _Held(fire_times=eligible, next_run=next_run)
    if overlap is _SKIP:  # the default, first: the beat's hot path
        if job.running >= job.max_instances and eligible:
            if wait:
                return None
            held.skipped, held.fire_times = tuple(eligible), []
        elif held_since is not None and sum(1 for at in eligible if at <= held_since) == 1:
            # After one fire waited for a run: it goes, and so does a fire that came due once
            # the run had ended (seen a little later by the beat); those that came due while
            # the run still went on are skipped. (When several fires waited, a failover's
            # or an outage's, every fire due goes, as it would have without the wait.)
            ended = job.last_finished_at
            during = tuple(at for at in eligible if at > held_since and (ended is None or at <= ended))
            if during:
                held.skipped = during
                held.fire_times = [at for at in eligible if at not in during]
        return held
    if overlap is Overlap.ALLOW_ALL:
        return held
    held.busy = job.running >= job.max_instances and bool(eligible)
    if held.busy and wait and not overlap.cancels:
        return None
    room = max(job.max_instances - job.running, 0)
    if overlap is Overlap.BUFFER_ALL:
        # The fires beyond the room wait in the store, the oldest as the job's next run.
        if len(eligible) > room:
            held.fire_times, held.kept = eligible[:room], tuple(eligible[room:])
            held.next_run = held.kept[0]
    elif overlap is Overlap.BUFFER_ONE:
        # The newest fires that fit go, the older ones are skipped; with no room, the newest
        # waits in the store as the job's next run.
        if len(eligible) > room:
            cut = len(eligible) - max(room, 1)
            held.skipped, held.fire_times = tuple(eligible[:cut]), eligible[cut:]
            if not room:
                held.kept, held.fire_times = tuple(held.fire_times), []
                held.next_run = held.kept[0]
    elif held.busy and len(eligible) > job.max_instances:
        # cancel_other / terminate_other: the newest fires that fit replace the runs.
        cut = len(eligible) - job.max_instances
        held.skipped, held.fire_times = tuple(eligible[:cut]), eligible[cut:]
    return held


def _first_due_from(job: Job, bound: datetime) -> datetime | None:
    """The first fire time of ``job`` whose due time is at or after ``bound``: the first fire
    time at or after it, or, with ``jitter``, the latest one before it if its delay carries it
    over (only the latest can: a delay is shorter than the gap to the next fire)."""
    trigger = job.trigger
    if job.jitter:
        start = trigger.next_fire_time(bound - timedelta(seconds=job.jitter) - _TICK)
        if start is not None and start < bound:
            last = latest_fire_time(trigger, start, bound - _TICK)
            due = due_time(job, last)
            if due is not None and due >= bound:
                return last
    return trigger.next_fire_time(bound - _TICK)


def _due_horizon(job: Job, first: datetime, now: datetime) -> datetime:
    """``now``, or just before the latest fire time at or before it when that fire's jittered
    due time is after ``now`` (only the latest can be: a delay is shorter than the gap)."""
    trigger = job.trigger
    following = trigger.next_fire_time(first)
    latest = first if following is None or following > now else latest_fire_time(trigger, following, now)
    due = due_time(job, latest)
    return latest - _TICK if due is not None and due > now else now


@dataclass(frozen=True, slots=True)
class _CatchUpPlan:
    """What an outage's late fires do: those that run, how many were merged into a run or
    not caught up, and the first fire after the outage (the first recent one, or later)."""

    fire_times: tuple[datetime, ...] = ()
    coalesced: int = 0
    not_caught_up: int = 0
    resume_at: datetime | None = None


def _plan_outage(
    job: Job, first: datetime, now: datetime, recent_from: datetime, horizon: datetime
) -> _CatchUpPlan:
    """The catch-up of the late fires in ``[first, recent_from)`` (``first`` is one); the
    fires after them are considered up to ``horizon``."""
    trigger = job.trigger
    not_caught_up = 0
    start: datetime | None = first
    if job.catchup_window is not None and first < now - timedelta(seconds=job.catchup_window):
        window_from = _first_due_from(job, now - timedelta(seconds=job.catchup_window))
        window_from = recent_from if window_from is None else min(window_from, recent_from)
        if first < window_from:
            not_caught_up = _count_fires(trigger, first, window_from)
            start = trigger.next_fire_time(window_from - _TICK)
    # The first fire at or after the outage: a recent one (<= horizon), a later one or None.
    after = trigger.next_fire_time(recent_from - _TICK)
    if start is None or start >= recent_from:
        return _CatchUpPlan(not_caught_up=not_caught_up, resume_at=after)
    policy = job.catchup_policy
    if policy is CatchUp.NONE:
        not_caught_up += _count_fires(trigger, start, recent_from)
        return _CatchUpPlan(not_caught_up=not_caught_up, resume_at=after)
    if policy is CatchUp.LATEST:
        if after is not None and after <= horizon:
            # The first recent fire runs for the outage's fires.
            return _CatchUpPlan(
                coalesced=_count_fires(trigger, start, recent_from),
                not_caught_up=not_caught_up,
                resume_at=after,
            )
        latest = latest_fire_time(trigger, start, horizon)
        return _CatchUpPlan(
            fire_times=(latest,),
            coalesced=_count_fires(trigger, start, latest),
            not_caught_up=not_caught_up,
            resume_at=trigger.next_fire_time(latest),
        )
    if policy is CatchUp.EARLIEST:
        following = trigger.next_fire_time(start)
        merged = (
            0
            if following is None or following >= recent_from
            else _count_fires(trigger, following, recent_from)
        )
        return _CatchUpPlan(
            fire_times=(start,), coalesced=merged, not_caught_up=not_caught_up, resume_at=after
        )
    # CatchUp.ALL
    if job.catchup_limit is None:
        fires, following = _fires_until(trigger, start, recent_from - _TICK, MAX_FIRES_PER_PLAN)
    else:
        newest, older = _last_fires(trigger, start, recent_from, job.catchup_limit)
        not_caught_up += older
        fires, following = _fires_until(trigger, newest, recent_from - _TICK, MAX_FIRES_PER_PLAN)
    if following is not None and following < recent_from:
        # More late fires than one plan sends: the rest go on the next ticks.
        return _CatchUpPlan(fire_times=tuple(fires), not_caught_up=not_caught_up, resume_at=following)
    return _CatchUpPlan(fire_times=tuple(fires), not_caught_up=not_caught_up, resume_at=after)


def _last_fires(trigger: Trigger, start: datetime, end: datetime, count: int) -> tuple[datetime, int]:
    """The earliest of the last ``count`` fire times in ``[start, end)`` (``start`` is one),
    and how many come before it. Searches backwards from ``end`` in doubling windows, so it
    costs about the fires it returns, not the fires it passes."""
    window = timedelta(seconds=1)
    while True:
        probe = end - window
        if probe <= start:
            fires, _ = _fires_until(trigger, start, end - _TICK, None)
            if len(fires) <= count:
                return start, 0
            return fires[-count], _count_fires(trigger, start, fires[-count])
        found = trigger.next_fire_time(probe - _TICK)
        if found is not None and found < end:
            fires, _ = _fires_until(trigger, found, end - _TICK, None)
            if len(fires) >= count:
                return fires[-count], _count_fires(trigger, start, fires[-count])
        window *= 2


def _fires_until(
    trigger: Trigger, first: datetime, until: datetime, limit: int | None
) -> tuple[list[datetime], datetime | None]:
    """The fire times from ``first`` to ``until`` (both included; at most ``limit``), and the
    fire time after the last of them."""
    fires: list[datetime] = []
    following: datetime | None = first
    while (limit is None or len(fires) < limit) and following is not None and following <= until:
        fires.append(following)
        following = trigger.next_fire_time(following)
    return fires, following


def _count_fires(trigger: Trigger, first: datetime, until: datetime) -> int:
    """How many fire times lie in ``[first, until)`` (``first`` is one): counted by the
    trigger when it can, else walked up to :data:`MAX_COUNT_WALK`."""
    if first >= until:
        return 0
    counted = trigger.count_fire_times(first, until)
    if counted is not None:
        return counted
    count = 0
    current: datetime | None = first
    while current is not None and current < until and count < MAX_COUNT_WALK:
        count += 1
        current = trigger.next_fire_time(current)
    return count
