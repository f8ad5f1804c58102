"""The new trigger kinds in YAML configuration and in ``build_trigger``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from beatx import ConfigurationError, CronTrigger, RRuleTrigger, Scheduler, SolarTrigger
from beatx.triggers import TRIGGER_TYPES, build_trigger

pytest.importorskip("yaml")

YAML = """
scheduler:
  timezone: Europe/Paris
  jobs:
    - id: last-friday
      func: "tests.sample_tasks:record"
      trigger: rrule
      rule: "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1"
      dtstart: 2026-01-01T09:00:00
      exdates: ["2026-12-25T09:00:00"]
    - id: third-friday
      func: "tests.sample_tasks:record"
      trigger: cron
      expression: "0 0 9 ? * 5#3"
      extended: true
      seconds: true
    - id: lights
      func: "tests.sample_tasks:record"
      trigger: solar
      event: sunset
      latitude: 48.85
      longitude: 2.35
"""


def test_yaml_jobs_name_the_new_kinds(tmp_path: Path) -> None:
    path = tmp_path / "beatx.yaml"
    path.write_text(textwrap.dedent(YAML), encoding="utf-8")
    jobs = {job.id: job for job in Scheduler.from_yaml(path).get_jobs()}
    rrule = jobs["last-friday"].trigger
    assert isinstance(rrule, RRuleTrigger)
    assert rrule.to_dict()["timezone"] == "Europe/Paris"  # the scheduler's, fixed when added
    assert rrule.to_dict()["dtstart"] == "2026-01-01T09:00:00"
    cron = jobs["third-friday"].trigger
    assert isinstance(cron, CronTrigger) and cron.extended and cron.seconds
    assert jobs["lights"].trigger == SolarTrigger("sunset", 48.85, 2.35)
    for job in jobs.values():
        assert job.next_run_time is not None


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{id: r, func: 'tests.sample_tasks:record', trigger: rrule, rule: 'FREQ=NEVER'}", "invalid RRULE"),
        (
            "{id: s, func: 'tests.sample_tasks:record', trigger: solar, event: noon, latitude: 1, longitude: 1}",
            "solar event",
        ),
        (
            "{id: c, func: 'tests.sample_tasks:record', trigger: cron, expression: '0 9 L * *'}",
            "extended=True",
        ),
        ("{id: x, func: 'tests.sample_tasks:record', trigger: lunar}", "'rrule' or 'solar'"),
    ],
)
def test_yaml_errors_name_the_job_and_what_is_wrong(tmp_path: Path, job: str, message: str) -> None:
    path = tmp_path / "beatx.yaml"
    path.write_text(f"scheduler:\n  jobs:\n    - {job}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        Scheduler.from_yaml(path)


def test_build_trigger_knows_every_kind() -> None:
    assert set(TRIGGER_TYPES) == {"interval", "cron", "date", "rrule", "solar"}
    with pytest.raises(ValueError, match="'rrule', 'solar'"):
        build_trigger("lunar")
    with pytest.raises(ValueError, match="unknown argument"):
        build_trigger("cron", expression="0 9 * * *", quartz=True)
