"""The run ledger on the Django store: the admin's history reads it (``JobManager.job_runs``),
and ``beatx_prune_runs --keep`` bounds it per job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from beatx.jobs import JobStatus
from beatx.ledger import RunOutcome
from beatx.stores.base import JobRelease
from beatx.triggers import IntervalTrigger
from django_beatx import conf
from django_beatx.models import JobRun
from django_beatx.store import DjangoStore

pytestmark = pytest.mark.django_db(databases=["default"])


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def _fire(store: DjangoStore, job_id: str, at: datetime, task_id: str) -> None:
    (job,) = store.acquire_due_jobs(at, limit=1)
    store.release_jobs(
        [
            JobRelease(
                job_id=job_id,
                claim=job.claim,
                next_run_time=at + timedelta(minutes=5),
                status=job.status,
                last_run_time=at,
                fired=(at,),
                task_ids=(task_id,),
                missed=1,
            )
        ]
    )


def test_the_change_page_shows_the_ledger_with_worker_outcomes(admin: Client) -> None:
    manager = conf.get_manager()
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="digest")
    store: DjangoStore = conf.get_store()
    job = store.get_job("digest")
    assert job is not None and job.next_run_time is not None
    _fire(store, "digest", job.next_run_time, "t-unknown")
    now = datetime.now(UTC)
    error = "unknown task 'reports.send_digest': no worker has registered it"
    store.run_finished(
        "digest",
        "t-unknown",
        finished_at=now,
        duration=None,
        error=error,
        outcome=RunOutcome.UNKNOWN_TASK,
        worker="celery@w1",
    )
    got = store.get_job("digest")
    assert got is not None and (got.status, got.last_error) == (JobStatus.FAILED, error)

    page = admin.get(reverse("admin:django_beatx_job_change", args=["digest"])).content.decode()
    history = page[page.index('id="beatx-runs"') :]
    assert "Unknown task" in history and "celery@w1" in history and error.replace("'", "&#x27;") in history
    assert "Missed" in history and "1 fire(s) not sent" in history
    assert {run.outcome for run in manager.job_runs("digest")} == {RunOutcome.UNKNOWN_TASK, RunOutcome.MISSED}


def test_a_retried_run_still_counts_as_in_flight() -> None:
    store: DjangoStore = conf.get_store()
    conf.get_manager().add_job("reports.send_digest", IntervalTrigger(minutes=5), id="a")
    now = datetime.now(UTC)
    store.run_started("a", "t1", started_at=now, timeout=60, worker="celery@w1")
    store.run_retried("a", "t1", at=now, error="Retry in 5s: boom", retries=1, worker="celery@w1")
    assert store.running_count(now) == 1
    (run,) = store.job_runs("a")
    assert (run.outcome, run.retries, run.error) == (RunOutcome.RETRIED, 1, "Retry in 5s: boom")


def test_prune_runs_keeps_the_latest_runs_of_each_job() -> None:
    manager = conf.get_manager()
    for job_id in ("busy", "quiet"):
        manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id=job_id)
    now = datetime.now(UTC)
    for n in range(6):
        JobRun.objects.create(job_id="busy", task_id=f"busy-{n}", scheduled_at=now, outcome="succeeded")
    JobRun.objects.create(
        job_id="busy",
        task_id="busy-running",
        started_at=now,
        outcome="running",
        expires_at=now + timedelta(hours=1),
    )
    JobRun.objects.create(job_id="busy", task_id="busy-last", scheduled_at=now, outcome="succeeded")
    JobRun.objects.create(job_id="quiet", task_id="quiet-0", scheduled_at=now, outcome="succeeded")

    out = StringIO()
    call_command("beatx_prune_runs", "--keep", "2", "--dry-run", stdout=out)
    assert out.getvalue().startswith("[dry run] 6 run(s) beyond the latest 2 of their job")
    call_command("beatx_prune_runs", "--keep", "2", stdout=StringIO())
    assert set(JobRun.objects.values_list("task_id", flat=True)) == {"busy-running", "busy-last", "quiet-0"}
