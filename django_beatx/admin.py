"""The jobs admin.

Every change goes through the Django store (never a bare ``QuerySet.update``): a saved form
through :class:`beatx.manager.JobManager`, the bulk actions (pause, resume, delete,
duplicate, run now) through the store's set-based writes, which apply the same rules to the
whole selection at once (a few statements, one wake-up of the beat), so next run times are
computed by beatx and a running beat sees each change within a fraction of a second.

Everything is read from and written to the database ``BEATX["DATABASE"]`` names.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from beatx.errors import BeatxError, InvalidJobError, JobLookupError
from beatx.jobs import Fire, JobStatus
from beatx.jobs import Job as BeatxJob
from beatx.triggers.base import get_timezone
from django_beatx import conf
from django_beatx.forms import JobForm
from django_beatx.models import STATUS_CHOICES, Job, JobRun

__all__ = ["JobAdmin", "JobRunInline", "fire_time_preview"]

STATUS_COLOURS = {
    JobStatus.ACTIVE.value: "#2e7d32",
    JobStatus.PAUSED.value: "#8a6d00",
    JobStatus.COMPLETED.value: "#607d8b",
    JobStatus.FAILED.value: "#c62828",
    JobStatus.CANCELLED.value: "#616161",
}
TRIGGER_FIELDS = (
    "trigger_kind",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "timezone",
    "start_date",
    "end_date",
)
#: A beat that has not ticked for this long is shown in red.
STALE_AFTER = timedelta(seconds=90)


def _format_time(value: datetime, zone: Any) -> str:
    local = value.astimezone(zone)
    return local.strftime("%a %Y-%m-%d %H:%M:%S %Z (UTC%z)")


def fire_time_preview(row: Job, *, count: int = 5, now: datetime | None = None) -> dict[str, Any]:
    """The next ``count`` fire times of a job row, formatted in the job's timezone, or the
    error that keeps its trigger from being built."""
    now = now or datetime.now(UTC)
    zone_name = row.timezone or conf.timezone_name()
    try:
        zone = get_timezone(zone_name)
        trigger = row.build_trigger().resolve(now=now, timezone=zone)
    except ValueError as exc:
        return {"error": str(exc), "timezone": zone_name}
    times: list[datetime] = []
    schedulable = row.status in (JobStatus.ACTIVE.value, JobStatus.FAILED.value)
    if not row._state.adding and schedulable and row.next_run_time is not None:
        current: datetime | None = row.next_run_time
    else:
        current = trigger.first_fire_time(now)
    while current is not None and len(times) < count:
        times.append(current)
        current = trigger.next_fire_time(current)
    return {
        "timezone": zone_name,
        "description": trigger.describe(),
        "times": [_format_time(t, zone) for t in times],
        "empty": _("This trigger does not fire again."),
    }


class RecentRunsFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def get_queryset(self) -> QuerySet[JobRun]:
        if not hasattr(self, "_recent"):
            runs = super().get_queryset().using(conf.setting("DATABASE"))
            self._recent = runs.order_by("-scheduled_at", "-id")[: conf.run_history_limit()]
        return self._recent


class JobRunInline(admin.TabularInline):  # type: ignore[type-arg]
    """The latest runs of a job, read-only."""

    model = JobRun
    formset = RecentRunsFormSet
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("Latest runs")
    fields = (
        "scheduled_at",
        "dispatched_at",
        "outcome",
        "started_at",
        "finished_at",
        "duration",
        "error",
        "task_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AdminJobForm(JobForm):
    def validate_unique(self) -> None:
        """A new job's id must be free in the store's database (Django's own check reads
        the ``default`` database, whatever ``BEATX["DATABASE"]`` says)."""
        if not self.instance._state.adding:
            return  # the id is read-only on the change page; no other field is unique
        job_id = self.cleaned_data.get("id")
        if job_id and Job.objects.using(conf.setting("DATABASE")).filter(pk=job_id).exists():
            self.add_error("id", self.instance.unique_error_message(Job, ("id",)))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AdminJobForm
    inlines = (JobRunInline,)
    list_display = (
        "display_name",
        "trigger_description",
        "status_badge",
        "next_run_time",
        "last_run_time",
        "total_run_count",
        "short_last_error",
    )
    list_filter = ("status", "trigger_kind", "queue")
    search_fields = ("name", "id", "task")
    ordering = ("next_run_time", "id")
    actions = ("pause_jobs", "resume_jobs", "run_jobs_now", "duplicate_jobs")
    save_on_top = True
    state_fields = (
        "status",
        "next_run_time",
        "last_run_time",
        "total_run_count",
        "misfire_count",
        "skip_count",
        "last_error",
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
        delete pages and the actions' selections."""
        return super().get_queryset(request).using(conf.setting("DATABASE"))

    # -- list ----------------------------------------------------------------------------------

    @admin.display(description=_("name"), ordering="name")
    def display_name(self, obj: Job) -> str:
        if obj.name and obj.name != obj.id:
            return format_html("{}<br><small>{} · {}</small>", obj.name, obj.id, obj.task)
        return format_html("{}<br><small>{}</small>", obj.id, obj.task)

    @admin.display(description=_("trigger"), ordering="trigger_kind")
    def trigger_description(self, obj: Job) -> str:
        return obj.describe_trigger()

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Job) -> str:
        return format_html(
            '<span class="beatx-badge beatx-status-{}" style="background:{}">{}</span>',
            obj.status,
            STATUS_COLOURS.get(obj.status, "#616161"),
            dict(STATUS_CHOICES).get(obj.status, obj.status),
        )

    @admin.display(description=_("last error"))
    def short_last_error(self, obj: Job) -> str:
        return Truncator(obj.last_error).chars(60) if obj.last_error else ""

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
            (None, {"fields": ("id", "name", "task", "args", "kwargs")}),
            (_("When"), {"fields": ("trigger_kind",)}),
            (_("Cron"), {"fields": ("cron_expression",), "classes": ("beatx-kind", "beatx-kind-cron")}),
            (
                _("Interval"),
                {
                    "fields": ("interval_seconds", "start_now"),
                    "classes": ("beatx-kind", "beatx-kind-interval"),
                },
            ),
            (_("One-shot"), {"fields": ("run_at",), "classes": ("beatx-kind", "beatx-kind-date")}),
            (_("Timezone and active window"), {"fields": ("timezone", "start_date", "end_date")}),
            (
                _("Policy"),
                {
                    "fields": ("misfire_grace_time", "coalesce", "max_instances"),
                    "description": _("Empty misfire grace time: a late fire always runs."),
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
        context["beatx_preview"] = self._preview(context["adminform"].form, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _preview(self, form: JobForm, obj: Job | None) -> dict[str, Any] | None:
        if form.is_bound:
            errors = [str(e) for name in TRIGGER_FIELDS for e in form.errors.get(name, [])]
            if errors:
                return {"error": " ".join(errors)}
            # The submitted values, as the form put them on its instance.
            return fire_time_preview(form.instance)
        if obj is None:
            return {
                "error": "",
                "empty": "",
                "times": [],
                "description": _("Save to see the next fire times."),
            }
        return fire_time_preview(obj)

    # -- saving: through the manager -----------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Job, form: JobForm, change: bool) -> None:
        manager = conf.get_manager()
        try:
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
            )
        except (InvalidJobError, ValueError) as exc:
            # clean() checks the same rules; this is the race of a definition changing between.
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj._state.adding = False
        obj._state.db = conf.setting("DATABASE")
        if form.task_warning:
            self.message_user(request, form.task_warning, messages.WARNING)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The only inline (run history) is read-only: nothing to save, nothing changed.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        conf.get_manager().remove_job(obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        conf.get_store().remove_jobs(queryset.values_list("pk", flat=True))

    # -- actions: set-based, one transaction and one wake-up of the beat for the selection ----

    @admin.action(description=_("Pause selected jobs"), permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = conf.get_store().pause_jobs(queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("%(count)d job was paused.", "%(count)d jobs were paused.", done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.action(description=_("Resume selected jobs"), permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = conf.get_store().resume_jobs(queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("%(count)d job was resumed.", "%(count)d jobs were resumed.", done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.action(description=_("Run selected jobs now"), permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        try:
            from celery import current_app

            from beatx.dispatch.celery import CeleryDispatcher

            app = current_app._get_current_object()
        except ImportError as exc:
            self.message_user(
                request,
                _("Cannot run jobs now: Celery is not available (%(error)s).") % {"error": exc},
                messages.ERROR,
            )
            return
        if not app.conf.broker_url:
            self.message_user(
                request,
                _("Cannot run jobs now: no Celery broker is configured (set CELERY_BROKER_URL)."),
                messages.ERROR,
            )
            return
        store = conf.get_store()
        job_ids = list(queryset.values_list("pk", flat=True))
        jobs = store.get_jobs_by_id(job_ids)
        now = datetime.now(UTC)
        # One fire per job, outside its schedule (its next run is unchanged), as
        # JobManager.run_job_now sends it; the whole selection in one batch.
        fires = [Fire(jobs[job_id], now) for job_id in job_ids if job_id in jobs]
        failures: dict[str, BaseException] = {
            job_id: JobLookupError(job_id) for job_id in job_ids if job_id not in jobs
        }
        dispatcher = CeleryDispatcher(app)
        try:
            try:
                results: list[BaseException | None] = list(dispatcher.dispatch(fires))
            except Exception as exc:
                results = [exc] * len(fires)
        finally:
            dispatcher.close()
        sent = [
            (fire.job_id, fire.task_id, now)
            for fire, error in zip(fires, results, strict=True)
            if error is None
        ]
        failures.update(
            {fire.job_id: error for fire, error in zip(fires, results, strict=True) if error is not None}
        )
        for job_id in job_ids:
            if job_id in failures:
                self.message_user(
                    request,
                    _("Could not send %(job)s: %(error)s") % {"job": job_id, "error": failures[job_id]},
                    messages.ERROR,
                )
        if sent:
            store.record_dispatches(sent)
            self.message_user(
                request,
                ngettext(
                    "%(count)d job was sent to the workers.",
                    "%(count)d jobs were sent to the workers.",
                    len(sent),
                )
                % {"count": len(sent)},
                messages.SUCCESS,
            )

    @admin.action(description=_("Duplicate selected jobs (paused)"), permissions=["add"])
    def duplicate_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        manager = conf.get_manager()
        store = conf.get_store()
        jobs = store.get_jobs_by_id(queryset.values_list("pk", flat=True))
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
                paused=True,
            )
            manager.schedule(copy, now=now)
            copies.append(copy)
        done = store.add_new_jobs(copies)
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
