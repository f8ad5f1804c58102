"""The Celery app of the Django test project (``celery -A tests.django.celery_app beat -S beatx``)."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

if not settings.configured:  # a subprocess; the test process configures Django in conftest.py
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")

app = Celery("beatx_django_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="reports.send_digest")
def send_digest(*args: object, **kwargs: object) -> None:
    """A registered task the admin offers in its task list."""
