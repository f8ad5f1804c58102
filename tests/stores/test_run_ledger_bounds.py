"""How the memory and Redis stores bound their run ledgers (count and age per job); the
Django store's bound is ``beatx_prune_runs`` (``tests/django/test_run_ledger_django.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from beatx.errors import ConfigurationError
from beatx.stores.base import JobStore
from beatx.stores.memory import MemoryStore
from beatx.stores.redis import RedisStore
from beatx.testing import FakeClock
from tests.stores.ledger_contract import T0, make_job, release_of


@pytest.fixture(params=["memory", "redis"])
def bounded(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[JobStore]:
    """A store keeping 5 runs per job for one day."""
    if request.param == "memory":
        yield MemoryStore(clock=clock, run_history=5, run_history_days=1)
        return
    redis_url = request.getfixturevalue("redis_url")
    key_prefix = request.getfixturevalue("key_prefix")
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock, run_history=5, run_history_days=1)
    yield store
    store.close()


def _fire_many(store: JobStore, clock: FakeClock, count: int) -> None:
    store.add_job(make_job("a", at=T0))
    for n in range(count):
        at = T0 + timedelta(seconds=10 * n)
        clock.set(at)
        (job,) = store.acquire_due_jobs(at, limit=1)
        store.release_jobs(
            [release_of(job, fired=(at,), task_ids=(f"t{n}",), next_run_time=at + timedelta(seconds=10))]
        )
        store.run_started("a", f"t{n}", started_at=at, timeout=60, worker="w")
        store.run_finished("a", f"t{n}", finished_at=at, duration=0.1, error=None, worker="w")


def test_the_ledger_keeps_the_latest_runs_of_each_job(bounded: JobStore, clock: FakeClock) -> None:
    _fire_many(bounded, clock, 300)
    runs = bounded.job_runs("a", limit=1000)
    # Exactly 5 in memory (a ring); Redis trims its stream near 4 entries a run (MAXLEN ~).
    assert 5 <= len(runs) <= 150
    assert runs[0].task_id == "t299"
    assert [int(r.task_id[1:]) for r in runs] == sorted((int(r.task_id[1:]) for r in runs), reverse=True)
    assert all(r.outcome.value == "succeeded" for r in runs)


def test_runs_older_than_the_history_age_are_left_out(bounded: JobStore, clock: FakeClock) -> None:
    _fire_many(bounded, clock, 2)
    assert len(bounded.job_runs("a")) == 2
    clock.advance(days=1, seconds=60)
    assert bounded.job_runs("a") == []


def test_a_redis_ledger_expires_after_the_history_age(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock, run_history=5, run_history_days=0.5)
    try:
        _fire_many(store, clock, 1)
        ttl = store._client.ttl(f"{key_prefix}runs:a")
        assert 43_000 < ttl <= 43_200
    finally:
        store.close()


def test_a_history_of_zero_keeps_no_runs(redis_url: str, key_prefix: str, clock: FakeClock) -> None:
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock, run_history=0)
    try:
        _fire_many(store, clock, 2)
        assert store.job_runs("a") == []
        assert not store._client.exists(f"{key_prefix}runs:a")
        job = store.get_job("a")
        assert job is not None and job.total_run_count == 2
    finally:
        store.close()
    with pytest.raises(ConfigurationError):
        RedisStore(redis_url, key_prefix=key_prefix, run_history=-1)
