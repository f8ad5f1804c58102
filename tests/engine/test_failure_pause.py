"""``pause_after_failures``: a job pauses itself after N consecutive failed runs, counted from
its run ledger as the workers report them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beatx.engine.engine import Engine
from beatx.failure_pause import PAUSED_BY, consecutive_failures, pause_if_failing
from beatx.jobs import JobStatus
from beatx.ledger import RunOutcome, RunRecord
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock, RecordingDispatcher
from beatx.triggers import IntervalTrigger
from tests.engine.conftest import T0


def _record(outcome: RunOutcome) -> RunRecord:
    return RunRecord(job_id="j", task_id=outcome.value, outcome=outcome)


@pytest.mark.parametrize(
    ("outcomes", "count"),
    [
        ([], 0),
        ([RunOutcome.FAILED, RunOutcome.FAILED, RunOutcome.SUCCEEDED, RunOutcome.FAILED], 2),
        ([RunOutcome.SENT, RunOutcome.RUNNING, RunOutcome.FAILED, RunOutcome.UNKNOWN_TASK], 2),
        ([RunOutcome.FAILED, RunOutcome.SKIPPED, RunOutcome.REVOKED, RunOutcome.REJECTED], 2),
        ([RunOutcome.SUCCEEDED, RunOutcome.FAILED], 0),
    ],
)
def test_consecutive_failures_count_from_the_newest_end(outcomes: list[RunOutcome], count: int) -> None:
    assert consecutive_failures([_record(outcome) for outcome in outcomes]) == count


def test_a_job_pauses_itself_after_n_failures_in_a_row(
    manager: JobManager, store: MemoryStore, clock: FakeClock
) -> None:
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_date=T0), id="j", pause_after_failures=3)
    manager.add_job("m:f", IntervalTrigger(seconds=10, start_date=T0), id="never")
    dispatcher = RecordingDispatcher()
    engine = Engine(store, dispatcher, clock=clock)
    results = ["boom", "boom", None, "boom", "boom", "boom"]
    paused_after = []
    for error in results:
        engine.tick(clock.now())
        for fire in dispatcher.fires:
            store.run_started(fire.job_id, fire.task_id, started_at=clock.now(), timeout=60)
            store.run_finished(
                fire.job_id,
                fire.task_id,
                finished_at=clock.now() + timedelta(seconds=1),
                duration=1.0,
                error=None if error is None else f"RuntimeError: {error}",
            )
            if error is not None:
                paused = pause_if_failing(store, fire.job_id, clock=clock)
                if fire.job_id == "j":
                    paused_after.append(paused)
                else:
                    assert not paused
        dispatcher.clear()
        clock.advance(10)
    # The success broke the first streak; the third failure of the second one paused it.
    assert paused_after == [False, False, False, False, True]
    job = manager.get_job("j")
    assert job is not None and job.status is JobStatus.PAUSED and job.paused_by == PAUSED_BY
    assert job.pause_note is not None and "3 failed runs in a row" in job.pause_note
    assert "RuntimeError: boom" in job.pause_note
    (change, *_) = store.job_changes("j")
    assert (change.action, change.source, change.actor) == ("paused", "worker", PAUSED_BY)
    # A job without the setting keeps failing and firing.
    other = manager.get_job("never")
    assert other is not None and other.status is JobStatus.FAILED
    # Paused, it sends nothing more.
    engine.tick(clock.now())
    assert dispatcher.times("j") == []
