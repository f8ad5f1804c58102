"""``JobManager.preview_fires``: the API's preview, what the CLI and the admin strike out."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from beatx import PreviewFire
from beatx.errors import JobLookupError
from beatx.manager import JobManager
from beatx.stores.memory import MemoryStore
from beatx.triggers import CronTrigger

PARIS = ZoneInfo("Europe/Paris")
FRIDAY_NOON = datetime(2026, 3, 6, 12, 0, tzinfo=PARIS)  # a Friday


@pytest.fixture
def manager() -> JobManager:
    manager = JobManager(MemoryStore())
    manager.add_calendar(name="weekends", weekdays=["sat", "sun"])
    return manager


def test_a_skipped_fire_is_shown_with_the_calendar_and_reason(manager: JobManager) -> None:
    manager.add_job(
        "tests.sample_tasks:record",
        CronTrigger("0 9 * * *", timezone="Europe/Paris"),
        id="daily",
        exclude=["weekends"],
    )
    shown = manager.preview_fires("daily", 2, after=FRIDAY_NOON)
    days = [(entry.at.astimezone(PARIS).strftime("%a %H:%M"), entry.runs) for entry in shown]
    assert days == [("Sat 09:00", False), ("Sun 09:00", False), ("Mon 09:00", True), ("Tue 09:00", True)]
    assert shown[0].reason is not None and "weekends" in shown[0].reason
    assert shown[2].reason is None


def test_next_business_day_shows_where_an_excluded_fire_moves(manager: JobManager) -> None:
    manager.add_job(
        "tests.sample_tasks:record",
        CronTrigger("0 9 * * *", timezone="Europe/Paris"),
        id="daily",
        exclude=["weekends"],
        on_excluded="next_business_day",
    )
    saturday = manager.preview_fires("daily", 1, after=FRIDAY_NOON)[0]
    assert saturday.reason is not None and saturday.runs
    assert saturday.moved_to == datetime(2026, 3, 9, 9, 0, tzinfo=PARIS)  # Monday 09:00


def test_a_job_without_calendars_previews_its_own_fire_times(manager: JobManager) -> None:
    manager.add_job(
        "tests.sample_tasks:record", CronTrigger("0 9 * * *", timezone="Europe/Paris"), id="plain"
    )
    shown = manager.preview_fires("plain", 3, after=FRIDAY_NOON)
    assert [entry.at.astimezone(PARIS).day for entry in shown] == [7, 8, 9]
    assert all(isinstance(entry, PreviewFire) and entry.reason is None for entry in shown)


def test_an_unknown_job_is_refused(manager: JobManager) -> None:
    with pytest.raises(JobLookupError):
        manager.preview_fires("nope")
