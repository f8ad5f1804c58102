"""The management commands: imports from beat_schedule and django-celery-beat, and status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from celery.schedules import crontab, solar
from django.core.management import CommandError, call_command

from beatx.stores.base import BeatStatus
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger, SolarTrigger
from django_beatx import conf
from django_beatx.models import Job

pytestmark = pytest.mark.django_db(databases=["default"])


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_refusing(*args: str) -> tuple[str, str]:
    """``run``, for an import that refuses entries: it exits 1 (CommandError) after its report."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="refused") as info:
        call_command(*args, stdout=out, stderr=err)
    assert info.value.returncode == 1
    return out.getvalue(), err.getvalue()


def get(job_id: str) -> Any:
    job = conf.get_store().get_job(job_id)
    assert job is not None, job_id
    return job


@pytest.fixture
def beat_schedule() -> Any:
    from tests.django.celery_app import app

    app.conf.beat_schedule = {
        "digest": {"task": "reports.send_digest", "schedule": crontab(minute="0", hour="7"), "args": (1,)},
        "often": {
            "task": "reports.send_digest",
            "schedule": timedelta(seconds=30),
            "options": {"queue": "q"},
        },
        "number": {"task": "reports.send_digest", "schedule": 12.5},
        "weird": {"task": "reports.send_digest", "schedule": "every day at dawn"},
    }
    yield app
    app.conf.beat_schedule = {}


def test_import_from_beat_schedule(beat_schedule: Any) -> None:
    out, err = run_refusing("beatx_import", "--from-beat-schedule", "--app", "tests.django.celery_app:app")
    assert "3 imported, 0 updated, 0 unchanged, 1 refused" in out
    assert "weird" in err and "cannot convert" in err
    assert get("digest").trigger.expression == "0 7 * * *"
    assert get("digest").args == (1,)
    assert get("often").trigger.interval == timedelta(seconds=30)
    assert get("often").options["queue"] == "q"
    assert get("number").trigger.interval == timedelta(seconds=12.5)
    out, _ = run_refusing("beatx_import", "--from-beat-schedule", "--app", "tests.django.celery_app:app")
    assert "0 imported, 0 updated, 3 unchanged, 1 refused" in out


def test_import_dry_run_writes_nothing(beat_schedule: Any) -> None:
    out, _ = run_refusing(
        "beatx_import", "--from-beat-schedule", "--app", "tests.django.celery_app:app", "--dry-run"
    )
    assert out.strip().endswith("[dry run] 3 imported, 0 updated, 0 unchanged, 1 refused")
    assert not Job.objects.exists()


