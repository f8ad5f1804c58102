"""The admin's schedule policies: catch-up, jitter and max_runs in the form, who paused a job,
and the backfill action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from beatx.jobs import CatchUp, JobStatus, Overlap, fire_task_id
from beatx.triggers import CronTrigger
from django_beatx import conf
from django_beatx.models import Job, JobRun
from tests.django.test_admin import ADD, CHANGELIST, form_data

pytestmark = pytest.mark.django_db(databases=["default"])


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_the_form_saves_the_policies_and_the_scheduler_reads_them(admin: Client) -> None:
    response = admin.post(
        reverse(ADD),
        form_data(catchup="none", catchup_window="3600", catchup_limit="", jitter="90", max_runs="12"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = conf.get_manager().get_job("nightly-invoices")
    assert job is not None
    assert (job.catchup, job.catchup_window, job.jitter, job.max_runs) == (CatchUp.NONE, 3600.0, 90.0, 12)
    assert job.describe()["remaining_runs"] == 12


def test_the_form_saves_the_overlap_policy_and_a_form_without_it_skips(admin: Client) -> None:
    response = admin.post(reverse(ADD), form_data(overlap="buffer_one", pause_after_failures="3"))
    assert response.status_code == 302, response.content.decode()[:2000]
    job = conf.get_manager().get_job("nightly-invoices")
    assert job is not None and (job.overlap, job.pause_after_failures) == (Overlap.BUFFER_ONE, 3)
    assert Job.objects.get(pk="nightly-invoices").overlap == "buffer_one"
    response = admin.post(reverse(ADD), form_data(id="older-form"))
    assert response.status_code == 302, response.content.decode()[:2000]
    older = conf.get_manager().get_job("older-form")
    assert older is not None and (older.overlap, older.pause_after_failures) == (Overlap.SKIP, None)
    page = admin.post(reverse(ADD), form_data(id="bad", overlap="sometimes")).content.decode()
    assert "Select a valid choice" in page and not Job.objects.filter(pk="bad").exists()


def test_a_catch_up_that_contradicts_coalesce_is_refused_beside_the_field(admin: Client) -> None:
    data = form_data(catchup="latest")
    data.pop("coalesce")  # coalesce off means catch-up all
    page = admin.post(reverse(ADD), data).content.decode()
    assert "Catch-up latest and coalesce off disagree" in page
    assert not Job.objects.filter(pk="nightly-invoices").exists()


def test_pausing_from_the_list_records_who_and_when_and_the_list_shows_it(
    admin: Client, admin_user: Any
) -> None:
    manager = conf.get_manager()
    manager.add_job("reports.send_digest", CronTrigger("0 3 * * *"), id="a")
    admin.post(
        reverse(CHANGELIST), {"action": "pause_jobs", "_selected_action": ["a"], "pause_note": "API down"}
    )
    job = manager.get_job("a")
    assert job is not None
    assert (job.status, job.pause_note, job.paused_by) == (
        JobStatus.PAUSED,
        "API down",
        admin_user.get_username(),
    )
    assert job.paused_at is not None and datetime.now(UTC) - job.paused_at < timedelta(minutes=1)
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert f"API down (by {admin_user.get_username()})" in page
    admin.post(reverse(CHANGELIST), {"action": "resume_jobs", "_selected_action": ["a"]})
    resumed = manager.get_job("a")
    assert resumed is not None and (resumed.pause_note, resumed.paused_by, resumed.paused_at) == (
        None,
        None,
        None,
    )


def test_the_backfill_action_sends_the_range_once(admin: Client) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    conf.get_manager().add_job("reports.send_digest", CronTrigger("0 * * * *", "UTC"), id="hourly")
    bar = {"backfill_from": "2026-03-01T00:00+00:00", "backfill_to": "2026-03-01T03:00+00:00"}
    first = admin.post(
        reverse(CHANGELIST), {"action": "backfill_jobs", "_selected_action": ["hourly"], **bar}, follow=True
    ).content.decode()
    assert "4 fires were sent to the workers." in first
    hours = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in range(4)]
    assert set(JobRun.objects.filter(job_id="hourly").values_list("task_id", flat=True)) == {
        fire_task_id("hourly", t) for t in hours
    }
    again = admin.post(
        reverse(CHANGELIST), {"action": "backfill_jobs", "_selected_action": ["hourly"], **bar}, follow=True
    ).content.decode()
    assert "0 fires were sent to the workers." in again
    assert JobRun.objects.filter(job_id="hourly").count() == 4
    bad = admin.post(
        reverse(CHANGELIST),
        {"action": "backfill_jobs", "_selected_action": ["hourly"], "backfill_from": "yesterday"},
        follow=True,
    ).content.decode()
    assert "Give &quot;Backfill from&quot; and &quot;to&quot; as dates and times" in bad
