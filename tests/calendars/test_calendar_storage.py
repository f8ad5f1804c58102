"""The calendar storage contract on the memory and Redis stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from beatx.stores.calendar_base import CalendarStorage, calendar_storage_of
from beatx.stores.memory import MemoryStore
from beatx.stores.redis import RedisStore
from tests.calendars.calendar_contract import PLAIN, CalendarStorageContract


class TestMemoryCalendars(CalendarStorageContract):
    @pytest.fixture
    def storage(self) -> CalendarStorage:
        return calendar_storage_of(MemoryStore())


@pytest.mark.redis
class TestRedisCalendars(CalendarStorageContract):
    @pytest.fixture
    def storage(self, redis_url: str, key_prefix: str) -> Iterator[CalendarStorage]:
        store = RedisStore(redis_url, key_prefix=key_prefix)
        yield calendar_storage_of(store)
        store.close()


@pytest.mark.redis
def test_redis_calendars_are_under_the_store_prefix(redis_url: str, key_prefix: str) -> None:
    store = RedisStore(redis_url, key_prefix=key_prefix)
    other = RedisStore(redis_url, key_prefix=key_prefix + "other:")
    try:
        calendar_storage_of(store).put_calendar(PLAIN)
        assert calendar_storage_of(other).get_calendar(PLAIN.name) is None
        keys = {key if isinstance(key, str) else key.decode() for key in store._client.keys("*calendars*")}
        assert keys == {f"{key_prefix}calendars", f"{key_prefix}calendars:version"}
    finally:
        store.close()
        other.close()


def test_a_store_without_calendars_is_named() -> None:
    from beatx.errors import StoreError

    with pytest.raises(StoreError, match="object keeps no exclusion calendars"):
        calendar_storage_of(object())
