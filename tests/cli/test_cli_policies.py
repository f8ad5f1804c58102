"""The schedule policies through the ``beatx`` command (a subprocess, a real Redis store),
YAML and ``beat_schedule``."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beatx import Scheduler
from beatx.celery import import_beat_schedule
from beatx.jobs import CatchUp, JobStatus, Overlap, fire_task_id
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from tests.cli.test_cli import CELERY_APP, Beatx, _env, beatx, error_line, run_beatx  # noqa: F401

pytestmark = pytest.mark.redis


def test_add_show_and_list_the_policies(beatx: Beatx) -> None:  # noqa: F811
    added = beatx(
        "jobs", "add", "spread", "--func", "a.b", "--cron", "H * * * *", "--catchup", "all",
        "--catchup-window", "3600", "--catchup-limit", "5", "--jitter", "30", "--max-runs", "10",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = beatx("jobs", "show", "spread")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    for expected in (
        "catch-up all (window 3600s, at most 5)",
        "jitter 30s",
        "max runs 10 (10 left)",
        "(H: H * * * *)",
    ):
        assert expected in text, text
    detail = json.loads(beatx("jobs", "show", "spread", "--json").stdout)
    assert (detail["catchup"], detail["jitter"], detail["max_runs"], detail["remaining_runs"]) == (
        "all",
        30,
        10,
        10,
    )
    bad = beatx("jobs", "add", "x", "--func", "a.b", "--every", "5", "--catchup", "sometimes")
    assert bad.returncode == 2 and "sometimes" in bad.stderr


def test_pause_with_a_note_and_resume_from_where_it_stopped(beatx: Beatx) -> None:  # noqa: F811
    assert beatx("jobs", "add", "j", "--func", "a.b", "--every", "60").returncode == 0
    paused = beatx("jobs", "pause", "j", "--note", "API down", "--by", "alice")
    assert paused.returncode == 0, paused.stderr
    listed = " ".join(beatx("jobs", "list").stdout.split())
    assert "paused (API down, by alice)" in listed
    detail = json.loads(beatx("jobs", "show", "j", "--json").stdout)
    assert (detail["pause_note"], detail["paused_by"]) == ("API down", "alice") and detail["paused_at"]
    resumed = beatx("jobs", "resume", "j", "--from", "catch_up")
    assert resumed.returncode == 0, resumed.stderr
    detail = json.loads(beatx("jobs", "show", "j", "--json").stdout)
    assert (detail["status"], detail["pause_note"], detail["paused_by"]) == ("active", None, None)
    refused = beatx("jobs", "resume", "j", "--from", "someday")
    assert refused.returncode == 2 and "--from" in refused.stderr


def test_backfill_without_a_dispatcher_is_refused(beatx: Beatx) -> None:  # noqa: F811
    assert beatx("jobs", "add", "j", "--func", "a.b", "--every", "60").returncode == 0
    result = beatx("jobs", "backfill", "j", "--start", "2026-03-01T00:00", "--end", "2026-03-01T01:00")
    assert result.returncode == 1 and "--app" in error_line(result)


def test_backfill_through_the_app_sends_once(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    (tmp_path / "cli_test_proj.py").write_text(CELERY_APP.format(store=redis_url, prefix=key_prefix))
    env = _env(tmp_path)
    added = run_beatx(
        "--app", "cli_test_proj", "jobs", "add", "hourly", "--func", "cli_test_proj.add", "--cron", "0 * * * *",
        "--tz", "UTC", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    window = ("--start", "2026-03-01T00:00+00:00", "--end", "2026-03-01T02:00+00:00", "--json")
    first = run_beatx("--app", "cli_test_proj", "jobs", "backfill", "hourly", *window, env=env)
    assert first.returncode == 0, first.stderr
    sent = json.loads(first.stdout)
    hours = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in range(3)]
    assert sent["task_ids"] == [fire_task_id("hourly", t) for t in hours]
    again = json.loads(
        run_beatx("--app", "cli_test_proj", "jobs", "backfill", "hourly", *window, env=env).stdout
    )
    assert (again["sent"], again["already_sent"]) == ([], 3)


def test_yaml_jobs_take_the_policies(tmp_path: Path) -> None:
    path = tmp_path / "beatx.yaml"
    path.write_text(
        textwrap.dedent(
            """
            scheduler:
              jobs:
                - id: sync
                  func: "tests.sample_tasks:record"
                  trigger: interval
                  minutes: 5
                  catchup: none
                  catchup_window: 600
                  jitter: 20
                  max_runs: 3
            """
        ),
        encoding="utf-8",
    )
    job = Scheduler.from_yaml(path).get_job("sync")
    assert job is not None
    assert (job.catchup, job.catchup_window, job.jitter, job.max_runs) == (CatchUp.NONE, 600, 20, 3)


def test_beat_schedule_entries_carry_the_policies_in_their_options() -> None:
    manager = JobManager(MemoryStore())
    schedule = {
        "sync": {
            "task": "shop.tasks.sync",
            "schedule": 300,
            "options": {
                "queue": "sync",
                "beatx_catchup": "all",
                "beatx_catchup_limit": 4,
                "beatx_jitter": 15,
            },
        },
        "once": {"task": "shop.tasks.once", "schedule": 60, "options": {"beatx_max_runs": 1}},
    }
    import_beat_schedule(manager, schedule)
    sync = manager.get_job("sync")
    assert sync is not None
    assert (sync.catchup, sync.catchup_limit, sync.jitter) == (CatchUp.ALL, 4, 15)
    assert "beatx_catchup" not in sync.options and sync.options["queue"] == "sync"
    once = manager.get_job("once")
    assert once is not None and once.max_runs == 1 and once.status is JobStatus.ACTIVE


def test_the_overlap_policy_through_the_cli_yaml_and_beat_schedule(beatx: Beatx, tmp_path: Path) -> None:  # noqa: F811
    added = beatx(
        "jobs", "add", "slow", "--func", "a.b", "--every", "5", "--overlap", "buffer_one",
        "--pause-after-failures", "3",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    text = " ".join(beatx("jobs", "show", "slow").stdout.split())
    assert "overlap buffer_one" in text and "pause after failures 3" in text, text
    detail = json.loads(beatx("jobs", "show", "slow", "--json").stdout)
    assert (detail["overlap"], detail["pause_after_failures"]) == ("buffer_one", 3)
    bad = beatx("jobs", "add", "x", "--func", "a.b", "--every", "5", "--overlap", "sometimes")
    assert bad.returncode == 2 and "sometimes" in bad.stderr

    path = tmp_path / "beatx.yaml"
    path.write_text(
        textwrap.dedent(
            """
            scheduler:
              jobs:
                - id: sync
                  func: "tests.sample_tasks:record"
                  trigger: interval
                  minutes: 5
                  overlap: cancel_other
                  pause_after_failures: 2
            """
        ),
        encoding="utf-8",
    )
    job = Scheduler.from_yaml(path).get_job("sync")
    assert job is not None and (job.overlap, job.pause_after_failures) == (Overlap.CANCEL_OTHER, 2)

    manager = JobManager(MemoryStore())
    options = {"queue": "q", "beatx_overlap": "buffer_all", "beatx_pause_after_failures": 5}
    import_beat_schedule(manager, {"e": {"task": "t.e", "schedule": 60, "options": options}})
    entry = manager.get_job("e")
    assert entry is not None and (entry.overlap, entry.pause_after_failures) == (Overlap.BUFFER_ALL, 5)
    assert "beatx_overlap" not in entry.options and entry.options["queue"] == "q"
