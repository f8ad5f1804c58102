"""Scheduler configuration: in code, from a mapping, or from a YAML file.

The YAML shape is the seed document's::

    services:            # optional wrapper; a bare top-level ``scheduler:`` works too
      scheduler:
        enabled: true
        backend: memory  # memory | redis | django
        url: ~           # required for redis, e.g. redis://127.0.0.1:6379/0
        timezone: UTC
        max_concurrent_jobs: 10
        job_defaults: {misfire_grace_time: 30, coalesce: true, max_instances: 1}
        jobs:
          - id: global_sync
            func: "myapp.tasks:sync_data"
            trigger: interval
            hours: 1

``trigger`` is one of ``interval``, ``cron``, ``date``, ``rrule`` and ``solar``; the job's
other keys are the trigger's arguments (see :func:`beatx.triggers.build_trigger`).

Exclusion calendars go in a ``calendars:`` list (the fields of
:class:`beatx.calendars.ExclusionCalendar`), stored (or replaced) at start before the jobs,
which name them in ``exclude`` (with ``on_excluded``)::

        calendars:
          - name: fr-holidays
            holidays: [FR]
            weekdays: [sat, sun]
        jobs:
          - id: payroll
            func: "myapp.tasks:payroll"
            trigger: cron
            expression: "0 9 1 * *"
            exclude: [fr-holidays]
            on_excluded: next_business_day

Every error names the file, the job and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beatx.calendars import ExclusionCalendar, calendar_from_dict
from beatx.errors import BeatxError, ConfigurationError
from beatx.jobs import ALERT_FIELDS, EXCLUSION_FIELDS, POLICY_FIELDS, JobDefaults
from beatx.settings_schema import SETTINGS
from beatx.triggers import TRIGGER_TYPES

__all__ = ["JobSpec", "SchedulerConfig"]

_BACKENDS = ("memory", "redis", "django")
_CONFIG_KEYS = {
    "enabled",
    "backend",
    "url",
    "timezone",
    "max_concurrent_jobs",
    "job_defaults",
    "jobs",
    "key_prefix",
    "lease_timeout",
    "calendars",
    "log_each_fire",
    "alert_interval",
    "alert_webhook",
}
_JOB_KEYS = {
    "id",
    "func",
    "trigger",
    "name",
    "args",
    "kwargs",
    "options",
    *POLICY_FIELDS,
    *EXCLUSION_FIELDS,
    *ALERT_FIELDS,
    "paused",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job declared in configuration: what ``add_job`` receives."""

    id: str
    func: str
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Any, *, where: str) -> JobSpec:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where}: a job must be a mapping, got {type(data).__name__}")
        job_id = data.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ConfigurationError(f"{where}: id: every job needs a non-empty string id")
        where = f"{where} (id {job_id!r})"
        func = data.get("func")
        if not isinstance(func, str) or ":" not in func:
            raise ConfigurationError(f"{where}: func: expected 'package.module:callable', got {func!r}")
        trigger = data.get("trigger")
        if not isinstance(trigger, str) or trigger not in TRIGGER_TYPES:
            kinds = [repr(kind) for kind in TRIGGER_TYPES]
            raise ConfigurationError(
                f"{where}: trigger: expected {', '.join(kinds[:-1])} or {kinds[-1]}, got {trigger!r}"
            )
        options = {k: data[k] for k in _JOB_KEYS - {"id", "func", "trigger"} if k in data}
        trigger_args = {k: v for k, v in data.items() if k not in _JOB_KEYS}
        return cls(id=job_id, func=func, trigger=trigger, trigger_args=trigger_args, options=options)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    """How a scheduler runs.

    :param timezone: default timezone of cron triggers and naive datetimes (IANA name).
    :param max_concurrent_jobs: runs in flight across all jobs; ``None``: no cap.
    :param job_defaults: policy defaults (:class:`beatx.JobDefaults` or a dict of it).
    :param backend: ``"memory"``, ``"redis"`` or ``"django"``.
    :param url: the store URL for the redis backend.
    :param key_prefix: prefix of every Redis key.
    :param lease_timeout: seconds a leader's lease lasts without renewal.
    :param jobs: jobs declared in configuration, added (or updated in place) at start.
    :param calendars: exclusion calendars declared in configuration, stored (or replaced)
        at start, before the jobs.
    :param log_each_fire: log each fire sent at INFO; otherwise one INFO line per group of
        fires sent together, and each fire at DEBUG.
    """

    timezone: str = "UTC"
    max_concurrent_jobs: int | None = None
    job_defaults: JobDefaults = field(default_factory=JobDefaults)
    enabled: bool = True
    backend: str = "memory"
    url: str | None = None
    key_prefix: str = "beatx:"
    lease_timeout: float = 30.0
    jobs: tuple[JobSpec, ...] = ()
    calendars: tuple[ExclusionCalendar, ...] = ()
    log_each_fire: bool = False
    #: Seconds between two checks of the jobs' alert rules (see :mod:`beatx.alert_watch`).
    alert_interval: float = 10.0
    #: URL each alert raised or resolved is POSTed to as JSON (None: none).
    alert_webhook: str | None = None

    def __post_init__(self) -> None:
        # The checks shared with the Celery settings and Django's BEATX (beatx.settings_schema).
        for setting in SETTINGS:
            if setting.config_field is not None and setting.check is not None:
                value = setting.check(setting.config_field, getattr(self, setting.config_field))
                object.__setattr__(self, setting.config_field, value)
        if self.backend not in _BACKENDS:
            raise ConfigurationError(f"backend: expected one of {', '.join(_BACKENDS)}, got {self.backend!r}")
        if self.backend == "redis" and not self.url:
            raise ConfigurationError("url: the redis backend needs a url such as redis://127.0.0.1:6379/0")

    @property
    def store_url(self) -> str:
        """The URL :func:`beatx.stores.open_store` opens for this configuration."""
        if self.backend == "redis":
            assert self.url is not None
            return self.url
        return f"{self.backend}://"

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "configuration") -> SchedulerConfig:
        """Build a configuration from the ``scheduler`` mapping (or one that wraps it in
        ``services:`` or ``scheduler:``).

        :raises ConfigurationError: naming ``source`` and the offending key.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
        if "services" in data:
            services = data["services"]
            if not isinstance(services, Mapping) or "scheduler" not in services:
                raise ConfigurationError(f"{source}: services: expected a 'scheduler' section")
            data = services["scheduler"]
        elif "scheduler" in data:
            data = data["scheduler"]
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: scheduler: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - _CONFIG_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{source}: scheduler: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(_CONFIG_KEYS))}"
            )
        jobs_data = data.get("jobs") or []
        if not isinstance(jobs_data, list):
            raise ConfigurationError(f"{source}: jobs: expected a list of jobs")
        jobs = tuple(
            JobSpec.from_mapping(item, where=f"{source}: jobs[{i}]") for i, item in enumerate(jobs_data)
        )
        seen: set[str] = set()
        for spec in jobs:
            if spec.id in seen:
                raise ConfigurationError(f"{source}: jobs: the id {spec.id!r} is used twice")
            seen.add(spec.id)
        calendars_data = data.get("calendars") or []
        if not isinstance(calendars_data, list):
            raise ConfigurationError(f"{source}: calendars: expected a list of calendars")
        calendars: list[ExclusionCalendar] = []
        for i, item in enumerate(calendars_data):
            try:
                calendars.append(calendar_from_dict(item))
            except BeatxError as exc:
                raise ConfigurationError(f"{source}: calendars[{i}]: {exc}") from exc
        names = [calendar.name for calendar in calendars]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ConfigurationError(f"{source}: calendars: the name {twice[0]!r} is used twice")
        values = {k: v for k, v in data.items() if k not in ("jobs", "calendars") and v is not None}
        try:
            return cls(**values, jobs=jobs, calendars=tuple(calendars))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc
        except TypeError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> SchedulerConfig:
        """Read a YAML file (needs PyYAML: ``pip install 'beatx[yaml]'``)."""
        try:
            import yaml
        except ImportError as exc:
            raise ConfigurationError("reading YAML needs PyYAML: pip install 'beatx[yaml]'") from exc
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the file: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: malformed YAML: {exc}") from exc
        return cls.from_mapping(data, source=str(path))
