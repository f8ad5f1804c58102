"""What the jobs admin shows: times and durations in a job's zone, fire-time previews, the
status colours, and the help of the trigger fieldsets. Pure formatting over models and
triggers; the admin classes are in :mod:`django_beatx.admin`."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from beatx.calendar_book import named_calendars
from beatx.errors import BeatxError, InvalidTriggerError, SerializationError
from beatx.exclusion import ExcludingTrigger, preview_fires
from beatx.jobs import JobStatus
from beatx.triggers.base import Trigger, get_timezone
from django_beatx import conf
from django_beatx.calendar_store import DjangoCalendarStorage
from django_beatx.models import SOLAR_EVENT_CHOICES, Job, JobRun
from django_beatx.store import job_from_row

STATUS_COLOURS = {
    JobStatus.ACTIVE.value: "#2e7d32",
    JobStatus.PAUSED.value: "#8a6d00",
    JobStatus.COMPLETED.value: "#607d8b",
    JobStatus.FAILED.value: "#c62828",
    JobStatus.CANCELLED.value: "#616161",
}
BROKEN_COLOUR = "#6a1b9a"
OUTCOME_COLOURS = {
    JobRun.Outcome.SUCCEEDED.value: "#2e7d32",
    JobRun.Outcome.FAILED.value: "#c62828",
    JobRun.Outcome.RUNNING.value: "#1565c0",
    JobRun.Outcome.DISPATCHED.value: "#607d8b",
    JobRun.Outcome.RETRIED.value: "#ef6c00",
    JobRun.Outcome.REVOKED.value: "#6d4c41",
    JobRun.Outcome.REJECTED.value: "#c62828",
    JobRun.Outcome.UNKNOWN_TASK.value: "#c62828",
    JobRun.Outcome.MISSED.value: "#8a6d00",
    JobRun.Outcome.SKIPPED.value: "#8a6d00",
    JobRun.Outcome.CAUGHT_UP.value: "#607d8b",
}

#: The Quartz day tokens of an extended cron expression: (field, token, meaning, example).
EXTENDED_CRON_TOKENS = (
    (_("day of month"), "L", _("the last day of the month"), "0 9 L * *"),
    (_("day of month"), "L-n", _("n days before the last day"), "0 9 L-2 * *"),
    (_("day of month"), "nW", _("the weekday (Monday to Friday) nearest day n, in the month"), "0 9 15W * *"),
    (_("day of month"), "LW", _("the last weekday of the month"), "0 18 LW * *"),
    (_("day of month"), "?", _("any day, as *"), "0 9 ? * MON"),
    (_("day of week"), "d#n", _("the n-th weekday d of the month (0 or 7 = Sunday)"), "0 9 * * FRI#3"),
    (_("day of week"), "dL", _("the last weekday d of the month"), "0 9 * * 5L"),
)
#: A few recurrence rules, as examples: (rule, meaning).
RRULE_EXAMPLES = (
    ("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1", _("the last Friday of every month")),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE", _("Monday and Wednesday, every other week")),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15", _("the 1st and the 15th of every month")),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", _("the last Sunday of March")),
    ("FREQ=DAILY;COUNT=10", _("ten days in a row, then never again")),
)


def format_time(value: datetime | None, zone: tzinfo | None = None) -> str:
    """``2026-03-02 03:00:00 CET``: to the second, in ``zone`` (the default zone without one)."""
    if value is None:
        return "-"
    if zone is None:
        zone = _default_zone()
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _format_time(value: datetime, zone: Any) -> str:
    local = value.astimezone(zone)
    return local.strftime("%a %Y-%m-%d %H:%M:%S %Z (UTC%z)")


def format_duration(seconds: float | None) -> str:
    """A run's duration, rounded to what a person reads: ``0.42 s``, ``12.3 s``, ``4 min 05 s``,
    ``2 h 03 min``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _default_zone() -> tzinfo:
    try:
        return get_timezone(conf.timezone_name())
    except ValueError:
        return UTC


def job_zone(name: str | None) -> tzinfo:
    try:
        return get_timezone(name) if name else _default_zone()
    except ValueError:
        return _default_zone()


def row_problem(row: Job) -> str | None:
    """Why the scheduler cannot read this row (an unknown timezone written by SQL, a cron
    expression that does not parse...), or ``None`` for a readable row."""
    try:
        job_from_row(row)
    except SerializationError as exc:
        cause = exc.__cause__
        return str(cause) if cause is not None else str(exc)
    except Exception as exc:  # any other way a row can be unreadable
        return f"{type(exc).__name__}: {exc}"
    return None


def fire_time_preview(
    row: Job, *, count: int = 5, now: datetime | None = None, saved: Job | None = None
) -> dict[str, Any]:
    """The next ``count`` fire times of a job row, formatted in the job's timezone, or the
    error that keeps its trigger from being built.

    With ``saved`` (the row as stored, ``row`` being an edit of it not saved yet), the times
    are those the job will have once the edit is saved: the stored next run when the trigger
    is unchanged (saving keeps it), else the first fire from now; ``effect`` says which.
    """
    now = now or datetime.now(UTC)
    zone_name = row.timezone or conf.timezone_name()
    try:
        zone = get_timezone(zone_name)
        unresolved = row.build_trigger()
        trigger = unresolved.resolve(now=now, timezone=zone)
    except ValueError as exc:
        return {"error": str(exc), "timezone": zone_name}
    excluded: list[dict[str, str]] = []
    if row.exclude:
        try:
            trigger, excluded = _with_calendars(trigger, row, now, count, zone)
        except BeatxError as exc:
            return {"error": str(exc), "timezone": zone_name}
    times: list[datetime] = []
    effect = ""
    if saved is not None:
        current, effect = _edit_effect(unresolved, trigger, saved, now, zone)
    else:
        schedulable = row.status in (JobStatus.ACTIVE.value, JobStatus.FAILED.value)
        if not row._state.adding and schedulable and row.next_run_time is not None:
            current = row.next_run_time
        else:
            current = trigger.first_fire_time(now)
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next_fire_time(current)
    return {
        "timezone": zone_name,
        "description": trigger.describe(),
        "times": [_format_time(t, zone) for t in times],
        "excluded": excluded,
        "empty": _("This trigger does not fire again."),
        "effect": effect,
    }


