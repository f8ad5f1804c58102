"""The Celery app and the one task every benchmark schedules.

``make_app()`` builds a fresh app on the benchmark broker database. The worker smoke step
runs an unmodified ``celery -A benchmarks.tasks worker`` against it: the task only counts
itself in Redis (``INCR``), so the benchmark can check that every sampled message ran.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from benchmarks.common import QUEUE, TASK, broker_url, redis_client, store_db

#: The Redis key (on the store database) the task increments.
COUNTER_KEY = "bench:consumed"


def make_app(name: str = "bench", **conf: Any) -> Celery:
    app = Celery(name, broker=broker_url(), set_as_current=True)
    app.conf.update(
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        **conf,
    )
    app.task(name=TASK)(noop)
    return app


def declare_queue(app: Celery) -> None:
    """Declare the default queue (and its binding) on the broker, as a worker would."""
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()


def noop(*args: Any, **kwargs: Any) -> None:
    client = redis_client(store_db())
    try:
        client.incr(COUNTER_KEY)
    finally:
        client.close()


# ``celery -A benchmarks.tasks worker`` finds this app.
app = make_app("bench-worker") if os.environ.get("BEATX_BENCH_WORKER") else None
