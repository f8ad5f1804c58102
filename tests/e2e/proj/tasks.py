"""Tasks that record each execution in a Redis list (``BEATX_TEST_RECORD_KEY``)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import shared_task


@shared_task(bind=True, name="e2e.record")
def record(self: Any, tag: str, sleep: float = 0.0, fail: bool = False) -> str:
    started = time.time()
    client = redis.Redis.from_url(os.environ["BEATX_TEST_RECORD_URL"])
    try:
        client.rpush(
            os.environ["BEATX_TEST_RECORD_KEY"],
            json.dumps(
                {
                    "tag": tag,
                    "task_id": self.request.id,
                    "job_id": getattr(self.request, "beatx_job_id", None),
                    "scheduled_at": getattr(self.request, "beatx_scheduled_at", None),
                    "at": started,
                }
            ),
        )
    finally:
        client.close()
    if sleep:
        time.sleep(sleep)
    if fail:
        raise ValueError(f"boom {tag}")
    return tag