def _with_calendars(
    trigger: Trigger, row: Job, now: datetime, count: int, zone: tzinfo
) -> tuple[Trigger, list[dict[str, str]]]:
    """The trigger with the row's calendars applied, and the fires they exclude among its
    next ones (the time, the reason, and where ``next_business_day`` moves it)."""
    storage = DjangoCalendarStorage(using=conf.setting("DATABASE"))
    calendars = named_calendars(tuple(row.exclude), storage, job_id=row.id or None)
    wrapped = ExcludingTrigger(trigger, calendars, row.on_excluded)  # type: ignore[arg-type]
    excluded = [
        {
            "time": _format_time(entry.at, zone),
            "reason": entry.reason or "",
            "moved_to": _format_time(entry.moved_to, zone) if entry.moved_to else "",
        }
        for entry in preview_fires(wrapped, now, count)
        if entry.reason
    ]
    return wrapped, excluded


def _edit_effect(
    unresolved: Any, trigger: Any, saved: Job, now: datetime, new_zone: tzinfo
) -> tuple[datetime | None, str]:
    """The first fire time after saving an edit of ``saved``, and a sentence saying how the
    next run changes (the rule of :meth:`JobManager.ensure_job`: only a changed trigger
    reschedules, from now)."""
    zone = job_zone(saved.timezone)
    before = saved.next_run_time
    try:
        stored = saved.build_trigger()
    except (InvalidTriggerError, ValueError):
        stored = None
    anchor = getattr(stored, "start_date", None) or now
    same = stored is not None and unresolved.resolve(now=anchor, timezone=_default_zone()) == stored
    after = before if same else trigger.first_fire_time(now)
    status = saved.status
    if status == JobStatus.PAUSED.value:
        text = _g("The job is paused: it does not run until it is resumed, edit or not.")
        return after, text
    if status in (JobStatus.COMPLETED.value, JobStatus.CANCELLED.value) and same:
        return None, _g("The job has ended; an unchanged trigger does not start it again.")
    if same:
        return after, _g("Saving keeps the next run at %(time)s.") % {"time": format_time(before, zone)}
    if after is None:
        return None, _g(
            "Saving ends the job: the edited trigger does not fire again (next run was %(time)s)."
        ) % {"time": format_time(before, zone)}
    return after, _g("Saving moves the next run from %(before)s to %(after)s.") % {
        "before": format_time(before, zone),
        "after": format_time(after, new_zone),
    }


def extended_cron_help() -> str:
    """The Cron fieldset's help: what the two boxes do, and the Quartz tokens (an HTML table)."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
        ((field, token, meaning, example) for field, token, meaning, example in EXTENDED_CRON_TOKENS),
    )
    return format_html(
        '<details class="beatx-help" id="beatx-extended-help"><summary>{}</summary>'
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>"
        "<p>{}</p></details>",
        _g("Extended: the Quartz day tokens (tick “extended”); seconds: six fields"),
        _g("field"),
        _g("token"),
        _g("means"),
        _g("e.g."),
        rows,
        _g(
            "Day names (MON-SUN) and numbers (0 or 7 = Sunday) both work. As in cron, a job whose day of "
            "month and day of week are both restricted fires when either matches. With “seconds”, six "
            "fields, seconds first: 30 0 3 * * * fires at 03:00:30."
        ),
    )


def rrule_help() -> str:
    """The RRULE fieldset's help: example rules (an HTML list)."""
    rows = format_html_join(
        "", "<li><code>{}</code>: {}</li>", ((rule, meaning) for rule, meaning in RRULE_EXAMPLES)
    )
    return format_html(
        '<div class="beatx-help" id="beatx-rrule-help"><p>{}</p><ul>{}</ul></div>',
        _g(
            "One RFC 5545 RRULE value, read in the job's timezone (below); the time of day comes from "
            "DTSTART unless the rule has BYHOUR / BYMINUTE. Empty DTSTART: the moment the job is saved."
        ),
        rows,
    )


def solar_help() -> str:
    """The Solar fieldset's help: Celery's events (an HTML list)."""
    rows = format_html_join(
        "", "<li><code>{}</code>: {}</li>", ((name, label) for name, label in SOLAR_EVENT_CHOICES)
    )
    return format_html(
        '<div class="beatx-help" id="beatx-solar-help"><p>{}</p><ul>{}</ul></div>',
        _g(
            "Celery's solar events, computed by ephem for the place (degrees, north and east positive). "
            "The place sets the times: a solar job has no timezone (the times are shown in the "
            "scheduler's). Where an event does not happen on a day (polar day or night), the next day "
            "that has it is used."
        ),
        rows,
    )
