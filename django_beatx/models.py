"""The tables behind :class:`django_beatx.store.DjangoStore`.

One row per job in :class:`Job` (one trigger-kind column plus the typed fields of each kind,
kept consistent by database check constraints), its runs in :class:`JobRun`, and three
single-row tables: the leader lease, the leading beat's health, and the change counter a
running beat polls to notice edits within a fraction of a second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from beatx.errors import InvalidTriggerError
from beatx.jobs import JobStatus
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger, RRuleTrigger, SolarTrigger, Trigger
from beatx.triggers.base import get_timezone
from beatx.triggers.solar import SOLAR_EVENTS
from django_beatx.querysets import SCHEDULABLE, JobQuerySet, JobRunQuerySet

__all__ = [
    "SOLAR_EVENT_CHOICES",
    "BeatState",
    "ChangeCounter",
    "ExclusionCalendar",
    "Job",
    "JobChange",
    "JobRun",
    "Lease",
    "TriggerKind",
]

SINGLETON_ID = 1


class TriggerKind(models.TextChoices):
    """Which trigger a job has; each kind uses its own fields."""

    INTERVAL = "interval", _("Interval")
    CRON = "cron", _("Cron")
    DATE = "date", _("One-shot date")
    RRULE = "rrule", _("Recurrence rule (RRULE)")
    SOLAR = "solar", _("Solar event")


_SOLAR_LABELS = {
    "dawn_astronomical": _("Astronomical dawn (the sun's centre 18° below the horizon, rising)"),
    "dawn_nautical": _("Nautical dawn (the sun's centre 12° below the horizon, rising)"),
    "dawn_civil": _("Civil dawn (the sun's centre 6° below the horizon, rising)"),
    "sunrise": _("Sunrise (the sun's upper limb at the horizon, rising)"),
    "solar_noon": _("Solar noon (the sun crosses the meridian)"),
    "sunset": _("Sunset (the sun's upper limb at the horizon, setting)"),
    "dusk_civil": _("Civil dusk (the sun's centre 6° below the horizon, setting)"),
    "dusk_nautical": _("Nautical dusk (the sun's centre 12° below the horizon, setting)"),
    "dusk_astronomical": _("Astronomical dusk (the sun's centre 18° below the horizon, setting)"),
}
#: Celery's nine solar events (``celery.schedules.solar``), as :mod:`beatx.triggers.solar`
#: lists them (in the order of the day).
SOLAR_EVENT_CHOICES = [(name, _SOLAR_LABELS[name]) for name in SOLAR_EVENTS]
#: The ranges of a solar job's coordinates, in degrees.
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 180.0)


STATUS_CHOICES = [(status.value, _(status.value.capitalize())) for status in JobStatus]


class Job(models.Model):
    """A scheduled job: what to run, when (its trigger), how (routing, policy), and its state."""

    # -- definition ----------------------------------------------------------------------------
    id: models.CharField[str, str] = models.CharField(
        _("id"),
        max_length=200,
        primary_key=True,
        help_text=_("A unique, stable identifier, e.g. nightly-invoices."),
    )
    name: models.CharField[str, str] = models.CharField(
        _("name"), max_length=200, blank=True, help_text=_("A readable name, e.g. Nightly invoices.")
    )
    description: models.TextField[str, str] = models.TextField(
        _("description"),
        blank=True,
        default="",
        help_text=_("What the job is for and who to ask, e.g. Sends the invoices of the day; team billing."),
    )
    task: models.CharField[str, str] = models.CharField(
        _("task"),
        max_length=255,
        help_text=_(
            "The Celery task name (e.g. billing.tasks.invoice) or a function reference "
            "(e.g. billing.tasks:invoice)."
        ),
    )
    args: models.JSONField[Any, Any] = models.JSONField(
        _("positional arguments"),
        default=list,
        blank=True,
        help_text=_('A JSON list, e.g. [42, "fr"].'),
    )
    kwargs: models.JSONField[Any, Any] = models.JSONField(
        _("keyword arguments"),
        default=dict,
        blank=True,
        help_text=_('A JSON object, e.g. {"dry_run": false}.'),
    )

    # -- trigger -------------------------------------------------------------------------------
    trigger_kind: models.CharField[str, str] = models.CharField(
        _("trigger"),
        max_length=16,
        choices=TriggerKind.choices,
        default=TriggerKind.CRON,
        help_text=_(
            "Interval (every N seconds), cron (e.g. 0 3 * * 1-5), a one-shot date, a recurrence rule "
            "(e.g. the last Friday of every month) or a solar event (e.g. sunset in Paris)."
        ),
    )
    cron_expression: models.CharField[str, str] = models.CharField(
        _("cron expression"),
        max_length=200,
        blank=True,
        help_text=_(
            "Five fields: minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5 "
            "(03:00 Monday to Friday), or an alias such as @daily; six fields, seconds first, with "
            "seconds ticked."
        ),
    )
    cron_extended: models.BooleanField[bool, bool] = models.BooleanField(
        _("extended"),
        default=False,
        help_text=_(
            "Cron jobs: accept the Quartz day tokens L, L-n, nW, LW and ? (day of month), d#n and dL "
            "(day of week), e.g. 0 9 L * * (09:00 on the last day of the month)."
        ),
    )
    cron_seconds: models.BooleanField[bool, bool] = models.BooleanField(
        _("seconds"),
        default=False,
        help_text=_("Cron jobs: six fields, seconds first, e.g. 30 0 3 * * * (03:00:30 every day)."),
    )
    rrule: models.TextField[str, str] = models.TextField(
        _("RRULE"),
        blank=True,
        default="",
        help_text=_(
            "Recurrence-rule jobs: one RFC 5545 RRULE value, e.g. FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1 "
            "(the last Friday of every month), with COUNT or UNTIL if wanted."
        ),
    )
    rrule_dtstart: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("RRULE start (DTSTART)"),
        null=True,
        blank=True,
        help_text=_(
            "Recurrence-rule jobs: the rule's anchor, e.g. 2026-01-02 09:00: its INTERVAL counts from "
            "it, and the parts the rule leaves out (the time of day, the day of the month) are taken "
            "from it. Empty: when the job is saved."
        ),
    )
    rrule_exdates: models.JSONField[Any, Any] = models.JSONField(
        _("RRULE exceptions (EXDATE)"),
        default=list,
        blank=True,
        help_text=_(
            "Recurrence-rule jobs: occurrences removed, a JSON list of ISO date-times in the job's "
            'timezone, e.g. ["2026-12-25T09:00:00"].'
        ),
    )
    rrule_rdates: models.JSONField[Any, Any] = models.JSONField(
        _("RRULE extra dates (RDATE)"),
        default=list,
        blank=True,
        help_text=_(
            "Recurrence-rule jobs: fire times added, a JSON list of ISO date-times in the job's "
            'timezone, e.g. ["2026-12-24T09:00:00"].'
        ),
    )
    solar_event: models.CharField[str, str] = models.CharField(
        _("solar event"),
        max_length=32,
        blank=True,
        default="",
        choices=SOLAR_EVENT_CHOICES,
        help_text=_("Solar jobs: Celery's events, e.g. sunset."),
    )
    solar_latitude: models.FloatField[float | None, float | None] = models.FloatField(
        _("latitude"),
        null=True,
        blank=True,
        help_text=_("Solar jobs: degrees from -90 to 90, north positive, e.g. 48.85 (Paris)."),
    )
    solar_longitude: models.FloatField[float | None, float | None] = models.FloatField(
        _("longitude"),
        null=True,
        blank=True,
        help_text=_("Solar jobs: degrees from -180 to 180, east positive, e.g. 2.35 (Paris)."),
    )
    interval_seconds: models.FloatField[float | None, float | None] = models.FloatField(
        _("interval (seconds)"),
        null=True,
        blank=True,
        help_text=_("Seconds between fires, e.g. 300 for every five minutes."),
    )
    start_now: models.BooleanField[bool, bool] = models.BooleanField(
        _("fire at the start"),
        default=True,
        help_text=_(
            "Interval jobs: fire first at the start time; otherwise one interval after it. "
            "E.g. checked, an hourly job created at 10:20 fires at 10:20, 11:20..."
        ),
    )
    run_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("run at"),
        null=True,
        blank=True,
        help_text=_("One-shot jobs: when to run, e.g. 2026-12-25 10:30 (in the job's timezone)."),
    )
    timezone: models.CharField[str, str] = models.CharField(
        _("timezone"),
        max_length=64,
        blank=True,
        help_text=_(
            "IANA timezone name the cron expression, the RRULE or the run time is read in, e.g. "
            "Europe/Paris. "
            "Empty: the scheduler's timezone."
        ),
    )
    start_date: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("start date"),
        null=True,
        blank=True,
        help_text=_(
            "No fire before this time, e.g. 2026-01-01 00:00. Interval jobs count from it; "
            "empty: from when the job is created."
        ),
    )
    end_date: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("end date"),
        null=True,
        blank=True,
        help_text=_("No fire after this time, e.g. 2026-12-31 23:59. Empty: no end."),
    )

    # -- routing (Celery message options) ------------------------------------------------------
    queue: models.CharField[str, str] = models.CharField(
        _("queue"), max_length=200, blank=True, help_text=_("Celery queue, e.g. reports. Empty: default.")
    )
    routing_key: models.CharField[str, str] = models.CharField(
        _("routing key"), max_length=200, blank=True, help_text=_("E.g. reports.daily. Empty: default.")
    )
    exchange: models.CharField[str, str] = models.CharField(
        _("exchange"), max_length=200, blank=True, help_text=_("E.g. reports. Empty: default.")
    )
    priority: models.PositiveSmallIntegerField[int | None, int | None] = models.PositiveSmallIntegerField(
        _("priority"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(255)],
        help_text=_("Message priority 0-255 (brokers usually honour 0-9), e.g. 5. Empty: default."),
    )
    expires: models.FloatField[float | None, float | None] = models.FloatField(
        _("expires (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Workers discard the message this many seconds after it is sent, e.g. 600."),
    )
    headers: models.JSONField[Any, Any] = models.JSONField(
        _("headers"),
        default=dict,
        blank=True,
        help_text=_('Extra message headers as a JSON object, e.g. {"tenant": "acme"}.'),
    )
    extra_options: models.JSONField[Any, Any] = models.JSONField(
        _("other options"),
        default=dict,
        blank=True,
        help_text=_('Other apply_async options as a JSON object, e.g. {"countdown": 5}.'),
    )

    # -- policy --------------------------------------------------------------------------------
    misfire_grace_time: models.FloatField[float | None, float | None] = models.FloatField(
        _("misfire grace time (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("A fire later than this is skipped and counted, e.g. 300. Empty: no limit."),
    )
    coalesce: models.BooleanField[bool, bool] = models.BooleanField(
        _("coalesce"),
        default=True,
        help_text=_("Run several missed fires once, e.g. after the beat was down for an hour."),
    )
    catchup: models.CharField[str, str] = models.CharField(
        _("catch-up"),
        max_length=8,
        blank=True,
        default="",
        choices=[
            ("latest", _("latest: one run, at the latest missed fire")),
            ("earliest", _("earliest: one run, at the earliest missed fire")),
            ("all", _("all: every missed fire runs")),
            ("none", _("none: no missed fire runs")),
        ],
        help_text=_(
            "What an outage's missed fires do, e.g. latest. Empty: as coalesce says (latest or all)."
        ),
    )
    catchup_window: models.FloatField[float | None, float | None] = models.FloatField(
        _("catch-up window (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Only fires missed within this many seconds are caught up, e.g. 86400. Empty: no limit."),
    )
    catchup_limit: models.PositiveIntegerField[int | None, int | None] = models.PositiveIntegerField(
        _("catch-up limit"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "With catch-up all: at most this many missed fires run (the newest), e.g. 10. Empty: no limit."
        ),
    )
    jitter: models.FloatField[float | None, float | None] = models.FloatField(
        _("jitter (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_(
            "Each fire goes out up to this many seconds late, by a delay fixed per job and fire "
            "(never past the next fire), e.g. 300 to spread jobs over five minutes. Empty: on time."
        ),
    )
    max_runs: models.PositiveIntegerField[int | None, int | None] = models.PositiveIntegerField(
        _("max runs"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "The most fires in the job's life, e.g. 10; after the last it is completed. Empty: no limit."
        ),
    )
    overlap: models.CharField[str, str] = models.CharField(
        _("overlap"),
        max_length=16,
        blank=True,
        default="skip",
        choices=[
            ("skip", _("skip: the fire is skipped")),
            ("buffer_one", _("buffer one: the newest fire runs when the run ends")),
            ("buffer_all", _("buffer all: every fire runs, one after another")),
            ("cancel_other", _("cancel other: revoke the run in flight, then send")),
            ("terminate_other", _("terminate other: kill the run in flight, then send")),
            ("allow_all", _("allow all: runs overlap, max instances not enforced")),
        ],
        help_text=_("What a fire does while max instances runs of the job are in flight, e.g. skip."),
    )
    pause_after_failures: models.PositiveIntegerField[int | None, int | None] = models.PositiveIntegerField(
        _("pause after failures"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Pause the job after this many failed runs in a row, e.g. 3. Empty: never."),
    )
    max_instances: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        _("max instances"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_("Runs allowed in flight at once, e.g. 1; a fire beyond it is skipped and counted."),
    )
    exclude: models.JSONField[Any, Any] = models.JSONField(
        _("exclusion calendars"),
        default=list,
        blank=True,
        help_text=_(
            'Names of exclusion calendars: the job does not fire at the times they exclude, e.g. ["fr-holidays"].'
        ),
    )
    on_excluded: models.CharField[str, str] = models.CharField(
        _("on an excluded time"),
        max_length=32,
        default="skip",
        choices=[
            ("skip", _("Skip the fire")),
            ("next_business_day", _("Run it at the same time on the next day no calendar excludes")),
        ],
        help_text=_("What happens to a fire an exclusion calendar excludes, e.g. skip."),
    )

    # -- alerts (beatx.alerts) -----------------------------------------------------------------
    expect_every: models.FloatField[float | None, float | None] = models.FloatField(
        _("expect a fire every (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text=_(
            "Alert when no fire was sent for this long (a missed heartbeat), e.g. 3900. Empty: no alert."
        ),
    )
    max_lateness: models.FloatField[float | None, float | None] = models.FloatField(
        _("max lateness (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text=_("Alert when a fire goes out (or is still unsent) this late, e.g. 60. Empty: no alert."),
    )
    max_runtime: models.FloatField[float | None, float | None] = models.FloatField(
        _("max runtime (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text=_(
            "Alert when a run has not finished this long after it started, e.g. 600. Empty: no alert."
        ),
    )
    alert_after_failures: models.PositiveIntegerField[int | None, int | None] = models.PositiveIntegerField(
        _("alert after failures"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Alert after this many failed runs in a row, e.g. 3. Empty: no alert."),
    )

    # -- state ---------------------------------------------------------------------------------
    status: models.CharField[str, str] = models.CharField(
        _("status"),
        max_length=16,
        choices=STATUS_CHOICES,
        default=JobStatus.ACTIVE.value,
        help_text=_("E.g. active (fires when due) or paused (kept, does not fire)."),
    )
    pause_note: models.CharField[str, str] = models.CharField(
        _("pause note"),
        max_length=500,
        blank=True,
        default="",
        help_text=_("Why the job was paused, e.g. Partner API down until Monday. Cleared on resume."),
    )
    paused_by: models.CharField[str, str] = models.CharField(
        _("paused by"),
        max_length=150,
        blank=True,
        default="",
        help_text=_("Who paused the job, e.g. alice. Cleared on resume."),
    )
    paused_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("paused at"),
        null=True,
        blank=True,
        help_text=_("When the job was paused (UTC). Cleared on resume."),
    )
    next_run_time: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("next run"),
        null=True,
        blank=True,
        help_text=_("When the job fires next (UTC), e.g. 2026-03-02 03:00. Computed by the scheduler."),
    )
    last_run_time: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("last run"), null=True, blank=True, help_text=_("Scheduled time of the last fire sent.")
    )
    total_run_count: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("runs"), default=0, help_text=_("Fires sent so far, e.g. 1024.")
    )
    misfire_count: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("misfires"), default=0, help_text=_("Fires skipped for being later than the grace time, e.g. 2.")
    )
    skip_count: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("skips"), default=0, help_text=_("Fires skipped because max instances were running, e.g. 3.")
    )
    last_error: models.TextField[str, str] = models.TextField(
        _("last error"), blank=True, default="", help_text=_("E.g. ValueError: invoice 42 has no lines.")
    )
    last_finished_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("last finished"), null=True, blank=True, help_text=_("When the last run ended.")
    )
    last_duration: models.FloatField[float | None, float | None] = models.FloatField(
        _("last duration (seconds)"), null=True, blank=True, help_text=_("E.g. 1.25.")
    )
    revision: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("revision"), default=0, help_text=_("Bumped on every change to the definition, e.g. 3.")
    )
    claimed_by: models.CharField[str, str] = models.CharField(
        _("claimed by"),
        max_length=200,
        blank=True,
        help_text=_("The beat planning this job right now, e.g. host:1234:ab12cd34."),
    )
    claimed_until: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("claimed until"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("The claim expires at this time, e.g. 2026-03-02 03:01."),
    )
    claim_token: models.CharField[str, str] = models.CharField(
        _("claim token"),
        max_length=255,
        blank=True,
        default="",
        help_text=_(
            "The token of the claim a beat holds on this job, e.g. host:1234:ab12cd34/5f0e1d2c3b4a; "
            "only a write-back under it moves the schedule. Empty: no claim."
        ),
    )
    released_claim: models.CharField[str, str] = models.CharField(
        _("last claim written back"),
        max_length=255,
        blank=True,
        default="",
        help_text=_(
            "The token of the last claim whose write-back was applied, so a write-back retried "
            "after an error that hid its success is not counted twice."
        ),
    )
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        _("created"), auto_now_add=True, help_text=_("When the job was added.")
    )
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        _("updated"), auto_now=True, help_text=_("When the row last changed.")
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ("next_run_time", "id")
        indexes = (
            models.Index(fields=["status", "next_run_time"], name="beatx_job_due_idx"),
            # The schedulable jobs in due order: the earliest next run (``next_run_time()``,
            # every idle tick) and the due claim (``ORDER BY next_run_time, id LIMIT ...``)
            # read the first entries instead of sorting every schedulable row.
            models.Index(
                fields=["next_run_time", "id"],
                name="beatx_job_next_idx",
                condition=Q(status__in=SCHEDULABLE, next_run_time__isnull=False),
            ),
        )
        constraints = (
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.CRON) | ~Q(cron_expression=""),
                name="beatx_job_cron_has_expression",
                violation_error_message=_("A cron job needs a cron expression."),
            ),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.INTERVAL) | Q(interval_seconds__gt=0),
                name="beatx_job_interval_is_positive",
                violation_error_message=_("An interval job needs an interval greater than 0."),
            ),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.DATE) | Q(run_at__isnull=False),
                name="beatx_job_date_has_run_at",
                violation_error_message=_("A one-shot job needs a run time."),
            ),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.RRULE) | ~Q(rrule=""),
                name="beatx_job_rrule_has_rule",
                violation_error_message=_("A recurrence-rule job needs its rule."),
            ),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.SOLAR) | Q(solar_event__in=list(SOLAR_EVENTS)),
                name="beatx_job_solar_has_event",
                violation_error_message=_("A solar job needs one of Celery's solar events."),
            ),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.SOLAR)
                | Q(
                    solar_latitude__isnull=False,
                    solar_latitude__gte=LATITUDE_RANGE[0],
                    solar_latitude__lte=LATITUDE_RANGE[1],
                    solar_longitude__isnull=False,
                    solar_longitude__gte=LONGITUDE_RANGE[0],
                    solar_longitude__lte=LONGITUDE_RANGE[1],
                ),
                name="beatx_job_solar_has_place",
                violation_error_message=_(
                    "A solar job needs a latitude from -90 to 90 and a longitude from -180 to 180 degrees."
                ),
            ),
            models.CheckConstraint(
                condition=Q(trigger_kind__in=TriggerKind.values),
                name="beatx_job_trigger_kind_valid",
            ),
            models.CheckConstraint(condition=Q(max_instances__gte=1), name="beatx_job_max_instances_min_1"),
        )

    def __str__(self) -> str:
        return self.name or self.id

    # -- trigger <-> fields --------------------------------------------------------------------

    def build_trigger(self) -> Trigger:
        """The beatx trigger these fields describe.

        :raises InvalidTriggerError: naming what is wrong.
        """
        tz = self.timezone or None
        if self.trigger_kind == TriggerKind.CRON:
            zone = get_timezone(tz) if tz else None
            start, end = self.start_date, self.end_date
            if zone is not None:
                # Dates in the job's zone, so the trigger reads back equal to the one stored.
                start = start.astimezone(zone) if start else None
                end = end.astimezone(zone) if end else None
            return CronTrigger(
                self.cron_expression,
                tz,
                start_date=start,
                end_date=end,
                extended=bool(self.cron_extended),
                seconds=bool(self.cron_seconds),
            )
        if self.trigger_kind == TriggerKind.INTERVAL:
            if self.interval_seconds is None:
                raise InvalidTriggerError("interval must be greater than 0: give the interval in seconds")
            return IntervalTrigger(
                seconds=self.interval_seconds,
                start_now=self.start_now,
                start_date=self.start_date,
                end_date=self.end_date,
            )
        if self.trigger_kind == TriggerKind.DATE:
            if self.run_at is None:
                raise InvalidTriggerError("a one-shot job needs a run time")
            run_at = self.run_at
            if tz:
                run_at = run_at.astimezone(get_timezone(tz))
            return DateTimeTrigger(run_at, tz)
        if self.trigger_kind == TriggerKind.RRULE:
            return self._build_rrule(tz)
        if self.trigger_kind == TriggerKind.SOLAR:
            if not self.solar_event:
                raise InvalidTriggerError("a solar job needs its event, e.g. sunset")
            latitude, longitude = self.solar_latitude, self.solar_longitude
            if latitude is None:
                raise InvalidTriggerError("a solar job needs its latitude, in degrees")
            if longitude is None:
                raise InvalidTriggerError("a solar job needs its longitude, in degrees")
            return SolarTrigger(self.solar_event, latitude, longitude)
        raise InvalidTriggerError(f"unknown trigger kind {self.trigger_kind!r}")

    def _build_rrule(self, tz: str | None) -> RRuleTrigger:
        for name in ("rrule_exdates", "rrule_rdates"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                what = name.removeprefix("rrule_")
                raise InvalidTriggerError(
                    f"{what} must be a list of ISO date-times such as '2026-12-25T09:00:00', got {value!r}"
                )
        dtstart = self.rrule_dtstart
        if dtstart is not None and tz:
            # The wall time in the job's zone, as the trigger was resolved (so it reads back equal).
            dtstart = dtstart.astimezone(get_timezone(tz)).replace(tzinfo=None)
        return RRuleTrigger(
            self.rrule, dtstart, tz, exdates=list(self.rrule_exdates), rdates=list(self.rrule_rdates)
        )

    def set_trigger(self, trigger: Trigger) -> None:
        """Write a trigger object into the trigger fields (clearing the other kinds' fields)."""
        data = trigger.to_dict()
        self.cron_expression = ""
        self.interval_seconds = None
        self.run_at = None
        self.start_date = None
        self.end_date = None
        self.start_now = True
        self.timezone = ""
        self.cron_extended = self.cron_seconds = False
        self.rrule = ""
        self.rrule_dtstart = None
        self.rrule_exdates, self.rrule_rdates = [], []
        self.solar_event = ""
        self.solar_latitude = self.solar_longitude = None
        if isinstance(trigger, CronTrigger):
            self.trigger_kind = TriggerKind.CRON
            self.cron_expression = trigger.expression
            self.cron_extended, self.cron_seconds = trigger.extended, trigger.seconds
            self.timezone = data.get("timezone") or ""
            self.start_date, self.end_date = trigger.start_date, trigger.end_date
        elif isinstance(trigger, RRuleTrigger):
            self.trigger_kind = TriggerKind.RRULE
            self.rrule = trigger.rule
            self.timezone = data.get("timezone") or ""
            # The instant of dtstart: its wall time in the trigger's zone (UTC without one).
            self.rrule_dtstart = trigger.dtstart
            self.rrule_exdates = list(data.get("exdates") or [])
            self.rrule_rdates = list(data.get("rdates") or [])
        elif isinstance(trigger, SolarTrigger):
            self.trigger_kind = TriggerKind.SOLAR
            self.solar_event = trigger.event
            self.solar_latitude, self.solar_longitude = trigger.latitude, trigger.longitude
        elif isinstance(trigger, IntervalTrigger):
            self.trigger_kind = TriggerKind.INTERVAL
            self.interval_seconds = trigger.interval.total_seconds()
            self.start_now = trigger.start_now
            self.start_date, self.end_date = trigger.start_date, trigger.end_date
        elif isinstance(trigger, DateTimeTrigger):
            self.trigger_kind = TriggerKind.DATE
            self.run_at = trigger.run_at
            self.timezone = data.get("timezone") or ""
        else:
            raise InvalidTriggerError(f"the Django store cannot keep a {type(trigger).__name__}")

    def describe_trigger(self) -> str:
        """A plain-English reading of the trigger, or the error that makes it invalid."""
        try:
            return self.build_trigger().describe()
        except (InvalidTriggerError, ValueError) as exc:
            return str(_("invalid: %(error)s") % {"error": exc})

    @property
    def options(self) -> dict[str, Any]:
        """The Celery message options, as ``beatx.Job.options`` holds them."""
        options: dict[str, Any] = dict(self.extra_options or {})
        for name in ("queue", "routing_key", "exchange"):
            if getattr(self, name):
                options[name] = getattr(self, name)
        if self.priority is not None:
            options["priority"] = self.priority
        if self.expires is not None:
            options["expires"] = self.expires
        if self.headers:
            options["headers"] = self.headers
        return options

    def set_options(self, options: dict[str, Any]) -> None:
        extra = dict(options)
        self.queue = str(extra.pop("queue", "") or "")
        self.routing_key = str(extra.pop("routing_key", "") or "")
        self.exchange = str(extra.pop("exchange", "") or "")
        self.priority = extra.pop("priority", None)
        self.expires = extra.pop("expires", None)
        self.headers = extra.pop("headers", None) or {}
        self.extra_options = extra

    # -- validation ----------------------------------------------------------------------------

    def clean(self) -> None:
        """Check the trigger with beatx itself, so errors appear beside the field that is wrong."""
        super().clean()
        errors: dict[str, list[Any]] = {}

        def add(field: str, message: Any) -> None:
            errors.setdefault(field, []).append(message)

        if self.timezone:
            try:
                get_timezone(self.timezone)
            except InvalidTriggerError:
                add(
                    "timezone",
                    _("Unknown timezone %(name)r: use an IANA name such as Europe/Paris.")
                    % {"name": self.timezone},
                )
        if self.trigger_kind == TriggerKind.CRON and not self.cron_expression.strip():
            add("cron_expression", _("A cron job needs a cron expression, e.g. 0 3 * * *."))
        if self.trigger_kind == TriggerKind.INTERVAL and (
            self.interval_seconds is None or self.interval_seconds <= 0
        ):
            add("interval_seconds", _("The interval must be greater than 0 seconds, e.g. 300."))
        if self.trigger_kind == TriggerKind.DATE and self.run_at is None:
            add("run_at", _("A one-shot job needs a run time."))
        if self.trigger_kind == TriggerKind.RRULE:
            if not self.rrule.strip():
                add("rrule", _("A recurrence-rule job needs its rule, e.g. FREQ=WEEKLY;BYDAY=MO."))
            for name in ("rrule_exdates", "rrule_rdates"):
                value = getattr(self, name)
                if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                    add(name, _('A JSON list of ISO date-times, e.g. ["2026-12-25T09:00:00"].'))
        if self.trigger_kind == TriggerKind.SOLAR:
            if not self.solar_event:
                add("solar_event", _("A solar job needs its event, e.g. sunset."))
            for name, (low, high), example in (
                ("solar_latitude", LATITUDE_RANGE, "48.85"),
                ("solar_longitude", LONGITUDE_RANGE, "2.35"),
            ):
                value = getattr(self, name)
                if value is None or not low <= value <= high:
                    add(
                        name,
                        _("Give degrees from %(low)g to %(high)g, e.g. %(example)s%(got)s.")
                        % {
                            "low": low,
                            "high": high,
                            "example": example,
                            "got": "" if value is None else _(" (got %(value)g)") % {"value": value},
                        },
                    )
        if not isinstance(self.args, list):
            add("args", _("Positional arguments must be a JSON list, e.g. [1, 2]."))
        if not isinstance(self.kwargs, dict):
            add("kwargs", _('Keyword arguments must be a JSON object, e.g. {"a": 1}.'))
        if not isinstance(self.headers, dict):
            add("headers", _("Headers must be a JSON object."))
        if errors:
            raise ValidationError(errors)
        try:
            trigger = self.build_trigger()
        except (InvalidTriggerError, ValueError) as exc:
            raise ValidationError({self._field_of_error(str(exc)): self._reworded(str(exc))}) from exc
        from django_beatx import conf

        now = datetime.now(UTC)
        resolved = trigger.resolve(now=now, timezone=get_timezone(conf.timezone_name()))
        probe = self.start_date if self.start_date and self.start_date > now else now
        first = resolved.first_fire_time(probe)
        if first is None and self.trigger_kind != TriggerKind.DATE:
            field = "end_date" if self.end_date is not None else self._trigger_field()
            raise ValidationError(
                {field: _("This trigger (%(trigger)s) never fires again.") % {"trigger": resolved.describe()}}
            )

    def _trigger_field(self) -> str:
        try:
            kind = TriggerKind(self.trigger_kind)
        except ValueError:
            return "trigger_kind"
        return {
            TriggerKind.CRON: "cron_expression",
            TriggerKind.INTERVAL: "interval_seconds",
            TriggerKind.DATE: "run_at",
            TriggerKind.RRULE: "rrule",
            TriggerKind.SOLAR: "solar_event",
        }.get(kind, "trigger_kind")

    def _field_of_error(self, message: str) -> str:
        if self.trigger_kind == TriggerKind.RRULE:
            # The rule's own errors may name dtstart, exdates and rdates in their hint.
            if message.startswith(("invalid RRULE", "an RRULE", "RRULE")):
                return "rrule"
            for prefix, field in (
                ("dtstart", "rrule_dtstart"),
                ("exdates", "rrule_exdates"),
                ("rdates", "rrule_rdates"),
            ):
                if message.startswith(prefix):
                    return field
        if self.trigger_kind == TriggerKind.SOLAR:
            for word, field in (("latitude", "solar_latitude"), ("longitude", "solar_longitude")):
                if word in message:
                    return field
            return "solar_event"
        if "timezone" in message:
            return "timezone"
        if "end_date" in message:
            return "end_date"
        if "start_date" in message:
            return "start_date"
        return self._trigger_field()

    @staticmethod
    def _reworded(message: str) -> str:
        """A trigger's error in the words of these fields (``cron_extended``, not ``extended=True``)."""
        return (
            message.replace("pass extended=True for", str(_("tick extended (cron_extended) for")))
            .replace("pass seconds=True", str(_("tick seconds (cron_seconds)")))
            .replace("with seconds=True", str(_("with seconds (cron_seconds) ticked")))
            .replace(
                "as the dtstart=, exdates= and rdates= arguments",
                str(_("in their own fields (rrule_dtstart, rrule_exdates, rrule_rdates)")),
            )
        )


class JobRun(models.Model):
    """One fire of a job: sent by the beat, then started and finished by a worker (the run
    ledger, read through :meth:`django_beatx.store.DjangoStore.job_runs`). ``dispatched`` is the
    ledger's ``sent``."""

    class Outcome(models.TextChoices):
        DISPATCHED = "dispatched", _("Sent")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        RETRIED = "retried", _("Retried")
        REVOKED = "revoked", _("Revoked")
        REJECTED = "rejected", _("Rejected")
        UNKNOWN_TASK = "unknown_task", _("Unknown task")
        MISSED = "missed", _("Missed")
        SKIPPED = "skipped", _("Skipped")
        CAUGHT_UP = "caught_up", _("Caught up")

    job: models.ForeignKey[Job, Job] = models.ForeignKey(
        Job,
        on_delete=models.CASCADE,
        related_name="runs",
        verbose_name=_("job"),
        help_text=_("The job this run belongs to, e.g. nightly-invoices."),
        # ``beatx_run_job_idx`` (job, -scheduled_at) serves every lookup by job: an index of
        # its own (and its LIKE twin on PostgreSQL) would only cost each run record's insert.
        db_index=False,
    )
    scheduled_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("scheduled at"),
        null=True,
        blank=True,
        help_text=_(
            "The fire time this run is for, e.g. 2026-03-02 03:00 (empty for a run started elsewhere)."
        ),
    )
    dispatched_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("dispatched at"), null=True, blank=True, help_text=_("When the beat sent the message.")
    )
    task_id: models.CharField[str, str] = models.CharField(
        _("task id"),
        max_length=64,
        # Unique by the constraint ``beatx_run_task_id_key`` (Meta): ``unique=True`` would add
        # a LIKE index on PostgreSQL that no query uses and every insert pays for.
        help_text=_("The Celery task id, derived from (job id, scheduled time), e.g. 1b4e28ba-2fa1-..."),
    )
    outcome: models.CharField[str, str] = models.CharField(
        _("outcome"),
        max_length=16,
        choices=Outcome.choices,
        default=Outcome.DISPATCHED,
        help_text=_("E.g. succeeded."),
    )
    started_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("started at"), null=True, blank=True, help_text=_("When a worker started it.")
    )
    expires_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("counts until"),
        null=True,
        blank=True,
        help_text=_(
            "A running run stops counting towards max instances at this time, e.g. if its worker died."
        ),
    )
    finished_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("finished at"), null=True, blank=True, help_text=_("When it ended.")
    )
    duration: models.FloatField[float | None, float | None] = models.FloatField(
        _("duration (seconds)"), null=True, blank=True, help_text=_("E.g. 0.42.")
    )
    error: models.TextField[str, str] = models.TextField(
        _("error"), blank=True, default="", help_text=_("E.g. TimeoutError: upstream did not answer.")
    )
    worker: models.CharField[str, str] = models.CharField(
        _("worker"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The worker that ran it, e.g. celery@host1."),
    )
    reason: models.TextField[str, str] = models.TextField(
        _("reason"),
        blank=True,
        default="",
        help_text=_(
            "Why fires were missed or skipped, e.g. 2 fire(s) skipped: max_instances runs were in flight."
        ),
    )
    retries: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        _("retries"), default=0, help_text=_("How many times the task was retried, e.g. 1.")
    )

    job_id: str
    objects = JobRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        ordering = ("-scheduled_at", "-id")
        indexes = (
            models.Index(fields=["job", "-scheduled_at"], name="beatx_run_job_idx"),
            models.Index(fields=["outcome", "expires_at"], name="beatx_run_inflight_idx"),
        )
        constraints = (models.UniqueConstraint(fields=["task_id"], name="beatx_run_task_id_key"),)

    def __str__(self) -> str:
        return f"{self.job_id} @ {self.scheduled_at or self.started_at}"


