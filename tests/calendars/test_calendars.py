"""The calendar value, its stored form, and where calendars are declared (YAML,
``beat_schedule``)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

import pytest

from beatx.calendars import CALENDAR_STATE_VERSION, ExclusionCalendar, calendar_from_dict, calendar_to_dict
from beatx.config import SchedulerConfig
from beatx.errors import ConfigurationError, InvalidCalendarError, SerializationError
from beatx.exclusion import ExcludingTrigger
from beatx.scheduler import Scheduler
from beatx.stores.memory import MemoryStore
from beatx.testing import FakeClock
from beatx.triggers import CronTrigger


def test_reasons_name_the_calendar_and_the_rule() -> None:
    calendar = ExclusionCalendar(
        name="ops",
        dates=["2026-12-24"],
        date_ranges=[("2026-08-01", "2026-08-15")],
        weekdays=["Sunday"],
        windows=["* 0-5 * * *"],
        holidays=["fr"],
    )
    assert calendar.day_reason(date(2026, 12, 24)) == "ops: 2026-12-24"
    assert calendar.day_reason(date(2026, 8, 15)) == "ops: 2026-08-01 to 2026-08-15"
    assert calendar.day_reason(date(2026, 3, 1)) == "ops: Sunday"
    assert calendar.day_reason(date(2026, 12, 25)) == "ops: Christmas Day (FR)"
    assert calendar.day_reason(date(2026, 12, 23)) is None
    assert calendar.excluded_reason(datetime(2026, 12, 23, 5, 59)) == "ops: window '* 0-5 * * *'"
    assert calendar.excluded_reason(datetime(2026, 12, 23, 6, 0)) is None


def test_subdivision_holidays() -> None:
    bavaria = ExclusionCalendar(name="bavaria", holidays=["de-by"])
    assert bavaria.holidays == ("DE-BY",)
    # Epiphany is a public holiday in Bavaria, not in the whole of Germany.
    assert bavaria.day_reason(date(2026, 1, 6)) == "bavaria: Epiphany (DE-BY)"
    assert ExclusionCalendar(name="de", holidays=["DE"]).day_reason(date(2026, 1, 6)) is None
    with pytest.raises(InvalidCalendarError, match="no public holidays for 'FR-67'"):
        ExclusionCalendar(name="c", holidays=["FR-67"])


def test_the_stored_form_round_trips_with_a_version() -> None:
    calendar = ExclusionCalendar(
        name="c",
        description="d",
        dates=["2026-01-01"],
        weekdays=[5, "sun"],
        windows=["0  3 * *  *"],
        holidays=["US-CA"],
    )
    data = calendar_to_dict(calendar)
    assert data["version"] == CALENDAR_STATE_VERSION
    assert (
        data["weekdays"] == ["sat", "sun"]
        and data["windows"] == ["0 3 * * *"]
        and data["holidays"] == ["US-CA"]
    )
    assert calendar_from_dict(data) == calendar
    with pytest.raises(SerializationError, match="upgrade beatx"):
        calendar_from_dict({**data, "version": CALENDAR_STATE_VERSION + 1})
    with pytest.raises(InvalidCalendarError, match="unknown key"):
        calendar_from_dict({**data, "weekday": ["mon"]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "calendar name"),
        ({"name": "a b"}, "calendar name"),
        ({"name": "c", "dates": ["2026-02-30"]}, "dates: expected an ISO date"),
        ({"name": "c", "dates": "2026-01-01"}, "dates: expected a list"),
        ({"name": "c", "date_ranges": [("2026-02-02", "2026-02-01")]}, "is before"),
        ({"name": "c", "weekdays": ["weekend"]}, "weekdays"),
        ({"name": "c", "windows": ["0 3 * *"]}, "five cron fields"),
        ({"name": "c", "windows": ["0 25 * * *"]}, "hour field"),
        ({"name": "c", "holidays": ["Atlantis"]}, "country code"),
        ({"name": "c", "holidays": ["ZZ"]}, "no public holidays for 'ZZ'"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidCalendarError, match=message):
        ExclusionCalendar(**fields)  # type: ignore[arg-type]


def test_holidays_without_the_package_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "holidays", None)
    monkeypatch.setattr("beatx.calendars._TABLES", {})
    with pytest.raises(InvalidCalendarError, match=r"pip install 'beatx\[calendars\]'"):
        ExclusionCalendar(name="c", holidays=["DE"])


def test_excluding_trigger_is_not_stored() -> None:
    wrapped = ExcludingTrigger(CronTrigger("0 9 * * *", "UTC"), [ExclusionCalendar(name="c")])
    with pytest.raises(SerializationError):
        wrapped.to_dict()
    assert wrapped.excluded_reason(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert "except times c exclude (skipped)" in wrapped.describe()


YAML_LIKE = {
    "scheduler": {
        "calendars": [{"name": "we", "weekdays": ["sat", "sun"]}],
        "jobs": [
            {
                "id": "pay",
                "func": "tests.sample_tasks:record",
                "trigger": "cron",
                "expression": "0 9 1 * *",
                "exclude": ["we"],
                "on_excluded": "next_business_day",
            }
        ],
    }
}


def test_configuration_declares_calendars_before_jobs() -> None:
    config = SchedulerConfig.from_mapping(YAML_LIKE)
    assert config.calendars == (ExclusionCalendar(name="we", weekdays=["sat", "sun"]),)
    clock = FakeClock(datetime(2026, 7, 15, tzinfo=UTC))
    scheduler = Scheduler(config, store=MemoryStore(clock=clock), clock=clock)
    job = scheduler.get_job("pay")
    assert job is not None and job.exclude == ("we",) and job.on_excluded == "next_business_day"
    assert job.next_run_time == datetime(2026, 8, 3, 9, tzinfo=UTC)
    assert scheduler.get_calendar("we") == config.calendars[0]


def test_configuration_errors_name_the_calendar() -> None:
    with pytest.raises(ConfigurationError, match=r"calendars\[0\]: weekdays"):
        SchedulerConfig.from_mapping({"calendars": [{"name": "x", "weekdays": ["someday"]}]})
    with pytest.raises(ConfigurationError, match="used twice"):
        SchedulerConfig.from_mapping({"calendars": [{"name": "x"}, {"name": "x"}]})


def test_beat_schedule_entries_name_calendars_in_their_options() -> None:
    from beatx.celery.beat_schedule import plan_beat_schedule

    ((_, _, _, fields),) = plan_beat_schedule(
        {
            "pay": {
                "task": "t",
                "schedule": 60.0,
                "options": {"queue": "q", "beatx_exclude": ["we"], "beatx_on_excluded": "next_business_day"},
            }
        }
    )
    assert fields["exclude"] == ["we"] and fields["on_excluded"] == "next_business_day"
    assert fields["options"] == {"queue": "q", "beatx_source": "beat_schedule"}
