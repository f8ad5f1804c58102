"""The exclusion calendars admin.

A calendar is checked by beatx itself (each field's error beside it), saved through
:meth:`beatx.manager.JobManager.add_calendar` (so the jobs that name a changed calendar are
rescheduled at once), and removed only when no job names it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from beatx.calendars import ExclusionCalendar as CalendarValue
from beatx.errors import BeatxError, CalendarInUseError
from django_beatx import conf
from django_beatx.calendar_store import calendar_from_row
from django_beatx.models import ExclusionCalendar, Job

__all__ = ["ExclusionCalendarAdmin", "ExclusionCalendarForm"]

_FIELDS = ("dates", "date_ranges", "weekdays", "windows", "holidays")


class ExclusionCalendarForm(forms.ModelForm):  # type: ignore[type-arg]
    """Checks the calendar as beatx reads it; an error names its field."""

    class Meta:
        model = ExclusionCalendar
        fields = ("name", "description", *_FIELDS)
        widgets = {name: forms.Textarea(attrs={"rows": 2, "cols": 60}) for name in _FIELDS}  # noqa: RUF012

    #: The calendar the form describes, once it is valid.
    calendar: CalendarValue | None = None

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if self.errors:
            return data
        values: dict[str, Any] = {name: data.get(name) or [] for name in _FIELDS}
        for name in _FIELDS:
            try:
                CalendarValue(name="check", **{name: values[name]})
            except BeatxError as exc:
                self.add_error(name, str(exc))
            except TypeError:
                self.add_error(name, _("Expected a JSON list."))
        if self.errors:
            return data
        try:
            self.calendar = CalendarValue(
                name=str(data.get("name") or self.instance.name),
                description=str(data.get("description") or ""),
                **values,
            )
        except BeatxError as exc:
            self.add_error("name", str(exc))
        return data


@admin.register(ExclusionCalendar)
class ExclusionCalendarAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ExclusionCalendarForm
    list_display = ("name", "description", "excludes", "used_by")
    search_fields = ("name", "description")
    readonly_fields = ("revision", "updated_at", "used_by")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExclusionCalendar]:
        return super().get_queryset(request).using(conf.setting("DATABASE"))

    def get_readonly_fields(self, request: HttpRequest, obj: ExclusionCalendar | None = None) -> Any:
        # The name is what jobs refer to: it is fixed once the calendar exists.
        return ("name", *self.readonly_fields) if obj is not None else self.readonly_fields

    @admin.display(description=_("excludes"))
    def excludes(self, obj: ExclusionCalendar) -> str:
        try:
            return calendar_from_row(obj).describe().partition(": ")[2]
        except BeatxError as exc:
            return str(exc)

    @admin.display(description=_("used by"))
    def used_by(self, obj: ExclusionCalendar) -> str:
        return ", ".join(_users(obj.name)) or "-"

    def save_model(self, request: HttpRequest, obj: ExclusionCalendar, form: Any, change: bool) -> None:
        calendar = form.calendar
        assert calendar is not None
        try:
            conf.get_manager().add_calendar(calendar, replace_existing=True)
        except BeatxError as exc:
            self.message_user(request, _("Nothing was saved: %(error)s") % {"error": exc}, messages.ERROR)
            request._beatx_save_failed = True  # type: ignore[attr-defined]
            return
        obj._state.adding = False
        obj._state.db = conf.setting("DATABASE")

    def response_add(
        self, request: HttpRequest, obj: ExclusionCalendar, post_url_continue: str | None = None
    ) -> HttpResponse:
        if getattr(request, "_beatx_save_failed", False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: ExclusionCalendar) -> HttpResponse:
        if getattr(request, "_beatx_save_failed", False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: ExclusionCalendar | None = None) -> bool:
        # A calendar jobs name is kept: take it out of their calendars first.
        if obj is not None and _users(obj.name):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: ExclusionCalendar) -> None:
        self._remove(request, [obj.name])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExclusionCalendar]) -> None:
        self._remove(request, [row.name for row in queryset])

    def _remove(self, request: HttpRequest, names: list[str]) -> None:
        manager = conf.get_manager()
        for name in names:
            try:
                manager.remove_calendar(name)
            except CalendarInUseError as exc:
                self.message_user(request, str(exc), messages.ERROR)


def _users(name: str) -> list[str]:
    """The ids of the jobs that name the calendar."""
    # The JSON text contains the name: a first cut in SQL, then the exact test here.
    rows = Job.objects.using(conf.setting("DATABASE")).filter(exclude__icontains=name).only("id", "exclude")
    return sorted(row.id for row in rows if name in (row.exclude or []))
