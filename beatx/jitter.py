"""Deterministic jitter: each fire of a job with ``jitter`` goes out a little after its
nominal time, by a delay derived from (job id, nominal time).

The delay is forward only and always shorter than the gap to the job's next nominal fire, so
a job's fires keep their order and the nominal time of a fire can be found back from its due
time: it is the latest fire time at or before it (:func:`nominal_time`). Stores keep the due
time as the job's next run (the beat wakes for it, previews show it); the fire keeps its
nominal time, from which its task id derives, so a failover re-sends the same fire with the
same id and the same delay.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from beatx.triggers.base import Trigger

if TYPE_CHECKING:
    from beatx.jobs import Job

__all__ = ["due_time", "jitter_delay", "nominal_time"]

_MICROSECOND = timedelta(microseconds=1)


def jitter_delay(job_id: str, nominal: datetime, jitter: float, following: datetime | None) -> timedelta:
    """The delay of the fire of ``job_id`` at ``nominal``: in ``[0, min(jitter, following -
    nominal))`` whole microseconds, the same for the same (job id, nominal time). ``following``
    is the job's next nominal fire (None: there is none)."""
    span = round(jitter * 1_000_000)
    if following is not None:
        span = min(span, (following - nominal) // _MICROSECOND)
    if span <= 0:
        return timedelta(0)
    micros = round(nominal.timestamp() * 1_000_000)
    digest = hashlib.sha256(f"{job_id}\x00{micros}".encode()).digest()
    return timedelta(microseconds=(int.from_bytes(digest[:8], "big") * span) >> 64)


def due_time(job: Job, nominal: datetime | None) -> datetime | None:
    """When the fire of ``job`` at ``nominal`` goes out: ``nominal`` plus its delay (none
    without ``jitter``)."""
    if nominal is None or not job.jitter:
        return nominal
    return nominal + jitter_delay(job.id, nominal, job.jitter, job.trigger.next_fire_time(nominal))


def nominal_time(trigger: Trigger, due: datetime, jitter: float) -> datetime:
    """The nominal time of the fire due at ``due``: the latest fire time of ``trigger`` at or
    before it, looked for at most ``jitter`` seconds back in doubling windows (a few trigger
    evaluations). ``due`` itself when no fire time lies there (it is not a jittered time)."""
    limit = timedelta(seconds=jitter)
    window = min(timedelta(seconds=1), limit)
    while True:
        found = trigger.next_fire_time(due - window - _MICROSECOND)
        if found is not None and found <= due:
            while (following := trigger.next_fire_time(found)) is not None and following <= due:
                found = following
            return found
        if window >= limit:
            return due
        window = min(window * 2, limit)
