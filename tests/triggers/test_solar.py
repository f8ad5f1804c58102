"""SolarTrigger against Celery's own ``celery.schedules.solar``, and its plumbing."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

pytest.importorskip("ephem")

from celery.schedules import solar

from beatx import ConfigurationError, SolarTrigger
from beatx.celery import convert_schedule, import_beat_schedule
from beatx.errors import BeatxError, InvalidTriggerError
from beatx.manager import JobManager
from beatx.stores import MemoryStore
from beatx.triggers import build_trigger, trigger_from_dict
from beatx.triggers.solar import SOLAR_EVENTS

PLACES = [(48.85, 2.35), (-33.87, 151.21), (40.71, -74.01), (0.0, 0.0), (64.15, -21.94)]
AFTERS = [
    datetime(2026, 3, 20, 5, 0, tzinfo=UTC),
    datetime(2026, 6, 21, 18, 30, tzinfo=UTC),
    datetime(2026, 12, 1, tzinfo=UTC),
]


def celery_next(event: str, lat: float, lon: float, after: datetime) -> datetime:
    """The next run Celery computes for a task last run at ``after`` (is_due's estimate)."""
    schedule = solar(event, lat, lon, nowfun=lambda: after)
    return after + schedule.remaining_estimate(after)


@pytest.mark.parametrize("event", sorted(SOLAR_EVENTS))
def test_fire_times_match_celery_within_a_second(event: str) -> None:
    for lat, lon in PLACES:
        trigger = SolarTrigger(event, lat, lon)
        for after in AFTERS:
            ours = trigger.next_fire_time(after)
            assert ours is not None
            theirs = celery_next(event, lat, lon, after)
            assert abs((ours - theirs).total_seconds()) <= 1, (event, lat, lon, after, ours, theirs)
            assert ours > after and ours.tzinfo is UTC and ours.microsecond == 0


def test_successive_fires_are_one_a_day_and_strictly_increasing() -> None:
    trigger = SolarTrigger("sunset", 48.85, 2.35)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    fires = []
    for _ in range(5):
        nxt = trigger.next_fire_time(moment)
        assert nxt is not None and nxt > moment
        fires.append(nxt)
        moment = nxt
    gaps = [(b - a) for a, b in pairwise(fires)]
    assert all(timedelta(hours=23, minutes=50) < gap < timedelta(hours=24, minutes=10) for gap in gaps)
    # An ``after`` just before the rounded fire time still gets that fire.
    assert trigger.next_fire_time(fires[0] - timedelta(microseconds=1)) == fires[0]


def test_polar_night_skips_to_the_next_sunrise_like_celery() -> None:
    trigger = SolarTrigger("sunrise", 78.22, 15.65)  # Longyearbyen: no sunrise in December
    after = datetime(2026, 12, 1, tzinfo=UTC)
    ours = trigger.next_fire_time(after)
    assert ours is not None and ours.month == 2
    assert abs((ours - celery_next("sunrise", 78.22, 15.65, after)).total_seconds()) <= 1


def test_serialization_build_trigger_and_errors() -> None:
    trigger = SolarTrigger("dusk_civil", 45.5, -73.6)
    data = trigger.to_dict()
    assert data == {
        "kind": "solar",
        "version": 1,
        "event": "dusk_civil",
        "latitude": 45.5,
        "longitude": -73.6,
    }
    assert trigger_from_dict(data) == trigger
    assert build_trigger("solar", event="dusk_civil", latitude=45.5, longitude=-73.6) == trigger
    assert "dusk civil" in trigger.describe()
    for arguments, message in [
        ({"event": "moonrise", "latitude": 0, "longitude": 0}, "unknown solar event"),
        ({"event": "sunrise", "latitude": 91, "longitude": 0}, "latitude"),
        ({"event": "sunrise", "latitude": 0, "longitude": -181}, "longitude"),
        ({"event": "sunrise", "latitude": "north", "longitude": 0}, "latitude"),
        ({"event": "sunrise", "latitude": 0, "longitude": 0, "lat": 1}, "unknown argument"),
    ]:
        with pytest.raises(InvalidTriggerError, match=message) as info:
            build_trigger("solar", **arguments)
        assert isinstance(info.value, BeatxError)


def test_beat_schedule_solar_entries_become_solar_triggers() -> None:
    trigger = convert_schedule("lights", solar("sunset", 48.85, 2.35))
    assert trigger == SolarTrigger("sunset", 48.85, 2.35)
    manager = JobManager(MemoryStore())
    entries = {"lights": {"task": "home.tasks.lights_on", "schedule": solar("sunset", 48.85, 2.35)}}
    assert import_beat_schedule(manager, entries) == ["lights"]
    job = manager.get_job("lights")
    assert job is not None and job.trigger == trigger
    with pytest.raises(ConfigurationError, match="'broken'.*solar"):
        convert_schedule("broken", solar.__new__(solar))


def test_a_missing_ephem_is_a_clear_beatx_error() -> None:
    code = (
        "import sys; sys.modules['ephem'] = None\n"
        "import beatx\n"
        "try:\n"
        "    beatx.SolarTrigger('sunrise', 1, 2)\n"
        "except beatx.InvalidTriggerError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'beatx[solar]'" in out
