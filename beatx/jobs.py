"""Jobs, their status, the policy defaults and fires.

A :class:`Job` is what a store keeps: the definition (what to call, when, with which policy)
and the run state the engine and the executors advance. A :class:`Fire` is one scheduled
execution of a job, identified by ``(job id, scheduled time)``.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import importlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from beatx.errors import ConfigurationError, InvalidJobError, SerializationError
from beatx.triggers.base import Trigger

__all__ = [
    "ALERT_FIELDS",
    "JOB_STATE_VERSION",
    "PAUSE_FIELDS",
    "RUN_STATE_FIELDS",
    "STATE_FIELDS",
    "CatchUp",
    "Fire",
    "Job",
    "JobDefaults",
    "JobStatus",
    "Overlap",
    "fire_task_id",
    "func_label",
    "func_ref",
    "job_from_dict",
    "job_to_dict",
    "resolve_func",
]

#: Format version written into every serialised job. 2: the schedule policies (``catchup``,
#: ``catchup_window``, ``catchup_limit``, ``jitter``, ``max_runs``) and the pause's note,
#: author and time; a version 1 record reads its catch-up policy from ``coalesce`` and has
#: none of the others.
#: Version 2 also writes the exclusion calendars (``exclude``, ``on_excluded``); a record
#: without them excludes nothing.
#: Version 2 also writes the overlap policy (``overlap``) and ``pause_after_failures``; a
#: record without them skips (``max_instances``) and never pauses itself.
JOB_STATE_VERSION = 2

_FIRE_NAMESPACE = uuid.UUID("5b1e2c4e-0d1f-4c55-9a4e-6b6565617478")
_FIRE_SHA1 = hashlib.sha1(_FIRE_NAMESPACE.bytes, usedforsecurity=False)
_VARIANT = "89ab"

JobFunc = Callable[..., Any] | str

#: The fields only the beat's write-backs and the workers' run records write (never a
#: management write: see :mod:`beatx.stores.base`).
RUN_STATE_FIELDS = (
    "last_run_time",
    "total_run_count",
    "misfire_count",
    "skip_count",
    "last_error",
    "last_finished_at",
    "last_duration",
)
#: Why, by whom and when a paused job was paused (written with its status by ``pause_job``,
#: cleared by ``resume_job``).
PAUSE_FIELDS = ("pause_note", "paused_by", "paused_at")
#: The rules of a job's definition that decide which of its fire times go out, and how.
POLICY_FIELDS = (
    "max_instances",
    "misfire_grace_time",
    "coalesce",
    "catchup",
    "catchup_window",
    "catchup_limit",
    "jitter",
    "max_runs",
    "overlap",
    "pause_after_failures",
)
#: The exclusion calendars a job's fire times skip, and what an excluded fire does.
EXCLUSION_FIELDS = ("exclude", "on_excluded")
#: The alert rules of a job (see :mod:`beatx.alerts`): None each when not set.
ALERT_FIELDS = ("expect_every", "max_lateness", "max_runtime", "alert_after_failures")
#: The fields of a :class:`Job` that record what happened to it, as opposed to its definition.
STATE_FIELDS = ("status", *PAUSE_FIELDS, *RUN_STATE_FIELDS, "revision")


class JobStatus(enum.StrEnum):
    """Where a job is in its life.

    - ``ACTIVE``: eligible to fire.
    - ``PAUSED``: kept, but does not fire until resumed.
    - ``COMPLETED``: its trigger has no more fire times (a one-shot that ran, a past end date).
    - ``FAILED``: its last run raised; it keeps its schedule and returns to ``ACTIVE`` on the
      next successful run.
    - ``CANCELLED``: removed from the scheduler (seen on a job object after ``remove_job``).
    """

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def schedulable(self) -> bool:
        """Whether a job with this status fires when due."""
        return self in (JobStatus.ACTIVE, JobStatus.FAILED)


class CatchUp(enum.StrEnum):
    """What the fires of an outage do when the beat is back (``Job.catchup``).

    - ``LATEST``: one run, at the latest late fire (``coalesce=True``).
    - ``EARLIEST``: one run, at the earliest late fire.
    - ``ALL``: every late fire runs, oldest first (``coalesce=False``).
    - ``NONE``: no late fire runs; the job goes on from its next fire.
    """

    LATEST = "latest"
    EARLIEST = "earliest"
    ALL = "all"
    NONE = "none"

    @classmethod
    def from_coalesce(cls, coalesce: bool) -> CatchUp:
        """The policy the ``coalesce`` flag stands for."""
        return cls.LATEST if coalesce else cls.ALL


class Overlap(enum.StrEnum):
    """What a fire does when ``max_instances`` runs of its job are in flight (``Job.overlap``).

    - ``SKIP``: it is not sent (counted as skipped), after a short wait for a run to end.
    - ``BUFFER_ONE``: the newest such fire is kept (older ones skipped) and sent when a run ends.
    - ``BUFFER_ALL``: every such fire is kept and sent, oldest first, as runs end.
    - ``CANCEL_OTHER``: the runs in flight are revoked (Celery's ``revoke``), then it is sent.
    - ``TERMINATE_OTHER``: as ``CANCEL_OTHER``, with ``terminate=True`` (the worker kills a
      run already executing).
    - ``ALLOW_ALL``: it is sent; ``max_instances`` is not enforced.
    """

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    TERMINATE_OTHER = "terminate_other"
    ALLOW_ALL = "allow_all"

    @property
    def buffers(self) -> bool:
        """Whether fires held back by runs in flight are kept for later."""
        return self in (Overlap.BUFFER_ONE, Overlap.BUFFER_ALL)

    @property
    def cancels(self) -> bool:
        """Whether the runs in flight are revoked for a new fire."""
        return self in (Overlap.CANCEL_OTHER, Overlap.TERMINATE_OTHER)

    @property
    def tracks_sent(self) -> bool:
        """Whether a fire sent but not started yet counts as in flight (read from the run
        ledger): the policies that hold or revoke fires for runs in flight. ``skip`` counts
        only the runs the workers reported started, as it always did (no ledger read on the
        hot path)."""
        return self.buffers or self.cancels


def validate_overlap(overlap: Any, pause_after_failures: Any, *, where: str) -> Overlap:
    """Check the overlap fields; returns ``overlap`` as an :class:`Overlap`."""
    if pause_after_failures is not None and (
        isinstance(pause_after_failures, bool)
        or not isinstance(pause_after_failures, int)
        or pause_after_failures < 1
    ):
        raise InvalidJobError(
            f"{where}: pause_after_failures must be None or an integer >= 1, got {pause_after_failures!r}"
        )
    try:
        return Overlap(overlap)
    except ValueError:
        choices = ", ".join(repr(policy.value) for policy in Overlap)
        raise InvalidJobError(f"{where}: overlap must be one of {choices}, got {overlap!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDefaults:
    """Policy values a job gets when it does not set its own.

    ===================== ========= ===============================================================
    field                 default   meaning
    ===================== ========= ===============================================================
    misfire_grace_time    ``None``  seconds a fire may be late and still run; ``None``: no limit
    coalesce              ``True``  several missed fires of one job run once (the latest)
    max_instances         ``1``     runs of one job in flight at once; a fire beyond is skipped
    ===================== ========= ===============================================================
    """

    misfire_grace_time: float | None = None
    coalesce: bool = True
    max_instances: int = 1

    def __post_init__(self) -> None:
        validate_policy(self.misfire_grace_time, self.max_instances, where="job_defaults")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> JobDefaults:
        """Build defaults from a dict, rejecting unknown keys by name."""
        values = dict(values or {})
        unknown = sorted(set(values) - {"misfire_grace_time", "coalesce", "max_instances"})
        if unknown:
            raise ConfigurationError(
                f"job_defaults: unknown key(s) {', '.join(map(repr, unknown))}; "
                "expected misfire_grace_time, coalesce, max_instances"
            )
        try:
            return cls(**values)
        except InvalidJobError as exc:
            raise ConfigurationError(str(exc)) from exc


def validate_policy(misfire_grace_time: Any, max_instances: Any, *, where: str) -> None:
    if misfire_grace_time is not None and (
        isinstance(misfire_grace_time, bool)
        or not isinstance(misfire_grace_time, int | float)
        or misfire_grace_time < 0
    ):
        raise InvalidJobError(
            f"{where}: misfire_grace_time must be None or a number of seconds >= 0, got {misfire_grace_time!r}"
        )
    if isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1:
        raise InvalidJobError(f"{where}: max_instances must be an integer >= 1, got {max_instances!r}")


def validate_catchup(catchup: Any, catchup_window: Any, catchup_limit: Any, *, where: str) -> CatchUp | None:
    """Check the catch-up fields; returns ``catchup`` as a :class:`CatchUp` (None stays None)."""
    if catchup_window is not None and (
        isinstance(catchup_window, bool) or not isinstance(catchup_window, int | float) or catchup_window < 0
    ):
        raise InvalidJobError(
            f"{where}: catchup_window must be None or a number of seconds >= 0, got {catchup_window!r}"
        )
    if catchup_limit is not None and (
        isinstance(catchup_limit, bool) or not isinstance(catchup_limit, int) or catchup_limit < 1
    ):
        raise InvalidJobError(
            f"{where}: catchup_limit must be None or an integer >= 1, got {catchup_limit!r}"
        )
    if catchup is None:
        return None
    try:
        return CatchUp(catchup)
    except ValueError:
        choices = ", ".join(repr(policy.value) for policy in CatchUp)
        raise InvalidJobError(f"{where}: catchup must be one of {choices}, got {catchup!r}") from None


def validate_alerts(
    expect_every: Any, max_lateness: Any, max_runtime: Any, alert_after_failures: Any, *, where: str
) -> None:
    """Check a job's alert rules: seconds > 0 (or None), and a failure count >= 1 (or None)."""
    for name, value in (
        ("expect_every", expect_every),
        ("max_lateness", max_lateness),
        ("max_runtime", max_runtime),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
        ):
            raise InvalidJobError(f"{where}: {name} must be None or a number of seconds > 0, got {value!r}")
    if alert_after_failures is not None and (
        isinstance(alert_after_failures, bool)
        or not isinstance(alert_after_failures, int)
        or alert_after_failures < 1
    ):
        raise InvalidJobError(
            f"{where}: alert_after_failures must be None or an integer >= 1, got {alert_after_failures!r}"
        )


def validate_exclude(exclude: Any, on_excluded: Any, *, where: str) -> tuple[str, ...]:
    """Check a job's calendar names and policy; returns the names as a tuple (one name may be
    given as a string)."""
    names = (exclude,) if isinstance(exclude, str) else exclude
    if names is None:
        names = ()
    try:
        names = tuple(dict.fromkeys(names))
    except TypeError:
        raise InvalidJobError(f"{where}: exclude must be a list of calendar names, got {exclude!r}") from None
    if not all(isinstance(name, str) and name for name in names):
        raise InvalidJobError(f"{where}: exclude must be a list of calendar names, got {exclude!r}")
    if on_excluded not in ("skip", "next_business_day"):
        raise InvalidJobError(
            f"{where}: on_excluded must be 'skip' or 'next_business_day', got {on_excluded!r}"
        )
    return names


@dataclass(slots=True, kw_only=True, weakref_slot=True)
class Job:
    """A scheduled job: its definition and its run state.

    ``func`` is a callable, a ``"package.module:attribute"`` reference or a Celery task name.
    Stores that persist jobs keep the reference string (see :func:`func_ref`).
    All datetimes are timezone-aware UTC.
    """

    id: str
    func: JobFunc
    trigger: Trigger
    name: str = ""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Celery routing and message options: queue, routing_key, exchange, priority, expires, headers.
    options: dict[str, Any] = field(default_factory=dict)
    max_instances: int = 1
    misfire_grace_time: float | None = None
    coalesce: bool = True
    #: What an outage's late fires do; None (the default) takes it from ``coalesce`` (True:
    #: ``latest``, False: ``all``). Set, it decides ``coalesce`` (False only for ``all``).
    catchup: CatchUp | None = None
    #: Seconds back from the beat's return within which an outage's fires are caught up;
    #: older ones are missed. None: no limit.
    catchup_window: float | None = None
    #: The most fires one catch-up runs (``catchup="all"``): the newest ones; older ones are
    #: missed. None: no limit.
    catchup_limit: int | None = None
    #: Seconds each fire may go out after its nominal time, by a delay derived from (job id,
    #: nominal time) and shorter than the gap to the next fire (see :mod:`beatx.jitter`).
    #: None: on time.
    jitter: float | None = None
    #: The most fires the job sends in its life; once sent (``total_run_count``), it is
    #: COMPLETED. None: no limit.
    max_runs: int | None = None
    #: What a fire does while ``max_instances`` runs are in flight (see :class:`Overlap`).
    overlap: Overlap = Overlap.SKIP
    #: Pause the job (``paused_by="beatx"``) after this many consecutive runs ended in an
    #: error (as workers report them). None: never.
    pause_after_failures: int | None = None
    #: Names of the exclusion calendars (:mod:`beatx.calendars`) at whose times the job does
    #: not fire, read in the trigger's timezone.
    exclude: tuple[str, ...] = ()
    #: What a fire the calendars exclude does: ``"skip"`` or ``"next_business_day"`` (see
    #: :mod:`beatx.exclusion`).
    on_excluded: str = "skip"
    #: Alert when no fire of the job was sent for this many seconds (a missed heartbeat).
    expect_every: float | None = None
    #: Alert when a fire goes out (or is still unsent) this many seconds after its nominal time.
    max_lateness: float | None = None
    #: Alert when a run started and has not finished within this many seconds.
    max_runtime: float | None = None
    #: Alert after this many consecutive failed runs (``failed``, ``rejected``, ``unknown_task``).
    alert_after_failures: int | None = None
    status: JobStatus = JobStatus.ACTIVE
    #: Why the job was paused, who paused it and when (None when it is not paused).
    pause_note: str | None = None
    paused_by: str | None = None
    paused_at: datetime | None = None
    next_run_time: datetime | None = None
    last_run_time: datetime | None = None
    total_run_count: int = 0
    misfire_count: int = 0
    skip_count: int = 0
    last_error: str | None = None
    last_finished_at: datetime | None = None
    last_duration: float | None = None
    #: Runs in flight, as counted by the store when the job was read.
    running: int = 0
    #: Bumped by the store on every management write (edit, pause, resume, replace); the
    #: beat's write-backs and the workers' run records leave it alone.
    revision: int = 0
    #: The token of the claim under which a beat holds this job (set by
    #: ``JobStore.acquire_due_jobs``, never stored with the definition): only a write-back
    #: that names it advances the job's schedule.
    claim: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidJobError(f"job id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.trigger, Trigger):
            raise InvalidJobError(f"job {self.id!r}: trigger must be a Trigger, got {self.trigger!r}")
        self.trigger = self.trigger.for_job(self.id)
        if not (callable(self.func) or (isinstance(self.func, str) and self.func)):
            raise InvalidJobError(f"job {self.id!r}: func must be a callable or a reference string")
        validate_policy(self.misfire_grace_time, self.max_instances, where=f"job {self.id!r}")
        catchup = validate_catchup(
            self.catchup, self.catchup_window, self.catchup_limit, where=f"job {self.id!r}"
        )
        if self.jitter is not None and (
            isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float) or self.jitter < 0
        ):
            raise InvalidJobError(
                f"job {self.id!r}: jitter must be None or a number of seconds >= 0, got {self.jitter!r}"
            )
        if self.max_runs is not None and (
            isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or self.max_runs < 1
        ):
            raise InvalidJobError(
                f"job {self.id!r}: max_runs must be None or an integer >= 1, got {self.max_runs!r}"
            )
        if catchup is None:
            self.catchup = CatchUp.from_coalesce(self.coalesce)
        else:
            self.catchup = catchup
            self.coalesce = catchup is not CatchUp.ALL
        self.exclude = validate_exclude(self.exclude, self.on_excluded, where=f"job {self.id!r}")
        if type(self.overlap) is not Overlap or self.pause_after_failures is not None:
            self.overlap = validate_overlap(self.overlap, self.pause_after_failures, where=f"job {self.id!r}")
        validate_alerts(
            self.expect_every,
            self.max_lateness,
            self.max_runtime,
            self.alert_after_failures,
            where=f"job {self.id!r}",
        )
        if type(self.args) is not tuple:
            self.args = tuple(self.args)
        self.kwargs = dict(self.kwargs)
        if type(self.status) is not JobStatus:
            self.status = JobStatus(self.status)
        if not self.name:
            self.name = self.id

    @property
    def func_ref(self) -> str:
        """The job's function as a string: ``"module:attr"`` or a task name."""
        return func_ref(self.func)

    @property
    def remaining_runs(self) -> int | None:
        """Fires the job may still send under ``max_runs`` (None: no limit)."""
        return None if self.max_runs is None else max(self.max_runs - self.total_run_count, 0)

    @property
    def catchup_policy(self) -> CatchUp:
        """``catchup``, never None (a job normalises it when built)."""
        return self.catchup or CatchUp.from_coalesce(self.coalesce)

    def copy(self) -> Job:
        """A copy that shares no mutable state with this job."""
        clone = copy.copy(self)
        clone.kwargs = copy.deepcopy(self.kwargs)
        clone.options = copy.deepcopy(self.options)
        return clone

    def describe(self) -> dict[str, Any]:
        """A plain dict of the job, as ``Scheduler.jobs()`` lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "func": func_label(self.func),
            "trigger": self.trigger.describe(),
            "status": self.status.value,
            "next_run_time": self.next_run_time,
            "last_run_time": self.last_run_time,
            "total_run_count": self.total_run_count,
            "misfire_count": self.misfire_count,
            "skip_count": self.skip_count,
            "last_error": self.last_error,
            "max_instances": self.max_instances,
            "misfire_grace_time": self.misfire_grace_time,
            "coalesce": self.coalesce,
            "catchup": self.catchup_policy.value,
            "catchup_window": self.catchup_window,
            "catchup_limit": self.catchup_limit,
            "jitter": self.jitter,
            "max_runs": self.max_runs,
            "remaining_runs": self.remaining_runs,
            "overlap": self.overlap.value,
            "pause_after_failures": self.pause_after_failures,
            "pause_note": self.pause_note,
            "paused_by": self.paused_by,
            "paused_at": self.paused_at,
            "exclude": list(self.exclude),
            "on_excluded": self.on_excluded,
            "expect_every": self.expect_every,
            "max_lateness": self.max_lateness,
            "max_runtime": self.max_runtime,
            "alert_after_failures": self.alert_after_failures,
            "running": self.running,
        }


@dataclass(frozen=True, slots=True)
class Fire:
    """One execution of a job at one scheduled time.

    ``task_id`` is derived from ``(job id, scheduled time)``: the same fire always has the
    same id (see :func:`fire_task_id`).
    """

    job: Job
    scheduled_at: datetime
    #: When the fire goes out, if later than ``scheduled_at`` (the job's ``jitter``).
    due_at: datetime | None = field(default=None, compare=False)
    task_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_id", fire_task_id(self.job.id, self.scheduled_at))

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def due(self) -> datetime:
        """When the fire goes out: its nominal time, delayed by the job's jitter."""
        return self.scheduled_at if self.due_at is None else self.due_at


def fire_task_id(job_id: str, scheduled_at: datetime) -> str:
    """The Celery task id of the fire of ``job_id`` scheduled at ``scheduled_at``.

    A uuid5 of the job id and the scheduled time in whole microseconds since the epoch, so a
    re-published fire (after a failover, a retried send) carries the same id.
    """
    micros = round(scheduled_at.timestamp() * 1_000_000)
    # uuid.uuid5 spelled out (the same value): SHA-1 of namespace + name, version 5, RFC 4122
    # variant; twice as fast, and a burst computes one per fire.
    digest = _FIRE_SHA1.copy()
    digest.update(f"{job_id}\x00{micros}".encode())
    x = digest.hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[int(x[16], 16) & 3]}{x[17:20]}-{x[20:32]}"


