"""The admin's job form: one set of fields per trigger kind, validated by beatx itself.

Nothing wrong is saved silently: every refusal is an error beside its field, with the reason
(see docs/django-admin.md, "What the form refuses").
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone as dj_timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from beatx.errors import ConfigurationError, InvalidTriggerError
from beatx.jobs import resolve_func
from beatx.task_names import DOTTED_TASK_NAME
from beatx.triggers.base import get_timezone
from beatx.triggers.date import parse_iso
from django_beatx import conf
from django_beatx.models import ExclusionCalendar, Job, TriggerKind

__all__ = [
    "MAX_SECONDS",
    "MAX_YEAR",
    "MIN_YEAR",
    "DatalistInput",
    "DateTimeLinesField",
    "JobForm",
    "LimitedJSONField",
    "ZonedSplitDateTimeWidget",
    "json_depth",
    "registered_task_names",
    "task_warning",
]

logger = logging.getLogger(__name__)

#: ``billing.tasks.invoice``: a Celery task name.
TASK_NAME = DOTTED_TASK_NAME  # the API's and the CLI's rule too
#: ``billing.tasks:invoice``: a function reference (module:function).
FUNCTION_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: Date fields typed in the job's own timezone (not the admin user's).
LOCAL_DATE_FIELDS = ("run_at", "start_date", "end_date", "rrule_dtstart")
#: The fields of each trigger kind: the others' are hidden in the form, cleared and not checked.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    TriggerKind.CRON.value: ("cron_expression", "cron_extended", "cron_seconds"),
    TriggerKind.INTERVAL.value: ("interval_seconds",),
    TriggerKind.DATE.value: ("run_at",),
    TriggerKind.RRULE.value: ("rrule", "rrule_dtstart", "rrule_exdates", "rrule_rdates"),
    TriggerKind.SOLAR.value: ("solar_event", "solar_latitude", "solar_longitude"),
}
#: What a field of another kind is set to.
_CLEARED: dict[str, Any] = {
    "cron_expression": "",
    "cron_extended": False,
    "cron_seconds": False,
    "interval_seconds": None,
    "run_at": None,
    "rrule": "",
    "rrule_dtstart": None,
    "rrule_exdates": [],
    "rrule_rdates": [],
    "solar_event": "",
    "solar_latitude": None,
    "solar_longitude": None,
}
#: Dates are accepted from 1970 to 2999: no schedule needs more, and a time near the end of
#: the calendar (9999-12-31) cannot be moved between zones.
MIN_YEAR = 1970
MAX_YEAR = 2999
#: The longest interval, misfire grace time and expiry accepted: 100 years (Python's
#: ``timedelta`` overflows a little under 3e13 seconds; the beat must never meet one).
MAX_SECONDS = 100 * 365 * 86400


def registered_task_names() -> list[str]:
    """The tasks the current Celery app registers (without Celery's own ``celery.*``), after
    Celery has loaded the project's task modules (``app.autodiscover_tasks()``,
    ``CELERY_IMPORTS``), as a worker does at start; ``[]`` when Celery is not installed or
    not configured."""
    app = conf.celery_app()
    if app is None:
        return []
    try:
        # What a worker does at start (loader.init_worker): import the modules autodiscovery
        # and the ``imports`` / ``include`` settings name. Modules already imported cost
        # nothing; a broken one is logged and the tasks found so far are still offered.
        app.loader.import_default_modules()
    except Exception as exc:
        logger.warning("beatx admin: Celery could not import the task modules: %s", exc)
    try:
        names = list(app.tasks.keys())
    except Exception:
        return []
    return sorted(name for name in names if not name.startswith("celery."))


def task_warning(task: str, registered: list[str] | None = None) -> str | None:
    """Why a valid Celery task name may not run (it is not registered here), or ``None``.
    ``registered``: :func:`registered_task_names`, when the caller has it already (each call
    makes Celery import the project's task modules)."""
    if not task or ":" in task:
        return None
    if registered is None:
        registered = registered_task_names()
    if task in registered:
        return None
    if not registered:
        return str(
            _(
                "The Celery app here registers no task, so %(task)s could not be checked: make sure "
                "the workers know it."
            )
            % {"task": task}
        )
    return str(
        _(
            "No worker may know %(task)s: it is not registered with the Celery app here, after "
            "loading its task modules. Check the name, or that the workers import its module."
        )
        % {"task": task}
    )


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


class ZonedSplitDateTimeWidget(forms.SplitDateTimeWidget):
    """A date and a time typed in the job's timezone, labelled with it, with "Now" and "Today"
    buttons that fill in the time in that zone (the admin's own shortcuts use the server's
    time: a New York job got Paris' "now")."""

    template_name = "django_beatx/widgets/zoned_datetime.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            attrs,
            date_format="%Y-%m-%d",
            time_format="%H:%M:%S",
            date_attrs={"size": "10", "placeholder": "YYYY-MM-DD", "class": "beatx-date"},
            time_attrs={"size": "8", "placeholder": "HH:MM:SS", "class": "beatx-time"},
        )
        #: The zone name shown beside the inputs (set by the form).
        self.zone = ""
        self.default_zone = ""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["zone"] = self.zone or self.default_zone
        context["widget"]["default_zone"] = self.default_zone
        return context


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (without parsing it)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class LimitedJSONField(forms.JSONField):
    """A JSON field with a size and a nesting limit (``BEATX["JSON_MAX_BYTES"]``,
    ``BEATX["JSON_MAX_DEPTH"]``), checked before the text is parsed: 2,000 nested brackets
    made the parser raise RecursionError (an HTTP 500), and the beat would send any size."""

    def _refusal(self, text: str) -> str | None:
        max_depth, max_bytes = conf.json_limits()
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            return str(
                _(
                    'Too large: %(size)d bytes, at most %(max)d (BEATX["JSON_MAX_BYTES"]). Arguments '
                    "travel in every message: pass an id and let the task load the data."
                )
                % {"size": size, "max": max_bytes}
            )
        depth = json_depth(text)
        if depth > max_depth:
            return str(
                _('Nested %(depth)d levels deep, at most %(max)d (BEATX["JSON_MAX_DEPTH"]).')
                % {"depth": depth, "max": max_depth}
            )
        return None

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not self.disabled:
            refusal = self._refusal(value)
            if refusal:
                raise forms.ValidationError(refusal, code="json_limit")
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError(_("Nested too deep."), code="json_limit") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str) and not self.disabled and self._refusal(data):
            return forms.fields.InvalidJSONInput(data)
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class DateTimeLinesField(forms.CharField):
    """A list of ISO date-times, typed one per line (kept as a JSON list of ISO strings).

    A value without an offset is a wall time in the job's timezone, as the trigger reads it.
    """

    widget = forms.Textarea

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 3, "cols": 30, "placeholder": "2026-12-25T09:00:00"})
        )
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            lines = [str(item) for item in value]
        else:
            lines = str(value or "").splitlines()
        values: list[str] = []
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            try:
                moment = parse_iso(text, "date")
            except InvalidTriggerError:
                moment = None
            if moment is None or not MIN_YEAR <= moment.year <= MAX_YEAR:
                raise forms.ValidationError(
                    _(
                        "Line %(line)d: %(value)s is not a date-time from %(min)d to %(max)d: give one "
                        "per line, e.g. 2026-12-25T09:00:00 (in the job's timezone) or "
                        "2026-12-25T08:00:00+00:00."
                    )
                    % {"line": number, "value": text, "min": MIN_YEAR, "max": MAX_YEAR},
                    code="invalid",
                )
            value_text = moment.isoformat()
            if value_text not in values:
                values.append(value_text)
        return values

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return list(initial or []) != self.to_python(data)
        except forms.ValidationError:
            return True


