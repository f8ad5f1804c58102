"""``BEATX["DATABASE"]`` is the database of every process: the admin, the management
commands, the beat (``celery beat -S beatx`` with ``django://``) and the workers' run records.

The test project has two databases: ``default`` (SQLite) and ``postgres``. With
``BEATX["DATABASE"] = "postgres"``, whatever the beat and the worker hook write lands in
``postgres``, and ``default`` stays empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse

import beatx.celery
from beatx.celery import BeatxScheduler
from beatx.dispatch.celery import JOB_ID_HEADER
from beatx.errors import ConfigurationError
from beatx.jobs import Job
from beatx.stores import open_store
from beatx.triggers import IntervalTrigger
from django_beatx import conf
from django_beatx import models as m
from django_beatx.store import DjangoStore
from tests.django.conftest import HAS_POSTGRES

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres"
#: Every table of the store.
TABLES = (m.Job, m.JobRun, m.Lease, m.BeatState, m.ChangeCounter, m.MetaValue)

_F = TypeVar("_F", bound=Callable[..., Any])

needs_postgres = pytest.mark.skipif(not HAS_POSTGRES, reason="PostgreSQL is not reachable")


def on_both_databases(*, transaction: bool = False) -> Callable[[_F], _F]:
    """Marks a test on ``default`` and ``postgres``; without a PostgreSQL server it has no
    database mark, and its ``postgres_available`` fixture skips it (fails it under CI=true)."""

    def mark(test: _F) -> _F:
        test = pytest.mark.postgres(test)
        if HAS_POSTGRES:
            test = pytest.mark.django_db(databases=["default", PG], transaction=transaction)(test)
        return test

    return mark


def rows_in(alias: str) -> dict[str, int]:
    """How many rows each store table holds in the database ``alias``."""
    return {model.__name__: model._default_manager.using(alias).count() for model in TABLES}


@pytest.fixture
def on_postgres(settings: Any, postgres_available: None) -> None:
    settings.BEATX = {"DATABASE": PG}


# -- the store URL ------------------------------------------------------------------------------


def test_django_url_opens_the_database_of_the_setting(settings: Any) -> None:
    assert getattr(settings, "BEATX", None) is None
    store = open_store("django://")
    assert isinstance(store, DjangoStore) and store.using == "default"
    assert open_store("django://default").using == "default"  # type: ignore[attr-defined]
    assert conf.store_database("django:///") == "default"
    # Another alias than the admin's is refused: runs would go where nobody sees them.
    with pytest.raises(ConfigurationError, match=r"names the database 'elsewhere'.*BEATX\[\"DATABASE\"\]"):
        open_store("django://elsewhere")
    settings.BEATX = {"DATABASE": "nowhere"}
    with pytest.raises(ConfigurationError, match="'nowhere', which is not in DATABASES"):
        open_store("django://")
    for bad in ("django://a/b", "django://u:p@host"):
        with pytest.raises(ConfigurationError, match="expected django://"):
            open_store(bad)
    # A caller that names the alias itself gets it.
    assert open_store("django://", using="default").using == "default"  # type: ignore[attr-defined]


@needs_postgres
def test_django_url_follows_beatx_database(settings: Any) -> None:
    settings.BEATX = {"DATABASE": PG}
    assert open_store("django://").using == PG  # type: ignore[attr-defined]
    assert open_store("django://postgres").using == PG  # type: ignore[attr-defined]
    assert conf.get_store().using == PG
    with pytest.raises(ConfigurationError, match="names the database 'default'.*is 'postgres'"):
        open_store("django://default")


# -- the beat and the worker hook, in this process -----------------------------------------------


@pytest.mark.usefixtures("on_postgres")
@on_both_databases()
def test_the_beat_scheduler_and_the_worker_hook_write_to_the_configured_database() -> None:
    """What ``celery beat -S beatx`` and a worker with ``beatx.celery.setup(app)`` call: the
    scheduler opens its store and ticks (imports beat_schedule, takes the lease, sends the
    due fire, records it); the worker hook records the run's start and end."""
    app = Celery("beatx-database-setting", broker="memory://", set_as_current=False)
    app.conf.beatx_store = "django://"
    app.conf.result_expires = None  # no celery.backend_cleanup entry
    app.conf.beat_schedule = {"ping": {"task": "tests.alias.ping", "schedule": 3600}}

    @app.task(name="tests.alias.ping")
    def ping() -> str:
        return "pong"

    beatx.celery.setup(app)
    before = rows_in("default")

    scheduler = BeatxScheduler(app=app, max_interval=1)
    try:
        assert isinstance(scheduler.store, DjangoStore) and scheduler.store.using == PG
        scheduler.tick()  # sends the first fire of "ping", then waits at most 1 s
    finally:
        scheduler.close()

    job = m.Job.objects.using(PG).get(pk="ping")
    assert job.total_run_count == 1
    assert m.Lease.objects.using(PG).exists() and m.BeatState.objects.using(PG).exists()
    (dispatched,) = m.JobRun.objects.using(PG).filter(job_id="ping")
    assert dispatched.dispatched_at is not None

    # The worker side: the task_prerun / task_postrun handlers setup() installed.
    result = ping.apply(task_id="alias-run-1", headers={JOB_ID_HEADER: "ping"})
    assert result.get() == "pong"
    run = m.JobRun.objects.using(PG).get(task_id="alias-run-1")
    assert run.outcome == m.JobRun.Outcome.SUCCEEDED
    assert run.started_at is not None and run.finished_at is not None
    assert m.Job.objects.using(PG).get(pk="ping").last_finished_at is not None

    assert rows_in("default") == before == dict.fromkeys(before, 0)


