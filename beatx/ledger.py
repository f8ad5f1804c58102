"""The run ledger: one record per fire of a job, from the beat's send to the worker's end.

Every store keeps the latest runs of each job (:meth:`beatx.stores.base.JobStorage.job_runs`),
bounded by count and age per job. A record is written by several parties, in any order:

- the beat's write-back: ``sent`` (nominal time, task id, sent at), and one record per
  write-back that ``missed`` or ``skipped`` fires, or ``caught_up`` an outage's (the count and
  the reason);
- ``JobManager.run_job_now``: ``sent``, like the beat's;
- the worker: ``running`` (started, worker), then how it ended: ``succeeded``, ``failed``
  (the error), ``retried`` (the run goes on under the same task id), ``revoked``,
  ``rejected``, ``unknown_task`` (no worker has registered the task).

:func:`merge` is the one rule that folds those writes into a record, whatever order they
arrive in: a later stage never loses to an earlier one (a ``sent`` written after the worker's
end keeps the end).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DEFAULT_RUN_HISTORY",
    "DEFAULT_RUN_HISTORY_DAYS",
    "RunOutcome",
    "RunRecord",
    "merge",
    "newest_first",
    "summaries",
    "summary_task_id",
]

#: How many runs each job keeps by default (memory and Redis stores; the Django store keeps
#: what ``beatx_prune_runs`` leaves).
DEFAULT_RUN_HISTORY = 20
#: How many days a run is kept by default (memory and Redis stores).
DEFAULT_RUN_HISTORY_DAYS = 7.0


class RunOutcome(enum.StrEnum):
    """What became of one fire (a run record's ``outcome``).

    ``SENT`` and ``RUNNING`` are on the way; ``RETRIED`` means the task asked for a retry and
    runs again under the same task id; the others are ends.
    """

    SENT = "sent"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    REVOKED = "revoked"
    REJECTED = "rejected"
    UNKNOWN_TASK = "unknown_task"
    MISSED = "missed"
    SKIPPED = "skipped"
    CAUGHT_UP = "caught_up"

    @property
    def stage(self) -> int:
        """0 sent, 1 in flight (running, retried), 2 an end: a write of a lower stage never
        replaces a higher one in :func:`merge`."""
        if self is RunOutcome.SENT:
            return 0
        if self in (RunOutcome.RUNNING, RunOutcome.RETRIED):
            return 1
        return 2

    @property
    def is_error(self) -> bool:
        """Whether this end counts as a failure of the job (its status turns FAILED)."""
        return self in (RunOutcome.FAILED, RunOutcome.REJECTED, RunOutcome.UNKNOWN_TASK)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One fire of one job, as far as it is known."""

    job_id: str
    task_id: str
    outcome: RunOutcome
    #: The fire's nominal time (None for a missed/skipped summary or a run started elsewhere).
    scheduled_at: datetime | None = None
    sent_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Seconds the run took, as the worker measured it.
    duration: float | None = None
    #: The worker's name (Celery's node name, ``celery@host``).
    worker: str | None = None
    #: ``"ExcType: message"`` of a failure, the reason of a retry, the task of an unknown task.
    error: str | None = None
    #: Why fires were skipped or missed (``skipped`` / ``missed`` records).
    reason: str | None = None
    #: How many times the task was retried.
    retries: int = 0

    @property
    def lateness(self) -> float | None:
        """Seconds from the nominal time to the send, or None if either is unknown."""
        if self.sent_at is None or self.scheduled_at is None:
            return None
        return (self.sent_at - self.scheduled_at).total_seconds()

    @property
    def when(self) -> datetime | None:
        """The record's first known moment (its nominal time, else sent, started, finished)."""
        return self.scheduled_at or self.sent_at or self.started_at or self.finished_at

    @property
    def last_seen(self) -> datetime | None:
        """The record's last known moment (finished, else started, sent, nominal)."""
        return self.finished_at or self.started_at or self.sent_at or self.scheduled_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (times in ISO 8601), as ``beatx jobs runs --json`` prints."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "job_id": self.job_id,
            "task_id": self.task_id,
            "outcome": self.outcome.value,
            "scheduled_at": iso(self.scheduled_at),
            "sent_at": iso(self.sent_at),
            "lateness": self.lateness,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": self.duration,
            "worker": self.worker,
            "error": self.error,
            "reason": self.reason,
            "retries": self.retries,
        }


