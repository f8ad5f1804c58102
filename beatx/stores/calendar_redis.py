"""Exclusion calendars in Redis, beside a :class:`beatx.stores.redis.RedisStore`'s jobs.

Keys, under the store's prefix: ``{prefix}calendars`` (a hash: name -> the calendar as JSON,
with its format version) and ``{prefix}calendars:version`` (a counter bumped in the same
transaction as each change).
"""

from __future__ import annotations

import json

from beatx.calendars import ExclusionCalendar, calendar_from_dict, calendar_to_dict
from beatx.errors import SerializationError
from beatx.stores.redis_common import SharedClient

__all__ = ["CALENDARS_KEY", "CALENDARS_VERSION_KEY", "RedisCalendarStorage"]

CALENDARS_KEY = "{prefix}calendars"
CALENDARS_VERSION_KEY = "{prefix}calendars:version"


class RedisCalendarStorage:
    """The calendars of one Redis store (same client, same key prefix)."""

    def __init__(self, shared: SharedClient, *, key_prefix: str) -> None:
        self._shared = shared
        self._key = CALENDARS_KEY.format(prefix=key_prefix)
        self._version_key = CALENDARS_VERSION_KEY.format(prefix=key_prefix)

    def put_calendar(self, calendar: ExclusionCalendar) -> None:
        data = json.dumps(calendar_to_dict(calendar), separators=(",", ":"))
        with self._shared.errors(f"put calendar {calendar.name!r}"):
            pipe = self._shared.client.pipeline(transaction=True)
            pipe.hset(self._key, calendar.name, data)
            pipe.incr(self._version_key)
            pipe.execute()

    def get_calendar(self, name: str) -> ExclusionCalendar | None:
        with self._shared.errors(f"read calendar {name!r}"):
            raw = self._shared.client.hget(self._key, name)
        return None if raw is None else _read(name, raw)

    def get_calendars(self) -> list[ExclusionCalendar]:
        with self._shared.errors("read calendars"):
            raw = self._shared.client.hgetall(self._key)
        found = [_read(_text(name), value) for name, value in raw.items()]
        return sorted(found, key=lambda calendar: calendar.name)

    def remove_calendar(self, name: str) -> bool:
        with self._shared.errors(f"remove calendar {name!r}"):
            pipe = self._shared.client.pipeline(transaction=True)
            pipe.hdel(self._key, name)
            pipe.incr(self._version_key)
            removed, _version = pipe.execute()
        return bool(removed)

    def calendars_version(self) -> str:
        with self._shared.errors("read the calendars' version"):
            raw = self._shared.client.get(self._version_key)
        return "0" if raw is None else _text(raw)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read(name: str, raw: bytes | str) -> ExclusionCalendar:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SerializationError(f"calendar {name!r}: corrupt stored record: {exc}") from exc
    return calendar_from_dict(data)
