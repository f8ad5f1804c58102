"""Cron next-fire cost: beatx ``CronTrigger`` against croniter, cronsim and Celery's crontab.

The same fixed expressions and the same starting instants (spread over a year, including both
daylight-saving transitions) for every library, in UTC and in Europe/Paris. One call is "the
next fire strictly after ``after``", from a parsed object where the library allows it:

- beatx: ``CronTrigger(expr, timezone=zone).next_fire_time(after)``;
- croniter: ``it.set_current(after_local)`` then ``it.get_next(datetime)`` on one iterator;
- cronsim: ``next(CronSim(expr, after_local))`` (its API parses per start time);
- Celery: ``crontab(...).remaining_delta(after_local)`` (the next time = last_run_at + delta).

The median per expression is reported, then the median and the worst over the expressions.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "0 3 * * *",
    "30 2 * * *",
    "15 1,13 * * *",
    "0 9 * * 1-5",
    "0 22 * * mon-fri",
    "*/15 8-18 * * 1-5",
    "0 0 1 * *",
    "0 12 15 * *",
    "0 0 1 1 *",
    "5 4 * * sun",
    "0 */2 * * *",
    "23 0-20/2 * * *",
    "0 6 1-7 * 1",
]
ZONES = {"utc": "UTC", "dst": "Europe/Paris"}


def _starts(zone: Any) -> list[datetime]:
    """Instants over 2026, with the two Paris transitions in, as aware datetimes in ``zone``."""
    base = datetime(2026, 1, 3, 7, 13, 21, tzinfo=UTC)
    starts = [base + timedelta(days=23 * i, hours=5 * i, minutes=7 * i) for i in range(16)]
    starts += [datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    return [s.astimezone(zone) for s in starts]


def _time(calls: list[Any], rounds: int) -> float:
    """Median seconds per call over ``rounds`` passes through ``calls``."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for call in calls:
            call()
        samples.append((time.perf_counter() - started) / len(calls))
    return statistics.median(samples)


def _beatx(expr: str, zone: Any, starts: list[datetime]) -> list[Any]:
    from beatx.triggers import CronTrigger

    trigger = CronTrigger(expr, timezone=zone)
    return [lambda a=a: trigger.next_fire_time(a) for a in starts]


def _croniter(expr: str, zone: Any, starts: list[datetime]) -> list[Any]:
    from croniter import croniter

    it = croniter(expr, starts[0])

    def call(a: datetime) -> Any:
        it.set_current(a, force=True)
        return it.get_next(datetime)

    return [lambda a=a: call(a) for a in starts]


def _cronsim(expr: str, zone: Any, starts: list[datetime]) -> list[Any]:
    from cronsim import CronSim

    return [lambda a=a: next(CronSim(expr, a)) for a in starts]


def _celery(expr: str, zone: Any, starts: list[datetime]) -> list[Any]:
    from celery import Celery
    from celery.schedules import crontab

    app = Celery("bench-cron", set_as_current=False)
    app.conf.timezone = str(zone)
    app.conf.enable_utc = str(zone) == "UTC"
    minute, hour, dom, month, dow = expr.split()
    schedule = crontab(minute, hour, dow, dom, month, app=app)

    def call(a: datetime) -> Any:
        last, delta, _ = schedule.remaining_delta(a, tz=zone)
        return last + delta

    return [lambda a=a: call(a) for a in starts]


LIBRARIES = {"beatx": _beatx, "croniter": _croniter, "cronsim": _cronsim, "celery crontab": _celery}


def measure(rounds: int = 30) -> dict[str, Any]:
    """Child entry: per library and zone, median and worst µs per next-fire call."""
    out: dict[str, Any] = {}
    for zone_key, zone_name in ZONES.items():
        zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
        starts = _starts(zone)
        for library, build in LIBRARIES.items():
            per_expr = []
            errors = 0
            for expr in EXPRESSIONS:
                try:
                    calls = build(expr, zone, starts)
                    per_expr.append(_time(calls, rounds))
                except Exception:
                    errors += 1
            out[f"{library}/{zone_key}"] = {
                "median_us": statistics.median(per_expr) * 1e6 if per_expr else None,
                "max_us": max(per_expr) * 1e6 if per_expr else None,
                "min_us": min(per_expr) * 1e6 if per_expr else None,
                "expressions": len(per_expr),
                "errors": errors,
            }
    return out
