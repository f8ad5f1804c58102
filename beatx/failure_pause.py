"""``pause_after_failures``: a job pauses itself after that many consecutive failed runs.

Whatever records a run's end (the Celery worker hooks, the in-process executor) calls
:func:`pause_if_failing` after a run ended in an error. The failures are counted from the
job's run ledger (``JobStore.job_runs``), newest first: runs that ended in an error
(:attr:`~beatx.ledger.RunOutcome.is_error`) until one that succeeded. Runs in flight,
revoked runs and the missed / skipped summaries neither count nor break the streak. The
count reaches at most the runs the ledger keeps (memory and Redis stores: ``run_history``,
20 by default).

The pause is a management write (``JobManager.pause_job``: audit log, change notification)
with ``paused_by="beatx"`` and a note that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from beatx.clock import Clock
from beatx.ledger import RunOutcome, RunRecord
from beatx.stores.base import JobStore

__all__ = ["PAUSED_BY", "consecutive_failures", "pause_if_failing"]

logger = logging.getLogger("beatx.failure_pause")

#: The ``paused_by`` of a job paused by its failures.
PAUSED_BY = "beatx"

_NEUTRAL = (RunOutcome.REVOKED, RunOutcome.MISSED, RunOutcome.SKIPPED, RunOutcome.CAUGHT_UP)


def consecutive_failures(records: Iterable[RunRecord]) -> int:
    """How many of ``records`` (newest first) ended in an error before the newest success."""
    count = 0
    for record in records:
        if record.outcome.stage < 2 or record.outcome in _NEUTRAL:
            continue
        if not record.outcome.is_error:
            break
        count += 1
    return count


def pause_if_failing(store: JobStore, job_id: str, *, clock: Clock | None = None) -> bool:
    """Pause ``job_id`` if its ``pause_after_failures`` latest ended runs all failed.
    Returns whether this call paused it."""
    from beatx.manager import JobManager

    job = store.get_job(job_id)
    limit = job.pause_after_failures if job is not None else None
    if job is None or limit is None or not job.status.schedulable:
        return False
    # Each run has one record, plus a few missed / skipped summaries in between.
    failures = consecutive_failures(store.job_runs(job_id, limit=2 * limit + 10))
    if failures < limit:
        return False
    note = f"paused after {failures} failed runs in a row (pause_after_failures={limit})"
    if job.last_error:
        note += f"; last error: {job.last_error}"
    manager = JobManager(store, clock=clock, source="worker")
    paused = manager.pause_job(job_id, note=note[:500], by=PAUSED_BY)
    if paused:
        logger.warning("job paused after failures job=%s failures=%d", job_id, failures)
    return paused
