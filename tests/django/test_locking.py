"""Concurrent writers of the Django store on PostgreSQL: the beat's write-back and the workers'
run records for the same task ids never deadlock, and concurrent creations of one row (a job
id, the ``beat_schedule`` import of beats starting together) never hit a duplicate key.

Every SQL statement each thread runs goes through a wrapper that records the errors it
raised, so an error the store caught and retried still fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connections

from beatx.errors import ConflictingIdError
from beatx.jobs import fire_task_id
from beatx.manager import JobManager
from beatx.stores.base import JobRelease
from beatx.testing import FakeClock
from django_beatx.models import Job as JobRow
from django_beatx.models import JobRun, MetaValue
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks
from tests.stores.contract import T0, make_job

PG = "postgres"
pg_only = pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks(transaction=True))])


class StatementErrors:
    """Collects the database errors raised by statements, across threads."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        try:
            return execute(sql, params, many, context)
        except DatabaseError as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc} [{sql[:120]}]")
            raise

    @contextmanager
    def watching(self, alias: str) -> Iterator[None]:
        """Record the errors of this thread's connection to ``alias``."""
        with connections[alias].execute_wrapper(self):
            yield


def run_threads(
    targets: list[Callable[[], None]], barrier: threading.Barrier, timeout: float = 120
) -> list[BaseException]:
    """Run each target in its own thread (its own connection); return what they raised. A
    target that raises breaks ``barrier``, so the others stop instead of waiting forever."""
    raised: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # reported by the caller, in the test's thread
                raised.append(exc)
                barrier.abort()
            finally:
                connections.close_all()

        return run

    threads = [threading.Thread(target=wrap(target), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return raised


def deadlocks() -> int:
    """``pg_stat_database.deadlocks`` of the test database, as of now."""
    with connections[PG].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        (count,) = cursor.fetchone()
    return int(count)


@pg_only
def test_the_beat_write_back_and_workers_reporting_the_same_runs_never_deadlock(
    postgres_available: None, _pg: None
) -> None:
    """Each round the beat claims every job and writes back one fire each (run history with
    the fires' task ids), while two workers report the start and the end of those same task
    ids, in the opposite job order, at the same moment."""
    jobs, rounds = 12, 30
    ids = [f"job-{i:02d}" for i in range(jobs)]
    setup = DjangoStore(clock=FakeClock(T0), using=PG)
    for job_id in ids:
        setup.add_job(make_job(job_id, at=T0, max_instances=100))
    before = deadlocks()
    watcher = StatementErrors()
    start = threading.Barrier(3, timeout=60)

    def fire_time(n: int) -> Any:
        return T0 + timedelta(seconds=n)

    def beat() -> None:
        clock = FakeClock(T0)
        store = DjangoStore(clock=clock, using=PG)
        with watcher.watching(PG):
            assert store.acquire_lease("beat-1", now=T0, ttl=3600)
            for n in range(rounds):
                at = fire_time(n)
                # A job row a worker is updating right now is passed over (SKIP LOCKED), and
                # claimed by the next call, as the engine's next tick would.
                claimed = []
                for _ in range(200):
                    claimed += store.acquire_due_jobs(at, limit=jobs, owner="beat-1")
                    if len(claimed) == jobs:
                        break
                assert sorted(job.id for job in claimed) == ids, f"round {n}: claimed {len(claimed)}"
                releases = [
                    JobRelease(
                        job_id=job.id,
                        claim=job.claim,
                        next_run_time=fire_time(n + 1),
                        status=job.status,
                        last_run_time=at,
                        fired=(at,),
                        task_ids=(fire_task_id(job.id, at),),
                    )
                    for job in claimed
                ]
                start.wait()
                store.release_jobs(releases, owner="beat-1")

    def worker(mine: list[str]) -> Callable[[], None]:
        def run() -> None:
            store = DjangoStore(clock=FakeClock(T0), using=PG)
            with watcher.watching(PG):
                for n in range(rounds):
                    at = fire_time(n)
                    start.wait()
                    for job_id in mine:
                        task_id = fire_task_id(job_id, at)
                        store.run_started(job_id, task_id, started_at=at, timeout=60)
                        store.run_finished(job_id, task_id, finished_at=at, duration=0.01, error=None)

        return run

    backwards = ids[::-1]
    raised = run_threads([beat, worker(backwards[::2]), worker(backwards[1::2])], start)

    assert not raised, raised
    assert not watcher.errors, watcher.errors
    runs = JobRun.objects.using(PG)
    assert runs.count() == jobs * rounds
    assert not runs.exclude(outcome="succeeded").exists()
    assert not runs.filter(scheduled_at__isnull=True).exists(), "a worker's record was not merged"
    assert set(JobRow.objects.using(PG).values_list("total_run_count", flat=True)) == {rounds}
    assert deadlocks() == before


@pg_only
def test_three_concurrent_adds_of_one_id_make_one_job_and_two_conflicts(
    postgres_available: None, _pg: None
) -> None:
    ids = [f"job-{i:02d}" for i in range(20)]
    outcomes: dict[str, list[str]] = {job_id: [] for job_id in ids}
    lock = threading.Lock()
    watcher = StatementErrors()
    together = threading.Barrier(3, timeout=60)

    def add() -> None:
        store = DjangoStore(clock=FakeClock(T0), using=PG)
        with watcher.watching(PG):
            for job_id in ids:
                together.wait()
                try:
                    store.add_job(make_job(job_id))
                    outcome = "added"
                except ConflictingIdError:
                    outcome = "conflict"
                with lock:
                    outcomes[job_id].append(outcome)

    raised = run_threads([add, add, add], together)

    assert not raised, raised
    assert not watcher.errors, watcher.errors  # no duplicate key, not even one caught inside
    assert all(sorted(seen) == ["added", "conflict", "conflict"] for seen in outcomes.values()), outcomes
    assert set(JobRow.objects.using(PG).values_list("revision", flat=True)) == {1}


@pg_only
def test_beats_importing_one_beat_schedule_together_hit_no_duplicate_key(
    postgres_available: None, _pg: None
) -> None:
    """Three beats start together, five times, each time with 15 more ``beat_schedule``
    entries: all of them add the new jobs and write the imported ids at the same moment."""
    from beatx.celery import IMPORTED_IDS_META, import_beat_schedule

    rounds, per_round = 5, 15
    schedules = [
        {
            f"entry-{r}-{i:02d}": {"task": "reports.send_digest", "schedule": 60.0 + i}
            for r in range(upto + 1)
            for i in range(per_round)
        }
        for upto in range(rounds)
    ]
    watcher = StatementErrors()
    together = threading.Barrier(3, timeout=60)
    imported: list[list[str]] = []
    lock = threading.Lock()

    def start_a_beat() -> None:
        manager = JobManager(DjangoStore(using=PG))
        with watcher.watching(PG):
            for schedule in schedules:
                together.wait()
                ids = import_beat_schedule(manager, schedule)
                with lock:
                    imported.append(sorted(ids))

    raised = run_threads([start_a_beat, start_a_beat, start_a_beat], together)

    assert not raised, raised
    assert not watcher.errors, watcher.errors
    assert sorted(imported) == sorted(sorted(schedule) for schedule in schedules for _ in range(3))
    rows = JobRow.objects.using(PG)
    assert sorted(rows.values_list("id", flat=True)) == sorted(schedules[-1])
    assert MetaValue.objects.using(PG).filter(key=IMPORTED_IDS_META).count() == 1


@pytest.mark.parametrize(
    "alias",
    [
        pytest.param("default", id="sqlite", marks=pytest.mark.django_db(databases=["default"])),
        pytest.param(PG, id="postgres", marks=postgres_marks()),
    ],
)
def test_a_taken_id_is_refused_without_a_failing_statement(
    alias: str, request: pytest.FixtureRequest
) -> None:
    if alias == PG:
        request.getfixturevalue("postgres_available")
    any_store = DjangoStore(clock=FakeClock(T0), using=alias)
    watcher = StatementErrors()
    with watcher.watching(any_store.using):
        any_store.add_job(make_job("a", name="first"))
        with pytest.raises(ConflictingIdError):
            any_store.add_job(make_job("a", name="second"))
        any_store.add_job(make_job("a", name="third"), replace_existing=True)
        any_store.write_meta("k", "1")
        any_store.write_meta("k", "2")
        # A run reported for a job that does not exist is ignored, not a foreign-key error.
        any_store.run_started("missing", "t-1", started_at=T0, timeout=60)
        any_store.run_finished("missing", "t-1", finished_at=T0, duration=0.1, error=None)
    assert not watcher.errors, watcher.errors
    got = any_store.get_job("a")
    assert got is not None and got.name == "third" and got.revision == 2
    assert any_store.read_meta("k") == "2"
    assert not JobRun.objects.using(any_store.using).exists()


@pg_only
def test_a_call_from_a_signal_handler_in_the_middle_of_a_statement_does_not_hang(
    postgres_available: None, _pg: None
) -> None:
    """celery beat closes its scheduler from its SIGTERM handler, which releases the lease
    through the store while the interrupted tick may be inside a statement on the thread's
    connection (whose lock psycopg does not let the same thread take twice). The handler's
    call runs on a connection of its own."""
    store = DjangoStore(using=PG)
    store.add_job(make_job("a"))
    assert store.acquire_lease("beat-1", now=T0, ttl=10**6)
    interrupted: list[str] = []

    def signal_mid_statement(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not interrupted:
            interrupted.append(sql)
            with context["connection"].connection.lock:  # as during the statement
                store.release_lease("beat-1")
        return execute(sql, params, many, context)

    def tick() -> None:
        with connections[PG].execute_wrapper(signal_mid_statement):
            assert store.get_job("a") is not None

    done = threading.Barrier(1)
    raised = run_threads([tick], done, timeout=30)

    assert not raised, raised
    assert interrupted, "the statement was not interrupted"
    assert store.get_lease() is None


@pg_only
def test_two_deliveries_of_one_fire_at_the_same_moment_start_it_once(
    postgres_available: None, _pg: None
) -> None:
    """The duplicate guard on PostgreSQL: each round the beat writes back a fire of every job
    (its dispatch record) while two workers get the same messages at the same moment, in
    opposite orders. Every (task id) starts exactly once, whichever of the three writes first."""
    jobs, rounds = 8, 25
    ids = [f"job-{i:02d}" for i in range(jobs)]
    setup = DjangoStore(clock=FakeClock(T0), using=PG)
    for job_id in ids:
        setup.add_job(make_job(job_id, at=T0, max_instances=100))
    watcher = StatementErrors()
    start = threading.Barrier(3, timeout=60)
    started: list[str] = []
    lock = threading.Lock()

    def fire_time(n: int) -> Any:
        return T0 + timedelta(seconds=n)

    def beat() -> None:
        store = DjangoStore(clock=FakeClock(T0), using=PG)
        with watcher.watching(PG):
            for n in range(rounds):
                at = fire_time(n)
                start.wait()
                store.record_dispatches([(job_id, fire_task_id(job_id, at), at) for job_id in ids])

    def worker(order: list[str]) -> Callable[[], None]:
        def run() -> None:
            store = DjangoStore(clock=FakeClock(T0), using=PG)
            with watcher.watching(PG):
                for n in range(rounds):
                    at = fire_time(n)
                    start.wait()
                    for job_id in order:
                        task_id = fire_task_id(job_id, at)
                        if store.start_run_once(job_id, task_id, attempt=0, started_at=at, timeout=60):
                            with lock:
                                started.append(task_id)

        return run

    raised = run_threads([beat, worker(ids), worker(ids[::-1])], start)

    assert not raised, raised
    assert not watcher.errors, watcher.errors
    expected = {fire_task_id(job_id, fire_time(n)) for job_id in ids for n in range(rounds)}
    assert sorted(started) == sorted(expected), "a delivery started twice or never"
    runs = JobRun.objects.using(PG).filter(task_id__in=expected)
    assert runs.count() == len(expected)
    assert not runs.filter(started_at__isnull=True).exists()
    assert not runs.filter(scheduled_at__isnull=True).exists(), "the beat's record lost to a worker's"


@pg_only
def test_a_dispatch_record_written_between_the_guards_statements_does_not_drop_the_delivery(
    postgres_available: None, _pg: None
) -> None:
    """The beat's record of a fire lands just after the worker's guard found no row to mark
    started: the guard must not take the beat's row for an earlier delivery."""
    store = DjangoStore(clock=FakeClock(T0), using=PG)
    store.add_job(make_job("a", at=T0))
    task_id = fire_task_id("a", T0)
    injected: list[bool] = []

    def beat_records_the_fire() -> None:
        DjangoStore(clock=FakeClock(T0), using=PG).record_dispatches([("a", task_id, T0)])
        connections.close_all()

    def after_the_first_update(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        if not injected and sql.startswith('UPDATE "django_beatx_jobrun"'):
            injected.append(True)
            thread = threading.Thread(target=beat_records_the_fire)
            thread.start()
            thread.join(30)
        return result

    with connections[PG].execute_wrapper(after_the_first_update):
        first = store.start_run_once("a", task_id, attempt=0, started_at=T0, timeout=60)
    assert injected == [True], "the beat's write did not land between the guard's statements"
    assert first is True, "the first delivery was dropped as a duplicate"
    assert store.start_run_once("a", task_id, attempt=0, started_at=T0, timeout=60) is False
    run = JobRun.objects.using(PG).get(task_id=task_id)
    assert run.started_at is not None and run.scheduled_at == T0
