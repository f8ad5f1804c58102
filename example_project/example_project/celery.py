"""The Celery app: ``celery -A example_project worker`` and ``celery -A example_project beat -S beatx``."""

from __future__ import annotations

import os

from celery import Celery

import beatx.celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
# Every CELERY_* Django setting configures Celery (CELERY_BEATX_STORE is beatx's beatx_store).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Workers record each run (start, end, duration, error) in the beatx store, which the admin's
# run history and the jobs' last error show; and "beatx" becomes the default beat scheduler.
beatx.celery.setup(app)
