"""beatx's settings, defined once: name, default, meaning and validator of each, and where it
is read: the Celery app's ``beatx_*`` settings (:class:`beatx.celery.BeatxSettings`), the
in-process :class:`~beatx.SchedulerConfig` and Django's ``BEATX`` dict.

The three readers validate with the checks here (one message per mistake, naming the setting as
the user spelled it), and the configuration reference (``docs/configuration.md``) is generated
from :data:`SETTINGS`: ``python -m beatx.settings_schema`` prints its tables, and a test keeps
the page equal to them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beatx.errors import ConfigurationError, InvalidJobError
from beatx.jobs import JobDefaults
from beatx.triggers.base import get_timezone

__all__ = [
    "SETTINGS",
    "Setting",
    "check_job_defaults",
    "check_timezone",
    "markdown_table",
    "reference_tables",
]

Check = Callable[[str, Any], Any]


# -- the checks: (the name as the user spelled it, the value) -> the value to keep ---------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_positive_seconds(label: str, value: Any) -> Any:
    if not _is_number(value) or value <= 0:
        raise ConfigurationError(f"{label}: expected a number of seconds > 0, got {value!r}")
    return value


def check_lookahead(label: str, value: Any) -> Any:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ConfigurationError(f"{label}: expected a number of seconds from 0 to 1, got {value!r}")
    return value


def check_positive_int_or_none(label: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigurationError(f"{label}: expected a positive integer or None, got {value!r}")
    return value


def check_bool(label: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{label}: expected True or False, got {value!r}")
    return value


def check_key_prefix(label: str, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{label}: expected a non-empty string, got {value!r}")
    return value


def check_store_url(label: str, value: Any) -> Any:
    if not isinstance(value, str) or "://" not in value:
        raise ConfigurationError(
            f"{label}: expected a URL such as memory://, redis://127.0.0.1:6379/0 or django://, got {value!r}"
        )
    return value


def check_port_or_none(label: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536):
        raise ConfigurationError(f"{label}: expected a TCP port number, got {value!r}")
    return value


def check_positive_int(label: str, value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{label}: expected a positive integer, got {value!r}")
    return value


def check_non_negative_int(label: str, value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{label}: expected an integer >= 0, got {value!r}")
    return value


def check_http_url_or_none(label: str, value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
        raise ConfigurationError(f"{label}: expected an http:// or https:// URL or None, got {value!r}")
    return value


def check_module_names(label: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(f"{label}: expected a list of module names, got {value!r}")
    names = tuple(str(name).strip() for name in value)
    if any(not name for name in names):
        raise ConfigurationError(f"{label}: a module name is empty")
    return names


def check_database_alias(label: str, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{label}: expected a database alias, got {value!r}")
    return value


def check_app_reference_or_none(label: str, value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ConfigurationError(f'{label}: expected "module:attribute" or None, got {value!r}')
    return value


def check_timezone(label: str, value: Any) -> Any:
    try:
        get_timezone(value)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{label}: {exc}") from exc
    return value


def check_job_defaults(label: str, value: Any) -> JobDefaults:
    """A :class:`~beatx.JobDefaults` from itself, a dict of its fields, or None (its defaults)."""
    if isinstance(value, JobDefaults):
        return value
    if value is None or isinstance(value, Mapping):
        try:
            return JobDefaults.from_mapping(value)
        except (ConfigurationError, InvalidJobError) as exc:
            reason = str(exc).removeprefix("job_defaults: ")
            raise ConfigurationError(f"{label}: {reason}") from exc
    names = ", ".join(f.name for f in dataclasses.fields(JobDefaults))
    raise ConfigurationError(f"{label}: expected a dict of {names}, got {value!r}")


# -- the settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One setting and where it is read.

    ``name`` is the Celery setting without ``beatx_`` (``celery=True``); ``config_field`` the
    :class:`~beatx.SchedulerConfig` field; ``django_key`` the ``BEATX`` key. Each place shows
    its own default (``*_default``, as the reference prints it).
    """

    name: str
    meaning: str
    check: Check | None = None
    celery: bool = False
    celery_default: str = ""
    config_field: str | None = None
    config_default: str = ""
    django_key: str | None = None
    django_default: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        name="store",
        meaning="where jobs live: `memory://` (one process, lost on exit), `redis://host:port/db` "
        '(also `rediss://`, `unix://`), `django://` (the database `BEATX["DATABASE"]` '
        "names, as in the admin; see [Django](django-admin.md#the-database))",
        check=check_store_url,
        celery=True,
        celery_default='`"memory://"`',
    ),
    Setting(
        name="backend",
        meaning="`memory`, `redis` or `django`",
        config_field="backend",
        config_default='`"memory"`',
    ),
    Setting(
        name="url",
        meaning='the Redis URL, required with `backend="redis"`',
        config_field="url",
        config_default="`None`",
    ),
    Setting(
        name="key_prefix",
        meaning="prefix of every Redis key (one prefix, one independent schedule)",
        check=check_key_prefix,
        celery=True,
        celery_default='`"beatx:"`',
        config_field="key_prefix",
        config_default='`"beatx:"`',
    ),
    Setting(
        name="timezone",
        meaning="default timezone of cron jobs and naive datetimes (an IANA name); in Django, of "
        "the admin's new jobs",
        check=check_timezone,
        celery=True,
        celery_default='the app\'s `timezone`, else `"UTC"`',
        config_field="timezone",
        config_default='`"UTC"`',
        django_key="TIMEZONE",
        django_default="the Celery app's `beatx_timezone` (`CELERY_BEATX_TIMEZONE`), else "
        "`CELERY_TIMEZONE`, else `TIME_ZONE`",
    ),
    Setting(
        name="job_defaults",
        meaning="policy defaults of jobs that do not set their own: `misfire_grace_time`, "
        "`coalesce`, `max_instances` (see [the rules](concepts/rules.md)); a dict or a `JobDefaults`",
        check=check_job_defaults,
        celery=True,
        celery_default="`{}`",
        config_field="job_defaults",
        config_default="`JobDefaults()`",
        django_key="JOB_DEFAULTS",
        django_default="the Celery app's `beatx_job_defaults` (`CELERY_BEATX_JOB_DEFAULTS`)",
    ),
    Setting(
        name="max_concurrent_jobs",
        meaning="runs in flight across all jobs; fires beyond it are skipped and counted",
        check=check_positive_int_or_none,
        celery=True,
        celery_default="`None`",
        config_field="max_concurrent_jobs",
        config_default="`None`",
    ),
    Setting(
        name="lease_timeout",
        meaning="seconds a leader's lease lasts without renewal; a standby takes over within it",
        check=check_positive_seconds,
        celery=True,
        celery_default="`30`",
        config_field="lease_timeout",
        config_default="`30.0`",
    ),
    Setting(
        name="run_timeout",
        meaning="seconds a started run counts as in flight when its end is never reported (a killed worker)",
        check=check_positive_seconds,
        celery=True,
        celery_default="`3600`",
    ),
    Setting(
        name="dedupe",
        meaning="workers drop a second delivery of the same fire (Redis or Django store; see "
        "[Delivery](delivery.md))",
        check=check_bool,
        celery=True,
        celery_default="`False`",
    ),
    Setting(
        name="metrics_port",
        meaning="serve Prometheus metrics from the beat on `127.0.0.1:<port>` (needs `beatx[metrics]`)",
        check=check_port_or_none,
        celery=True,
        celery_default="`None`",
    ),
    Setting(
        name="lookahead",
        meaning="seconds before fires are due that the beat claims them, plans them and builds "
        "their messages, then sends them when due (0 turns it off)",
        check=check_lookahead,
        celery=True,
        celery_default="`0.05`",
    ),
    Setting(
        name="atomic_fire",
        meaning="when the broker and the store are one Redis server, the store's write-back "
        "script pushes each fire's message, so it goes out exactly once even if the beat dies "
        "between the two (see [Delivery](delivery.md#which-setup-gets-which-guarantee)); "
        "`False`: publish, then write back",
        check=check_bool,
        celery=True,
        celery_default="`True`",
    ),
    Setting(
        name="log_each_fire",
        meaning="log each fire sent at INFO (`fire dispatched job=... scheduled_at=... lateness=...`); "
        "`False`: one INFO line per group of fires sent together (`fires dispatched count=... "
        "jobs=... ids=... lateness=...`) and each fire at DEBUG (see "
        "[Log lines](operations.md#log-lines))",
        check=check_bool,
        celery=True,
        celery_default="`False`",
        config_field="log_each_fire",
        config_default="`False`",
    ),
    Setting(
        name="run_history",
        meaning="runs each job keeps in its run ledger (`beatx jobs runs`), memory and Redis stores "
        "(memory keeps at least 1, Redis `0` keeps none); the Django store keeps every run until "
        "`beatx_prune_runs` removes it (see [The run ledger](operations.md#the-run-ledger))",
        check=check_non_negative_int,
        celery=True,
        celery_default="`20`",
    ),
    Setting(
        name="run_history_days",
        meaning="days a run stays in the ledger of the memory and Redis stores",
        check=check_positive_seconds,
        celery=True,
        celery_default="`7.0`",
    ),
    Setting(
        name="alert_interval",
        meaning="seconds between two checks of the jobs' alert rules by the leading beat (see "
        "[Alerts](alerts.md))",
        check=check_positive_seconds,
        celery=True,
        celery_default="`10.0`",
        config_field="alert_interval",
        config_default="`10.0`",
    ),
    Setting(
        name="alert_webhook",
        meaning="URL each alert raised or resolved is POSTed to as JSON, from a background thread "
        "(5 s timeout; a failure is logged); `None`: no webhook",
        check=check_http_url_or_none,
        celery=True,
        celery_default="`None`",
        config_field="alert_webhook",
        config_default="`None`",
    ),
    Setting(
        name="alert_sentry",
        meaning="also send each alert as a Sentry Crons check-in of the monitor named by the job id "
        "(`error` raised, `ok` resolved); needs `beatx[sentry]` and `sentry_sdk.init` in the beat",
        check=check_bool,
        celery=True,
        celery_default="`False`",
    ),
    Setting(
        name="enabled",
        meaning="`False`: `start()` does nothing",
        config_field="enabled",
        config_default="`True`",
    ),
    Setting(
        name="jobs",
        meaning="jobs declared in configuration (YAML `jobs:`), added or updated at construction",
        config_field="jobs",
        config_default="`()`",
    ),
    Setting(
        name="calendars",
        meaning="exclusion calendars (YAML `calendars:`), stored or replaced at construction "
        "before the jobs; see [Exclusion calendars](concepts/calendars.md)",
        config_field="calendars",
        config_default="`()`",
    ),
    Setting(
        name="database",
        meaning="the database alias of the Django store, in every process (beat, workers, "
        "CLI, admin); see [Django](django-admin.md#the-database)",
        check=check_database_alias,
        django_key="DATABASE",
        django_default='`"default"`',
    ),
    Setting(
        name="run_history_limit",
        meaning="runs shown on a job's admin page",
        check=check_positive_int,
        django_key="RUN_HISTORY_LIMIT",
        django_default="`20`",
    ),
    Setting(
        name="min_interval_seconds",
        meaning="the shortest interval the admin accepts",
        check=check_positive_seconds,
        django_key="MIN_INTERVAL_SECONDS",
        django_default="`1.0`",
    ),
    Setting(
        name="allowed_callable_modules",
        meaning="modules (and submodules) whose functions a job kept in the database may name "
        "(`module:function`)",
        check=check_module_names,
        django_key="ALLOWED_CALLABLE_MODULES",
        django_default="`()`",
    ),
    Setting(
        name="json_max_depth",
        meaning="nesting the admin accepts in a JSON field",
        check=check_positive_int,
        django_key="JSON_MAX_DEPTH",
        django_default="`20`",
    ),
    Setting(
        name="json_max_bytes",
        meaning="size in bytes the admin accepts in a JSON field",
        check=check_positive_int,
        django_key="JSON_MAX_BYTES",
        django_default="`65536`",
    ),
    Setting(
        name="celery_app",
        meaning='the project\'s Celery app, `"proj.celery:app"`, when a process creates several',
        check=check_app_reference_or_none,
        django_key="CELERY_APP",
        django_default="`None` (found automatically)",
    ),
)


