"""Backfill: send the fires a job would have sent between two moments, each with the task id
its nominal time always has, and never send a fire of an earlier backfill again.

The store keeps, per job, the ranges earlier backfills covered (a small meta value). A
backfill sends the fire times of its range outside those ranges, then records its range; a
range only partly sent (the broker failed midway) is recorded up to its last sent fire. Two
backfills racing, or a fire the beat also sent on schedule, carry the same task id, and the
worker-side duplicate guard (``beatx_dedupe``) runs it once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from beatx.errors import InvalidJobError
from beatx.triggers.base import Trigger

__all__ = [
    "BACKFILL_OVERLAPS",
    "MAX_BACKFILL_FIRES",
    "BackfillResult",
    "backfill_key",
    "covered_ranges",
    "fire_times_between",
    "record_range",
]

#: The most fires one backfill sends; a longer range is refused (split it).
MAX_BACKFILL_FIRES = 10_000
#: How many covered ranges a job keeps; the oldest are forgotten past it (a fire of a
#: forgotten range sent again keeps its task id: the duplicate guard drops it).
MAX_RANGES = 100
#: ``overlap`` values a backfill takes: ``allow_all`` sends every fire at once, ``skip``
#: sends none while a run of the job is in flight.
BACKFILL_OVERLAPS = ("allow_all", "skip")

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillResult:
    """What one backfill did."""

    job_id: str
    #: Nominal times of the fires sent, oldest first, and their task ids.
    sent: tuple[datetime, ...] = ()
    task_ids: tuple[str, ...] = ()
    #: Fires of the range an earlier backfill had sent (not sent again).
    already_sent: int = 0
    #: Fires not sent because a run was in flight (``overlap="skip"``).
    skipped: int = 0


def backfill_key(job_id: str) -> str:
    """The store's meta key of the ranges a job's backfills covered."""
    return "backfill:" + hashlib.sha256(job_id.encode()).hexdigest()[:40]


def fire_times_between(trigger: Trigger, start: datetime, end: datetime) -> list[datetime]:
    """The fire times of ``trigger`` from ``start`` to ``end``, both included.

    :raises InvalidJobError: for a range that ends before it starts, or that holds more
        than :data:`MAX_BACKFILL_FIRES` fires.
    """
    if end < start:
        raise InvalidJobError(f"backfill: end {end.isoformat()} is before start {start.isoformat()}")
    times: list[datetime] = []
    current = trigger.next_fire_time(start - _MICROSECOND)
    while current is not None and current <= end:
        if len(times) >= MAX_BACKFILL_FIRES:
            raise InvalidJobError(
                f"backfill: more than {MAX_BACKFILL_FIRES} fires from {start.isoformat()} to "
                f"{end.isoformat()}; split the range"
            )
        times.append(current)
        current = trigger.next_fire_time(current)
    return times


def covered_ranges(stored: str | None) -> list[tuple[datetime, datetime]]:
    """The ranges a meta value records (an unreadable value records none)."""
    try:
        pairs = json.loads(stored or "[]")
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in pairs]
    except (ValueError, TypeError):
        return []


def record_range(ranges: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime) -> str:
    """The meta value with ``[start, end]`` added (overlapping ranges merged, the newest
    :data:`MAX_RANGES` kept)."""
    merged: list[tuple[datetime, datetime]] = []
    for low, high in sorted([*ranges, (start, end)]):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return json.dumps([[low.isoformat(), high.isoformat()] for low, high in merged[-MAX_RANGES:]])
