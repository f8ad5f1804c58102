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


# -- one schema: the reference is generated from it, the readers validate with it ---------------


def _generated_block(text: str, which: str) -> str:
    from beatx.settings_schema import begin_marker, end_marker

    begin, end = begin_marker(which), end_marker(which)
    assert begin in text and end in text, f"no generated {which} table"
    return text.split(begin + "\n", 1)[1].split(end, 1)[0]


def test_the_reference_tables_are_the_schema_s() -> None:
    from beatx.settings_schema import markdown_table

    docs = Path(__file__).parent.parent / "docs"
    pages = {"configuration.md": ("celery", "scheduler-config", "django"), "migration.md": ("celery",)}
    for page, tables in pages.items():
        text = (docs / page).read_text(encoding="utf-8")
        for which in tables:
            assert _generated_block(text, which) == markdown_table(which), (
                f"docs/{page}: the {which} table is not the schema's; run python -m beatx.settings_schema"
            )


def test_the_schema_names_every_setting_of_the_three_readers() -> None:
    from beatx.celery import BeatxSettings
    from beatx.settings_schema import SETTINGS
    from django_beatx.conf import _DEFAULTS as DJANGO_DEFAULTS

    assert {s.name for s in SETTINGS if s.celery} == set(BeatxSettings.field_names())
    assert {s.config_field for s in SETTINGS if s.config_field} == {
        f.name for f in dataclasses.fields(SchedulerConfig)
    }
    assert {s.django_key for s in SETTINGS if s.django_key} == set(DJANGO_DEFAULTS)


def test_one_validator_one_message() -> None:
    """The same mistake reads the same in the Celery settings and in SchedulerConfig."""
    import pytest

    from beatx import ConfigurationError
    from beatx.celery import BeatxSettings

    for name, value, reason in (
        ("lease_timeout", 0, "expected a number of seconds > 0, got 0"),
        ("timezone", "Mars/Base", "unknown timezone 'Mars/Base'"),
        ("max_concurrent_jobs", 0, "expected a positive integer or None, got 0"),
        ("job_defaults", {"max_instance": 2}, "unknown key(s) 'max_instance'"),
        ("key_prefix", "", "expected a non-empty string, got ''"),
    ):
        with pytest.raises(ConfigurationError) as celery:
            BeatxSettings(**{name: value})
        with pytest.raises(ConfigurationError) as config:
            SchedulerConfig(**{name: value})
        assert str(celery.value).startswith(f"beatx_{name}: {reason}"), celery.value
        assert str(config.value).startswith(f"{name}: {reason}"), config.value
