"""A :class:`beatx.stores.base.JobStore` on the Django ORM (PostgreSQL and SQLite; others untested).

Due jobs are found with an indexed query on ``(status, next_run_time)``; claiming them and
checking the leader lease happen in one transaction. On databases with ``SKIP LOCKED``
(PostgreSQL, MySQL 8, Oracle) the due rows are locked with
``select_for_update(skip_locked=True)``, so concurrent claimers never wait on each other nor
claim a row twice; elsewhere (SQLite) each row is claimed with a conditional ``UPDATE``.
Every claim stores its token (``claim_token``): only the write-back that names it moves the
job's schedule.

Locks, so that the beat, the workers and the admin never deadlock on PostgreSQL:

- job rows are locked ``FOR NO KEY UPDATE`` (never ``FOR UPDATE``), so the foreign-key check
  of a run record (``FOR KEY SHARE`` on its job) never waits for them;
- no transaction holds a job row while it writes a run record, or a run record while it
  waits for a job row: the beat's write-back records its dispatches (one upsert keyed by task
  id, in task-id order) in a transaction of their own before the one that advances the jobs;
  a worker writes its run record in one statement, and its job update separately;
- the order, when a transaction takes several: lease row, job rows (by id), change counter;
- rows that may be created concurrently (a job, a run, the singleton rows) are written with
  ``INSERT ... ON CONFLICT DO NOTHING / DO UPDATE``, so a race is never a duplicate-key error
  (nor a line in the PostgreSQL log).

A call made while another call of the store is running in the same thread (a signal handler:
``celery beat`` closing its scheduler on SIGTERM in the middle of a tick) runs on a connection
of its own, since the thread's connection may be in the middle of a statement.

Every change to a job definition bumps :class:`django_beatx.models.ChangeCounter` in the
same transaction. On PostgreSQL the same transaction sends ``NOTIFY beatx_changes`` and
:meth:`DjangoStore.wait_for_change` waits on ``LISTEN`` (see :mod:`django_beatx.notify`), so
an edit in the admin reaches a running beat in milliseconds; elsewhere (SQLite) it polls that
one row every ``poll_interval`` seconds.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from beatx.audit import JobChange
from beatx.calendar_book import named_calendars
from beatx.clock import Clock, SystemClock
from beatx.errors import (
    ConflictingIdError,
    JobLookupError,
    LeaseLostError,
    RevisionConflictError,
    SerializationError,
    StoreError,
)
from beatx.exclusion import ExcludingTrigger
from beatx.jobs import (
    ALERT_FIELDS,
    EXCLUSION_FIELDS,
    PAUSE_FIELDS,
    POLICY_FIELDS,
    CatchUp,
    Job,
    JobStatus,
    fire_task_id,
)
from beatx.ledger import RunOutcome, RunRecord, newest_first, summaries
from beatx.stores.base import BeatStatus, JobRelease, LeaseInfo, new_claim_token, status_after_run
from beatx.triggers.base import Trigger
from django_beatx import models as m
from django_beatx import postgres
from django_beatx.calendar_store import DjangoCalendarStorage
from django_beatx.notify import ChangeListener, notify_sql

__all__ = [
    "DEFINITION_FIELDS",
    "DjangoStore",
    "definition_values",
    "fill_definition",
    "fill_row",
    "run_record",
]

logger = logging.getLogger("django_beatx.store")

_SINGLETON = m.SINGLETON_ID
#: How long a beat's transaction may sit idle on PostgreSQL before the server ends it (and
#: its row locks): far above a healthy claim or write-back, far below a lease.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 2000
_RUNNING = m.JobRun.Outcome.RUNNING
#: Vendors whose ``INSERT ... ON CONFLICT (column) DO NOTHING / DO UPDATE`` the store uses.
_UPSERT_VENDORS = frozenset({"postgresql", "sqlite"})
#: How often a write that lost a race with a concurrent delete is tried again.
_RACE_ATTEMPTS = 5

#: The columns :meth:`django_beatx.models.Job.build_trigger` reads.
_TRIGGER_FIELDS = (
    "trigger_kind",
    "cron_expression",
    "cron_extended",
    "cron_seconds",
    "interval_seconds",
    "start_now",
    "run_at",
    "timezone",
    "start_date",
    "end_date",
    "rrule",
    "rrule_dtstart",
    "rrule_exdates",
    "rrule_rdates",
    "solar_event",
    "solar_latitude",
    "solar_longitude",
)
#: The columns of a job's definition: what a management write (``update_job``) writes.
DEFINITION_FIELDS = (
    "name",
    "task",
    "args",
    "kwargs",
    *_TRIGGER_FIELDS,
    "queue",
    "routing_key",
    "exchange",
    "priority",
    "expires",
    "headers",
    "extra_options",
    *POLICY_FIELDS,
    *PAUSE_FIELDS,
    *EXCLUSION_FIELDS,
    *ALERT_FIELDS,
)
#: What the beat's write-back writes.
_RELEASE_FIELDS = (
    "claimed_by",
    "claimed_until",
    "claim_token",
    "released_claim",
    "total_run_count",
    "misfire_count",
    "skip_count",
    "last_run_time",
    "last_error",
    "next_run_time",
    "status",
    "updated_at",
)

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: Per thread: how many calls of a DjangoStore are running (more than one: a signal handler).
_calls = threading.local()
#: How long a call made from a signal handler waits for a row lock before giving up.
_REENTERED_LOCK_TIMEOUT = "500ms"
#: Most job ids one statement of a bulk write names (fewer where the database takes fewer
#: parameters: SQLite).
_BULK_IDS = 10_000
#: Rows per ``UPDATE`` that writes a value of its own to each row (:meth:`DjangoStore._write_schedules`).
_BULK_UPDATE_ROWS = 1_000
#: Statuses a pause leaves alone (``JobManager.pause_job``).
_NOT_PAUSABLE = (JobStatus.PAUSED.value, JobStatus.COMPLETED.value, JobStatus.CANCELLED.value)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _reentrant(
    method: Callable[Concatenate[DjangoStore, _P], _R],
) -> Callable[Concatenate[DjangoStore, _P], _R]:
    """Run ``method`` on the thread's connection, or, when a call of the store is already
    running in this thread (a signal handler interrupted it, perhaps in the middle of a
    statement, whose connection lock is not re-entrant), on a connection of its own."""

    @functools.wraps(method)
    def call(store: DjangoStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        depth: int = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        try:
            if depth == 0:
                return method(store, *args, **kwargs)
            with store._own_connection():
                return method(store, *args, **kwargs)
        finally:
            _calls.depth = depth

    return call


def _interruption(exc: BaseException) -> BaseException | None:
    """The SystemExit or KeyboardInterrupt ``exc`` was raised while handling, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if not isinstance(cause, Exception):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def _array_type(field: models.Field[Any, Any], connection: Any) -> str:
    """The PostgreSQL array type of a column (``varchar(64)[]``, ``timestamp with time
    zone[]``...), for ``unnest`` of one parameter per column."""
    return f"{field.db_type(connection)}[]"


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
            catchup=row.catchup or None,  # type: ignore[arg-type]  # Job converts the name
            catchup_window=row.catchup_window,
            catchup_limit=row.catchup_limit,
            jitter=row.jitter,
            max_runs=row.max_runs,
            overlap=row.overlap or "skip",  # type: ignore[arg-type]  # Job converts the name
            pause_after_failures=row.pause_after_failures,
            pause_note=row.pause_note or None,
            paused_by=row.paused_by or None,
            paused_at=row.paused_at,
            exclude=tuple(row.exclude or ()),
            on_excluded=row.on_excluded or "skip",
            expect_every=row.expect_every,
            max_lateness=row.max_lateness,
            max_runtime=row.max_runtime,
            alert_after_failures=row.alert_after_failures,
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


