"""The contract every job store keeps.

Each store's test module subclasses :class:`StoreContract` and provides a ``store`` fixture
built on the ``clock`` fixture (a FakeClock); the tests here then run against it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from beatx.engine.overlap import in_flight
from beatx.engine.rules import plan_fires
from beatx.errors import ConflictingIdError, JobLookupError, LeaseLostError, RevisionConflictError
from beatx.jobs import CatchUp, Job, JobStatus, Overlap, fire_task_id
from beatx.ledger import RunOutcome
from beatx.stores.base import BeatStatus, ChangeFeed, JobRelease, JobStorage, JobStore, LeaderLease
from beatx.testing import FakeClock
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger
from tests.stores.audit_contract import AuditLogContract
from tests.stores.ledger_contract import RunLedgerContract

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str = "job-1", *, at: datetime = T0, **fields: object) -> Job:
    trigger = IntervalTrigger(seconds=10, start_date=at)
    values: dict[str, object] = {"func": "tests.sample_tasks:record", "trigger": trigger, "next_run_time": at}
    values.update(fields)
    return Job(id=job_id, **values)  # type: ignore[arg-type]


def release_of(job: Job, **fields: object) -> JobRelease:
    values: dict[str, object] = {
        "job_id": job.id,
        "claim": job.claim,
        "next_run_time": job.next_run_time,
        "status": job.status,
        "last_run_time": job.last_run_time,
    }
    values.update(fields)
    return JobRelease(**values)  # type: ignore[arg-type]


def record_runs(store: JobStore, job: Job, count: int) -> None:
    """Write ``count`` runs of a due job back as a beat would (claim, then release), so its
    run state holds them: management writes cannot set run state."""
    assert job.next_run_time is not None
    (claimed,) = store.acquire_due_jobs(job.next_run_time, limit=1)
    store.release_jobs(
        [
            JobRelease(
                job_id=job.id,
                claim=claimed.claim,
                next_run_time=job.next_run_time,
                status=job.status,
                last_run_time=None,
                fired=(job.next_run_time,) * count,
            )
        ]
    )


class JobStorageContract:
    """What every :class:`JobStorage` keeps: jobs, claims, write-backs, run records."""

    def test_it_is_a_job_storage(self, store: JobStore) -> None:
        assert isinstance(store, JobStorage)

    def test_added_jobs_read_back_equal(self, store: JobStore) -> None:
        job = make_job(
            "a",
            name="Nightly",
            args=(1, "two"),
            kwargs={"k": [1, 2]},
            options={"queue": "q1", "priority": 5},
            max_instances=3,
            misfire_grace_time=30.0,
            coalesce=False,
        )
        store.add_job(job)
        got = store.get_job("a")
        assert got is not None
        assert (got.id, got.name, got.func, got.args, got.kwargs, got.options) == (
            "a",
            "Nightly",
            "tests.sample_tasks:record",
            (1, "two"),
            {"k": [1, 2]},
            {"queue": "q1", "priority": 5},
        )
        assert (got.max_instances, got.misfire_grace_time, got.coalesce) == (3, 30.0, False)
        assert got.trigger == job.trigger
        assert got.next_run_time == T0
        assert got.status is JobStatus.ACTIVE
        assert got.revision >= 1

    def test_the_schedule_policy_fields_round_trip(self, store: JobStore) -> None:
        for job_id in ("latest", "earliest", "all", "none"):
            store.add_job(make_job(job_id, catchup=job_id, catchup_window=3600.0, catchup_limit=5))
        for job_id in ("latest", "earliest", "all", "none"):
            got = store.get_job(job_id)
            assert got is not None
            assert (got.catchup, got.coalesce) == (CatchUp(job_id), job_id != "all")
            assert (got.catchup_window, got.catchup_limit) == (3600.0, 5)
        job = store.get_job("none")
        assert job is not None
        job.catchup, job.catchup_window, job.catchup_limit = CatchUp.ALL, None, None
        job.coalesce = False
        store.update_job(job)
        got = store.get_job("none")
        assert got is not None
        assert (got.catchup, got.coalesce, got.catchup_window, got.catchup_limit) == (
            CatchUp.ALL,
            False,
            None,
            None,
        )
        paused = make_job(
            "paused",
            jitter=12.5,
            max_runs=7,
            status=JobStatus.PAUSED,
            pause_note="Partner API down",
            paused_by="alice",
            paused_at=T0,
        )
        store.add_job(paused)
        got = store.get_job("paused")
        assert got is not None
        assert (got.jitter, got.max_runs, got.pause_note, got.paused_by, got.paused_at) == (
            12.5,
            7,
            "Partner API down",
            "alice",
            T0,
        )
        got.status, got.pause_note, got.paused_by, got.paused_at = JobStatus.ACTIVE, None, None, None
        store.update_job(got, reschedule=True)
        resumed = store.get_job("paused")
        assert resumed is not None
        assert (resumed.status, resumed.pause_note, resumed.paused_by, resumed.paused_at) == (
            JobStatus.ACTIVE,
            None,
            None,
            None,
        )
        store.remove_job("paused")
        claimed = store.acquire_due_jobs(T0, limit=10)
        assert {job.id: job.catchup for job in claimed} == {
            "latest": CatchUp.LATEST,
            "earliest": CatchUp.EARLIEST,
            "all": CatchUp.ALL,
            "none": CatchUp.ALL,
        }

    def test_every_trigger_kind_round_trips(self, store: JobStore) -> None:
        triggers = {
            "cron": CronTrigger("0 3 * * 1-5", timezone="Europe/Paris"),
            "date": DateTimeTrigger("2026-12-25T10:30:00+01:00"),
            "interval": IntervalTrigger(hours=1, start_date=T0, end_date=T0 + timedelta(days=3)),
        }
        for job_id, trigger in triggers.items():
            store.add_job(make_job(job_id, trigger=trigger))
        for job_id, trigger in triggers.items():
            got = store.get_job(job_id)
            assert got is not None and got.trigger == trigger

    def test_a_duplicate_id_is_refused_unless_replacing(self, store: JobStore) -> None:
        store.add_job(make_job("a", name="first"))
        with pytest.raises(ConflictingIdError, match="'a'"):
            store.add_job(make_job("a", name="second"))
        store.add_job(make_job("a", name="second"), replace_existing=True)
        got = store.get_job("a")
        assert got is not None and got.name == "second"

    def test_update_bumps_the_revision(self, store: JobStore) -> None:
        job = make_job("a")
        store.add_job(job)
        first = job.revision
        job.name = "renamed"
        store.update_job(job)
        got = store.get_job("a")
        assert got is not None and got.name == "renamed" and got.revision > first
        with pytest.raises(JobLookupError):
            store.update_job(make_job("missing"))

    def test_remove_reports_whether_the_job_existed(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        assert store.remove_job("a") is True
        assert store.remove_job("a") is False
        assert store.get_job("a") is None

    def test_get_jobs_filters_by_status_and_orders_by_next_run(self, store: JobStore) -> None:
        store.add_job(make_job("late", at=T0 + timedelta(minutes=5)))
        store.add_job(make_job("early", at=T0))
        store.add_job(make_job("paused", at=T0, status=JobStatus.PAUSED))
        assert [j.id for j in store.get_jobs()] == ["early", "paused", "late"]
        assert [j.id for j in store.get_jobs(JobStatus.PAUSED)] == ["paused"]

    def test_jobs_are_counted_by_status_without_the_removed_ones(self, store: JobStore) -> None:
        for job_id in ("a", "b", "gone"):
            store.add_job(make_job(job_id))
        store.add_job(make_job("paused", status=JobStatus.PAUSED))
        store.add_job(make_job("done", status=JobStatus.COMPLETED, next_run_time=None))
        store.remove_job("gone")
        counts = store.count_jobs_by_status()
        assert counts == {
            JobStatus.ACTIVE: 2,
            JobStatus.PAUSED: 1,
            JobStatus.COMPLETED: 1,
            JobStatus.FAILED: 0,
            JobStatus.CANCELLED: 0,
        }

    def test_only_due_schedulable_jobs_are_acquired_earliest_first(self, store: JobStore) -> None:
        store.add_job(make_job("future", at=T0 + timedelta(seconds=1)))
        store.add_job(make_job("second", at=T0 - timedelta(seconds=1)))
        store.add_job(make_job("first", at=T0 - timedelta(seconds=2)))
        store.add_job(make_job("paused", at=T0 - timedelta(seconds=5), status=JobStatus.PAUSED))
        store.add_job(make_job("failed", at=T0, status=JobStatus.FAILED))
        store.add_job(make_job("done", at=T0, status=JobStatus.COMPLETED, next_run_time=None))
        assert store.due_count(T0) == 3
        got = store.acquire_due_jobs(T0, limit=10)
        assert [j.id for j in got] == ["first", "second", "failed"]

    def test_acquire_respects_the_limit(self, store: JobStore) -> None:
        for i in range(5):
            store.add_job(make_job(f"j{i}", at=T0 - timedelta(seconds=5 - i)))
        assert [j.id for j in store.acquire_due_jobs(T0, limit=2)] == ["j0", "j1"]
        assert [j.id for j in store.acquire_due_jobs(T0, limit=10)] == ["j2", "j3", "j4"]

    def test_a_claimed_job_is_not_acquired_twice_until_its_claim_expires(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        assert len(store.acquire_due_jobs(T0, limit=10, claim_ttl=30)) == 1
        assert store.acquire_due_jobs(T0 + timedelta(seconds=10), limit=10) == []
        again = store.acquire_due_jobs(T0 + timedelta(seconds=31), limit=10)
        assert [j.id for j in again] == ["a"]

    def test_next_run_time_is_the_earliest_unclaimed(self, store: JobStore) -> None:
        assert store.next_run_time() is None
        store.add_job(make_job("a", at=T0))
        store.add_job(make_job("b", at=T0 + timedelta(seconds=30)))
        store.add_job(make_job("p", at=T0 - timedelta(seconds=30), status=JobStatus.PAUSED))
        assert store.next_run_time() == T0
        store.acquire_due_jobs(T0, limit=10)
        assert store.next_run_time() == T0 + timedelta(seconds=30)

    def test_release_advances_the_job_and_counts(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (job,) = store.acquire_due_jobs(T0, limit=10)
        store.release_jobs(
            [
                release_of(
                    job,
                    next_run_time=T0 + timedelta(seconds=10),
                    last_run_time=T0,
                    fired=(T0,),
                    task_ids=("t-1",),
                    missed=2,
                    skipped=1,
                )
            ]
        )
        got = store.get_job("a")
        assert got is not None
        assert got.next_run_time == T0 + timedelta(seconds=10)
        assert (got.total_run_count, got.misfire_count, got.skip_count) == (1, 2, 1)
        assert got.last_run_time == T0
        assert store.next_run_time() == T0 + timedelta(seconds=10)
        assert store.acquire_due_jobs(T0 + timedelta(seconds=10), limit=10)[0].id == "a"

    def test_release_marks_a_finished_job_completed(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (job,) = store.acquire_due_jobs(T0, limit=10)
        store.release_jobs(
            [release_of(job, next_run_time=None, status=JobStatus.COMPLETED, fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.COMPLETED and got.next_run_time is None
        assert store.next_run_time() is None

    def test_release_with_an_error_fails_the_job(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (job,) = store.acquire_due_jobs(T0, limit=10)
        store.release_jobs(
            [release_of(job, next_run_time=None, status=JobStatus.FAILED, error="ValueError: boom")]
        )
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.FAILED and got.last_error == "ValueError: boom"

    def test_a_reschedule_during_a_claim_wins_over_the_release(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        edited = store.get_job("a")
        assert edited is not None
        edited.status = JobStatus.PAUSED
        edited.next_run_time = T0 + timedelta(hours=1)
        store.update_job(edited, reschedule=True)
        store.release_jobs(
            [release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert got is not None
        assert got.status is JobStatus.PAUSED
        assert got.next_run_time == T0 + timedelta(hours=1)
        assert got.total_run_count == 1 and got.last_run_time == T0

    def test_a_definition_edit_during_a_claim_keeps_the_release(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        edited = store.get_job("a")
        assert edited is not None
        edited.kwargs = {"changed": True}
        edited.next_run_time = T0  # a stale read: not written without reschedule
        store.update_job(edited)
        store.release_jobs(
            [release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert got is not None
        assert got.kwargs == {"changed": True}
        assert got.next_run_time == T0 + timedelta(seconds=10)
        assert got.total_run_count == 1
        assert store.acquire_due_jobs(T0 + timedelta(seconds=5), limit=10) == []

    def test_a_management_write_never_sets_run_state(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        stale = store.get_job("a")
        assert stale is not None
        store.release_jobs(
            [release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        stale.name = "renamed"
        stale.total_run_count, stale.last_run_time, stale.last_error = 99, None, "bogus"
        store.update_job(stale)
        got = store.get_job("a")
        assert got is not None and got.name == "renamed"
        assert (got.total_run_count, got.last_run_time, got.last_error) == (1, T0, None)
        assert got.next_run_time == T0 + timedelta(seconds=10)

    def test_update_with_an_expected_revision_is_a_compare_and_set(self, store: JobStore) -> None:
        job = make_job("a")
        store.add_job(job)
        read = job.revision
        job.name = "first"
        store.update_job(job, expected_revision=read)
        job.name = "second"
        with pytest.raises(RevisionConflictError):
            store.update_job(job, expected_revision=read)
        got = store.get_job("a")
        assert got is not None and got.name == "first" and got.revision == read + 1

    def test_each_claim_has_its_own_token(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        store.add_job(make_job("b"))
        (a,) = store.acquire_due_jobs(T0, limit=1)
        (b,) = store.acquire_due_jobs(T0, limit=1)
        assert a.claim and b.claim and a.claim != b.claim

    def test_a_release_under_a_claim_taken_over_writes_nothing(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (first,) = store.acquire_due_jobs(T0, limit=10, claim_ttl=5)
        later = T0 + timedelta(seconds=6)
        (second,) = store.acquire_due_jobs(later, limit=10, claim_ttl=5)
        assert second.claim != first.claim
        store.release_jobs(
            [release_of(first, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 0 and got.next_run_time == T0
        assert store.acquire_due_jobs(later, limit=10) == []  # still held by the second claim
        store.release_jobs(
            [release_of(second, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert (
            got is not None and got.total_run_count == 1 and got.next_run_time == T0 + timedelta(seconds=10)
        )

    def test_a_release_keeps_a_status_a_worker_wrote(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        store.run_finished("a", "t0", finished_at=clock.now(), duration=0.1, error="boom")
        store.release_jobs(
            [release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)]
        )
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.FAILED and got.last_error == "boom"

    def test_a_write_back_retried_after_it_was_applied_is_not_applied_twice(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        release = release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)
        store.release_jobs([release])
        store.release_jobs([release])
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 1

    def test_a_write_back_after_a_reschedule_counts_once(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (claimed,) = store.acquire_due_jobs(T0, limit=10)
        edited = store.get_job("a")
        assert edited is not None
        edited.status = JobStatus.PAUSED
        store.update_job(edited, reschedule=True)
        release = release_of(claimed, next_run_time=T0 + timedelta(seconds=10), fired=(T0,), last_run_time=T0)
        store.release_jobs([release])
        store.release_jobs([release])
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 1 and got.status is JobStatus.PAUSED

    def test_claimed_overdue_jobs_count_in_the_backlog(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        store.add_job(make_job("b"))
        store.acquire_due_jobs(T0, limit=1)
        assert store.due_count(T0) == 2

    def test_a_release_of_a_removed_job_is_ignored(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        (job,) = store.acquire_due_jobs(T0, limit=10)
        store.remove_job("a")
        store.release_jobs([release_of(job, fired=(T0,))])
        assert store.get_job("a") is None

    def test_the_overlap_fields_round_trip(self, store: JobStore) -> None:
        for overlap in Overlap:
            store.add_job(make_job(overlap.value, overlap=overlap, pause_after_failures=3))
        store.add_job(make_job("plain"))
        for overlap in Overlap:
            got = store.get_job(overlap.value)
            assert got is not None and (got.overlap, got.pause_after_failures) == (overlap, 3)
        got = store.get_job("plain")
        assert got is not None and (got.overlap, got.pause_after_failures) == (Overlap.SKIP, None)
        got.overlap, got.pause_after_failures = Overlap.BUFFER_ALL, None
        store.update_job(got)
        claimed = {job.id: job for job in store.acquire_due_jobs(T0, limit=20)}
        assert (claimed["plain"].overlap, claimed["plain"].pause_after_failures) == (Overlap.BUFFER_ALL, None)
        assert claimed["cancel_other"].overlap is Overlap.CANCEL_OTHER

    def test_a_buffered_fire_stays_in_the_store_with_its_nominal_time_through_a_takeover(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        # overlap="buffer_one": fires due while a run is in flight wait as the job's next run
        # (the newest, the older ones skipped), due and claimable by any beat.
        store.add_job(make_job("b", overlap=Overlap.BUFFER_ONE))
        store.run_started("b", "run-0", started_at=T0, timeout=3600)
        now = T0 + timedelta(seconds=25)
        clock.set(now)
        (job,) = store.acquire_due_jobs(now, limit=5, claim_ttl=5)
        assert (job.running, job.overlap) == (1, Overlap.BUFFER_ONE)
        window = timedelta(seconds=60)  # the beat's failover window: no outage here
        plan = plan_fires(job, now, catch_up_window=window)
        assert plan.fire_times == () and plan.buffered == 1
        store.release_jobs([release_of(job, next_run_time=plan.next_run_time, skipped=plan.skipped)])
        stored = store.get_job("b")
        assert stored is not None
        assert (stored.next_run_time, stored.skip_count) == (T0 + timedelta(seconds=20), 2)
        assert store.due_count(now) == 1 and store.next_run_time() == T0 + timedelta(seconds=20)
        # One beat claims it and dies; after the claim expires another takes it, unchanged.
        (held,) = store.acquire_due_jobs(now, limit=5, claim_ttl=3)
        assert store.acquire_due_jobs(now, limit=5) == []
        clock.advance(4)
        now = clock.now()
        store.run_finished("b", "run-0", finished_at=now, duration=30.0, error=None)
        (taken,) = store.acquire_due_jobs(now, limit=5, claim_ttl=5)
        assert taken.claim != held.claim and taken.running == 0
        assert taken.next_run_time == T0 + timedelta(seconds=20)
        plan = plan_fires(taken, now, catch_up_window=window)
        assert plan.fire_times == (T0 + timedelta(seconds=20),)
        task_id = fire_task_id("b", T0 + timedelta(seconds=20))
        store.release_jobs(
            [
                release_of(
                    taken,
                    next_run_time=plan.next_run_time,
                    last_run_time=plan.fire_times[-1],
                    fired=plan.fire_times,
                    task_ids=(task_id,),
                )
            ]
        )
        stored = store.get_job("b")
        assert stored is not None and stored.next_run_time == T0 + timedelta(seconds=30)
        assert stored.last_run_time == T0 + timedelta(seconds=20)
        # The fire sent and not started counts in flight (the ledger keeps when it was sent).
        runs = store.job_runs("b")
        found = in_flight(stored.running, runs, now)
        assert (found.count, found.task_ids) == (1, (task_id,))

    def test_running_runs_are_counted_until_finished_or_expired(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a"))
        now = clock.now()
        store.run_started("a", "t1", started_at=now, timeout=60)
        store.run_started("a", "t2", started_at=now, timeout=5)
        assert store.running_count(now) == 2
        got = store.get_job("a")
        assert got is not None and got.running == 2
        store.run_finished("a", "t1", finished_at=now, duration=0.5, error=None)
        assert store.running_count(now) == 1
        (due,) = store.acquire_due_jobs(now, limit=1)
        assert due.running == 1
        assert store.running_count(now + timedelta(seconds=6)) == 0

    def test_a_failed_run_fails_the_job_and_a_success_restores_it(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a"))
        now = clock.now()
        store.run_started("a", "t1", started_at=now, timeout=60)
        store.run_finished("a", "t1", finished_at=now, duration=1.25, error="KeyError: 'x'")
        got = store.get_job("a")
        assert got is not None
        assert (got.status, got.last_error, got.last_duration) == (JobStatus.FAILED, "KeyError: 'x'", 1.25)
        assert got.last_finished_at == now
        store.run_finished("a", "t2", finished_at=now, duration=0.1, error=None)
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.ACTIVE
        store.run_finished("missing", "t3", finished_at=now, duration=None, error="x")

    def test_a_delivery_starts_its_run_once(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", max_instances=5))
        now = clock.now()
        assert store.start_run_once("a", "t1", attempt=0, started_at=now, timeout=60) is True
        got = store.get_job("a")
        assert got is not None and got.running == 1
        # The broker delivered it again, or a takeover sent the same fire: dropped, unrecorded.
        assert store.start_run_once("a", "t1", attempt=0, started_at=now, timeout=60) is False
        store.run_finished("a", "t1", finished_at=now, duration=0.1, error=None)
        assert store.start_run_once("a", "t1", attempt=0, started_at=now, timeout=60) is False
        got = store.get_job("a")
        assert got is not None and got.running == 0
        # A Celery retry of the same task, and another fire, are not duplicates.
        assert store.start_run_once("a", "t1", attempt=1, started_at=now, timeout=60) is True
        assert store.start_run_once("a", "t2", attempt=0, started_at=now, timeout=60) is True
        got = store.get_job("a")
        assert got is not None and got.running == 2

    def test_a_delivery_of_a_fire_the_beat_recorded_starts_once(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a", at=T0))
        (job,) = store.acquire_due_jobs(T0, limit=1)
        store.release_jobs([release_of(job, fired=(T0,), task_ids=("t1",))])
        now = clock.now()
        assert store.start_run_once("a", "t1", attempt=0, started_at=now, timeout=60) is True
        assert store.start_run_once("a", "t1", attempt=0, started_at=now, timeout=60) is False

    def test_a_paused_job_stays_paused_when_a_run_fails(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a", status=JobStatus.PAUSED))
        store.run_finished("a", "t1", finished_at=clock.now(), duration=0.1, error="boom")
        got = store.get_job("a")
        assert got is not None and got.status is JobStatus.PAUSED and got.last_error == "boom"

    def test_claims_are_fenced_by_the_lease(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        store.acquire_lease("beat-1", now=T0, ttl=10)
        with pytest.raises(LeaseLostError):
            store.acquire_due_jobs(T0, limit=10, owner="beat-2")
        (job,) = store.acquire_due_jobs(T0, limit=10, owner="beat-1")
        store.release_lease("beat-1")
        store.acquire_lease("beat-2", now=T0, ttl=10)
        with pytest.raises(LeaseLostError):
            store.release_jobs([release_of(job, fired=(T0,))], owner="beat-1")
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 0

    def test_an_expired_claim_is_when_the_beat_should_look_next(self, store: JobStore) -> None:
        store.add_job(make_job("a", at=T0))
        store.add_job(make_job("b", at=T0 + timedelta(hours=1)))
        store.acquire_due_jobs(T0, limit=1, claim_ttl=30)
        assert store.next_run_time() == T0 + timedelta(seconds=30)

    # -- claim_job: the claim of a fire sent outside the schedule (run_job_now) ----------------

    def test_a_job_claimed_alone_is_not_acquired_until_released(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        store.add_job(make_job("b"))
        claimed = store.claim_job("a")
        assert claimed is not None and claimed.id == "a" and claimed.claim
        assert claimed.next_run_time == T0 and claimed.running == 0
        assert [j.id for j in store.acquire_due_jobs(T0, limit=10)] == ["b"]
        assert store.acquire_due_jobs(T0 + timedelta(seconds=30), limit=10) == []
        assert store.due_count(T0) == 2  # claimed, still overdue

    def test_a_job_under_a_live_claim_is_not_claimed_again(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        store.add_job(make_job("b"))
        first = store.claim_job("a")
        assert first is not None
        assert store.claim_job("a") is None
        (beat,) = store.acquire_due_jobs(T0, limit=10)  # a beat planning "b"
        assert beat.id == "b" and store.claim_job("b") is None
        store.release_jobs([release_of(beat)])
        again = store.claim_job("b")
        assert again is not None and again.claim not in (beat.claim, first.claim)

    def test_an_expired_claim_is_taken_over_by_claim_job(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a"))
        (beat,) = store.acquire_due_jobs(clock.now(), limit=10, claim_ttl=5)
        assert store.claim_job("a") is None
        clock.advance(seconds=6)
        taken = store.claim_job("a", claim_ttl=5)
        assert taken is not None and taken.claim != beat.claim
        # The expired claim's write-back writes nothing; the new claim holds the job.
        store.release_jobs([release_of(beat, next_run_time=T0 + timedelta(seconds=10), fired=(T0,))])
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 0 and got.next_run_time == T0
        assert store.acquire_due_jobs(clock.now(), limit=10) == []
        # And claim_job's own claim expires as any claim does: a beat takes the job over.
        clock.advance(seconds=6)
        (again,) = store.acquire_due_jobs(clock.now(), limit=10)
        assert again.id == "a" and again.claim != taken.claim

    def test_a_release_ends_claim_job_s_claim_and_keeps_the_schedule(
        self, store: JobStore, clock: FakeClock
    ) -> None:
        store.add_job(make_job("a"))
        store.add_job(make_job("later", at=T0 + timedelta(hours=1)))
        store.add_job(make_job("paused", status=JobStatus.PAUSED))
        store.run_started("a", "t-1", started_at=clock.now(), timeout=60)
        claimed = {job_id: store.claim_job(job_id) for job_id in ("a", "later", "paused")}
        assert all(job is not None and job.claim for job in claimed.values())
        a = claimed["a"]
        assert a is not None and a.running == 1  # counted as a claim counts it
        assert store.next_run_time() is not None  # the claims' deadlines
        store.release_jobs([release_of(job, skipped=1) for job in claimed.values() if job is not None])
        got = store.get_job("a")
        assert got is not None and got.next_run_time == T0 and got.status is JobStatus.ACTIVE
        assert (got.total_run_count, got.skip_count) == (0, 1)
        assert store.next_run_time() == T0
        assert [j.id for j in store.acquire_due_jobs(T0, limit=10)] == ["a"]
        later = store.get_job("later")
        assert later is not None and later.next_run_time == T0 + timedelta(hours=1)
        # ("a" again too: the claim just taken expired since.)
        assert [j.id for j in store.acquire_due_jobs(T0 + timedelta(hours=1), limit=10)] == ["a", "later"]
        paused = store.get_job("paused")
        assert paused is not None and paused.status is JobStatus.PAUSED
        assert store.due_count(T0 + timedelta(days=1)) == 2  # the paused job stays out

    def test_claim_job_of_a_missing_job_raises(self, store: JobStore) -> None:
        with pytest.raises(JobLookupError):
            store.claim_job("nope")
        store.add_job(make_job("a"))
        store.remove_job("a")
        with pytest.raises(JobLookupError):
            store.claim_job("a")

    def test_a_reschedule_drops_claim_job_s_claim(self, store: JobStore) -> None:
        store.add_job(make_job("a"))
        claimed = store.claim_job("a")
        assert claimed is not None
        edited = make_job("a", at=T0 + timedelta(minutes=5))
        store.update_job(edited, reschedule=True)
        store.release_jobs([release_of(claimed, skipped=1)])  # recorded, the schedule is the edit's
        got = store.get_job("a")
        assert got is not None and got.next_run_time == T0 + timedelta(minutes=5) and got.skip_count == 1

    def test_a_fire_sent_outside_the_beat_is_recorded_sent(self, store: JobStore, clock: FakeClock) -> None:
        store.add_job(make_job("a"))
        store.record_dispatch("a", "manual-1", scheduled_at=clock.now())
        (run,) = store.job_runs("a")
        assert (run.task_id, run.outcome, run.scheduled_at) == ("manual-1", RunOutcome.SENT, clock.now())
        got = store.get_job("a")
        assert got is not None and got.total_run_count == 0 and got.last_run_time is None
        store.record_dispatch("nope", "manual-2", scheduled_at=clock.now())  # ignored
        assert store.job_runs("nope") == []

    def test_meta_values_round_trip(self, store: JobStore) -> None:
        assert store.read_meta("beat_schedule_ids") is None
        store.write_meta("beat_schedule_ids", '["a", "b"]')
        store.write_meta("other", "x")
        store.write_meta("beat_schedule_ids", '["a"]')
        assert store.read_meta("beat_schedule_ids") == '["a"]'
        assert store.read_meta("other") == "x"


class LeaderLeaseContract:
    """What every :class:`LeaderLease` keeps: one owner at a time, fenced claims."""

    def test_it_is_a_leader_lease(self, store: JobStore) -> None:
        assert isinstance(store, LeaderLease)

    def test_one_owner_holds_the_lease_until_it_expires(self, store: JobStore) -> None:
        assert store.acquire_lease("beat-1", now=T0, ttl=10) is True
        assert store.acquire_lease("beat-2", now=T0 + timedelta(seconds=5), ttl=10) is False
        assert store.acquire_lease("beat-1", now=T0 + timedelta(seconds=5), ttl=10) is True
        lease = store.get_lease()
        assert lease is not None and lease.owner == "beat-1"
        assert store.acquire_lease("beat-2", now=T0 + timedelta(seconds=16), ttl=10) is True
        lease = store.get_lease()
        assert lease is not None and lease.owner == "beat-2"

    def test_a_released_lease_is_free_and_only_its_owner_can_release_it(self, store: JobStore) -> None:
        store.acquire_lease("beat-1", now=T0, ttl=10)
        store.release_lease("beat-2")
        assert store.acquire_lease("beat-2", now=T0, ttl=10) is False
        store.release_lease("beat-1")
        assert store.acquire_lease("beat-2", now=T0, ttl=10) is True

    def test_status_round_trips(self, store: JobStore) -> None:
        assert store.read_status() is None
        status = BeatStatus(owner="beat-1", leader_since=T0, last_tick_at=T0, due_backlog=3, jobs_fired=7)
        store.write_status(status)
        assert store.read_status() == status


class ChangeFeedContract:
    """What every :class:`ChangeFeed` keeps."""

    def test_it_is_a_change_feed(self, store: JobStore) -> None:
        assert isinstance(store, ChangeFeed)

    def test_wait_for_change_times_out_quietly(self, store: JobStore) -> None:
        assert store.wait_for_change(0.05) is False


class StoreContract(
    JobStorageContract, LeaderLeaseContract, ChangeFeedContract, RunLedgerContract, AuditLogContract
):
    """Behaviour shared by every :class:`JobStore`: the three contracts above."""

    def test_it_satisfies_the_store_protocol(self, store: JobStore) -> None:
        assert isinstance(store, JobStore)
