"""``ha.record``: appends one JSON row per execution to ``BEATX_TEST_RECORD_KEY``.

A row holds the job id and scheduled time (beatx's headers), the task id, the wall time at
which the body started (``at``), the message's ``origin`` (``gen<pid>@host`` of the process
that published it) and the worker's pid.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis
from celery import shared_task

_lock = threading.Lock()
_client: tuple[int, redis.Redis] | None = None


def redis_client() -> redis.Redis:
    """One client (thread-safe pool) per process."""
    global _client
    with _lock:
        if _client is None or _client[0] != os.getpid():
            _client = (os.getpid(), redis.Redis.from_url(os.environ["BEATX_TEST_RECORD_URL"]))
        return _client[1]


@shared_task(bind=True, name="ha.record")
def record(self: Any) -> None:
    started = time.time()
    request = self.request
    redis_client().rpush(
        os.environ["BEATX_TEST_RECORD_KEY"],
        json.dumps(
            {
                "job_id": getattr(request, "beatx_job_id", None),
                "scheduled_at": getattr(request, "beatx_scheduled_at", None),
                "task_id": request.id,
                "origin": getattr(request, "origin", None),
                "at": started,
                "pid": os.getpid(),
            }
        ),
    )