def run_record(row: m.JobRun) -> RunRecord:
    """The ledger's view of a run row (``dispatched`` is ``sent``)."""
    outcome = RunOutcome.SENT if row.outcome == m.JobRun.Outcome.DISPATCHED else RunOutcome(row.outcome)
    return RunRecord(
        job_id=row.job_id,
        task_id=row.task_id,
        outcome=outcome,
        scheduled_at=row.scheduled_at,
        sent_at=row.dispatched_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration=row.duration,
        worker=row.worker or None,
        error=row.error or None,
        reason=row.reason or None,
        retries=row.retries,
    )


def fill_definition(row: m.Job, job: Job) -> None:
    """Write a beatx job's definition (:data:`DEFINITION_FIELDS`) into a row."""
    row.name = job.name
    row.task = job.func_ref
    row.args = list(job.args)
    row.kwargs = dict(job.kwargs)
    row.set_trigger(job.trigger)
    row.set_options(dict(job.options))
    row.max_instances = job.max_instances
    row.misfire_grace_time = job.misfire_grace_time
    row.coalesce = job.coalesce
    # Empty when coalesce says it (latest or all), so the admin's coalesce box stays the switch.
    policy = job.catchup_policy
    row.catchup = "" if policy is CatchUp.from_coalesce(job.coalesce) else policy.value
    row.catchup_window = job.catchup_window
    row.catchup_limit = job.catchup_limit
    row.jitter = job.jitter
    row.max_runs = job.max_runs
    row.overlap = job.overlap.value
    row.pause_after_failures = job.pause_after_failures
    row.pause_note = job.pause_note or ""
    row.paused_by = job.paused_by or ""
    row.paused_at = job.paused_at
    row.exclude = list(job.exclude)
    row.on_excluded = job.on_excluded
    row.expect_every = job.expect_every
    row.max_lateness = job.max_lateness
    row.max_runtime = job.max_runtime
    row.alert_after_failures = job.alert_after_failures


def fill_row(row: m.Job, job: Job) -> None:
    """Write a beatx job's definition and state into a row (not its claim or revision): a
    new row, or one replaced whole (``add_job(replace_existing=True)``)."""
    fill_definition(row, job)
    row.status = job.status.value
    row.next_run_time = job.next_run_time
    row.last_run_time = job.last_run_time
    row.total_run_count = job.total_run_count
    row.misfire_count = job.misfire_count
    row.skip_count = job.skip_count
    row.last_error = job.last_error or ""
    row.last_finished_at = job.last_finished_at
    row.last_duration = job.last_duration


def _status_after_run_sql(error: str | None) -> Case:
    """:func:`beatx.stores.base.status_after_run` as an SQL expression over a job row's
    ``status`` and ``next_run_time``, so a run's end updates its job in one statement."""
    some_time = datetime(2000, 1, 1, tzinfo=UTC)
    whens = [
        When(status=status.value, next_run_time__isnull=next_time is None, then=Value(after.value))
        for status in JobStatus
        for next_time in (some_time, None)
        if (after := status_after_run(status, next_time, error)) is not status
    ]
    return Case(*whens, default=F("status"), output_field=models.CharField())


def definition_values(job: Job) -> dict[str, Any]:
    """The definition columns of ``job``, by field name (for a ``QuerySet.update``)."""
    row = m.Job(id=job.id)
    fill_definition(row, job)
    return {name: getattr(row, name) for name in DEFINITION_FIELDS}


