"""The admin's job form: one set of fields per trigger kind, validated by beatx itself."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from django import forms
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext_lazy as _

from beatx.errors import InvalidTriggerError
from beatx.triggers.base import get_timezone
from django_beatx import conf
from django_beatx.models import Job, TriggerKind

__all__ = ["DatalistInput", "JobForm", "registered_task_names"]

#: ``billing.tasks.invoice`` (a Celery task name) or ``billing.tasks:invoice`` (a function).
DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$|^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_][\w.]*$")

#: Date fields typed in the job's own timezone (not the admin user's).
LOCAL_DATE_FIELDS = ("run_at", "start_date", "end_date")


def registered_task_names() -> list[str]:
    """The tasks the current Celery app registers (without Celery's own ``celery.*``), or ``[]``
    when Celery is not installed or not configured."""
    try:
        from celery import current_app

        names = list(current_app.tasks.keys())
    except Exception:
        return []
    return sorted(name for name in names if not name.startswith("celery."))


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones() | {"UTC"}))


class DatalistInput(forms.TextInput):
    """A text input with suggestions (an HTML ``<datalist>``): free text stays possible."""

    template_name = "django_beatx/widgets/datalist.html"

    def __init__(self, choices: Any = (), attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = choices

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        list_id = f"{context['widget']['attrs'].get('id') or name}_list"
        context["widget"]["attrs"]["list"] = list_id
        context["widget"]["attrs"].setdefault("autocomplete", "off")
        context["widget"]["list_id"] = list_id
        context["widget"]["choices"] = list(self.choices() if callable(self.choices) else self.choices)
        return context


class JobForm(forms.ModelForm):  # type: ignore[type-arg]
    """Validates the task name, the JSON arguments and the trigger of the chosen kind.

    Errors are attached to the field that is wrong. ``run_at``, ``start_date`` and
    ``end_date`` are read and shown in the job's timezone.
    """

    class Meta:
        model = Job
        fields = (
            "id",
            "name",
            "task",
            "args",
            "kwargs",
            "trigger_kind",
            "cron_expression",
            "interval_seconds",
            "start_now",
            "run_at",
            "timezone",
            "start_date",
            "end_date",
            "queue",
            "routing_key",
            "exchange",
            "priority",
            "expires",
            "headers",
            "extra_options",
            "misfire_grace_time",
            "coalesce",
            "max_instances",
        )
        widgets = {  # noqa: RUF012
            "task": DatalistInput(registered_task_names, attrs={"size": 60}),
            "timezone": DatalistInput(timezone_names, attrs={"size": 30, "placeholder": "Europe/Paris"}),
            "cron_expression": forms.TextInput(attrs={"size": 30, "placeholder": "0 3 * * 1-5"}),
            "args": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "kwargs": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "headers": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "extra_options": forms.Textarea(attrs={"rows": 2, "cols": 60}),
        }

    #: Set by :meth:`clean_task` when the task is not registered but looks like a task name;
    #: the admin shows it as a warning after saving.
    task_warning: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance is not None and not instance._state.adding:
            zone = self._zone(instance.timezone)
            for name in LOCAL_DATE_FIELDS:
                value = getattr(instance, name)
                if value is not None and zone is not None:
                    self.initial[name] = value.astimezone(zone).replace(tzinfo=None)
        for name in LOCAL_DATE_FIELDS:
            if name in self.fields:
                self.fields[name].help_text = f"{self.fields[name].help_text} " + str(
                    _("Entered in the job's timezone.")
                )

    @staticmethod
    def _zone(name: str | None) -> tzinfo | None:
        try:
            return get_timezone(name or conf.timezone_name())
        except InvalidTriggerError:
            return None

    # -- fields --------------------------------------------------------------------------------

    def clean_id(self) -> str:
        value = str(self.cleaned_data.get("id") or "").strip()
        if not value:
            raise forms.ValidationError(_("Give the job an id, e.g. nightly-invoices."))
        return value

    def clean_task(self) -> str:
        value = str(self.cleaned_data.get("task") or "").strip()
        registered = registered_task_names()
        if value in registered:
            return value
        if not DOTTED_NAME.match(value):
            raise forms.ValidationError(
                _(
                    "%(task)s is not a registered Celery task and does not look like one: use a dotted "
                    "name such as billing.tasks.invoice."
                )
                % {"task": value}
            )
        if registered:
            self.task_warning = str(
                _(
                    "The task %(task)s is not registered with the Celery app here; make sure the workers know it."
                )
                % {"task": value}
            )
        return value

    def clean_args(self) -> Any:
        value = self.cleaned_data.get("args")
        if value is None:
            return []
        if not isinstance(value, list):
            raise forms.ValidationError(_('Positional arguments must be a JSON list, e.g. [42, "fr"].'))
        return value

    def clean_kwargs(self) -> Any:
        value = self.cleaned_data.get("kwargs")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(
                _('Keyword arguments must be a JSON object, e.g. {"dry_run": false}.')
            )
        return value

    def clean_headers(self) -> Any:
        value = self.cleaned_data.get("headers")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Headers must be a JSON object, e.g. {"tenant": "acme"}.'))
        return value

    def clean_extra_options(self) -> Any:
        value = self.cleaned_data.get("extra_options")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Options must be a JSON object, e.g. {"countdown": 5}.'))
        return value

    def clean_cron_expression(self) -> str:
        return " ".join(str(self.cleaned_data.get("cron_expression") or "").split())

    def clean_timezone(self) -> str:
        value = str(self.cleaned_data.get("timezone") or "").strip()
        if value:
            try:
                get_timezone(value)
            except InvalidTriggerError:
                raise forms.ValidationError(
                    _("Unknown timezone %(name)s: use an IANA name such as Europe/Paris.") % {"name": value}
                ) from None
        return value

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        # The dates were typed as wall times in the job's timezone; Django read them in the
        # admin user's. Re-read them in the job's zone.
        zone = self._zone(data.get("timezone"))
        current = dj_timezone.get_current_timezone()
        for name in LOCAL_DATE_FIELDS:
            value = data.get(name)
            if isinstance(value, datetime) and zone is not None:
                wall = value.astimezone(current).replace(tzinfo=None)
                data[name] = wall.replace(tzinfo=zone)
        kind = data.get("trigger_kind")
        # Fields of the other kinds are hidden: clear them so they are not stored.
        if kind != TriggerKind.CRON:
            data["cron_expression"] = ""
        if kind != TriggerKind.INTERVAL:
            data["interval_seconds"] = None
        if kind != TriggerKind.DATE:
            data["run_at"] = None
        else:
            data["start_date"] = data["end_date"] = None
        return data
