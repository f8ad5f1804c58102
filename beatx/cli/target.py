"""Choosing the store: the global options ``--app`` / ``--config`` / ``--store`` and the
:class:`~beatx.JobManager` they name."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from beatx.cli.django_setup import is_django_url, setup_django
from beatx.errors import ConfigurationError

if TYPE_CHECKING:
    from beatx.manager import JobManager
    from beatx.stores.base import JobStore

logger = logging.getLogger("beatx.cli")


@dataclass(slots=True)
class Target:
    """Where the jobs are, as the global options name it; the manager is built on first use."""

    app: str | None
    config: str | None
    store: str | None
    key_prefix: str | None
    timezone: str | None
    _manager: JobManager | None = None
    #: The Celery app of ``--app``, once loaded.
    _celery_app: Any = None

    def check_one(self) -> None:
        given = [name for name, value in (("--app", self.app), ("--config", self.config)) if value]
        if self.store:
            given.append("--store")
        if len(given) > 1:
            raise click.UsageError(f"give one of --app, --config and --store, not {' and '.join(given)}")
        if not given:
            raise click.UsageError(
                "no store: give --app PROJ, --config FILE or --store URL (or set BEATX_STORE)"
            )

    def manager(self) -> JobManager:
        if self._manager is None:
            self.check_one()
            self._manager = self._build()
            # The audit log: what the command line changes, and the user who ran it.
            self._manager.source, self._manager.actor = "cli", _user()
            ctx = click.get_current_context()
            ctx.call_on_close(self._close)
        return self._manager

    def _build(self) -> JobManager:
        from beatx.manager import JobManager
        from beatx.stores import open_store

        if self.app:
            overrides = {"key_prefix": self.key_prefix, "timezone": self.timezone}
            manager, self._celery_app = _celery_manager(self.app, {k: v for k, v in overrides.items() if v})
            return manager
        if self.config:
            from beatx.config import SchedulerConfig
            from beatx.scheduler import check_local_func

            add_config_directory_to_path(self.config)
            config = SchedulerConfig.from_yaml(self.config)
            if is_django_url(config.store_url):
                setup_django(config.store_url)
            store = open_store(config.store_url, key_prefix=self.key_prefix or config.key_prefix)
            _warn_if_memory(store)
            # Jobs of a --config store run in-process under `beatx run`: their func must import.
            return JobManager(
                store,
                timezone=self.timezone or config.timezone,
                job_defaults=config.job_defaults,
                func_validator=check_local_func,
            )
        assert self.store is not None
        if is_django_url(self.store):
            setup_django(self.store)
        store = open_store(self.store, key_prefix=self.key_prefix or "beatx:")
        _warn_if_memory(store)
        return JobManager(store, timezone=self.timezone or "UTC")

    def task_warning(self, func: str) -> str | None:
        """Why the task ``func`` names may never run (the ``--app`` app knows its tasks and
        not this one), or None."""
        if self._celery_app is None or ":" in func:
            return None
        from beatx.celery.manager_cache import unregistered_task_warning

        return unregistered_task_warning(self._celery_app, func)

    def _close(self) -> None:
        if self._manager is not None:
            try:
                self._manager.store.close()
            except Exception as exc:
                logger.debug("closing the store failed: %s", exc)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return None


def _celery_manager(app_path: str, overrides: dict[str, str]) -> tuple[JobManager, Any]:
    # Like `celery -A`: the app is looked up from the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        from celery.app.utils import find_app
    except ImportError as exc:
        raise ConfigurationError(f"--app needs Celery: pip install 'beatx[celery]' ({exc})") from exc
    try:
        app = find_app(app_path)
    except Exception as exc:
        raise ConfigurationError(f"cannot load the Celery app {app_path!r}: {exc}") from exc
    try:
        from beatx.celery import BeatxSettings, get_job_manager
    except ImportError as exc:
        raise ConfigurationError(f"--app needs beatx's Celery integration: {exc}") from exc
    store_url = BeatxSettings.from_app(app, **overrides).store
    if is_django_url(store_url):
        # What `celery -A proj beat` does before it opens the store: Django's app registry.
        setup_django(store_url)
    manager: JobManager = get_job_manager(app, **overrides)
    _warn_if_memory(manager.store)  # the app sets no beatx_store (or sets memory://)
    return manager, app


def add_config_directory_to_path(config_path: str) -> None:
    """Make the modules next to a YAML configuration importable (``module:function`` jobs), as
    ``celery -A`` finds the app from the current directory."""
    directory = os.path.dirname(os.path.abspath(config_path))
    if directory not in sys.path:
        sys.path.insert(0, directory)


def _warn_if_memory(store: JobStore) -> None:
    from beatx.stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        click.echo(
            "warning: the memory:// store lives only as long as this command; use a redis:// store",
            err=True,
        )


def _target(ctx: click.Context) -> Target:
    target = ctx.find_object(Target)
    assert target is not None
    return target