def module_allowed(ref: str, allowed_modules: Iterable[str]) -> bool:
    """Whether the ``module:function`` reference ``ref`` names a function of one of
    ``allowed_modules`` or of one of their submodules."""
    module = ref.partition(":")[0].strip()
    return bool(module) and any(module == name or module.startswith(name + ".") for name in allowed_modules)


def func_ref(func: JobFunc) -> str:
    """The reference string of a job function.

    Strings are returned as they are. A Celery task gives its registered name; a module-level
    function gives ``"module:qualname"``.

    :raises InvalidJobError: for a lambda, a nested function or another object that cannot be
        imported back by name.
    """
    if isinstance(func, str):
        return func
    task_name = getattr(func, "name", None)
    if isinstance(task_name, str) and hasattr(func, "apply_async"):
        return task_name
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise InvalidJobError(
            f"{func!r} cannot be referenced by name; use a module-level function or a 'module:attr' string"
        )
    return f"{module}:{qualname}"


def func_label(func: JobFunc) -> str:
    """A readable name of a job function, also for functions that cannot be imported back."""
    if isinstance(func, str):
        return func
    try:
        return func_ref(func)
    except InvalidJobError:
        module = getattr(func, "__module__", None) or "?"
        return f"{module}:{getattr(func, '__qualname__', repr(func))}"


