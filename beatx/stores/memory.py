"""An in-process store: jobs in a dict, due order in a heap. Nothing survives a restart."""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from beatx.alerts import has_alert_rules
from beatx.audit import DEFAULT_HISTORY, JobChange
from beatx.clock import Clock, SystemClock
from beatx.errors import ConflictingIdError, JobLookupError, LeaseLostError, RevisionConflictError
from beatx.jobs import RUN_STATE_FIELDS, Job, JobStatus, fire_task_id
from beatx.ledger import (
    DEFAULT_RUN_HISTORY,
    DEFAULT_RUN_HISTORY_DAYS,
    RunOutcome,
    RunRecord,
    merge,
    newest_first,
    summaries,
)
from beatx.stores.base import (
    DELIVERY_MEMORY,
    BeatStatus,
    JobRelease,
    LeaseInfo,
    new_claim_token,
    status_after_run,
)
from beatx.stores.calendar_memory import MemoryCalendarStorage

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps jobs in memory, for the in-process scheduler, tests and single-beat setups.

    The heap holds ``(next run timestamp, job id, entry number)``; an entry whose number is no
    longer the job's current one is stale and skipped, so re-scheduling a job costs
    O(log n) and finding what is due costs O(log n + due).

    The run ledger keeps the last ``run_history`` runs of each job (a ring: the oldest goes
    when a new one comes), for ``run_history_days`` days.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        run_history: int = DEFAULT_RUN_HISTORY,
        run_history_days: float = DEFAULT_RUN_HISTORY_DAYS,
    ) -> None:
        self._clock = clock or SystemClock()
        self._run_history = max(int(run_history), 1)
        self._run_history_age = timedelta(days=run_history_days)
        #: Job id -> task id -> its run record, oldest first (the ring).
        self._ledger: dict[str, OrderedDict[str, RunRecord]] = {}
        #: Job id -> its audit log, oldest first.
        self._changes_log: dict[str, deque[JobChange]] = {}
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        #: Ids of the jobs that set an alert rule (:meth:`alerting_jobs`).
        self._alerting: set[str] = set()
        self._heap: list[tuple[float, str, int]] = []
        self._entry: dict[str, int] = {}
        self._next_entry = 0
        #: Claimed job id -> (claim deadline, claim token).
        self._claims: dict[str, tuple[float, str]] = {}
        #: Job id -> token of the last claim written back, so a write-back retried after an
        #: error that hid its success is not applied twice.
        self._released: dict[str, str] = {}
        self._running: dict[str, dict[str, float]] = {}
        #: (task id, attempt) -> until when that delivery is remembered (epoch seconds).
        self._delivered: dict[tuple[str, int], float] = {}
        self._lease: LeaseInfo | None = None
        self._status: BeatStatus | None = None
        self._meta: dict[str, str] = {}
        self._changes = 0
        #: The exclusion calendars (:mod:`beatx.stores.calendar_memory`).
        self.calendars = MemoryCalendarStorage()

    # -- index ---------------------------------------------------------------------------------

    def _index(self, job: Job) -> None:
        if job.status.schedulable and job.next_run_time is not None and job.id not in self._claims:
            self._next_entry += 1
            self._entry[job.id] = self._next_entry
            heapq.heappush(self._heap, (job.next_run_time.timestamp(), job.id, self._next_entry))
        else:
            self._entry.pop(job.id, None)

    def _peek(self) -> tuple[float, str, int] | None:
        heap = self._heap
        while heap:
            top = heap[0]
            if self._entry.get(top[1]) == top[2]:
                return top
            heapq.heappop(heap)
        return None

    def _notify(self) -> None:
        self._changes += 1
        self._cond.notify_all()

    def _count_running(self, job_id: str, now_ts: float) -> int:
        runs = self._running.get(job_id)
        if not runs:
            return 0
        for task_id in [t for t, expires in runs.items() if expires <= now_ts]:
            del runs[task_id]
        return len(runs)

    def _out(self, job: Job, now_ts: float) -> Job:
        clone = job.copy()
        clone.running = self._count_running(job.id, now_ts)
        return clone

    def _check_owner(self, owner: str | None, now: datetime) -> None:
        if owner is None:
            return
        lease = self._lease
        if lease is None or lease.owner != owner or lease.expires_at <= now:
            raise LeaseLostError(f"beat {owner!r} does not hold the leader lease")

    # -- management ----------------------------------------------------------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        with self._cond:
            old = self._jobs.get(job.id)
            if old is not None and not replace_existing:
                raise ConflictingIdError(job.id)
            job.revision = (old.revision + 1) if old is not None else 1
            self._jobs[job.id] = job.copy()
            if old is not None:
                self._claims.pop(job.id, None)
            self._index(job)
            self._mark_alerting(job)
            self._notify()

    def update_job(self, job: Job, *, expected_revision: int | None = None, reschedule: bool = False) -> None:
        with self._cond:
            old = self._jobs.get(job.id)
            if old is None:
                raise JobLookupError(job.id)
            if expected_revision is not None and old.revision != expected_revision:
                raise RevisionConflictError(job.id, expected_revision, old.revision)
            stored = job.copy()
            # Run state stays as the beat and the workers wrote it.
            for name in RUN_STATE_FIELDS:
                setattr(stored, name, getattr(old, name))
            if reschedule:
                self._claims.pop(job.id, None)
            else:
                stored.status, stored.next_run_time = old.status, old.next_run_time
            stored.revision = job.revision = old.revision + 1
            stored.running, stored.claim = 0, None
            self._jobs[job.id] = stored
            self._index(stored)
            self._mark_alerting(stored)
            self._notify()

    def remove_job(self, job_id: str) -> bool:
        with self._cond:
            if self._jobs.pop(job_id, None) is None:
                return False
            self._entry.pop(job_id, None)
            self._claims.pop(job_id, None)
            self._released.pop(job_id, None)
            self._running.pop(job_id, None)
            self._ledger.pop(job_id, None)
            self._alerting.discard(job_id)
            self._notify()
            return True

    def _mark_alerting(self, job: Job) -> None:
        if has_alert_rules(job):
            self._alerting.add(job.id)
        else:
            self._alerting.discard(job.id)

    def alerting_jobs(self) -> list[Job]:
        """The jobs that set an alert rule (:mod:`beatx.alerts`), by id; from an index, so the
        cost is theirs, not every job's."""
        with self._cond:
            now_ts = self._clock.now().timestamp()
            return [self._out(self._jobs[job_id], now_ts) for job_id in sorted(self._alerting)]

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """Add a fire sent outside the beat (``run_job_now``) to the job's run ledger."""
        with self._cond:
            if job_id in self._jobs:
                self._ledger_put(
                    RunRecord(
                        job_id=job_id,
                        task_id=task_id,
                        outcome=RunOutcome.SENT,
                        scheduled_at=scheduled_at,
                        sent_at=self._clock.now(),
                    )
                )

    def get_job(self, job_id: str) -> Job | None:
        with self._cond:
            job = self._jobs.get(job_id)
            return None if job is None else self._out(job, self._clock.now().timestamp())

    def get_jobs(self, status: JobStatus | None = None) -> list[Job]:
        with self._cond:
            now_ts = self._clock.now().timestamp()
            jobs = [self._out(j, now_ts) for j in self._jobs.values() if status is None or j.status == status]
        far = float("inf")
        jobs.sort(key=lambda j: (j.next_run_time.timestamp() if j.next_run_time else far, j.id))
        return jobs

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        with self._cond:
            for job in self._jobs.values():
                counts[job.status] += 1
        return counts

    # -- the beat ------------------------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        with self._cond:
            top = self._peek()
            earliest = None if top is None else self._jobs[top[1]].next_run_time
            if self._claims:
                expires = datetime.fromtimestamp(min(d for d, _ in self._claims.values()), UTC)
                earliest = expires if earliest is None else min(earliest, expires)
            return earliest

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        with self._cond:
            self._check_owner(owner, now)
            now_ts = now.timestamp()
            for job_id in [j for j, (deadline, _) in self._claims.items() if deadline <= now_ts]:
                del self._claims[job_id]
                self._index(self._jobs[job_id])
            token = new_claim_token(owner)
            claimed: list[Job] = []
            while len(claimed) < limit:
                top = self._peek()
                if top is None or top[0] > now_ts:
                    break
                heapq.heappop(self._heap)
                job_id = top[1]
                del self._entry[job_id]
                self._claims[job_id] = (now_ts + claim_ttl, token)
                job = self._out(self._jobs[job_id], now_ts)
                job.claim = token
                claimed.append(job)
            return claimed

    def claim_job(self, job_id: str, *, claim_ttl: float = 60.0) -> Job | None:
        with self._cond:
            stored = self._jobs.get(job_id)
            if stored is None:
                raise JobLookupError(job_id)
            now_ts = self._clock.now().timestamp()
            held = self._claims.get(job_id)
            if held is not None and held[0] > now_ts:
                return None  # a live claim: a beat is planning the job
            token = new_claim_token(None)
            self._claims[job_id] = (now_ts + claim_ttl, token)
            self._entry.pop(job_id, None)  # out of the schedule (its heap entry turns stale)
            job = self._out(stored, now_ts)
            job.claim = token
            return job

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        with self._cond:
            now = self._clock.now()
            self._check_owner(owner, now)
            for release in releases:
                job = self._jobs.get(release.job_id)
                if job is None:
                    continue
                claim = self._claims.get(job.id)
                if claim is not None and claim[1] != release.claim:
                    continue  # another claim holds the job now: it re-plans these fires
                if release.claim is not None:
                    if self._released.get(job.id) == release.claim:
                        continue  # applied already (a retried write-back)
                    self._released[job.id] = release.claim
                job.total_run_count += len(release.fired)
                job.misfire_count += release.missed
                job.skip_count += release.skipped
                self._ledger_sent(release, now)
                if release.last_run_time is not None and (
                    job.last_run_time is None or release.last_run_time > job.last_run_time
                ):
                    job.last_run_time = release.last_run_time
                if release.error is not None:
                    job.last_error = release.error
                if claim is not None:  # still ours: the schedule advances
                    del self._claims[job.id]
                    job.next_run_time = release.next_run_time
                    if release.status is JobStatus.COMPLETED or (
                        release.status is JobStatus.FAILED and release.error is not None
                    ):
                        job.status = release.status
                    self._index(job)

    def due_count(self, now: datetime) -> int:
        with self._cond:
            now_ts = now.timestamp()
            # Walk only the part of the heap at or before now: a node later than now has no
            # earlier descendants, so the cost is the backlog, not the number of jobs.
            heap, count, stack = self._heap, 0, [0]
            while stack:
                index = stack.pop()
                if index >= len(heap) or heap[index][0] > now_ts:
                    continue
                _, job_id, entry = heap[index]
                if self._entry.get(job_id) == entry:
                    count += 1
                stack += (2 * index + 1, 2 * index + 2)
            # Claimed jobs are due too until their write-back (a frozen leader's, say).
            for job_id in self._claims:
                job = self._jobs[job_id]
                nrt = job.next_run_time
                if job.status.schedulable and nrt is not None and nrt.timestamp() <= now_ts:
                    count += 1
            return count

    # -- run state -----------------------------------------------------------------------------

    def run_started(
        self, job_id: str, task_id: str, *, started_at: datetime, timeout: float, worker: str | None = None
    ) -> None:
        with self._cond:
            if job_id in self._jobs:
                self._running.setdefault(job_id, {})[task_id] = started_at.timestamp() + timeout
                self._ledger_put(
                    RunRecord(
                        job_id=job_id,
                        task_id=task_id,
                        outcome=RunOutcome.RUNNING,
                        started_at=started_at,
                        worker=worker,
                    )
                )

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
        with self._cond:
            now = started_at.timestamp()
            if len(self._delivered) > 10_000:
                self._delivered = {k: until for k, until in self._delivered.items() if until > now}
            if self._delivered.get((task_id, attempt), 0.0) > now:
                return False
            self._delivered[(task_id, attempt)] = now + max(timeout, DELIVERY_MEMORY)
        self.run_started(job_id, task_id, started_at=started_at, timeout=timeout, worker=worker)
        return True

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
        if outcome is None:
            outcome = RunOutcome.FAILED if error is not None else RunOutcome.SUCCEEDED
        with self._cond:
            self._running.get(job_id, {}).pop(task_id, None)
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.last_finished_at = finished_at
            job.last_duration = duration
            if outcome is not RunOutcome.REVOKED:
                job.status = status_after_run(job.status, job.next_run_time, error)
            if error is not None:
                job.last_error = error
            self._ledger_put(
                RunRecord(
                    job_id=job_id,
                    task_id=task_id,
                    outcome=outcome,
                    finished_at=finished_at,
                    duration=duration,
                    worker=worker,
                    error=error,
                )
            )

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
        with self._cond:
            if job_id in self._jobs:
                self._ledger_put(
                    RunRecord(
                        job_id=job_id,
                        task_id=task_id,
                        outcome=RunOutcome.RETRIED,
                        worker=worker,
                        error=error,
                        retries=retries,
                    )
                )

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        with self._cond:
            records = list(self._ledger.get(job_id, {}).values())
        return newest_first(records, limit=limit, now=self._clock.now(), max_age=self._run_history_age)

    def record_change(self, change: JobChange) -> None:
        with self._cond:
            self._changes_log.setdefault(change.job_id, deque(maxlen=DEFAULT_HISTORY)).append(change)

    def job_changes(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        with self._cond:
            log = list(self._changes_log.get(job_id, ()))
        return log[::-1][: max(limit, 0)]

    def _ledger_put(self, record: RunRecord) -> None:
        """Merge ``record`` into its job's ring (the lock held); the oldest run goes when the
        ring is full."""
        ring = self._ledger.setdefault(record.job_id, OrderedDict())
        ring[record.task_id] = merge(ring.get(record.task_id), record)
        while len(ring) > self._run_history:
            ring.popitem(last=False)

    def _ledger_sent(self, release: JobRelease, now: datetime) -> None:
        """The ledger records of a write-back (the lock held): one per fire sent, and the
        missed / skipped ones."""
        for index, at in enumerate(release.fired):
            task_id = (
                release.task_ids[index] if index < len(release.task_ids) else fire_task_id(release.job_id, at)
            )
            self._ledger_put(
                RunRecord(
                    job_id=release.job_id,
                    task_id=task_id,
                    outcome=RunOutcome.SENT,
                    scheduled_at=at,
                    sent_at=now,
                )
            )
        for record in summaries(
            release.job_id,
            claim=release.claim,
            at=now,
            missed=release.missed,
            skipped=release.skipped,
            caught_up=release.caught_up,
            coalesced=release.coalesced,
        ):
            self._ledger_put(record)

    def running_count(self, now: datetime) -> int:
        with self._cond:
            now_ts = now.timestamp()
            return sum(self._count_running(job_id, now_ts) for job_id in list(self._running))

    # -- leadership ----------------------------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        with self._cond:
            lease = self._lease
            expires = now + timedelta(seconds=ttl)
            if lease is not None and lease.owner == owner:
                self._lease = replace(lease, expires_at=expires)
                return True
            if lease is None or lease.expires_at <= now:
                self._lease = LeaseInfo(owner=owner, acquired_at=now, expires_at=expires)
                return True
            return False

    def release_lease(self, owner: str) -> None:
        with self._cond:
            if self._lease is not None and self._lease.owner == owner:
                self._lease = None

    def get_lease(self) -> LeaseInfo | None:
        with self._cond:
            return self._lease

    def write_status(self, status: BeatStatus) -> None:
        with self._cond:
            self._status = status

    def read_status(self) -> BeatStatus | None:
        with self._cond:
            return self._status

    def read_meta(self, key: str) -> str | None:
        with self._cond:
            return self._meta.get(key)

    def write_meta(self, key: str, value: str) -> None:
        with self._cond:
            self._meta[key] = value

    # -- changes -------------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        with self._cond:
            seen = self._changes
            self._cond.wait_for(lambda: self._changes != seen, timeout=max(timeout, 0.0))
            return self._changes != seen

    def close(self) -> None:
        with self._cond:
            self._notify()