def test_import_from_django_celery_beat() -> None:
    from django_celery_beat import models as dcb

    interval = dcb.IntervalSchedule.objects.create(every=10, period=dcb.IntervalSchedule.MINUTES)
    cron = dcb.CrontabSchedule.objects.create(
        minute="30", hour="3", day_of_week="1-5", day_of_month="*", month_of_year="*", timezone="Europe/Paris"
    )
    both = dcb.CrontabSchedule.objects.create(minute="0", hour="0", day_of_week="1", day_of_month="13")
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    clocked = dcb.ClockedSchedule.objects.create(clocked_time=when)
    sun = dcb.SolarSchedule.objects.create(event="sunset", latitude=48.85, longitude=2.35)
    dawn = dcb.SolarSchedule.objects.create(event="dawn_civil", latitude=-33.87, longitude=151.21)
    dcb.PeriodicTask.objects.create(
        name="cleanup every 10 min",
        task="shop.tasks.cleanup_sessions",
        interval=interval,
        kwargs='{"older_than_days": 7}',
        queue="maintenance",
        priority=3,
        expire_seconds=60,
    )
    dcb.PeriodicTask.objects.create(
        name="weekday digest", task="shop.tasks.send_digest", crontab=cron, args="[42]", enabled=False
    )
    dcb.PeriodicTask.objects.create(name="launch", task="shop.tasks.launch", clocked=clocked, one_off=True)
    dcb.PeriodicTask.objects.create(name="sunset", task="shop.tasks.lights", solar=sun, kwargs='{"on": true}')
    dcb.PeriodicTask.objects.create(
        name="dawn until new year", task="shop.tasks.lights", solar=dawn, expires=when + timedelta(days=30)
    )
    dcb.PeriodicTask.objects.create(name="friday 13th", task="shop.tasks.luck", crontab=both)

    imported_at = datetime.now(UTC)
    out, err = run_refusing("beatx_import", "--from-django-celery-beat")
    assert "4 imported, 0 updated, 0 unchanged, 2 refused" in out
    assert "friday 13th" in err and "sunset" not in err
    assert "dawn until new year: solar schedule" in err and "no start or end date" in err

    cleanup = get("cleanup-every-10-min")  # the id has no spaces; the name is kept
    assert cleanup.name == "cleanup every 10 min"
    assert cleanup.trigger.interval == timedelta(minutes=10)
    # Never run: the first run is one interval after the import, not at once.
    assert (
        imported_at + timedelta(minutes=10)
        <= cleanup.next_run_time
        <= datetime.now(UTC) + timedelta(minutes=10)
    )
    assert cleanup.kwargs == {"older_than_days": 7}
    assert cleanup.options == {"queue": "maintenance", "priority": 3, "expires": 60.0}
    digest = get("weekday-digest")
    assert digest.trigger == CronTrigger("30 3 * * 1-5", timezone="Europe/Paris")
    assert (digest.args, digest.status.value) == ((42,), "paused")
    launch = get("launch")
    assert isinstance(launch.trigger, DateTimeTrigger) and launch.next_run_time == when
    sunset = get("sunset")
    assert sunset.trigger == SolarTrigger("sunset", 48.85, 2.35)
    assert sunset.kwargs == {"on": True} and sunset.next_run_time is not None
    assert Job.objects.get(pk="sunset").trigger_kind == "solar"


def test_a_one_off_solar_task_is_a_one_shot_at_the_next_event() -> None:
    from django_celery_beat import models as dcb

    sun = dcb.SolarSchedule.objects.create(event="sunrise", latitude=48.85, longitude=2.35)
    dcb.PeriodicTask.objects.create(name="once", task="shop.tasks.lights", solar=sun, one_off=True)
    out, err = run("beatx_import", "--from-django-celery-beat")
    assert "1 imported" in out, err
    once = get("once")
    now = datetime.now(UTC)
    assert isinstance(once.trigger, DateTimeTrigger)
    assert once.trigger.run_at == SolarTrigger("sunrise", 48.85, 2.35).next_fire_time(
        now - timedelta(minutes=1)
    )


def test_solar_beat_schedule_entries_are_stored() -> None:
    from tests.django.celery_app import app

    app.conf.beat_schedule = {
        "lights on": {"task": "shop.tasks.lights", "schedule": solar("sunset", 48.85, 2.35), "args": (1,)},
        "lights off": {"task": "shop.tasks.lights", "schedule": solar("sunrise", -33.87, 151.21)},
    }
    try:
        out, err = run("beatx_import", "--from-beat-schedule", "--app", "tests.django.celery_app:app")
    finally:
        app.conf.beat_schedule = {}
    assert "2 imported, 0 updated, 0 unchanged, 0 refused" in out, err
    assert get("lights on").trigger == SolarTrigger("sunset", 48.85, 2.35)
    assert get("lights off").trigger == SolarTrigger("sunrise", -33.87, 151.21)
    assert get("lights on").args == (1,)


