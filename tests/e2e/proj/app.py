"""The e2e Celery app, built from environment variables (see the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from celery import Celery

import beatx.celery

BEAT_ENTRY = "e2e-beat-entry"


def make_app(env: Mapping[str, str] | None = None) -> Celery:
    env = os.environ if env is None else env
    app = Celery("e2e", broker=env.get("BEATX_TEST_BROKER", "memory://"), include=["tests.e2e.proj.tasks"])
    app.conf.update(
        task_default_queue=env.get("BEATX_TEST_QUEUE", "celery"),
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        beatx_store=env.get("BEATX_TEST_STORE", "memory://"),
        beatx_key_prefix=env.get("BEATX_TEST_PREFIX", "beatx:"),
        beatx_lease_timeout=float(env.get("BEATX_TEST_LEASE_TIMEOUT", "10")),
        beatx_dedupe=env.get("BEATX_TEST_DEDUPE") == "1",
        beatx_alert_webhook=env.get("BEATX_TEST_ALERT_WEBHOOK") or None,
        beatx_alert_interval=float(env.get("BEATX_TEST_ALERT_INTERVAL", "10")),
        timezone="UTC",
    )
    if env.get("BEATX_TEST_BEAT_SCHEDULE") == "1":
        app.conf.beat_schedule = {
            BEAT_ENTRY: {"task": "e2e.record", "schedule": 1.0, "args": ("entry",)},
        }
    beatx.celery.setup(app)
    return app


app = make_app()
