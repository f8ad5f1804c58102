"""Importing ``app.conf.beat_schedule``: each entry becomes (or updates) a beatx job."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from beatx.errors import CalendarLookupError, ConfigurationError, InvalidJobError
from beatx.exclusion import exclusion_options
from beatx.policy_options import policy_options
from beatx.triggers import CronTrigger, IntervalTrigger, SolarTrigger, Trigger

if TYPE_CHECKING:
    from celery import Celery

    from beatx.manager import JobManager

__all__ = [
    "BEAT_SCHEDULE_SOURCE",
    "IMPORTED_IDS_META",
    "convert_schedule",
    "import_beat_schedule",
    "plan_beat_schedule",
]

logger = logging.getLogger("beatx.celery")

#: ``options["beatx_source"]`` of the jobs imported from ``app.conf.beat_schedule``.
BEAT_SCHEDULE_SOURCE = "beat_schedule"
SOURCE_OPTION = "beatx_source"
_ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})


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


def plan_beat_schedule(
    schedule: Mapping[str, Any] | None, *, timezone: str = "UTC"
) -> list[tuple[str, str, Trigger, dict[str, Any]]]:
    """Check and convert every ``beat_schedule`` entry, writing nothing: ``(job id, task,
    trigger, job fields)`` per entry.

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
        # Exclusion calendars ride in the entry's options (Celery's beat takes no other key).
        fields.update(exclusion_options(job_options))
        # So do the schedule policies (beatx.policy_options).
        fields.update(policy_options(job_options))
        planned.append((name, task, trigger, fields))
    return planned


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
    planned = plan_beat_schedule(schedule, timezone=timezone)
    with manager.changes_through(BEAT_SCHEDULE_SOURCE):
        return _import_planned(manager, planned)


def _import_planned(manager: JobManager, planned: list[tuple[str, Any, Any, dict[str, Any]]]) -> list[str]:
    """The writes of :func:`import_beat_schedule`, once every entry converted."""
    imported: list[str] = []
    for name, task, trigger, fields in planned:
        try:
            manager.ensure_job(task, trigger, id=name, **fields)
        except (InvalidJobError, ValueError, CalendarLookupError) as exc:
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
