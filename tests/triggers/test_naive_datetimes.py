"""beatx's one rule for naive datetimes: a wall time in the trigger's zone, else the scheduler's,
with cron's daylight-saving rule (a skipped time is the instant of the jump, a repeated one its
first pass), for interval, cron and one-shot jobs alike."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from beatx import CronTrigger, DateTimeTrigger, IntervalTrigger, JobManager
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock

PARIS = ZoneInfo("Europe/Paris")


def _manager(now: datetime) -> JobManager:
    return JobManager(MemoryStore(), timezone="Europe/Paris", clock=FakeClock(now))


def test_an_interval_start_date_is_a_wall_time_in_the_scheduler_zone() -> None:
    manager = _manager(datetime(2026, 5, 1, tzinfo=UTC))
    interval = manager.add_job(
        "t.job",
        IntervalTrigger(hours=24, start_date="2026-06-01T09:00:00", end_date=datetime(2026, 6, 30, 9)),
        id="interval",
    )
    cron = manager.add_job("t.job", CronTrigger("0 9 * * *"), id="cron")
    once = manager.add_job("t.job", DateTimeTrigger(datetime(2026, 6, 1, 9)), id="once")
    assert isinstance(interval.trigger, IntervalTrigger)
    nine_in_paris = datetime(2026, 6, 1, 7, tzinfo=UTC)
    assert interval.trigger.start_date == nine_in_paris
    assert interval.trigger.end_date == datetime(2026, 6, 30, 7, tzinfo=UTC)
    assert interval.next_run_time == once.next_run_time == nine_in_paris
    assert cron.trigger.next_fire_time(datetime(2026, 5, 31, 12, tzinfo=UTC)) == nine_in_paris


def test_an_aware_start_date_is_kept_and_a_bare_trigger_reads_naive_as_utc() -> None:
    aware = IntervalTrigger(hours=1, start_date=datetime(2026, 6, 1, 9, tzinfo=PARIS))
    assert aware.resolve(now=datetime(2026, 1, 1, tzinfo=UTC), timezone=ZoneInfo("Asia/Tokyo")) is aware
    bare = IntervalTrigger(hours=1, start_date="2026-06-01T09:00:00")
    assert bare.start_date == datetime(2026, 6, 1, 9, tzinfo=UTC)  # until a scheduler resolves it


@pytest.mark.parametrize(
    ("wall", "cron", "expected"),
    [
        # Spring forward in Paris: 02:00 -> 03:00 on 2026-03-29; 02:30 does not exist.
        (datetime(2026, 3, 29, 2, 30), "30 2 29 3 *", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Fall back: 02:30 happens twice on 2026-10-25; the first pass is 00:30 UTC.
        (datetime(2026, 10, 25, 2, 30), "30 2 25 10 *", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_a_one_shot_at_a_dst_wall_time_fires_when_cron_would(
    wall: datetime, cron: str, expected: datetime
) -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    once = DateTimeTrigger(wall, timezone="Europe/Paris")
    assert once.next_fire_time(after) == expected
    assert CronTrigger(cron, timezone="Europe/Paris").next_fire_time(after) == expected
    resolved = DateTimeTrigger(wall).resolve(now=after, timezone=PARIS)
    assert resolved.next_fire_time(after) == expected
    interval = IntervalTrigger(days=365, start_date=wall).resolve(now=after, timezone=PARIS)
    assert interval.next_fire_time(after) == expected