class Lease(models.Model):
    """The leader lease: one row; the beat whose ``owner`` token is here (and unexpired) leads."""

    id: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        _("id"), primary_key=True, default=SINGLETON_ID, help_text=_("Always 1: this table has one row.")
    )
    owner: models.CharField[str, str] = models.CharField(
        _("owner"),
        max_length=200,
        blank=True,
        help_text=_("The leading beat's token, e.g. host:1234:ab12cd34. Empty: nobody leads."),
    )
    acquired_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("acquired at"), null=True, blank=True, help_text=_("Since when.")
    )
    expires_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Another beat may take over after this.")
    )

    class Meta:
        verbose_name = _("leader lease")
        verbose_name_plural = _("leader lease")

    def __str__(self) -> str:
        return self.owner or "-"


class BeatState(models.Model):
    """The leading beat's health, as it last reported it (one row)."""

    id: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        _("id"), primary_key=True, default=SINGLETON_ID, help_text=_("Always 1: this table has one row.")
    )
    owner: models.CharField[str, str] = models.CharField(
        _("owner"), max_length=200, help_text=_("E.g. host:1234:ab12cd34.")
    )
    leader_since: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        _("leader since"), null=True, blank=True, help_text=_("E.g. 03:00.")
    )
    last_tick_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        _("last tick"), help_text=_("E.g. 2026-03-02 03:00:01.")
    )
    due_backlog: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        _("due backlog"), default=0, help_text=_("Jobs due, e.g. 0.")
    )
    jobs_fired: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("fired"), default=0, help_text=_("E.g. 120.")
    )
    jobs_missed: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("missed"), default=0, help_text=_("E.g. 1.")
    )
    jobs_skipped: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("skipped"), default=0, help_text=_("E.g. 0.")
    )

    class Meta:
        verbose_name = _("beat status")
        verbose_name_plural = _("beat status")

    def __str__(self) -> str:
        return str(self.owner)


