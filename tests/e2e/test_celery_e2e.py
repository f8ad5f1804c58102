"""End to end: real ``celery worker`` and ``celery beat -S beatx`` subprocesses.

Redis broker + Redis store for the main set; one test with RabbitMQ as the broker.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from beatx import CronTrigger, DateTimeTrigger, IntervalTrigger, JobStatus
from beatx.celery import get_scheduler
from beatx.jobs import fire_task_id
from tests.e2e.conftest import CeleryCluster, parse_time
from tests.e2e.proj.app import BEAT_ENTRY


def _lateness(row: dict[str, object]) -> float:
    return float(row["at"]) - parse_time(str(row["scheduled_at"])).timestamp()  # type: ignore[arg-type]


@pytest.mark.redis
def test_jobs_of_every_kind_run_on_the_worker(cluster: CeleryCluster) -> None:
    """Interval, cron, one-shot; a job added at run time; pause/resume; overlap; failure."""
    cluster.worker()
    cluster.beat()
    manager = get_scheduler(cluster.app())

    # Cron: the next whole minute (the only wait of up to 60 s in this module).
    now = datetime.now(UTC)
    cron_at = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    manager.add_job(
        "e2e.record",
        CronTrigger(f"{cron_at.minute} {cron_at.hour} * * *", timezone="UTC"),
        id="cron",
        args=["cron"],
    )
    manager.add_job("e2e.record", IntervalTrigger(seconds=1), id="interval", args=["interval"])
    manager.add_job("e2e.record", IntervalTrigger(seconds=1), id="slow", args=["slow"], kwargs={"sleep": 2.5})
    manager.add_job(
        "e2e.record", IntervalTrigger(seconds=1), id="failing", args=["failing"], kwargs={"fail": True}
    )

    # A one-shot added from application code while beat runs: executed within 1 s of its time.
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    manager.add_job("e2e.record", DateTimeTrigger(due), id="once", args=["once"])
    (row,) = cluster.wait_for(lambda: cluster.records("once"), 10, "the one-shot")
    assert row["job_id"] == "once"
    assert row["task_id"] == fire_task_id("once", due)
    assert parse_time(row["scheduled_at"]) == due
    assert 0 <= row["at"] - due.timestamp() < 1.0
    cluster.wait_for(
        lambda: (job := manager.get_job("once")) and job.status is JobStatus.COMPLETED, 5, "once COMPLETED"
    )

    # Interval: every second, each fire on time and with its own deterministic task id.
    rows = cluster.wait_for(
        lambda: len(rows := cluster.records("interval")) >= 3 and rows, 10, "3 interval runs"
    )
    assert all(_lateness(r) < 1.0 for r in rows)
    assert len({r["task_id"] for r in rows}) == len(rows)

    # Pause stops fires; resume restarts them.
    assert manager.pause_job("interval")
    time.sleep(0.3)
    paused_count = len(cluster.records("interval"))
    time.sleep(2.2)
    assert len(cluster.records("interval")) == paused_count
    assert manager.resume_job("interval")
    cluster.wait_for(lambda: len(cluster.records("interval")) >= paused_count + 2, 5, "runs after resume")

    # Overlap: a 2.5 s task every second with max_instances=1 has fires skipped and counted.
    slow = cluster.wait_for(
        lambda: (job := manager.get_job("slow")) and job.skip_count > 0 and job.total_run_count >= 2 and job,
        12,
        "skipped overlapping fires",
    )
    starts = sorted(r["at"] for r in cluster.records("slow"))
    assert all(b - a >= 2.4 for a, b in itertools.pairwise(starts)), starts
    assert slow.last_duration is not None and slow.last_duration >= 2.4

    # A failing task turns its job FAILED with the error text.
    failing = cluster.wait_for(
        lambda: (job := manager.get_job("failing")) and job.status is JobStatus.FAILED and job, 10, "FAILED"
    )
    assert failing.last_error == "ValueError: boom failing"

    # Cron: fired at its minute.
    (cron_row,) = cluster.wait_for(
        lambda: cluster.records("cron"), max(5.0, (cron_at - datetime.now(UTC)).total_seconds() + 5), "cron"
    )
    assert parse_time(cron_row["scheduled_at"]) == cron_at
    assert _lateness(cron_row) < 1.0


@pytest.mark.redis
def test_beat_schedule_entry_runs_and_restart_keeps_jobs(cluster_factory, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    """A beat_schedule entry runs unchanged; SIGTERM releases the lease; a restart keeps every
    job and its run counts."""
    cluster = cluster_factory(redis_url, redis_url, BEATX_TEST_BEAT_SCHEDULE="1")
    cluster.worker()
    beat = cluster.beat()
    manager = get_scheduler(cluster.app())
    manager.add_job("e2e.record", IntervalTrigger(seconds=1), id="runtime", args=["runtime"])
    cluster.wait_for(lambda: len(cluster.records("entry")) >= 2, 10, "beat_schedule entry runs")
    cluster.wait_for(lambda: len(cluster.records("runtime")) >= 2, 10, "runtime job runs")
    entry = manager.get_job(BEAT_ENTRY)
    assert entry is not None and entry.func_ref == "e2e.record" and entry.args == ("entry",)
    assert entry.options["beatx_source"] == "beat_schedule"
    assert cluster.records("entry")[0]["job_id"] == BEAT_ENTRY

    assert beat.stop(timeout=10) == 0, beat.output()[-3000:]
    assert manager.health().leader is None  # the lease was released on SIGTERM
    before = {job.id: job.total_run_count for job in manager.get_jobs()}
    assert before[BEAT_ENTRY] >= 2 and before["runtime"] >= 2
    time.sleep(1.5)
    assert {job.id: job.total_run_count for job in manager.get_jobs()} == before  # no beat, no fires

    started = time.monotonic()
    cluster.beat()
    assert time.monotonic() - started < 10  # the lease was free: taken at once
    cluster.wait_for(
        lambda: all(
            (manager.get_job(i) or entry).total_run_count >= before[i] + 2 for i in (BEAT_ENTRY, "runtime")
        ),
        10,
        "runs continue after the restart",
    )
    assert sorted(job.id for job in manager.get_jobs()) == sorted(before)


@pytest.mark.redis
def test_duplicate_delivery_is_dropped_with_dedupe(cluster_factory, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(redis_url, redis_url, BEATX_TEST_DEDUPE="1")
    cluster.worker()
    app = cluster.app()
    manager = get_scheduler(app)
    manager.add_job("e2e.record", DateTimeTrigger("2099-01-01T00:00:00"), id="dup", args=["dup"])
    task_id = fire_task_id("dup", datetime(2026, 1, 1, tzinfo=UTC))
    headers = {"beatx_job_id": "dup", "beatx_scheduled_at": "2026-01-01T00:00:00+00:00"}
    for _ in range(2):
        app.send_task("e2e.record", args=["dup"], task_id=task_id, headers=headers)
    app.send_task("e2e.record", args=["other"], headers=headers)
    cluster.wait_for(lambda: cluster.records("other"), 10, "the control task")
    time.sleep(0.5)
    assert len(cluster.records("dup")) == 1
    job = manager.get_job("dup")
    assert job is not None and job.running == 0


@pytest.mark.rabbitmq
@pytest.mark.redis
def test_interval_job_through_rabbitmq(cluster_factory, rabbitmq_url: str, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(rabbitmq_url, redis_url)
    cluster.worker()
    cluster.beat()
    manager = get_scheduler(cluster.app())
    manager.add_job("e2e.record", IntervalTrigger(seconds=1), id="amqp", args=["amqp"])
    rows = cluster.wait_for(
        lambda: len(rows := cluster.records("amqp")) >= 3 and rows, 15, "3 runs via RabbitMQ"
    )
    assert all(r["job_id"] == "amqp" for r in rows)
    assert all(_lateness(r) < 1.0 for r in rows)
    job = cluster.wait_for(
        lambda: (j := manager.get_job("amqp")) and j.last_finished_at and j, 5, "run state"
    )
    assert job.total_run_count >= 3 and job.status is JobStatus.ACTIVE
