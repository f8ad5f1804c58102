"""The job store protocol.

A store is the source of truth for jobs. The beat never holds every job: it asks the store
what is due (:meth:`JobStore.acquire_due_jobs`), which every store answers with an indexed
query (a heap, a Redis sorted set, an indexed SQL column), so a tick costs the same with ten
jobs or a million.

One tick of the engine is::

    jobs = store.acquire_due_jobs(now, limit=..., owner=token)   # claim, atomically
    ... plan fires, dispatch them ...
    store.release_jobs(releases, owner=token)                     # advance and unclaim

A claimed job is invisible to other claims until it is released or its claim expires
(``claim_ttl``), so two beats never plan the same fire, and a beat that dies between the two
calls leaves the job to be claimed again with the state it had, which re-plans the same fires
with the same task ids.

Every method is synchronous and thread-safe. ``tests/stores/contract.py`` runs one
contract suite against every implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from beatx.jobs import Job, JobStatus

__all__ = ["BeatStatus", "JobRelease", "JobStore", "LeaseInfo", "status_after_run"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRelease:
    """What the engine writes back for one claimed job.

    ``revision`` is the revision the engine planned from. If the job's definition changed
    while it was claimed (an edit, a pause), the store keeps the new definition, its status
    and its next run time, and applies only the counters and ``last_run_time``.
    """

    job_id: str
    revision: int
    next_run_time: datetime | None
    status: JobStatus
    last_run_time: datetime | None
    #: Scheduled times of the fires handed to the dispatcher successfully.
    fired: tuple[datetime, ...] = ()
    #: Fires skipped because they were later than the misfire grace time.
    missed: int = 0
    #: Fires skipped because ``max_instances`` (or ``max_concurrent_jobs``) runs were in flight.
    skipped: int = 0
    #: Task ids of the fires in ``fired``, in the same order (for run history).
    task_ids: tuple[str, ...] = field(default=())
    #: Set when the job could not be planned (its trigger raised): the store writes it to
    #: ``last_error``; ``status`` is then FAILED and ``next_run_time`` None.
    error: str | None = None

    @classmethod
    def unchanged(cls, job: Job) -> JobRelease:
        """The write-back of a claimed job that was not run: it stays as it was."""
        return cls(
            job_id=job.id,
            revision=job.revision,
            next_run_time=job.next_run_time,
            status=job.status,
            last_run_time=job.last_run_time,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseInfo:
    """Who leads, and until when."""

    owner: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BeatStatus:
    """Health of the leading beat, as it last reported it."""

    owner: str
    leader_since: datetime | None
    last_tick_at: datetime
    due_backlog: int
    jobs_fired: int = 0
    jobs_missed: int = 0
    jobs_skipped: int = 0


@runtime_checkable
class JobStore(Protocol):
    """Where jobs live. Implementations: memory, Redis, Django."""

    # -- management: used by application code, the admin and the CLI ------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        """Store a new job, its ``next_run_time`` already computed.

        Sets ``job.revision`` to the stored revision and wakes a waiting beat.

        :raises ConflictingIdError: if a job with this id exists and ``replace_existing`` is
            false. With ``replace_existing`` the old definition and state are replaced whole.
        """
        ...

    def update_job(self, job: Job) -> None:
        """Replace the stored definition and state of an existing job.

        Bumps ``job.revision`` and wakes a waiting beat.

        :raises JobLookupError: if no job with this id exists.
        """
        ...

    def remove_job(self, job_id: str) -> bool:
        """Delete a job and its run state. Returns whether it existed. Wakes a waiting beat."""
        ...

    def get_job(self, job_id: str) -> Job | None:
        """Return a copy of the job, with ``running`` counted, or ``None``."""
        ...

    def get_jobs(self, status: JobStatus | None = None) -> list[Job]:
        """Return every job (or those with ``status``), ordered by next run time then id.

        This reads every job; the beat never calls it.
        """
        ...

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        """How many jobs have each status: every :class:`JobStatus`, 0 when none.

        Reads the statuses only, never the definitions (``beatx status``, the ``beatx_jobs``
        gauge); the beat never calls it.
        """
        ...

    # -- the beat ------------------------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        """When the beat should next look: the earliest ``next_run_time`` of an unclaimed,
        schedulable job, or the earliest claim deadline if that is sooner (a claim left by a
        beat that died makes its job due again when it expires). ``None`` if neither."""
        ...

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        """Claim up to ``limit`` schedulable jobs whose ``next_run_time`` is at or before ``now``.

        Jobs come earliest first, each with ``running`` counted. A claim expires after
        ``claim_ttl`` seconds; an expired claim makes the job claimable again.

        :param owner: the claiming beat's lease token. When given, the claim succeeds only if
            ``owner`` holds the leader lease, checked in the same atomic step.
        A job whose stored record cannot be read is not returned: the store marks it FAILED
        with the error and takes it out of the schedule, so it blocks no other job.

        :raises LeaseLostError: if ``owner`` is given and does not hold the lease.
        """
        ...

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        """Write back claimed jobs and end their claims (see :class:`JobRelease`).

        A release for a job that was removed meanwhile is ignored.

        :raises LeaseLostError: if ``owner`` is given and no longer holds the lease; nothing
            is written then, and the claims expire by themselves.
        """
        ...

    def due_count(self, now: datetime) -> int:
        """How many schedulable jobs are due at ``now`` (the backlog)."""
        ...

    # -- run state: written by whatever executes the run ---------------------------------------

    def run_started(self, job_id: str, task_id: str, *, started_at: datetime, timeout: float) -> None:
        """Record a run in flight. It stops counting after ``timeout`` seconds even if no
        :meth:`run_finished` arrives (a killed worker must not block a job forever)."""
        ...

    def run_finished(
        self,
        job_id: str,
        task_id: str,
        *,
        finished_at: datetime,
        duration: float | None,
        error: str | None,
    ) -> None:
        """Record the end of a run: ``last_finished_at``, ``last_duration``, and then

        - with ``error``: ``last_error``, and status FAILED if it was ACTIVE or COMPLETED;
        - without: status back from FAILED to ACTIVE (COMPLETED if no next run time).

        A PAUSED status is kept. Ends the run's in-flight record. Unknown jobs are ignored."""
        ...

    def running_count(self, now: datetime) -> int:
        """Runs in flight across all jobs (for ``max_concurrent_jobs``)."""
        ...

    # -- leadership ----------------------------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        """Take the leader lease if it is free or expired, or renew it if ``owner`` holds it.

        Returns whether ``owner`` holds the lease afterwards, valid until ``now + ttl``.
        """
        ...

    def release_lease(self, owner: str) -> None:
        """Give the lease up, only if ``owner`` holds it."""
        ...

    def get_lease(self) -> LeaseInfo | None:
        """The current lease holder, or ``None``."""
        ...

    def write_status(self, status: BeatStatus) -> None:
        """Publish the leading beat's health."""
        ...

    def read_status(self) -> BeatStatus | None:
        """The last published health, or ``None``."""
        ...

    # -- beatx's own small records --------------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        """A small named value beatx keeps for itself (such as the ids of the jobs imported
        from ``beat_schedule``), or ``None``."""
        ...

    def write_meta(self, key: str, value: str) -> None:
        """Store a small named value (a few kilobytes at most), replacing the previous one."""
        ...

    # -- changes -------------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a job is added, changed or removed (from any process), or ``timeout``
        seconds pass. Returns whether a change was seen. May return early spuriously."""
        ...

    def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
        ...


def status_after_run(status: JobStatus, next_run_time: datetime | None, error: str | None) -> JobStatus:
    """The status a job takes when one of its runs ends (see :meth:`JobStore.run_finished`)."""
    if error is not None:
        return JobStatus.FAILED if status in (JobStatus.ACTIVE, JobStatus.COMPLETED) else status
    if status == JobStatus.FAILED:
        return JobStatus.ACTIVE if next_run_time is not None else JobStatus.COMPLETED
    return status
