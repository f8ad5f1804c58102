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
    "JOB_STATE_VERSION",
    "RUN_STATE_FIELDS",
    "STATE_FIELDS",
    "Fire",
    "Job",
    "JobDefaults",
    "JobStatus",
    "fire_task_id",
    "func_label",
    "func_ref",
    "job_from_dict",
    "job_to_dict",
    "resolve_func",
]

#: Format version written into every serialised job.
JOB_STATE_VERSION = 1

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
#: The fields of a :class:`Job` that record what happened to it, as opposed to its definition.
STATE_FIELDS = ("status", *RUN_STATE_FIELDS, "revision")


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
    status: JobStatus = JobStatus.ACTIVE
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
        if not (callable(self.func) or (isinstance(self.func, str) and self.func)):
            raise InvalidJobError(f"job {self.id!r}: func must be a callable or a reference string")
        validate_policy(self.misfire_grace_time, self.max_instances, where=f"job {self.id!r}")
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
    task_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_id", fire_task_id(self.job.id, self.scheduled_at))

    @property
    def job_id(self) -> str:
        return self.job.id


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
    """Rebuild a job written by :func:`job_to_dict`.

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