def celery_setting(name: str) -> Setting:
    return next(s for s in SETTINGS if s.celery and s.name == name)


def django_setting(key: str) -> Setting | None:
    """The setting read from ``BEATX[key]``, or None for a key the schema does not know."""
    return next((s for s in SETTINGS if s.django_key == key), None)


# -- the reference --------------------------------------------------------------------------------

#: The reference's tables: (marker, column header of names, rows' name and default).
_TABLES: dict[str, tuple[str, Callable[[Setting], tuple[str, str] | None]]] = {
    "celery": (
        "setting",
        lambda s: (f"beatx_{s.name}", s.celery_default) if s.celery else None,
    ),
    "scheduler-config": (
        "field",
        lambda s: (s.config_field, s.config_default) if s.config_field else None,
    ),
    "django": (
        "key",
        lambda s: (s.django_key, s.django_default) if s.django_key else None,
    ),
}


def markdown_table(which: str) -> str:
    """The reference table ``which`` (``celery``, ``scheduler-config`` or ``django``)."""
    header, row = _TABLES[which]
    lines = [f"| {header} | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        found = row(setting)
        if found is not None:
            lines.append(f"| `{found[0]}` | {found[1]} | {setting.meaning} |")
    return "\n".join(lines) + "\n"


def begin_marker(which: str) -> str:
    return f"<!-- generated: {which} (python -m beatx.settings_schema) -->"


def end_marker(which: str) -> str:
    return f"<!-- end generated: {which} -->"


def reference_tables() -> dict[str, str]:
    return {which: markdown_table(which) for which in _TABLES}


def main() -> None:
    for which, table in reference_tables().items():
        sys.stdout.write(f"{begin_marker(which)}\n{table}{end_marker(which)}\n\n")


if __name__ == "__main__":
    main()
