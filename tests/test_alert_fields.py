"""The alert rules reach the job through every way of defining one: the API (add, modify,
ensure), YAML, ``beat_schedule`` options, the CLI; each store keeps them (the store contract
round-trips a job's definition); ``run_job_now`` is in the ledger; the settings are checked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from beatx import ConfigurationError, InvalidJobError, JobManager, Scheduler
from beatx.celery import BeatxSettings, import_beat_schedule
from beatx.dispatch.base import Dispatcher
from beatx.jobs import Fire, job_from_dict, job_to_dict
from beatx.ledger import RunOutcome
from beatx.stores.memory import MemoryStore
from beatx.triggers import IntervalTrigger

ROOT = Path(__file__).resolve().parents[1]
RULES = {"expect_every": 600.0, "max_lateness": 30.0, "max_runtime": 120.0, "alert_after_failures": 3}


def rules_of(job: Any) -> dict[str, Any]:
    return {name: getattr(job, name) for name in RULES}


def test_the_api_adds_modifies_and_ensures_the_rules() -> None:
    manager = JobManager(MemoryStore())
    job = manager.add_job("proj.tasks.ping", IntervalTrigger(seconds=60), id="j", **RULES)
    assert rules_of(manager.get_job("j")) == RULES
    assert rules_of(job_from_dict(job_to_dict(job))) == RULES
    assert job.describe()["expect_every"] == 600.0
    manager.modify_job("j", max_runtime=None, alert_after_failures=5)
    assert rules_of(manager.get_job("j")) == {**RULES, "max_runtime": None, "alert_after_failures": 5}
    # ensure_job (configuration, beat_schedule) writes a changed rule, and only then.
    revision = manager.get_job("j").revision  # type: ignore[union-attr]
    manager.ensure_job("proj.tasks.ping", IntervalTrigger(seconds=60), id="j", **RULES)
    again = manager.get_job("j")
    assert again is not None and rules_of(again) == RULES and again.revision == revision + 1
    manager.ensure_job("proj.tasks.ping", IntervalTrigger(seconds=60), id="j", **RULES)
    assert manager.get_job("j").revision == revision + 1  # type: ignore[union-attr]
    with pytest.raises(InvalidJobError, match="max_lateness"):
        manager.modify_job("j", max_lateness=-1)


def test_yaml_jobs_take_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "beatx.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            jobs:
              - id: "nightly"
                func: "tests.sample_tasks:record"
                trigger: "cron"
                expression: "0 3 * * *"
                expect_every: 90000
                alert_after_failures: 2
            """
        )
    )
    (job,) = Scheduler.from_yaml(path).get_jobs()
    assert (job.expect_every, job.alert_after_failures, job.max_runtime) == (90000, 2, None)


def test_beat_schedule_options_carry_the_rules() -> None:
    manager = JobManager(MemoryStore())
    entries = {
        "sync": {
            "task": "proj.tasks.sync",
            "schedule": 300.0,
            "options": {"queue": "q", "beatx_expect_every": 900, "beatx_max_runtime": 60},
        }
    }
    import_beat_schedule(manager, entries)
    job = manager.get_job("sync")
    assert job is not None and (job.expect_every, job.max_runtime) == (900, 60)
    assert "beatx_expect_every" not in job.options


class _Sent(Dispatcher):
    def dispatch(self, fires: Any, *, guard: Any = None) -> list[BaseException | None]:
        return [None for _ in fires]


def test_run_job_now_is_in_the_ledger() -> None:
    store = MemoryStore()
    manager = JobManager(store, dispatcher=_Sent())
    manager.add_job("proj.tasks.ping", IntervalTrigger(hours=1), id="j")
    task_id = manager.run_job_now("j")
    (run,) = store.job_runs("j")
    assert (run.task_id, run.outcome) == (task_id, RunOutcome.SENT)
    assert run.scheduled_at is not None and Fire(manager.get_job("j"), run.scheduled_at).task_id == task_id  # type: ignore[arg-type]


def test_the_settings_are_checked_and_size_the_ledger() -> None:
    app = Celery("t", set_as_current=False)
    app.conf.beatx_run_history = 3
    app.conf.beatx_alert_webhook = "http://127.0.0.1:9/alerts"
    settings = BeatxSettings.from_app(app)
    assert settings.store_options() == {"run_history": 3, "run_history_days": 7.0}
    assert BeatxSettings(store="django://").store_options() == {}
    for name, bad in (
        ("alert_webhook", "ftp://x"),
        ("alert_interval", 0),
        ("run_history", -1),
        ("alert_sentry", 1),
    ):
        with pytest.raises(ConfigurationError, match=f"beatx_{name}"):
            BeatxSettings(**{name: bad})
    from beatx.stores import open_store

    store = open_store("memory://", **settings.store_options())
    manager = JobManager(store, dispatcher=_Sent())
    manager.add_job("proj.tasks.ping", IntervalTrigger(hours=1), id="j")
    for _ in range(5):
        manager.run_job_now("j")
    assert len(store.job_runs("j")) == 3


@pytest.mark.redis
def test_the_cli_adds_and_shows_the_rules(redis_url: str, key_prefix: str) -> None:
    def beatx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beatx.cli", "--store", redis_url, "--key-prefix", key_prefix, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    added = beatx(
        "jobs", "add", "hb", "--func", "app.ping", "--every", "60",
        "--expect-every", "180", "--max-runtime", "30", "--alert-after-failures", "2",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = json.loads(beatx("jobs", "show", "hb", "--json").stdout)
    assert {name: shown[name] for name in RULES} == {
        "expect_every": 180.0,
        "max_lateness": None,
        "max_runtime": 30.0,
        "alert_after_failures": 2,
    }
    table = beatx("jobs", "show", "hb").stdout
    assert "expect every 180s" in table and "after 2 failures" in table
    refused = beatx("jobs", "add", "x", "--func", "app.ping", "--every", "60", "--expect-every", "0")
    assert refused.returncode == 2


def test_the_in_process_scheduler_takes_the_alert_settings() -> None:
    from beatx import SchedulerConfig

    config = SchedulerConfig.from_mapping({"alert_interval": 2, "alert_webhook": "http://127.0.0.1:9/a"})
    assert (config.alert_interval, config.alert_webhook) == (2, "http://127.0.0.1:9/a")
    with pytest.raises(ConfigurationError, match="alert_webhook"):
        SchedulerConfig.from_mapping({"alert_webhook": "ftp://x"})
    scheduler = Scheduler(config)
    assert scheduler._alert_delivery.webhook_url == "http://127.0.0.1:9/a"
