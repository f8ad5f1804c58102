"""Backfill: the fires of a range, with their nominal task ids, never sent twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from beatx.backfill import MAX_BACKFILL_FIRES, record_range
from beatx.errors import ConfigurationError, InvalidJobError, JobLookupError, TransientDispatchError
from beatx.jobs import Fire, fire_task_id
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import CronTrigger, IntervalTrigger
from tests.engine.conftest import T0


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FailingAfter(RecordingDispatcher):
    """Sends ``budget`` fires, then the broker refuses."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for fire in fires:
            if self.budget > 0:
                self.budget -= 1
                self.fires.append(fire)
                results.append(None)
            else:
                results.append(ConnectionError("broker refused"))
        return results


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def manager(store: MemoryStore, clock: FakeClock, dispatcher: RecordingDispatcher) -> JobManager:
    return JobManager(store, clock=clock, dispatcher=dispatcher)


def test_a_backfill_sends_each_fire_of_the_range_with_its_nominal_task_id(
    manager: JobManager, dispatcher: RecordingDispatcher
) -> None:
    clock_job = manager.add_job("m:f", CronTrigger("0 * * * *", "UTC"), id="hourly")
    result = manager.backfill("hourly", T0 - timedelta(hours=5), T0 - timedelta(hours=1))
    expected = [T0 - timedelta(hours=h) for h in (5, 4, 3, 2, 1)]
    assert list(result.sent) == expected and dispatcher.times("hourly") == expected
    assert list(result.task_ids) == [fire_task_id("hourly", t) for t in expected]
    stored = manager.get_job("hourly")
    assert stored is not None and stored.next_run_time == clock_job.next_run_time


def test_running_the_same_backfill_twice_sends_nothing_twice(
    manager: JobManager, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=60, start_date=s(-3600)), id="j")
    first = manager.backfill("j", s(-600), s(-301))
    again = manager.backfill("j", s(-600), s(-301))
    assert len(first.sent) == 5 and again.sent == () and again.already_sent == 5
    wider = manager.backfill("j", s(-900), s(-1))
    assert list(wider.sent) == [s(t) for t in (-900, -840, -780, -720, -660, -300, -240, -180, -120, -60)]
    assert wider.already_sent == 5
    assert len(dispatcher.fires) == len({fire.task_id for fire in dispatcher.fires})


def test_a_backfill_the_broker_cut_short_sends_the_rest_when_run_again(
    store: MemoryStore, clock: FakeClock
) -> None:
    failing = FailingAfter(2)
    manager = JobManager(store, clock=clock, dispatcher=failing)
    manager.add_job("m:f", IntervalTrigger(seconds=60, start_date=s(-3600)), id="j")
    with pytest.raises(TransientDispatchError, match="backfill sent 2 of 5 fires"):
        manager.backfill("j", s(-300), s(-60))
    failing.budget = 100
    rest = manager.backfill("j", s(-300), s(-60))
    assert rest.already_sent == 2 and list(rest.sent) == [s(-180), s(-120), s(-60)]
    assert failing.times("j") == [s(t) for t in (-300, -240, -180, -120, -60)]


def test_overlap_skip_sends_nothing_while_a_run_is_in_flight(
    manager: JobManager, store: MemoryStore, dispatcher: RecordingDispatcher
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=60, start_date=s(-3600)), id="j")
    store.run_started("j", "t-1", started_at=T0, timeout=600)
    held = manager.backfill("j", s(-300), s(-60), overlap="skip")
    assert held.sent == () and held.skipped == 5 and dispatcher.fires == []
    sent = manager.backfill("j", s(-300), s(-60))
    assert len(sent.sent) == 5


def test_a_backfill_is_refused_by_name(manager: JobManager, store: MemoryStore, clock: FakeClock) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=1, start_date=s(-86400)), id="j")
    with pytest.raises(InvalidJobError, match="end .* is before start"):
        manager.backfill("j", s(-10), s(-20))
    with pytest.raises(InvalidJobError, match=f"more than {MAX_BACKFILL_FIRES} fires"):
        manager.backfill("j", s(-86400), s(0))
    with pytest.raises(InvalidJobError, match="overlap must be one of 'allow_all', 'skip'"):
        manager.backfill("j", s(-10), s(0), overlap="buffer_all")
    with pytest.raises(JobLookupError):
        manager.backfill("missing", s(-10), s(0))
    with pytest.raises(ConfigurationError, match="needs a dispatcher"):
        JobManager(store, clock=clock).backfill("j", s(-10), s(0))


def test_recorded_ranges_merge() -> None:
    value = record_range([(s(0), s(10)), (s(30), s(40))], s(5), s(32))
    assert value == f'[["{s(0).isoformat()}", "{s(40).isoformat()}"]]'
