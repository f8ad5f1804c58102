from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from beatx import ConfigurationError, JobDefaults, JobStatus, Scheduler, SchedulerConfig
from tests.stores.contract import record_runs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "beatx.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SEED_SHAPE = """
services:
  scheduler:
    enabled: true
    backend: "memory"
    timezone: "Europe/Paris"
    url: ~
    max_concurrent_jobs: 4
    job_defaults:
      misfire_grace_time: 30
      coalesce: false
    jobs:
      - id: "global_sync"
        func: "tests.sample_tasks:record"
        trigger: "interval"
        hours: 1
      - id: "nightly"
        func: "tests.sample_tasks:record_async"
        trigger: "cron"
        expression: "0 3 * * *"
        max_instances: 2
        kwargs: {full: true}
      - id: "xmas"
        func: "tests.sample_tasks:record"
        trigger: "date"
        run_date: "2026-12-25T10:30:00"
        paused: true
"""


def test_the_seed_yaml_shape_builds_a_scheduler_with_its_jobs(tmp_path: Path) -> None:
    scheduler = Scheduler.from_yaml(write(tmp_path, SEED_SHAPE))
    assert scheduler.config.timezone == "Europe/Paris"
    assert scheduler.config.max_concurrent_jobs == 4
    assert scheduler.job_defaults == JobDefaults(misfire_grace_time=30, coalesce=False)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"global_sync", "nightly", "xmas"}
    assert jobs["global_sync"].trigger.describe() == "every 1 hour"
    assert jobs["nightly"].max_instances == 2 and jobs["nightly"].kwargs == {"full": True}
    assert jobs["nightly"].trigger.describe().endswith("(Europe/Paris)")
    assert jobs["xmas"].status is JobStatus.PAUSED
    assert jobs["xmas"].next_run_time is not None and jobs["xmas"].next_run_time.hour == 9  # 10:30 Paris
    assert jobs["global_sync"].misfire_grace_time == 30 and jobs["global_sync"].coalesce is False


def test_a_bare_scheduler_section_works_too(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  timezone: UTC\n  jobs: []\n")
    assert SchedulerConfig.from_yaml(path).timezone == "UTC"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scheduler: [1, 2", "malformed YAML"),
        ("- 1\n- 2\n", "expected a mapping at the top"),
        ("scheduler:\n  timezon: UTC\n", "unknown key(s) timezon"),
        ("scheduler:\n  timezone: Mars/Base\n", "timezone: unknown timezone 'Mars/Base'"),
        ("scheduler:\n  backend: mongo\n", "backend: expected one of memory, redis, django"),
        ("scheduler:\n  backend: redis\n", "url: the redis backend needs a url"),
        ("scheduler:\n  max_concurrent_jobs: 0\n", "max_concurrent_jobs"),
        ("scheduler:\n  job_defaults: {max_instance: 2}\n", "job_defaults: unknown key(s) 'max_instance'"),
        ("scheduler:\n  job_defaults: {max_instances: 0}\n", "max_instances must be an integer >= 1"),
        ("scheduler:\n  jobs:\n    - func: a:b\n      trigger: interval\n", "jobs[0]: id"),
        ("scheduler:\n  jobs:\n    - {id: j, func: a.b, trigger: interval}\n", "jobs[0] (id 'j'): func"),
        (
            "scheduler:\n  jobs:\n    - {id: j, func: 'a:b', trigger: hourly}\n",
            "jobs[0] (id 'j'): trigger: expected 'interval', 'cron', 'date', 'rrule' or 'solar'",
        ),
        (
            (
                "scheduler:\n  jobs:\n    - {id: j, func: 'a:b', trigger: interval, seconds: 1}\n"
                "    - {id: j, func: 'a:b', trigger: interval, seconds: 1}\n"
            ),
            "'j' is used twice",
        ),
    ],
    ids=[
        "malformed",
        "not-a-mapping",
        "unknown-key",
        "unknown-timezone",
        "unknown-backend",
        "redis-without-url",
        "zero-concurrency",
        "unknown-default",
        "bad-default",
        "job-without-id",
        "func-not-a-reference",
        "unknown-trigger",
        "duplicate-id",
    ],
)
def test_bad_files_are_refused_naming_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        SchedulerConfig.from_yaml(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            "{id: bad-cron, func: 'tests.sample_tasks:record', trigger: cron, expression: '0 25 * * *'}",
            "hour",
        ),
        ("{id: no-module, func: 'nowhere.tasks:run', trigger: interval, seconds: 5}", "cannot import module"),
        ("{id: zero, func: 'tests.sample_tasks:record', trigger: interval, seconds: 0}", "greater than 0"),
        (
            "{id: tz, func: 'tests.sample_tasks:record', trigger: cron, expression: '* * * * *', timezone: X/Y}",
            "unknown timezone",
        ),
        ("{id: typo, func: 'tests.sample_tasks:record', trigger: interval, hourz: 1}", "hourz"),
    ],
    ids=["bad-cron", "unimportable-func", "zero-interval", "bad-timezone", "unknown-trigger-argument"],
)
def test_bad_jobs_name_the_job_and_what_is_wrong(tmp_path: Path, job: str, message: str) -> None:
    path = write(tmp_path, f"scheduler:\n  jobs:\n    - {job}\n")
    job_id = job.split(",")[0].split(":")[1].strip()
    with pytest.raises(ConfigurationError) as info:
        Scheduler.from_yaml(path)
    assert f"job {job_id!r}" in str(info.value)
    assert message in str(info.value)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the file"):
        SchedulerConfig.from_yaml(tmp_path / "absent.yaml")


def test_reapplying_configuration_keeps_run_state(tmp_path: Path) -> None:
    from beatx.stores.memory import MemoryStore

    store = MemoryStore()
    path = write(tmp_path, SEED_SHAPE)
    Scheduler.from_yaml(path, store=store)
    job = store.get_job("global_sync")
    assert job is not None
    record_runs(store, job, 7)
    Scheduler.from_yaml(path, store=store)
    again = store.get_job("global_sync")
    assert again is not None and again.total_run_count == 7 and again.next_run_time == job.next_run_time
