"""The admin people trust (issue 16): nothing wrong saved silently, every action on the record.

One test (or a few) per finding, each failing without its fix: the task list after Celery's
autodiscovery, the minimum interval, dates in the job's zone, a past one-shot, broken rows,
extreme values, the job defaults, the History of every action, the live preview, the
readability of the list and the job page, and function references.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from beatx.errors import InvalidJobError
from beatx.manager import JobManager
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger
from django_beatx import conf
from django_beatx.admin import format_duration, row_problem
from django_beatx.forms import MAX_SECONDS, json_depth, registered_task_names
from django_beatx.models import Job, JobRun
from tests.django.test_admin import ADD, CHANGELIST, change_url, form_data

pytestmark = pytest.mark.django_db(databases=["default"])

PREVIEW = "admin:django_beatx_job_preview"


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    return client


def add(job_id: str, trigger: Any, **fields: Any) -> None:
    conf.get_manager().add_job("reports.send_digest", trigger, id=job_id, **fields)


def errors_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    return {name: [str(e) for e in errs] for name, errs in response.context["adminform"].form.errors.items()}


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def history(job_id: str) -> list[tuple[int, str]]:
    entries = LogEntry.objects.filter(object_id=job_id).order_by("action_time", "id")
    return [(entry.action_flag, entry.change_message) for entry in entries]


def break_timezone(job_id: str) -> None:
    """A timezone no scheduler knows, written as SQL would (no model validation)."""
    Job.objects.filter(pk=job_id).update(timezone="Europe/Atlantis")


# -- 1 and 11: the task field ------------------------------------------------------------------


@pytest.fixture
def celery_app() -> Iterator[Any]:
    from celery import current_app

    from tests.django.celery_app import app

    previous = current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()


def test_task_suggestions_include_the_tasks_autodiscovery_finds(
    admin: Client, celery_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project's app: autodiscover_tasks() is lazy, the tasks module is imported only when
    # Celery loads its default modules (a worker at start; the admin now too).
    package = f"beatx_shop_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "tasks.py").write_text(
        "from celery import shared_task\n\n\n"
        f"@shared_task(name='{package}.tasks.cleanup')\n"
        "def cleanup():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    celery_app.autodiscover_tasks([package])
    assert f"{package}.tasks" not in sys.modules
    assert f"{package}.tasks.cleanup" in registered_task_names()
    page = admin.get(reverse(ADD)).content.decode()
    assert f'<option value="{package}.tasks.cleanup">' in page


def test_an_unregistered_task_is_accepted_with_a_visible_warning(admin: Client, celery_app: Any) -> None:
    response = admin.post(reverse(PREVIEW), form_data(task="billing.tasks.nobody_has_it"))
    assert "No worker may know billing.tasks.nobody_has_it" in response.json()["task_warning"]
    response = admin.post(reverse(ADD), form_data(task="billing.tasks.nobody_has_it"), follow=True)
    assert any("No worker may know" in m for m in messages_of(response))
    assert Job.objects.get(pk="nightly-invoices").task == "billing.tasks.nobody_has_it"
    response = admin.post(reverse(ADD), form_data(id="known", task="reports.send_digest"), follow=True)
    assert not any("No worker may know" in m for m in messages_of(response))


@pytest.mark.parametrize(
    "task", ["os:system", "subprocess:run", "builtins:eval", "django_beatx.conf:setting"]
)
def test_a_function_reference_outside_the_allowed_modules_is_refused(admin: Client, task: str) -> None:
    errors = errors_of(admin.post(reverse(ADD), form_data(task=task)))
    assert "ALLOWED_CALLABLE_MODULES" in errors["task"][0] and "not a Celery task name" in errors["task"][0]
    assert not Job.objects.exists()


def test_allowed_modules_admit_their_functions_and_only_theirs(admin: Client, settings: Any) -> None:
    settings.BEATX = {"ALLOWED_CALLABLE_MODULES": ["json"]}
    assert admin.post(reverse(ADD), form_data(task="json:dumps")).status_code == 302
    assert "has no" in errors_of(admin.post(reverse(ADD), form_data(id="x", task="json:nope")))["task"][0]
    assert "ALLOWED" in errors_of(admin.post(reverse(ADD), form_data(id="y", task="jsonx:dumps")))["task"][0]
    assert conf.callable_allowed("json.decoder:JSONDecoder") and not conf.callable_allowed("os:system")


# -- 2: the minimum interval ---------------------------------------------------------------------


def test_an_interval_below_the_minimum_is_refused_with_the_reason(admin: Client, settings: Any) -> None:
    errors = errors_of(admin.post(reverse(ADD), form_data(trigger_kind="interval", interval_seconds="0.001")))
    assert errors["interval_seconds"] == [
        (
            'At least 1 s (BEATX["MIN_INTERVAL_SECONDS"]): 0.001 s would send more messages than a '
            "beat and its workers keep up with."
        )
    ]
    page = admin.get(reverse(ADD)).content.decode()
    assert 'At least 1 s (BEATX["MIN_INTERVAL_SECONDS"])' in page  # the reason beside the field
    settings.BEATX = {"MIN_INTERVAL_SECONDS": 0.5}
    assert (
        admin.post(reverse(ADD), form_data(trigger_kind="interval", interval_seconds="0.75")).status_code
        == 302
    )


# -- 3: dates in the job's zone --------------------------------------------------------------------


def test_date_inputs_are_labelled_with_the_jobs_zone_and_have_their_own_now(admin: Client) -> None:
    add("ny", DateTimeTrigger(datetime(2030, 7, 1, 14, 30, tzinfo=UTC), timezone="America/New_York"))
    page = admin.get(change_url("ny")).content.decode()
    assert 'class="beatx-zone-name" data-default-zone="UTC">America/New_York</strong>' in page
    assert 'value="2030-07-01"' in page and 'value="10:30:00"' in page
    assert "beatx-now" in page and "beatx-today" in page
    # Not Django's shortcuts, whose "Now" is the server's time.
    assert "DateTimeShortcuts.js" not in page and "vDateField" not in page


# -- 4: a one-shot in the past -------------------------------------------------------------------


def test_a_past_one_shot_is_refused_unless_run_once_now_is_ticked(admin: Client) -> None:
    past = {"trigger_kind": "date", "run_at_0": "2020-01-01", "run_at_1": "09:00:00"}
    errors = errors_of(admin.post(reverse(ADD), form_data(**past)))
    assert "has passed" in errors["run_at"][0] and "Run once now" in errors["run_at"][0]
    assert not Job.objects.exists()
    assert admin.post(reverse(ADD), form_data(**past, run_once_now="on")).status_code == 302
    row = Job.objects.get(pk="nightly-invoices")
    assert row.next_run_time is not None and row.next_run_time <= datetime.now(UTC)
    # Saving it again with its time unchanged (a rename) needs no tick.
    assert admin.post(change_url("nightly-invoices"), form_data(**past, name="Renamed")).status_code == 302


# -- 5: broken rows --------------------------------------------------------------------------------


def test_a_broken_row_is_shown_as_broken_and_left_out_of_every_action(admin: Client) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    add("good", IntervalTrigger(minutes=5))
    add("bad", CronTrigger("0 3 * * *", timezone="Europe/Paris"))
    break_timezone("bad")
    assert row_problem(Job.objects.get(pk="bad")) == "unknown timezone 'Europe/Atlantis'"
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert "beatx-status-broken" in page and "unknown timezone &#x27;Europe/Atlantis&#x27;" in page
    for action in ("pause_jobs", "resume_jobs", "run_jobs_now", "duplicate_jobs"):
        response = admin.post(
            reverse(CHANGELIST), {"action": action, "_selected_action": ["good", "bad"]}, follow=True
        )
        assert response.status_code == 200
        assert any(
            "1 broken job was left out" in m and "bad: unknown timezone" in m for m in messages_of(response)
        )
    bad = Job.objects.get(pk="bad")
    assert (bad.status, bad.revision, bad.timezone) == ("active", 1, "Europe/Atlantis")
    assert not JobRun.objects.filter(job_id="bad").exists() and not Job.objects.filter(pk="bad-copy").exists()
    assert Job.objects.filter(pk="good-copy").exists() and JobRun.objects.filter(job_id="good").exists()


def test_a_broken_row_is_repaired_by_saving_its_form(admin: Client) -> None:
    add("bad", CronTrigger("0 3 * * *", timezone="Europe/Paris"))
    Job.objects.filter(pk="bad").update(total_run_count=7)
    break_timezone("bad")
    page = admin.get(change_url("bad")).content.decode()
    assert 'id="beatx-problem"' in page and "Europe/Atlantis" in page
    response = admin.post(change_url("bad"), form_data(id="bad", timezone="America/New_York"), follow=True)
    said = messages_of(response)
    assert any("repaired" in m for m in said), said
    assert not any("Nothing was saved" in m or "not a valid job" in m for m in said), said
    row = Job.objects.get(pk="bad")
    assert (row.timezone, row.cron_expression, row.total_run_count) == ("America/New_York", "0 3 * * 1-5", 7)
    assert row_problem(row) is None and row.next_run_time is not None
    assert row.next_run_time.astimezone(CronTrigger("* * * * *", "America/New_York").timezone).hour == 3  # type: ignore[arg-type]


def test_a_save_the_store_refuses_says_so_without_a_success_message(
    admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    add("a", IntervalTrigger(minutes=5), name="Before")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise InvalidJobError("changed meanwhile")

    monkeypatch.setattr(JobManager, "ensure_job", refuse)
    response = admin.post(change_url("a"), form_data(id="a", name="Renamed"), follow=True)
    said = messages_of(response)
    assert said == ["Nothing was saved: changed meanwhile"], said
    assert Job.objects.get(pk="a").name == "Before" and history("a") == []


# -- 6: extreme values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"trigger_kind": "interval", "interval_seconds": "1e14"}, "interval_seconds", "At most"),
        ({"start_date_0": "9999-12-31", "start_date_1": "23:59:59"}, "start_date", "from 1970 to 2999"),
        (
            {"start_date_0": "9999-12-31", "start_date_1": "23:59:59", "timezone": "America/New_York"},
            "start_date",
            "from 1970 to 2999",
        ),
        ({"end_date_0": "9999-12-31", "end_date_1": "23:59:59"}, "end_date", "empty for no end"),
        (
            {
                "trigger_kind": "date",
                "run_at_0": "9999-12-31",
                "run_at_1": "23:59:59",
                "timezone": "America/New_York",
            },
            "run_at",
            "from 1970 to 2999",
        ),
        ({"kwargs": '{"a":' * 2000 + "1" + "}" * 2000}, "kwargs", "2000 levels deep"),
        ({"args": "[" * 5000 + "]" * 5000}, "args", "levels deep"),
        ({"kwargs": json.dumps({"blob": "x" * 70_000})}, "kwargs", "Too large"),
        ({"misfire_grace_time": "1e300"}, "misfire_grace_time", "At most"),
        ({"expires": "1e300"}, "expires", "At most"),
        ({"max_instances": "99999999999999999999"}, "max_instances", "less than or equal"),
    ],
    ids=[
        "interval-1e14",
        "start-9999",
        "start-9999-new-york",
        "end-9999",
        "run-at-9999",
        "json-2000-deep",
        "json-5000-deep-list",
        "json-70kb",
        "misfire-1e300",
        "expires-1e300",
        "max-instances-huge",
    ],
)
def test_extreme_values_are_field_errors_not_http_500(
    admin: Client, overrides: dict[str, Any], field: str, words: str
) -> None:
    errors = errors_of(admin.post(reverse(ADD), form_data(**overrides)))
    assert field in errors and words in " ".join(errors[field]), errors
    assert len(errors[field]) == 1, errors  # the reason alone, not the model's echo of it
    assert not Job.objects.exists()


def test_json_limits_are_settings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[ not brackets ]"}]}') == 3
    assert json_depth("") == 0 and MAX_SECONDS == 3_153_600_000


def test_json_at_the_depth_limit_is_accepted(admin: Client, settings: Any) -> None:
    deep = '{"a":' * 19 + "[1]" + "}" * 19  # 20 levels
    assert admin.post(reverse(ADD), form_data(kwargs=deep)).status_code == 302
    settings.BEATX = {"JSON_MAX_DEPTH": 3}
    assert (
        "at most 3"
        in errors_of(admin.post(reverse(ADD), form_data(id="b", kwargs='{"a":{"b":{"c":[]}}}')))["kwargs"][0]
    )


# -- 7: job defaults ------------------------------------------------------------------------------


def test_a_new_job_starts_with_the_configured_job_defaults(admin: Client, settings: Any) -> None:
    settings.BEATX = {"JOB_DEFAULTS": {"misfire_grace_time": 60, "coalesce": False, "max_instances": 3}}
    form = admin.get(reverse(ADD)).context["adminform"].form
    assert (form["misfire_grace_time"].value(), form["coalesce"].value(), form["max_instances"].value()) == (
        60,
        False,
        3,
    )
    assert "Filled in from the configured job defaults: 60 s." in form.fields["misfire_grace_time"].help_text
    # An existing job keeps its own values.
    add("a", IntervalTrigger(minutes=5), misfire_grace_time=5)
    assert admin.get(change_url("a")).context["adminform"].form["misfire_grace_time"].value() == 5


def test_the_celery_side_job_defaults_apply_when_beatx_sets_none(celery_app: Any) -> None:
    celery_app.conf.beatx_job_defaults = {"misfire_grace_time": 60}
    try:
        assert conf.job_defaults().misfire_grace_time == 60
    finally:
        del celery_app.conf["beatx_job_defaults"]
    assert conf.job_defaults().misfire_grace_time is None


# -- 8: the record ---------------------------------------------------------------------------------


def test_every_list_action_is_in_the_history_and_the_pause_note_in_the_list(admin: Client) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    add("a", IntervalTrigger(minutes=5), name="Sync")
    url = reverse(CHANGELIST)
    admin.post(url, {"action": "pause_jobs", "_selected_action": ["a"], "pause_note": "Partner API down"})
    row = Job.objects.get(pk="a")
    assert (row.status, row.pause_note) == ("paused", "Partner API down")
    assert "Partner API down" in admin.get(url).content.decode()
    admin.post(url, {"action": "resume_jobs", "_selected_action": ["a"]})
    assert Job.objects.get(pk="a").pause_note == ""
    admin.post(url, {"action": "run_jobs_now", "_selected_action": ["a"]})
    admin.post(url, {"action": "duplicate_jobs", "_selected_action": ["a"]})
    entries = history("a")
    assert [flag for flag, _ in entries] == [CHANGE] * 4
    assert entries[0][1] == "Paused. Note: Partner API down"
    assert entries[1][1] == "Resumed."
    assert entries[2][1].startswith("Run now: sent to the workers (task id ")
    assert entries[3][1] == "Duplicated as a-copy (paused)."
    assert history("a-copy") == [(ADDITION, "Added as a paused copy of a.")]
    entry = LogEntry.objects.filter(object_id="a").first()
    assert entry is not None and entry.user.get_username() == "admin"
    page = admin.get(reverse("admin:django_beatx_job_history", args=["a"])).content.decode()
    assert "Paused. Note: Partner API down" in page and "Resumed." in page


def test_the_job_page_has_pause_resume_and_run_now_buttons(admin: Client) -> None:
    add("a", IntervalTrigger(minutes=5))
    page = admin.get(change_url("a")).content.decode()
    assert 'id="beatx-pause"' in page and 'id="beatx-run-now"' in page and 'id="beatx-resume"' not in page
    pause = reverse("admin:django_beatx_job_pause", args=["a"])
    assert admin.get(pause).status_code == 405
    response = admin.post(pause, {"pause_note": "holiday"})
    assert response.status_code == 302 and response["Location"] == change_url("a")
    assert Job.objects.get(pk="a").pause_note == "holiday"
    page = admin.get(change_url("a")).content.decode()
    assert 'id="beatx-resume"' in page and 'id="beatx-pause"' not in page
    admin.post(reverse("admin:django_beatx_job_resume", args=["a"]))
    assert Job.objects.get(pk="a").status == "active"
    assert [message for _, message in history("a")] == ["Paused. Note: holiday", "Resumed."]


def test_a_view_only_user_cannot_use_the_buttons_or_the_preview(viewer: Client) -> None:
    add("a", IntervalTrigger(minutes=5))
    page = viewer.get(change_url("a")).content.decode()
    assert 'id="beatx-pause"' not in page and "data-preview-url" not in page
    for name in ("pause", "resume", "run_now"):
        assert viewer.post(reverse(f"admin:django_beatx_job_{name}", args=["a"])).status_code == 403
    assert viewer.post(reverse(PREVIEW), form_data(_beatx_object_id="a")).status_code == 403
    assert viewer.post(reverse(PREVIEW), form_data()).status_code == 403
    row = Job.objects.get(pk="a")
    assert (row.status, row.revision) == ("active", 1) and not LogEntry.objects.exists()


# -- 9: the live preview ----------------------------------------------------------------------------


def test_the_preview_shows_the_unsaved_edit_and_its_effect_on_the_next_run(admin: Client) -> None:
    add("a", CronTrigger("0 3 * * *", timezone="Europe/Paris"))
    saved = Job.objects.get(pk="a")
    same = admin.post(reverse(PREVIEW), form_data(_beatx_object_id="a", cron_expression="0 3 * * *")).json()
    assert "Saving keeps the next run" in same["effect"]
    edited = admin.post(
        reverse(PREVIEW), form_data(_beatx_object_id="a", cron_expression="30 9 * * *")
    ).json()
    assert "Saving moves the next run from" in edited["effect"]
    assert len(edited["times"]) == 5 and all(" 09:30:00 " in t for t in edited["times"])
    assert 'class="beatx-preview-effect"' in edited["html"]
    assert Job.objects.get(pk="a").next_run_time == saved.next_run_time  # nothing saved
    wrong = admin.post(reverse(PREVIEW), form_data(cron_expression="0 25 * * *")).json()
    assert "hour" in wrong["error"] and "25" in wrong["error"]
    assert admin.get(reverse(PREVIEW)).status_code == 405


def test_the_preview_needs_a_csrf_token(admin_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(reverse(PREVIEW), form_data()).status_code == 403


def test_the_preview_is_for_staff_only(client: Client) -> None:
    response = client.post(reverse(PREVIEW), form_data())
    assert response.status_code == 302 and "/login/" in response["Location"]


# -- 10: readability --------------------------------------------------------------------------------


def test_the_list_shows_times_to_the_second_with_zone_outcome_and_description(admin: Client) -> None:
    add("a", CronTrigger("0 3 * * *", timezone="Europe/Paris"))
    add("b", IntervalTrigger(minutes=5), paused=True)
    Job.objects.filter(pk="a").update(
        description="Sends the invoices of the day", last_run_time=datetime(2026, 1, 5, 2, 0, 7, tzinfo=UTC)
    )
    JobRun.objects.create(job_id="a", scheduled_at=datetime.now(UTC), task_id="t-1", outcome="failed")
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert "2026-01-05 03:00:07 CET" in page  # last run, seconds and zone
    assert "Sends the invoices of the day" in page
    assert 'class="beatx-outcome beatx-outcome-failed"' in page
    assert '<td class="field-next_run">-</td>' in page  # the paused job


def test_a_recovered_jobs_old_error_is_not_shown_as_current(admin: Client) -> None:
    store = conf.get_store()
    add("a", IntervalTrigger(minutes=5))
    now = datetime.now(UTC)
    store.run_finished("a", "t-1", finished_at=now, duration=0.2, error="ConnectionError: 503")
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert 'class="beatx-error-current"' in page
    store.run_finished("a", "t-2", finished_at=now + timedelta(seconds=1), duration=0.2, error=None)
    JobRun.objects.filter(task_id="t-2").update(scheduled_at=now + timedelta(seconds=1))
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert 'class="beatx-error-current"' not in page and "(recovered; earlier:)" in page
    assert "Recovered: the job has run without error since." in admin.get(change_url("a")).content.decode()


def test_the_run_history_shows_seconds_zones_and_rounded_durations(admin: Client) -> None:
    add("a", IntervalTrigger(minutes=5), name="A")
    Job.objects.filter(pk="a").update(timezone="America/New_York")
    at = datetime(2026, 7, 1, 14, 30, 5, tzinfo=UTC)
    JobRun.objects.create(job_id="a", scheduled_at=at, task_id="t-1", outcome="succeeded", duration=0.421234)
    JobRun.objects.create(job_id="a", scheduled_at=at, task_id="t-2", outcome="succeeded", duration=245.4)
    page = admin.get(change_url("a")).content.decode()
    assert "2026-07-01 10:30:05 EDT" in page
    assert "0.42 s" in page and "4 min 05 s" in page and "0.421234" not in page
    assert format_duration(7384) == "2 h 03 min" and format_duration(12.34) == "12.3 s"


def test_the_delete_confirmation_counts_runs_instead_of_listing_them(admin: Client) -> None:
    add("a", IntervalTrigger(minutes=5))
    now = datetime.now(UTC)
    JobRun.objects.bulk_create(
        JobRun(job_id="a", scheduled_at=now - timedelta(minutes=i), task_id=f"run-{i}") for i in range(250)
    )
    page = admin.get(reverse("admin:django_beatx_job_delete", args=["a"])).content.decode()
    assert "250 runs" in page and "run-17" not in page
    response = admin.post(reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": ["a"]})
    page = response.content.decode()
    assert "250 runs" in page and "run-17" not in page
    assert (
        admin.post(reverse("admin:django_beatx_job_delete", args=["a"]), {"post": "yes"}).status_code == 302
    )
    assert not Job.objects.exists() and not JobRun.objects.exists()