class ChangeCounter(models.Model):
    """A version bumped by every change the store makes to a job definition (one row).

    A running beat reads it a few times a second (a primary-key lookup), and re-plans when it
    moved. The store bumps it itself, in the same transaction as the change, so no code path
    (bulk updates, admin actions) can forget to.
    """

    id: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        _("id"), primary_key=True, default=SINGLETON_ID, help_text=_("Always 1: this table has one row.")
    )
    version: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("version"), default=0, help_text=_("E.g. 17.")
    )

    class Meta:
        verbose_name = _("change counter")
        verbose_name_plural = _("change counter")

    def __str__(self) -> str:
        return str(self.version)


class JobChange(models.Model):
    """One entry of a job's audit log (:class:`beatx.audit.JobChange`): who changed it, through
    what, when, and the diff. Not a foreign key: the log of a removed job stays."""

    job_id: models.CharField[str, str] = models.CharField(
        _("job id"), max_length=200, help_text=_("The job changed, e.g. nightly-invoices.")
    )
    at: models.DateTimeField[datetime, datetime] = models.DateTimeField(_("at"), help_text=_("When."))
    action: models.CharField[str, str] = models.CharField(
        _("action"), max_length=16, help_text=_("added, replaced, changed, paused, resumed or removed.")
    )
    source: models.CharField[str, str] = models.CharField(
        _("through"), max_length=32, help_text=_("api, cli, admin, yaml, beat_schedule...")
    )
    actor: models.CharField[str, str] = models.CharField(
        _("by"), max_length=150, blank=True, default="", help_text=_("Who, e.g. alice.")
    )
    changes: models.JSONField[Any, Any] = models.JSONField(
        _("changes"),
        default=dict,
        blank=True,
        help_text=_('{field: [before, after]}, e.g. {"status": ["active", "paused"]}.'),
    )

    class Meta:
        verbose_name = _("job change")
        verbose_name_plural = _("job changes")
        ordering = ("-at", "-id")
        indexes = (models.Index(fields=["job_id", "-at"], name="beatx_change_job_idx"),)

    def __str__(self) -> str:
        return f"{self.job_id} {self.action} @ {self.at}"


