"""Which runs of a job are in flight, for the overlap policies that hold or revoke fires.

A store counts the runs workers reported started (``Job.running``). A fire sent but not yet
picked up by a worker is not among them, yet it will run: the policies that keep fires for a
run's end (``buffer_one``, ``buffer_all``) or revoke the runs in flight (``cancel_other``,
``terminate_other``) also count the fires of the run ledger still ``sent``, for
:data:`SENT_IN_FLIGHT` after they were sent, so a buffered fire never goes out while the fire
before it waits in the queue. Pure: the caller reads the ledger (``JobStore.job_runs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from beatx.jobs import Overlap
from beatx.ledger import RunOutcome, RunRecord

__all__ = ["LEDGER_READ", "MANUAL_OVERLAPS", "SENT_IN_FLIGHT", "InFlight", "in_flight", "manual_fire"]

#: How long a fire the ledger shows ``sent`` (no worker reported its start) counts as in
#: flight: a worker that never reports (not hooked, the message lost) holds a buffered fire
#: back this long at most.
SENT_IN_FLIGHT = timedelta(seconds=60)
#: How many of a job's latest ledger records are read to find its runs in flight.
LEDGER_READ = 20

_GOING = (RunOutcome.RUNNING, RunOutcome.RETRIED)


@dataclass(frozen=True, slots=True)
class InFlight:
    """A job's runs in flight: how many, and the task ids the ledger knows (to revoke)."""

    count: int
    task_ids: tuple[str, ...]


def in_flight(running: int, records: Iterable[RunRecord], now: datetime) -> InFlight:
    """The runs in flight of a job whose store counts ``running`` started runs, with its
    latest ledger ``records``: those plus the fires ``sent`` within :data:`SENT_IN_FLIGHT`
    of ``now``. The task ids are those of the records running, retried or sent that recently."""
    since = now - SENT_IN_FLIGHT
    sent: list[str] = []
    going: list[str] = []
    for record in records:
        if record.outcome is RunOutcome.SENT and record.sent_at is not None and record.sent_at >= since:
            sent.append(record.task_id)
        elif record.outcome in _GOING:
            going.append(record.task_id)
    return InFlight(running + len(sent), tuple(going + sent))


#: The overlap policies a fire sent outside the schedule (``run_job_now``) takes: it has no
#: place in the schedule to wait in, so the buffer policies do not apply to it.
MANUAL_OVERLAPS = (Overlap.SKIP, Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER, Overlap.ALLOW_ALL)


def manual_fire(overlap: Overlap, running: int, max_instances: int) -> str:
    """What a fire sent now outside the schedule does, by the overlap row of the policy table
    (``running``: the runs in flight, as :func:`in_flight` counts them): ``"send"``,
    ``"skip"`` or ``"cancel"`` (revoke the runs in flight, then send)."""
    if overlap is Overlap.ALLOW_ALL or running < max_instances:
        return "send"
    return "cancel" if overlap.cancels else "skip"
