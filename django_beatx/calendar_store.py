"""Exclusion calendars in the Django database (:class:`django_beatx.models.ExclusionCalendar`),
for :class:`django_beatx.store.DjangoStore` (``store.calendars``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction

from beatx.calendars import ExclusionCalendar, calendar_from_dict, calendar_to_dict
from beatx.errors import BeatxError, SerializationError, StoreError
from django_beatx import models as m

__all__ = ["VERSION_KEY", "DjangoCalendarStorage", "calendar_from_row", "fill_calendar_row"]

#: The :class:`~django_beatx.models.MetaValue` that counts the changes to calendars.
VERSION_KEY = "calendars_version"


def calendar_from_row(row: m.ExclusionCalendar) -> ExclusionCalendar:
    """The calendar a row holds.

    :raises SerializationError: if the row's fields do not make a valid calendar.
    """
    try:
        return calendar_from_dict(
            {
                "name": row.name,
                "description": row.description,
                "dates": row.dates or [],
                "date_ranges": row.date_ranges or [],
                "weekdays": row.weekdays or [],
                "windows": row.windows or [],
                "holidays": row.holidays or [],
            }
        )
    except BeatxError as exc:
        raise SerializationError(f"calendar {row.name!r}: stored row is not a valid calendar: {exc}") from exc


def fill_calendar_row(row: m.ExclusionCalendar, calendar: ExclusionCalendar) -> None:
    """Write a calendar's fields into a row (in the form :func:`calendar_to_dict` writes)."""
    data = calendar_to_dict(calendar)
    row.name = calendar.name
    row.description = calendar.description
    for field in ("dates", "date_ranges", "weekdays", "windows", "holidays"):
        setattr(row, field, data[field])


class DjangoCalendarStorage:
    """The calendars of one database alias."""

    def __init__(self, *, using: str = "default") -> None:
        self.using = using

    def _rows(self) -> Any:
        return m.ExclusionCalendar.objects.using(self.using)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except DatabaseError as exc:
            raise StoreError(f"Django store (database {self.using!r}): {what} failed: {exc}") from exc

    def put_calendar(self, calendar: ExclusionCalendar) -> None:
        with self._errors(f"put calendar {calendar.name!r}"), transaction.atomic(using=self.using):
            row = self._rows().select_for_update().filter(pk=calendar.name).first()
            if row is None:
                row = m.ExclusionCalendar(name=calendar.name)
            fill_calendar_row(row, calendar)
            row.revision = (row.revision or 0) + 1
            row.save(using=self.using)
            self._bump()

    def get_calendar(self, name: str) -> ExclusionCalendar | None:
        with self._errors(f"read calendar {name!r}"):
            row = self._rows().filter(pk=name).first()
        return None if row is None else calendar_from_row(row)

    def get_calendars(self) -> list[ExclusionCalendar]:
        with self._errors("read calendars"):
            rows = list(self._rows().order_by("name"))
        return [calendar_from_row(row) for row in rows]

    def remove_calendar(self, name: str) -> bool:
        with self._errors(f"remove calendar {name!r}"), transaction.atomic(using=self.using):
            deleted, _ = self._rows().filter(pk=name).delete()
            if deleted:
                self._bump()
        return bool(deleted)

    def _bump(self) -> None:
        """Count one change, in the caller's transaction."""
        values = m.MetaValue.objects.using(self.using)
        row = values.select_for_update().filter(pk=VERSION_KEY).first()
        if row is None:
            values.create(key=VERSION_KEY, value="1")
        else:
            row.value = str(int(row.value or "0") + 1)
            row.save(using=self.using, update_fields=["value"])

    def calendars_version(self) -> str:
        with self._errors("read the calendars' version"):
            row = m.MetaValue.objects.using(self.using).filter(pk=VERSION_KEY).first()
        return "0" if row is None else row.value