class MetaValue(models.Model):
    """A small named value beatx keeps for itself, such as the ids of the jobs imported from
    ``beat_schedule`` (so a restart can remove those whose entry is gone without reading
    every job)."""

    key: models.CharField[str, str] = models.CharField(
        _("key"), max_length=100, primary_key=True, help_text=_("E.g. beat_schedule_ids.")
    )
    value: models.TextField[str, str] = models.TextField(_("value"), help_text=_('E.g. ["nightly-report"].'))

    class Meta:
        verbose_name = _("beatx value")
        verbose_name_plural = _("beatx values")

    def __str__(self) -> str:
        return self.key


class ExclusionCalendar(models.Model):
    """A named exclusion calendar jobs name in their ``exclude`` list (see
    :class:`beatx.calendars.ExclusionCalendar`): the dates, ranges, weekdays, time windows and
    public holidays at which they do not fire."""

    name: models.CharField[str, str] = models.CharField(
        _("name"), max_length=200, primary_key=True, help_text=_("E.g. fr-holidays.")
    )
    description: models.TextField[str, str] = models.TextField(
        _("description"),
        blank=True,
        default="",
        help_text=_("E.g. French public holidays and Christmas week."),
    )
    timezone: models.CharField[str, str] = models.CharField(
        _("timezone"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("IANA name the calendar is read in, e.g. Europe/Paris. Empty: each job's own timezone."),
    )
    dates: models.JSONField[Any, Any] = models.JSONField(
        _("dates"),
        default=list,
        blank=True,
        help_text=_('Whole days excluded, a JSON list of ISO dates, e.g. ["2026-12-24", "2026-12-31"].'),
    )
    date_ranges: models.JSONField[Any, Any] = models.JSONField(
        _("date ranges"),
        default=list,
        blank=True,
        help_text=_(
            'Ranges of whole days excluded (both ends included), e.g. [["2026-08-01", "2026-08-15"]].'
        ),
    )
    weekdays: models.JSONField[Any, Any] = models.JSONField(
        _("weekdays"),
        default=list,
        blank=True,
        help_text=_('Days of the week excluded, e.g. ["sat", "sun"].'),
    )
    windows: models.JSONField[Any, Any] = models.JSONField(
        _("time windows"),
        default=list,
        blank=True,
        help_text=_(
            "Cron expressions whose matching minutes are excluded, e.g. "
            '["* 0-5 * * *"] (every night from 00:00 to 05:59).'
        ),
    )
    holidays: models.JSONField[Any, Any] = models.JSONField(
        _("public holidays"),
        default=list,
        blank=True,
        help_text=_(
            'Countries or subdivisions whose public holidays are excluded, e.g. ["FR", "US-CA"] '
            "(needs the holidays package: pip install beatx[calendars])."
        ),
    )
    revision: models.PositiveBigIntegerField[int, int] = models.PositiveBigIntegerField(
        _("revision"), default=0, help_text=_("Bumped on every change, e.g. 3.")
    )
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        _("updated"), auto_now=True, help_text=_("When the calendar last changed.")
    )

    class Meta:
        verbose_name = _("exclusion calendar")
        verbose_name_plural = _("exclusion calendars")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name
