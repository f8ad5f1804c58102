"""Setting Django up for the ``beatx`` command when the store is ``django://``.

``manage.py`` and ``celery -A`` set Django up for the user; the ``beatx`` command does the same
before it opens a Django store, in every form the docs give (``--app PROJ``, ``--store django://``,
``--config`` with ``backend: django``), so a user never meets ``AppRegistryNotReady``:

1. the settings module is ``DJANGO_SETTINGS_MODULE`` or, when it is unset, the one the
   ``manage.py`` of the current directory names (as ``manage.py`` itself would set it);
2. ``django.setup()`` runs once;
3. ``django_beatx`` must be in ``INSTALLED_APPS``.

Every failure is one :class:`~beatx.ConfigurationError` line saying what to do.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from beatx.errors import ConfigurationError

__all__ = ["is_django_url", "settings_module_from_manage_py", "setup_django"]

SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"

# What `django-admin startproject` writes in manage.py (and what users keep).
_SETTINGS_DEFAULT = re.compile(
    r"""os\.environ\.setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']\s*\)"""
)


def is_django_url(url: str | None) -> bool:
    return bool(url) and str(url).partition("://")[0].lower() == "django" and "://" in str(url)


def settings_module_from_manage_py(directory: Path) -> str | None:
    """The settings module ``directory/manage.py`` sets by default, or None."""
    try:
        text = (directory / "manage.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = _SETTINGS_DEFAULT.search(text)
    return found.group(1) if found else None


def setup_django(url: str) -> None:
    """Make ``url`` (a ``django://`` store URL) openable in this process.

    :raises ConfigurationError: one line: Django is missing, no settings module is named, the
        settings cannot be imported, or ``django_beatx`` is not an installed app.
    """
    try:
        import django
        from django.apps import apps
        from django.conf import settings
    except ImportError as exc:
        raise ConfigurationError(f"store {url!r} needs Django: pip install 'beatx[django]' ({exc})") from exc
    if not apps.ready:
        if not settings.configured:
            cwd = Path.cwd()
            # Like manage.py: the project's packages are importable from its directory.
            if str(cwd) not in sys.path:
                sys.path.insert(0, str(cwd))
            if not os.environ.get(SETTINGS_ENV):
                module = settings_module_from_manage_py(cwd)
                if module is None:
                    raise ConfigurationError(
                        f"store {url!r} needs the Django settings: set {SETTINGS_ENV} "
                        "(e.g. proj.settings) or run beatx in the directory of manage.py"
                    )
                os.environ[SETTINGS_ENV] = module
        try:
            django.setup()
        except Exception as exc:
            module = os.environ.get(SETTINGS_ENV, "")
            raise ConfigurationError(
                f"store {url!r}: cannot set Django up with the settings {module!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if not apps.is_installed("django_beatx"):
        raise ConfigurationError(
            f"store {url!r} needs 'django_beatx' in INSTALLED_APPS "
            f"(settings {os.environ.get(SETTINGS_ENV, '')!r})"
        )
