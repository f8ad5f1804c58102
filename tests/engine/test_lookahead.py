"""The engine's lookahead: claim and plan ahead, send each fire when it comes due."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from beatx.engine.engine import Engine
from beatx.errors import LeaseLostError
from beatx.events import EventBus, EventKind
from beatx.jobs import Fire
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import DateTimeTrigger, IntervalTrigger
from tests.engine.conftest import T0


def ms(milliseconds: float) -> datetime:
    return T0 + timedelta(milliseconds=milliseconds)


class TimedDispatcher(RecordingDispatcher):
    """Records each dispatch call with the clock time it was made at."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.calls: list[tuple[datetime, list[str]]] = []

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        self.calls.append((self.clock.now(), [f.job_id for f in fires]))
        return super().dispatch(fires, guard=guard)


@pytest.fixture
def dispatcher(clock: FakeClock) -> TimedDispatcher:
    return TimedDispatcher(clock)


def engine_with_lookahead(
    store: MemoryStore, dispatcher: TimedDispatcher, clock: FakeClock, seconds: float = 0.05, **kwargs: object
) -> tuple[Engine, list[datetime]]:
    waits: list[datetime] = []

    def wait_until(when: datetime) -> None:
        waits.append(when)
        clock.set(max(when, clock.now()))

    engine = Engine(store, dispatcher, lookahead=seconds, wait_until=wait_until, clock=clock, **kwargs)  # type: ignore[arg-type]
    return engine, waits


def test_a_fire_due_within_the_lookahead_is_prepared_early_and_sent_when_due(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    result = engine.tick(clock.now())
    assert result.fired == 1
    assert waits == [ms(30)]
    assert dispatcher.calls == [(ms(30), ["soon"])]
    assert dispatcher.times("soon") == [ms(30)]


def test_without_a_lookahead_a_fire_is_not_claimed_before_it_is_due(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    result = Engine(store, dispatcher).tick(clock.now())
    assert result.fired == 0 and dispatcher.calls == []
    assert result.sleep == pytest.approx(0.03)


def test_what_is_already_due_goes_out_before_the_lookahead_is_claimed(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(20)), id="later")
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="sooner")
    clock.set(ms(15))  # "sooner" is 5 ms late
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    assert dispatcher.calls == [(ms(15), ["sooner"]), (ms(20), ["later"])]
    assert waits == [ms(20)]


def test_fires_due_together_go_out_in_one_dispatch(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    for i in range(5):
        manager.add_job("t.job", DateTimeTrigger(ms(40)), id=f"same-{i}")
    manager.add_job("t.job", DateTimeTrigger(ms(45)), id="next")
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    assert engine.tick(clock.now()).fired == 6
    assert dispatcher.calls == [(ms(40), [f"same-{i}" for i in range(5)]), (ms(45), ["next"])]


def test_a_job_beyond_the_lookahead_waits_for_a_later_tick(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(500)), id="far")
    engine, waits = engine_with_lookahead(store, dispatcher, clock)
    result = engine.tick(clock.now())
    assert result.fired == 0 and waits == []
    # The beat is woken a lookahead before the fire is due.
    assert result.sleep == pytest.approx(0.45)


def test_an_interval_job_claimed_ahead_is_planned_at_its_own_time_not_coalesced(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", IntervalTrigger(seconds=0.01, start_date=ms(10)), id="fast")
    engine, _ = engine_with_lookahead(store, dispatcher, clock)
    engine.tick(clock.now())
    assert dispatcher.times("fast") == [ms(10)]
    job = store.get_job("fast")
    assert job is not None and job.next_run_time == ms(20) and job.misfire_count == 0


def test_lateness_events_count_from_the_moment_each_fire_was_sent(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    events = EventBus()
    lateness: dict[str, float] = {}
    events.subscribe(
        lambda e: lateness.__setitem__(e.job_id or "", float(e.data["lateness"])), [EventKind.JOB_FIRED]
    )
    manager.add_job("t.job", DateTimeTrigger(ms(30)), id="soon")
    engine, _ = engine_with_lookahead(store, dispatcher, clock, events=events)
    engine.tick(clock.now())
    assert lateness == {"soon": 0.0}


def test_a_lease_lost_while_waiting_sends_nothing_more_and_writes_nothing_back(
    store: MemoryStore, manager: JobManager, dispatcher: TimedDispatcher, clock: FakeClock
) -> None:
    manager.add_job("t.job", DateTimeTrigger(ms(10)), id="first")
    manager.add_job("t.job", DateTimeTrigger(ms(20)), id="second")
    leading = iter([True, False])
    engine, _ = engine_with_lookahead(store, dispatcher, clock, guard=lambda: next(leading, False))
    with pytest.raises(LeaseLostError):
        engine.tick(clock.now())
    assert [job_ids for _, job_ids in dispatcher.calls] == [["first"], ["second"]]
    assert dispatcher.times("second") == []
    second = store.get_job("second")
    assert second is not None and second.total_run_count == 0


def test_a_lookahead_needs_a_way_to_wait() -> None:
    with pytest.raises(ValueError, match="wait_until"):
        Engine(MemoryStore(), RecordingDispatcher(), lookahead=0.05)
    with pytest.raises(ValueError, match="lookahead"):
        Engine(MemoryStore(), RecordingDispatcher(), lookahead=-1, wait_until=lambda when: None)
