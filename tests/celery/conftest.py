"""Fixtures of the Celery tests: an app on a real Redis broker, and what its queues hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

#: The app's default queue (a Redis list on the broker).
DEFAULT_QUEUE = "default-q"


@pytest.fixture
def broker(redis_url: str) -> Iterator[tuple[Celery, redis.Redis]]:
    app = Celery("dispatch-test", broker=redis_url, set_as_current=False)
    app.conf.task_default_queue = DEFAULT_QUEUE
    client = redis.Redis.from_url(redis_url)
    try:
        yield app, client
    finally:
        client.close()


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The messages of ``queue``, oldest first (kombu LPUSHes, the consumer BRPOPs)."""
    return [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