def resolve_func(ref: str) -> Callable[..., Any]:
    """Import the callable named by ``"package.module:attribute"``.

    :raises ConfigurationError: naming the reference when the module or attribute is missing.
    """
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigurationError(f"func {ref!r} must look like 'package.module:callable'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"func {ref!r}: cannot import module {module_name!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigurationError(f"func {ref!r}: module {module_name!r} has no {attr_path!r}") from exc
    if not callable(target):
        raise ConfigurationError(f"func {ref!r} is not callable")
    return target  # type: ignore[no-any-return]


def _dt_out(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt_in(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def job_to_dict(job: Job) -> dict[str, Any]:
    """A JSON-compatible dict of the job (without ``running``, which stores count themselves)."""
    return {
        "version": JOB_STATE_VERSION,
        "id": job.id,
        "name": job.name,
        "func": job.func_ref,
        "trigger": job.trigger.to_dict(),
        "args": list(job.args),
        "kwargs": job.kwargs,
        "options": job.options,
        "max_instances": job.max_instances,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "catchup": job.catchup_policy.value,
        "catchup_window": job.catchup_window,
        "catchup_limit": job.catchup_limit,
        "jitter": job.jitter,
        "max_runs": job.max_runs,
        "overlap": job.overlap.value,
        "pause_after_failures": job.pause_after_failures,
        "pause_note": job.pause_note,
        "paused_by": job.paused_by,
        "paused_at": _dt_out(job.paused_at),
        "exclude": list(job.exclude),
        "on_excluded": job.on_excluded,
        "expect_every": job.expect_every,
        "max_lateness": job.max_lateness,
        "max_runtime": job.max_runtime,
        "alert_after_failures": job.alert_after_failures,
        "status": job.status.value,
        "next_run_time": _dt_out(job.next_run_time),
        "last_run_time": _dt_out(job.last_run_time),
        "total_run_count": job.total_run_count,
        "misfire_count": job.misfire_count,
        "skip_count": job.skip_count,
        "last_error": job.last_error,
        "last_finished_at": _dt_out(job.last_finished_at),
        "last_duration": job.last_duration,
        "revision": job.revision,
    }


def job_from_dict(data: Mapping[str, Any]) -> Job:
    """Rebuild a job written by :func:`job_to_dict` (any format version up to
    :data:`JOB_STATE_VERSION`: a field an older version did not write takes its default).

    :raises SerializationError: for a newer format version or a corrupt record.
    """
    from beatx.triggers import trigger_from_dict

    version = data.get("version")
    if not isinstance(version, int) or version > JOB_STATE_VERSION:
        raise SerializationError(
            f"job {data.get('id')!r} was stored with format version {version!r}; this beatx reads "
            f"versions up to {JOB_STATE_VERSION}, upgrade beatx to read it"
        )
    try:
        return Job(
            id=data["id"],
            name=data.get("name") or data["id"],
            func=data["func"],
            trigger=trigger_from_dict(data["trigger"]),
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            options=dict(data.get("options") or {}),
            max_instances=data.get("max_instances", 1),
            misfire_grace_time=data.get("misfire_grace_time"),
            coalesce=data.get("coalesce", True),
            catchup=data.get("catchup"),
            catchup_window=data.get("catchup_window"),
            catchup_limit=data.get("catchup_limit"),
            jitter=data.get("jitter"),
            max_runs=data.get("max_runs"),
            overlap=data.get("overlap") or Overlap.SKIP,
            pause_after_failures=data.get("pause_after_failures"),
            pause_note=data.get("pause_note"),
            paused_by=data.get("paused_by"),
            paused_at=_dt_in(data.get("paused_at")),
            exclude=tuple(data.get("exclude") or ()),
            on_excluded=data.get("on_excluded") or "skip",
            expect_every=data.get("expect_every"),
            max_lateness=data.get("max_lateness"),
            max_runtime=data.get("max_runtime"),
            alert_after_failures=data.get("alert_after_failures"),
            status=JobStatus(data.get("status", "active")),
            next_run_time=_dt_in(data.get("next_run_time")),
            last_run_time=_dt_in(data.get("last_run_time")),
            total_run_count=data.get("total_run_count", 0),
            misfire_count=data.get("misfire_count", 0),
            skip_count=data.get("skip_count", 0),
            last_error=data.get("last_error"),
            last_finished_at=_dt_in(data.get("last_finished_at")),
            last_duration=data.get("last_duration"),
            revision=data.get("revision", 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"job {data.get('id')!r}: corrupt stored record: {exc}") from exc
