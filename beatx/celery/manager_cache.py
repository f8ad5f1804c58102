"""The management API for application code: :func:`get_job_manager`, one cached
:class:`~beatx.JobManager` per Celery app, and the check of the task a job names."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from beatx.celery.settings import BeatxSettings
from beatx.dispatch.celery import CeleryDispatcher
from beatx.errors import InvalidJobError
from beatx.jobs import JobFunc
from beatx.manager import JobManager
from beatx.stores import open_store
from beatx.task_names import looks_like_task_name

if TYPE_CHECKING:
    from celery import Celery

    from beatx.stores.base import JobStore

__all__ = ["get_job_manager", "get_scheduler", "task_validator", "unregistered_task_warning"]

logger = logging.getLogger("beatx.celery")


_loaded_task_modules: weakref.WeakSet[Any] = weakref.WeakSet()


def unregistered_task_warning(app: Celery, name: str) -> str | None:
    """Why the dotted task name ``name`` may never run, when the app knows its tasks: it is not
    among them. None when it is registered, or when the app registers no task of the project
    (a beat or a script that does not import the task modules cannot tell).

    The first call imports the app's task modules, as a worker does at start
    (``app.loader.import_default_modules()``: autodiscovery, ``imports``, ``include``).
    """
    if name in app.tasks:
        return None
    if app not in _loaded_task_modules:
        _loaded_task_modules.add(app)
        try:
            app.loader.import_default_modules()
        except Exception as exc:
            logger.warning("cannot import the task modules of the Celery app %r: %s", app.main, exc)
        if name in app.tasks:
            return None
    known = sorted(task for task in app.tasks if not task.startswith("celery."))
    if not known:
        return None
    return (
        f"task {name!r} is not registered with the Celery app {app.main!r} (it registers "
        f"{len(known)} task(s)): check the name, or that the workers import its module"
    )


def task_validator(app: Celery) -> Any:
    """A ``func_validator`` accepting Celery task objects, registered task names and names
    that look like dotted task names (``"billing.tasks.invoice"``, registered by workers).
    A dotted name the app does not register, when it knows its tasks, is logged as a warning
    (see :func:`unregistered_task_warning`)."""

    def validate(func: JobFunc) -> None:
        if isinstance(func, str):
            if func in app.tasks:
                return
            if looks_like_task_name(func):
                warning = unregistered_task_warning(app, func)
                if warning is not None:
                    logger.warning("%s", warning)
                return
            raise InvalidJobError(
                f"func {func!r} is neither a registered Celery task nor a dotted task name "
                "such as 'billing.tasks.invoice'"
            )
        if hasattr(func, "apply_async") and isinstance(getattr(func, "name", None), str):
            return
        raise InvalidJobError(
            f"func {func!r} is not a Celery task; with the Celery integration a job runs a task "
            "(a task object or its registered name)"
        )

    return validate


def _build_manager(app: Celery, settings: BeatxSettings, store: JobStore) -> JobManager:
    return JobManager(
        store,
        timezone=settings.timezone,
        job_defaults=settings.job_defaults,
        dispatcher=CeleryDispatcher(app),
        func_validator=task_validator(app),
    )


_managers: weakref.WeakKeyDictionary[Any, dict[tuple[tuple[str, str], ...], JobManager]] = (
    weakref.WeakKeyDictionary()
)
_managers_lock = threading.Lock()


def get_job_manager(app: Celery | None = None, **overrides: Any) -> JobManager:
    """The management API (a :class:`~beatx.JobManager`) bound to the store ``app`` is configured with.

    ``app`` defaults to ``celery.current_app``; ``overrides`` replace settings by field name
    (``store=``, ``key_prefix=``, ``timezone=``, ``job_defaults=`` ...). One manager is cached
    per app (and set of overrides). ``run_job_now`` publishes through a
    :class:`~beatx.dispatch.celery.CeleryDispatcher`. Jobs added here are picked up by a running
    beat at once (the Redis store announces every change).
    """
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    key = tuple(sorted((name, repr(value)) for name, value in overrides.items()))
    with _managers_lock:
        per_app = _managers.setdefault(app, {})
        manager = per_app.get(key)
        if manager is None:
            settings = BeatxSettings.from_app(app, **overrides)
            store = open_store(settings.store, key_prefix=settings.key_prefix, **settings.store_options())
            manager = per_app[key] = _build_manager(app, settings, store)
        return manager


#: The older name of :func:`get_job_manager` (it returns a manager, not a scheduler); kept.
get_scheduler = get_job_manager
