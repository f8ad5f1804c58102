"""The run ledger, end to end: a real ``celery beat -S beatx`` and a real worker with the beatx
hook, on the Django store (PostgreSQL). One job per outcome the workers report (succeeded,
failed with its error, retried then succeeded, unknown task, revoked) and per outcome the beat
records at write-back (fires skipped by ``max_instances``, a fire missed past its misfire
grace time), each seen in ``beatx jobs runs`` (a subprocess) and in the admin's run history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connections
from django.test import Client
from django.urls import reverse

from beatx.jobs import Job, JobStatus, fire_task_id
from beatx.ledger import RunOutcome, RunRecord
from beatx.triggers import DateTimeTrigger, IntervalTrigger
from django_beatx.store import DjangoStore
from tests.django.conftest import HAS_POSTGRES

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres"

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]
if HAS_POSTGRES:  # the admin's user is in "default", the store in "postgres"
    pytestmark.append(pytest.mark.django_db(databases=["default", PG], transaction=True))


@pytest.fixture
def processes(
    redis_url: str, tmp_path: Path, settings: Any, postgres_available: None
) -> Iterator[tuple[dict[str, str], Callable[..., Path]]]:
    """Starts ``celery -A tests.django.outcomes_app ...`` with ``BEATX["DATABASE"] = "postgres"``
    (this test's PostgreSQL database), stopping them at the end."""
    settings.BEATX = {"DATABASE": PG}
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.django.settings",
        BEATX_TEST_SQLITE=str(settings.DATABASES["default"]["NAME"]),
        BEATX_TEST_PG_NAME=str(connections[PG].settings_dict["NAME"]),
        BEATX_TEST_DATABASE=PG,
        BEATX_TEST_BROKER=redis_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.pop("BEATX_TEST_PG_DEFAULT", None)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(name: str, *args: str) -> Path:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.django.outcomes_app", *args, "-l", "info"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((popen, log))
        return log

    try:
        yield env, start
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
            print(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def _job(job_id: str, func: str, first: datetime) -> Job:
    return Job(
        id=job_id, func=func, trigger=IntervalTrigger(seconds=3, start_date=first), next_run_time=first
    )


def test_each_outcome_a_worker_reports_is_in_the_ledger_the_cli_and_the_admin(
    processes: tuple[dict[str, str], Callable[..., Path]], client: Client, admin_user: Any
) -> None:
    env, start = processes
    store = DjangoStore(using=PG)
    first = datetime.now(UTC) + timedelta(seconds=4)
    revoked_at = first + timedelta(seconds=2)
    for job in (
        _job("ok", "outcomes.succeed", first),
        _job("boom", "outcomes.fail", first),
        _job("flaky", "outcomes.flaky", first),
        _job("gone", "outcomes.never_registered", first),
        Job(
            id="revoked",
            func="outcomes.succeed",
            trigger=DateTimeTrigger(revoked_at),
            next_run_time=revoked_at,
        ),
        # Every second, each run 4 s: the fires in between are skipped (max_instances=1).
        Job(
            id="overlap",
            func="outcomes.slow",
            trigger=IntervalTrigger(seconds=1, start_date=first),
            next_run_time=first,
            max_instances=1,
        ),
        # Due a minute ago, 1 s of misfire grace: missed when the beat starts.
        Job(
            id="late",
            func="outcomes.succeed",
            trigger=IntervalTrigger(hours=1, start_date=first - timedelta(minutes=1)),
            next_run_time=first - timedelta(minutes=1),
            misfire_grace_time=1,
        ),
    ):
        store.add_job(job)
    worker_log = start("worker", "worker", "-P", "threads", "-c", "2", "--without-gossip", "--without-mingle")
    deadline = time.monotonic() + 30
    while "ready." not in worker_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker_log.read_text(errors="replace")
        time.sleep(0.1)
    # The worker drops the one-shot's fire when it arrives (task_revoked).
    app = Celery("control", broker=env["BEATX_TEST_BROKER"])
    app.control.revoke(fire_task_id("revoked", revoked_at))
    app.close()
    start("beat", "beat", "-S", "beatx")

    wanted = {
        "ok": RunOutcome.SUCCEEDED,
        "boom": RunOutcome.FAILED,
        "flaky": RunOutcome.SUCCEEDED,
        "gone": RunOutcome.UNKNOWN_TASK,
        "revoked": RunOutcome.REVOKED,
        "overlap": RunOutcome.SKIPPED,
        "late": RunOutcome.MISSED,
    }
    by_the_beat = {RunOutcome.SKIPPED, RunOutcome.MISSED}
    found: dict[str, RunRecord] = {}
    deadline = time.monotonic() + 60
    while len(found) < len(wanted) and time.monotonic() < deadline:
        for job_id, outcome in wanted.items():
            for run in store.job_runs(job_id):
                done = run.finished_at is not None or outcome in by_the_beat
                if run.outcome is outcome and run.sent_at is not None and done:
                    found.setdefault(job_id, run)
        time.sleep(0.2)
    assert set(found) == set(wanted), {job_id: store.job_runs(job_id) for job_id in wanted}

    assert found["ok"].worker and found["ok"].worker.startswith("celery@") and found["ok"].started_at
    assert found["boom"].error == "ValueError: the invoice service said no"
    assert found["flaky"].retries == 1 and found["flaky"].error is None
    assert "outcomes.never_registered" in (found["gone"].error or "")
    gone = store.get_job("gone")
    assert gone is not None and gone.status is JobStatus.FAILED
    assert "outcomes.never_registered" in (gone.last_error or "")
    assert found["revoked"].scheduled_at == revoked_at and found["revoked"].started_at is None
    assert "max_instances" in (found["overlap"].reason or "")
    assert "misfire grace" in (found["late"].reason or "")

    # The same runs through `beatx jobs runs` (the store of the Django settings) ...
    for job_id, outcome in wanted.items():
        result = subprocess.run(
            [sys.executable, "-m", "beatx.cli", "--store", "django://", "jobs", "runs", job_id, "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert found[job_id].task_id in {row["task_id"] for row in rows if row["outcome"] == outcome.value}
    # ... and in the admin's run history.
    client.force_login(admin_user)
    for job_id, label in (
        ("ok", "Succeeded"),
        ("boom", "Failed"),
        ("flaky", "retry"),
        ("gone", "Unknown task"),
        ("revoked", "Revoked"),
        ("overlap", "Skipped"),
        ("late", "Missed"),
    ):
        page = client.get(reverse("admin:django_beatx_job_change", args=[job_id])).content.decode()
        history = page[page.index('id="beatx-runs"') :]
        assert label in history and found[job_id].task_id in history, (job_id, history[:3000])
