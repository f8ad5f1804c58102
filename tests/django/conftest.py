"""pytest-django set-up for the django_beatx tests, local to this folder.

Django is configured here, before any test imports it, so the rest of the suite (which never
imports Django) is untouched and ``pyproject.toml`` needs no Django key.
"""

from __future__ import annotations

import os

import django
import pytest
from django.apps import apps
from django.conf import settings

# Configure from tests.django.settings without exporting DJANGO_SETTINGS_MODULE, so the
# subprocesses other test folders start (celery workers, beats) never see these settings.
if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
    from tests.django import settings as test_settings

    settings.configure(
        **{name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    )
if not apps.ready:
    django.setup()

#: Whether the PostgreSQL alias is configured (the server answered when settings loaded).
HAS_POSTGRES = "postgres" in settings.DATABASES


def postgres_marks(*, transaction: bool = False) -> list[pytest.MarkDecorator]:
    """Marks for a test on the ``postgres`` alias. Without a server the test has no database
    mark; its ``postgres_available`` fixture then skips it (or fails it under CI=true)."""
    marks = [pytest.mark.postgres]
    if HAS_POSTGRES:
        marks.append(pytest.mark.django_db(databases=["postgres"], transaction=transaction))
    return marks


@pytest.fixture
def admin_user(django_user_model: type, db: None) -> object:
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")  # type: ignore[attr-defined]


@pytest.fixture
def admin_client_logged_in(client: object, admin_user: object) -> object:
    client.force_login(admin_user)  # type: ignore[attr-defined]
    return client
