"""Exclusion calendars in memory, for :class:`beatx.stores.memory.MemoryStore`."""

from __future__ import annotations

import threading

from beatx.calendars import ExclusionCalendar, calendar_from_dict, calendar_to_dict

__all__ = ["MemoryCalendarStorage"]


class MemoryCalendarStorage:
    """Calendars in a dict, kept in their stored form (so what comes back was serialised
    and read back, as from the other stores)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calendars: dict[str, dict[str, object]] = {}
        self._version = 0

    def put_calendar(self, calendar: ExclusionCalendar) -> None:
        stored = calendar_to_dict(calendar)
        with self._lock:
            self._calendars[calendar.name] = stored
            self._version += 1

    def get_calendar(self, name: str) -> ExclusionCalendar | None:
        with self._lock:
            stored = self._calendars.get(name)
        return None if stored is None else calendar_from_dict(stored)

    def get_calendars(self) -> list[ExclusionCalendar]:
        with self._lock:
            stored = [self._calendars[name] for name in sorted(self._calendars)]
        return [calendar_from_dict(data) for data in stored]

    def remove_calendar(self, name: str) -> bool:
        with self._lock:
            if self._calendars.pop(name, None) is None:
                return False
            self._version += 1
            return True

    def calendars_version(self) -> str:
        with self._lock:
            return str(self._version)