def _seconds(value: float) -> str:
    return f"{value:g}"


class JobForm(forms.ModelForm):  # type: ignore[type-arg]
    """Validates the task name, the JSON arguments and the trigger of the chosen kind.

    Errors are attached to the field that is wrong. ``run_at``, ``start_date`` and
    ``end_date`` are read and shown in the job's timezone.
    """

    run_once_now = forms.BooleanField(
        label=_("Run once now"),
        required=False,
        help_text=_(
            "Tick to save a one-shot whose time has passed: it then fires once, as soon as it is "
            "saved. Without it, a past time is refused."
        ),
    )

    rrule_exdates = DateTimeLinesField(
        label=_("Except (EXDATE)"),
        help_text=_(
            "Occurrences to leave out, one ISO date-time per line in the job's timezone, e.g. "
            "2026-12-25T09:00:00."
        ),
    )
    exclude = forms.MultipleChoiceField(
        label=_("Exclusion calendars"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "The job does not fire at the times these calendars exclude (read in the job's timezone); "
            "see Exclusion calendars."
        ),
    )

    rrule_rdates = DateTimeLinesField(
        label=_("Also on (RDATE)"),
        help_text=_(
            "Extra fire times, one ISO date-time per line in the job's timezone, e.g. 2026-12-24T09:00:00."
        ),
    )

    class Meta:
        model = Job
        fields = (
            "id",
            "name",
            "description",
            "task",
            "args",
            "kwargs",
            "trigger_kind",
            "cron_expression",
            "cron_extended",
            "cron_seconds",
            "interval_seconds",
            "start_now",
            "run_at",
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
            "catchup",
            "catchup_window",
            "catchup_limit",
            "jitter",
            "max_runs",
            "overlap",
            "pause_after_failures",
            "exclude",
            "on_excluded",
            "expect_every",
            "max_lateness",
            "max_runtime",
            "alert_after_failures",
        )
        field_classes = {  # noqa: RUF012
            "args": LimitedJSONField,
            "kwargs": LimitedJSONField,
            "headers": LimitedJSONField,
            "extra_options": LimitedJSONField,
        }
        widgets = {  # noqa: RUF012
            "task": DatalistInput(registered_task_names, attrs={"size": 60}),
            "timezone": DatalistInput(timezone_names, attrs={"size": 30, "placeholder": "Europe/Paris"}),
            "cron_expression": forms.TextInput(attrs={"size": 30, "placeholder": "0 3 * * 1-5"}),
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "args": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "kwargs": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "headers": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "extra_options": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "run_at": ZonedSplitDateTimeWidget(),
            "start_date": ZonedSplitDateTimeWidget(),
            "end_date": ZonedSplitDateTimeWidget(),
            "rrule": forms.TextInput(attrs={"size": 60, "placeholder": "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1"}),
            "rrule_dtstart": ZonedSplitDateTimeWidget(),
            "solar_latitude": forms.NumberInput(
                attrs={"step": "any", "min": "-90", "max": "90", "placeholder": "48.85", "size": 10}
            ),
            "solar_longitude": forms.NumberInput(
                attrs={"step": "any", "min": "-180", "max": "180", "placeholder": "2.35", "size": 10}
            ),
        }

    #: Set by :meth:`clean_task` when the task is not registered but looks like a task name;
    #: shown beside the field (the live preview) and as a warning after saving.
    task_warning: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given_initial = dict(kwargs.get("initial") or {})
        super().__init__(*args, **kwargs)
        if "exclude" in self.fields:
            names = ExclusionCalendar.objects.using(conf.setting("DATABASE")).values_list("name", flat=True)
            self.fields["exclude"].choices = [(name, name) for name in names]  # type: ignore[attr-defined]
        if "on_excluded" in self.fields:
            # Left out of a form (or an API client's POST): skip, the default.
            self.fields["on_excluded"].required = False
        instance = self.instance
        adding = instance is None or instance._state.adding
        default_zone = conf.timezone_name()
        if not adding:
            zone = self._zone(instance.timezone)
            for name in LOCAL_DATE_FIELDS:
                value = getattr(instance, name)
                if value is not None and zone is not None:
                    self.initial[name] = value.astimezone(zone).replace(tzinfo=None)
        zone_name = str(self.data.get(self.add_prefix("timezone")) or "") if self.is_bound else ""
        zone_name = zone_name.strip() or (instance.timezone if instance is not None else "") or ""
        for name in LOCAL_DATE_FIELDS:
            if name in self.fields:
                field = self.fields[name]
                field.help_text = f"{field.help_text} " + str(
                    _("Entered in the job's timezone (shown beside the field); Now and Today mean in it.")
                )
                if isinstance(field.widget, ZonedSplitDateTimeWidget):
                    field.widget.zone = zone_name
                    field.widget.default_zone = default_zone
        if "interval_seconds" in self.fields:
            self.fields["interval_seconds"].help_text = str(
                _(
                    "Seconds between fires, e.g. 300 for every five minutes. At least %(min)s s "
                    '(BEATX["MIN_INTERVAL_SECONDS"]): a shorter interval sends more messages than '
                    "a beat and its workers keep up with, and every fire is a task to run."
                )
                % {"min": _seconds(conf.min_interval_seconds())}
            )
        if "task" in self.fields:
            allowed = conf.allowed_callable_modules()
            self.fields["task"].help_text = str(
                _(
                    "The Celery task name, e.g. billing.tasks.invoice. A function reference "
                    '(module:function) only from the modules of BEATX["ALLOWED_CALLABLE_MODULES"]: '
                    "%(allowed)s."
                )
                % {"allowed": ", ".join(allowed) if allowed else _("none")}
            )
        if adding:
            defaults = conf.job_defaults()
            values = {
                "misfire_grace_time": defaults.misfire_grace_time,
                "coalesce": defaults.coalesce,
                "max_instances": defaults.max_instances,
            }
            for name, value in values.items():
                if name in self.fields and name not in given_initial:
                    self.initial[name] = value
            if "misfire_grace_time" in self.fields:
                grace = defaults.misfire_grace_time
                self.fields["misfire_grace_time"].help_text = str(
                    _("%(help)s Filled in from the configured job defaults: %(value)s.")
                    % {
                        "help": self.fields["misfire_grace_time"].help_text,
                        "value": _("no limit") if grace is None else f"{_seconds(grace)} s",
                    }
                )

    @staticmethod
    def _zone(name: str | None) -> tzinfo | None:
        try:
            return get_timezone(name or conf.timezone_name())
        except InvalidTriggerError:
            return None

    def _kind(self) -> str | None:
        kind = self.cleaned_data.get("trigger_kind")
        return str(kind) if kind else None

    # -- fields --------------------------------------------------------------------------------

    def clean_id(self) -> str:
        value = str(self.cleaned_data.get("id") or "").strip()
        if not value:
            raise forms.ValidationError(_("Give the job an id, e.g. nightly-invoices."))
        return value

    def clean_task(self) -> str:
        value = str(self.cleaned_data.get("task") or "").strip()
        if ":" in value:
            return self._clean_function_ref(value)
        registered = registered_task_names()
        if value in registered:
            return value
        if not TASK_NAME.match(value):
            raise forms.ValidationError(
                _(
                    "%(task)s is not a registered Celery task and does not look like one: use a dotted "
                    "name such as billing.tasks.invoice."
                )
                % {"task": value}
            )
        self.task_warning = task_warning(value, registered)
        return value

    def _clean_function_ref(self, value: str) -> str:
        if not FUNCTION_REF.match(value):
            raise forms.ValidationError(
                _(
                    "%(task)s is neither a Celery task name (billing.tasks.invoice) nor a function "
                    "reference (billing.tasks:invoice)."
                )
                % {"task": value}
            )
        if not conf.callable_allowed(value):
            allowed = conf.allowed_callable_modules()
            raise forms.ValidationError(
                _(
                    "%(task)s is a function reference (module:function), not a Celery task name. A job "
                    "kept in the database may only call functions of the modules listed in "
                    'BEATX["ALLOWED_CALLABLE_MODULES"] (now: %(allowed)s), so that whoever can '
                    "edit jobs cannot run any function of the server (os:system). For a Celery task, "
                    "give its registered name, e.g. billing.tasks.invoice."
                )
                % {"task": value, "allowed": ", ".join(allowed) if allowed else _("none")}
            )
        try:
            resolve_func(value)
        except ConfigurationError as exc:
            raise forms.ValidationError(str(exc)) from None
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

    def clean_rrule(self) -> str:
        return str(self.cleaned_data.get("rrule") or "").strip()

    def clean_interval_seconds(self) -> float | None:
        value = self.cleaned_data.get("interval_seconds")
        if self._kind() != TriggerKind.INTERVAL or value is None:
            return value
        minimum = conf.min_interval_seconds()
        if value <= 0:
            raise forms.ValidationError(_("The interval must be greater than 0 seconds, e.g. 300."))
        if value < minimum:
            raise forms.ValidationError(
                _(
                    'At least %(min)s s (BEATX["MIN_INTERVAL_SECONDS"]): %(value)s s would send '
                    "more messages than a beat and its workers keep up with."
                )
                % {"min": _seconds(minimum), "value": _seconds(value)}
            )
        if value > MAX_SECONDS:
            raise forms.ValidationError(
                _("At most %(max)s s (100 years); for a rare job use a cron expression or a date.")
                % {"max": MAX_SECONDS}
            )
        return float(value)

    def _at_most_max_seconds(self, name: str) -> float | None:
        value = self.cleaned_data.get(name)
        if value is not None and value > MAX_SECONDS:
            raise forms.ValidationError(
                _("At most %(max)s s (100 years); leave it empty for no limit.") % {"max": MAX_SECONDS}
            )
        return value

    def clean_misfire_grace_time(self) -> float | None:
        return self._at_most_max_seconds("misfire_grace_time")

    def clean_expect_every(self) -> float | None:
        return self._at_most_max_seconds("expect_every")

    def clean_max_lateness(self) -> float | None:
        return self._at_most_max_seconds("max_lateness")

    def clean_max_runtime(self) -> float | None:
        return self._at_most_max_seconds("max_runtime")

    def clean_on_excluded(self) -> str:
        return str(self.cleaned_data.get("on_excluded") or "skip")

    def clean_catchup_window(self) -> float | None:
        return self._at_most_max_seconds("catchup_window")

    def clean_jitter(self) -> float | None:
        return self._at_most_max_seconds("jitter")

    def _check_catchup(self, data: dict[str, Any]) -> None:
        """A catch-up policy and a coalesce box that say different things are refused."""
        catchup = data.get("catchup")
        if not catchup or "coalesce" not in data:
            return
        if bool(data["coalesce"]) != (catchup != "all"):
            self.add_error(
                "catchup",
                _(
                    "Catch-up %(catchup)s and coalesce %(coalesce)s disagree: coalesce off means catch-up "
                    "all, on any other catch-up. Change one, or leave catch-up empty to follow coalesce."
                )
                % {"catchup": catchup, "coalesce": _("on") if data["coalesce"] else _("off")},
            )

    def clean_expires(self) -> float | None:
        return self._at_most_max_seconds("expires")

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
                if not MIN_YEAR <= wall.year <= MAX_YEAR:
                    self.add_error(
                        name,
                        _(
                            "Give a date from %(min)d to %(max)d: dates at the ends of the calendar "
                            "cannot be moved between timezones.%(empty)s"
                        )
                        % {
                            "min": MIN_YEAR,
                            "max": MAX_YEAR,
                            "empty": _(" Leave it empty for no end.") if name == "end_date" else "",
                        },
                    )
                    data.pop(name, None)
                    continue
                data[name] = wall.replace(tzinfo=zone)
        kind = data.get("trigger_kind")
        # Fields of the other kinds are hidden: clear them so they are not stored, and drop
        # their errors (an error nobody can see would keep the form from saving).
        mine = KIND_FIELDS.get(str(kind), ()) if kind else ()
        for name, empty in _CLEARED.items():
            if name not in mine and name in self.fields:
                data[name] = empty
                if kind:
                    self._drop_errors(name)
        if kind == TriggerKind.DATE:
            data["start_date"] = data["end_date"] = None
        hidden: tuple[str, ...] = ()
        if kind == TriggerKind.RRULE:
            hidden = ("start_date", "end_date")  # an RRULE has COUNT and UNTIL instead
        elif kind == TriggerKind.SOLAR:
            hidden = ("timezone", "start_date", "end_date")  # the place sets the times
        for name in hidden:
            data[name] = "" if name == "timezone" else None
            self._drop_errors(name)
        if kind == TriggerKind.DATE:
            self._check_past_run_at(data)
        self._check_catchup(data)
        return data

    def _drop_errors(self, name: str) -> None:
        """Forget the errors of a field the chosen kind does not use (it is hidden)."""
        errors = getattr(self, "_errors", None)
        if errors is not None:
            errors.pop(name, None)

    def _update_errors(self, errors: ValidationError) -> None:
        """The model's errors, but none for a field whose own check already refused it (the
        model sees such a field empty and would add "needs a run time" beside the reason)."""
        if hasattr(errors, "error_dict"):
            refused = getattr(self, "_errors", None) or {}
            kept = {name: errs for name, errs in errors.error_dict.items() if name not in refused}
            if not kept:
                return
            errors = ValidationError(kept)
        super()._update_errors(errors)  # type: ignore[misc]

    def _check_past_run_at(self, data: dict[str, Any]) -> None:
        """A one-shot whose time has passed fires at once: refused unless "run once now" is
        ticked (and left alone when the time is the one already saved)."""
        run_at = data.get("run_at")
        if not isinstance(run_at, datetime):
            return
        now = datetime.now(UTC)
        if run_at >= now or data.get("run_once_now"):
            return
        instance = self.instance
        unchanged = (
            not instance._state.adding
            and instance.trigger_kind == TriggerKind.DATE
            and instance.run_at is not None
            and instance.run_at == run_at
        )
        if unchanged:
            return
        zone = run_at.tzinfo or UTC
        self.add_error(
            "run_at",
            _(
                "%(time)s has passed (it is now %(now)s, %(ago)s ago): saved, the job would fire at "
                'once. Give a future time, or tick "Run once now" to run it once right away.'
            )
            % {
                "time": run_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "now": now.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
                "ago": timesince(run_at, now),
            },
        )
