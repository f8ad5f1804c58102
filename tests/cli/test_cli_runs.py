"""``beatx jobs runs ID`` against a real Redis store, whose ledger a beat's write-back and a
worker's records filled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from beatx.jobs import Job
from beatx.stores.base import JobRelease
from beatx.stores.redis import RedisStore
from beatx.triggers import IntervalTrigger
from tests.cli.test_cli import Beatx, beatx, error_line

__all__ = ["beatx"]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, key_prefix=key_prefix)
    yield store
    store.close()


def _fired(store: RedisStore) -> None:
    store.add_job(
        Job(id="nightly", func="app.tasks.nightly", trigger=IntervalTrigger(seconds=60), next_run_time=T0)
    )
    (job,) = store.acquire_due_jobs(T0, limit=1)
    fired = (T0, T0 + timedelta(seconds=60))
    store.release_jobs(
        [
            JobRelease(
                job_id="nightly",
                claim=job.claim,
                next_run_time=T0 + timedelta(seconds=120),
                status=job.status,
                last_run_time=fired[-1],
                fired=fired,
                task_ids=("t-0", "t-60"),
            )
        ]
    )
    now = datetime.now(UTC)
    store.run_started("nightly", "t-0", started_at=now, timeout=60, worker="celery@w1")
    store.run_finished(
        "nightly", "t-0", finished_at=now, duration=0.25, error="KeyError: 'invoice'", worker="celery@w1"
    )


@pytest.mark.redis
def test_jobs_runs_prints_the_ledger_as_a_table_and_as_json(beatx: Beatx, store: RedisStore) -> None:
    _fired(store)
    table = beatx("jobs", "runs", "nightly")
    assert table.returncode == 0, table.stderr
    header, newest, oldest = table.stdout.splitlines()
    assert header.split()[:4] == ["NOMINAL", "LATE", "STARTED", "DURATION"]
    assert newest.startswith("2026-03-02 12:01:00 UTC") and " sent " in newest
    assert oldest.startswith("2026-03-02 12:00:00 UTC") and " failed " in oldest
    assert "0.250s" in oldest and "celery@w1" in oldest and "KeyError: 'invoice'" in oldest

    as_json = beatx("jobs", "runs", "nightly", "--json", "--limit", "1")
    assert as_json.returncode == 0, as_json.stderr
    (newest,) = json.loads(as_json.stdout)
    assert newest["task_id"] == "t-60" and newest["outcome"] == "sent"
    assert newest["scheduled_at"] == (T0 + timedelta(seconds=60)).isoformat()
    assert newest["lateness"] > 0


@pytest.mark.redis
def test_jobs_runs_of_an_unknown_job_is_an_error(beatx: Beatx) -> None:
    result = beatx("jobs", "runs", "missing")
    assert result.returncode == 1
    assert "missing" in error_line(result)
