"""``manage.py beatx_import``: bring existing schedules into beatx.

- ``--from-beat-schedule``: the Celery app's ``beat_schedule`` setting;
- ``--from-django-celery-beat``: django-celery-beat's ``PeriodicTask`` rows (crontab, interval,
  clocked and solar schedules).

Both are idempotent: a job whose id exists is left alone (``--update`` brings it to the
imported definition, keeping its run state). Nothing is written with ``--dry-run``. The command
exits 1 when an entry was refused.

A periodic task's job id is its name with spaces and other characters outside ``A-Za-z0-9._:-``
replaced by ``-`` (the name stays the job's display name); its ``total_run_count`` and
``last_run_at`` are kept, and an interval job goes on from its last run (see
:mod:`beatx.importers.common`).
"""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from beatx.errors import BeatxError
from beatx.exclusion import exclusion_options
from beatx.importers.common import ImportedJob, ImportReport, save_imported
from beatx.policy_options import policy_options
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger, SolarTrigger, Trigger
from django_beatx import conf

_PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 1e-6}


class Refused(Exception):
    """One entry cannot be imported; the message says why."""


class Command(BaseCommand):
    help = "Import jobs from Celery's beat_schedule or from django-celery-beat's periodic tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--from-beat-schedule", action="store_true", help="import the Celery app's beat_schedule"
        )
        source.add_argument(
            "--from-django-celery-beat",
            action="store_true",
            help="import django-celery-beat's PeriodicTask rows (it must be in INSTALLED_APPS)",
        )
        parser.add_argument(
            "--app", help="the Celery app, as 'package.module:app' (default: Celery's current app)"
        )
        parser.add_argument(
            "--update", action="store_true", help="update jobs that already exist (run state is kept)"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be imported")

    def handle(self, *args: Any, **options: Any) -> None:
        self.manager = conf.get_manager()
        # The audit log: these changes come from an import.
        self.manager.source = "beat_schedule" if options["from_beat_schedule"] else "django-celery-beat"
        self.update = bool(options["update"])
        self.dry_run = bool(options["dry_run"])
        self.counts = {"imported": 0, "updated": 0, "unchanged": 0, "refused": 0}
        if options["from_beat_schedule"]:
            self._from_beat_schedule(options.get("app"))
        else:
            self._from_django_celery_beat()
        prefix = "[dry run] " if self.dry_run else ""
        summary = ", ".join(f"{count} {what}" for what, count in self.counts.items())
        style = self.style.WARNING if self.counts["refused"] else self.style.SUCCESS
        self.stdout.write(style(f"{prefix}{summary}"))
        if self.counts["refused"]:
            raise CommandError(f"{self.counts['refused']} entries refused (see above)", returncode=1)

    # -- one job -------------------------------------------------------------------------------

    def _save(self, job_id: str, task: str, trigger: Trigger, **fields: Any) -> None:
        exists = self.manager.get_job(job_id) is not None
        if exists and not self.update:
            self.stdout.write(f"  = {job_id}: exists (use --update to overwrite its definition)")
            self.counts["unchanged"] += 1
            return
        if not self.dry_run:
            try:
                self.manager.ensure_job(task, trigger, id=job_id, **fields)
            except (BeatxError, ValueError) as exc:
                self._refuse(job_id, str(exc))
                return
        self.counts["updated" if exists else "imported"] += 1
        self.stdout.write(f"  + {job_id}: {task} {trigger.describe()}")

    def _refuse(self, name: str, reason: str) -> None:
        self.counts["refused"] += 1
        self.stderr.write(self.style.ERROR(f"  ! {name}: {reason}"))

    # -- beat_schedule ---------------------------------------------------------------------------

    def _celery_app(self, path: str | None) -> Any:
        if path:
            module_name, _, attr = path.partition(":")
            try:
                return getattr(importlib.import_module(module_name), attr or "app")
            except (ImportError, AttributeError) as exc:
                raise CommandError(f"--app {path!r}: {exc}") from exc
        try:
            from celery import current_app
        except ImportError as exc:
            raise CommandError("--from-beat-schedule needs Celery: pip install 'beatx[celery]'") from exc
        return current_app._get_current_object()

    def _from_beat_schedule(self, app_path: str | None) -> None:
        app = self._celery_app(app_path)
        schedule = dict(app.conf.beat_schedule or {})
        timezone = str(app.conf.timezone or conf.timezone_name())
        self.stdout.write(f"Importing {len(schedule)} beat_schedule entries from the Celery app {app.main!r}")
        for name, entry in schedule.items():
            try:
                task = entry["task"]
                trigger = self._convert_beat_entry(
                    name, entry["schedule"], timezone, bool(entry.get("relative"))
                )
            except (KeyError, TypeError) as exc:
                self._refuse(name, f"malformed entry: {exc}")
                continue
            except (Refused, BeatxError, ValueError) as exc:
                self._refuse(name, str(exc))
                continue
            options = dict(entry.get("options") or {})
            self._save(
                name,
                task,
                trigger,
                args=tuple(entry.get("args") or ()),
                kwargs=dict(entry.get("kwargs") or {}),
                options=options,
                **exclusion_options(options),
                **policy_options(options),
            )

    @staticmethod
    def _convert_beat_entry(name: str, schedule: Any, timezone: str, relative: bool) -> Trigger:
        """Use beatx's Celery integration when it is there; else convert numbers, timedeltas,
        crontabs and solar schedules here and refuse the rest."""
        try:
            from beatx import celery as beatx_celery
        except ImportError:
            beatx_celery = None  # type: ignore[assignment]
        converter = getattr(beatx_celery, "convert_schedule", None)
        if converter is not None:
            trigger: Trigger = converter(name, schedule, timezone=timezone, relative=relative)
            return trigger
        from celery.schedules import crontab, solar
        from celery.schedules import schedule as interval_schedule

        if isinstance(schedule, solar):
            return SolarTrigger(schedule.event, float(schedule.lat), float(schedule.lon))
        if isinstance(schedule, crontab):
            fields = (
                schedule._orig_minute,
                schedule._orig_hour,
                schedule._orig_day_of_month,
                schedule._orig_month_of_year,
                schedule._orig_day_of_week,
            )
            return CronTrigger(" ".join(str(f) for f in fields), timezone=timezone)
        if type(schedule) is interval_schedule:
            return IntervalTrigger(seconds=schedule.run_every.total_seconds())
        if isinstance(schedule, timedelta):
            return IntervalTrigger(seconds=schedule.total_seconds())
        if isinstance(schedule, int | float) and not isinstance(schedule, bool):
            return IntervalTrigger(seconds=float(schedule))
        raise Refused(
            f"cannot convert schedule {schedule!r}: beatx takes numbers, timedelta, crontab and solar"
        )

    # -- django-celery-beat ----------------------------------------------------------------------

    def _from_django_celery_beat(self) -> None:
        if not apps.is_installed("django_celery_beat"):
            raise CommandError("--from-django-celery-beat needs 'django_celery_beat' in INSTALLED_APPS")
        from django_celery_beat.models import PeriodicTask

        tasks = PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked").order_by(
            "name"
        )
        self.stdout.write(f"Importing {tasks.count()} django-celery-beat periodic tasks")
        report = ImportReport(counts=self.counts)
        taken: set[str] = set()
        now = datetime.now(UTC)
        for task in tasks:
            try:
                trigger = self._convert_periodic_task(task, now)
                fields = self._periodic_task_fields(task)
            except Refused as exc:
                report.refuse(task.name, str(exc))
                continue
            except (BeatxError, ValueError) as exc:
                report.refuse(task.name, f"cannot convert: {exc}")
                continue
            entry = ImportedJob(
                task=task.task,
                trigger=trigger,
                total_run_count=int(task.total_run_count or 0),
                last_run_at=task.last_run_at,
                **fields,
            )
            save_imported(self.manager, entry, report, update=self.update, dry_run=self.dry_run, taken=taken)
        for kind, text in report.lines:
            if kind == "refused":
                self.stderr.write(self.style.ERROR(f"  {text}"))
            else:
                self.stdout.write(f"  {text}")

    @staticmethod
    def _convert_periodic_task(task: Any, now: datetime) -> Trigger:
        end_date = task.expires
        start_date = task.start_time
        trigger: Trigger
        if task.clocked_id is not None:
            return DateTimeTrigger(task.clocked.clocked_time)
        if task.solar_id is not None:
            solar = task.solar
            if start_date is not None or end_date is not None:
                # A solar trigger has no active window: refused rather than dropped.
                raise Refused(
                    f"solar schedule ({solar}) with a start time or an expiry: a beatx solar job has "
                    "no start or end date; clear them (pause the job while it should not run)"
                )
            trigger = SolarTrigger(solar.event, float(solar.latitude), float(solar.longitude))
        elif task.crontab_id is not None:
            cron = task.crontab
            fields = [cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week]
            expression = " ".join(str(f).replace(" ", "") for f in fields)
            if not fields[2].startswith("*") and not fields[4].startswith("*"):
                raise Refused(
                    f"crontab {expression!r} restricts both day of month and day of week: celery requires "
                    "both to match, cron (and beatx) either one; split it into two tasks"
                )
            trigger = CronTrigger(
                expression, timezone=str(cron.timezone), start_date=start_date, end_date=end_date
            )
        elif task.interval_id is not None:
            interval = task.interval
            seconds = interval.every * _PERIOD_SECONDS[interval.period]
            # As django-celery-beat: the next run is one interval after the last (or after the
            # import, for a task that never ran), not now for every imported job at once.
            anchor, start_now = (task.last_run_at or now), False
            if start_date is not None and _as_utc(anchor) < _as_utc(start_date):
                anchor, start_now = start_date, True
            trigger = IntervalTrigger(
                seconds=seconds, start_date=anchor, start_now=start_now, end_date=end_date
            )
        else:
            raise Refused("it has no schedule")
        if task.one_off:
            # One run, at the schedule's next fire time: beatx's one-shot trigger.
            first = trigger.resolve(now=now, timezone=UTC).first_fire_time(now)
            if first is None:
                raise Refused("one-off task whose schedule never fires again")
            return DateTimeTrigger(first)
        return trigger

    @staticmethod
    def _periodic_task_fields(task: Any) -> dict[str, Any]:
        def parse(text: str | None, default: Any, what: str, kind: type) -> Any:
            try:
                value = json.loads(text) if text else default
            except ValueError as exc:
                raise Refused(f"{what} is not valid JSON: {exc}") from exc
            if not isinstance(value, kind):
                raise Refused(f"{what} must be a JSON {kind.__name__}, got {value!r}")
            return value

        options: dict[str, Any] = {}
        for name in ("queue", "exchange", "routing_key"):
            if getattr(task, name, None):
                options[name] = getattr(task, name)
        if task.priority is not None:
            options["priority"] = task.priority
        if task.expire_seconds is not None:
            options["expires"] = float(task.expire_seconds)
        headers = parse(task.headers, {}, "headers", dict)
        if headers:
            options["headers"] = headers
        return {
            "name": task.name,
            "args": tuple(parse(task.args, [], "args", list)),
            "kwargs": parse(task.kwargs, {}, "kwargs", dict),
            "options": options,
            "paused": not task.enabled,
        }


def _as_utc(value: datetime) -> datetime:
    """An aware datetime as it is; a naive one (USE_TZ = False) read as UTC, for comparing."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
