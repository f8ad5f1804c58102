"""The in-process asyncio :class:`beatx.Scheduler` on the Django store.

The ORM blocks and refuses to run on an event loop (``SynchronousOnlyOperation``), so the
scheduler must make every store call off the loop: its ticks, the count at start and the
start and end of each run. A job firing every second must then run every second, each run
recorded in the history and finished (not left in flight, where ``max_instances`` would skip
the next fires), with nothing logged at WARNING or above, and the scheduler's database
connection closed at shutdown.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from datetime import timedelta

import pytest
from django.db import connections

from beatx import IntervalTrigger, JobStatus, Scheduler
from beatx.clock import SystemClock
from django_beatx.models import JobRun
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks

#: The threads the job ran on, one entry a run (a stored job names its function by reference).
RUNS: list[str] = []


async def record_run() -> None:
    RUNS.append(threading.current_thread().name)


#: Each database, with a transactional test database: the scheduler's store thread has a
#: connection of its own, which must see what the test writes (and the reverse).
DATABASES = [
    pytest.param(
        "default", id="sqlite", marks=pytest.mark.django_db(databases=["default"], transaction=True)
    ),
    pytest.param("postgres", id="postgres", marks=postgres_marks(transaction=True)),
]


def _other_sessions(alias: str) -> int:
    """Sessions open on the PostgreSQL test database other than this thread's."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("alias", DATABASES)
@pytest.mark.parametrize(
    "seconds", [pytest.param(3, id="3s"), pytest.param(30, id="30s", marks=pytest.mark.slow)]
)
def test_a_job_every_second_runs_and_is_recorded_every_second(
    alias: str, seconds: int, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    if alias == "postgres":
        request.getfixturevalue("postgres_available")
    caplog.set_level(logging.WARNING)
    request.getfixturevalue("settings").BEATX = {"ALLOWED_CALLABLE_MODULES": ["tests.django"]}
    store = DjangoStore(using=alias)
    scheduler = Scheduler(store=store)
    RUNS.clear()
    runs = RUNS
    loop_threads: set[str] = set()
    # The management API is synchronous: the job is added from synchronous code.
    scheduler.add_job(record_run, IntervalTrigger(seconds=1), id="every-second", max_instances=1)

    async def main() -> None:
        loop_threads.add(threading.current_thread().name)
        await scheduler.start()
        await asyncio.sleep(seconds)
        await asyncio.wait_for(scheduler.shutdown(wait=True), 10)

    asyncio.run(main())

    # Every fire of the interval ran: one at start, then one a second (the last may be cut
    # off by the shutdown).
    assert seconds <= len(runs) <= seconds + 1, runs
    assert set(runs) <= loop_threads
    job = store.get_job("every-second")
    assert job is not None
    assert job.total_run_count == len(runs)
    assert (job.skip_count, job.misfire_count, job.last_error) == (0, 0, None)
    assert job.status is JobStatus.ACTIVE and job.running == 0
    assert store.running_count(SystemClock().now()) == 0

    history = list(JobRun.objects.using(alias).filter(job_id="every-second").order_by("scheduled_at"))
    assert len(history) == len(runs)
    assert {run.outcome for run in history} == {JobRun.Outcome.SUCCEEDED}
    assert all(run.started_at is not None and run.finished_at is not None for run in history)
    assert all(run.dispatched_at is not None for run in history)
    fire_times = [run.scheduled_at for run in history]
    assert all(at is not None for at in fire_times)
    gaps = {later - earlier for earlier, later in itertools.pairwise(fire_times)}
    assert gaps <= {timedelta(seconds=1)}, sorted(gaps)
    assert job.last_finished_at is not None and job.last_finished_at >= history[-1].started_at

    if alias == "postgres":
        # The scheduler's store thread closed its connection at shutdown.
        assert _other_sessions(alias) == 0

    assert [record.getMessage() for record in caplog.records] == []


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_jobs_in_the_database_run_only_functions_of_the_allowed_modules(settings: object) -> None:
    """Whoever can change a job row (the admin, SQL) must not make this process call
    ``os:system``: the scheduler refuses to add such a job, and refuses to run one found in
    the database (the job turns FAILED with the reason; the module is never imported)."""
    from beatx import ConfigurationError
    from django_beatx.models import Job as JobRow

    settings.BEATX = {"ALLOWED_CALLABLE_MODULES": ["tests.django"]}  # type: ignore[attr-defined]
    store = DjangoStore(using="default")
    scheduler = Scheduler(store=store)
    with pytest.raises(ConfigurationError, match="ALLOWED_CALLABLE_MODULES"):
        scheduler.add_job("os:system", IntervalTrigger(seconds=1), id="shell", args=["true"])
    scheduler.add_job(record_run, IntervalTrigger(seconds=1), id="allowed")
    JobRow.objects.using("default").filter(pk="allowed").update(task="os:system")  # as SQL would
    RUNS.clear()

    async def main() -> None:
        await scheduler.start()
        await asyncio.sleep(1.5)
        await asyncio.wait_for(scheduler.shutdown(wait=True), 10)

    asyncio.run(main())
    job = store.get_job("allowed")
    assert job is not None and job.status is JobStatus.FAILED and job.total_run_count == 0
    assert (
        job.last_error is not None
        and "'os:system' is not in a module this scheduler may run" in job.last_error
    )
    assert RUNS == []
