"""A worker's run records survive a store outage: kept, then written in order when it is back.

The store is a private ``redis-server`` (AOF, fsync always) that the tests kill with SIGKILL
and start again on the same port and files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from beatx.celery import run_records
from beatx.celery.run_records import PendingRecord, RunRecordQueue
from beatx.jobs import Job
from beatx.stores.base import JobStore
from beatx.stores.redis import RedisStore
from beatx.triggers import IntervalTrigger
from tests.ha.chaos import RedisServer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", name="run-records", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(server: RedisServer) -> Iterator[RedisStore]:
    store = RedisStore(server.url(), socket_timeout=1.0)
    store.add_job(
        Job(id="j", func="tests.sample_tasks:record", trigger=IntervalTrigger(seconds=1), next_run_time=NOW)
    )
    yield store
    store.close()


def started(job: str, task: str, at: datetime = NOW) -> PendingRecord:
    return PendingRecord(f"start {task}", lambda s: s.run_started(job, task, started_at=at, timeout=3600))


def finished(job: str, task: str, error: str | None = None) -> PendingRecord:
    return PendingRecord(
        f"end {task}",
        lambda s: s.run_finished(
            job, task, finished_at=NOW + timedelta(seconds=1), duration=1.0, error=error
        ),
    )


def wait_empty(queue: RunRecordQueue, timeout: float = 15.0) -> float:
    started_at = time.monotonic()
    while queue.pending and time.monotonic() - started_at < timeout:
        time.sleep(0.05)
    assert queue.pending == 0, f"{queue.pending} record(s) still waiting after {timeout} s"
    return time.monotonic() - started_at


def test_a_run_end_lost_to_an_outage_is_written_when_the_store_is_back(
    server: RedisServer, store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    queue = RunRecordQueue(lambda: store, retry_interval=0.1)
    assert queue.submit(started("j", "t1"))
    assert store.running_count(NOW) == 1

    server.kill()
    assert server.proc is None or server.proc.poll() is not None  # the outage happened
    with caplog.at_level(logging.WARNING, logger="beatx.celery"):
        assert not queue.submit(finished("j", "t1"))
    assert queue.pending == 1
    assert "could not record end t1" in caplog.text and "kept" in caplog.text
    time.sleep(0.5)  # retries fail meanwhile
    assert queue.pending == 1

    server.start()
    wait_empty(queue)
    assert store.running_count(NOW) == 0  # without the retry: 1 until beatx_run_timeout
    job = store.get_job("j")
    assert job is not None and job.last_finished_at == NOW + timedelta(seconds=1)


def test_records_made_during_an_outage_are_written_in_order(server: RedisServer, store: RedisStore) -> None:
    queue = RunRecordQueue(lambda: store, retry_interval=0.1)
    server.kill()
    # A run that starts and ends while the store is down: its end must not land first (the
    # start written after it would leave the run in flight).
    assert not queue.submit(started("j", "t2"))
    server.start()  # the queue is not empty: even with the store back, the end waits its turn
    assert not queue.submit(finished("j", "t2", error="ValueError: boom"))
    wait_empty(queue)
    assert store.running_count(NOW) == 0
    job = store.get_job("j")
    assert job is not None and job.last_error == "ValueError: boom"


def test_past_the_bound_the_oldest_record_is_dropped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(run_records, "MAX_PENDING", 3)
    written: list[str] = []

    class Down(Exception):
        pass

    up = False

    def write(name: str) -> PendingRecord:
        def record(_: JobStore) -> None:
            if not up:
                raise Down("store down")
            written.append(name)

        return PendingRecord(name, record)

    queue = RunRecordQueue(lambda: None, retry_interval=0.05)  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.WARNING, logger="beatx.celery"):
        for name in ("a", "b", "c", "d"):
            queue.submit(write(name))
    assert queue.pending == 3
    assert "dropping the run record of a" in caplog.text
    up = True
    wait_empty(queue, timeout=5)
    assert written == ["b", "c", "d"]
