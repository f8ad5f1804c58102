"""The management API: add, inspect, pause, resume and remove jobs in a store.

:class:`JobManager` is what application code holds (``beatx.get_scheduler()``), and what the
in-process :class:`beatx.Scheduler` extends with an event loop.
"""

from __future__ import annotations

import enum
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import Dispatcher, is_transient
from beatx.errors import (
    BeatxError,
    ConfigurationError,
    ConflictingIdError,
    InvalidJobError,
    JobLookupError,
    PermanentDispatchError,
    RevisionConflictError,
    TransientDispatchError,
)
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import STATE_FIELDS, Fire, Job, JobDefaults, JobFunc, JobStatus, func_ref
from beatx.store_watch import read_data_loss
from beatx.stores.base import JobStore
from beatx.triggers import Trigger, build_trigger
from beatx.triggers.base import get_timezone

__all__ = ["DEFAULT", "JobManager", "SchedulerHealth"]

_ONE_MICROSECOND = timedelta(microseconds=1)
#: How often a management write that raced another write is retried from a fresh read.
CAS_ATTEMPTS = 20


class _Default(enum.Enum):
    token = 0

    def __repr__(self) -> str:
        return "DEFAULT"


#: Marks a policy argument that was not given, so the scheduler's ``job_defaults`` apply.
DEFAULT = _Default.token


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerHealth:
    """What a person or a probe wants to know about the running beat."""

    leader: str | None
    leader_since: datetime | None
    lease_expires_at: datetime | None
    last_tick_at: datetime | None
    due_backlog: int
    jobs_fired: int
    jobs_missed: int
    jobs_skipped: int
    #: The last time a beat found the store emptied, and what it restored (None: never).
    data_loss: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "leader_since": self.leader_since,
            "lease_expires_at": self.lease_expires_at,
            "last_tick_at": self.last_tick_at,
            "due_backlog": self.due_backlog,
            "jobs_fired": self.jobs_fired,
            "jobs_missed": self.jobs_missed,
            "jobs_skipped": self.jobs_skipped,
            "data_loss": self.data_loss,
        }


