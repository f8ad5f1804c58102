"""The optional ``BEATX`` setting, one namespaced dict (as huey's ``HUEY``)::

    BEATX = {
        "TIMEZONE": "Europe/Paris",        # default timezone of new cron / date jobs
        "JOB_DEFAULTS": {"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        "RUN_HISTORY_LIMIT": 20,           # runs shown on a job's admin page
        "DATABASE": "default",             # the database alias the store uses
        "MIN_INTERVAL_SECONDS": 1,         # the shortest interval the admin accepts
        "ALLOWED_CALLABLE_MODULES": [],    # modules whose functions a job may name (module:function)
        "JSON_MAX_DEPTH": 20,              # nesting the admin accepts in a JSON field
        "JSON_MAX_BYTES": 65536,           # size the admin accepts in a JSON field
        "CELERY_APP": "proj.celery:app",   # the project's Celery app (default: found, see celery_app)
    }

Every key is optional. The Celery side (``CELERY_BEATX_STORE = "django://"`` and friends) is
read by :mod:`beatx.celery` from the Celery app's configuration.

``DATABASE`` is the one place the store's database is named: the admin, the management
commands, the beat (``celery beat -S beatx`` with ``django://``) and the workers' run
records all use it (see :func:`store_database`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from beatx.dispatch.base import Dispatcher
    from beatx.jobs import JobDefaults
    from beatx.manager import JobManager
    from django_beatx.store import DjangoStore

__all__ = [
    "allowed_callable_modules",
    "callable_allowed",
    "celery_app",
    "get_manager",
    "get_store",
    "job_defaults",
    "json_limits",
    "min_interval_seconds",
    "run_history_limit",
    "setting",
    "store_database",
    "timezone_name",
]

logger = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "TIMEZONE": None,
    "JOB_DEFAULTS": None,
    "RUN_HISTORY_LIMIT": 20,
    "DATABASE": "default",
    "MIN_INTERVAL_SECONDS": 1.0,
    "ALLOWED_CALLABLE_MODULES": (),
    "JSON_MAX_DEPTH": 20,
    "JSON_MAX_BYTES": 65536,
    "CELERY_APP": None,
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
    if key not in values:
        return _DEFAULTS[key]
    return _checked(key, values[key])


def _checked(key: str, value: Any) -> Any:
    """``value`` of ``BEATX[key]`` through the schema's check (:mod:`beatx.settings_schema`).

    :raises ImproperlyConfigured: naming the key and what was expected.
    """
    from beatx.errors import ConfigurationError
    from beatx.settings_schema import django_setting

    known = django_setting(key)
    if known is None or known.check is None:
        return value
    try:
        return known.check(f'BEATX["{key}"]', value)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


def timezone_name() -> str:
    """The default timezone: ``BEATX["TIMEZONE"]``, else the Celery app's ``beatx_timezone``
    (``CELERY_BEATX_TIMEZONE``, what the beat uses), else ``CELERY_TIMEZONE``, else ``TIME_ZONE``.

    :raises ImproperlyConfigured: for an unknown ``BEATX["TIMEZONE"]``.
    """
    from beatx.errors import ConfigurationError
    from beatx.settings_schema import check_timezone

    configured = setting("TIMEZONE")
    if configured:
        try:
            check_timezone('BEATX["TIMEZONE"]', configured)
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        return str(configured)
    name = (
        getattr(settings, "CELERY_BEATX_TIMEZONE", None)
        or getattr(settings, "CELERY_TIMEZONE", None)
        or settings.TIME_ZONE
    )
    return str(name or "UTC")


def run_history_limit() -> int:
    return int(setting("RUN_HISTORY_LIMIT"))


def min_interval_seconds() -> float:
    """``BEATX["MIN_INTERVAL_SECONDS"]``: the shortest interval the admin accepts (default 1 s)."""
    return float(setting("MIN_INTERVAL_SECONDS"))


def allowed_callable_modules() -> tuple[str, ...]:
    """``BEATX["ALLOWED_CALLABLE_MODULES"]``: the modules (and their submodules) whose functions
    a job kept in the database may name as ``module:function``. Empty by default: only Celery
    task names."""
    return tuple(setting("ALLOWED_CALLABLE_MODULES"))


def callable_allowed(ref: str) -> bool:
    """Whether the ``module:function`` reference ``ref`` names a function of an allowed module
    (:func:`allowed_callable_modules`): the module itself or one of its submodules."""
    from beatx.jobs import module_allowed

    return module_allowed(ref, allowed_callable_modules())


def json_limits() -> tuple[int, int]:
    """``(BEATX["JSON_MAX_DEPTH"], BEATX["JSON_MAX_BYTES"])``: how deep and how large a JSON
    field of the admin's form may be."""
    return int(setting("JSON_MAX_DEPTH")), int(setting("JSON_MAX_BYTES"))