# -- real processes -----------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")


@pytest.fixture
def start_celery(redis_url: str, tmp_path: Path, on_postgres: None) -> Iterator[Callable[..., Path]]:
    """Starts ``celery -A tests.django.hooked_app ...`` with ``BEATX["DATABASE"] = "postgres"``,
    ``postgres`` being this test's PostgreSQL database and ``default`` its SQLite file."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.django.settings",
        BEATX_TEST_SQLITE=str(settings.DATABASES["default"]["NAME"]),
        BEATX_TEST_PG_NAME=str(connections[PG].settings_dict["NAME"]),
        BEATX_TEST_DATABASE=PG,
        BEATX_TEST_BROKER=redis_url,
        BEATX_TEST_EXECUTIONS=str(tmp_path / "executions.txt"),
    )
    env.pop("BEATX_TEST_PG_DEFAULT", None)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(name: str, *args: str) -> Path:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.django.hooked_app", *args, "-l", "info"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((popen, log))
        return log

    try:
        yield start
    finally:
        for popen, _ in reversed(started):
            if popen.poll() is None:
                popen.terminate()
            try:
                popen.wait(30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        for _, log in started:
            print(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-2000:]}")


@pytest.mark.slow
@pytest.mark.redis
@on_both_databases(transaction=True)
def test_a_real_beat_and_worker_use_the_configured_database(
    start_celery: Callable[..., Path], client: Client, admin_user: Any
) -> None:
    store = DjangoStore(using=PG)
    first = datetime.now(UTC) + timedelta(seconds=1)
    store.add_job(
        Job(
            id="every-second",
            func="tests.record_fire",
            trigger=IntervalTrigger(seconds=1, start_date=first),
            next_run_time=first,
        )
    )
    worker_log = start_celery("worker", "worker", "-P", "solo", "--without-gossip", "--without-mingle")
    beat_log = start_celery("beat", "beat", "-S", "beatx")

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in (beat_log, worker_log)
        )

    def finished_runs() -> int:
        return int(
            m.JobRun.objects.using(PG)
            .filter(job_id="every-second", outcome=m.JobRun.Outcome.SUCCEEDED, started_at__isnull=False)
            .exclude(dispatched_at=None)
            .count()
        )

    wait_until(lambda: finished_runs() >= 2, 90, "runs sent by the beat and recorded by the worker", logs)
    lease = m.Lease.objects.using(PG).get()
    assert lease.owner  # the beat leads on postgres
    assert rows_in("default") == dict.fromkeys(rows_in("default"), 0), logs()

    # The admin, in this process, sees the same jobs and runs.
    client.force_login(admin_user)
    page = client.get(reverse("admin:django_beatx_job_change", args=["every-second"])).content.decode()
    assert "every-second" in page and "Latest runs" in page
