"""The HA Celery app, built from environment variables (see the package docstring).

Its workers also record every delivery of a beatx fire (``<record key>deliveries``), before
beatx's duplicate guard may drop it: who sent it (``origin``) and when it arrived.

``BEATX_TEST_BEAT_JOBS=N`` (default 0) gives the app a ``beat_schedule`` of N entries
``chaos-000`` ... running ``ha.record`` every ``BEATX_TEST_BEAT_INTERVAL`` seconds (default 1)
with ``relative=True`` (fire times on multiples of the interval since the epoch, so a job
imported again keeps its grid), with no policy options: the jobs get beatx's defaults.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from celery import Celery, signals

import beatx.celery

#: The Redis list (on ``BEATX_TEST_RECORD_URL``) that gets one row per delivery.
DELIVERY_KEY_SUFFIX = "deliveries"
#: The ids of the ``beat_schedule`` entries of ``BEATX_TEST_BEAT_JOBS``.
BEAT_JOB_PREFIX = "chaos-"


def beat_job_ids(count: int) -> list[str]:
    return [f"{BEAT_JOB_PREFIX}{n:03d}" for n in range(count)]


def beat_schedule(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The ``beat_schedule`` of ``BEATX_TEST_BEAT_JOBS`` / ``BEATX_TEST_BEAT_INTERVAL``."""
    count = int(env.get("BEATX_TEST_BEAT_JOBS") or 0)
    interval = float(env.get("BEATX_TEST_BEAT_INTERVAL") or 1)
    return {
        job_id: {"task": "ha.record", "schedule": interval, "relative": True}
        for job_id in beat_job_ids(count)
    }


def _on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Record every delivery of a beatx fire, before beatx's duplicate guard may drop it."""
    request = getattr(task or sender, "request", None)
    job_id = getattr(request, "beatx_job_id", None)
    if request is None or not job_id:
        return
    from tests.ha.proj.tasks import redis_client

    redis_client().rpush(
        os.environ["BEATX_TEST_RECORD_KEY"] + DELIVERY_KEY_SUFFIX,
        json.dumps(
            {
                "job_id": job_id,
                "scheduled_at": getattr(request, "beatx_scheduled_at", None),
                "task_id": task_id,
                "origin": getattr(request, "origin", None),
                "at": time.time(),
            }
        ),
    )


def make_app(env: Mapping[str, str] | None = None) -> Celery:
    env = os.environ if env is None else env
    app = Celery("ha", broker=env.get("BEATX_TEST_BROKER", "memory://"), include=["tests.ha.proj.tasks"])
    app.conf.update(
        task_default_queue=env.get("BEATX_TEST_QUEUE", "celery"),
        broker_connection_retry_on_startup=True,
        # The chaos suite stops the broker for 10 s: the worker reconnects for as long as it
        # takes (its default gives up after 100 retries and the process exits).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        beatx_store=env.get("BEATX_TEST_STORE", "memory://"),
        beatx_key_prefix=env.get("BEATX_TEST_PREFIX", "beatx:"),
        beatx_lease_timeout=float(env.get("BEATX_TEST_LEASE_TIMEOUT", "10")),
        beatx_dedupe=env.get("BEATX_TEST_DEDUPE") == "1",
        # The harness reads when each fire went out from the beats' per-fire lines
        # (tests.ha.chaos.Cluster.dispatches); at INFO they are logged only with this.
        beatx_log_each_fire=True,
        beat_schedule=beat_schedule(env),
        timezone="UTC",
    )
    beatx.celery.setup(app)
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="tests.ha.deliveries")
    return app


app = make_app()
