"""The admin's bulk actions are set-based: a few statements for the whole selection, one
wake-up of the beat, and the store's rules for every job (revision bumped, a beat's claim
dropped by a pause or a resume, next run times computed from now on resume).

On SQLite (``default``) and on PostgreSQL with ``BEATX["DATABASE"] = "postgres"`` (the admin's
users and sessions stay in ``default``), plus 5,000 jobs paused and resumed in one request each
on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.urls import reverse

from beatx.jobs import Job, JobStatus
from beatx.manager import JobManager
from beatx.stores.base import JobRelease
from beatx.testing import FakeClock
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger
from django_beatx import conf
from django_beatx import models as m
from django_beatx.store import DjangoStore, fill_row
from tests.django.conftest import HAS_POSTGRES

CHANGELIST = "admin:django_beatx_job_changelist"
PG = "postgres"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _pg_marks() -> list[Any]:
    marks: list[Any] = [pytest.mark.postgres]
    if HAS_POSTGRES:
        marks.append(pytest.mark.django_db(databases=["default", PG]))
    return marks


#: The store's database; the admin's users, sessions and log are always in ``default``.
ALIASES = [
    pytest.param("default", id="sqlite", marks=pytest.mark.django_db(databases=["default"])),
    pytest.param(PG, id="postgres", marks=_pg_marks()),
]


@pytest.fixture
def alias(request: pytest.FixtureRequest, settings: Any) -> str:
    name: str = request.param
    if name == PG:
        request.getfixturevalue("postgres_available")
    settings.BEATX = {"DATABASE": name}
    return name


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def post_action(client: Client, action: str, ids: list[str] | None = None, **extra: str) -> Any:
    """Post a changelist action on ``ids``, or on every job (``select_across``) without."""
    data: dict[str, Any] = {"action": action, "index": "0", **extra}
    if ids is None:
        first = m.Job.objects.using(conf.setting("DATABASE")).order_by("pk").values_list("pk", flat=True)[:1]
        data.update(select_across="1", _selected_action=list(first))
    else:
        data["_selected_action"] = ids
    return client.post(reverse(CHANGELIST), data)


def messages_of(client: Client) -> str:
    return str(client.get(reverse(CHANGELIST)).content.decode())


def rows(alias: str) -> dict[str, m.Job]:
    return {row.pk: row for row in m.Job.objects.using(alias).all()}


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES, indirect=True)
def test_pause_and_resume_follow_the_store_rules(alias: str, admin: Client) -> None:
    manager = conf.get_manager()
    store = conf.get_store()
    manager.add_job("reports.send_digest", CronTrigger("*/5 * * * *"), id="cron")
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="interval")
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="failed")
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="claimed")
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="paused", paused=True)
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id="done")
    jobs = m.Job.objects.using(alias)
    jobs.filter(pk="failed").update(status=JobStatus.FAILED.value, last_error="boom")
    jobs.filter(pk="done").update(status=JobStatus.COMPLETED.value, next_run_time=None)
    # A beat claims the due job "claimed" (and is about to write it back).
    now = datetime.now(UTC)
    jobs.filter(pk="claimed").update(next_run_time=now - timedelta(hours=1))
    (claimed,) = store.acquire_due_jobs(now - timedelta(minutes=30), limit=10)
    assert claimed.id == "claimed" and claimed.claim
    before = rows(alias)
    version = store.change_version()

    response = post_action(admin, "pause_jobs", sorted(before))
    assert response.status_code == 302
    assert "5 jobs were paused." in messages_of(admin)  # 4 now, 1 already
    after = rows(alias)
    paused = {"cron", "interval", "failed", "claimed"}
    for job_id, row in after.items():
        if job_id in paused:
            assert (row.status, row.revision) == ("paused", before[job_id].revision + 1), job_id
            assert row.next_run_time == before[job_id].next_run_time, job_id
        else:
            assert (row.status, row.revision) == (before[job_id].status, before[job_id].revision), job_id
    assert (after["claimed"].claim_token, after["claimed"].claimed_until, after["claimed"].claimed_by) == (
        "",
        None,
        "",
    )
    assert store.change_version() == version + 1  # the beat is woken once

    # The beat's write-back under the claim the pause ended records what it sent, and
    # leaves the job paused with the next run time the pause kept.
    store.release_jobs(
        [
            JobRelease(
                job_id="claimed",
                claim=claimed.claim,
                next_run_time=now + timedelta(minutes=5),
                status=JobStatus.ACTIVE,
                last_run_time=claimed.next_run_time,
                fired=(claimed.next_run_time,) if claimed.next_run_time else (),
            )
        ]
    )
    row = jobs.get(pk="claimed")
    assert (row.status, row.next_run_time, row.total_run_count) == (
        "paused",
        after["claimed"].next_run_time,
        1,
    )

    # Nothing to pause: nothing written, the beat is not woken. As before, the message
    # counts the selected jobs that are paused (JobManager.pause_job's answer).
    version = store.change_version()
    post_action(admin, "pause_jobs", ["done", "paused"])
    assert "1 job was paused." in messages_of(admin)
    post_action(admin, "pause_jobs", ["done"])
    assert "0 jobs were paused." in messages_of(admin)
    assert store.change_version() == version
    assert rows(alias)["paused"].revision == before["paused"].revision

    # A beat claims "interval" although paused (a claim taken just before the pause).
    jobs.filter(pk="interval").update(
        claimed_by="beat", claimed_until=now + timedelta(minutes=1), claim_token="t"
    )
    before = rows(alias)
    started = datetime.now(UTC)
    post_action(admin, "resume_jobs", sorted(before))
    assert "5 jobs were resumed." in messages_of(admin)
    after = rows(alias)
    for job_id in ("cron", "interval", "failed", "claimed", "paused"):
        row = after[job_id]
        assert row.status == "active" and row.revision == before[job_id].revision + 1, job_id
        assert row.next_run_time is not None and row.next_run_time >= started, job_id
        assert (row.claim_token, row.claimed_until, row.claimed_by) == ("", None, ""), job_id
    assert after["interval"].next_run_time - started <= timedelta(minutes=5)  # type: ignore[operator]
    assert (after["done"].status, after["done"].revision) == ("completed", before["done"].revision)
    assert store.change_version() == version + 1


@pytest.mark.parametrize("alias", ALIASES, indirect=True)
def test_bulk_resume_computes_what_resume_job_computes(alias: str) -> None:
    """``DjangoStore.resume_jobs`` against ``JobManager.resume_job``, job by job, on twins."""
    clock = FakeClock(T0)
    store = DjangoStore(clock=clock, using=alias)
    manager = JobManager(store, clock=clock)
    triggers: dict[str, Any] = {
        "cron-paris": CronTrigger("0 3 * * *", timezone="Europe/Paris"),
        "interval": IntervalTrigger(minutes=7, start_date=T0 - timedelta(days=1, seconds=13)),
        "one-shot-past": DateTimeTrigger(T0 + timedelta(minutes=1)),
        "one-shot-future": DateTimeTrigger(T0 + timedelta(days=3)),
        "ran-ahead": IntervalTrigger(minutes=5, start_date=T0 - timedelta(hours=1)),
        "ended": CronTrigger("*/10 * * * *", end_date=T0 + timedelta(hours=2)),
    }
    resumed_at = T0 + timedelta(hours=5)  # the paused period is not caught up on resume
    for twin in ("bulk", "one"):
        for name, trigger in triggers.items():
            manager.add_job("reports.send_digest", trigger, id=f"{twin}-{name}", paused=True)
            # The last fire sent; "ran-ahead" sent one later than the resume (a clock skew):
            # it is not sent again.
            last_run = resumed_at + timedelta(minutes=12) if name == "ran-ahead" else T0 - timedelta(hours=1)
            m.Job.objects.using(alias).filter(pk=f"{twin}-{name}").update(last_run_time=last_run)
    clock.advance(hours=5)

    assert store.resume_jobs([f"bulk-{name}" for name in triggers] + ["no-such-job"]) == len(triggers)
    for name in triggers:
        assert manager.resume_job(f"one-{name}")
    rows_by_id = rows(alias)
    for name in triggers:
        bulk, one = rows_by_id[f"bulk-{name}"], rows_by_id[f"one-{name}"]
        assert (bulk.status, bulk.next_run_time, bulk.revision) == (
            one.status,
            one.next_run_time,
            one.revision,
        ), name
    assert rows_by_id["bulk-one-shot-past"].status == "completed"
    assert rows_by_id["bulk-ended"].status == "completed"
    assert rows_by_id["bulk-one-shot-future"].next_run_time == T0 + timedelta(days=3)
    assert rows_by_id["bulk-ran-ahead"].next_run_time == resumed_at + timedelta(minutes=15)
    assert rows_by_id["bulk-interval"].next_run_time == resumed_at + timedelta(minutes=2, seconds=47)
    # Resuming again changes nothing: none is paused now.
    assert store.resume_jobs([f"bulk-{name}" for name in triggers]) == 0


@pytest.mark.parametrize("alias", ALIASES, indirect=True)
def test_delete_duplicate_and_run_now_act_on_the_selection_at_once(alias: str, admin: Client) -> None:
    from tests.django.celery_app import app

    app.conf.broker_url = "memory://"
    manager = conf.get_manager()
    store = conf.get_store()
    for job_id in ("a", "b", "c", "d"):
        manager.add_job("reports.send_digest", IntervalTrigger(minutes=5), id=job_id, name=job_id.upper())
    manager.add_job("reports.send_digest", IntervalTrigger(minutes=9), id="b-copy")  # taken
    now = datetime.now(UTC)
    m.JobRun.objects.using(alias).bulk_create(
        m.JobRun(job_id=job_id, scheduled_at=now, task_id=f"old-{job_id}") for job_id in ("a", "b", "c")
    )

    # Run now: one message per job, one run record per job.
    version = store.change_version()
    post_action(admin, "run_jobs_now", ["a", "b", "c"])
    assert "3 jobs were sent to the workers." in messages_of(admin)
    sent = m.JobRun.objects.using(alias).exclude(task_id__startswith="old-")
    assert sorted(sent.values_list("job_id", flat=True)) == ["a", "b", "c"]
    assert all(run.dispatched_at is not None and run.outcome == "dispatched" for run in sent)
    assert store.change_version() == version

    # Duplicate: paused copies, a fresh id where "-copy" is taken, one wake-up.
    version = store.change_version()
    post_action(admin, "duplicate_jobs", ["a", "b"])
    assert "2 jobs were duplicated" in messages_of(admin)
    copies = {row.pk: row for row in m.Job.objects.using(alias).filter(pk__contains="-copy")}
    assert "a-copy" in copies and "b-copy" in copies
    (fresh,) = (pk for pk in copies if pk.startswith("b-copy-"))
    for pk in ("a-copy", fresh):
        row = copies[pk]
        assert (row.status, row.revision, row.interval_seconds, row.task) == (
            "paused",
            1,
            300.0,
            "reports.send_digest",
        )
        assert row.name.endswith("(copy)") and row.next_run_time is not None
    assert copies["b-copy"].interval_seconds == 540.0  # the job that had the id is untouched
    assert store.change_version() == version + 1

    # Delete (Django's action): jobs and their runs go, the log entries stay as Django writes them.
    version = store.change_version()
    logged = LogEntry.objects.filter(action_flag=DELETION).count()
    response = post_action(admin, "delete_selected", ["a", "b", "c"], post="yes")
    assert response.status_code == 302
    assert "Successfully deleted 3 jobs." in messages_of(admin)
    assert not m.Job.objects.using(alias).filter(pk__in=["a", "b", "c"]).exists()
    assert not m.JobRun.objects.using(alias).filter(job_id__in=["a", "b", "c"]).exists()
    assert m.Job.objects.using(alias).filter(pk="d").exists()
    assert LogEntry.objects.filter(action_flag=DELETION).count() == logged + 3
    assert store.change_version() == version + 1


@pytest.mark.parametrize("alias", ALIASES, indirect=True)
def test_the_actions_still_need_the_change_permission(
    alias: str, client: Client, django_user_model: Any
) -> None:
    conf.get_manager().add_job("reports.send_digest", IntervalTrigger(minutes=5), id="a")
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    for action in ("pause_jobs", "resume_jobs", "duplicate_jobs", "run_jobs_now", "delete_selected"):
        post_action(client, action, ["a"], post="yes")
    row = m.Job.objects.using(alias).get(pk="a")
    assert (row.status, row.revision) == ("active", 1)
    assert m.Job.objects.using(alias).count() == 1 and not m.JobRun.objects.using(alias).exists()


@pytest.mark.parametrize("alias", ALIASES, indirect=True)
def test_the_admin_lists_and_checks_ids_in_the_configured_database(alias: str, admin: Client) -> None:
    conf.get_manager().add_job("reports.send_digest", IntervalTrigger(minutes=5), id="here")
    m.JobRun.objects.using(alias).create(job_id="here", scheduled_at=datetime.now(UTC), task_id="run-here-1")
    page = admin.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:django_beatx_job_change", args=["here"]) in page
    response = admin.get(reverse("admin:django_beatx_job_change", args=["here"]))
    assert response.status_code == 200 and "run-here-1" in response.content.decode()  # latest runs
    # Adding a job with a taken id is refused beside the id field.
    response = admin.post(
        reverse("admin:django_beatx_job_add"),
        {
            "id": "here",
            "task": "reports.send_digest",
            "args": "[]",
            "kwargs": "{}",
            "trigger_kind": "interval",
            "interval_seconds": "60",
            "headers": "{}",
            "extra_options": "{}",
            "max_instances": "1",
            "runs-TOTAL_FORMS": "0",
            "runs-INITIAL_FORMS": "0",
            "runs-MIN_NUM_FORMS": "0",
            "runs-MAX_NUM_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "already exists" in " ".join(response.context["adminform"].form.errors.get("id", []))
    assert m.Job.objects.using(alias).get(pk="here").interval_seconds == 300.0


# -- 5,000 jobs ----------------------------------------------------------------------------------

MANY = 5_000


@contextmanager
def statements(alias: str) -> Iterator[list[str]]:
    """The first word of every statement run on ``alias`` in the block (no debug cursor)."""
    seen: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql.split(None, 1)[0].upper())
        return execute(sql, params, many, context)

    with connections[alias].execute_wrapper(record):
        yield seen


def _many_jobs(alias: str) -> None:
    """``MANY`` active jobs, half cron and half interval, written as the store writes them."""
    manager = JobManager(DjangoStore(using=alias))
    now = datetime.now(UTC)
    created = []
    for i in range(MANY):
        trigger = CronTrigger(f"{i % 60} * * * *") if i % 2 else IntervalTrigger(seconds=60 + i)
        job: Job = manager.build_job("reports.send_digest", trigger, id=f"job-{i:05d}")
        manager.schedule(job, now=now)
        row = m.Job(id=job.id, revision=1)
        fill_row(row, job)
        created.append(row)
    m.Job.objects.using(alias).bulk_create(created, batch_size=1000)


@pytest.mark.parametrize("alias", [pytest.param(PG, id="postgres", marks=_pg_marks())], indirect=True)
def test_pausing_and_resuming_5000_jobs_from_the_admin(alias: str, admin: Client) -> None:
    _many_jobs(alias)
    jobs = m.Job.objects.using(alias)
    store = conf.get_store()
    now = datetime.now(UTC)
    jobs.filter(pk="job-00007").update(
        claimed_by="beat", claimed_until=now + timedelta(minutes=1), claim_token="t1"
    )
    version = store.change_version()

    with statements(alias) as seen:
        started = time.perf_counter()
        response = post_action(admin, "pause_jobs")
        pause_seconds = time.perf_counter() - started
    assert response.status_code == 302
    pause_writes = seen.count("UPDATE")
    assert f"{MANY} jobs were paused." in messages_of(admin)
    assert jobs.filter(status="paused", revision=2).count() == MANY
    assert not jobs.exclude(claim_token="").exists() and not jobs.exclude(claimed_until=None).exists()
    assert store.change_version() == version + 1

    jobs.filter(pk="job-04242").update(
        claimed_by="beat", claimed_until=now + timedelta(minutes=1), claim_token="t2"
    )
    resumed_from = datetime.now(UTC)
    with statements(alias) as seen:
        started = time.perf_counter()
        response = post_action(admin, "resume_jobs")
        resume_seconds = time.perf_counter() - started
    assert response.status_code == 302
    resume_writes = seen.count("UPDATE")
    assert f"{MANY} jobs were resumed." in messages_of(admin)
    assert jobs.filter(status="active", revision=3, next_run_time__gte=resumed_from).count() == MANY
    assert not jobs.exclude(claim_token="").exists()
    assert store.change_version() == version + 2

    print(
        f"\nadmin bulk actions on {MANY} jobs ({alias}): pause {pause_seconds:.3f}s "
        f"({pause_writes} UPDATE statements), resume {resume_seconds:.3f}s "
        f"({resume_writes} UPDATE statements)"
    )
    # The target is 1 s each; asserted loosely (a loaded machine, a debug cursor).
    assert pause_seconds < 10 and resume_seconds < 10
    assert pause_writes <= 3 and resume_writes <= 10