class JobManager:
    """Manage the jobs of one store.

    :param timezone: the default timezone of cron triggers and of naive datetimes.
    :param job_defaults: policy values for jobs that do not set their own (see
        :class:`beatx.JobDefaults`).
    :param dispatcher: used by :meth:`run_job_now`; without one, that method refuses.
    :param func_validator: called with each new job's ``func``; raises to refuse it.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        timezone: str | tzinfo = "UTC",
        job_defaults: JobDefaults | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        events: EventBus | None = None,
        dispatcher: Dispatcher | None = None,
        func_validator: Callable[[JobFunc], None] | None = None,
    ) -> None:
        self.store = store
        try:
            self.timezone = get_timezone(timezone)
        except ValueError as exc:
            raise ConfigurationError(f"timezone: {exc}") from exc
        self.job_defaults = (
            job_defaults if isinstance(job_defaults, JobDefaults) else JobDefaults.from_mapping(job_defaults)
        )
        self.clock = clock or SystemClock()
        self.events = events or EventBus()
        self.dispatcher = dispatcher
        self.func_validator = func_validator
        self._handed_out: weakref.WeakValueDictionary[str, Job] = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        # Which store the jobs go to; one without a repr of its own shows as its class name.
        store = self.store
        shown = f"{type(store).__name__}()" if type(store).__repr__ is object.__repr__ else repr(store)
        return f"JobManager(store={shown})"

    # -- building jobs -------------------------------------------------------------------------

    def build_trigger(self, trigger: Trigger | str | None, trigger_args: dict[str, Any]) -> Trigger:
        """A trigger from an object, or a kind name plus keyword arguments."""
        if isinstance(trigger, Trigger):
            if trigger_args:
                raise InvalidJobError(
                    f"unexpected argument(s) {', '.join(sorted(trigger_args))} next to a trigger object"
                )
            return trigger
        if trigger is None:
            raise InvalidJobError(
                "a job needs a trigger: a Trigger object or 'interval' / 'cron' / 'date' with its arguments"
            )
        return build_trigger(trigger, **trigger_args)

    def build_job(
        self,
        func: JobFunc,
        trigger: Trigger | str | None = None,
        *,
        id: str | None = None,
        job_id: str | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        max_instances: int | _Default = DEFAULT,
        misfire_grace_time: float | None | _Default = DEFAULT,
        coalesce: bool | _Default = DEFAULT,
        paused: bool = False,
        **trigger_args: Any,
    ) -> Job:
        """Build a job as :meth:`add_job` would, without storing it; its trigger is left
        unresolved and it has no next run time yet."""
        if id is not None and job_id is not None and id != job_id:
            raise InvalidJobError(f"id {id!r} and job_id {job_id!r} disagree; give one")
        built = self.build_trigger(trigger, trigger_args)
        if self.func_validator is not None:
            self.func_validator(func)
        job = Job(
            id=id or job_id or uuid.uuid4().hex,
            name=name or "",
            func=func,
            trigger=built,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            max_instances=self.job_defaults.max_instances if max_instances is DEFAULT else max_instances,
            misfire_grace_time=(
                self.job_defaults.misfire_grace_time if misfire_grace_time is DEFAULT else misfire_grace_time
            ),
            coalesce=self.job_defaults.coalesce if coalesce is DEFAULT else coalesce,
            status=JobStatus.PAUSED if paused else JobStatus.ACTIVE,
        )
        if not callable(job.func):
            func_ref(job.func)
        return job

    def add_job(
        self,
        func: JobFunc,
        trigger: Trigger | str | None = None,
        *,
        replace_existing: bool = False,
        **fields: Any,
    ) -> Job:
        """Add a job and return it.

        ``trigger`` is a trigger object, or ``"interval"``, ``"cron"`` or ``"date"`` with the
        trigger's arguments as keywords (``trigger="date", run_date=...``). Other keywords:
        ``id`` (or its alias ``job_id``; a random id when neither is given), ``name``,
        ``args``, ``kwargs``, ``options`` (Celery message options: queue, routing_key,
        exchange, priority, expires, headers), ``max_instances``, ``misfire_grace_time``,
        ``coalesce`` (left out: the scheduler's ``job_defaults``) and ``paused``.

        :raises ConflictingIdError: if the id is taken and ``replace_existing`` is false.
        :raises InvalidTriggerError: for bad trigger arguments.
        :raises InvalidJobError: for bad job fields, or a trigger that never fires.
        """
        job = self.build_job(func, trigger, **fields)
        self._schedule_new(job)
        self.store.add_job(job, replace_existing=replace_existing)
        self._handed_out[job.id] = job
        self._emit(EventKind.JOB_ADDED, job.id)
        self._changed()
        return job

    def ensure_job(
        self, func: JobFunc, trigger: Trigger | str | None = None, *, id: str, **fields: Any
    ) -> Job:
        """Add the job, or bring the stored job with this id to this definition while keeping
        its run state (counters, last run, a paused status). Its next run time is recomputed
        only if the trigger changed. Idempotent: configuration and ``beat_schedule`` entries
        are applied with it at every start.
        """
        job = self.build_job(func, trigger, id=id, **fields)
        existing = self.store.get_job(id)
        if existing is None:
            new = job.copy()
            self._schedule_new(new)
            try:
                self.store.add_job(new)
            except ConflictingIdError:
                # Another process (a second beat starting at the same moment) added it first;
                # the unresolved definition is compared with its, as at any start.
                if self.store.get_job(id) is None:
                    raise
            else:
                self._emit(EventKind.JOB_ADDED, new.id)
                self._changed()
                return new
        return self._compare_and_set(id, lambda current: self._ensured(job, current), None) or job

    def _ensured(self, wanted: Job, existing: Job) -> tuple[Job, bool] | None:
        """``wanted`` as a write over ``existing`` (None: nothing to change), and whether it
        reschedules (only a changed trigger does)."""
        job = wanted.copy()
        # Resolved at the instant the stored trigger was, an unchanged trigger compares equal.
        anchor = existing.trigger.anchor or self.clock.now()
        same_trigger = job.trigger.resolve(now=anchor, timezone=self.timezone) == existing.trigger
        definition = ("name", "args", "kwargs", "options", "max_instances", "misfire_grace_time", "coalesce")
        if (
            same_trigger
            and job.func_ref == existing.func_ref
            and all(getattr(job, f) == getattr(existing, f) for f in definition)
        ):
            return None
        for state in STATE_FIELDS:
            setattr(job, state, getattr(existing, state))
        if same_trigger:
            job.trigger, job.next_run_time = existing.trigger, existing.next_run_time
            return job, False
        self.schedule(job, now=self.clock.now())
        if job.next_run_time is None and job.status.schedulable:
            job.status = JobStatus.COMPLETED
        return job, True

    def _compare_and_set(
        self,
        job_id: str,
        change: Callable[[Job], tuple[Job, bool] | None],
        expected_revision: int | None,
    ) -> Job | None:
        """Read the job, let ``change`` build the write (the new job and whether it
        reschedules, or None for no write), and store it only if nobody wrote the job since
        it was read; retried from a fresh read when someone did, unless the caller named the
        ``expected_revision`` (then :class:`RevisionConflictError` is raised). Returns the job
        as stored (or as read, when nothing was written).

        :raises JobLookupError: if there is no such job.
        """
        conflict: RevisionConflictError | None = None
        for _ in range(CAS_ATTEMPTS):
            current = self.store.get_job(job_id)
            if current is None:
                raise JobLookupError(job_id)
            read = current.revision
            if expected_revision is not None and read != expected_revision:
                raise RevisionConflictError(job_id, expected_revision, read)
            write = change(current)
            if write is None:
                return current
            job, reschedule = write
            try:
                self.store.update_job(job, expected_revision=read, reschedule=reschedule)
            except RevisionConflictError as exc:
                if expected_revision is not None:
                    raise
                conflict = exc
                continue
            self._emit(EventKind.JOB_CHANGED, job.id)
            self._changed()
            return job
        assert conflict is not None
        raise conflict

    def _schedule_new(self, job: Job) -> None:
        self.schedule(job, now=self.clock.now())
        if job.next_run_time is None and job.status is JobStatus.ACTIVE:
            raise InvalidJobError(f"job {job.id!r}: trigger {job.trigger.describe()!r} never fires")

    def schedule(self, job: Job, *, now: datetime) -> None:
        """Resolve the job's trigger defaults and set its first ``next_run_time``."""
        job.trigger = job.trigger.resolve(now=now, timezone=self.timezone)
        job.next_run_time = job.trigger.first_fire_time(now)

    # -- reading -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, freshly read from the store, or ``None``."""
        return self.store.get_job(job_id)

    def get_jobs(self, status: JobStatus | str | None = None) -> list[Job]:
        """Every job, or those with ``status``, ordered by next run time."""
        return self.store.get_jobs(None if status is None else JobStatus(status))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job as a plain dict (id, name, trigger, status, next run time, counters...)."""
        return [job.describe() for job in self.store.get_jobs()]

    def health(self) -> SchedulerHealth:
        """Which beat leads, since when, when it last ticked, and the due backlog."""
        lease = self.store.get_lease()
        status = self.store.read_status()
        return SchedulerHealth(
            leader=lease.owner if lease else None,
            leader_since=lease.acquired_at if lease else None,
            lease_expires_at=lease.expires_at if lease else None,
            last_tick_at=status.last_tick_at if status else None,
            due_backlog=self.store.due_count(self.clock.now()),
            jobs_fired=status.jobs_fired if status else 0,
            jobs_missed=status.jobs_missed if status else 0,
            jobs_skipped=status.jobs_skipped if status else 0,
            data_loss=loss.describe() if (loss := read_data_loss(self.store)) is not None else None,
        )

    # -- changing ------------------------------------------------------------------------------

    def pause_job(self, job_id: str) -> bool:
        """Stop a job from firing until resumed. Returns False if there is no such job or it
        has finished (COMPLETED)."""

        def pause(job: Job) -> tuple[Job, bool] | None:
            if job.status in (JobStatus.PAUSED, JobStatus.COMPLETED, JobStatus.CANCELLED):
                return None
            job.status = JobStatus.PAUSED
            return job, True

        try:
            job = self._compare_and_set(job_id, pause, None)
        except JobLookupError:
            return False
        return job is not None and job.status is JobStatus.PAUSED

    def resume_job(self, job_id: str) -> bool:
        """Let a paused job fire again, from now on: its next run is its first fire time at or
        after now, so the paused period is not caught up. A one-shot whose time passed while
        paused ends COMPLETED. Returns False if there is no such job or it is not paused."""
        resumed = False

        def resume(job: Job) -> tuple[Job, bool] | None:
            nonlocal resumed
            resumed = False
            if job.status is not JobStatus.PAUSED:
                return None
            self._reschedule_from_now(job)
            resumed = True
            return job, True

        try:
            self._compare_and_set(job_id, resume, None)
        except JobLookupError:
            return False
        return resumed

    def _reschedule_from_now(self, job: Job) -> None:
        """Next run: the first fire time at or after now (never one the job already ran)."""
        now = self.clock.now()
        after = now - _ONE_MICROSECOND
        if job.last_run_time is not None and job.last_run_time > after:
            after = job.last_run_time
        job.next_run_time = job.trigger.next_fire_time(after)
        job.status = JobStatus.ACTIVE if job.next_run_time is not None else JobStatus.COMPLETED

    def modify_job(self, job_id: str, *, expected_revision: int | None = None, **changes: Any) -> Job:
        """Change fields of a job (``trigger``, ``args``, ``kwargs``, ``name``, ``options``,
        ``max_instances``, ``misfire_grace_time``, ``coalesce``). A new trigger reschedules
        the job from now; so does any edit of a job that stopped as FAILED with no next run
        (a fire that could never be sent, a trigger that raised). Run state (counters, last
        run) is never written, so an edit cannot undo what a running beat wrote.

        :param expected_revision: the ``revision`` the caller read; the edit is applied only
            if the job is still at it (optimistic concurrency). Without it, an edit that
            races another write is retried from a fresh read.
        :raises JobLookupError: if there is no such job.
        :raises RevisionConflictError: if ``expected_revision`` is given and the job moved on.
        """
        allowed = {
            "trigger",
            "args",
            "kwargs",
            "name",
            "options",
            "max_instances",
            "misfire_grace_time",
            "coalesce",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidJobError(f"modify_job: cannot change {', '.join(unknown)}")

        def modify(job: Job) -> tuple[Job, bool]:
            values = {field: getattr(job, field) for field in allowed} | changes
            updated = Job(
                id=job.id,
                func=job.func,
                status=job.status,
                last_run_time=job.last_run_time,
                next_run_time=job.next_run_time,
                total_run_count=job.total_run_count,
                misfire_count=job.misfire_count,
                skip_count=job.skip_count,
                last_error=job.last_error,
                last_finished_at=job.last_finished_at,
                last_duration=job.last_duration,
                revision=job.revision,
                **values,
            )
            if "trigger" in changes:
                self.schedule(updated, now=self.clock.now())
                if updated.next_run_time is None and updated.status.schedulable:
                    updated.status = JobStatus.COMPLETED
                return updated, True
            if updated.status is JobStatus.FAILED and updated.next_run_time is None:
                self._reschedule_from_now(updated)
                return updated, True
            return updated, False

        job = self._compare_and_set(job_id, modify, expected_revision)
        assert job is not None
        return job

    def remove_job(self, job_id: str) -> bool:
        """Remove a job. Returns whether it existed. A job object returned earlier by
        ``add_job`` shows status CANCELLED afterwards."""
        removed = self.store.remove_job(job_id)
        if removed:
            handed_out = self._handed_out.pop(job_id, None)
            if handed_out is not None:
                handed_out.status = JobStatus.CANCELLED
            self._emit(EventKind.JOB_REMOVED, job_id)
            self._changed()
        return removed

    def run_job_now(self, job_id: str) -> str:
        """Send one fire of the job now, outside its schedule (its next run is unchanged).

        Returns the fire's task id.

        :raises JobLookupError: if there is no such job.
        :raises ConfigurationError: if this manager has no dispatcher.
        :raises DispatchError: if the fire could not be sent (``TransientDispatchError``: the
            broker is down or slow; ``PermanentDispatchError``: it can never be sent as is).
        """
        job = self.store.get_job(job_id)
        if job is None:
            raise JobLookupError(job_id)
        if self.dispatcher is None:
            raise ConfigurationError("run_job_now needs a dispatcher; this scheduler has none")
        fire = Fire(job, self.clock.now())
        (error,) = self.dispatcher.dispatch([fire])
        if isinstance(error, BeatxError):
            raise error
        if error is not None:
            kind = TransientDispatchError if is_transient(error) else PermanentDispatchError
            raise kind(f"job {job_id!r}: the fire could not be sent: {error!r}") from error
        return fire.task_id

    def _emit(self, kind: EventKind, job_id: str) -> None:
        if self.events.has_listeners:
            self.events.emit(Event(kind, self.clock.now(), job_id))

    def _changed(self) -> None:
        """Called after every change; the in-process scheduler wakes its loop here."""
