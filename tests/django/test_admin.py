"""The jobs admin, driven through the Django test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from beatx.jobs import JobStatus
from beatx.triggers import CronTrigger, IntervalTrigger
from django_beatx import conf
from django_beatx.models import Job, JobRun
from django_beatx.store import DjangoStore

pytestmark = pytest.mark.django_db(databases=["default"])

CHANGELIST = "admin:django_beatx_job_changelist"
ADD = "admin:django_beatx_job_add"


def change_url(job_id: str) -> str:
    return reverse("admin:django_beatx_job_change", args=[job_id])


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "nightly-invoices",
        "name": "Nightly invoices",
        "task": "billing.tasks.invoice",
        "args": "[]",
        "kwargs": '{"dry_run": false}',
        "trigger_kind": "cron",
        "cron_expression": "0 3 * * 1-5",
        "interval_seconds": "",
        "start_now": "on",
        "run_at_0": "",
        "run_at_1": "",
        "timezone": "Europe/Paris",
        "start_date_0": "",
        "start_date_1": "",
        "end_date_0": "",
        "end_date_1": "",
        "queue": "",
        "routing_key": "",
        "exchange": "",
        "priority": "",
        "expires": "",
        "headers": "{}",
        "extra_options": "{}",
        "misfire_grace_time": "",
        "coalesce": "on",
        "max_instances": "1",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def store() -> DjangoStore:
    return conf.get_store()  # type: ignore[no-any-return]


def add(job_id: str, trigger: Any, **fields: Any) -> None:
    conf.get_manager().add_job("reports.send_digest", trigger, id=job_id, **fields)


def test_the_list_shows_readable_triggers_badges_and_the_health_panel(admin: Client) -> None:
    add("weekday", CronTrigger("0 3 * * 1-5", timezone="Europe/Paris"), name="Weekday report")
    add("often", IntervalTrigger(minutes=5))
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert "At 03:00, Monday through Friday (Europe/Paris)" in page
    assert "every 5 minutes" in page
    assert 'class="beatx-badge beatx-status-active"' in page
    assert 'id="beatx-health"' in page and "no beat is running" in page


def test_the_list_filters_by_status_and_searches_by_task(admin: Client) -> None:
    add("a", IntervalTrigger(minutes=5))
    add("b", IntervalTrigger(minutes=5), paused=True)
    page = admin.get(reverse(CHANGELIST), {"status__exact": "paused"}).content.decode()
    assert "/change/" in page and change_url("b") in page and change_url("a") not in page
    page = admin.get(reverse(CHANGELIST), {"q": "send_digest"}).content.decode()
    assert change_url("a") in page


def test_a_bad_cron_expression_is_reported_beside_its_field(admin: Client) -> None:
    response = admin.post(reverse(ADD), form_data(cron_expression="0 25 * * *"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["cron_expression"]
    assert "hour" in errors["cron_expression"][0] and "25" in errors["cron_expression"][0]
    page = response.content.decode()
    assert 'class="beatx-preview-error"' in page
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"trigger_kind": "interval", "interval_seconds": "0"}, "interval_seconds", "greater than 0"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown timezone"),
        ({"args": '{"a": 1}'}, "args", "JSON list"),
        ({"kwargs": "[1]"}, "kwargs", "JSON object"),
        ({"task": "not a task!"}, "task", "dotted name"),
        ({"cron_expression": "0 0 30 2 *"}, "cron_expression", "never"),
        ({"trigger_kind": "date"}, "run_at", "run time"),
        ({"end_date_0": "2020-01-01", "end_date_1": "00:00:00"}, "end_date", "never fires"),
    ],
    ids=[
        "zero-interval",
        "unknown-zone",
        "args-not-list",
        "kwargs-not-object",
        "bad-task",
        "31-feb",
        "no-run-at",
        "past-end",
    ],
)
def test_invalid_input_is_reported_beside_the_field(
    admin: Client, overrides: dict[str, Any], field: str, words: str
) -> None:
    response = admin.post(reverse(ADD), form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert words in " ".join(errors[field])


def test_a_valid_save_goes_through_the_store(admin: Client, store: DjangoStore) -> None:
    version = store.change_version()
    response = admin.post(reverse(ADD), form_data())
    assert response.status_code == 302
    row = Job.objects.get(pk="nightly-invoices")
    assert row.next_run_time is not None and row.next_run_time > datetime.now(UTC)
    assert row.next_run_time.astimezone(CronTrigger("* * * * *", "Europe/Paris").timezone).hour == 3  # type: ignore[arg-type]
    assert row.revision == 1 and row.kwargs == {"dry_run": False}
    assert store.change_version() == version + 1
    job = store.get_job("nightly-invoices")
    assert job is not None and job.trigger == CronTrigger("0 3 * * 1-5", timezone="Europe/Paris")


def test_editing_the_trigger_reschedules_and_editing_the_name_does_not(admin: Client) -> None:
    admin.post(reverse(ADD), form_data())
    before = Job.objects.get(pk="nightly-invoices").next_run_time
    admin.post(change_url("nightly-invoices"), form_data(name="Renamed"))
    row = Job.objects.get(pk="nightly-invoices")
    assert (row.name, row.next_run_time, row.revision) == ("Renamed", before, 2)
    admin.post(change_url("nightly-invoices"), form_data(trigger_kind="interval", interval_seconds="60"))
    row = Job.objects.get(pk="nightly-invoices")
    assert row.trigger_kind == "interval" and row.cron_expression == ""
    assert row.next_run_time is not None and row.next_run_time - datetime.now(UTC) < timedelta(seconds=61)


def test_run_at_is_entered_in_the_jobs_timezone(admin: Client) -> None:
    admin.post(
        reverse(ADD),
        form_data(
            trigger_kind="date", run_at_0="2030-07-01", run_at_1="10:30:00", timezone="America/New_York"
        ),
    )
    row = Job.objects.get(pk="nightly-invoices")
    assert row.run_at == datetime(2030, 7, 1, 14, 30, tzinfo=UTC)
    assert row.next_run_time == row.run_at
    page = admin.get(change_url("nightly-invoices")).content.decode()
    assert 'value="10:30:00"' in page


def test_the_change_page_previews_five_fire_times_in_the_jobs_zone(admin: Client) -> None:
    add("paris", CronTrigger("30 9 * * *", timezone="Europe/Paris"))
    response = admin.get(change_url("paris"))
    preview = response.context["beatx_preview"]
    assert preview["timezone"] == "Europe/Paris"
    assert len(preview["times"]) == 5
    assert all(" 09:30:00 " in t and ("CET" in t or "CEST" in t) for t in preview["times"])
    assert 'id="beatx-preview"' in response.content.decode()


def test_pause_resume_and_duplicate_actions(admin: Client, store: DjangoStore) -> None:
    add("a", IntervalTrigger(minutes=5))
    add("b", IntervalTrigger(minutes=5))
    url = reverse(CHANGELIST)
    version = store.change_version()
    response = admin.post(url, {"action": "pause_jobs", "_selected_action": ["a", "b"]}, follow=True)
    assert "2 jobs were paused." in response.content.decode()
    assert set(Job.objects.values_list("status", flat=True)) == {"paused"}
    assert store.change_version() == version + 1  # one wake-up of the beat for the selection
    response = admin.post(url, {"action": "resume_jobs", "_selected_action": ["a"]}, follow=True)
    assert "1 job was resumed." in response.content.decode()
    assert Job.objects.get(pk="a").status == "active"
    response = admin.post(url, {"action": "duplicate_jobs", "_selected_action": ["a"]}, follow=True)
    assert "1 job was duplicated" in response.content.decode()
    copy = Job.objects.get(pk="a-copy")
    assert (copy.status, copy.task, copy.interval_seconds) == ("paused", "reports.send_digest", 300.0)


def test_delete_goes_through_the_store(admin: Client, store: DjangoStore) -> None:
    add("a", IntervalTrigger(minutes=5))
    version = store.change_version()
    response = admin.post(reverse("admin:django_beatx_job_delete", args=["a"]), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.exists() and store.change_version() == version + 1


def test_the_change_page_shows_the_latest_runs(admin: Client, store: DjangoStore) -> None:
    add("a", IntervalTrigger(minutes=5))
    now = datetime.now(UTC)
    JobRun.objects.bulk_create(
        JobRun(job_id="a", scheduled_at=now - timedelta(minutes=i), task_id=f"t-{i}", outcome="succeeded")
        for i in range(25)
    )
    JobRun.objects.filter(task_id="t-0").update(outcome="failed", error="ValueError: boom")
    response = admin.get(change_url("a"))
    page = response.content.decode()
    assert "Latest runs" in page and "ValueError: boom" in page
    assert "t-19" in page and "t-20" not in page


def test_run_now_sends_the_job_through_celery(admin: Client) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    add("a", IntervalTrigger(minutes=5))
    next_run = Job.objects.get(pk="a").next_run_time
    response = admin.post(
        reverse(CHANGELIST), {"action": "run_jobs_now", "_selected_action": ["a"]}, follow=True
    )
    assert "1 job was sent to the workers." in response.content.decode()
    run = JobRun.objects.get(job_id="a")
    assert run.outcome == "dispatched" and run.dispatched_at is not None
    row = Job.objects.get(pk="a")
    assert row.status == JobStatus.ACTIVE.value
    # Sent under a claim (run_job_now's), which it gave back; the schedule is unchanged.
    assert row.claim_token == "" and row.released_claim != "" and row.claimed_until is None
    assert row.next_run_time == next_run


def test_run_now_waits_for_a_beat_holding_the_job(admin: Client, store: DjangoStore) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    add("a", IntervalTrigger(minutes=5))
    Job.objects.filter(pk="a").update(next_run_time=datetime.now(UTC) - timedelta(seconds=1))
    # A beat planning the job, whose claim lapses in 0.5 s (as a beat that died).
    (held,) = store.acquire_due_jobs(datetime.now(UTC), limit=10, claim_ttl=0.5)
    claimed_until = Job.objects.get(pk="a").claimed_until
    assert held.claim and claimed_until is not None
    response = admin.post(
        reverse(CHANGELIST), {"action": "run_jobs_now", "_selected_action": ["a"]}, follow=True
    )
    # The fire went once the beat's claim had ended, not beside it.
    assert "1 job was sent to the workers." in response.content.decode()
    (run,) = JobRun.objects.filter(job_id="a", outcome="dispatched")
    assert run.dispatched_at is not None and run.dispatched_at >= claimed_until


def test_run_now_without_a_broker_says_so(admin: Client) -> None:
    from tests.django.celery_app import app

    add("a", IntervalTrigger(minutes=5))
    previous = app.conf.broker_url
    app.conf.broker_url = None
    try:
        response = admin.post(
            reverse(CHANGELIST), {"action": "run_jobs_now", "_selected_action": ["a"]}, follow=True
        )
    finally:
        app.conf.broker_url = previous
    assert "no Celery broker is configured" in response.content.decode()


def test_the_add_form_suggests_registered_tasks(admin: Client) -> None:
    import tests.django.celery_app  # noqa: F401  (registers reports.send_digest)

    page = admin.get(reverse(ADD)).content.decode()
    assert '<option value="reports.send_digest">' in page
    assert 'fieldset class="module aligned beatx-kind beatx-kind-cron' in page
