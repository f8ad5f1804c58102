"""A :class:`beatx.stores.base.JobStore` on the Django ORM (PostgreSQL, SQLite, MySQL...).

Due jobs are found with an indexed query on ``(status, next_run_time)``; claiming them and
checking the leader lease happen in one transaction. On databases with ``SKIP LOCKED``
(PostgreSQL, MySQL 8, Oracle) the due rows are locked with
``select_for_update(skip_locked=True)``, so concurrent claimers never wait on each other nor
claim a row twice; elsewhere (SQLite) each row is claimed with a conditional ``UPDATE``.

Every change to a job definition bumps :class:`django_beatx.models.ChangeCounter` in the
same transaction; :meth:`DjangoStore.wait_for_change` polls that one row, so an edit in the
admin reaches a running beat within ``poll_interval`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Count, F, Q

from beatx.clock import Clock, SystemClock
from beatx.errors import ConflictingIdError, JobLookupError, LeaseLostError, SerializationError, StoreError
from beatx.jobs import Job, JobStatus, fire_task_id
from beatx.stores.base import BeatStatus, JobRelease, LeaseInfo, status_after_run
from django_beatx import models as m

__all__ = ["DjangoStore"]

logger = logging.getLogger("django_beatx.store")

_SINGLETON = m.SINGLETON_ID
_RUNNING = m.JobRun.Outcome.RUNNING


def job_from_row(row: m.Job, *, running: int = 0) -> Job:
    """The beatx job a row holds.

    :raises SerializationError: if the row's fields do not make a valid job.
    """
    try:
        return Job(
            id=row.id,
            func=row.task,
            trigger=row.build_trigger(),
            name=row.name,
            args=tuple(row.args or ()),
            kwargs=dict(row.kwargs or {}),
            options=row.options,
            max_instances=row.max_instances,
            misfire_grace_time=row.misfire_grace_time,
            coalesce=row.coalesce,
            status=JobStatus(row.status),
            next_run_time=row.next_run_time,
            last_run_time=row.last_run_time,
            total_run_count=row.total_run_count,
            misfire_count=row.misfire_count,
            skip_count=row.skip_count,
            last_error=row.last_error or None,
            last_finished_at=row.last_finished_at,
            last_duration=row.last_duration,
            running=running,
            revision=row.revision,
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"job {row.id!r}: stored row is not a valid job: {exc}") from exc


def fill_row(row: m.Job, job: Job) -> None:
    """Write a beatx job's definition and state into a row (not its claim or revision)."""
    row.name = job.name
    row.task = job.func_ref
    row.args = list(job.args)
    row.kwargs = dict(job.kwargs)
    row.set_trigger(job.trigger)
    row.set_options(dict(job.options))
    row.max_instances = job.max_instances
    row.misfire_grace_time = job.misfire_grace_time
    row.coalesce = job.coalesce
    row.status = job.status.value
    row.next_run_time = job.next_run_time
    row.last_run_time = job.last_run_time
    row.total_run_count = job.total_run_count
    row.misfire_count = job.misfire_count
    row.skip_count = job.skip_count
    row.last_error = job.last_error or ""
    row.last_finished_at = job.last_finished_at
    row.last_duration = job.last_duration