def merge(current: RunRecord | None, update: RunRecord) -> RunRecord:
    """``current`` with what ``update`` (a later write about the same task id) knows.

    Fields ``update`` sets replace the current ones; its outcome replaces the current one
    unless it is of an earlier stage (see :attr:`RunOutcome.stage`). A success clears the
    error a retry left.
    """
    if current is None:
        return update
    outcome = update.outcome if update.outcome.stage >= current.outcome.stage else current.outcome
    error = update.error if update.error is not None else current.error
    if update.outcome is RunOutcome.SUCCEEDED and outcome is RunOutcome.SUCCEEDED:
        error = None
    return replace(
        current,
        outcome=outcome,
        scheduled_at=update.scheduled_at or current.scheduled_at,
        sent_at=current.sent_at or update.sent_at,
        started_at=update.started_at or current.started_at,
        finished_at=update.finished_at or current.finished_at,
        duration=update.duration if update.duration is not None else current.duration,
        worker=update.worker or current.worker,
        error=error,
        reason=update.reason or current.reason,
        retries=max(current.retries, update.retries),
    )


def newest_first(
    records: list[RunRecord], *, limit: int, now: datetime, max_age: timedelta | None
) -> list[RunRecord]:
    """``records`` newest first (by :attr:`RunRecord.when`), without those last seen before
    ``now - max_age``, at most ``limit``."""
    if max_age is not None:
        cutoff = now - max_age
        records = [r for r in records if (r.last_seen or now) >= cutoff]
    records.sort(key=lambda r: (r.when.timestamp() if r.when else 0.0, r.task_id), reverse=True)
    return records[: max(limit, 0)]


_SUMMARY_NAMESPACE = uuid.UUID("5b0f2c1e-3a4d-4c8e-9f1a-6d2e7b8c9a01")


def summary_task_id(job_id: str, outcome: RunOutcome, claim: str | None, at: datetime) -> str:
    """The id of a ``missed`` / ``skipped`` record of one write-back: the same for a
    write-back retried (same claim), so a retry never records it twice."""
    key = claim if claim else at.isoformat()
    return str(uuid.uuid5(_SUMMARY_NAMESPACE, f"{job_id}\x00{outcome.value}\x00{key}"))


def summaries(
    job_id: str,
    *,
    claim: str | None,
    at: datetime,
    missed: int,
    skipped: int,
    caught_up: int = 0,
    coalesced: int = 0,
) -> list[RunRecord]:
    """The ``missed``, ``skipped`` and ``caught_up`` records of one write-back (none when
    every count is 0). ``caught_up``: an outage's late fires this write-back sent (its catch-up
    policy's); ``coalesced``: the late fires merged into them (or into the first fire after the
    outage)."""
    records = []
    if caught_up or coalesced:
        records.append(
            RunRecord(
                job_id=job_id,
                task_id=summary_task_id(job_id, RunOutcome.CAUGHT_UP, claim, at),
                outcome=RunOutcome.CAUGHT_UP,
                sent_at=at,
                reason=f"outage caught up: {caught_up} late fire(s) sent, {coalesced} coalesced into them",
            )
        )
    if missed:
        records.append(
            RunRecord(
                job_id=job_id,
                task_id=summary_task_id(job_id, RunOutcome.MISSED, claim, at),
                outcome=RunOutcome.MISSED,
                sent_at=at,
                reason=f"{missed} fire(s) not sent: later than the misfire grace time or the catch-up policy",
            )
        )
    if skipped:
        records.append(
            RunRecord(
                job_id=job_id,
                task_id=summary_task_id(job_id, RunOutcome.SKIPPED, claim, at),
                outcome=RunOutcome.SKIPPED,
                sent_at=at,
                reason=f"{skipped} fire(s) skipped: max_instances (or max_concurrent_jobs) runs were in flight",
            )
        )
    return records
