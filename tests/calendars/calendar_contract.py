"""The contract every calendar storage keeps (memory, Redis, Django on SQLite and PostgreSQL).

A subclass provides a ``storage`` fixture.
"""

from __future__ import annotations

from datetime import date

import pytest

from beatx.calendars import ExclusionCalendar
from beatx.stores.calendar_base import CalendarStorage

HOLIDAYS = ExclusionCalendar(
    name="fr-holidays",
    description="French public holidays and the summer break",
    dates=["2026-12-24"],
    date_ranges=[("2026-08-01", "2026-08-15")],
    weekdays=["sat", "sun"],
    windows=["* 0-5 * * *"],
    holidays=["FR"],
)
PLAIN = ExclusionCalendar(name="maintenance", windows=["0-29 3 * * SUN"])


class CalendarStorageContract:
    def test_is_a_calendar_storage(self, storage: CalendarStorage) -> None:
        assert isinstance(storage, CalendarStorage)

    def test_put_then_get_gives_the_same_value(self, storage: CalendarStorage) -> None:
        assert storage.get_calendar("fr-holidays") is None
        storage.put_calendar(HOLIDAYS)
        assert storage.get_calendar("fr-holidays") == HOLIDAYS
        assert storage.get_calendar("fr-holidays").day_reason(date(2026, 7, 14)) == (  # type: ignore[union-attr]
            "fr-holidays: National Day (FR)"
        )

    def test_put_replaces_by_name(self, storage: CalendarStorage) -> None:
        storage.put_calendar(HOLIDAYS)
        changed = ExclusionCalendar(name="fr-holidays", dates=["2027-01-01"])
        storage.put_calendar(changed)
        assert storage.get_calendar("fr-holidays") == changed
        assert [c.name for c in storage.get_calendars()] == ["fr-holidays"]

    def test_lists_by_name(self, storage: CalendarStorage) -> None:
        storage.put_calendar(PLAIN)
        storage.put_calendar(HOLIDAYS)
        assert storage.get_calendars() == [HOLIDAYS, PLAIN]

    def test_remove_says_whether_it_existed(self, storage: CalendarStorage) -> None:
        storage.put_calendar(PLAIN)
        assert storage.remove_calendar("maintenance") is True
        assert storage.remove_calendar("maintenance") is False
        assert storage.get_calendar("maintenance") is None
        assert storage.get_calendars() == []

    def test_version_moves_on_every_change(self, storage: CalendarStorage) -> None:
        seen = [storage.calendars_version()]
        storage.put_calendar(PLAIN)
        seen.append(storage.calendars_version())
        storage.put_calendar(ExclusionCalendar(name="maintenance", dates=["2026-01-01"]))
        seen.append(storage.calendars_version())
        storage.remove_calendar("maintenance")
        seen.append(storage.calendars_version())
        assert len(set(seen)) == len(seen), seen
        assert storage.calendars_version() == seen[-1]

    @pytest.mark.parametrize("name", ["a", "team.payroll:eu-1", "x" * 200])
    def test_names_round_trip(self, storage: CalendarStorage, name: str) -> None:
        storage.put_calendar(ExclusionCalendar(name=name, weekdays=[0]))
        assert storage.get_calendar(name) == ExclusionCalendar(name=name, weekdays=["mon"])
