"""Reading RedBeat's schedule from Redis (``beatx import redbeat URL``).

RedBeat (``celery-redbeat``) keeps, under its key prefix (``redbeat_key_prefix``, default
``redbeat:``):

- ``{prefix}:schedule``: a sorted set of entry keys, scored by the next run's Unix time;
- ``{prefix}{name}``: one hash per entry: ``definition`` (JSON: ``name``, ``task``, ``args``,
  ``kwargs``, ``options``, ``schedule``, ``enabled``) and ``meta`` (JSON: ``last_run_at``,
  ``total_run_count``); values of other types are objects tagged ``"__type__"``
  (``interval``, ``crontab``, ``rrule``, ``datetime``, ``weekday``);
- ``{prefix}:statics``: the names that came from ``beat_schedule`` in code.

Entries from ``beat_schedule`` are skipped by default: ``celery beat -S beatx`` imports
``beat_schedule`` itself at every start. ``rrule`` schedules are refused (re-create them as
:class:`~beatx.RRuleTrigger` jobs). Only reads are sent to Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from beatx.errors import ConfigurationError, StoreError
from beatx.importers.common import ImportedJob
from beatx.triggers import CronTrigger, IntervalTrigger, Trigger
from beatx.triggers.base import get_timezone

__all__ = ["RedBeatEntry", "convert_entry", "read_redbeat"]

DEFAULT_PREFIX = "redbeat:"


class Refused(Exception):
    """One RedBeat entry cannot be imported; the message says why."""


@dataclass(frozen=True, slots=True)
class RedBeatEntry:
    """One entry as RedBeat stores it (decoded JSON, ``__type__`` objects still dicts)."""

    key: str
    definition: dict[str, Any] | None
    meta: dict[str, Any]
    static: bool


def read_redbeat(url: str, *, prefix: str = DEFAULT_PREFIX) -> Iterator[RedBeatEntry]:
    """The entries RedBeat keeps in the Redis at ``url`` under ``prefix``, in schedule order.

    :raises StoreError: if Redis cannot be read.
    """
    try:
        import redis
    except ImportError as exc:
        raise ConfigurationError("importing from RedBeat needs redis-py: pip install 'beatx[redis]'") from exc
    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    except ValueError as exc:
        raise ConfigurationError(f"RedBeat URL {url!r}: {exc}") from exc
    try:
        keys = [str(key) for key in client.zrange(f"{prefix}:schedule", 0, -1)]
        statics = {str(name) for name in client.smembers(f"{prefix}:statics")}
        for key in keys:
            definition, meta = (
                None if value is None else str(value) for value in client.hmget(key, ["definition", "meta"])
            )
            name = key.removeprefix(prefix)
            yield RedBeatEntry(
                key=key,
                definition=_loads(definition),
                meta=_loads(meta) or {},
                static=name in statics,
            )
    except redis.RedisError as exc:
        raise StoreError(f"cannot read RedBeat's schedule at {url!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"__unreadable__": text}


def convert_entry(entry: RedBeatEntry, *, timezone: str | tzinfo, now: datetime) -> ImportedJob:
    """A beatx job for one RedBeat entry. ``timezone`` is the Celery app's (RedBeat computes
    crontabs in it). An interval goes on from its last run (``last_run_at + every``), or from
    ``now`` if it never ran, so imported jobs do not all fire when the beat starts.

    :raises Refused: saying why the entry cannot be imported.
    """
    definition = entry.definition
    if not isinstance(definition, dict) or "__unreadable__" in definition:
        raise Refused(f"key {entry.key!r} holds no readable RedBeat definition")
    task = definition.get("task")
    if not isinstance(task, str) or not task:
        raise Refused("it names no task")
    name = str(definition.get("name") or entry.key)
    last_run_at = _datetime(entry.meta.get("last_run_at"))
    trigger = _trigger(definition.get("schedule"), timezone=timezone, last_run_at=last_run_at, now=now)
    args = definition.get("args") or []
    kwargs = definition.get("kwargs") or {}
    options = definition.get("options") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not isinstance(options, dict):
        raise Refused("args must be a list, kwargs and options objects")
    count = entry.meta.get("total_run_count") or 0
    return ImportedJob(
        name=name,
        task=task,
        trigger=trigger,
        args=tuple(args),
        kwargs=dict(kwargs),
        options=dict(options),
        paused=definition.get("enabled", True) is False,
        total_run_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
        last_run_at=last_run_at,
    )


def _trigger(
    schedule: Any, *, timezone: str | tzinfo, last_run_at: datetime | None, now: datetime
) -> Trigger:
    kind = schedule.get("__type__") if isinstance(schedule, dict) else None
    if kind == "interval":
        every = schedule.get("every")
        if isinstance(every, bool) or not isinstance(every, int | float) or every <= 0:
            raise Refused(f"interval schedule with every={every!r}")
        if schedule.get("relative"):
            # celery's relative interval: fire times on multiples of the interval since the epoch.
            step = timedelta(seconds=every)
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            return IntervalTrigger(seconds=every, start_date=epoch + ((now - epoch) // step) * step)
        anchor = last_run_at or now
        return IntervalTrigger(seconds=every, start_date=anchor, start_now=False)
    if kind == "crontab":
        fields = [
            _cron_field(schedule, "minute"),
            _cron_field(schedule, "hour"),
            _cron_field(schedule, "day_of_month"),
            _cron_field(schedule, "month_of_year"),
            _cron_field(schedule, "day_of_week"),
        ]
        if not fields[2].startswith("*") and not fields[4].startswith("*"):
            raise Refused(
                f"crontab {' '.join(fields)!r} restricts both day of month and day of week: celery "
                "requires both to match, cron (and beatx) either one; split it into two entries"
            )
        return CronTrigger(" ".join(fields), timezone=timezone)
    if kind == "rrule":
        raise Refused("rrule schedules are not converted: re-create the job with beatx.RRuleTrigger")
    raise Refused(f"cannot convert schedule {schedule!r}: beatx imports RedBeat interval and crontab entries")


def _cron_field(schedule: dict[str, Any], name: str) -> str:
    value = schedule.get(name, "*")
    if isinstance(value, list):
        text = ",".join(str(item) for item in value)
    else:
        text = str(value).replace(" ", "")
    if not text:
        raise Refused(f"crontab {name}={value!r} is not a cron field")
    return text


def _datetime(value: Any) -> datetime | None:
    """A RedBeat ``{"__type__": "datetime", ...}`` object as an aware datetime."""
    if not isinstance(value, dict) or value.get("__type__") != "datetime":
        return None
    zone = value.get("timezone", "UTC")
    tz: tzinfo
    if isinstance(zone, int | float) and not isinstance(zone, bool):
        tz = timezone(timedelta(seconds=zone))  # an offset in seconds
    else:
        try:
            tz = get_timezone(str(zone))
        except ValueError:
            return None
    try:
        return datetime(
            value["year"],
            value["month"],
            value["day"],
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
            tzinfo=tz,
        )
    except (KeyError, TypeError, ValueError):
        return None
