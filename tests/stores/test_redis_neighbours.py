"""Two deployments on one Redis server: pub/sub channels are server-wide, so each store's
change channel names its database and key prefix; a neighbour's changes must not wake a beat.

The wake-ups of a real idle :class:`~beatx.beat.Beat` are counted while another deployment
(another database, the same key prefix) changes its jobs at 10 changes/s; the same count
with the changes made on the beat's own deployment shows the count does see wake-ups.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from beatx.beat import Beat
from beatx.manager import JobManager
from beatx.stores.redis import RedisStore
from beatx.testing import RecordingDispatcher
from beatx.triggers import DateTimeTrigger

#: Changes the neighbour makes, one every 0.1 s.
CHANGES = 15


@dataclass
class Counts:
    ticks: int = 0
    wake_ups: int = 0


def run_idle_beat(store: RedisStore, stop: threading.Event, counts: Counts) -> None:
    """Run a beat on ``store`` as ``celery beat`` does (tick, then wait for a change or the
    next tick's time) until ``stop``, counting its ticks and the waits a change cut short."""
    wait_for_change = store.wait_for_change

    def counted(timeout: float) -> bool:
        woke = wait_for_change(min(timeout, 0.2) if stop.is_set() else timeout)
        counts.wake_ups += woke
        return woke

    store.wait_for_change = counted  # type: ignore[method-assign]
    beat = Beat(store, RecordingDispatcher(), lease_timeout=30.0)
    try:
        while not stop.is_set():
            counts.ticks += 1
            beat.wait(min(beat.run_once(), 1.0))  # 1 s at most, so the loop sees ``stop``
    finally:
        beat.close()


@pytest.fixture
def stores(redis_url: str, other_redis_url: str, key_prefix: str) -> Iterator[tuple[RedisStore, RedisStore]]:
    """The beat's store, and the neighbour's: another database, the same key prefix."""
    mine = RedisStore(redis_url, key_prefix=key_prefix)
    neighbour = RedisStore(other_redis_url, key_prefix=key_prefix)
    try:
        yield mine, neighbour
    finally:
        mine.close()
        neighbour.close()


def count_while_changing(beat_store: RedisStore, changed_store: RedisStore) -> Counts:
    """Counts of a beat idle on ``beat_store`` while ``changed_store`` gets :data:`CHANGES`
    job edits, 0.1 s apart."""
    later = datetime.now(UTC) + timedelta(hours=1)
    JobManager(beat_store).add_job("tests.sample_tasks:record", DateTimeTrigger(later), id="idle")
    editor = JobManager(changed_store)
    counts = Counts()
    stop = threading.Event()
    runner = threading.Thread(target=run_idle_beat, args=(beat_store, stop, counts))
    runner.start()
    try:
        time.sleep(0.3)  # the beat has ticked once and waits
        before = Counts(counts.ticks, counts.wake_ups)
        for n in range(CHANGES):
            editor.add_job("tests.sample_tasks:record", DateTimeTrigger(later), id=f"edit-{n}")
            time.sleep(0.1)
        time.sleep(0.2)
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    return Counts(counts.ticks - before.ticks, counts.wake_ups - before.wake_ups)


def test_a_neighbour_deployment_on_another_database_does_not_wake_the_beat(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    mine, neighbour = stores
    counts = count_while_changing(mine, neighbour)
    assert counts.wake_ups == 0, (
        f"{CHANGES} changes on another database woke the beat {counts.wake_ups} times"
    )
    # The beat leads and is idle: it ticks when its 1-s wait ends, not per neighbour change.
    assert counts.ticks <= 3, counts


def test_changes_on_the_beats_own_deployment_wake_it(
    stores: tuple[RedisStore, RedisStore], redis_url: str, key_prefix: str
) -> None:
    """The control: the same count sees the wake-ups of changes made on the beat's deployment
    (another client of the same database and prefix)."""
    mine, _ = stores
    same_deployment = RedisStore(redis_url, key_prefix=key_prefix)
    try:
        counts = count_while_changing(mine, same_deployment)
    finally:
        same_deployment.close()
    # Each change wakes the waiting beat; two close together may be seen as one.
    assert counts.wake_ups >= CHANGES // 2, counts
    assert counts.ticks >= CHANGES // 2, counts
