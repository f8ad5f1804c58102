"""``beatx import redbeat``: RedBeat's entries, written by RedBeat itself (celery-redbeat, the
benchmark peer installed in the venv) into a private Redis database, become beatx jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beatx.importers.common import job_id_for
from beatx.stores.redis import RedisStore

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

redbeat = pytest.importorskip("redbeat")


def _redbeat_app(redis_url: str, prefix: str) -> Any:
    from celery import Celery

    app = Celery("redbeat-import", broker="memory://", set_as_current=False)
    app.conf.redbeat_redis_url = redis_url
    app.conf.redbeat_key_prefix = prefix
    app.conf.timezone = "UTC"
    return app


def _beatx(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BEATX_STORE"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "beatx.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_job_ids_from_names() -> None:
    assert job_id_for("Send report daily") == "Send-report-daily"
    assert job_id_for("billing.invoice:eu") == "billing.invoice:eu"
    assert job_id_for("  a / b  ") == "a-b"


def test_redbeat_entries_become_jobs_with_their_history(redis_url: str, key_prefix: str) -> None:
    from celery.schedules import crontab, schedule
    from redbeat import RedBeatSchedulerEntry
    from redbeat.schedules import rrule

    prefix = f"rb-{uuid.uuid4().hex[:8]}:"
    app = _redbeat_app(redis_url, prefix)
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=7)
    every_ten = RedBeatSchedulerEntry(
        "Send report every ten minutes",
        "shop.tasks.report",
        schedule(timedelta(minutes=10)),
        args=[1],
        kwargs={"to": "ops"},
        options={"queue": "reports"},
        app=app,
    )
    every_ten.save()
    every_ten.last_run_at = last_run
    for _ in range(3):
        every_ten = every_ten.next(last_run_at=last_run)  # RedBeat's own meta: run count, last run
    RedBeatSchedulerEntry("nightly", "shop.tasks.nightly", crontab(minute="30", hour="2"), app=app).save()
    RedBeatSchedulerEntry(
        "off", "shop.tasks.off", schedule(timedelta(seconds=30)), enabled=False, app=app
    ).save()
    RedBeatSchedulerEntry(
        "by-rule", "shop.tasks.rule", rrule("MINUTELY", dtstart=datetime.now(UTC)), app=app
    ).save()
    store = RedisStore(redis_url, key_prefix=key_prefix)
    try:
        result = _beatx(
            "--store",
            redis_url,
            "--key-prefix",
            key_prefix,
            "import",
            "redbeat",
            redis_url,
            "--prefix",
            prefix,
        )
        # The rrule entry is refused: the command says so and exits 1; the others are in.
        assert result.returncode == 1, result.stderr
        assert "! " in result.stderr and "by-rule" in result.stderr and "RRuleTrigger" in result.stderr
        assert "3 imported, 0 updated, 0 unchanged, 1 refused" in result.stdout
        report = store.get_job("Send-report-every-ten-minutes")
        assert report is not None
        assert report.name == "Send report every ten minutes"
        assert report.func_ref == "shop.tasks.report"
        assert (list(report.args), report.kwargs, report.options) == (
            [1],
            {"to": "ops"},
            {"queue": "reports"},
        )
        assert report.total_run_count == 3 and report.last_run_time == last_run
        # It goes on from its last run (10 minutes after it), not at once.
        assert report.next_run_time == last_run + timedelta(minutes=10)
        nightly = store.get_job("nightly")
        assert nightly is not None and repr(nightly.trigger) == "CronTrigger('30 2 * * *', timezone='UTC')"
        off = store.get_job("off")
        assert off is not None and off.status.value == "paused"
        assert store.get_job("by-rule") is None
        # RedBeat's keys are only read.
        assert RedBeatSchedulerEntry.from_key(f"{prefix}nightly", app=app).task == "shop.tasks.nightly"

        again = _beatx(
            "--store",
            redis_url,
            "--key-prefix",
            key_prefix,
            "import",
            "redbeat",
            redis_url,
            "--prefix",
            prefix,
            "--json-is-not-an-option",
        )
        assert again.returncode == 2
        rerun = _beatx(
            "--store",
            redis_url,
            "--key-prefix",
            key_prefix,
            "import",
            "redbeat",
            redis_url,
            "--prefix",
            prefix,
            "--dry-run",
        )
        assert "[dry run] 0 imported, 0 updated, 3 unchanged, 1 refused" in rerun.stdout
        listed = _beatx("--store", redis_url, "--key-prefix", key_prefix, "jobs", "list", "--json")
        assert sorted(job["id"] for job in json.loads(listed.stdout)) == [
            "Send-report-every-ten-minutes",
            "nightly",
            "off",
        ]
    finally:
        store.close()


def test_an_unreachable_redbeat_is_one_line_exit_3(redis_url: str, key_prefix: str) -> None:
    result = _beatx(
        "--store", redis_url, "--key-prefix", key_prefix, "import", "redbeat", "redis://127.0.0.1:1/0"
    )
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read RedBeat's schedule"), lines
