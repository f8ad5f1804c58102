"""Where exclusion calendars are kept: the :class:`CalendarStorage` protocol.

Every store keeps its calendars beside its jobs and hands them out as ``store.calendars``
(memory: :mod:`beatx.stores.calendar_memory`, Redis: :mod:`beatx.stores.calendar_redis`,
Django: :mod:`django_beatx.calendar_store`); one contract suite checks them all
(``tests/calendars/calendar_contract.py``). Whether a calendar is in use is the management
API's business (:meth:`beatx.JobManager.remove_calendar`), not the storage's.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from beatx.calendars import ExclusionCalendar
from beatx.errors import StoreError

__all__ = ["CalendarStorage", "calendar_storage_of"]


@runtime_checkable
class CalendarStorage(Protocol):
    """Named exclusion calendars, stored as :func:`beatx.calendars.calendar_to_dict` writes
    them (a format version in each)."""

    def put_calendar(self, calendar: ExclusionCalendar) -> None:
        """Add the calendar, or replace the one with its name."""

    def get_calendar(self, name: str) -> ExclusionCalendar | None:
        """The calendar with this name, or None."""

    def get_calendars(self) -> list[ExclusionCalendar]:
        """Every calendar, by name."""

    def remove_calendar(self, name: str) -> bool:
        """Remove the calendar; returns whether it existed."""

    def calendars_version(self) -> str:
        """A value that changes whenever a calendar is put or removed (a beat compares it to
        know when to read the calendars again)."""


def calendar_storage_of(store: Any) -> CalendarStorage:
    """The calendars of a job store (its ``calendars`` attribute).

    :raises StoreError: for a store that keeps no calendars.
    """
    storage = getattr(store, "calendars", None)
    if not isinstance(storage, CalendarStorage):
        raise StoreError(
            f"{type(store).__name__} keeps no exclusion calendars (it has no 'calendars' storage)"
        )
    return storage