class DjangoStore:
    """Jobs in the database of a Django project (``django_beatx`` in ``INSTALLED_APPS``).

    :param clock: the time source (a :class:`beatx.testing.FakeClock` in tests).
    :param using: the database alias.
    :param poll_interval: seconds between two reads of the change counter in
        :meth:`wait_for_change` where the database has no LISTEN/NOTIFY (SQLite).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        using: str = "default",
        poll_interval: float = 0.2,
        server_time: bool | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        #: Whether leases and claims are judged by the database server's clock (PostgreSQL's
        #: ``statement_timestamp()``) rather than the callers': the default unless a clock is
        #: given (tests with a fake one). Elsewhere (SQLite: one machine) the caller's clock.
        self._server_time = clock is None if server_time is None else server_time
        self.using = using
        self.poll_interval = poll_interval
        self._seen_version: int | None = None
        self._listener = ChangeListener(using)
        #: The exclusion calendars, in the same database (:mod:`django_beatx.calendar_store`).
        self.calendars = DjangoCalendarStorage(using=using)
        #: ids of the connections whose idle-in-transaction limit is set.
        self._limited_sessions: set[int] = set()

    # -- helpers -------------------------------------------------------------------------------

    def _with_calendars(self, row: m.Job, trigger: Trigger) -> Trigger:
        """``trigger`` with the row's exclusion calendars applied (read now), as the beat
        plans it.

        :raises CalendarLookupError: when the row names a calendar that does not exist."""
        if not row.exclude:
            return trigger
        calendars = named_calendars(tuple(row.exclude), self.calendars, job_id=row.pk)
        return ExcludingTrigger(trigger, calendars, row.on_excluded)  # type: ignore[arg-type]

    @property
    def _skip_locked(self) -> bool:
        return bool(connections[self.using].features.has_select_for_update_skip_locked)

    @property
    def _upserts(self) -> bool:
        """Whether the database takes ``INSERT ... ON CONFLICT (column) DO ...``."""
        return connections[self.using].vendor in _UPSERT_VENDORS

    def _jobs(self) -> Any:
        return m.Job.objects.using(self.using)

    def _runs(self) -> Any:
        return m.JobRun.objects.using(self.using)

    def _locked(self, query: Any, *, skip_locked: bool = False) -> Any:
        """``query`` locking its job rows for an update that keeps their keys: ``FOR NO KEY
        UPDATE`` where the database has it, so a run record's foreign-key check (``FOR KEY
        SHARE``) never waits for it. Unchanged where rows cannot be locked (SQLite)."""
        features = connections[self.using].features
        if not features.has_select_for_update:
            return query
        return query.select_for_update(
            skip_locked=skip_locked, no_key=bool(features.has_select_for_no_key_update)
        )

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
            interruption = _interruption(exc)
            if interruption is not None:
                # SystemExit (celery's SIGTERM handler) or KeyboardInterrupt raised in the
                # middle of a statement: the error of the rollback that followed must not
                # hide it, or the process would go on as if the store had failed.
                raise interruption from None
            raise StoreError(f"Django store (database {self.using!r}): {exc}") from exc

    def _limit_idle_transactions(self) -> None:
        """On PostgreSQL, end (server side) a transaction of this connection that stays idle
        for :data:`IDLE_IN_TRANSACTION_TIMEOUT_MS`: a beat frozen in the middle of a claim or a
        write-back (SIGSTOP, a VM pause) would otherwise hold the lease row locked, and no
        standby could take over until it woke. Set once per connection, before the beat's
        transactions."""
        connection = connections[self.using]
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return
        with self._errors():
            connection.ensure_connection()
            raw = connection.connection
            if id(raw) in self._limited_sessions:
                return
            with connection.cursor() as cursor:
                cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}")
            self._limited_sessions.add(id(raw))

    @contextmanager
    def _own_connection(self) -> Iterator[None]:
        """Make this thread use a new connection to the store's database until the block
        ends (then close it and give the thread its connection back). Row locks held by the
        interrupted call are waited for at most :data:`_REENTERED_LOCK_TIMEOUT`."""
        saved = connections[self.using]
        own = connections.create_connection(self.using)
        connections[self.using] = own
        try:
            if own.vendor == "postgresql":
                with own.cursor() as cursor:
                    cursor.execute(f"SET lock_timeout = '{_REENTERED_LOCK_TIMEOUT}'")
            yield
        finally:
            try:
                own.close()
            finally:
                connections[self.using] = saved

    def _insert(
        self,
        model: type[models.Model],
        objs: Sequence[models.Model],
        *,
        conflict: str,
        overwrite: Sequence[str] = (),
        keep: Sequence[str] = (),
    ) -> int:
        """``INSERT`` the rows of ``objs``; a row whose ``conflict`` column (unique) is taken
        is left alone, or with ``overwrite`` / ``keep`` updated in place: the ``overwrite``
        columns take the new values, the ``keep`` columns take them only where they are NULL.
        Never raises a duplicate-key error. Returns how many rows were inserted or updated.

        Only on :data:`_UPSERT_VENDORS` (PostgreSQL 9.5+, SQLite 3.24+).
        """
        connection = connections[self.using]
        qn = connection.ops.quote_name
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        table = qn(meta.db_table)
        column_of = {f.name: str(f.column) for f in fields} | {f.attname: str(f.column) for f in fields}
        columns = ", ".join(qn(column_of[f.name]) for f in fields)
        target = qn(column_of[conflict])
        assignments = [f"{qn(column_of[n])} = EXCLUDED.{qn(column_of[n])}" for n in overwrite] + [
            f"{qn(column_of[n])} = COALESCE({table}.{qn(column_of[n])}, EXCLUDED.{qn(column_of[n])})"
            for n in keep
        ]
        action = f"DO UPDATE SET {', '.join(assignments)}" if assignments else "DO NOTHING"
        if connection.vendor == "postgresql" and not any(isinstance(f, models.JSONField) for f in fields):
            # One parameter per column (an array): a short statement, parsed once, whatever
            # the number of rows (a burst's run records: thousands).
            arrays = ", ".join(f"%s::{_array_type(f, connection)}" for f in fields)
            values = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs] for f in fields]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) "
                    f"ON CONFLICT ({target}) {action}",
                    values,
                )
                return int(max(cursor.rowcount, 0))
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        max_params = connection.features.max_query_params or 65535
        batch = max(1, min(500, max_params // len(fields)))
        written = 0
        with connection.cursor() as cursor:
            for start in range(0, len(objs), batch):
                chunk = objs[start : start + batch]
                params: list[Any] = []
                for obj in chunk:
                    params.extend(f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields)
                sql = (
                    f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(chunk))} "
                    f"ON CONFLICT ({target}) {action}"
                )
                cursor.execute(sql, params)
                written += max(cursor.rowcount, 0)
        return written

    def _create_once(self, obj: models.Model) -> bool:
        """Insert ``obj`` unless a row with its primary key exists. Returns whether it was
        inserted. Never raises (nor logs, on PostgreSQL) a duplicate-key error on the
        databases that take ``ON CONFLICT``; elsewhere a duplicate is caught."""
        model = type(obj)
        if self._upserts:
            return self._insert(model, [obj], conflict=model._meta.pk.name) == 1
        try:
            with transaction.atomic(using=self.using):
                obj.save(using=self.using, force_insert=True)
        except IntegrityError:
            if model._default_manager.using(self.using).filter(pk=obj.pk).exists():
                return False
            raise
        return True

    def _bump(self) -> None:
        """Move the change counter, inside the caller's transaction (after its job rows)."""
        counters = m.ChangeCounter.objects.using(self.using)
        if not counters.filter(pk=_SINGLETON).update(version=F("version") + 1) and not self._create_once(
            m.ChangeCounter(pk=_SINGLETON, version=1)
        ):  # created concurrently
            counters.filter(pk=_SINGLETON).update(version=F("version") + 1)
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(notify_sql())

    def _upsert_singleton(self, model: type[models.Model], key: Any, values: dict[str, Any]) -> None:
        """Write the row ``key`` of ``model`` with ``values``, creating it if needed."""
        rows = model._default_manager.using(self.using)
        with transaction.atomic(using=self.using):
            if rows.filter(pk=key).update(**values):
                return
            if not self._create_once(model(pk=key, **values)):  # created concurrently
                rows.filter(pk=key).update(**values)

    def change_version(self) -> int:
        """The change counter: it moves whenever a job is added, changed or removed."""
        return self._change_version()

    def _change_version(self) -> int:
        with self._errors():
            version = (
                m.ChangeCounter.objects.using(self.using)
                .filter(pk=_SINGLETON)
                .values_list("version", flat=True)
                .first()
            )
        return int(version or 0)

    def _running_counts(self, job_ids: Iterable[str], now: datetime) -> dict[str, int]:
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                return postgres.running_counts(cursor, connection.ops.quote_name, list(job_ids), now)
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
            self._create_once(m.Lease(pk=_SINGLETON))  # or created concurrently
            row = query.get(pk=_SINGLETON)
        return row

    def _lease_clock(self, fallback: datetime) -> datetime:
        """The time leases and claims are judged by: the database's on PostgreSQL (with
        ``server_time``), so beats whose clocks disagree still agree on who leads and which
        claims expired; ``fallback`` (the caller's) elsewhere."""
        if not self._server_time or connections[self.using].vendor != "postgresql":
            return fallback
        with connections[self.using].cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            row = cursor.fetchone()
        assert row is not None
        value: datetime = row[0]
        return value

    def _claims_clock(self, fallback: datetime) -> datetime | Now:
        """:meth:`_lease_clock` as an SQL expression where it is the database's (no round
        trip of its own)."""
        if self._server_time and connections[self.using].vendor == "postgresql":
            return Now()
        return fallback

    def _check_owner(self, owner: str | None, now: datetime) -> None:
        """Fencing: inside the caller's transaction, lock the lease row and check ``owner``."""
        if owner is None:
            return
        lease = self._lease_row(lock=True)
        if lease.owner != owner or lease.expires_at is None or lease.expires_at <= now:
            raise LeaseLostError(f"beat {owner!r} does not hold the leader lease")

    # -- management ----------------------------------------------------------------------------

    def add_job(self, job: Job, *, replace_existing: bool = False) -> None:
        with self._errors():
            while True:
                with transaction.atomic(using=self.using):
                    row: m.Job | None = self._locked(self._jobs().filter(pk=job.id)).first()
                    if row is None:
                        row = m.Job(id=job.id)
                        fill_row(row, job)
                        row.revision = 1
                        # A new id: a second writer of the same id (three beats importing one
                        # beat_schedule at once) finds it taken without a duplicate-key error.
                        if not self._create_once(row):
                            if replace_existing:
                                continue  # created concurrently: replace it
                            raise ConflictingIdError(job.id)
                    elif not replace_existing:
                        raise ConflictingIdError(job.id)
                    else:
                        fill_row(row, job)
                        row.revision += 1
                        row.claimed_by, row.claimed_until, row.claim_token = "", None, ""
                        row.save(using=self.using)
                    self._bump()
                    job.revision = row.revision
                    return

    def update_job(self, job: Job, *, expected_revision: int | None = None, reschedule: bool = False) -> None:
        values = definition_values(job)
        if reschedule:
            values.update(
                status=job.status.value,
                next_run_time=job.next_run_time,
                # The claim ends: its write-back then records only what it sent.
                claimed_by="",
                claimed_until=None,
                claim_token="",
            )
        with self._errors():
            while True:
                with transaction.atomic(using=self.using):
                    rows = self._jobs().filter(pk=job.id)
                    current: int | None = self._locked(rows).values_list("revision", flat=True).first()
                    if current is None:
                        raise JobLookupError(job.id)
                    if expected_revision is not None and current != expected_revision:
                        raise RevisionConflictError(job.id, expected_revision, current)
                    # Conditional on the revision read: where rows cannot be locked (SQLite),
                    # a write in between makes this match nothing, and the loop reads again.
                    if rows.filter(revision=current).update(
                        **values, revision=current + 1, updated_at=timezone.now()
                    ):
                        self._bump()
                        job.revision = current + 1
                        return

    def remove_job(self, job_id: str) -> bool:
        for attempt in range(_RACE_ATTEMPTS):
            try:
                with self._errors(), transaction.atomic(using=self.using):
                    deleted, _ = self._jobs().filter(pk=job_id).delete()
                    if deleted:
                        self._bump()
            except IntegrityError:
                # A worker recorded a run of the job between the deletion of its runs and of
                # the job: delete again.
                if attempt + 1 == _RACE_ATTEMPTS:
                    raise
                continue
            return bool(deleted)
        raise AssertionError("unreachable")

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

    def alerting_jobs(self) -> list[Job]:
        """The jobs that set an alert rule (:mod:`beatx.alerts`): one query on the rule
        columns, so the cost is theirs, not every job's."""
        now = self._clock.now()
        with self._errors():
            rows = (
                self._jobs()
                .filter(
                    Q(expect_every__isnull=False)
                    | Q(max_lateness__isnull=False)
                    | Q(max_runtime__isnull=False)
                    | Q(alert_after_failures__isnull=False)
                )
                .annotate(n_running=Count("runs", filter=Q(runs__outcome=_RUNNING, runs__expires_at__gt=now)))
                .order_by("id")
            )
            jobs = []
            for row in rows:
                try:
                    jobs.append(job_from_row(row, running=row.n_running))
                except SerializationError as exc:
                    logger.warning("skipping unreadable job: %s", exc)
        return jobs

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

    # -- bulk management (the admin's actions) -------------------------------------------------
    #
    # What the management API does one job at a time, for a whole selection at once: the rows
    # are locked in id order (the store's lock order), written with one UPDATE (or DELETE, or
    # INSERT) per batch of ids in one transaction, and the change counter moves once, so a
    # running beat is woken once (one NOTIFY on PostgreSQL) however many jobs changed.

    def _id_batches(self, job_ids: Iterable[str]) -> list[list[str]]:
        """The distinct ``job_ids`` in id order, cut in batches one statement can name."""
        ids = sorted(set(job_ids))
        max_params = connections[self.using].features.max_query_params
        size = _BULK_IDS if max_params is None else max(1, min(_BULK_IDS, max_params - 10))
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    def _lock_ids(self, rows: Any, *, key_update: bool = False) -> Any:
        """The rows of ``rows``, locked in id order where rows can be locked (PostgreSQL:
        ``FOR NO KEY UPDATE``, or ``FOR UPDATE`` for a delete), as a queryset on their ids.
        Elsewhere (SQLite, where the transaction holds the database) ``rows`` itself."""
        features = connections[self.using].features
        if not features.has_select_for_update:
            return rows
        ordered = rows.order_by("pk")
        locked = ordered.select_for_update() if key_update else self._locked(ordered)
        return self._jobs().filter(pk__in=list(locked.values_list("pk", flat=True)))

    def pause_jobs(self, job_ids: Iterable[str]) -> int:
        """Pause these jobs at once, as :meth:`beatx.manager.JobManager.pause_job` does one by
        one: each one ACTIVE or FAILED becomes PAUSED (its next run time stays), with its
        ``revision`` bumped and any claim dropped (a reschedule write: a beat's write-back
        under that claim then records only what it sent). Paused, completed and unknown
        jobs are left alone. Returns how many of the jobs are paused afterwards (paused here
        or before: those ``pause_job`` answers True for)."""
        written = 0
        paused = 0
        with self._errors(), transaction.atomic(using=self.using):
            now = timezone.now()
            for batch in self._id_batches(job_ids):
                pausable = self._jobs().filter(pk__in=batch).exclude(status__in=_NOT_PAUSABLE)
                written += self._lock_ids(pausable).update(
                    status=JobStatus.PAUSED.value,
                    revision=F("revision") + 1,
                    claimed_by="",
                    claimed_until=None,
                    claim_token="",
                    updated_at=now,
                )
                paused += self._jobs().filter(pk__in=batch, status=JobStatus.PAUSED.value).count()
            if written:
                self._bump()
        return paused

    def resume_jobs(self, job_ids: Iterable[str]) -> int:
        """Resume these jobs at once, as :meth:`beatx.manager.JobManager.resume_job` does one
        by one: each PAUSED job's next run is its first fire time at or after now (never one
        it already ran), ACTIVE, or COMPLETED when its trigger fires no more; ``revision``
        bumped, any claim dropped. The next run times are computed here, job by job, and
        written in bulk (:meth:`_write_schedules`). Other ids are left alone, and so is a job whose stored
        trigger is unreadable (logged). Returns how many jobs were resumed."""
        resumed = 0
        with self._errors(), transaction.atomic(using=self.using):
            after_now = self._clock.now() - _ONE_MICROSECOND
            written = timezone.now()
            for batch in self._id_batches(job_ids):
                query = (
                    self._jobs()
                    .filter(pk__in=batch, status=JobStatus.PAUSED.value)
                    .order_by("pk")
                    .only("pk", "last_run_time", "exclude", "on_excluded", *_TRIGGER_FIELDS)
                )
                changed: list[m.Job] = []
                for row in self._locked(query):
                    try:
                        trigger = self._with_calendars(row, row.build_trigger())
                    except (TypeError, ValueError, LookupError) as exc:
                        logger.warning("not resuming job %r: stored row is not a valid job: %s", row.pk, exc)
                        continue
                    after = after_now
                    if row.last_run_time is not None and row.last_run_time > after:
                        after = row.last_run_time
                    row.next_run_time = trigger.next_fire_time(after)
                    row.status = (
                        JobStatus.ACTIVE if row.next_run_time is not None else JobStatus.COMPLETED
                    ).value
                    changed.append(row)
                if not changed:
                    continue
                self._write_schedules(changed)
                self._jobs().filter(pk__in=[row.pk for row in changed]).update(
                    revision=F("revision") + 1,
                    claimed_by="",
                    claimed_until=None,
                    claim_token="",
                    updated_at=written,
                )
                resumed += len(changed)
            if resumed:
                self._bump()
        return resumed

    def _write_schedules(self, rows: Sequence[m.Job]) -> None:
        """Write the ``status`` and ``next_run_time`` of each row, by batches of rows.

        On PostgreSQL one ``UPDATE ... FROM (VALUES ...)`` a batch: ``bulk_update`` builds a
        ``CASE`` branch per row and field, whose compiling alone costs about 0.3 ms a row
        (3 s for 5,000 jobs). Elsewhere ``bulk_update``."""
        connection = connections[self.using]
        if connection.vendor != "postgresql":
            self._jobs().bulk_update(rows, ["status", "next_run_time"], batch_size=_BULK_UPDATE_ROWS)
            return
        qn = connection.ops.quote_name
        meta = m.Job._meta
        column = {f.name: str(f.column) for f in meta.local_concrete_fields}
        next_run_time = m.Job._meta.get_field("next_run_time")
        assert isinstance(next_run_time, models.DateTimeField)
        sql = (
            f"UPDATE {qn(meta.db_table)} AS job SET {qn(column['status'])} = new.status, "
            f"{qn(column['next_run_time'])} = new.next_run_time "
            f"FROM (VALUES {{values}}) AS new (id, status, next_run_time) "
            f"WHERE job.{qn(column['id'])} = new.id"
        )
        with connection.cursor() as cursor:
            for start in range(0, len(rows), _BULK_UPDATE_ROWS):
                chunk = rows[start : start + _BULK_UPDATE_ROWS]
                params: list[Any] = []
                for row in chunk:
                    params += [
                        row.pk,
                        row.status,
                        next_run_time.get_db_prep_save(row.next_run_time, connection),
                    ]
                cursor.execute(
                    sql.format(values=", ".join(["(%s, %s, %s::timestamptz)"] * len(chunk))), params
                )

    def remove_jobs(self, job_ids: Iterable[str]) -> int:
        """Remove these jobs and their run history at once (:meth:`remove_job` for a
        selection). Returns how many jobs were removed."""
        batches = self._id_batches(job_ids)
        for attempt in range(_RACE_ATTEMPTS):
            removed = 0
            try:
                with self._errors(), transaction.atomic(using=self.using):
                    for batch in batches:
                        rows = self._lock_ids(self._jobs().filter(pk__in=batch), key_update=True)
                        _, per_model = rows.delete()
                        removed += per_model.get(m.Job._meta.label, 0)
                    if removed:
                        self._bump()
            except IntegrityError:
                # A run of one of the jobs was recorded during the delete: delete again.
                if attempt + 1 == _RACE_ATTEMPTS:
                    raise
                continue
            return removed
        raise AssertionError("unreachable")

    def get_jobs_by_id(self, job_ids: Iterable[str]) -> dict[str, Job]:
        """The jobs with these ids, by id (unknown ids are missing), read with one query per
        batch of ids. An unreadable row is left out (logged)."""
        now = self._clock.now()
        jobs: dict[str, Job] = {}
        with self._errors():
            for batch in self._id_batches(job_ids):
                rows = list(self._jobs().filter(pk__in=batch))
                running = self._running_counts([row.pk for row in rows], now)
                for row in rows:
                    try:
                        jobs[row.pk] = job_from_row(row, running=running.get(row.pk, 0))
                    except SerializationError as exc:
                        logger.warning("skipping unreadable job: %s", exc)
        return jobs

    def existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        """Which of these ids name a job (one query per batch of ids)."""
        return self._existing_ids(job_ids)

    def _existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        with self._errors():
            for batch in self._id_batches(job_ids):
                found.update(self._jobs().filter(pk__in=batch).values_list("pk", flat=True))
        return found

    def add_new_jobs(self, jobs: Sequence[Job]) -> int:
        """Add these jobs (each with its next run time set) at once, as :meth:`add_job`
        does one by one, except that a job whose id is taken is left out instead of raising
        :class:`ConflictingIdError`. Returns how many jobs were added."""
        rows = []
        for job in jobs:
            row = m.Job(id=job.id)
            fill_row(row, job)
            row.revision = 1
            rows.append(row)
        with self._errors(), transaction.atomic(using=self.using):
            taken = self._existing_ids(row.pk for row in rows)
            new = [row for row in rows if row.pk not in taken]
            if not new:
                return 0
            if self._upserts:
                # An id taken meanwhile by another writer is skipped, without a duplicate-key error.
                added = self._insert(m.Job, new, conflict="id")
            else:
                self._jobs().bulk_create(new, ignore_conflicts=True)
                added = len(new)
            if added:
                self._bump()
        return added

    def record_dispatches(self, fires: Iterable[tuple[str, str, datetime]]) -> None:
        """:meth:`record_dispatch` for several fires sent outside the beat at once: ``(job id,
        task id, scheduled at)`` each."""
        now = self._clock.now()
        with self._errors():
            self._record_dispatches(list(fires), now)

    # -- the beat ------------------------------------------------------------------------------

    def next_run_time(self) -> datetime | None:
        with self._errors():
            earliest = (
                self._jobs()
                .schedulable()
                .unclaimed(self._clock.now())
                .order_by("next_run_time")
                .values_list("next_run_time", flat=True)
            )
            # A claim left by a beat that died makes its job due again when it expires.
            claim_deadline = (
                self._jobs()
                .filter(claimed_until__isnull=False)
                .order_by("claimed_until")
                .values_list("claimed_until", flat=True)
            )
            if connections[self.using].vendor == "postgresql":  # both in one round trip (every idle tick)
                times = postgres.first_values(self._jobs().db, earliest[:1], claim_deadline[:1])
            else:
                times = [earliest.first(), claim_deadline.first()]
        present = [time for time in times if time is not None]
        return min(present) if present else None

    def acquire_due_jobs(
        self, now: datetime, *, limit: int, owner: str | None = None, claim_ttl: float = 60.0
    ) -> list[Job]:
        if limit <= 0:
            return []
        with self._errors():
            # Most ticks find nothing due: one small index read, no transaction, no lease
            # round trip (the lease is checked, in the claim's transaction, when there is).
            if not self._jobs().due(now, claims_at=self._claims_clock(now)).exists():
                return []
        self._limit_idle_transactions()
        token = new_claim_token(owner)
        with self._errors(), transaction.atomic(using=self.using):
            claims_at = self._lease_clock(now)
            until = claims_at + timedelta(seconds=claim_ttl)
            claim = {"claimed_by": owner or "", "claimed_until": until, "claim_token": token}
            self._check_owner(owner, claims_at)
            due = self._jobs().due(now, claims_at=claims_at).order_by("next_run_time", "id")
            if connections[self.using].vendor == "postgresql":
                rows = postgres.claim(self._jobs(), self._locked(due, skip_locked=True)[:limit], claim)
            elif self._skip_locked:
                rows = list(self._locked(due, skip_locked=True)[:limit])
                self._jobs().filter(pk__in=[row.pk for row in rows]).update(**claim)
            else:
                # No row locks here (SQLite): a conditional UPDATE per row claims it only if
                # nobody claimed it since it was read.
                rows = []
                for row in due[:limit]:
                    if self._jobs().filter(pk=row.pk).unclaimed(claims_at).update(**claim):
                        rows.append(row)
            running = self._running_counts([row.pk for row in rows], now) if rows else {}
            jobs: list[Job] = []
            for row in rows:
                try:
                    job = job_from_row(row, running=running.get(row.pk, 0))
                except SerializationError as exc:
                    # One unreadable job must not stop the beat: fail it and go on.
                    logger.error("%s; marking it failed", exc)
                    self._jobs().filter(pk=row.pk).update(
                        status=JobStatus.FAILED.value,
                        next_run_time=None,
                        last_error=str(exc),
                        claimed_by="",
                        claimed_until=None,
                        claim_token="",
                    )
                    continue
                job.claim = token
                jobs.append(job)
        return jobs

    def release_jobs(self, releases: Sequence[JobRelease], *, owner: str | None = None) -> None:
        if not releases and owner is None:
            return
        now = self._clock.now()
        self._limit_idle_transactions()
        with self._errors():
            # The run history first, in a transaction of its own that holds no job row: a
            # worker reporting the same task ids never waits for the beat's job rows, nor
            # the beat for a worker's. The fires were sent, so their records stand even if
            # the write-back below is refused (another claim re-sends them under the same
            # task ids, which these upserts merge).
            self._record_dispatches(self._dispatches(releases), now, self._summaries(releases, now))
            with transaction.atomic(using=self.using):
                self._check_owner(owner, self._lease_clock(now) if owner is not None else now)
                ids = sorted({release.job_id for release in releases})
                connection = connections[self.using]
                if connection.vendor == "postgresql":
                    # The rules below as SQL (django_beatx.postgres), over rows locked in id order.
                    with connection.cursor() as cursor:
                        postgres.lock_jobs(cursor, connection.ops.quote_name, ids)
                        for batch in postgres.write_back_rounds(releases):
                            postgres.write_back(
                                cursor, connection.ops.quote_name, batch, updated_at=timezone.now()
                            )
                    return
                query = self._jobs().filter(pk__in=ids).order_by("pk").only(*_RELEASE_FIELDS)
                rows: dict[str, m.Job] = {row.pk: row for row in self._locked(query)}
                changed: dict[str, m.Job] = {}
                for release in releases:
                    row = rows.get(release.job_id)
                    if row is None:
                        continue  # removed meanwhile
                    if row.claim_token and row.claim_token != release.claim:
                        continue  # another claim holds the job now: it re-plans these fires
                    if release.claim is not None:
                        if row.released_claim == release.claim:
                            continue  # applied already (a write-back retried after an error)
                        row.released_claim = release.claim
                    row.total_run_count += len(release.fired)
                    row.misfire_count += release.missed
                    row.skip_count += release.skipped
                    if release.last_run_time is not None and (
                        row.last_run_time is None or release.last_run_time > row.last_run_time
                    ):
                        row.last_run_time = release.last_run_time
                    if release.error is not None:
                        row.last_error = release.error
                    if row.claim_token:  # still ours: the schedule advances and the claim ends
                        row.claimed_by, row.claimed_until, row.claim_token = "", None, ""
                        row.next_run_time = release.next_run_time
                        if release.status is JobStatus.COMPLETED or (
                            release.status is JobStatus.FAILED and release.error is not None
                        ):
                            row.status = release.status.value
                    # else a management write rescheduled the job (dropping the claim): its
                    # status and next run time stand; only what happened is recorded.
                    row.updated_at = timezone.now()
                    changed[row.pk] = row
                if changed:
                    self._jobs().bulk_update(list(changed.values()), _RELEASE_FIELDS, batch_size=500)

    @staticmethod
    def _dispatches(releases: Sequence[JobRelease]) -> list[tuple[str, str, datetime]]:
        """The fires ``releases`` sent: ``(job id, task id, scheduled at)`` each."""
        fires: list[tuple[str, str, datetime]] = []
        for release in releases:
            task_ids = release.task_ids or tuple(fire_task_id(release.job_id, at) for at in release.fired)
            fires.extend(
                (release.job_id, task_id, at) for at, task_id in zip(release.fired, task_ids, strict=False)
            )
        return fires

    @staticmethod
    def _summaries(releases: Sequence[JobRelease], now: datetime) -> list[RunRecord]:
        """The ``missed`` / ``skipped`` ledger records of ``releases`` (usually none)."""
        records: list[RunRecord] = []
        for release in releases:
            if release.missed or release.skipped or release.caught_up or release.coalesced:
                records += summaries(
                    release.job_id,
                    claim=release.claim,
                    at=now,
                    missed=release.missed,
                    skipped=release.skipped,
                    caught_up=release.caught_up,
                    coalesced=release.coalesced,
                )
        return records

    def _record_dispatches(
        self, fires: Sequence[tuple[str, str, datetime]], now: datetime, notes: Sequence[RunRecord] = ()
    ) -> None:
        """Add sent fires (``(job id, task id, scheduled at)``, sent at ``now``) and the
        write-back's ``missed`` / ``skipped`` records (``notes``) to the run history, merged into
        the records workers may have made already (by task id). Runs of jobs that do not exist
        (any more) are left out."""
        if not fires and not notes:
            return
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            for attempt in range(_RACE_ATTEMPTS):  # a job removed meanwhile fails the key check
                try:
                    with transaction.atomic(using=self.using), connection.cursor() as cursor:
                        postgres.record_dispatches(cursor, connection, fires, dispatched_at=now, notes=notes)
                except IntegrityError:
                    if attempt + 1 == _RACE_ATTEMPTS:
                        raise
                    continue
                return
        runs = [
            m.JobRun(job_id=job_id, scheduled_at=at, dispatched_at=now, task_id=task_id)
            for job_id, task_id, at in fires
        ]
        runs += [
            m.JobRun(
                job_id=note.job_id,
                task_id=note.task_id,
                outcome=note.outcome.value,
                dispatched_at=note.sent_at,
                reason=note.reason or "",
            )
            for note in notes
        ]
        if not self._upserts:
            with transaction.atomic(using=self.using):
                self._record_dispatches_generic(runs)
            return
        # Task-id order: two writers of overlapping runs lock their index entries in one order.
        self._write_runs(sorted(runs, key=lambda run: run.task_id), keep=("scheduled_at", "dispatched_at"))

    def _write_runs(
        self, runs: Sequence[m.JobRun], *, overwrite: Sequence[str] = (), keep: Sequence[str] = ()
    ) -> None:
        """Upsert run records by task id, in a short transaction holding no job row (the
        foreign-key check only shares the job rows' keys). A job removed meanwhile makes the
        check fail at commit: read which jobs exist again, and retry without its runs."""
        for attempt in range(_RACE_ATTEMPTS):
            try:
                with transaction.atomic(using=self.using):
                    job_ids = {run.job_id for run in runs}
                    existing = set(self._jobs().filter(pk__in=job_ids).values_list("pk", flat=True))
                    present = [run for run in runs if run.job_id in existing]
                    if present:
                        self._insert(m.JobRun, present, conflict="task_id", overwrite=overwrite, keep=keep)
            except IntegrityError:
                if attempt + 1 == _RACE_ATTEMPTS:
                    raise
                continue
            return

    def _record_dispatches_generic(self, runs: list[m.JobRun]) -> None:
        """:meth:`_record_dispatches` without ``ON CONFLICT ... DO UPDATE`` (untested vendors)."""
        existing = set(self._jobs().filter(pk__in={run.job_id for run in runs}).values_list("pk", flat=True))
        runs = [run for run in runs if run.job_id in existing]
        self._runs().bulk_create(runs, ignore_conflicts=True)
        # A worker may have reported the start before the beat got here (or a re-planned fire
        # was sent again): complete the rows it created instead of duplicating them.
        by_task = {run.task_id: run for run in runs}
        incomplete = self._runs().filter(task_id__in=list(by_task), scheduled_at__isnull=True)
        for existing_run in incomplete:
            run = by_task[existing_run.task_id]
            existing_run.scheduled_at, existing_run.dispatched_at = run.scheduled_at, run.dispatched_at
            existing_run.save(using=self.using, update_fields=["scheduled_at", "dispatched_at"])

    def record_dispatch(self, job_id: str, task_id: str, *, scheduled_at: datetime) -> None:
        """Add a run to the history for a fire sent outside the beat (the admin's "run now")."""
        with self._errors():
            self._record_dispatches([(job_id, task_id, scheduled_at)], self._clock.now())

    def due_count(self, now: datetime) -> int:
        with self._errors():
            # Claimed jobs included: a job claimed by a beat that froze is overdue too.
            count: int = self._jobs().schedulable().filter(next_run_time__lte=now).count()
        return count

    # -- run state -----------------------------------------------------------------------------

    def _write_run(self, run: m.JobRun, overwrite: Sequence[str]) -> None:
        """Create or update one run record (a worker's), never touching its job row."""
        if self._upserts:
            self._write_runs([run], overwrite=overwrite)
            return
        values = {name: getattr(run, name) for name in overwrite}
        with transaction.atomic(using=self.using):
            if not self._jobs().filter(pk=run.job_id).exists():
                return
            if self._runs().filter(task_id=run.task_id).update(**values):
                return
            try:
                with transaction.atomic(using=self.using):
                    run.save(using=self.using, force_insert=True)
            except IntegrityError:  # the beat recorded the dispatch meanwhile
                self._runs().filter(task_id=run.task_id).update(**values)

    def run_started(
        self, job_id: str, task_id: str, *, started_at: datetime, timeout: float, worker: str | None = None
    ) -> None:
        run = m.JobRun(
            job_id=job_id,
            task_id=task_id,
            outcome=_RUNNING,
            started_at=started_at,
            expires_at=started_at + timedelta(seconds=timeout),
            worker=worker or "",
        )
        overwrite = ("outcome", "started_at", "expires_at") + (("worker",) if worker else ())
        with self._errors():
            self._write_run(run, overwrite=overwrite)

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
        """The run record is the memory of a delivery: the first delivery sets its
        ``started_at`` (on the row the beat wrote, or a new one), a second finds it set. Kept
        until ``beatx_prune_runs`` removes the record. A retry (``attempt`` > 0)
        started after the first attempt's record and is not checked again."""
        if attempt:
            self.run_started(job_id, task_id, started_at=started_at, timeout=timeout, worker=worker)
            return True
        expires_at = started_at + timedelta(seconds=timeout)
        start: dict[str, Any] = {"outcome": _RUNNING, "started_at": started_at, "expires_at": expires_at}
        if worker:
            start["worker"] = worker
        with self._errors():
            for _ in range(_RACE_ATTEMPTS):
                # Row locks make this the one check: a second delivery waits for the first's
                # commit, then finds started_at set.
                if self._runs().filter(task_id=task_id, started_at__isnull=True).update(**start):
                    return True
                if self._runs().filter(task_id=task_id, started_at__isnull=False).exists():
                    return False
                if not self._jobs().filter(pk=job_id).exists():
                    return True  # not a job of this store: nothing to guard
                if self._insert_run_once(m.JobRun(job_id=job_id, task_id=task_id, **start)):
                    return True
                # The beat's dispatch record or another delivery got there first: look again.
        return True  # never settled (rows inserted and removed under it): run rather than lose it

    def _insert_run_once(self, run: m.JobRun) -> bool:
        """Insert ``run`` unless a run with its task id exists; whether it was inserted."""
        if self._upserts:
            return bool(self._insert(m.JobRun, [run], conflict="task_id"))
        try:
            with transaction.atomic(using=self.using):
                run.save(using=self.using, force_insert=True)
        except IntegrityError:
            return False
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
        values: dict[str, Any] = {
            "last_finished_at": finished_at,
            "last_duration": duration,
            "updated_at": timezone.now(),
        }
        if outcome is not RunOutcome.REVOKED:  # a revoked run neither fails nor restores the job
            values["status"] = _status_after_run_sql(error)
        if error is not None:
            values["last_error"] = error
        with self._errors():
            # The job first, in one statement: its row is locked only while it runs (a beat
            # claiming with SKIP LOCKED passes over it for that long at most).
            # No change notification: the run's end changes nothing the beat schedules by,
            # and a beat holding a fire back for max_instances polls the job itself. (A bump
            # per run made the change counter row the hottest lock in the database.)
            if not self._jobs().filter(pk=job_id).update(**values):
                return
            # Then the run record, holding no job row.
            run = m.JobRun(
                job_id=job_id,
                task_id=task_id,
                outcome=outcome.value,
                finished_at=finished_at,
                duration=duration,
                error=error or "",
                worker=worker or "",
            )
            overwrite = ("outcome", "finished_at", "duration", "error") + (("worker",) if worker else ())
            self._write_run(run, overwrite=overwrite)

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
        run = m.JobRun(
            job_id=job_id,
            task_id=task_id,
            outcome=m.JobRun.Outcome.RETRIED,
            error=error or "",
            retries=retries,
            worker=worker or "",
        )
        overwrite = ("outcome", "error", "retries") + (("worker",) if worker else ())
        with self._errors():
            self._write_run(run, overwrite=overwrite)  # the run record only: no job row

    def job_runs(self, job_id: str, *, limit: int = 20) -> list[RunRecord]:
        """The job's runs in the ledger (its :class:`~django_beatx.models.JobRun` rows): the
        latest ``limit`` by nominal time (the index ``beatx_run_job_idx``), and the latest
        ``limit`` that have none (missed / skipped records, runs started elsewhere)."""
        if limit <= 0:
            return []
        with self._errors():
            runs = self._runs().filter(job_id=job_id)
            rows = list(runs.filter(scheduled_at__isnull=False).order_by("-scheduled_at", "-id")[:limit])
            rows += runs.filter(scheduled_at__isnull=True).order_by("-id")[:limit]
        return newest_first(
            [run_record(row) for row in rows], limit=limit, now=self._clock.now(), max_age=None
        )

    def running_count(self, now: datetime) -> int:
        with self._errors():
            count: int = self._runs().in_flight(now).count()
        return count

    # -- the audit log -------------------------------------------------------------------------

    def record_change(self, change: JobChange) -> None:
        """One row of :class:`~django_beatx.models.JobChange`, in a statement of its own (no job
        row is locked: the log names the job by id)."""
        row = m.JobChange(
            job_id=change.job_id,
            at=change.at,
            action=change.action,
            source=change.source,
            actor=change.actor or "",
            changes=change.changes,
        )
        with self._errors():
            row.save(using=self.using, force_insert=True)

    def job_changes(self, job_id: str, *, limit: int = 20) -> list[JobChange]:
        if limit <= 0:
            return []
        with self._errors():
            rows = list(
                m.JobChange.objects.using(self.using).filter(job_id=job_id).order_by("-at", "-id")[:limit]
            )
        return [
            JobChange(
                job_id=row.job_id,
                at=row.at,
                action=row.action,
                source=row.source,
                actor=row.actor or None,
                changes=dict(row.changes or {}),
            )
            for row in rows
        ]

    # -- leadership ----------------------------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: datetime, ttl: float) -> bool:
        self._limit_idle_transactions()
        with self._errors(), transaction.atomic(using=self.using):
            now = self._lease_clock(now)
            expires = now + timedelta(seconds=ttl)
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
        values = {
            "owner": status.owner,
            "leader_since": status.leader_since,
            "last_tick_at": status.last_tick_at,
            "due_backlog": status.due_backlog,
            "jobs_fired": status.jobs_fired,
            "jobs_missed": status.jobs_missed,
            "jobs_skipped": status.jobs_skipped,
        }
        with self._errors():
            self._upsert_singleton(m.BeatState, _SINGLETON, values)

    def read_meta(self, key: str) -> str | None:
        with self._errors():
            row: m.MetaValue | None = m.MetaValue.objects.using(self.using).filter(pk=key).first()
        return None if row is None else row.value

    def write_meta(self, key: str, value: str) -> None:
        with self._errors():
            # Beats starting together all write the beat_schedule ids: no duplicate-key race.
            self._upsert_singleton(m.MetaValue, key, {"value": value})

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
        listens = connections[self.using].vendor == "postgresql" and self._listener.listening()
        if self._seen_version is None:
            self._seen_version = self._change_version()
        while True:
            version = self._change_version()
            if version != self._seen_version:
                self._seen_version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if listens:
                # Woken by a NOTIFY (or the timeout); the counter says whether it was new.
                listens = self._listener.wait(remaining) or self._listener.listening()
            else:
                time.sleep(min(self.poll_interval, remaining))

    def close(self) -> None:
        self._listener.close()
        connection = connections[self.using]
        if not connection.in_atomic_block:
            connection.close()

    def claim_job(self, job_id: str, *, claim_ttl: float = 60.0) -> Job | None:
        """Claim one job for a fire sent outside the schedule (see
        :meth:`beatx.stores.base.JobStorage.claim_job`): its row locked ``FOR NO KEY UPDATE``
        (where the database locks rows), then the claim columns written as
        :meth:`acquire_due_jobs` writes them (no owner), only if no live claim holds it, judged
        by the same clock. A row that cannot be read leaves the claim undone (the transaction
        rolls back) and raises :class:`SerializationError`."""
        now = self._clock.now()
        token = new_claim_token(None)
        with self._errors(), transaction.atomic(using=self.using):
            claims_at = self._lease_clock(now)
            row: m.Job | None = self._locked(self._jobs().filter(pk=job_id)).first()
            if row is None:
                raise JobLookupError(job_id)
            until = claims_at + timedelta(seconds=claim_ttl)
            claim = {"claimed_by": "", "claimed_until": until, "claim_token": token}
            # Conditional, as a claim without row locks (SQLite) is: a live claim made since
            # the read wins.
            if not self._jobs().filter(pk=job_id).unclaimed(claims_at).update(**claim):
                return None
            row.claimed_by, row.claimed_until, row.claim_token = "", until, token
            running = self._running_counts([job_id], now).get(job_id, 0)
            job = job_from_row(row, running=running)
        job.claim = token
        return job


#: The store's entry points: each one notices when it is called from a signal handler.
for _name in (
    "change_version",
    "add_job",
    "update_job",
    "remove_job",
    "get_job",
    "count_jobs_by_status",
    "get_jobs",
    "alerting_jobs",
    "pause_jobs",
    "resume_jobs",
    "remove_jobs",
    "get_jobs_by_id",
    "existing_ids",
    "add_new_jobs",
    "record_dispatches",
    "next_run_time",
    "acquire_due_jobs",
    "claim_job",
    "release_jobs",
    "record_dispatch",
    "due_count",
    "run_started",
    "run_finished",
    "running_count",
    "acquire_lease",
    "release_lease",
    "get_lease",
    "write_status",
    "read_meta",
    "write_meta",
    "read_status",
    "wait_for_change",
):
    setattr(DjangoStore, _name, _reentrant(getattr(DjangoStore, _name)))