class DjangoStore:
    """Jobs in the database of a Django project (``django_beatx`` in ``INSTALLED_APPS``).

    :param clock: the time source (a :class:`beatx.testing.FakeClock` in tests).
    :param using: the database alias.
    :param poll_interval: seconds between two reads of the change counter in
        :meth:`wait_for_change`.
    """

    def __init__(
        self, *, clock: Clock | None = None, using: str = "default", poll_interval: float = 0.2
    ) -> None:
        self._clock = clock or SystemClock()
        self.using = using
        self.poll_interval = poll_interval
        self._seen_version: int | None = None

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _skip_locked(self) -> bool:
        return bool(connections[self.using].features.has_select_for_update_skip_locked)

    def _jobs(self) -> Any:
        return m.Job.objects.using(self.using)

    def _runs(self) -> Any:
        return m.JobRun.objects.using(self.using)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn database failures into :class:`StoreError`, and let the next call reconnect."""
        try:
            yield
        except (IntegrityError, StoreError):
            raise
        except DatabaseError as exc:
            connection = connections[self.using]
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            raise StoreError(f"Django store (database {self.using!r}): {exc}") from exc

    def _bump(self) -> None:
        """Move the change counter, inside the caller's transaction."""
        counters = m.ChangeCounter.objects.using(self.using)
        if counters.filter(pk=_SINGLETON).update(version=F("version") + 1):
            return
        try:
            with transaction.atomic(using=self.using):
                counters.create(pk=_SINGLETON, version=1)
        except IntegrityError:  # created concurrently
            counters.filter(pk=_SINGLETON).update(version=F("version") + 1)

    def change_version(self) -> int:
        """The change counter: it moves whenever a job is added, changed or removed."""
        with self._errors():
            version = (
                m.ChangeCounter.objects.using(self.using)
                .filter(pk=_SINGLETON)
                .values_list("version", flat=True)
                .first()
            )
        return int(version or 0)

    def _running_counts(self, job_ids: Iterable[str], now: datetime) -> dict[str, int]:
        rows = (
            self._runs()
            .in_flight(now)
            .filter(job_id__in=list(job_ids))
            .values("job_id")
            .annotate(n=Count("id"))
            .values_list("job_id", "n")
        )
        return dict(rows)

    def _lease_row(self, *, lock: bool) -> m.Lease:
        leases = m.Lease.objects.using(self.using)
        query = leases.select_for_update() if lock else leases
        row: m.Lease | None = query.filter(pk=_SINGLETON).first()
        if row is None:
            try:
                with transaction.atomic(using=self.using):
                    leases.create(pk=_SINGLETON)
            except IntegrityError:  # created concurrently
                pass
            row = query.get(pk=_SINGLETON)
        return row

    def _check_owner(self, owner: str | None, now: datetime) -> None:
        """Fencing: inside the caller's transaction, lock the lease row and check ``owner``."""
        if owner is None:
            return
        lease = self._lease_row(lock=True)
        if lease.owner != owner or lease.expires_at is None or lease.expires_at <= now:
            raise LeaseLostError(f"beat {owner!r} does not hold the leader lease")

    # -- management ----------------------------------------------------------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        try:
            with self._errors(), transaction.atomic(using=self.using):
                row: m.Job | None = self._jobs().select_for_update().filter(pk=job.id).first()
                if row is not None and not replace_existing:
                    raise ConflictingIdError(job.id)
                revision = row.revision + 1 if row is not None else 1
                if row is None:
                    row = m.Job(id=job.id)
                fill_row(row, job)
                row.revision = revision
                row.claimed_by, row.claimed_until = "", None
                row.save(using=self.using, force_insert=revision == 1)
                self._bump()
        except IntegrityError as exc:
            raise ConflictingIdError(job.id) from exc
        job.revision = revision

    def update_job(self, job: Job) -> None:
        with self._errors(), transaction.atomic(using=self.using):
            row: m.Job | None = self._jobs().select_for_update().filter(pk=job.id).first()
            if row is None:
                raise JobLookupError(job.id)
            fill_row(row, job)
            row.revision += 1
            row.save(using=self.using)
            self._bump()
        job.revision = row.revision

    def remove_job(self, job_id: str) -> bool:
        with self._errors(), transaction.atomic(using=self.using):
            deleted, _ = self._jobs().filter(pk=job_id).delete()
            if deleted:
                self._bump()
        return bool(deleted)

    def get_job(self, job_id: str) -> Job | None:
        with self._errors():
            row: m.Job | None = self._jobs().filter(pk=job_id).first()
            if row is None:
                return None
            running = self._runs().in_flight(self._clock.now()).filter(job_id=job_id).count()
        return job_from_row(row, running=running)

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        by_value = {status.value: status for status in JobStatus}
        with self._errors():
            for value, n in self._jobs().values_list("status").annotate(n=Count("pk")).order_by():
                if value in by_value:
                    counts[by_value[value]] += n
        return counts

    def get_jobs(self, status: JobStatus | None = None) -> list[Job]:
        now = self._clock.now()
        with self._errors():
            rows = self._jobs().annotate(
                n_running=Count("runs", filter=Q(runs__outcome=_RUNNING, runs__expires_at__gt=now))
            )
            if status is not None:
                rows = rows.filter(status=JobStatus(status).value)
            rows = rows.order_by(F("next_run_time").asc(nulls_last=True), "id")
            jobs = []
            for row in rows:
                try:
                    jobs.append(job_from_row(row, running=row.n_running))
                except SerializationError as exc:
                    logger.warning("skipping unreadable job: %s", exc)
        return jobs

    # -- the beat ------------------------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        with self._errors():
            earliest: datetime | None = (
                self._jobs()
                .schedulable()
                .unclaimed(self._clock.now())
                .order_by("next_run_time")
                .values_list("next_run_time", flat=True)
                .first()
            )
            # A claim left by a beat that died makes its job due again when it expires.
            claim_deadline: datetime | None = (
                self._jobs()
                .filter(claimed_until__isnull=False)
                .order_by("claimed_until")
                .values_list("claimed_until", flat=True)
                .first()
            )
        if claim_deadline is not None and (earliest is None or claim_deadline < earliest):
            return claim_deadline
        return earliest

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        if limit <= 0:
            return []
        until = now + timedelta(seconds=claim_ttl)
        claimed_by = owner or ""
        with self._errors(), transaction.atomic(using=self.using):
            self._check_owner(owner, now)
            due = self._jobs().due(now).order_by("next_run_time", "id")
            if self._skip_locked:
                rows = list(due.select_for_update(skip_locked=True)[:limit])
                self._jobs().filter(pk__in=[row.pk for row in rows]).update(
                    claimed_by=claimed_by, claimed_until=until
                )
            else:
                # No row locks here (SQLite): a conditional UPDATE per row claims it only if
                # nobody claimed it since it was read.
                rows = []
                for row in due[:limit]:
                    won = (
                        self._jobs()
                        .filter(pk=row.pk)
                        .unclaimed(now)
                        .update(claimed_by=claimed_by, claimed_until=until)
                    )
                    if won:
                        rows.append(row)
            running = self._running_counts([row.pk for row in rows], now)
            jobs: list[Job] = []
            for row in rows:
                try:
                    jobs.append(job_from_row(row, running=running.get(row.pk, 0)))
                except SerializationError as exc:
                    # One unreadable job must not stop the beat: fail it and go on.
                    logger.error("%s; marking it failed", exc)
                    self._jobs().filter(pk=row.pk).update(
                        status=JobStatus.FAILED.value,
                        next_run_time=None,
                        last_error=str(exc),
                        claimed_by="",
                        claimed_until=None,
                    )
        return jobs

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        if not releases and owner is None:
            return
        now = self._clock.now()
        with self._errors(), transaction.atomic(using=self.using):
            self._check_owner(owner, now)
            query = self._jobs().filter(pk__in=[r.job_id for r in releases])
            if connections[self.using].features.has_select_for_update:
                query = query.select_for_update()
            rows = {row.pk: row for row in query}
            history: list[m.JobRun] = []
            for release in releases:
                row = rows.get(release.job_id)
                if row is None:
                    continue
                row.claimed_by, row.claimed_until = "", None
                row.total_run_count += len(release.fired)
                row.misfire_count += release.missed
                row.skip_count += release.skipped
                fields = ["claimed_by", "claimed_until", "total_run_count", "misfire_count", "skip_count"]
                if release.last_run_time is not None:
                    row.last_run_time = release.last_run_time
                    fields.append("last_run_time")
                if release.error is not None:
                    row.last_error = release.error
                    fields.append("last_error")
                if row.revision == release.revision:
                    row.next_run_time = release.next_run_time
                    row.status = release.status.value
                    fields += ["next_run_time", "status"]
                row.save(using=self.using, update_fields=[*fields, "updated_at"])
                task_ids = release.task_ids or tuple(fire_task_id(row.pk, at) for at in release.fired)
                history.extend(
                    m.JobRun(job_id=row.pk, scheduled_at=at, dispatched_at=now, task_id=task_id)
                    for at, task_id in zip(release.fired, task_ids, strict=False)
                )
            self._record_dispatches(history)

    def _record_dispatches(self, runs: list[m.JobRun]) -> None:
        if not runs:
            return
        self._runs().bulk_create(runs, ignore_conflicts=True)
        # A worker may have reported the start before the beat got here (or a re-planned fire
        # was sent again): complete the rows it created instead of duplicating them.
        by_task = {run.task_id: run for run in runs}
        incomplete = self._runs().filter(task_id__in=list(by_task), scheduled_at__isnull=True)
        for existing in incomplete:
            run = by_task[existing.task_id]
            existing.scheduled_at, existing.dispatched_at = run.scheduled_at, run.dispatched_at
            existing.save(using=self.using, update_fields=["scheduled_at", "dispatched_at"])

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """Add a run to the history for a fire sent outside the beat (the admin's "run now")."""
        with self._errors(), transaction.atomic(using=self.using):
            if self._jobs().filter(pk=job_id).exists():
                self._record_dispatches(
                    [
                        m.JobRun(
                            job_id=job_id,
                            scheduled_at=scheduled_at,
                            dispatched_at=self._clock.now(),
                            task_id=task_id,
                        )
                    ]
                )

    def due_count(self, now: datetime) -> int:
        with self._errors():
            count: int = self._jobs().due(now).count()
        return count

    # -- run state -----------------------------------------------------------------------------

    def run_started(self, job_id: str, task_id: str, *, started_at: datetime, timeout: float) -> None:
        expires_at = started_at + timedelta(seconds=timeout)
        with self._errors(), transaction.atomic(using=self.using):
            if not self._jobs().filter(pk=job_id).exists():
                return
            updated = (
                self._runs()
                .filter(task_id=task_id)
                .update(outcome=_RUNNING, started_at=started_at, expires_at=expires_at)
            )
            if not updated:
                try:
                    with transaction.atomic(using=self.using):
                        self._runs().create(
                            job_id=job_id,
                            task_id=task_id,
                            outcome=_RUNNING,
                            started_at=started_at,
                            expires_at=expires_at,
                        )
                except IntegrityError:  # the beat recorded the dispatch meanwhile
                    self._runs().filter(task_id=task_id).update(
                        outcome=_RUNNING, started_at=started_at, expires_at=expires_at
                    )

    def run_finished(
        self,
        job_id: str,
        task_id: str,
        *,
        finished_at: datetime,
        duration: float | None,
        error: str | None,
    ) -> None:
        outcome = m.JobRun.Outcome.FAILED if error is not None else m.JobRun.Outcome.SUCCEEDED
        with self._errors(), transaction.atomic(using=self.using):
            query = self._jobs().filter(pk=job_id)
            if connections[self.using].features.has_select_for_update:
                query = query.select_for_update()
            row: m.Job | None = query.first()
            if row is None:
                return
            ended = {
                "outcome": outcome,
                "finished_at": finished_at,
                "duration": duration,
                "error": error or "",
            }
            if not self._runs().filter(task_id=task_id).update(**ended):
                try:
                    with transaction.atomic(using=self.using):
                        self._runs().create(job_id=job_id, task_id=task_id, **ended)
                except IntegrityError:
                    self._runs().filter(task_id=task_id).update(**ended)
            row.last_finished_at = finished_at
            row.last_duration = duration
            row.status = status_after_run(JobStatus(row.status), row.next_run_time, error).value
            if error is not None:
                row.last_error = error
            row.save(
                using=self.using,
                update_fields=["last_finished_at", "last_duration", "status", "last_error", "updated_at"],
            )
            # A finished run frees a max_instances slot: wake the beat.
            self._bump()

    def running_count(self, now: datetime) -> int:
        with self._errors():
            count: int = self._runs().in_flight(now).count()
        return count

    # -- leadership ----------------------------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        expires = now + timedelta(seconds=ttl)
        with self._errors(), transaction.atomic(using=self.using):
            lease = self._lease_row(lock=True)
            if lease.owner == owner:
                lease.expires_at = expires
                if lease.acquired_at is None:
                    lease.acquired_at = now
            elif not lease.owner or lease.expires_at is None or lease.expires_at <= now:
                lease.owner, lease.acquired_at, lease.expires_at = owner, now, expires
            else:
                return False
            lease.save(using=self.using)
        return True

    def release_lease(self, owner: str) -> None:
        with self._errors():
            m.Lease.objects.using(self.using).filter(pk=_SINGLETON, owner=owner).update(
                owner="", acquired_at=None, expires_at=None
            )

    def get_lease(self) -> LeaseInfo | None:
        with self._errors():
            lease: m.Lease | None = m.Lease.objects.using(self.using).filter(pk=_SINGLETON).first()
        if lease is None or not lease.owner or lease.acquired_at is None or lease.expires_at is None:
            return None
        return LeaseInfo(owner=lease.owner, acquired_at=lease.acquired_at, expires_at=lease.expires_at)

    def write_status(self, status: BeatStatus) -> None:
        with self._errors():
            m.BeatState.objects.using(self.using).update_or_create(
                pk=_SINGLETON,
                defaults={
                    "owner": status.owner,
                    "leader_since": status.leader_since,
                    "last_tick_at": status.last_tick_at,
                    "due_backlog": status.due_backlog,
                    "jobs_fired": status.jobs_fired,
                    "jobs_missed": status.jobs_missed,
                    "jobs_skipped": status.jobs_skipped,
                },
            )

    def read_meta(self, key: str) -> str | None:
        with self._errors():
            row: m.MetaValue | None = m.MetaValue.objects.using(self.using).filter(pk=key).first()
        return None if row is None else row.value

    def write_meta(self, key: str, value: str) -> None:
        with self._errors():
            m.MetaValue.objects.using(self.using).update_or_create(pk=key, defaults={"value": value})

    def read_status(self) -> BeatStatus | None:
        with self._errors():
            row: m.BeatState | None = m.BeatState.objects.using(self.using).filter(pk=_SINGLETON).first()
        if row is None:
            return None
        return BeatStatus(
            owner=row.owner,
            leader_since=row.leader_since,
            last_tick_at=row.last_tick_at,
            due_backlog=row.due_backlog,
            jobs_fired=row.jobs_fired,
            jobs_missed=row.jobs_missed,
            jobs_skipped=row.jobs_skipped,
        )

    # -- changes -------------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Poll the change counter every ``poll_interval`` seconds until it moves.

        The baseline is the version seen by the previous call, so a change made while the
        beat was busy ticking is reported at once rather than lost.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._seen_version is None:
            self._seen_version = self.change_version()
        while True:
            version = self.change_version()
            if version != self._seen_version:
                self._seen_version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.poll_interval, remaining))

    def close(self) -> None:
        connection = connections[self.using]
        if not connection.in_atomic_block:
            connection.close()
