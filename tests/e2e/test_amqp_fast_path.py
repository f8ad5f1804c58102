"""An unmodified Celery worker runs what the AMQP path of CeleryDispatcher publishes to RabbitMQ
(batches, publisher confirms, messages from templates)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from beatx import IntervalTrigger, Job
from beatx.dispatch.celery import CeleryDispatcher
from beatx.jobs import Fire

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.rabbitmq
@pytest.mark.redis
def test_a_real_celery_worker_runs_the_fires_of_the_amqp_path(
    cluster_factory: Callable[..., Any], rabbitmq_url: str, redis_url: str
) -> None:
    cluster = cluster_factory(rabbitmq_url, redis_url)
    cluster.worker(concurrency=4)
    dispatcher = CeleryDispatcher(cluster.app())
    jobs = [
        Job(id=f"worked-{i}", func="e2e.record", trigger=IntervalTrigger(seconds=10), args=(f"tag-{i}",))
        for i in range(20)
    ]
    fires = [Fire(job, AT) for job in jobs]
    try:
        assert dispatcher.dispatch(fires) == [None] * 20
        assert dispatcher._confirmed is not None, "the AMQP path was not taken"
        rows = cluster.wait_for(lambda: len(rows := cluster.records()) >= 20 and rows, 20, "20 runs")
    finally:
        dispatcher.close()
    assert sorted(row["task_id"] for row in rows) == sorted(fire.task_id for fire in fires)
    assert sorted(row["tag"] for row in rows) == sorted(f"tag-{i}" for i in range(20))
    assert sorted(row["job_id"] for row in rows) == sorted(fire.job_id for fire in fires)
    assert {row["scheduled_at"] for row in rows} == {AT.isoformat()}