def test_import_from_django_celery_beat_updates_only_when_asked() -> None:
    from django_celery_beat import models as dcb

    interval = dcb.IntervalSchedule.objects.create(every=5, period=dcb.IntervalSchedule.SECONDS)
    task = dcb.PeriodicTask.objects.create(name="ping", task="shop.tasks.ping", interval=interval)
    run("beatx_import", "--from-django-celery-beat")
    task.interval = dcb.IntervalSchedule.objects.create(every=7, period=dcb.IntervalSchedule.SECONDS)
    task.save()
    out, _ = run("beatx_import", "--from-django-celery-beat")
    assert "1 unchanged" in out and get("ping").trigger.interval == timedelta(seconds=5)
    out, _ = run("beatx_import", "--from-django-celery-beat", "--update")
    assert "1 updated" in out and get("ping").trigger.interval == timedelta(seconds=7)


def test_the_run_history_of_a_periodic_task_is_kept() -> None:
    from django_celery_beat import models as dcb

    interval = dcb.IntervalSchedule.objects.create(every=1, period=dcb.IntervalSchedule.HOURS)
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    dcb.PeriodicTask.objects.create(
        name="hourly sync",
        task="shop.tasks.sync",
        interval=interval,
        total_run_count=41,
        last_run_at=last_run,
    )
    out, err = run("beatx_import", "--from-django-celery-beat")
    assert "1 imported, 0 updated, 0 unchanged, 0 refused" in out, err
    sync = get("hourly-sync")
    assert (sync.total_run_count, sync.last_run_time) == (41, last_run)
    assert sync.next_run_time == last_run + timedelta(hours=1)  # goes on from its last run


def test_import_needs_a_source() -> None:
    with pytest.raises(CommandError):
        run("beatx_import")


def test_status_reports_leader_tick_backlog_and_counts() -> None:
    manager = conf.get_manager()
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5, start_now=False), id="a")
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="b", paused=True)
    now = datetime.now(UTC)
    manager.store.acquire_lease("host:1:abc", now=now, ttl=30)
    manager.store.write_status(
        BeatStatus(owner="host:1:abc", leader_since=now, last_tick_at=now, due_backlog=0, jobs_fired=4)
    )
    out, _ = run("beatx_status")
    assert "leader" in out and "host:1:abc" in out and "jobs paused" in out
    data = json.loads(run("beatx_status", "--json")[0])
    assert data["leader"] == "host:1:abc" and data["jobs_fired"] == 4
    assert data["jobs"] == {"total": 2, "active": 1, "paused": 1, "completed": 0, "failed": 0}
    assert data["due_backlog"] == 0 and data["seconds_since_last_tick"] < 60


def test_status_without_a_beat() -> None:
    out, _ = run("beatx_status")
    assert "no beat is running" in out and "never" in out


def test_prune_runs_deletes_runs_ended_before_the_cutoff_and_keeps_runs_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django_beatx.management.commands import beatx_prune_runs
    from django_beatx.models import JobRun

    monkeypatch.setattr(beatx_prune_runs, "CHUNK", 2)  # several chunks
    manager = conf.get_manager()
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="a")
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=3)
    for n in range(5):  # sent, finished long ago
        JobRun.objects.create(
            job_id="a", task_id=f"old-{n}", dispatched_at=old, finished_at=old, outcome="succeeded"
        )
    JobRun.objects.create(job_id="a", task_id="sent-long-ago", dispatched_at=old)
    JobRun.objects.create(job_id="a", task_id="finished-lately", dispatched_at=old, finished_at=recent)
    for task_id, counts_until in (("in-flight", now), ("worker-died", old)):
        JobRun.objects.create(
            job_id="a",
            task_id=task_id,
            started_at=old,
            outcome="running",
            expires_at=counts_until + timedelta(hours=1),
        )

    out, _ = run("beatx_prune_runs", "--days", "30", "--dry-run")
    assert out.startswith("[dry run] 7 run(s) ended before")
    assert JobRun.objects.count() == 9

    out, _ = run("beatx_prune_runs", "--days", "30")
    assert out.startswith("7 run(s) ended before")
    assert set(JobRun.objects.values_list("task_id", flat=True)) == {"finished-lately", "in-flight"}


def test_prune_runs_refuses_a_negative_age() -> None:
    with pytest.raises(CommandError, match="--days"):
        run("beatx_prune_runs", "--days", "-1")
