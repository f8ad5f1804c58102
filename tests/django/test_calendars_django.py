"""The calendar storage contract on the Django store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from beatx.stores.calendar_base import CalendarStorage, calendar_storage_of
from django_beatx.store import DjangoStore
from tests.calendars.calendar_contract import CalendarStorageContract
from tests.django.conftest import postgres_marks


@pytest.mark.django_db(databases=["default"])
class TestDjangoCalendarsOnSQLite(CalendarStorageContract):
    @pytest.fixture
    def storage(self) -> CalendarStorage:
        return calendar_storage_of(DjangoStore(using="default"))


@pytest.mark.parametrize("_pg", [pytest.param(None, marks=postgres_marks())])
class TestDjangoCalendarsOnPostgres(CalendarStorageContract):
    @pytest.fixture
    def storage(self, postgres_available: None, _pg: None) -> CalendarStorage:
        return calendar_storage_of(DjangoStore(using="postgres"))
