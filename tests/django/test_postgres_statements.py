"""The Django store's burst statements on PostgreSQL (``django_beatx.postgres``): what they read
equals what the ORM reads, they use the indexes at any size, and a write-back that names a
job twice applies both releases in order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connections, transaction

from beatx.jobs import JobStatus
from beatx.stores.base import JobRelease
from beatx.testing import FakeClock
from beatx.triggers import CronTrigger, RRuleTrigger
from django_beatx import models as m
from django_beatx import postgres
from django_beatx.store import DjangoStore
from tests.django.conftest import postgres_marks
from tests.stores.contract import T0, make_job, release_of

pytestmark = pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks())])


@pytest.fixture
def store(clock: FakeClock, postgres_available: None, _pg: None) -> DjangoStore:
    return DjangoStore(clock=clock, using="postgres")


def field_values(row: m.Job) -> dict[str, Any]:
    return {f.attname: getattr(row, f.attname) for f in m.Job._meta.concrete_fields}


def test_a_claimed_row_holds_what_the_orm_reads(store: DjangoStore) -> None:
    """The claim reads rows with psycopg's own loaders (timestamps, JSON) and builds models
    without Django's converters: every field must come out as the ORM gives it."""
    store.add_job(
        make_job(
            "plain",
            args=(1, "two", [3.5]),
            kwargs={"nested": {"list": [1, None, True]}, "text": "é"},
            options={"queue": "q", "headers": {"h": "v"}, "priority": 3},
        )
    )
    store.add_job(make_job("cron", trigger=CronTrigger("*/5 * * * *", timezone="Europe/Paris"), at=T0))
    rrule = RRuleTrigger("FREQ=DAILY;COUNT=3", dtstart=T0 - timedelta(days=1), timezone="UTC")
    store.add_job(make_job("rrule", trigger=rrule, at=T0 - timedelta(seconds=1)))
    due = store._jobs().due(T0).order_by("next_run_time", "id")
    with transaction.atomic(using="postgres"):
        claim = {"claimed_by": "b", "claimed_until": T0 + timedelta(seconds=60), "claim_token": "tok"}
        rows = postgres.claim(store._jobs(), store._locked(due, skip_locked=True)[:10], claim)
    assert [row.pk for row in rows] == ["rrule", "cron", "plain"]  # due order, then id
    for row in rows:
        assert field_values(row) == field_values(m.Job.objects.using("postgres").get(pk=row.pk))
        assert row.claimed_until is not None and row.claimed_until.utcoffset() == timedelta(0)


def test_the_claim_reads_by_the_primary_key_whatever_the_size(store: DjangoStore) -> None:
    """The claim's ``UPDATE`` finds its rows by the primary key (``= ANY(ARRAY(...))``). As
    ``IN (subquery)`` the planner chose a hash join over a scan of the whole table: 105 ms per
    batch at 10k jobs, growing with the table."""
    m.Job.objects.using("postgres").bulk_create(
        [
            m.Job(
                id=f"job-{i:05d}", task="t.t", trigger_kind="interval", interval_seconds=60, next_run_time=T0
            )
            for i in range(3000)
        ]
    )
    with connections["postgres"].cursor() as cursor:
        cursor.execute(f"ANALYZE {m.Job._meta.db_table}")
    due = store._jobs().due(T0).order_by("next_run_time", "id")
    with transaction.atomic(using="postgres"):
        sql, params = postgres.claim_statement(
            store._jobs(), store._locked(due, skip_locked=True)[:1000], {"claim_token": "x"}
        )
        with connections["postgres"].cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "django_beatx_job_pkey" in plan, plan


def test_a_job_named_twice_in_one_write_back_gets_both_releases_in_order(store: DjangoStore) -> None:
    store.add_job(make_job("a"))
    (job,) = store.acquire_due_jobs(T0, limit=1)
    later = T0 + timedelta(seconds=10)
    first = release_of(job, fired=(T0,), last_run_time=T0, next_run_time=later)
    second = JobRelease(
        job_id="a",
        claim=None,
        fired=(later,),
        last_run_time=later,
        next_run_time=later,
        status=JobStatus.ACTIVE,
    )
    assert [len(batch) for batch in postgres.write_back_rounds([first, second])] == [1, 1]
    store.release_jobs([first, second])
    row = m.Job.objects.using("postgres").get(pk="a")
    assert row.total_run_count == 2 and row.last_run_time == later
    assert row.next_run_time == later and row.claim_token == "" and row.status == JobStatus.ACTIVE.value


def test_a_write_back_retried_after_it_landed_changes_nothing(store: DjangoStore) -> None:
    store.add_job(make_job("a"))
    (job,) = store.acquire_due_jobs(T0, limit=1)
    release = release_of(job, fired=(T0,), last_run_time=T0, next_run_time=T0 + timedelta(seconds=10))
    store.release_jobs([release])
    store.release_jobs([release])  # the error that hid its success, then the retry
    row = m.Job.objects.using("postgres").get(pk="a")
    assert row.total_run_count == 1 and row.released_claim == job.claim


def test_each_fire_s_writes_pay_for_no_index_nothing_reads(store: DjangoStore) -> None:
    """The run record's foreign key and unique task id, and the jobs' primary key, have no
    LIKE (``varchar_pattern_ops``) index and no index a wider one already serves (migration
    0011): each is one more write per fire."""
    with connections["postgres"].cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN (%s, %s)",
            [m.Job._meta.db_table, m.JobRun._meta.db_table],
        )
        indexes = sorted(cursor.fetchall())
    assert not [name for _, name in indexes if name.endswith("_like")], indexes
    runs = [name for table, name in indexes if table == m.JobRun._meta.db_table]
    assert sorted(runs) == sorted(
        ["django_beatx_jobrun_pkey", "beatx_run_task_id_key", "beatx_run_job_idx", "beatx_run_inflight_idx"]
    )
