"""The store contract on SQLite and PostgreSQL, plus what only a database store has to show:
concurrent claims that never overlap, run history, and change notification."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connections

from beatx.jobs import JobStatus, fire_task_id
from beatx.stores.base import status_after_run
from beatx.testing import FakeClock
from django_beatx.models import ChangeCounter, JobRun
from django_beatx.models import Job as JobRow
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks
from tests.stores.alert_contract import AlertReadsContract
from tests.stores.contract import T0, StoreContract, make_job, release_of


@pytest.mark.django_db(databases=["default"])
class TestDjangoStoreOnSQLite(StoreContract, AlertReadsContract):
    @pytest.fixture
    def store(self, clock: FakeClock) -> DjangoStore:
        return DjangoStore(clock=clock, using="default")


@pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks())])
class TestDjangoStoreOnPostgres(StoreContract, AlertReadsContract):
    @pytest.fixture
    def store(self, clock: FakeClock, postgres_available: None, _pg: None) -> DjangoStore:
        return DjangoStore(clock=clock, using="postgres")


@pytest.fixture(
    params=[
        pytest.param("default", id="sqlite", marks=pytest.mark.django_db(databases=["default"])),
        # Marked at collection, so a run of these tests alone still sets the database up.
        pytest.param("postgres", id="postgres", marks=postgres_marks()),
    ]
)
def any_store(request: pytest.FixtureRequest, clock: FakeClock) -> DjangoStore:
    """A store on each database, for the tests below (a function-scoped db per alias)."""
    alias = request.param
    if alias == "postgres":
        request.getfixturevalue("postgres_available")
    return DjangoStore(clock=clock, using=alias)


def test_release_writes_run_history_with_task_ids(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("a"))
    (job,) = any_store.acquire_due_jobs(T0, limit=10)
    any_store.release_jobs([release_of(job, fired=(T0,), last_run_time=T0, task_ids=("task-1",))])
    run = JobRun.objects.using(any_store.using).get(task_id="task-1")
    assert (run.job_id, run.scheduled_at, run.outcome) == ("a", T0, "dispatched")
    assert run.dispatched_at == T0


def test_runs_move_through_their_outcomes(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("a"))
    (job,) = any_store.acquire_due_jobs(T0, limit=10)
    any_store.release_jobs([release_of(job, fired=(T0,), last_run_time=T0)])
    task_id = fire_task_id("a", T0)
    any_store.run_started("a", task_id, started_at=T0, timeout=60)
    assert JobRun.objects.using(any_store.using).get(task_id=task_id).outcome == "running"
    any_store.run_finished("a", task_id, finished_at=T0 + timedelta(seconds=2), duration=2.0, error="boom")
    run = JobRun.objects.using(any_store.using).get(task_id=task_id)
    assert (run.outcome, run.duration, run.error, run.scheduled_at) == ("failed", 2.0, "boom", T0)


def test_a_start_reported_before_the_release_is_completed_not_duplicated(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("a"))
    (job,) = any_store.acquire_due_jobs(T0, limit=10)
    task_id = fire_task_id("a", T0)
    any_store.run_started("a", task_id, started_at=T0, timeout=60)
    any_store.release_jobs([release_of(job, fired=(T0,), last_run_time=T0)])
    (run,) = JobRun.objects.using(any_store.using).filter(job_id="a")
    assert (run.task_id, run.scheduled_at, run.outcome) == (task_id, T0, "running")


def test_every_store_write_moves_the_change_counter(any_store: DjangoStore) -> None:
    def version() -> int:
        return any_store.change_version()

    start = version()
    job = make_job("a")
    any_store.add_job(job)
    assert version() == start + 1
    job.status = JobStatus.PAUSED
    any_store.update_job(job, reschedule=True)
    assert version() == start + 2
    any_store.remove_job("a")
    assert version() == start + 3
    assert ChangeCounter.objects.using(any_store.using).count() == 1


def test_wait_for_change_reports_a_change_made_since_the_last_wait(any_store: DjangoStore) -> None:
    assert any_store.wait_for_change(0) is False
    any_store.add_job(make_job("a"))
    started = time.monotonic()
    assert any_store.wait_for_change(2.0) is True
    assert time.monotonic() - started < 0.5
    assert any_store.wait_for_change(0.1) is False


def test_an_unreadable_row_is_failed_and_the_others_still_fire(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("good"))
    any_store.add_job(make_job("bad"))
    JobRow.objects.using(any_store.using).filter(pk="bad").update(
        trigger_kind="cron", cron_expression="99 * * * *"
    )
    assert [j.id for j in any_store.acquire_due_jobs(T0, limit=10)] == ["good"]
    bad = JobRow.objects.using(any_store.using).get(pk="bad")
    assert bad.status == "failed" and "minute" in bad.last_error and bad.next_run_time is None


def test_removing_a_job_removes_its_history(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("a"))
    (job,) = any_store.acquire_due_jobs(T0, limit=10)
    any_store.release_jobs([release_of(job, fired=(T0,))])
    any_store.remove_job("a")
    assert not JobRun.objects.using(any_store.using).exists()


@pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks(transaction=True))])
def test_two_beats_claiming_concurrently_never_claim_a_job_twice(postgres_available: None, _pg: None) -> None:
    clock = FakeClock(T0)
    setup = DjangoStore(clock=clock, using="postgres")
    for i in range(300):
        setup.add_job(make_job(f"job-{i:03d}", at=T0 - timedelta(seconds=i % 17)))
    claimed: dict[str, list[str]] = {"one": [], "two": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        store = DjangoStore(clock=clock, using="postgres")
        try:
            barrier.wait()
            while batch := store.acquire_due_jobs(T0, limit=7, claim_ttl=600):
                claimed[name].extend(job.id for job in batch)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections["postgres"].close()

    threads = [threading.Thread(target=claim, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    every = claimed["one"] + claimed["two"]
    assert len(every) == len(set(every)) == 300
    assert claimed["one"] and claimed["two"], "both beats should have claimed some jobs"


def test_only_a_reschedule_ends_a_claim(any_store: DjangoStore) -> None:
    any_store.add_job(make_job("a"))
    (claimed,) = any_store.acquire_due_jobs(T0, limit=10)
    rows = JobRow.objects.using(any_store.using)
    assert rows.get(pk="a").claim_token == claimed.claim
    edited = any_store.get_job("a")
    assert edited is not None
    edited.name = "renamed"
    any_store.update_job(edited)
    row = rows.get(pk="a")
    assert (row.name, row.claim_token, row.claimed_until) == (
        "renamed",
        claimed.claim,
        T0 + timedelta(seconds=60),
    )
    edited.status = JobStatus.PAUSED
    any_store.update_job(edited, reschedule=True)
    row = rows.get(pk="a")
    assert (row.status, row.claim_token, row.claimed_by, row.claimed_until) == ("paused", "", "", None)


def test_a_run_end_sets_the_status_status_after_run_gives(any_store: DjangoStore) -> None:
    """run_finished computes the status in SQL; every status, with and without a next run
    time and an error, gets what :func:`status_after_run` says."""
    rows = JobRow.objects.using(any_store.using)
    cases = [
        (status, next_time, error)
        for status in JobStatus
        if status is not JobStatus.CANCELLED  # never stored
        for next_time in (T0, None)
        for error in ("boom", None)
    ]
    for n, (status, next_time, error) in enumerate(cases):
        job_id = f"j{n}"
        any_store.add_job(make_job(job_id))
        rows.filter(pk=job_id).update(status=status.value, next_run_time=next_time)
        any_store.run_finished(job_id, f"t{n}", finished_at=T0, duration=0.5, error=error)
        row = rows.get(pk=job_id)
        assert row.status == status_after_run(status, next_time, error).value, (status, next_time, error)
        assert (row.last_finished_at, row.last_duration) == (T0, 0.5)
        assert row.last_error == (error or "")


@pytest.mark.django_db(databases=["default"])
def test_an_interruption_is_not_hidden_by_the_database_error_that_follows_it() -> None:
    """SystemExit raised in the middle of a statement (celery's SIGTERM handler) makes the
    rollback fail; the store re-raises the SystemExit, not a StoreError the beat would retry."""
    store = DjangoStore(using="default")
    with pytest.raises(SystemExit), store._errors():
        try:
            raise SystemExit(0)
        except SystemExit:
            # What Django's atomic() raises when its rollback finds the statement still active.
            raise DatabaseError("can't change 'autocommit' now: connection in transaction status ACTIVE")  # noqa: B904


@pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks())])
def test_on_postgresql_leases_and_claims_are_judged_by_the_database_clock(
    postgres_available: None, _pg: None
) -> None:
    """A standby whose clock runs a minute ahead cannot take a live lease, nor the leader's
    live claims; with the callers' clocks (``server_time=False``) it could."""
    from datetime import UTC, datetime

    leader = DjangoStore(using="postgres")
    ahead = DjangoStore(using="postgres")
    trusting = DjangoStore(using="postgres", server_time=False)
    now = datetime.now(UTC)
    skewed = now + timedelta(minutes=1)
    leader.add_job(make_job("a", at=now - timedelta(seconds=1)))
    assert leader.acquire_lease("beat-1", now=now, ttl=30)
    (job,) = leader.acquire_due_jobs(now, limit=10, owner="beat-1", claim_ttl=30)
    assert not ahead.acquire_lease("beat-2", now=skewed, ttl=30)
    assert ahead.acquire_due_jobs(skewed, limit=10) == []  # the claim is live by the database's clock
    lease = leader.get_lease()
    assert lease is not None and abs((lease.expires_at - now).total_seconds() - 30) < 5
    assert trusting.acquire_lease("beat-2", now=skewed + timedelta(minutes=1), ttl=30)
    assert job.claim is not None
