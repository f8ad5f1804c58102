"""A beat notices a store that lost its data, restores the configured jobs and reports it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from beatx.beat import Beat
from beatx.manager import JobManager
from beatx.store_watch import EPOCH_META, read_data_loss
from beatx.stores.redis import RedisStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger


@pytest.fixture
def store(redis_url: str, key_prefix: str, clock: FakeClock) -> Iterator[RedisStore]:
    store = RedisStore(redis_url, key_prefix=key_prefix, clock=clock)
    yield store
    store.close()


def empty(redis_url: str, key_prefix: str) -> int:
    """What a Redis restarted without persistence does to this store: every key gone."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{key_prefix}*"))
    deleted = int(client.delete(*keys)) if keys else 0
    client.close()
    return deleted


def configured(manager: JobManager, clock: FakeClock) -> str:
    """What a beat_schedule import does: ensure the configured job."""
    manager.ensure_job("t.job", IntervalTrigger(seconds=1, start_date=clock.now()), id="configured")
    return "re-imported 1 configured job"


def test_a_beat_restores_the_configured_jobs_after_the_store_lost_its_data(
    store: RedisStore, redis_url: str, key_prefix: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    manager = JobManager(store, clock=clock)
    restores: list[str] = []

    def restore() -> str:
        restores.append("restore")
        return configured(manager, clock)

    configured(manager, clock)
    manager.add_job("t.job", IntervalTrigger(seconds=1, start_date=clock.now()), id="added-at-run-time")
    dispatcher = RecordingDispatcher()
    beat = Beat(store, dispatcher, clock=clock, lease_timeout=6, restore=restore)
    for _ in range(6):
        beat.run_once()
        clock.advance(0.5)
    assert {f.job_id for f in dispatcher.fires} == {"configured", "added-at-run-time"}
    assert restores == [] and manager.health().data_loss is None

    assert empty(redis_url, key_prefix) > 0
    lost_at = clock.now()
    dispatcher.clear()
    with caplog.at_level(logging.ERROR, logger="beatx.beat"):
        for _ in range(12):
            beat.run_once()
            clock.advance(0.5)
    assert restores == ["restore"]
    # The configured job is back on its grid within one lease; the other is reported lost.
    resumed = [f.scheduled_at for f in dispatcher.fires if f.job_id == "configured"]
    assert resumed and resumed[0] - lost_at <= timedelta(seconds=6)
    assert "added-at-run-time" not in {f.job_id for f in dispatcher.fires}
    assert any(
        "lost its data" in r.getMessage() and "re-imported 1" in r.getMessage() for r in caplog.records
    )
    loss = read_data_loss(store)
    assert loss is not None and loss.detected_by == beat.leadership.base_owner
    health = manager.health()
    assert health.data_loss is not None and "must be added again" in health.data_loss


def three_beats(store: RedisStore, clock: FakeClock, restores: list[str]) -> list[Beat]:
    """Three beats on one store whose restore hook notes each call in ``restores``."""

    def restore() -> str:
        restores.append("x")
        return "restored"

    return [
        Beat(store, RecordingDispatcher(), clock=clock, lease_timeout=6, restore=restore) for _ in range(3)
    ]


def test_a_fresh_store_is_not_taken_for_a_loss(store: RedisStore, clock: FakeClock) -> None:
    restores: list[str] = []
    beats = three_beats(store, clock, restores)
    for _ in range(10):
        for beat in beats:
            beat.run_once()
        clock.advance(1)
    assert restores == []
    assert store.read_meta(EPOCH_META)
    assert read_data_loss(store) is None


def test_every_beat_notices_the_loss_once(
    store: RedisStore, redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    restores: list[str] = []
    beats = three_beats(store, clock, restores)
    for beat in beats:
        beat.run_once()
    empty(redis_url, key_prefix)
    for _ in range(10):
        clock.advance(1)
        for beat in beats:
            beat.run_once()
    assert restores == ["x", "x", "x"]
