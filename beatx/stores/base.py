"""The job store protocol.

A store is the source of truth for jobs. The beat never holds every job: it asks the store
what is due (:meth:`JobStore.acquire_due_jobs`), which every store answers with an indexed
query (a heap, a Redis sorted set, an indexed SQL column), so a tick costs the same with ten
jobs or a million.

One tick of the engine is::

    jobs = store.acquire_due_jobs(now, limit=..., owner=token)   # claim, atomically
    ... plan fires, dispatch them ...
    store.release_jobs(releases, owner=token)                     # advance and unclaim

A fire sent outside the schedule (``JobManager.run_job_now``) takes the same kind of claim on
its one job (:meth:`JobStore.claim_job`), so it and a beat never decide about a job at once.

Two kinds of writers touch a job, and they touch disjoint fields:

- **management writes** (:meth:`JobStore.add_job`, :meth:`JobStore.update_job`: the API, the
  admin, the CLI, YAML and ``beat_schedule`` imports) write the definition, and the schedule
  (status and next run time) only when they mean to (``reschedule=True``: a pause, a resume,
  a new trigger). Each bumps ``revision``; ``expected_revision`` makes it a compare-and-set.
- **run-state writes** (the beat's :meth:`JobStore.release_jobs`, the workers'
  :meth:`JobStore.run_started` / :meth:`JobStore.run_finished`) advance counters, last run,
  errors and, for the beat, the next run time. They never touch the definition.

Every claim has a token (``Job.claim``). A write-back advances the job's schedule only if the
job is still held under that token: a management write that reschedules the job drops its
claim (so the write-back cannot undo a pause or a new trigger: it then records only what was
sent), and a claim that expired and was taken again by another beat is not written back at
all (the other beat re-plans those fires, with the same task ids).

A claimed job is invisible to other claims until it is released or its claim expires
(``claim_ttl``), so two beats never plan the same fire, and a beat that dies between the two
calls leaves the job to be claimed again with the state it had, which re-plans the same fires
with the same task ids.

Every method is synchronous and thread-safe. ``tests/stores/contract.py`` runs one
contract suite against every implementation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from beatx.audit import JobChange
from beatx.jobs import Job, JobStatus
from beatx.ledger import RunOutcome, RunRecord

__all__ = [
    "BeatStatus",
    "ChangeFeed",
    "JobRelease",
    "JobStorage",
    "JobStore",
    "LeaderLease",
    "LeaseInfo",
    "new_claim_token",
    "status_after_run",
]


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One fire's broker message, ready to be pushed: ``payload`` (the serialised message as
    the broker keeps it) onto each Redis list of ``lists``, in Redis database ``db``."""

    db: int
    lists: tuple[str, ...]
    payload: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRelease:
    """What the engine writes back for one claimed job.

    ``claim`` is the token of the claim the engine planned under (``Job.claim``). If the job
    is still held under it, everything is applied and the claim ends. If a management write
    rescheduled the job meanwhile (dropping the claim), only what happened is recorded (the
    counters, ``last_run_time``, ``error``); its status and next run time stay as that write
    set them. If another claim holds the job now, nothing is written.

    ``status`` is written only when the plan ends the job (COMPLETED) or breaks it (FAILED
    with ``error``); otherwise the stored status stays (a worker may have changed it).
    """

    job_id: str
    claim: str | None
    next_run_time: datetime | None
    status: JobStatus
    last_run_time: datetime | None
    #: Scheduled times of the fires handed to the dispatcher successfully.
    fired: tuple[datetime, ...] = ()
    #: Fires skipped because they were later than the misfire grace time.
    missed: int = 0
    #: Fires skipped because ``max_instances`` (or ``max_concurrent_jobs``) runs were in flight.
    skipped: int = 0
    #: An outage's late fires sent by the catch-up policy, and those merged into the fires sent
    #: (the ledger's ``caught_up`` record; both 0 without an outage).
    caught_up: int = 0
    coalesced: int = 0
    #: Task ids of the fires in ``fired``, in the same order (for run history).
    task_ids: tuple[str, ...] = field(default=())
    #: Set when the job could not be planned (its trigger raised): the store writes it to
    #: ``last_error``; ``status`` is then FAILED and ``next_run_time`` None.
    error: str | None = None
    #: The messages of the fires in ``fired``, when the store publishes them itself in the
    #: same step as this write-back (the atomic fire: Redis store and Redis broker on one
    #: server). They are pushed only if something is written (the claim is this release's,
    #: or a reschedule dropped it), so a fire goes out exactly when its write-back lands.
    #: Only stores whose ``can_publish`` says so take them.
    messages: tuple[QueuedMessage, ...] = ()

    @classmethod
    def unchanged(cls, job: Job) -> JobRelease:
        """The write-back of a claimed job that was not run: it stays as it was."""
        return cls(
            job_id=job.id,
            claim=job.claim,
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
class JobStorage(Protocol):
    """The jobs themselves: management writes, the beat's claims and write-backs, run records
    and beatx's own small named values."""

    # -- management: used by application code, the admin and the CLI ------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        """Store a new job, its ``next_run_time`` already computed.

        Sets ``job.revision`` to the stored revision and wakes a waiting beat.

        :raises ConflictingIdError: if a job with this id exists and ``replace_existing`` is
            false. With ``replace_existing`` the old definition and state are replaced whole.
        """
        ...

    def update_job(self, job: Job, *, expected_revision: int | None = None, reschedule: bool = False) -> None:
        """Write the definition of an existing job (name, func, trigger, args, kwargs,
        options, policy); with ``reschedule`` also its ``status`` and ``next_run_time``, and
        any claim on it ends (a beat's write-back of that claim then records only what it
        sent). Counters, last run, errors and run records are never written here.

        Bumps ``job.revision`` and wakes a waiting beat.

        :param expected_revision: when given, the write happens only if the stored revision
            is this one (compare-and-set), atomically.
        :raises JobLookupError: if no job with this id exists.
        :raises RevisionConflictError: if ``expected_revision`` is given and differs.
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

        Jobs come earliest first, each with ``running`` counted and ``claim`` set to the
        token of this claim (unique per call). A claim expires after ``claim_ttl`` seconds;
        an expired claim makes the job claimable again, under a new token.

        :param owner: the claiming beat's lease token. When given, the claim succeeds only if
            ``owner`` holds the leader lease, checked in the same atomic step.
        A job whose stored record cannot be read is not returned: the store marks it FAILED
        with the error and takes it out of the schedule, so it blocks no other job.

        :raises LeaseLostError: if ``owner`` is given and does not hold the lease. A store
            may return ``[]`` without checking when nothing is due (no claim is made then).
        """
        ...

    def claim_job(self, job_id: str, *, claim_ttl: float = 60.0) -> Job | None:
        """Claim one job, whatever its status and next run time, for a fire sent outside the
        schedule (``JobManager.run_job_now``): the job as :meth:`acquire_due_jobs` returns it
        (``running`` counted, ``claim`` set to a fresh token), with no lease owner (the caller
        is application code, not a beat).

        While claimed, the job is not returned by :meth:`acquire_due_jobs`; its
        :meth:`release_jobs` ends the claim as for any claim. A claim that expired (after
        ``claim_ttl`` seconds, judged as :meth:`acquire_due_jobs` judges them) is taken over.

        Returns ``None``, claiming nothing, while a live claim holds the job (a beat is
        planning it, or holding its fires back for a run in flight).

        :raises JobLookupError: if no job with this id exists.
        """
        ...

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        """Write back claimed jobs and end their claims (see :class:`JobRelease` for what is
        applied when the claim was dropped or taken over meanwhile).

        A release for a job that was removed meanwhile is ignored. The whole call is one
        atomic step: either every release is applied or none is.

        :raises LeaseLostError: if ``owner`` is given and no longer holds the lease; nothing
            is written then, and the claims expire by themselves.
        """
        ...

    def due_count(self, now: datetime) -> int:
        """How many schedulable jobs are due at ``now`` (the backlog), claimed ones included:
        a job claimed by a beat that froze or died is overdue until its fires are sent."""
        ...

    # -- run state: written by whatever executes the run ---------------------------------------

    def run_started(
        self, job_id: str, task_id: str, *, started_at: datetime, timeout: float, worker: str | None = None
    ) -> None:
        """Record a run in flight. It stops counting after ``timeout`` seconds even if no
        :meth:`run_finished` arrives (a killed worker must not block a job forever). Its
        ledger record (:meth:`job_runs`) turns ``running``, with ``worker``'s name."""
        ...

    def start_run_once(
        self,
        job_id: str,
        task_id: str,
        *,
        attempt: int,
        started_at: datetime,
        timeout: float,
        worker: str | None = None,
    ) -> bool:
        """:meth:`run_started` for the first delivery of attempt ``attempt`` (Celery's
        ``request.retries``) of task ``task_id`` only. Returns False, writing nothing, when
        that delivery started before: the broker delivered the message twice, or a beat that
        died between publishing and writing back had its fire sent again (same task id). The
        worker-side duplicate guard (``beatx_dedupe``) runs a task only when this is True.

        Deliveries are remembered for at least ``max(timeout, DELIVERY_MEMORY)`` seconds."""
        ...

    def run_finished(
        self,
        job_id: str,
        task_id: str,
        *,
        finished_at: datetime,
        duration: float | None,
        error: str | None,
        outcome: RunOutcome | None = None,
        worker: str | None = None,
    ) -> None:
        """Record the end of a run: ``last_finished_at``, ``last_duration``, and then

        - with ``error``: ``last_error``, and status FAILED if it was ACTIVE or COMPLETED;
        - without: status back from FAILED to ACTIVE (COMPLETED if no next run time);
        - for a ``REVOKED`` outcome the status stays whatever it was.

        A PAUSED status is kept. Ends the run's in-flight record. Unknown jobs are ignored.

        ``outcome`` is the ledger's (:meth:`job_runs`): an end (``SUCCEEDED``, ``FAILED``,
        ``REVOKED``, ``REJECTED``, ``UNKNOWN_TASK``); by default ``FAILED`` with an error,
        else ``SUCCEEDED``."""
        ...

    def run_retried(
        self,
        job_id: str,
        task_id: str,
        *,
        at: datetime,
        error: str | None,
        retries: int,
        worker: str | None = None,
    ) -> None:
        """Record that a run asked for a retry (its ``retries``-th): its ledger record turns
        ``retried`` with ``error`` (the reason). The run stays in flight (the retry carries the
        same task id) and the job's state is not touched. Unknown jobs are ignored."""
        ...

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """Add a fire sent outside the beat (``JobManager.run_job_now``, the admin's "Run
        now") to the job's run ledger (:meth:`job_runs`), ``sent`` now with its scheduled time,
        as the beat's write-back records its fires; the job's counters are not touched.
        Unknown jobs are ignored."""
        ...

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        """The latest runs of a job in its ledger, newest first (by nominal time, else the
        first moment known), at most ``limit``: one :class:`~beatx.ledger.RunRecord` per fire
        the beat sent (``sent``, then what the worker reported), and one per write-back that
        missed or skipped fires. ``[]`` for an unknown job.

        Each store keeps a bounded number of runs per job, for a bounded time (memory and
        Redis: ``run_history`` runs, ``run_history_days`` days; Django: until
        ``beatx_prune_runs`` removes them)."""
        ...

    def running_count(self, now: datetime) -> int:
        """Runs in flight across all jobs (for ``max_concurrent_jobs``)."""
        ...

    # -- the audit log: written by JobManager after each change -------------------------------

    def record_change(self, change: JobChange) -> None:
        """Add ``change`` to its job's audit log (kept after the job is removed: the log says
        who removed it). Memory and Redis keep the latest ``DEFAULT_HISTORY`` entries a job."""
        ...

    def job_changes(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        """The job's latest changes, newest first, at most ``limit``; ``[]`` when none."""
        ...

    # -- beatx's own small records --------------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        """A small named value beatx keeps for itself (such as the ids of the jobs imported
        from ``beat_schedule``, the store's epoch), or ``None``."""
        ...

    def write_meta(self, key: str, value: str) -> None:
        """Store a small named value (a few kilobytes at most), replacing the previous one."""
        ...


@runtime_checkable
class LeaderLease(Protocol):
    """Leadership: the one lease the beats compete for, and the leader's health report."""

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


@runtime_checkable
class ChangeFeed(Protocol):
    """Change notification: wakes a waiting beat when any process changed a job.

    A run's start or end is not a change: it moves nothing the beat schedules by, and a
    beat that holds a fire back for ``max_instances`` polls that job itself."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a job is added, changed or removed (from any process), or ``timeout``
        seconds pass. Returns whether a change was seen. May return early spuriously."""
        ...

    def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
        ...


@runtime_checkable
class JobStore(JobStorage, LeaderLease, ChangeFeed, Protocol):
    """Where jobs live: the three protocols above, served by one object per backend
    (memory, Redis, Django), each checked by the contract suite in ``tests/stores``."""


def status_after_run(status: JobStatus, next_run_time: datetime | None, error: str | None) -> JobStatus:
    """The status a job takes when one of its runs ends (see :meth:`JobStore.run_finished`)."""
    if error is not None:
        return JobStatus.FAILED if status in (JobStatus.ACTIVE, JobStatus.COMPLETED) else status
    if status == JobStatus.FAILED:
        return JobStatus.ACTIVE if next_run_time is not None else JobStatus.COMPLETED
    return status


#: How long :meth:`JobStorage.start_run_once` remembers a delivery at least (seconds): longer
#: than any redelivery or takeover repeats a message.
DELIVERY_MEMORY = 24 * 3600


def new_claim_token(owner: str | None) -> str:
    """A token for one claim: the claiming beat's lease token and a random part, so two
    claims of one job (by one beat or two) never share a token."""
    return f"{owner or '-'}/{uuid.uuid4().hex[:12]}"
