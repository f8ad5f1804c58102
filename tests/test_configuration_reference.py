"""docs/configuration.md is checked against the code: every setting is documented with its
real default, and nothing documented is unknown to the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from beatx import JobDefaults, SchedulerConfig

DOC = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")


def documented_rows(section_title: str) -> dict[str, str]:
    """``name -> default`` from the first table after a heading."""
    section = DOC.split(f"## {section_title}", 1)[1]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z_]+)` \| (.+?) \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
        elif rows and not line.startswith("|"):
            break
    return rows


def test_every_scheduler_config_field_is_documented_with_its_default() -> None:
    rows = documented_rows("In-process: `SchedulerConfig`")
    fields = {f.name: f for f in dataclasses.fields(SchedulerConfig)}
    assert set(rows) == set(fields)
    defaults = SchedulerConfig()
    for name, text in rows.items():
        value = getattr(defaults, name)
        if isinstance(value, JobDefaults):
            assert text == "`JobDefaults()`" and value == JobDefaults()
        else:
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            assert text == f"`{shown}`", f"{name}: documented {text}, code says {shown}"


def test_the_policy_table_matches_job_defaults() -> None:
    rules = (Path(__file__).parent.parent / "docs" / "concepts" / "rules.md").read_text(encoding="utf-8")
    defaults = JobDefaults()
    for field in dataclasses.fields(JobDefaults):
        assert f"| `{field.name}` | `{getattr(defaults, field.name)!r}` |" in rules


def test_every_celery_setting_is_documented() -> None:
    from beatx.celery import BeatxSettings

    rows = documented_rows("With Celery: the app's settings")
    assert set(rows) == {f"beatx_{name}" for name in BeatxSettings.field_names()}


def test_the_benchmarks_run_beat_with_the_default_lookahead() -> None:
    from beatx.celery import BeatxSettings
    from benchmarks.common import LOOKAHEAD

    assert BeatxSettings().lookahead == LOOKAHEAD
