"""The run ledger's contract (:meth:`beatx.stores.base.JobStorage.job_runs`), kept by every
store: mixed into :class:`tests.stores.contract.StoreContract`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from beatx.jobs import Job, JobStatus
from beatx.ledger import RunOutcome
from beatx.stores.base import JobRelease, JobStore
from beatx.testing import FakeClock
from beatx.triggers import IntervalTrigger

#: The ``clock`` fixture's start.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str, *, at: datetime = T0, **fields: Any) -> Job:
    trigger = IntervalTrigger(seconds=10, start_date=at)
    return Job(id=job_id, func="tests.sample_tasks:record", trigger=trigger, next_run_time=at, **fields)


def release_of(job: Job, **fields: Any) -> JobRelease:
    values: dict[str, Any] = {
        "job_id": job.id,
        "claim": job.claim,
        "next_run_time": job.next_run_time,
        "status": job.status,
        "last_run_time": job.last_run_time,
    }
    values.update(fields)
    return JobRelease(**values)


def _sent(store: JobStore, clock: FakeClock, job_id: str, *fires: int, late: float = 0.0) -> list[str]:
    """Claim ``job_id`` and write back fires at ``T0 + n`` seconds (task ids ``<job>-<n>``),
    ``late`` seconds after the last of them."""
    (job,) = store.acquire_due_jobs(T0 + timedelta(seconds=max(fires)), limit=1)
    clock.set(T0 + timedelta(seconds=max(fires) + late))
    task_ids = [f"{job_id}-{n}" for n in fires]
    store.release_jobs(
        [
            release_of(
                job,
                fired=tuple(T0 + timedelta(seconds=n) for n in fires),
                task_ids=tuple(task_ids),
                next_run_time=T0 + timedelta(hours=1),
            )
        ]
    )
    return task_ids


class RunLedgerContract:
    def test_a_write_back_records_each_fire_sent(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        _sent(store, clock, "a", 0, 10, late=0.25)
        runs = store.job_runs("a")
        assert [(r.task_id, r.outcome) for r in runs] == [("a-10", RunOutcome.SENT), ("a-0", RunOutcome.SENT)]
        newest = runs[0]
        assert newest.job_id == "a"
        assert newest.scheduled_at == T0 + timedelta(seconds=10)
        assert newest.sent_at == T0 + timedelta(seconds=10.25)
        assert newest.lateness == 0.25
        assert store.job_runs("a", limit=1) == runs[:1]
        assert store.job_runs("missing") == []

    def test_the_worker_s_start_and_end_complete_the_record(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        (task_id,) = _sent(store, clock, "a", 0)
        started = clock.advance(1)
        store.run_started("a", task_id, started_at=started, timeout=60, worker="celery@w1")
        (run,) = store.job_runs("a")
        assert (run.outcome, run.started_at, run.worker) == (RunOutcome.RUNNING, started, "celery@w1")
        finished = clock.advance(2)
        store.run_finished("a", task_id, finished_at=finished, duration=2.0, error=None, worker="celery@w1")
        (run,) = store.job_runs("a")
        assert run.outcome is RunOutcome.SUCCEEDED
        assert (run.scheduled_at, run.started_at, run.finished_at, run.duration) == (
            T0,
            started,
            finished,
            2.0,
        )
        assert run.worker == "celery@w1" and run.error is None

    def test_a_worker_s_end_written_before_the_send_is_kept(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        now = clock.now()
        store.run_started("a", "a-0", started_at=now, timeout=60, worker="celery@w1")
        store.run_finished("a", "a-0", finished_at=now, duration=0.1, error="ValueError: bad")
        _sent(store, clock, "a", 0)
        (run,) = store.job_runs("a")
        assert (run.outcome, run.error, run.scheduled_at) == (RunOutcome.FAILED, "ValueError: bad", T0)
        assert run.sent_at is not None and run.finished_at == now

    def test_a_retried_run_that_succeeds_counts_its_retries(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        (task_id,) = _sent(store, clock, "a", 0)
        now = clock.now()
        store.run_started("a", task_id, started_at=now, timeout=60, worker="celery@w1")
        store.run_retried(
            "a", task_id, at=now, error="Retry in 1s: ConnectionError", retries=1, worker="celery@w1"
        )
        (run,) = store.job_runs("a")
        assert (run.outcome, run.retries, run.error) == (
            RunOutcome.RETRIED,
            1,
            "Retry in 1s: ConnectionError",
        )
        got = store.get_job("a")
        assert got is not None and got.running == 1  # still in flight
        store.run_started("a", task_id, started_at=clock.advance(1), timeout=60, worker="celery@w2")
        store.run_finished(
            "a", task_id, finished_at=clock.advance(1), duration=0.5, error=None, worker="celery@w2"
        )
        (run,) = store.job_runs("a")
        assert (run.outcome, run.retries, run.error, run.worker) == (
            RunOutcome.SUCCEEDED,
            1,
            None,
            "celery@w2",
        )

    def test_an_unknown_task_fails_the_job_naming_it(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        (task_id,) = _sent(store, clock, "a", 0)
        error = "unknown task 'proj.tasks.gone': no worker has registered it"
        store.run_finished(
            "a", task_id, finished_at=clock.now(), duration=None, error=error, outcome=RunOutcome.UNKNOWN_TASK
        )
        (run,) = store.job_runs("a")
        assert (run.outcome, run.error) == (RunOutcome.UNKNOWN_TASK, error)
        got = store.get_job("a")
        assert got is not None and (got.status, got.last_error) == (JobStatus.FAILED, error)

    def test_a_revoked_run_leaves_the_job_s_status(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        store.run_finished("a", "old", finished_at=clock.now(), duration=0.1, error="boom")
        (task_id,) = _sent(store, clock, "a", 0)
        store.run_finished(
            "a", task_id, finished_at=clock.now(), duration=None, error=None, outcome=RunOutcome.REVOKED
        )
        (run,) = [r for r in store.job_runs("a") if r.task_id == task_id]
        assert (run.outcome, run.error) == (RunOutcome.REVOKED, None)
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.FAILED  # not a success

    def test_missed_and_skipped_fires_are_recorded_once_with_the_reason(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a", at=T0))
        (job,) = store.acquire_due_jobs(T0, limit=1)
        release = release_of(job, missed=3, skipped=2, next_run_time=T0 + timedelta(hours=1))
        store.release_jobs([release])
        store.release_jobs([release])  # a write-back retried after it landed
        runs = store.job_runs("a")
        assert sorted(r.outcome for r in runs) == [RunOutcome.MISSED, RunOutcome.SKIPPED]
        reasons = {r.outcome: r.reason or "" for r in runs}
        assert reasons[RunOutcome.MISSED].startswith("3 fire(s)")
        assert reasons[RunOutcome.SKIPPED].startswith("2 fire(s)")
        assert "max_instances" in reasons[RunOutcome.SKIPPED]

    def test_a_removed_job_s_runs_go_with_it(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", at=T0))
        _sent(store, clock, "a", 0)
        assert store.remove_job("a")
        assert store.job_runs("a") == []
        store.add_job(make_job("a", at=T0))
        assert store.job_runs("a") == []