def celery_app() -> Any:
    """The project's Celery app, as the admin's request threads should see it.

    ``celery.current_app`` is per thread: the app a project creates (``proj/celery.py``) is
    current in the thread that imported it, and a server's request threads (runserver,
    gunicorn threads) get Celery's fallback app, with no tasks and no broker. So: the app
    current in this thread if one was set, else the default app if one was set, else the
    one app the process created (the configured one, if several). ``None`` without Celery.
    ``BEATX["CELERY_APP"]`` (``"proj.celery:app"``) names it instead of all this, for a
    process that creates several apps.

    :raises ImproperlyConfigured: for a ``CELERY_APP`` that cannot be imported.
    """
    named = setting("CELERY_APP")
    if named:
        module, _, attribute = str(named).partition(":")
        try:
            return getattr(importlib.import_module(module), attribute or "app")
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(f'BEATX["CELERY_APP"]: cannot import {named!r}: {exc}') from exc
    try:
        from celery import _state
    except ImportError:
        return None
    explicit = getattr(_state._tls, "current_app", None)
    if explicit is not None:
        return explicit
    default = _state.default_app
    if default is not None and getattr(default, "main", None) != "default":
        return default
    apps = [app for app in list(_state._get_active_apps()) if app is not default and app.main != "default"]
    configured = [app for app in apps if getattr(app, "configured", False)]
    if len(configured) == 1 or (configured and len(apps) != 1):
        return configured[0]
    if apps:
        return apps[0]
    return _state.get_current_app()


def job_defaults() -> JobDefaults:
    """The policy defaults of new jobs: ``BEATX["JOB_DEFAULTS"]`` when set, else the Celery
    app's ``beatx_job_defaults`` (``CELERY_BEATX_JOB_DEFAULTS``), the values the beat uses;
    else beatx's own (no misfire limit, coalesce, one instance).

    :raises ImproperlyConfigured: for malformed defaults.
    """
    from beatx.errors import ConfigurationError
    from beatx.jobs import JobDefaults
    from beatx.settings_schema import check_job_defaults

    configured = setting("JOB_DEFAULTS")
    if configured is not None:
        try:
            return check_job_defaults('BEATX["JOB_DEFAULTS"]', configured)
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
    try:
        from beatx.celery import BeatxSettings

        app = celery_app()
        names = {str(key).lower() for key in app.conf} if app is not None else set()
        if names & {"beatx_job_defaults", "celery_beatx_job_defaults"}:
            return BeatxSettings.from_app(app).job_defaults
    except Exception as exc:  # no Celery, or a configuration the beat reports itself
        logger.debug("beatx admin: the Celery app's job defaults are not readable: %s", exc)
    celery_defaults = getattr(settings, "CELERY_BEATX_JOB_DEFAULTS", None)
    try:
        return JobDefaults.from_mapping(celery_defaults if isinstance(celery_defaults, Mapping) else None)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"CELERY_BEATX_JOB_DEFAULTS: {exc}") from exc


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
    return str(configured)


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
