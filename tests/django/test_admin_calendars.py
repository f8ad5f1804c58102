"""The exclusion calendars in the admin: the calendar admin, the job form's calendars and the
preview that strikes out the excluded times with their reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from beatx.calendars import ExclusionCalendar as CalendarValue
from beatx.manager import JobManager
from beatx.triggers import CronTrigger
from django_beatx import conf
from django_beatx.models import ExclusionCalendar
from tests.django.conftest import postgres_marks
from tests.django.test_admin import ADD, form_data

pytestmark = pytest.mark.django_db(databases=["default"])

CALENDAR_ADD = "admin:django_beatx_exclusioncalendar_add"
PREVIEW = "admin:django_beatx_job_preview"


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def calendar_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "weekends",
        "description": "No runs at weekends",
        "dates": '["2026-12-25"]',
        "date_ranges": "[]",
        "weekdays": '["sat", "sun"]',
        "windows": "[]",
        "holidays": "[]",
    }
    data.update(overrides)
    return data


def test_a_calendar_is_saved_through_beatx_and_bad_fields_are_named(admin: Client) -> None:
    bad = admin.post(reverse(CALENDAR_ADD), calendar_data(weekdays='["someday"]', windows='["0 25 * * *"]'))
    assert bad.status_code == 200
    errors = bad.context["adminform"].form.errors
    assert "weekdays" in errors and "windows" in errors and "hour field" in str(errors["windows"])
    assert not ExclusionCalendar.objects.exists()
    response = admin.post(reverse(CALENDAR_ADD), calendar_data())
    assert response.status_code == 302
    stored = conf.get_manager().get_calendar("weekends")
    assert stored == CalendarValue(
        name="weekends", description="No runs at weekends", dates=["2026-12-25"], weekdays=[5, 6]
    )
    listing = admin.get(reverse("admin:django_beatx_exclusioncalendar_changelist"))
    assert b"weekdays Sat, Sun" in listing.content


def test_a_job_excludes_calendars_from_its_form_and_the_preview_strikes_them_out(admin: Client) -> None:
    conf.get_manager().add_calendar(name="weekends", weekdays=["sat", "sun"])
    data = form_data(cron_expression="0 9 * * *", exclude=["weekends"], on_excluded="skip")
    preview = admin.post(reverse(PREVIEW), data).json()
    assert "error" not in preview or not preview["error"], preview
    excluded = preview["excluded"]
    assert excluded and all(e["reason"] in ("weekends: Saturday", "weekends: Sunday") for e in excluded)
    assert "<del>" in preview["html"] and "weekends: Saturday" in preview["html"]
    shown = [datetime.strptime(t[4:14], "%Y-%m-%d") for t in preview["times"]]
    assert shown and all(day.weekday() < 5 for day in shown)
    response = admin.post(reverse(ADD), data)
    assert response.status_code == 302
    job = conf.get_store().get_job("nightly-invoices")
    assert job is not None and job.exclude == ("weekends",) and job.on_excluded == "skip"
    assert job.next_run_time is not None and job.next_run_time.astimezone(UTC).weekday() < 5
    # In use: the calendar cannot be deleted.
    change = admin.get(reverse("admin:django_beatx_exclusioncalendar_delete", args=["weekends"]))
    assert change.status_code == 403


def test_the_preview_says_where_next_business_day_moves_a_fire(admin: Client) -> None:
    conf.get_manager().add_calendar(name="weekends", weekdays=["sat", "sun"])
    data = form_data(cron_expression="0 9 * * SAT", exclude=["weekends"], on_excluded="next_business_day")
    preview = admin.post(reverse(PREVIEW), data).json()
    assert preview["excluded"] and all(e["moved_to"].startswith("Mon ") for e in preview["excluded"])
    assert all(t.startswith("Mon ") for t in preview["times"])


def test_the_bulk_resume_honours_the_calendars() -> None:
    from beatx.testing import FakeClock
    from django_beatx.store import DjangoStore

    clock = FakeClock(datetime(2026, 3, 6, 12, tzinfo=UTC))  # a Friday
    store = DjangoStore(clock=clock, using="default")
    manager = JobManager(store, clock=clock)
    manager.add_calendar(name="weekends", weekdays=["sat", "sun"])
    manager.add_job("m:f", CronTrigger("0 9 * * *", "UTC"), id="daily", exclude=["weekends"], paused=True)
    assert store.resume_jobs(["daily"]) == 1
    job = manager.get_job("daily")
    assert job is not None and job.next_run_time == datetime(2026, 3, 9, 9, tzinfo=UTC)  # Monday


def test_beatx_import_takes_the_calendars_from_the_entry_options() -> None:
    from io import StringIO

    from django.core.management import call_command

    from tests.django.celery_app import app

    conf.get_manager().add_calendar(name="weekends", weekdays=["sat", "sun"])
    app.conf.beat_schedule = {
        "pay": {
            "task": "payroll.run",
            "schedule": 3600.0,
            "options": {
                "queue": "q",
                "beatx_exclude": ["weekends"],
                "beatx_on_excluded": "next_business_day",
            },
        },
        "bad": {"task": "payroll.run", "schedule": 60.0, "options": {"beatx_exclude": ["nope"]}},
    }
    out, err = StringIO(), StringIO()
    try:
        with pytest.raises(Exception, match="refused"):
            call_command(
                "beatx_import",
                "--from-beat-schedule",
                "--app",
                "tests.django.celery_app:app",
                stdout=out,
                stderr=err,
            )
    finally:
        app.conf.beat_schedule = {}
    job = conf.get_store().get_job("pay")
    assert job is not None and job.exclude == ("weekends",) and job.on_excluded == "next_business_day"
    assert job.options == {"queue": "q"}
    assert conf.get_store().get_job("bad") is None
    assert "no exclusion calendar named 'nope'" in err.getvalue()


@pytest.mark.parametrize("alias", ["default", pytest.param("postgres", marks=postgres_marks())])
def test_the_users_of_a_calendar_are_found_on_each_database(
    alias: str, request: pytest.FixtureRequest
) -> None:
    from django_beatx.calendar_admin import _users
    from django_beatx.store import DjangoStore

    if alias == "postgres":
        request.getfixturevalue("postgres_available")
    store = DjangoStore(using=alias)
    manager = JobManager(store)
    for name in ("we", "weekends", "WE"):
        manager.add_calendar(name=name, weekdays=["sun"])
    manager.add_job("m:f", CronTrigger("0 9 * * *", "UTC"), id="a", exclude=["weekends"])
    manager.add_job("m:f", CronTrigger("0 9 * * *", "UTC"), id="b", exclude=["we", "weekends"])
    manager.add_job("m:f", CronTrigger("0 9 * * *", "UTC"), id="c")
    with override_settings(BEATX={**getattr(settings, "BEATX", {}), "DATABASE": alias}):
        assert _users("we") == ["b"]
        assert _users("weekends") == ["a", "b"]
        assert _users("WE") == []
