"""The beat around the engine: what it gives back when it stops, and its garbage collector setting."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from beatx.beat import Beat
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import RecordingDispatcher
from beatx.triggers import DateTimeTrigger


def test_closing_a_beat_gives_back_the_jobs_it_claimed_for_its_next_window() -> None:
    store = MemoryStore()
    manager = JobManager(store)
    now = datetime.now(UTC)
    manager.add_job("t.job", DateTimeTrigger(now + timedelta(milliseconds=30)), id="soon")
    manager.add_job("t.job", DateTimeTrigger(now + timedelta(milliseconds=90)), id="next-window")
    dispatcher = RecordingDispatcher()
    beat = Beat(store, dispatcher, lookahead=0.05)
    beat.run_once()
    assert [fire.job_id for fire in dispatcher.fires] == ["soon"]
    horizon = now + timedelta(seconds=1)
    assert store.acquire_due_jobs(horizon, limit=10) == []  # claimed while the beat waited
    beat.close()
    assert [job.id for job in store.acquire_due_jobs(horizon, limit=10)] == ["next-window"]


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfreeze")
def test_a_beat_built_with_freeze_gc_takes_the_objects_alive_out_of_the_collector() -> None:
    gc.unfreeze()
    Beat(MemoryStore(), RecordingDispatcher())
    assert gc.get_freeze_count() == 0
    Beat(MemoryStore(), RecordingDispatcher(), freeze_gc=True)
    assert gc.get_freeze_count() > 0
