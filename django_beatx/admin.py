"""The jobs admin.

Every change of a schedule goes through the Django store (never a bare ``QuerySet.update``):
a saved form through :class:`beatx.manager.JobManager`, the bulk actions (pause, resume,
delete, duplicate, run now) through the store's set-based writes, which apply the same rules
to the whole selection at once (a few statements, one wake-up of the beat), so next run times
are computed by beatx and a running beat sees each change within a fraction of a second. The
two notes a person writes for people (the description, the pause note) change no schedule:
they are written to their columns alone, without waking the beat.

Nothing is saved silently and every action is on the record: a refused save shows its error
and no "changed successfully"; pause, resume, run-now and duplicate write Django's
``LogEntry`` (the object's History), as adding, changing and deleting do; a row the scheduler
cannot read is shown as broken, left out of the actions, and repaired by saving its form.

Everything is read from and written to the database ``BEATX["DATABASE"]`` names.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from beatx.audit import JobChange
from beatx.errors import BeatxError
from beatx.jobs import Job as BeatxJob
from beatx.jobs import JobStatus
from beatx.manager import JobManager
from django_beatx import (
    calendar_admin,  # noqa: F401  (registers the exclusion calendars admin)
    conf,
)
from django_beatx.admin_display import (
    BROKEN_COLOUR,
    OUTCOME_COLOURS,
    STATUS_COLOURS,
    extended_cron_help,
    fire_time_preview,
    format_duration,
    format_time,
    job_zone,
    row_problem,
    rrule_help,
    solar_help,
)
from django_beatx.forms import JobForm, task_warning
from django_beatx.models import STATUS_CHOICES, Job, JobRun

__all__ = [
    "JobAdmin",
    "fire_time_preview",
    "format_duration",
    "format_time",
    "row_problem",
]

TRIGGER_FIELDS = (
    "trigger_kind",
    "cron_expression",
    "cron_extended",
    "cron_seconds",
    "interval_seconds",
    "run_at",
    "run_once_now",
    "rrule",
    "rrule_dtstart",
    "rrule_exdates",
    "rrule_rdates",
    "solar_event",
    "solar_latitude",
    "solar_longitude",
    "timezone",
    "start_date",
    "end_date",
)
#: A beat that has not ticked for this long is shown in red.
STALE_AFTER = timedelta(seconds=90)
#: Ids per query when the admin reads a selection's rows.
_READ_BATCH = 900
#: Broken jobs named in a message (the rest are counted).
_NAMED = 5


def _actor(request: HttpRequest) -> str | None:
    """Who makes a change in the admin, for the audit log."""
    user = getattr(request, "user", None)
    return (user.get_username() or None) if user is not None and user.is_authenticated else None


def _read_rows(job_ids: Iterable[str]) -> list[Job]:
    ids = sorted(set(job_ids))
    jobs = Job.objects.using(conf.setting("DATABASE"))
    rows: list[Job] = []
    for start in range(0, len(ids), _READ_BATCH):
        rows.extend(jobs.filter(pk__in=ids[start : start + _READ_BATCH]).order_by("pk"))
    return rows


class AdminJobForm(JobForm):
    def validate_unique(self) -> None:
        """A new job's id must be free in the store's database (Django's own check reads
        the ``default`` database, whatever ``BEATX["DATABASE"]`` says)."""
        if not self.instance._state.adding:
            return  # the id is read-only on the change page; no other field is unique
        job_id = self.cleaned_data.get("id")
        if job_id and Job.objects.using(conf.setting("DATABASE")).filter(pk=job_id).exists():
            self.add_error("id", self.instance.unique_error_message(Job, ("id",)))


class JobActionForm(ActionForm):
    """The list's action bar, with the note a pause keeps ("why paused") and the range of a
    backfill."""

    pause_note = forms.CharField(
        label=_("Pause note:"),
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 30, "placeholder": _("why paused (optional)")}),
    )
    backfill_from = forms.CharField(
        label=_("Backfill from:"),
        required=False,
        widget=forms.TextInput(attrs={"size": 16, "placeholder": "2026-03-01 00:00"}),
    )
    backfill_to = forms.CharField(
        label=_("to:"),
        required=False,
        widget=forms.TextInput(attrs={"size": 16, "placeholder": "2026-03-02 00:00"}),
    )


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AdminJobForm
    action_form = JobActionForm
    list_display = (
        "display_name",
        "trigger_description",
        "status_badge",
        "next_run",
        "last_run",
        "last_outcome",
        "total_run_count",
        "short_last_error",
    )
    list_filter = ("status", "trigger_kind", "queue")
    search_fields = ("name", "id", "task", "description")
    ordering = ("next_run_time", "id")
    actions = ("pause_jobs", "resume_jobs", "run_jobs_now", "backfill_jobs", "duplicate_jobs")
    save_on_top = True
    state_fields = (
        "status",
        "pause_note",
        "paused_by",
        "paused_at",
        "next_run",
        "last_run",
        "total_run_count",
        "misfire_count",
        "skip_count",
        "last_error_shown",
        "last_finished_at",
        "last_duration",
        "revision",
        "claimed_by",
        "claimed_until",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        """The jobs of the store's database (``BEATX["DATABASE"]``): the list, the change and
        delete pages and the actions' selections; each with the outcome of its latest run."""
        latest = JobRun.objects.filter(job=OuterRef("pk")).order_by(
            F("scheduled_at").desc(nulls_last=True), "-id"
        )
        return (
            super()
            .get_queryset(request)
            .using(conf.setting("DATABASE"))
            .annotate(latest_outcome=Subquery(latest.values("outcome")[:1]))
        )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(self.preview_view), name="{}_{}_preview".format(*info)),
            path("<path:object_id>/pause/", wrap(self.pause_view), name="{}_{}_pause".format(*info)),
            path("<path:object_id>/resume/", wrap(self.resume_view), name="{}_{}_resume".format(*info)),
            path("<path:object_id>/run-now/", wrap(self.run_now_view), name="{}_{}_run_now".format(*info)),
            *super().get_urls(),
        ]

    # -- list ----------------------------------------------------------------------------------

    @admin.display(description=_("name"), ordering="name")
    def display_name(self, obj: Job) -> str:
        description = (
            format_html(
                '<br><small class="beatx-description" title="{}">{}</small>',
                obj.description,
                Truncator(obj.description).chars(70),
            )
            if obj.description
            else ""
        )
        if obj.name and obj.name != obj.id:
            return format_html("{}<br><small>{} · {}</small>{}", obj.name, obj.id, obj.task, description)
        return format_html("{}<br><small>{}</small>{}", obj.id, obj.task, description)

    @admin.display(description=_("trigger"), ordering="trigger_kind")
    def trigger_description(self, obj: Job) -> str:
        return obj.describe_trigger()

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Job) -> str:
        problem = row_problem(obj)
        if problem:
            return format_html(
                '<span class="beatx-badge beatx-status-broken" style="background:{}" title="{}">{}</span>'
                '<br><small class="beatx-broken-reason">{}</small>',
                BROKEN_COLOUR,
                problem,
                _("Broken"),
                Truncator(problem).chars(80),
            )
        badge = format_html(
            '<span class="beatx-badge beatx-status-{}" style="background:{}">{}</span>',
            obj.status,
            STATUS_COLOURS.get(obj.status, "#616161"),
            dict(STATUS_CHOICES).get(obj.status, obj.status),
        )
        if obj.status == JobStatus.PAUSED.value and (obj.pause_note or obj.paused_by):
            by = _g("by %(name)s") % {"name": obj.paused_by} if obj.paused_by else ""
            shown = f"{obj.pause_note} ({by})" if obj.pause_note and by else obj.pause_note or by
            return format_html(
                '{}<br><small class="beatx-pause-note" title="{}">{}</small>',
                badge,
                shown,
                Truncator(shown).chars(60),
            )
        return badge

    @admin.display(description=_("next run"), ordering="next_run_time")
    def next_run(self, obj: Job) -> str:
        if obj.status not in (JobStatus.ACTIVE.value, JobStatus.FAILED.value):
            return "-"  # a paused or ended job does not run, whatever time is stored
        return format_time(obj.next_run_time, job_zone(obj.timezone))

    @admin.display(description=_("last run"), ordering="last_run_time")
    def last_run(self, obj: Job) -> str:
        return format_time(obj.last_run_time, job_zone(obj.timezone))

    @admin.display(description=_("last outcome"))
    def last_outcome(self, obj: Job) -> str:
        outcome = getattr(obj, "latest_outcome", None)
        if not outcome:
            return "-"
        return format_html(
            '<span class="beatx-outcome beatx-outcome-{}" style="color:{}">{}</span>',
            outcome,
            OUTCOME_COLOURS.get(outcome, "#616161"),
            dict(JobRun.Outcome.choices).get(outcome, outcome),
        )

    def _error_is_current(self, obj: Job) -> bool:
        """Whether the job's last error is its present state: it failed and has not run well
        since (a job that recovered keeps the text of its old error)."""
        if obj.status == JobStatus.FAILED.value:
            return True
        outcome: str | None
        if hasattr(obj, "latest_outcome"):  # annotated by get_queryset: no query per row
            outcome = obj.latest_outcome
        elif obj._state.adding:
            outcome = None
        else:
            outcome = (
                JobRun.objects.using(conf.setting("DATABASE"))
                .filter(job_id=obj.pk)
                .order_by(F("scheduled_at").desc(nulls_last=True), "-id")
                .values_list("outcome", flat=True)
                .first()
            )
        return outcome in (
            JobRun.Outcome.FAILED.value,
            JobRun.Outcome.REJECTED.value,
            JobRun.Outcome.UNKNOWN_TASK.value,
        )

    @admin.display(description=_("last error"))
    def short_last_error(self, obj: Job) -> str:
        if not obj.last_error:
            return ""
        if self._error_is_current(obj):
            return format_html(
                '<span class="beatx-error-current" title="{}">{}</span>',
                obj.last_error,
                Truncator(obj.last_error).chars(50),
            )
        return format_html(
            '<small class="beatx-error-previous" title="{}">{} {}</small>',
            obj.last_error,
            _("(recovered; earlier:)"),
            Truncator(obj.last_error).chars(40),
        )

    @admin.display(description=_("last error"))
    def last_error_shown(self, obj: Job) -> str:
        if not obj.last_error:
            return "-"
        if self._error_is_current(obj):
            return obj.last_error
        return str(_("Recovered: the job has run without error since. Earlier error: %(error)s")) % {
            "error": obj.last_error
        }

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        try:
            health = conf.get_manager().health()
        except BeatxError as exc:
            extra_context["beatx_health_error"] = _("Cannot read the scheduler's health: %(error)s") % {
                "error": exc
            }
        else:
            values = health.as_dict()
            last_tick = health.last_tick_at
            values["stale"] = last_tick is None or datetime.now(UTC) - last_tick > STALE_AFTER
            extra_context["beatx_health"] = values
        return super().changelist_view(request, extra_context)

    # -- form ----------------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (None, {"fields": ("id", "name", "description", "task", "args", "kwargs")}),
            (_("When"), {"fields": ("trigger_kind",)}),
            (
                _("Cron"),
                {
                    "fields": (("cron_expression", "cron_extended", "cron_seconds"),),
                    "classes": ("beatx-kind", "beatx-kind-cron"),
                    "description": extended_cron_help(),
                },
            ),
            (
                _("Interval"),
                {
                    "fields": ("interval_seconds", "start_now"),
                    "classes": ("beatx-kind", "beatx-kind-interval"),
                },
            ),
            (
                _("One-shot"),
                {"fields": ("run_at", "run_once_now"), "classes": ("beatx-kind", "beatx-kind-date")},
            ),
            (
                _("Recurrence rule (RRULE)"),
                {
                    "fields": ("rrule", "rrule_dtstart", ("rrule_exdates", "rrule_rdates")),
                    "classes": ("beatx-kind", "beatx-kind-rrule"),
                    "description": rrule_help(),
                },
            ),
            (
                _("Solar event"),
                {
                    "fields": ("solar_event", ("solar_latitude", "solar_longitude")),
                    "classes": ("beatx-kind", "beatx-kind-solar"),
                    "description": solar_help(),
                },
            ),
            (
                _("Timezone and active window"),
                {"fields": ("timezone", "start_date", "end_date"), "classes": ("beatx-window",)},
            ),
            (
                _("Policy"),
                {
                    "fields": (
                        "misfire_grace_time",
                        "coalesce",
                        "max_instances",
                        "catchup",
                        ("catchup_window", "catchup_limit"),
                        "jitter",
                        "max_runs",
                        ("overlap", "pause_after_failures"),
                        "exclude",
                        "on_excluded",
                    ),
                    "description": _(
                        "Empty misfire grace time: a late fire always runs. A new job starts with "
                        "the configured job defaults. Catch-up decides what the fires missed while "
                        "no beat ran do (empty: as coalesce says)."
                    ),
                },
            ),
            (
                _("Alerts"),
                {
                    "fields": (("expect_every", "max_lateness"), ("max_runtime", "alert_after_failures")),
                    "description": _(
                        "The leading beat raises an alert (an event, a metric, the webhook of "
                        "beatx_alert_webhook) when a rule's condition starts, and resolves it when it "
                        "ends. Empty: no alert."
                    ),
                },
            ),
            (
                _("Routing"),
                {
                    "fields": (
                        "queue",
                        "routing_key",
                        "exchange",
                        "priority",
                        "expires",
                        "headers",
                        "extra_options",
                    ),
                    "classes": ("collapse",),
                },
            ),
        ]
        if obj is not None:
            fieldsets.append((_("State"), {"fields": self.state_fields, "classes": ("collapse",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> Any:
        if obj is None:
            return ()
        return ("id", *self.state_fields)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Job | None = None,
    ) -> HttpResponse:
        form = context["adminform"].form
        saved = self._saved(obj)
        context["beatx_preview"] = self._preview(form, saved)
        context["beatx_preview_url"] = reverse(
            f"{self.admin_site.name}:django_beatx_job_preview", current_app=self.admin_site.name
        )
        context["beatx_object_id"] = obj.pk if obj is not None else ""
        context["beatx_can_preview"] = (
            self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)
        )
        context["beatx_default_zone"] = conf.timezone_name()
        if saved is not None:
            context["beatx_runs"] = self._run_history(saved)
            context["beatx_changes"] = self._changes(saved)
            context["beatx_problem"] = row_problem(saved)
            if self.has_change_permission(request, obj):
                context["beatx_object_actions"] = self._object_actions(saved)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _run_history(self, saved: Job) -> list[dict[str, Any]]:
        """The job's latest runs, from the run ledger (``job_runs``, as ``beatx jobs runs``
        reads it), formatted in the job's timezone."""
        zone = job_zone(saved.timezone)
        try:
            # The store's API under JobManager.job_runs, without its check that the job reads
            # (the page of a broken row shows its runs too).
            runs = conf.get_store().job_runs(saved.pk, limit=conf.run_history_limit())
        except BeatxError:
            return []
        labels = dict(JobRun.Outcome.choices)
        rows = []
        for run in runs:
            # The ledger's "sent" is stored (and coloured) as "dispatched".
            stored = JobRun.Outcome.DISPATCHED.value if run.outcome.value == "sent" else run.outcome.value
            rows.append(
                {
                    "scheduled": format_time(run.scheduled_at, zone),
                    "sent": format_time(run.sent_at, zone),
                    "lateness": "-" if run.lateness is None else format_duration(run.lateness),
                    "started": format_time(run.started_at, zone),
                    "finished": format_time(run.finished_at, zone),
                    "duration": format_duration(run.duration),
                    "outcome": run.outcome.value,
                    "outcome_label": labels.get(stored, stored),
                    "colour": OUTCOME_COLOURS.get(stored, "#616161"),
                    "retries": run.retries,
                    "worker": run.worker or "",
                    "detail": run.error or run.reason or "",
                    "task_id": run.task_id,
                }
            )
        return rows

    def _changes(self, saved: Job) -> list[dict[str, Any]]:
        """The job's audit log (``JobManager.job_history``), in the job's timezone."""
        zone = job_zone(saved.timezone)
        try:
            changes = conf.get_manager().job_history(saved.pk, limit=conf.run_history_limit())
        except BeatxError:
            return []
        return [
            {
                "at": format_time(change.at, zone),
                "action": change.action,
                "source": change.source,
                "actor": change.actor or "",
                "changes": [(name, before, after) for name, (before, after) in change.changes.items()],
            }
            for change in changes
        ]

    def _saved(self, obj: Job | None) -> Job | None:
        """The row as stored (``obj`` may carry a bound form's unsaved values)."""
        if obj is None or obj._state.adding:
            return None
        return Job.objects.using(conf.setting("DATABASE")).filter(pk=obj.pk).first()

    def _object_actions(self, saved: Job) -> dict[str, Any]:
        name = self.admin_site.name
        args = [saved.pk]
        status = saved.status
        return {
            "pause_url": reverse(f"{name}:django_beatx_job_pause", args=args, current_app=name)
            if status in (JobStatus.ACTIVE.value, JobStatus.FAILED.value)
            else "",
            "resume_url": reverse(f"{name}:django_beatx_job_resume", args=args, current_app=name)
            if status == JobStatus.PAUSED.value
            else "",
            "run_now_url": reverse(f"{name}:django_beatx_job_run_now", args=args, current_app=name),
        }

    def _preview(self, form: JobForm, saved: Job | None) -> dict[str, Any] | None:
        preview: dict[str, Any]
        if form.is_bound:
            errors = [str(e) for name in TRIGGER_FIELDS for e in form.errors.get(name, [])]
            if errors:
                preview = {"error": " ".join(errors)}
            else:
                # The submitted values, as the form put them on its instance.
                preview = fire_time_preview(form.instance, saved=saved)
            preview["task_error"] = " ".join(str(e) for e in form.errors.get("task", []))
            preview["task_warning"] = form.task_warning or ""
            preview["live"] = True
            return preview
        if saved is None:
            return {
                "error": "",
                "empty": "",
                "times": [],
                "description": _("Fill in the trigger to see the next fire times."),
            }
        preview = fire_time_preview(saved)
        try:
            preview["task_warning"] = task_warning(saved.task) or ""
        except Exception:  # a suggestion only: never in the way of the page
            preview["task_warning"] = ""
        return preview

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The next fire times of the unsaved form (POSTed as it stands), and how saving
        would move the next run: staff only (``admin_view``), CSRF-checked, and only for
        someone who may add (a new job) or change (this job)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        object_id = str(request.POST.get("_beatx_object_id") or "")
        obj = self.get_object(request, object_id) if object_id else None
        if object_id and obj is None:
            return JsonResponse({"error": _g("This job no longer exists.")}, status=404)
        allowed = (
            self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        form_class = self.get_form(request, obj, change=obj is not None)
        form: Any = form_class(request.POST, request.FILES, instance=obj)
        form.is_valid()
        preview = self._preview(form, self._saved(obj)) or {}
        html = render_to_string("admin/django_beatx/job/preview.html", {"beatx_preview": preview}, request)
        data = {
            key: str(value) if not isinstance(value, list | bool) else value for key, value in preview.items()
        }
        return JsonResponse({"html": html, **data})

    # -- saving: through the manager -----------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Job, form: JobForm, change: bool) -> None:
        manager = conf.get_manager()
        manager.source, manager.actor = "admin", _actor(request)
        database = conf.setting("DATABASE")
        stored = Job.objects.using(database).filter(pk=obj.pk).first() if change else None
        problem = row_problem(stored) if stored is not None else None
        try:
            if stored is not None and problem:
                self._repair(manager, obj, stored)
            else:
                manager.ensure_job(
                    obj.task,
                    obj.build_trigger(),
                    id=obj.id,
                    name=obj.name,
                    args=tuple(obj.args),
                    kwargs=dict(obj.kwargs),
                    options=obj.options,
                    max_instances=obj.max_instances,
                    misfire_grace_time=obj.misfire_grace_time,
                    coalesce=obj.coalesce,
                    catchup=obj.catchup or None,
                    catchup_window=obj.catchup_window,
                    catchup_limit=obj.catchup_limit,
                    jitter=obj.jitter,
                    max_runs=obj.max_runs,
                    overlap=obj.overlap or "skip",
                    pause_after_failures=obj.pause_after_failures,
                    exclude=tuple(obj.exclude or ()),
                    on_excluded=obj.on_excluded,
                    expect_every=obj.expect_every,
                    max_lateness=obj.max_lateness,
                    max_runtime=obj.max_runtime,
                    alert_after_failures=obj.alert_after_failures,
                )
        except (BeatxError, ValueError) as exc:
            # clean() checks the same rules; this is the race of a definition changing between.
            self.message_user(request, _("Nothing was saved: %(error)s") % {"error": exc}, messages.ERROR)
            request._beatx_save_failed = True  # type: ignore[attr-defined]
            return
        if stored is None or stored.description != obj.description:
            # A note for people: no schedule changes, the beat need not wake up.
            Job.objects.using(database).filter(pk=obj.pk).update(description=obj.description)
        obj._state.adding = False
        obj._state.db = database
        if problem:
            self.message_user(
                request,
                _("The job was repaired: the scheduler can read it again (it was: %(problem)s).")
                % {"problem": problem},
                messages.SUCCESS,
            )
        if form.task_warning:
            self.message_user(request, form.task_warning, messages.WARNING)

    @staticmethod
    def _repair(manager: JobManager, obj: Job, stored: Job) -> None:
        """Write a valid definition over a row the scheduler cannot read (``ensure_job`` reads
        the stored job first, and cannot): its run history and counters are kept, its next run
        is computed from now, and a paused or ended job stays so."""
        try:
            status = JobStatus(stored.status)
        except ValueError:
            status = JobStatus.ACTIVE
        job = manager.build_job(
            obj.task,
            obj.build_trigger(),
            id=obj.id,
            name=obj.name,
            args=tuple(obj.args),
            kwargs=dict(obj.kwargs),
            options=obj.options,
            max_instances=obj.max_instances,
            misfire_grace_time=obj.misfire_grace_time,
            coalesce=obj.coalesce,
            catchup=obj.catchup or None,
            catchup_window=obj.catchup_window,
            catchup_limit=obj.catchup_limit,
            jitter=obj.jitter,
            max_runs=obj.max_runs,
            overlap=obj.overlap or "skip",
            pause_after_failures=obj.pause_after_failures,
            exclude=tuple(obj.exclude or ()),
            on_excluded=obj.on_excluded,
            expect_every=obj.expect_every,
            max_lateness=obj.max_lateness,
            max_runtime=obj.max_runtime,
            alert_after_failures=obj.alert_after_failures,
        )
        job.status = status
        if status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            job.trigger = job.trigger.resolve(now=manager.clock.now(), timezone=manager.timezone)
            job.next_run_time = None
        else:
            manager.schedule(job, now=manager.clock.now())
            if job.next_run_time is None and status.schedulable:
                job.status = JobStatus.COMPLETED
        manager.store.update_job(job, expected_revision=stored.revision, reschedule=True)

    def _save_failed(self, request: HttpRequest) -> bool:
        return bool(getattr(request, "_beatx_save_failed", False))

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self._save_failed(request):
            return None
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self._save_failed(request):
            return None
        return super().log_change(request, obj, message)

    def response_add(
        self, request: HttpRequest, obj: Job, post_url_continue: str | None = None
    ) -> HttpResponse:
        if self._save_failed(request):
            # The error is the message; no "was added successfully" beside it.
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Job) -> HttpResponse:
        if self._save_failed(request):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The only inline (run history) is read-only: nothing to save, nothing changed.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        manager = conf.get_manager()
        manager.source = "admin"
        manager.remove_job(obj.pk, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        rows = list(queryset.only("pk", "status"))
        conf.get_store().remove_jobs(row.pk for row in rows)
        self._audit(request, rows, "removed", lambda row: {"status": [row.status, None]})

    # -- the audit log (beatx's own: JobManager.job_history, ``beatx jobs history``) -----------

    def _audit(
        self,
        request: HttpRequest,
        rows: Sequence[Job],
        action: str,
        changes: Callable[[Job], dict[str, list[Any]]],
    ) -> None:
        """Record a bulk action's change of each of ``rows`` in the jobs' audit log (a failure
        to record is a warning: the change stands)."""
        store, actor, at = conf.get_store(), _actor(request), datetime.now(UTC)
        for row in rows:
            entry = JobChange(
                job_id=row.pk, at=at, action=action, source="admin", actor=actor, changes=changes(row)
            )
            try:
                store.record_change(entry)
            except BeatxError as exc:
                self.message_user(
                    request, _g("Not recorded in the audit log: %(error)s") % {"error": exc}, messages.WARNING
                )
                return

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """What a delete removes, with each job's runs counted instead of listed (a job
        with 100,000 runs made a page of 100,000 lines)."""
        jobs = list(objs)
        database = conf.setting("DATABASE")
        counts: dict[str, int] = defaultdict(int)
        ids = [job.pk for job in jobs]
        for start in range(0, len(ids), _READ_BATCH):
            batch = ids[start : start + _READ_BATCH]
            per_job = JobRun.objects.using(database).filter(job_id__in=batch).values("job_id")
            for job_id, n in per_job.annotate(n=Count("id")).values_list("job_id", "n"):
                counts[job_id] += n
        deleted: list[Any] = []
        for job in jobs:
            url = reverse(
                f"{self.admin_site.name}:django_beatx_job_change",
                args=[job.pk],
                current_app=self.admin_site.name,
            )
            deleted.append(format_html('{}: <a href="{}">{}</a>', _("Job"), url, job))
            runs = counts.get(job.pk, 0)
            deleted.append([ngettext("%(count)d run", "%(count)d runs", runs) % {"count": runs}])
        total_runs = sum(counts.values())
        model_count = {str(Job._meta.verbose_name_plural): len(jobs)}
        if total_runs:
            model_count[str(JobRun._meta.verbose_name_plural)] = total_runs
        perms_needed: set[str] = set()
        if not self.has_delete_permission(request):
            perms_needed.add(str(Job._meta.verbose_name))
        return deleted, model_count, perms_needed, []

    # -- the record: Django's LogEntry, shown in each job's History -----------------------------

    def _log(self, request: HttpRequest, rows: Sequence[Job], message: str, flag: int = CHANGE) -> None:
        if rows and request.user.is_authenticated:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=list(rows),
                action_flag=flag,
                change_message=message,
                single_object=False,
            )

    def _readable(self, request: HttpRequest, queryset: QuerySet[Job]) -> list[Job]:
        """The selection's rows the scheduler can read; the others are named in a message and
        left out (an action over an unreadable row answered HTTP 500)."""
        rows = _read_rows(queryset.values_list("pk", flat=True))
        readable: list[Job] = []
        broken: list[tuple[str, str]] = []
        for row in rows:
            problem = row_problem(row)
            if problem:
                broken.append((row.pk, problem))
            else:
                readable.append(row)
        if broken:
            named = "; ".join(f"{job_id}: {problem}" for job_id, problem in broken[:_NAMED])
            more = len(broken) - _NAMED
            self.message_user(
                request,
                ngettext(
                    "%(count)d broken job was left out: the scheduler cannot read it (%(jobs)s%(more)s). "
                    "Open it and save a corrected form to repair it.",
                    "%(count)d broken jobs were left out: the scheduler cannot read them (%(jobs)s%(more)s). "
                    "Open each and save a corrected form to repair it.",
                    len(broken),
                )
                % {"count": len(broken), "jobs": named, "more": f"; {more} more" if more > 0 else ""},
                messages.WARNING,
            )
        return readable

    # -- actions: set-based, one transaction and one wake-up of the beat for the selection ----

    @admin.action(description=_("Pause selected jobs"), permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        rows = self._readable(request, queryset)
        note = str(request.POST.get("pause_note") or "").strip()[:500]
        pausable = [row for row in rows if row.status in (JobStatus.ACTIVE.value, JobStatus.FAILED.value)]
        done = conf.get_store().pause_jobs(row.pk for row in rows) if rows else 0
        database = conf.setting("DATABASE")
        paused_ids = (
            set(
                Job.objects.using(database)
                .filter(pk__in=[row.pk for row in pausable], status=JobStatus.PAUSED.value)
                .values_list("pk", flat=True)
            )
            if pausable
            else set()
        )
        noted = [row for row in rows if row.pk in paused_ids or row.status == JobStatus.PAUSED.value]
        if paused_ids:
            # Why, who and when, shown beside the status everywhere (jobs(), the CLI); for
            # people: no schedule changes, the beat need not wake up.
            Job.objects.using(database).filter(pk__in=paused_ids).update(
                pause_note=note, paused_by=request.user.get_username()[:150], paused_at=datetime.now(UTC)
            )
        already = [row.pk for row in noted if row.pk not in paused_ids]
        if note and already:
            Job.objects.using(database).filter(pk__in=already).update(pause_note=note)
        suffix = _g(" Note: %(note)s") % {"note": note} if note else ""
        self._log(request, [row for row in pausable if row.pk in paused_ids], _g("Paused.") + suffix)
        self._audit(
            request,
            [row for row in pausable if row.pk in paused_ids],
            "paused",
            lambda row: (
                {"status": [row.status, JobStatus.PAUSED.value]}
                | ({"pause_note": [None, note]} if note else {})
            ),
        )
        if note:
            self._log(
                request,
                [row for row in noted if row.pk not in paused_ids],
                _g("Pause note set.") + suffix,
            )
        self.message_user(
            request,
            ngettext("%(count)d job was paused.", "%(count)d jobs were paused.", done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.action(description=_("Resume selected jobs"), permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        rows = self._readable(request, queryset)
        paused = [row for row in rows if row.status == JobStatus.PAUSED.value]
        done = conf.get_store().resume_jobs(row.pk for row in rows) if rows else 0
        database = conf.setting("DATABASE")
        if paused:
            still = set(
                Job.objects.using(database)
                .filter(pk__in=[row.pk for row in paused], status=JobStatus.PAUSED.value)
                .values_list("pk", flat=True)
            )
            resumed = [row for row in paused if row.pk not in still]
            with_note = [row.pk for row in resumed if row.pause_note or row.paused_by or row.paused_at]
            if with_note:
                Job.objects.using(database).filter(pk__in=with_note).update(
                    pause_note="", paused_by="", paused_at=None
                )
            self._log(request, resumed, _g("Resumed."))
            self._audit(
                request, resumed, "resumed", lambda row: {"status": [JobStatus.PAUSED.value, "active"]}
            )
        self.message_user(
            request,
            ngettext("%(count)d job was resumed.", "%(count)d jobs were resumed.", done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )

    def _celery_dispatcher(self, request: HttpRequest, refusal: object) -> Any:
        """A ``CeleryDispatcher`` on the project's app, or None after telling the user why
        there is none (``refusal``: what cannot be done)."""
        try:
            from beatx.dispatch.celery import CeleryDispatcher
        except ImportError as exc:
            self.message_user(
                request,
                _("%(refusal)s: Celery is not available (%(error)s).") % {"refusal": refusal, "error": exc},
                messages.ERROR,
            )
            return None
        app = conf.celery_app()
        if app is None or not app.conf.broker_url:
            self.message_user(
                request,
                _("%(refusal)s: no Celery broker is configured (set CELERY_BROKER_URL).")
                % {"refusal": refusal},
                messages.ERROR,
            )
            return None
        return CeleryDispatcher(app)

    @admin.action(description=_("Run selected jobs now"), permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        dispatcher = self._celery_dispatcher(request, _("Cannot run jobs now"))
        if dispatcher is None:
            return
        rows = self._readable(request, queryset)
        manager = conf.get_manager(dispatcher=dispatcher)
        # Each job through JobManager.run_job_now: one fire outside its schedule (its next
        # run is unchanged), under a claim as a beat's fire, recorded in its run ledger.
        sent = 0
        try:
            for row in rows:
                try:
                    task_id = manager.run_job_now(row.pk)
                except BeatxError as exc:
                    self.message_user(
                        request,
                        _("Could not send %(job)s: %(error)s") % {"job": row.pk, "error": exc},
                        messages.ERROR,
                    )
                    continue
                sent += 1
                self._log(
                    request,
                    [row],
                    _g("Run now: sent to the workers (task id %(task_id)s).") % {"task_id": task_id},
                )
        finally:
            dispatcher.close()
        if sent:
            self.message_user(
                request,
                ngettext(
                    "%(count)d job was sent to the workers.",
                    "%(count)d jobs were sent to the workers.",
                    sent,
                )
                % {"count": sent},
                messages.SUCCESS,
            )

    @admin.action(description=_("Backfill selected jobs (from/to in the bar)"), permissions=["change"])
    def backfill_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Send each selected job's fires from "Backfill from" to "to" (the scheduler's
        timezone unless an offset is given), as ``JobManager.backfill``: each with its
        nominal time's task id, a range sent before not sent again."""
        try:
            start, end = (
                datetime.fromisoformat(str(request.POST.get(name) or "").strip())
                for name in ("backfill_from", "backfill_to")
            )
        except ValueError:
            self.message_user(
                request,
                _(
                    'Give "Backfill from" and "to" as dates and times, e.g. 2026-03-01 00:00 and 2026-03-02 00:00.'
                ),
                messages.ERROR,
            )
            return
        dispatcher = self._celery_dispatcher(request, _("Cannot backfill"))
        if dispatcher is None:
            return
        rows = self._readable(request, queryset)
        store = conf.get_store()
        manager = conf.get_manager(dispatcher=dispatcher)
        total = 0
        try:
            for row in rows:
                try:
                    result = manager.backfill(row.pk, start, end)
                except (BeatxError, ValueError) as exc:
                    self.message_user(
                        request,
                        _("Could not backfill %(job)s: %(error)s") % {"job": row.pk, "error": exc},
                        messages.ERROR,
                    )
                    continue
                if result.sent:
                    store.record_dispatches(
                        zip([row.pk] * len(result.sent), result.task_ids, result.sent, strict=True)
                    )
                total += len(result.sent)
                self._log(
                    request,
                    [row],
                    _g("Backfill %(start)s to %(end)s: %(sent)d fire(s) sent, %(already)d sent before.")
                    % {
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                        "sent": len(result.sent),
                        "already": result.already_sent,
                    },
                )
        finally:
            dispatcher.close()
        self.message_user(
            request,
            ngettext(
                "%(count)d fire was sent to the workers.", "%(count)d fires were sent to the workers.", total
            )
            % {"count": total},
            messages.SUCCESS if total else messages.WARNING,
        )

    @admin.action(description=_("Duplicate selected jobs (paused)"), permissions=["add"])
    def duplicate_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        rows = {row.pk: row for row in self._readable(request, queryset)}
        manager = conf.get_manager()
        store = conf.get_store()
        jobs = store.get_jobs_by_id(rows)
        copy_ids = {job_id: f"{job_id}-copy" for job_id in jobs}
        taken = store.existing_ids(copy_ids.values())
        now = manager.clock.now()
        copies: list[BeatxJob] = []
        for job_id, job in sorted(jobs.items()):
            new_id = copy_ids[job_id]
            if new_id in taken:
                new_id = f"{job_id}-copy-{uuid.uuid4().hex[:6]}"
            copy = manager.build_job(
                job.func,
                job.trigger,
                id=new_id,
                name=f"{job.name} (copy)",
                args=job.args,
                kwargs=job.kwargs,
                options=job.options,
                max_instances=job.max_instances,
                misfire_grace_time=job.misfire_grace_time,
                coalesce=job.coalesce,
                catchup=job.catchup,
                catchup_window=job.catchup_window,
                catchup_limit=job.catchup_limit,
                jitter=job.jitter,
                max_runs=job.max_runs,
                overlap=job.overlap,
                pause_after_failures=job.pause_after_failures,
                exclude=job.exclude,
                on_excluded=job.on_excluded,
                expect_every=job.expect_every,
                max_lateness=job.max_lateness,
                max_runtime=job.max_runtime,
                alert_after_failures=job.alert_after_failures,
                paused=True,
            )
            manager.schedule(copy, now=now)
            copies.append(copy)
            copy_ids[job_id] = new_id
        done = store.add_new_jobs(copies)
        database = conf.setting("DATABASE")
        created = {
            row.pk: row
            for row in _read_rows(copy.id for copy in copies)
            # Only the copies this action wrote (an id taken meanwhile was left out).
            if row.revision == 1
        }
        for job_id in sorted(jobs):
            original, new_id = rows[job_id], copy_ids[job_id]
            if new_id not in created:
                continue
            if original.description:
                Job.objects.using(database).filter(pk=new_id).update(description=original.description)
            self._log(
                request,
                [created[new_id]],
                _g("Added as a paused copy of %(job)s.") % {"job": job_id},
                ADDITION,
            )
            self._log(request, [original], _g("Duplicated as %(copy)s (paused).") % {"copy": new_id})
        self.message_user(
            request,
            ngettext(
                "%(count)d job was duplicated; the copy is paused until you resume it.",
                "%(count)d jobs were duplicated; the copies are paused until you resume them.",
                done,
            )
            % {"count": done},
            messages.SUCCESS,
        )

    # -- the job page's buttons: the same actions on one job ----------------------------------

    def _object_action(self, request: HttpRequest, object_id: str, action: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, object_id)
        changelist = reverse(
            f"{self.admin_site.name}:django_beatx_job_changelist", current_app=self.admin_site.name
        )
        if obj is None:
            self.message_user(request, _("There is no job %(id)s.") % {"id": object_id}, messages.WARNING)
            return HttpResponseRedirect(changelist)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        action(request, self.get_queryset(request).filter(pk=obj.pk))
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:django_beatx_job_change",
                args=[obj.pk],
                current_app=self.admin_site.name,
            )
        )

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._object_action(request, object_id, self.pause_jobs)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._object_action(request, object_id, self.resume_jobs)

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._object_action(request, object_id, self.run_jobs_now)
