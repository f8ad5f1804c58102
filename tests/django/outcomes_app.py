"""The Celery app of the run-outcome end-to-end test (``tests/django/test_run_outcomes_e2e.py``):
a beat (``celery -A tests.django.outcomes_app beat -S beatx``) and a worker with the beatx hook
(``beatx.celery.setup``), both on the test's PostgreSQL database through ``django://``. One
task per outcome: it succeeds, fails, asks for one retry and then succeeds, or runs long
(so that fires of its job are skipped by ``max_instances``)."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from django.conf import settings

import beatx.celery

if not settings.configured:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")

app = Celery("beatx_django_outcomes")
app.config_from_object("django.conf:settings", namespace="CELERY")
beatx.celery.setup(app)


@app.task(name="outcomes.succeed")
def succeed() -> str:
    return "ok"


@app.task(name="outcomes.fail")
def fail() -> None:
    raise ValueError("the invoice service said no")


@app.task(name="outcomes.slow")
def slow() -> str:
    time.sleep(4)
    return "slow"


@app.task(name="outcomes.flaky", bind=True, max_retries=3)
def flaky(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("upstream timed out"), countdown=0.5)
    return "ok after a retry"
