"""The Celery integration: ``celery -A proj beat -S beatx`` and the worker-side run state.

Three things live here:

* :class:`BeatxScheduler`, a ``celery.beat.Scheduler`` registered under the
  ``celery.beat_schedulers`` entry point as ``beatx``, so ``celery -A proj beat -S beatx``
  (or ``beat_scheduler = "beatx"``) runs a beatx :class:`~beatx.beat.Beat` (leader lease +
  engine) and imports ``app.conf.beat_schedule`` at start-up;
* :func:`setup`, the one line a project adds next to its Celery app
  (``beatx.celery.setup(app)``): worker signal handlers that record each run's start and end
  in the store (``max_instances``, ``FAILED`` / ``last_error``, durations), the optional
  duplicate-delivery guard, and ``beat_scheduler = "beatx"``;
* :func:`get_scheduler`, the management API (:class:`~beatx.JobManager`) bound to the
  configured store, for application code.

Settings are read from the Celery configuration (``beatx_store`` ...; in a Django project
with ``namespace="CELERY"``: ``CELERY_BEATX_STORE`` ...), see :class:`BeatxSettings`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.beat import Scheduler
from celery.exceptions import Ignore

from beatx.beat import Beat
from beatx.dispatch.celery import DEFAULT_PUBLISH_TIMEOUT, JOB_ID_HEADER, CeleryDispatcher
from beatx.errors import ConfigurationError, InvalidJobError
from beatx.jobs import JobDefaults, JobFunc
from beatx.manager import JobManager
from beatx.stores import open_store
from beatx.stores.base import JobStore
from beatx.triggers import CronTrigger, IntervalTrigger, SolarTrigger, Trigger
from beatx.triggers.base import get_timezone, timezone_name

if TYPE_CHECKING:
    from celery import Celery

    from beatx.metrics import BeatxMetrics

__all__ = [
    "BEAT_SCHEDULE_SOURCE",
    "BeatxScheduler",
    "BeatxSettings",
    "convert_schedule",
    "get_scheduler",
    "import_beat_schedule",
    "setup",
]

logger = logging.getLogger("beatx.celery")

#: ``options["beatx_source"]`` of the jobs imported from ``app.conf.beat_schedule``.
BEAT_SCHEDULE_SOURCE = "beat_schedule"
SOURCE_OPTION = "beatx_source"

_DEFAULT_SCHEDULER = "celery.beat:PersistentScheduler"
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})


# -- settings -----------------------------------------------------------------------------------


def _number(
    key: str, value: Any, *, allow_none: bool = False, integer: bool = False, up_to: float | None = None
) -> Any:
    """``value`` if it is a number > 0 (with ``up_to``: from 0 to ``up_to``)."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        in_range = False
    else:
        in_range = 0 <= value <= up_to if up_to is not None else value > 0
    if not in_range:
        if integer:
            what = "a positive integer"
        elif up_to is not None:
            what = f"a number of seconds from 0 to {up_to:g}"
        else:
            what = "a number of seconds > 0"
        raise ConfigurationError(f"{key}: expected {what}{' or None' if allow_none else ''}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class BeatxSettings:
    """beatx's settings, read from a Celery app's configuration.

    ======================== ================================ ====================================
    setting                  default                          meaning
    ======================== ================================ ====================================
    beatx_store              ``"memory://"``                  store URL: ``memory://``,
                                                              ``redis://host:port/db``, ``django://``
    beatx_key_prefix         ``"beatx:"``                     prefix of every Redis key
    beatx_timezone           ``app.conf.timezone``, else UTC  default timezone of cron jobs and
                                                              naive datetimes
    beatx_job_defaults       ``{}``                           misfire_grace_time, coalesce,
                                                              max_instances
    beatx_max_concurrent_jobs ``None``                        runs in flight across all jobs
    beatx_lease_timeout      ``30``                           seconds a leader's lease lasts
    beatx_run_timeout        ``3600``                         seconds a started run counts as in
                                                              flight without a finish
    beatx_dedupe             ``False``                        worker-side duplicate-delivery guard
                                                              (Redis or Django store)
    beatx_metrics_port       ``None``                         serve Prometheus metrics from beat on
                                                              127.0.0.1:<port> (``beatx[metrics]``)
    beatx_lookahead          ``0.05``                         seconds before fires are due that beat
                                                              claims them and builds their messages
                                                              (then sends them on time); 0: off
    beatx_atomic_fire        ``True``                         when broker and store are one Redis
                                                              server, the store's write-back
                                                              script pushes each fire's message
                                                              (exactly once); False: publish, then
                                                              write back
    ======================== ================================ ====================================

    In a Django project configured with ``namespace="CELERY"`` the names are upper case with
    the namespace: ``CELERY_BEATX_STORE``. Unknown ``beatx_*`` keys and malformed values raise
    :class:`~beatx.ConfigurationError` naming the key.
    """

    store: str = "memory://"
    key_prefix: str = "beatx:"
    timezone: str = "UTC"
    job_defaults: JobDefaults = field(default_factory=JobDefaults)
    max_concurrent_jobs: int | None = None
    lease_timeout: float = 30.0
    run_timeout: float = 3600.0
    dedupe: bool = False
    metrics_port: int | None = None
    lookahead: float = 0.05
    atomic_fire: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.store, str) or "://" not in self.store:
            raise ConfigurationError(
                f"beatx_store: expected a URL such as memory://, redis://127.0.0.1:6379/0 or django://, "
                f"got {self.store!r}"
            )
        if not isinstance(self.key_prefix, str) or not self.key_prefix:
            raise ConfigurationError(
                f"beatx_key_prefix: expected a non-empty string, got {self.key_prefix!r}"
            )
        try:
            get_timezone(self.timezone)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"beatx_timezone: {exc}") from exc
        if isinstance(self.job_defaults, Mapping) or self.job_defaults is None:
            try:
                defaults = JobDefaults.from_mapping(self.job_defaults)
            except ConfigurationError as exc:
                raise ConfigurationError(f"beatx_job_defaults: {exc}") from exc
            object.__setattr__(self, "job_defaults", defaults)
        elif not isinstance(self.job_defaults, JobDefaults):
            raise ConfigurationError(
                f"beatx_job_defaults: expected a dict of misfire_grace_time, coalesce, max_instances, "
                f"got {self.job_defaults!r}"
            )
        _number("beatx_max_concurrent_jobs", self.max_concurrent_jobs, allow_none=True, integer=True)
        _number("beatx_lease_timeout", self.lease_timeout)
        _number("beatx_run_timeout", self.run_timeout)
        _number("beatx_lookahead", self.lookahead, up_to=1)
        if not isinstance(self.dedupe, bool):
            raise ConfigurationError(f"beatx_dedupe: expected True or False, got {self.dedupe!r}")
        if not isinstance(self.atomic_fire, bool):
            raise ConfigurationError(f"beatx_atomic_fire: expected True or False, got {self.atomic_fire!r}")
        if self.metrics_port is not None and (
            isinstance(self.metrics_port, bool)
            or not isinstance(self.metrics_port, int)
            or not 0 < self.metrics_port < 65536
        ):
            raise ConfigurationError(
                f"beatx_metrics_port: expected a TCP port number, got {self.metrics_port!r}"
            )
        if self.dedupe and self.store.partition("://")[0].lower() not in (
            "redis",
            "rediss",
            "unix",
            "django",
        ):
            raise ConfigurationError(
                "beatx_dedupe: the duplicate-delivery guard needs a store the workers share (Redis or "
                f"Django), beatx_store is {self.store!r}"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_app(cls, app: Celery, **overrides: Any) -> BeatxSettings:
        """Read the ``beatx_*`` settings of ``app`` (``overrides`` win, by field name).

        :raises ConfigurationError: naming an unknown ``beatx_*`` key or a malformed value.
        """
        conf = app.conf
        known = cls.field_names()
        values: dict[str, Any] = {}
        unknown: list[str] = []
        for key in list(conf.keys()):
            if not isinstance(key, str):
                continue
            name = key.lower()
            if name.startswith("celery_beatx_"):
                name = name[len("celery_") :]
            if not name.startswith("beatx_"):
                continue
            short = name[len("beatx_") :]
            if short not in known:
                unknown.append(key)
                continue
            value = conf.get(key)
            values[short] = value
        if unknown:
            raise ConfigurationError(
                f"unknown beatx setting(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join('beatx_' + name for name in known)}"
            )
        bad = sorted(set(overrides) - set(known))
        if bad:
            raise ConfigurationError(
                f"unknown beatx setting override(s) {', '.join(bad)}; expected {', '.join(known)}"
            )
        values.update(overrides)
        values = {k: v for k, v in values.items() if v is not None or k == "max_concurrent_jobs"}
        if "timezone" not in values:
            tz = conf.get("timezone")
            values["timezone"] = (
                timezone_name(tz) if tz is not None and not isinstance(tz, str) else tz or "UTC"
            )
        try:
            return cls(**values)
        except InvalidJobError as exc:
            raise ConfigurationError(f"beatx_job_defaults: {exc}") from exc

    def redacted_store(self) -> str:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", self.store)


# -- beat_schedule --------------------------------------------------------------------------------


def _cron_field(entry: str, name: str, value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, bool):
        raise ConfigurationError(
            f"beat_schedule entry {entry!r}: crontab {name}={value!r} is not a cron field"
        )
    elif isinstance(value, int):
        text = str(value)
    else:
        try:
            items = sorted(int(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"beat_schedule entry {entry!r}: crontab {name}={value!r} cannot be converted: {exc}"
            ) from exc
        text = ",".join(map(str, items))
    if not text or " " in text:
        raise ConfigurationError(
            f"beat_schedule entry {entry!r}: crontab {name}={value!r} is not a cron field"
        )
    return text


def _restricted(text: str) -> bool:
    return not text.startswith("*")


def convert_schedule(name: str, schedule: Any, *, timezone: str = "UTC", relative: bool = False) -> Trigger:
    """A beatx trigger for the ``schedule`` of the ``beat_schedule`` entry ``name``.

    - a number (seconds), a ``timedelta`` or a ``celery.schedules.schedule``:
      :class:`~beatx.IntervalTrigger` (first fire when the job is first imported, as celery
      beat runs a new entry at once; ``relative=True`` anchors fire times to multiples of the
      interval since the epoch);
    - a ``celery.schedules.crontab``: :class:`~beatx.CronTrigger` in ``timezone`` (the app's);
    - a ``celery.schedules.solar``: :class:`~beatx.SolarTrigger` with the same event and place
      (needs ``pip install 'beatx[solar]'``, as Celery's own solar schedule needs ``ephem``).

    :raises ConfigurationError: naming the entry, for anything else.
    """
    from celery.schedules import crontab, solar
    from celery.schedules import schedule as interval_schedule

    if isinstance(schedule, solar):
        try:
            return SolarTrigger(schedule.event, schedule.lat, schedule.lon)
        except (AttributeError, ValueError) as exc:
            raise ConfigurationError(f"beat_schedule entry {name!r}: solar schedule: {exc}") from exc
    if isinstance(schedule, crontab):
        fields = [
            _cron_field(name, "minute", schedule._orig_minute),
            _cron_field(name, "hour", schedule._orig_hour),
            _cron_field(name, "day_of_month", schedule._orig_day_of_month),
            _cron_field(name, "month_of_year", schedule._orig_month_of_year),
            _cron_field(name, "day_of_week", schedule._orig_day_of_week),
        ]
        if _restricted(fields[2]) and _restricted(fields[4]):
            raise ConfigurationError(
                f"beat_schedule entry {name!r}: crontab restricts both day_of_month ({fields[2]}) and "
                f"day_of_week ({fields[4]}); celery requires both to match, cron (and beatx) either one. "
                "Split it into two entries or express it with one of the two fields"
            )
        expression = " ".join(fields)
        try:
            return CronTrigger(expression, timezone=timezone)
        except ValueError as exc:
            raise ConfigurationError(f"beat_schedule entry {name!r}: crontab {expression!r}: {exc}") from exc
    seconds: float
    if type(schedule) is interval_schedule:
        seconds = schedule.run_every.total_seconds()
        relative = relative or bool(schedule.relative)
    elif isinstance(schedule, timedelta):
        seconds = schedule.total_seconds()
    elif isinstance(schedule, int | float) and not isinstance(schedule, bool):
        seconds = float(schedule)
    else:
        raise ConfigurationError(
            f"beat_schedule entry {name!r}: cannot convert schedule {schedule!r} "
            f"({type(schedule).__module__}.{type(schedule).__qualname__}); beatx supports numbers, "
            "timedelta, celery.schedules.schedule, celery.schedules.crontab and celery.schedules.solar"
        )
    if seconds <= 0:
        raise ConfigurationError(f"beat_schedule entry {name!r}: the interval must be > 0, got {seconds!r}s")
    start_date: datetime | None = None
    if relative:
        step = timedelta(seconds=seconds)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start_date = epoch + ((datetime.now(UTC) - epoch) // step) * step
    try:
        return IntervalTrigger(seconds=seconds, start_date=start_date)
    except ValueError as exc:
        raise ConfigurationError(f"beat_schedule entry {name!r}: {exc}") from exc


def _default_entries(app: Celery) -> dict[str, Any]:
    """celery beat's own ``celery.backend_cleanup`` entry, when the result backend needs it."""
    from celery.schedules import crontab

    try:
        if app.conf.result_expires and not app.backend.supports_autoexpire:
            return {
                "celery.backend_cleanup": {
                    "task": "celery.backend_cleanup",
                    "schedule": crontab("0", "4", "*"),
                    "options": {"expires": 12 * 3600},
                }
            }
    except Exception as exc:
        logger.warning("cannot inspect the result backend for celery.backend_cleanup: %s", exc)
    return {}


#: The store's record of the job ids the last ``beat_schedule`` import created.
IMPORTED_IDS_META = "beat_schedule_ids"


def import_beat_schedule(
    manager: JobManager, schedule: Mapping[str, Any] | None, *, timezone: str = "UTC"
) -> list[str]:
    """Upsert every ``beat_schedule`` entry as a job whose id is the entry name, and remove
    the jobs a previous import created whose entry is gone.

    Imported jobs carry ``options["beatx_source"] = "beat_schedule"`` (never sent in the
    message). :meth:`JobManager.ensure_job` keeps their run state (counters, last run, a
    paused status) across restarts; jobs added at run time are never touched. Every entry is
    converted before anything is written, so a bad entry changes nothing.

    Returns the ids of the imported jobs.

    :raises ConfigurationError: naming the first entry that cannot be converted.
    """
    schedule = dict(schedule or {})
    planned: list[tuple[str, str, Trigger, dict[str, Any]]] = []
    for name, entry in schedule.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"beat_schedule: entry names must be non-empty strings, got {name!r}")
        if not isinstance(entry, Mapping):
            raise ConfigurationError(
                f"beat_schedule entry {name!r}: expected a dict, got {type(entry).__name__}"
            )
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise ConfigurationError(
                f"beat_schedule entry {name!r}: unknown key(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(_ENTRY_KEYS))}"
            )
        task = entry.get("task")
        if not isinstance(task, str) or not task:
            raise ConfigurationError(
                f"beat_schedule entry {name!r}: 'task' must be a task name, got {task!r}"
            )
        if "schedule" not in entry:
            raise ConfigurationError(f"beat_schedule entry {name!r}: 'schedule' is missing")
        trigger = convert_schedule(
            name, entry["schedule"], timezone=timezone, relative=bool(entry.get("relative", False))
        )
        args = entry.get("args") or ()
        kwargs = entry.get("kwargs") or {}
        options = entry.get("options") or {}
        if (
            not isinstance(args, list | tuple)
            or not isinstance(kwargs, Mapping)
            or not isinstance(options, Mapping)
        ):
            raise ConfigurationError(
                f"beat_schedule entry {name!r}: args must be a list or tuple, kwargs and options dicts"
            )
        job_options = {**dict(options), SOURCE_OPTION: BEAT_SCHEDULE_SOURCE}
        fields: dict[str, Any] = {"args": tuple(args), "kwargs": dict(kwargs), "options": job_options}
        planned.append((name, task, trigger, fields))
    imported: list[str] = []
    for name, task, trigger, fields in planned:
        try:
            manager.ensure_job(task, trigger, id=name, **fields)
        except (InvalidJobError, ValueError) as exc:
            raise ConfigurationError(f"beat_schedule entry {name!r}: {exc}") from exc
        imported.append(name)
    # The ids imported last time are kept in the store, so finding the entries that are gone
    # reads those few jobs, never every job (start-up must not grow with the store).
    try:
        previous = json.loads(manager.store.read_meta(IMPORTED_IDS_META) or "[]")
    except ValueError:
        previous = []
    for job_id in sorted(set(previous) - set(imported)):
        job = manager.get_job(job_id)
        if job is not None and job.options.get(SOURCE_OPTION) == BEAT_SCHEDULE_SOURCE:
            logger.info("removing job %s: its beat_schedule entry is gone", job_id)
            manager.remove_job(job_id)
    manager.store.write_meta(IMPORTED_IDS_META, json.dumps(sorted(imported)))
    if imported:
        logger.info("imported %d beat_schedule entries: %s", len(imported), ", ".join(imported))
    return imported


# -- the management API ---------------------------------------------------------------------------


def task_validator(app: Celery) -> Any:
    """A ``func_validator`` accepting Celery task objects, registered task names and names
    that look like dotted task names (``"billing.tasks.invoice"``, registered by workers)."""

    def validate(func: JobFunc) -> None:
        if isinstance(func, str):
            if func in app.tasks or _DOTTED_NAME.match(func):
                return
            raise InvalidJobError(
                f"func {func!r} is neither a registered Celery task nor a dotted task name "
                "such as 'billing.tasks.invoice'"
            )
        if hasattr(func, "apply_async") and isinstance(getattr(func, "name", None), str):
            return
        raise InvalidJobError(
            f"func {func!r} is not a Celery task; with the Celery integration a job runs a task "
            "(a task object or its registered name)"
        )

    return validate


def _build_manager(app: Celery, settings: BeatxSettings, store: JobStore) -> JobManager:
    return JobManager(
        store,
        timezone=settings.timezone,
        job_defaults=settings.job_defaults,
        dispatcher=CeleryDispatcher(app),
        func_validator=task_validator(app),
    )


_managers: weakref.WeakKeyDictionary[Any, dict[tuple[tuple[str, str], ...], JobManager]] = (
    weakref.WeakKeyDictionary()
)
_managers_lock = threading.Lock()


def get_scheduler(app: Celery | None = None, **overrides: Any) -> JobManager:
    """The management API bound to the store ``app`` is configured with.

    ``app`` defaults to ``celery.current_app``; ``overrides`` replace settings by field name
    (``store=``, ``key_prefix=``, ``timezone=``, ``job_defaults=`` ...). One manager is cached
    per app (and set of overrides). ``run_job_now`` publishes through a
    :class:`~beatx.dispatch.celery.CeleryDispatcher`. Jobs added here are picked up by a running
    beat at once (the Redis store announces every change).
    """
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    key = tuple(sorted((name, repr(value)) for name, value in overrides.items()))
    with _managers_lock:
        per_app = _managers.setdefault(app, {})
        manager = per_app.get(key)
        if manager is None:
            settings = BeatxSettings.from_app(app, **overrides)
            store = open_store(settings.store, key_prefix=settings.key_prefix)
            manager = per_app[key] = _build_manager(app, settings, store)
        return manager


# -- the beat scheduler ---------------------------------------------------------------------------


class BeatxScheduler(Scheduler):  # type: ignore[misc]
    """celery beat's scheduler, replaced by a beatx :class:`~beatx.beat.Beat`.

    Run it with ``celery -A proj beat -S beatx`` or ``beat_scheduler = "beatx"``.

    At start-up it reads :class:`BeatxSettings`, opens the store, imports
    ``app.conf.beat_schedule`` (see :func:`import_beat_schedule`) and creates the beat. Then
    celery's service loop calls :meth:`tick` forever; **beatx sleeps inside tick**: ``tick()``
    runs one ``beat.run_once()`` (renew or take the leader lease, send what is due), then
    blocks in ``beat.wait(seconds)`` until the next fire is due, the lease needs renewing, or
    the store announces a change (a job added, edited, paused from any process: with the Redis
    store this is a pub/sub message, so a new job is seen immediately), and returns ``0`` so the
    service loop does not sleep on its own. There is no fixed poll interval; one wait is capped
    at ``min(max_interval, 60)`` seconds.

    SIGTERM / SIGINT: celery's handler calls :meth:`close` (which releases the leader lease,
    so a standby beat takes over at once) and raises ``SystemExit`` in the main thread, which
    interrupts the wait; the service then closes the scheduler again, which closes the store.

    Nothing here reads or writes celery's ``celerybeat-schedule`` shelve file; ``schedule``
    is an empty dict (the jobs are in the store: use :func:`get_scheduler` to see them).
    """

    def __init__(self, app: Celery, *args: Any, lazy: bool = False, **kwargs: Any) -> None:
        self.settings = BeatxSettings.from_app(app)
        self.store: JobStore | None = None
        self.manager: JobManager | None = None
        self.dispatcher: CeleryDispatcher | None = None
        self.beat: Beat | None = None
        self.metrics: BeatxMetrics | None = None
        self._in_tick = False
        self._closed = False
        kwargs.pop("schedule_filename", None)
        super().__init__(app, *args, lazy=lazy, **kwargs)

    def setup_schedule(self) -> None:
        settings = self.settings
        self.store = open_store(settings.store, key_prefix=settings.key_prefix)
        try:
            # A publish never outlasts a quarter of the lease: a frozen broker cannot keep the
            # leader busy past its lease.
            self.dispatcher = CeleryDispatcher(
                self.app, publish_timeout=min(DEFAULT_PUBLISH_TIMEOUT, float(settings.lease_timeout) / 4)
            )
            self.manager = JobManager(
                self.store,
                timezone=settings.timezone,
                job_defaults=settings.job_defaults,
                dispatcher=self.dispatcher,
                func_validator=task_validator(self.app),
            )
            self._import_beat_schedule()
            self.beat = Beat(
                self.store,
                self.dispatcher,
                lease_timeout=float(settings.lease_timeout),
                max_concurrent_jobs=settings.max_concurrent_jobs,
                max_sleep=float(min(self.max_interval or 60.0, 60.0)),
                lookahead=float(settings.lookahead),
                freeze_gc=True,
                restore=self._import_beat_schedule,
                atomic_fire=settings.atomic_fire,
            )
            if settings.metrics_port is not None:
                self._serve_metrics(settings.metrics_port)
        except BaseException:
            self.store.close()
            self.store = None
            raise
        logger.info(
            "beatx scheduler ready store=%s prefix=%s owner=%s",
            settings.redacted_store(),
            settings.key_prefix,
            self.beat.owner,
        )

    def _import_beat_schedule(self) -> str:
        """Import ``beat_schedule`` (at start-up, and again after the store lost its data)."""
        assert self.manager is not None
        entries = {**_default_entries(self.app), **dict(self.app.conf.beat_schedule or {})}
        imported = import_beat_schedule(self.manager, entries, timezone=self.settings.timezone)
        return f"re-imported {len(imported)} beat_schedule entries ({', '.join(imported) or 'none'})"

    def _serve_metrics(self, port: int) -> None:
        try:
            from beatx.metrics import BeatxMetrics
        except ImportError as exc:
            raise ConfigurationError(
                "beatx_metrics_port needs prometheus-client: pip install 'beatx[metrics]'"
            ) from exc
        assert self.beat is not None
        self.metrics = BeatxMetrics(self.beat.events)
        try:
            self.metrics.start_http_server(port)
        except OSError as exc:
            raise ConfigurationError(f"beatx_metrics_port: cannot listen on 127.0.0.1:{port}: {exc}") from exc
        logger.info("beatx metrics on http://127.0.0.1:%d/metrics", port)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run the beat once, then sleep until the next fire or a change; always returns 0."""
        if self.beat is None:
            self.setup_schedule()
        beat = self.beat
        assert beat is not None
        self._in_tick = True
        try:
            try:
                seconds = beat.run_once()
            except Exception:
                logger.exception("beat tick failed; trying again in 1s")
                seconds = 1.0
            beat.wait(seconds)
        finally:
            self._in_tick = False
        return 0

    @property
    def schedule(self) -> dict[str, Any]:
        return {}

    @schedule.setter
    def schedule(self, value: Any) -> None:
        pass

    def sync(self) -> None:
        """Nothing to sync: every change is written to the store as it happens."""

    def should_sync(self) -> bool:
        return False

    def close(self) -> None:
        """Release the leader lease; outside a tick also close the producer and the store."""
        if self.beat is not None and not self._closed:
            self._closed = True
            try:
                self.beat.close()
            except Exception:
                logger.exception("could not release the leader lease")
        if not self._in_tick:
            # Inside a tick (a signal handler interrupting the wait) the store may hold a
            # lock of the interrupted call; the service closes us again after unwinding.
            if self.dispatcher is not None:
                self.dispatcher.close()
                self.dispatcher = None
            if self.metrics is not None:
                self.metrics.close()
                self.metrics = None
            if self.store is not None:
                try:
                    self.store.close()
                except Exception:
                    logger.exception("could not close the store")
                self.store = None
        super().close()

    @property
    def info(self) -> str:
        return f"    . beatx store -> {self.settings.redacted_store()} (prefix {self.settings.key_prefix!r})"


# -- worker side ----------------------------------------------------------------------------------


def _header(task: Any, name: str) -> Any:
    request = getattr(task, "request", None)
    if request is None:
        return None
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name) if isinstance(headers, Mapping) else None
    return value


def error_text(exc: BaseException) -> str:
    """``"ExcType: message"`` as stored in ``last_error``."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _WorkerState:
    """Per-app worker state: the store (opened lazily in each process) and run start times."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._settings: BeatxSettings | None = None
        self._store: JobStore | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.started: dict[str, tuple[float, float]] = {}

    @property
    def settings(self) -> BeatxSettings:
        if self._settings is None:
            self._settings = BeatxSettings.from_app(self.app)
        return self._settings

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # A forked child must not share its parent's sockets.
            self._store = None
            self._pid = os.getpid()

    @property
    def store(self) -> JobStore:
        with self._lock:
            self._check_fork()
            if self._store is None:
                settings = self.settings
                self._store = open_store(settings.store, key_prefix=settings.key_prefix)
            return self._store


_worker_states: weakref.WeakKeyDictionary[Any, _WorkerState] = weakref.WeakKeyDictionary()
_DUPLICATE_FLAG = "beatx_duplicate"


def _state_for(task: Any) -> _WorkerState | None:
    app = getattr(task, "app", None) if task is not None else None
    if app is None:
        return None
    try:
        return _worker_states.get(app)
    except TypeError:
        return None


def _on_task_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    task = task or sender
    state = _state_for(task)
    if state is None or task_id is None:
        return
    job_id = _header(task, JOB_ID_HEADER)
    if not job_id:
        return
    try:
        settings = state.settings
        now = datetime.now(UTC)
        timeout = float(settings.run_timeout)
        if settings.dedupe:
            retries = int(getattr(task.request, "retries", 0) or 0)
            if not state.store.start_run_once(
                str(job_id), task_id, attempt=retries, started_at=now, timeout=timeout
            ):
                logger.warning("dropping a second delivery job=%s task_id=%s", job_id, task_id)
                setattr(task.request, _DUPLICATE_FLAG, True)
                return
        else:
            state.store.run_started(str(job_id), task_id, started_at=now, timeout=timeout)
        state.started[task_id] = (time.monotonic(), now.timestamp())
    except Exception as exc:
        logger.warning("could not record the start of job=%s task_id=%s: %s", job_id, task_id, exc)


def _on_task_postrun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    task = task or sender
    worker = _state_for(task)
    if worker is None or task_id is None:
        return
    job_id = _header(task, JOB_ID_HEADER)
    if not job_id or getattr(task.request, _DUPLICATE_FLAG, False):
        return
    if state == "RETRY":
        # Still in flight: the retried message carries the same task id.
        return
    started = worker.started.pop(task_id, None)
    duration = None if started is None else max(time.monotonic() - started[0], 0.0)
    error: str | None = None
    if state == "FAILURE":
        error = error_text(retval) if isinstance(retval, BaseException) else f"failed: {retval!r}"
    try:
        worker.store.run_finished(
            str(job_id), task_id, finished_at=datetime.now(UTC), duration=duration, error=error
        )
    except Exception as exc:
        logger.warning("could not record the end of job=%s task_id=%s: %s", job_id, task_id, exc)


def _guard_before_start(original: Any) -> Any:
    def before_start(self: Any, task_id: str, args: Any, kwargs: Any) -> Any:
        if getattr(self.request, _DUPLICATE_FLAG, False):
            raise Ignore()
        if original is not None:
            return original(self, task_id, args, kwargs)
        return None

    before_start._beatx_guard = True  # type: ignore[attr-defined]
    return before_start


def install_dedupe_guard(app: Celery) -> int:
    """Make every registered task (its class) drop a delivery marked duplicate by the
    ``task_prerun`` handler: celery ignores exceptions raised by signal handlers, so the
    drop itself (``raise Ignore()``) happens in the task's ``before_start`` hook, which
    beatx wraps (chaining the class's own). Returns how many classes were wrapped."""
    from celery.app.task import Task

    wrapped = 0
    for name, task in list(app.tasks.items()):
        if name.startswith("celery."):
            continue
        cls = type(task)
        current = cls.__dict__.get("before_start")
        if current is not None and getattr(current, "_beatx_guard", False):
            continue
        inherited = getattr(cls, "before_start", None)
        original = None if inherited is Task.before_start else inherited
        cls.before_start = _guard_before_start(original)
        wrapped += 1
    return wrapped


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    state = _worker_states.get(app) if app is not None else None
    if state is None:
        return
    try:
        if state.settings.dedupe:
            count = install_dedupe_guard(state.app)
            logger.info("beatx duplicate-delivery guard installed on %d task class(es)", count)
    except Exception:
        logger.exception("could not install the beatx duplicate-delivery guard")


def _default_scheduler(app: Celery) -> None:
    current = app.conf.get("beat_scheduler")
    if current in (None, "", _DEFAULT_SCHEDULER):
        app.conf.beat_scheduler = "beatx"


def setup(app: Celery) -> None:
    """Install beatx in a Celery project (call it once, next to the app)::

        app = Celery("proj")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        beatx.celery.setup(app)

    - workers record each beatx run in the store (start, end, duration, ``"ExcType: message"``
      of a failure), for the tasks whose message carries a ``beatx_job_id`` header; the store
      is opened lazily in each worker process (after the fork);
    - with ``beatx_dedupe = True`` (Redis or Django store), a second delivery of the same task id is
      dropped (``Ignore``) before the task runs;
    - ``beat_scheduler`` becomes ``"beatx"`` unless set to something else.

    Idempotent.
    """
    if app not in _worker_states:
        _worker_states[app] = _WorkerState(app)
    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="beatx.celery.prerun")
    signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="beatx.celery.postrun")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="beatx.celery.worker_init")
    if app.configured:
        _default_scheduler(app)
    else:
        app.on_after_configure.connect(
            lambda sender=None, **_: _default_scheduler(app),
            weak=False,
            dispatch_uid=f"beatx.setup.{id(app)}",
        )
