"""The optional ``BEATX`` setting, one namespaced dict (as huey's ``HUEY``)::

    BEATX = {
        "TIMEZONE": "Europe/Paris",        # default timezone of new cron / date jobs
        "JOB_DEFAULTS": {"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        "RUN_HISTORY_LIMIT": 20,           # runs shown on a job's admin page
        "DATABASE": "default",             # the database alias the store uses
    }

Every key is optional. The Celery side (``CELERY_BEATX_STORE = "django://"`` and friends) is
read by :mod:`beatx.celery` from the Celery app's configuration.

``DATABASE`` is the one place the store's database is named: the admin, the management
commands, the beat (``celery beat -S beatx`` with ``django://``) and the workers' run
records all use it (see :func:`store_database`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from beatx.dispatch.base import Dispatcher
    from beatx.manager import JobManager
    from django_beatx.store import DjangoStore

__all__ = ["get_manager", "get_store", "run_history_limit", "setting", "store_database", "timezone_name"]

_DEFAULTS: dict[str, Any] = {
    "TIMEZONE": None,
    "JOB_DEFAULTS": None,
    "RUN_HISTORY_LIMIT": 20,
    "DATABASE": "default",
}


def setting(key: str) -> Any:
    """One key of ``settings.BEATX``, or its default.

    :raises ImproperlyConfigured: for an unknown key in ``BEATX`` or a ``BEATX`` that is not a dict.
    """
    values = getattr(settings, "BEATX", None) or {}
    if not isinstance(values, Mapping):
        raise ImproperlyConfigured(f"BEATX must be a dict, got {type(values).__name__}")
    unknown = sorted(set(values) - set(_DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"BEATX: unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(sorted(_DEFAULTS))}"
        )
    return values.get(key, _DEFAULTS[key])


def timezone_name() -> str:
    """The default timezone: ``BEATX["TIMEZONE"]``, else ``CELERY_TIMEZONE``, else ``TIME_ZONE``."""
    name = setting("TIMEZONE") or getattr(settings, "CELERY_TIMEZONE", None) or settings.TIME_ZONE
    return str(name or "UTC")


def run_history_limit() -> int:
    return int(setting("RUN_HISTORY_LIMIT"))


def store_database(url: str = "django://") -> str:
    """The database alias a ``django://`` store URL opens: ``BEATX["DATABASE"]``.

    The URL may name the alias, ``django://<alias>``; it must then be the one
    ``BEATX["DATABASE"]`` names (``"default"`` when unset), since the admin and the
    management commands use that one: a beat or a worker on another database would run
    jobs nobody edits, and record runs nobody sees.

    :raises beatx.errors.ConfigurationError: for a malformed URL, an alias that is not in
        ``DATABASES``, or an alias other than ``BEATX["DATABASE"]``.
    """
    from beatx.errors import ConfigurationError

    scheme, sep, rest = url.partition("://")
    named = rest.rstrip("/")
    if scheme.lower() != "django" or not sep or any(c in named for c in "/?#@:"):
        raise ConfigurationError(f"store {url!r}: expected django:// or django://<database alias>")
    try:
        configured = setting("DATABASE")
    except ImproperlyConfigured as exc:
        raise ConfigurationError(str(exc)) from exc
    if not isinstance(configured, str) or not configured:
        raise ConfigurationError(f'BEATX["DATABASE"]: expected a database alias, got {configured!r}')
    if named and named != configured:
        raise ConfigurationError(
            f'store {url!r} names the database {named!r}, but BEATX["DATABASE"] (the database of '
            f"the admin and the management commands) is {configured!r}: set "
            f'BEATX = {{"DATABASE": {named!r}}}, or use django:// alone'
        )
    if configured not in settings.DATABASES:
        raise ConfigurationError(
            f'BEATX["DATABASE"] is {configured!r}, which is not in DATABASES '
            f"({', '.join(map(repr, settings.DATABASES))})"
        )
    return configured


def get_store() -> DjangoStore:
    """A :class:`django_beatx.store.DjangoStore` on the configured database."""
    from django_beatx.store import DjangoStore

    return DjangoStore(using=setting("DATABASE"))


def get_manager(*, dispatcher: Dispatcher | None = None) -> JobManager:
    """A :class:`beatx.manager.JobManager` over the Django store, with the project's timezone
    and job defaults: what the admin and the management commands change jobs through."""
    from beatx.manager import JobManager

    return JobManager(
        get_store(),
        timezone=timezone_name(),
        job_defaults=setting("JOB_DEFAULTS"),
        dispatcher=dispatcher,
    )
