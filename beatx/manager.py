"""The management API: add, inspect, pause, resume and remove jobs in a store.

:class:`JobManager` is what application code holds (``beatx.get_scheduler()``), and what the
in-process :class:`beatx.Scheduler` extends with an event loop.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from beatx.audit import JobChange, diff_jobs
from beatx.backfill import (
    BACKFILL_OVERLAPS,
    BackfillResult,
    backfill_key,
    covered_ranges,
    fire_times_between,
    record_range,
)
from beatx.calendar_book import calendar_view, effective_trigger
from beatx.calendars import ExclusionCalendar
from beatx.clock import Clock, SystemClock
from beatx.dispatch.base import Dispatcher, is_transient
from beatx.engine.overlap import LEDGER_READ, MANUAL_OVERLAPS, in_flight, manual_fire
from beatx.errors import (
    BeatxError,
    CalendarInUseError,
    ConfigurationError,
    ConflictingIdError,
    InvalidCalendarError,
    InvalidJobError,
    JobClaimedError,
    JobLookupError,
    PermanentDispatchError,
    RevisionConflictError,
    SerializationError,
    StoreError,
    TransientDispatchError,
)
from beatx.events import Event, EventBus, EventKind
from beatx.exclusion import ExcludingTrigger, PreviewFire, preview_fires
from beatx.jitter import due_time, nominal_time
from beatx.jobs import (
    ALERT_FIELDS,
    EXCLUSION_FIELDS,
    POLICY_FIELDS,
    STATE_FIELDS,
    CatchUp,
    Fire,
    Job,
    JobDefaults,
    JobFunc,
    JobStatus,
    Overlap,
    func_ref,
)
from beatx.ledger import RunRecord
from beatx.store_watch import read_data_loss
from beatx.stores.base import JobRelease, JobStore
from beatx.stores.calendar_base import calendar_storage_of
from beatx.triggers import Trigger, build_trigger
from beatx.triggers.base import get_timezone
from beatx.write_errors import refused_job_values

__all__ = ["DEFAULT", "JobManager", "SchedulerHealth"]

_ONE_MICROSECOND = timedelta(microseconds=1)
#: How often a management write that raced another write is retried from a fresh read.
CAS_ATTEMPTS = 20
#: How long ``run_job_now`` waits for a beat's claim on the job to end (seconds): longer than
#: a beat holds a fire back for a run in flight (``beatx.engine.engine.MAX_WAIT``, 5 s).
JOB_CLAIM_WAIT = 6.0
#: How often ``run_job_now`` tries the claim again meanwhile (seconds).
JOB_CLAIM_RETRY = 0.02
#: The lifetime of ``run_job_now``'s claim (seconds): it ends with its write-back; a process
#: that dies before leaves the job to the beats after this.
MANUAL_CLAIM_TTL = 60.0


logger = logging.getLogger("beatx.manager")


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
    :param source: what this manager's changes go through, as the audit log records it
        (``api`` by default; ``cli``, ``admin``, ``yaml``, ``beat_schedule``...). Each write
        method takes ``actor=``: who makes the change (see :meth:`job_history`); ``actor``
        here is the default for those that do not say.
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
        source: str = "api",
        actor: str | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.actor = actor
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
        catchup: CatchUp | str | None = None,
        catchup_window: float | None = None,
        catchup_limit: int | None = None,
        jitter: float | None = None,
        max_runs: int | None = None,
        overlap: Overlap | str = Overlap.SKIP,
        pause_after_failures: int | None = None,
        exclude: Iterable[str] | str = (),
        on_excluded: str = "skip",
        expect_every: float | None = None,
        max_lateness: float | None = None,
        max_runtime: float | None = None,
        alert_after_failures: int | None = None,
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
        if coalesce is not DEFAULT:
            _check_coalesce_agrees(coalesce, catchup)
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
            catchup=catchup,  # type: ignore[arg-type]  # a str is checked and converted by Job
            catchup_window=catchup_window,
            catchup_limit=catchup_limit,
            jitter=jitter,
            max_runs=max_runs,
            overlap=overlap,  # type: ignore[arg-type]  # a str is checked and converted by Job
            pause_after_failures=pause_after_failures,
            exclude=exclude,  # type: ignore[arg-type]  # Job checks the names and makes a tuple
            on_excluded=on_excluded,
            expect_every=expect_every,
            max_lateness=max_lateness,
            max_runtime=max_runtime,
            alert_after_failures=alert_after_failures,
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
        actor: str | None = None,
        **fields: Any,
    ) -> Job:
        """Add a job and return it (``actor``: who, for the audit log).

        ``trigger`` is a trigger object, or ``"interval"``, ``"cron"`` or ``"date"`` with the
        trigger's arguments as keywords (``trigger="date", run_date=...``). Other keywords:
        ``id`` (or its alias ``job_id``; a random id when neither is given), ``name``,
        ``args``, ``kwargs``, ``options`` (Celery message options: queue, routing_key,
        exchange, priority, expires, headers), ``max_instances``, ``misfire_grace_time``,
        ``coalesce`` (left out: the scheduler's ``job_defaults``), ``catchup``
        (``"latest"``, ``"earliest"``, ``"all"`` or ``"none"``; left out: from ``coalesce``),
        ``catchup_window``, ``catchup_limit``, ``jitter`` (seconds a fire may go out late, see
        :mod:`beatx.jitter`), ``max_runs`` (the most fires in the job's life), ``overlap``
        (what a fire does while ``max_instances`` runs are in flight: ``"skip"``,
        ``"buffer_one"``, ``"buffer_all"``, ``"cancel_other"``, ``"terminate_other"``,
        ``"allow_all"``; see :class:`~beatx.jobs.Overlap`), ``pause_after_failures`` (pause
        the job after that many consecutive failed runs), ``exclude``
        (names of exclusion calendars) with ``on_excluded`` (``"skip"`` or
        ``"next_business_day"``, see :mod:`beatx.exclusion`), the alert rules
        ``expect_every``, ``max_lateness``, ``max_runtime`` (seconds) and
        ``alert_after_failures`` (see :mod:`beatx.alerts`), and ``paused``.

        :raises ConflictingIdError: if the id is taken and ``replace_existing`` is false.
        :raises InvalidTriggerError: for bad trigger arguments.
        :raises InvalidJobError: for bad job fields, or a trigger that never fires.
        :raises CalendarLookupError: for a calendar in ``exclude`` the store does not have.
        """
        job = self.build_job(func, trigger, **fields)
        self._schedule_new(job)
        before = self._read_for_audit(job.id) if replace_existing else None
        with refused_job_values(job):
            self.store.add_job(job, replace_existing=replace_existing)
        self._audit("replaced" if before is not None else "added", job.id, before, job, actor)
        self._handed_out[job.id] = job
        self._emit(EventKind.JOB_ADDED, job.id)
        self._changed()
        return job

    def ensure_job(
        self,
        func: JobFunc,
        trigger: Trigger | str | None = None,
        *,
        id: str,
        actor: str | None = None,
        **fields: Any,
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
                with refused_job_values(new):
                    self.store.add_job(new)
            except ConflictingIdError:
                # Another process (a second beat starting at the same moment) added it first;
                # the unresolved definition is compared with its, as at any start.
                if self.store.get_job(id) is None:
                    raise
            else:
                self._audit("added", new.id, None, new, actor)
                self._emit(EventKind.JOB_ADDED, new.id)
                self._changed()
                return new
        return (
            self._compare_and_set(id, lambda current: self._ensured(job, current), None, actor=actor) or job
        )

    def _ensured(self, wanted: Job, existing: Job) -> tuple[Job, bool] | None:
        """``wanted`` as a write over ``existing`` (None: nothing to change), and whether it
        reschedules (only a changed trigger does)."""
        job = wanted.copy()
        # Resolved at the instant the stored trigger was, an unchanged trigger compares equal.
        anchor = existing.trigger.anchor or self.clock.now()
        same_trigger = job.trigger.resolve(now=anchor, timezone=self.timezone) == existing.trigger
        definition = ("name", "args", "kwargs", "options", *POLICY_FIELDS, *ALERT_FIELDS)
        # A job's calendars decide its fire times as much as its trigger does.
        same_calendars = (job.exclude, job.on_excluded) == (existing.exclude, existing.on_excluded)
        same_trigger = same_trigger and same_calendars
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
            if job.jitter != existing.jitter:
                return job, self._rejitter(job, existing)
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
        *,
        action: str = "changed",
        actor: str | None = None,
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
            before = current.copy()
            write = change(current)
            if write is None:
                return current
            job, reschedule = write
            try:
                with refused_job_values(job):
                    self.store.update_job(job, expected_revision=read, reschedule=reschedule)
            except RevisionConflictError as exc:
                if expected_revision is not None:
                    raise
                conflict = exc
                continue
            self._audit(action, job.id, before, job, actor)
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
        """Resolve the job's trigger defaults and set its first ``next_run_time`` (the due
        time of its first fire, with ``jitter``)."""
        job.trigger = job.trigger.resolve(now=now, timezone=self.timezone)
        view = calendar_view(job, self.store)
        job.next_run_time = due_time(view, view.trigger.first_fire_time(now))

    @staticmethod
    def _rejitter(job: Job, existing: Job) -> bool:
        """Move ``job``'s next run (copied from ``existing``) to its fire's due time under
        ``job.jitter``; returns whether it moved (the write then reschedules)."""
        current = existing.next_run_time
        if current is None or not job.status.schedulable:
            return False
        nominal = nominal_time(existing.trigger, current, existing.jitter) if existing.jitter else current
        job.next_run_time = due_time(job, nominal)
        return job.next_run_time != current

    # -- reading -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        """The job with this id, freshly read from the store, or ``None``."""
        return self.store.get_job(job_id)

    def preview_fires(
        self, job_id: str, count: int = 10, *, after: datetime | None = None
    ) -> list[PreviewFire]:
        """The next fire times of a job's own trigger after ``after`` (default: now), until
        ``count`` of them run, each with the reason its exclusion calendars skip it (the CLI's
        ``beatx cron --exclude`` and the admin show those struck out) and, with
        ``on_excluded="next_business_day"``, when it runs instead. A job without calendars
        gets its next ``count`` fire times.

        :raises JobLookupError: if there is no such job.
        :raises CalendarLookupError: if the job names a calendar the store does not have.
        """
        job = self.store.get_job(job_id)
        if job is None:
            raise JobLookupError(job_id)
        start = after or self.clock.now()
        trigger = effective_trigger(job, self.store)
        if isinstance(trigger, ExcludingTrigger):
            return preview_fires(trigger, start, count)
        shown: list[PreviewFire] = []
        fire = trigger.next_fire_time(start)
        while fire is not None and len(shown) < count:
            shown.append(PreviewFire(fire))
            fire = trigger.next_fire_time(fire)
        return shown

    def get_jobs(self, status: JobStatus | str | None = None) -> list[Job]:
        """Every job, or those with ``status``, ordered by next run time."""
        return self.store.get_jobs(None if status is None else JobStatus(status))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job as a plain dict (id, name, trigger, status, next run time, counters...)."""
        return [job.describe() for job in self.store.get_jobs()]

    @contextlib.contextmanager
    def changes_through(self, source: str, actor: str | None = None) -> Iterator[None]:
        """Within the block, this manager's changes are recorded as made through ``source``
        (by ``actor`` when given): ``with manager.changes_through("beat_schedule"): ...``."""
        saved = self.source, self.actor
        self.source, self.actor = source, actor if actor is not None else self.actor
        try:
            yield
        finally:
            self.source, self.actor = saved

    def job_history(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        """The job's audit log, newest first: each change with who (``actor``), through what
        (``source``), when (``at``) and the diff (``changes``: ``{field: [before, after]}``).
        A removed job keeps its log (the last entry says who removed it)."""
        return self.store.job_changes(job_id, limit=limit)

    def _read_for_audit(self, job_id: str) -> Job | None:
        """The job as it is before a write, for the audit log's diff (None if it cannot be read:
        a broken row is still replaced or removed)."""
        try:
            return self.store.get_job(job_id)
        except SerializationError:
            return None

    def _audit(
        self, action: str, job_id: str, before: Job | None, after: Job | None, actor: str | None
    ) -> None:
        """Record a change made (a failure to record it is logged: the change stands)."""
        changes = diff_jobs(before, after)
        if not changes and action not in ("added", "replaced", "removed"):
            return  # a reschedule only (next run time): not a change of the job
        entry = JobChange(
            job_id=job_id,
            at=self.clock.now(),
            action=action,
            source=self.source,
            actor=actor or self.actor,
            changes=changes,
        )
        try:
            self.store.record_change(entry)
        except BeatxError as exc:
            logger.warning("could not record the %s of job %s in its audit log: %s", action, job_id, exc)

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        """The job's latest runs from the store's run ledger, newest first: one record per fire
        (nominal time, task id, sent at, lateness, started, finished, outcome, worker,
        error), and one per write-back that missed or skipped fires (see
        :meth:`beatx.stores.base.JobStorage.job_runs`).

        :raises JobLookupError: if there is no such job.
        """
        if self.store.get_job(job_id) is None:
            raise JobLookupError(job_id)
        return self.store.job_runs(job_id, limit=limit)

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

    def pause_job(
        self, job_id: str, *, note: str | None = None, by: str | None = None, actor: str | None = None
    ) -> bool:
        """Stop a job from firing until resumed, with why (``note``) and who (``by``) for
        people to read (``jobs()``, ``beatx jobs``, the admin); the time is recorded too. A
        paused job given a new note or author keeps its pause and takes them. Returns False if
        there is no such job or it has finished (COMPLETED). ``actor`` (default ``by``): who,
        for the audit log."""
        for name, value in (("note", note), ("by", by)):
            if value is not None and not isinstance(value, str):
                raise InvalidJobError(f"pause_job: {name} must be a string, got {value!r}")
        note, by = (note or "").strip()[:500] or None, (by or "").strip()[:150] or None

        def pause(job: Job) -> tuple[Job, bool] | None:
            if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
                return None
            if job.status is JobStatus.PAUSED:
                if (note is None or note == job.pause_note) and (by is None or by == job.paused_by):
                    return None
                job.pause_note = note if note is not None else job.pause_note
                job.paused_by = by if by is not None else job.paused_by
                return job, False
            job.status = JobStatus.PAUSED
            job.pause_note, job.paused_by, job.paused_at = note, by, self.clock.now()
            return job, True

        try:
            job = self._compare_and_set(job_id, pause, None, action="paused", actor=actor or by)
        except JobLookupError:
            return False
        return job is not None and job.status is JobStatus.PAUSED

    def resume_job(self, job_id: str, *, from_: str | datetime = "now", actor: str | None = None) -> bool:
        """Let a paused job fire again, and clear its pause note. Its next run is:

        - ``from_="now"`` (the default): its first fire time at or after now, so the paused
          period is not caught up;
        - ``from_=<datetime>``: its first fire time at or after that moment (a naive one is
          in the scheduler's timezone); the fires between it and now are late, and the job's
          catch-up policy decides what they do;
        - ``from_="catch_up"``: where it stopped when it was paused: the paused period's fires
          are late, and the job's catch-up policy decides.

        Never a fire at or before the job's last run. A one-shot whose time passed while
        paused ends COMPLETED on a resume from now. Returns False if there is no such job or
        it is not paused. ``actor``: who, for the audit log.

        :raises InvalidJobError: for another ``from_``.
        """
        start: datetime | None = None
        if isinstance(from_, datetime):
            start = from_ if from_.tzinfo is not None else from_.replace(tzinfo=self.timezone)
        elif from_ not in ("now", "catch_up"):
            raise InvalidJobError(f"resume_job: from_ must be 'now', 'catch_up' or a datetime, got {from_!r}")
        resumed = False

        def resume(job: Job) -> tuple[Job, bool] | None:
            nonlocal resumed
            resumed = False
            if job.status is not JobStatus.PAUSED:
                return None
            if from_ == "catch_up" and job.next_run_time is not None:
                job.status = JobStatus.ACTIVE  # from where it stopped
            elif from_ == "catch_up":
                self._reschedule_from_now(job, job.last_run_time or self.clock.now())
            else:
                self._reschedule_from_now(job, start)
            job.pause_note = job.paused_by = job.paused_at = None
            resumed = True
            return job, True

        try:
            self._compare_and_set(job_id, resume, None, action="resumed", actor=actor)
        except JobLookupError:
            return False
        return resumed

    def _reschedule_from_now(self, job: Job, start: datetime | None = None) -> None:
        """Next run: the first fire time at or after now, or ``start`` (never one the job
        already ran)."""
        now = self.clock.now() if start is None else start
        after = now - _ONE_MICROSECOND
        if job.last_run_time is not None and job.last_run_time > after:
            after = job.last_run_time
        view = calendar_view(job, self.store)
        job.next_run_time = due_time(view, view.trigger.next_fire_time(after))
        job.status = JobStatus.ACTIVE if job.next_run_time is not None else JobStatus.COMPLETED

    def modify_job(
        self, job_id: str, *, expected_revision: int | None = None, actor: str | None = None, **changes: Any
    ) -> Job:
        """Change fields of a job (``trigger``, ``args``, ``kwargs``, ``name``, ``options``,
        ``max_instances``, ``misfire_grace_time``, ``coalesce``, ``catchup``,
        ``catchup_window``, ``catchup_limit``, ``jitter``, ``max_runs``, ``overlap``,
        ``pause_after_failures``; ``coalesce`` alone sets ``catchup`` to what it
        stands for; ``exclude``, ``on_excluded``; the alert rules ``expect_every``,
        ``max_lateness``, ``max_runtime``, ``alert_after_failures``). A new trigger (or new exclusion calendars)
        reschedules the job from now; so does any edit of a job that stopped as FAILED with no next run
        (a fire that could never be sent, a trigger that raised). Run state (counters, last
        run) is never written, so an edit cannot undo what a running beat wrote.

        :param expected_revision: the ``revision`` the caller read; the edit is applied only
            if the job is still at it (optimistic concurrency). Without it, an edit that
            races another write is retried from a fresh read.
        :param actor: who, for the audit log.
        :raises JobLookupError: if there is no such job.
        :raises RevisionConflictError: if ``expected_revision`` is given and the job moved on.
        """
        allowed = {
            "trigger",
            "args",
            "kwargs",
            "name",
            "options",
            *POLICY_FIELDS,
            *EXCLUSION_FIELDS,
            *ALERT_FIELDS,
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidJobError(f"modify_job: cannot change {', '.join(unknown)}")
        if "coalesce" in changes:
            _check_coalesce_agrees(changes["coalesce"], changes.get("catchup"))
            changes.setdefault("catchup", None)

        def modify(job: Job) -> tuple[Job, bool]:
            values = {field: getattr(job, field) for field in allowed} | changes
            updated = Job(
                id=job.id,
                func=job.func,
                status=job.status,
                pause_note=job.pause_note,
                paused_by=job.paused_by,
                paused_at=job.paused_at,
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
            new_calendars = (updated.exclude, updated.on_excluded) != (job.exclude, job.on_excluded)
            if "trigger" in changes or new_calendars:
                self.schedule(updated, now=self.clock.now())
                if updated.next_run_time is None and updated.status.schedulable:
                    updated.status = JobStatus.COMPLETED
                return updated, True
            if updated.status is JobStatus.FAILED and updated.next_run_time is None:
                self._reschedule_from_now(updated)
                return updated, True
            if updated.max_runs != job.max_runs:
                if updated.remaining_runs == 0 and updated.status.schedulable:
                    updated.status, updated.next_run_time = JobStatus.COMPLETED, None
                    return updated, True
                if updated.status is JobStatus.COMPLETED and updated.remaining_runs != 0:
                    # Ended by its old max_runs: it goes on from now, if its trigger does.
                    self._reschedule_from_now(updated)
                    return updated, True
            if updated.jitter != job.jitter:
                return updated, self._rejitter(updated, job)
            return updated, False

        job = self._compare_and_set(job_id, modify, expected_revision, actor=actor)
        assert job is not None
        return job

    def remove_job(self, job_id: str, *, actor: str | None = None) -> bool:
        """Remove a job. Returns whether it existed. A job object returned earlier by
        ``add_job`` shows status CANCELLED afterwards. ``actor``: who, for the audit log (which
        keeps the removed job's entries)."""
        before = self._read_for_audit(job_id)
        removed = self.store.remove_job(job_id)
        if removed:
            self._audit("removed", job_id, before, None, actor)
            handed_out = self._handed_out.pop(job_id, None)
            if handed_out is not None:
                handed_out.status = JobStatus.CANCELLED
            self._emit(EventKind.JOB_REMOVED, job_id)
            self._changed()
        return removed

    # -- exclusion calendars -------------------------------------------------------------------

    def add_calendar(
        self, calendar: ExclusionCalendar | None = None, *, replace_existing: bool = False, **fields: Any
    ) -> ExclusionCalendar:
        """Store a named exclusion calendar: an :class:`~beatx.calendars.ExclusionCalendar`,
        or its fields as keywords (``name``, ``dates``, ``date_ranges``, ``weekdays``,
        ``windows``, ``holidays``, ``description``). Replacing a calendar reschedules the
        jobs that name it, from now.

        :raises InvalidCalendarError: for a bad field, or a name that is taken while
            ``replace_existing`` is false.
        """
        if calendar is None:
            try:
                calendar = ExclusionCalendar(**fields)
            except TypeError as exc:
                raise InvalidCalendarError(f"add_calendar: {exc}") from exc
        elif fields:
            unexpected = ", ".join(sorted(fields))
            raise InvalidCalendarError(f"add_calendar: unexpected {unexpected} next to a calendar")
        storage = calendar_storage_of(self.store)
        existing = storage.get_calendar(calendar.name)
        if existing is not None and not replace_existing:
            raise InvalidCalendarError(
                f"an exclusion calendar named {calendar.name!r} exists; pass replace_existing=True to replace it"
            )
        if existing == calendar:
            return calendar
        storage.put_calendar(calendar)
        if existing is not None:
            self._reschedule_calendar_users(calendar.name)
        return calendar

    def get_calendar(self, name: str) -> ExclusionCalendar | None:
        """The exclusion calendar with this name, or None."""
        return calendar_storage_of(self.store).get_calendar(name)

    def get_calendars(self) -> list[ExclusionCalendar]:
        """Every exclusion calendar, by name."""
        return calendar_storage_of(self.store).get_calendars()

    def calendar_users(self, name: str) -> list[str]:
        """The ids of the jobs that name the calendar in ``exclude``."""
        return sorted(job.id for job in self.store.get_jobs() if name in job.exclude)

    def remove_calendar(self, name: str) -> bool:
        """Remove an exclusion calendar; returns whether it existed.

        :raises CalendarInUseError: while jobs name it (take it out of their ``exclude``
            first). A job added naming it in the instant between the check and the removal
            fails at its next plan (``FAILED``, with the missing calendar as its error).
        """
        users = self.calendar_users(name)
        if users:
            raise CalendarInUseError(name, users)
        return calendar_storage_of(self.store).remove_calendar(name)

    def _reschedule_calendar_users(self, name: str) -> None:
        """Recompute, from now, the next run of each schedulable job that names the calendar."""

        def reschedule(job: Job) -> tuple[Job, bool] | None:
            if name not in job.exclude or not job.status.schedulable:
                return None
            status = job.status
            self._reschedule_from_now(job)
            if job.next_run_time is not None:
                job.status = status
            return job, True

        for job_id in self.calendar_users(name):
            try:
                self._compare_and_set(job_id, reschedule, None)
            except JobLookupError:
                continue

    def run_job_now(self, job_id: str, *, overlap: Overlap | str = Overlap.ALLOW_ALL) -> str | None:
        """Send one fire of the job now, outside its schedule (its next run is unchanged).

        Returns the fire's task id, or None when ``overlap`` skipped it.

        The fire goes through the path of a scheduled one: the job is claimed in the store
        (:meth:`~beatx.stores.base.JobStorage.claim_job`), so a beat planning it at the same
        moment is excluded; the overlap policy is applied to the claimed job; the fire is sent
        and recorded in the run ledger (``sent``); and the write-back under the claim ends it.
        While a beat holds the job (for one tick's write-back, or while it holds a fire back
        for a run in flight, up to 5 s), the claim is tried again every
        :data:`JOB_CLAIM_RETRY` seconds for up to :data:`JOB_CLAIM_WAIT`.

        What it counts: a fire sent now is a ``sent`` record of the run ledger, as the beat's,
        so the beat and the next ``run_job_now`` see it in flight (the policies that count the
        fires sent and not started). It is not one of the job's scheduled runs: its
        ``total_run_count`` (and so ``max_runs`` / ``remaining_runs``), ``last_run_time``,
        status and next run time are written back as they were. A manual fire never moves
        the schedule nor ends the job (a ``last_run_time`` at now would drop the scheduled
        fire due at or before it; a count would let test fires use up ``max_runs``).

        ``overlap``: what the fire does while ``max_instances`` runs of the job are in flight,
        counted as the beat counts them (the runs started, and the fires sent and not started
        yet, from the run ledger): ``"allow_all"`` (the default) sends it anyway; ``"skip"``
        does not send it (recorded as skipped, as the beat records one: ``skip_count`` and
        the run ledger, in the write-back under the claim); ``"cancel_other"`` /
        ``"terminate_other"`` revoke the runs in flight first (see
        :class:`~beatx.jobs.Overlap`). The buffer policies need a place in the schedule and
        are refused.

        :raises JobLookupError: if there is no such job.
        :raises JobClaimedError: if a beat held the job for the whole wait (nothing sent).
        :raises ConfigurationError: if this manager has no dispatcher.
        :raises InvalidJobError: for an ``overlap`` that is not one of those four.
        :raises DispatchError: if the fire could not be sent (``TransientDispatchError``: the
            broker is down or slow; ``PermanentDispatchError``: it can never be sent as is).
            The job is written back unchanged.
        """
        try:
            policy = Overlap(overlap)
        except ValueError:
            policy = None
        if policy is None or policy not in MANUAL_OVERLAPS:
            choices = ", ".join(repr(p.value) for p in MANUAL_OVERLAPS)
            raise InvalidJobError(f"run_job_now: overlap must be one of {choices}, got {overlap!r}")
        if self.dispatcher is None:
            if self.store.get_job(job_id) is None:
                raise JobLookupError(job_id)
            raise ConfigurationError("run_job_now needs a dispatcher; this scheduler has none")
        job = self._claim_for_manual_fire(job_id)
        # Written back whatever happens below: the claim must end (a skip adds its count).
        release = JobRelease.unchanged(job)
        try:
            now = self.clock.now()
            fire = Fire(job, now)
            if policy is not Overlap.ALLOW_ALL:
                runs = in_flight(job.running, self.store.job_runs(job_id, limit=LEDGER_READ), now)
                action = manual_fire(policy, runs.count, job.max_instances)
                if action == "skip":
                    release = replace(release, skipped=1)
                    return None
                if action == "cancel" and runs.task_ids:
                    revoke = getattr(self.dispatcher, "revoke", None)
                    if revoke is None:
                        raise ConfigurationError(
                            f"run_job_now: overlap={policy.value!r} needs a dispatcher that can revoke"
                        )
                    revoke(runs.task_ids, terminate=policy is Overlap.TERMINATE_OTHER)
            (error,) = self.dispatcher.dispatch([fire])
            if isinstance(error, BeatxError):
                raise error
            if error is not None:
                kind = TransientDispatchError if is_transient(error) else PermanentDispatchError
                raise kind(f"job {job_id!r}: the fire could not be sent: {error!r}") from error
            # In the ledger before the claim ends: a beat planning the job next sees it sent.
            self._record_manual_fire(fire)
            return fire.task_id
        finally:
            self._end_manual_claim(release)

    def _claim_for_manual_fire(self, job_id: str) -> Job:
        """Claim the job for ``run_job_now``, waiting for a beat's claim to end (see
        :data:`JOB_CLAIM_WAIT`).

        :raises JobLookupError: if there is no such job.
        :raises JobClaimedError: if a beat still holds it after the wait.
        """
        wait = self._manual_claim_wait()
        give_up = time.monotonic() + wait
        while True:
            job = self.store.claim_job(job_id, claim_ttl=MANUAL_CLAIM_TTL)
            if job is not None:
                return job
            if time.monotonic() >= give_up:
                raise JobClaimedError(job_id, wait)
            time.sleep(JOB_CLAIM_RETRY)

    def _manual_claim_wait(self) -> float:
        """How long ``run_job_now`` waits for a beat's claim on the job to end."""
        return JOB_CLAIM_WAIT

    def _record_manual_fire(self, fire: Fire) -> None:
        """Add a fire ``run_job_now`` sent to the job's run ledger (``sent``), the claim held.
        The fire is out already: a store error is logged, not raised."""
        try:
            self.store.record_dispatch(fire.job_id, fire.task_id, scheduled_at=fire.scheduled_at)
        except StoreError as exc:
            logger.warning(
                "fire %s of job %s sent, but not recorded in its run ledger: %s",
                fire.task_id,
                fire.job_id,
                exc,
            )

    def _end_manual_claim(self, release: JobRelease) -> None:
        """Write ``run_job_now``'s claim back (ending it). A store error is logged, not raised
        (the fire, if any, is out): the claim then ends at its deadline, ``MANUAL_CLAIM_TTL``."""
        try:
            self.store.release_jobs([release])
        except StoreError as exc:
            logger.warning(
                "job %s stays claimed by run_job_now until its claim expires (%s s)%s: %s",
                release.job_id,
                MANUAL_CLAIM_TTL,
                "; its skipped fire is not recorded" if release.skipped else "",
                exc,
            )

    def backfill(
        self, job_id: str, start: datetime, end: datetime, *, overlap: str = "allow_all"
    ) -> BackfillResult:
        """Send the fires the job's schedule has from ``start`` to ``end`` (both included; a
        naive datetime is in the scheduler's timezone), oldest first, each with the task id
        of its nominal time; the job's own schedule is unchanged. Idempotent: the fires an
        earlier backfill of this job sent are not sent again (see :mod:`beatx.backfill`).

        ``overlap``: ``"allow_all"`` (the default) sends every fire at once; ``"skip"`` sends
        none while a run of the job is in flight.

        :raises JobLookupError: if there is no such job.
        :raises ConfigurationError: if this manager has no dispatcher.
        :raises InvalidJobError: for a bad ``overlap``, a range that ends before it starts or
            that holds more than :data:`~beatx.backfill.MAX_BACKFILL_FIRES` fires.
        :raises DispatchError: if a fire could not be sent; the fires sent before it are
            recorded, so running the backfill again sends the rest.
        """
        if overlap not in BACKFILL_OVERLAPS:
            raise InvalidJobError(
                f"backfill: overlap must be one of {', '.join(map(repr, BACKFILL_OVERLAPS))}, got {overlap!r}"
            )
        start, end = (
            moment if moment.tzinfo else moment.replace(tzinfo=self.timezone) for moment in (start, end)
        )
        job = self.store.get_job(job_id)
        if job is None:
            raise JobLookupError(job_id)
        if self.dispatcher is None:
            raise ConfigurationError("backfill needs a dispatcher; this scheduler has none")
        times = fire_times_between(calendar_view(job, self.store).trigger, start, end)
        key = backfill_key(job_id)
        ranges = covered_ranges(self.store.read_meta(key))
        todo = [t for t in times if not any(low <= t <= high for low, high in ranges)]
        already = len(times) - len(todo)
        if overlap == "skip" and job.running > 0 and todo:
            return BackfillResult(job_id=job_id, already_sent=already, skipped=len(todo))
        fires = [Fire(job, t) for t in todo]
        outcomes = list(self.dispatcher.dispatch(fires)) if fires else []
        failed = next((i for i, error in enumerate(outcomes) if error is not None), None)
        sent = fires if failed is None else fires[:failed]
        if failed is None:
            self.store.write_meta(key, record_range(ranges, start, end))
        elif sent:
            self.store.write_meta(key, record_range(ranges, start, sent[-1].scheduled_at))
        if failed is not None:
            error = outcomes[failed]
            assert error is not None
            if isinstance(error, BeatxError):
                raise error
            kind = TransientDispatchError if is_transient(error) else PermanentDispatchError
            raise kind(
                f"job {job_id!r}: backfill sent {len(sent)} of {len(fires)} fires; the fire at "
                f"{fires[failed].scheduled_at.isoformat()} could not be sent: {error!r}"
            ) from error
        return BackfillResult(
            job_id=job_id,
            sent=tuple(fire.scheduled_at for fire in sent),
            task_ids=tuple(fire.task_id for fire in sent),
            already_sent=already,
        )

    def _emit(self, kind: EventKind, job_id: str) -> None:
        if self.events.has_listeners:
            self.events.emit(Event(kind, self.clock.now(), job_id))

    def _changed(self) -> None:
        """Called after every change; the in-process scheduler wakes its loop here."""


def _check_coalesce_agrees(coalesce: Any, catchup: Any) -> None:
    """Refuse a ``coalesce`` and a ``catchup`` that say different things (``coalesce=False``
    is ``catchup="all"``; ``coalesce=True`` is any other policy)."""
    if catchup is None or not isinstance(coalesce, bool):
        return
    try:
        policy = CatchUp(catchup)
    except ValueError:
        return  # the job names the bad value
    if coalesce != (policy is not CatchUp.ALL):
        raise InvalidJobError(
            f"coalesce={coalesce} and catchup={policy.value!r} disagree: coalesce=False is "
            "catchup='all', coalesce=True any other policy; give catchup alone"
        )
