"""Next-fire cost of the richer recurrence triggers, in a daylight-saving zone (Europe/Paris).

- extended cron (``extended=True`` / ``seconds=True``): beatx ``CronTrigger`` beside croniter
  (``set_current`` + ``get_next`` on one iterator, seconds first via ``second_at_beginning``
  where the croniter version has it; an expression croniter refuses is reported as an error);
- RRULE: beatx ``RRuleTrigger`` beside plain dateutil (``rrule.after(local_after)`` on one
  parsed rule with an aware DTSTART, the way dateutil is normally used);
- exclusion calendars: cron triggers wrapped in an ``ExcludingTrigger`` with two calendars
  (French public holidays, weekends, a year-end range, a late-evening window), with ``skip`` and with
  ``next_business_day`` (no peer library has exclusion calendars: the dateutil row of the same
  run is the reference).

The same 18 starting instants as the cron scenario (both Paris transitions in). Median per
expression, then the median and worst over the expressions. ``python -m benchmarks.recurrence``
prints the figures (needs no Redis).
"""

from __future__ import annotations

import inspect
import json
import statistics
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.cron import _starts, _time

ZONE = "Europe/Paris"
EXTENDED = [
    ("0 9 L * *", False),
    ("0 9 L-3 * *", False),
    ("0 9 15W * *", False),
    ("0 9 LW * *", False),
    ("0 9 * * 5#3", False),
    ("0 9 * * 5L", False),
    ("30 2 * * 5L", False),
    ("*/10 * * * * *", True),
    ("0 30 2 * * *", True),
    ("15 0 9 L * *", True),
]
#: Cron triggers of the calendars rows, and their calendars (Europe/Paris).
CALENDAR_CRONS = ["0 9 * * *", "*/15 * * * *", "0 9 1 * *", "30 2 * * *", "0 9 * * MON", "0 */2 * * *"]


def _calendars() -> list[Any]:
    from beatx.calendars import ExclusionCalendar

    try:
        import holidays  # noqa: F401

        public = ["FR"]
    except ImportError:  # the 'calendars' extra is missing: the same calendars without holidays
        public = []
    return [
        ExclusionCalendar(
            name="fr-business",
            weekdays=["sat", "sun"],
            holidays=public,
            date_ranges=[("2026-12-24", "2026-12-31")],
        ),
        ExclusionCalendar(name="late", windows=["* 22-23 * * *"]),
    ]


RRULES = [
    ("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1", "2020-01-03T09:00"),
    ("FREQ=DAILY", "2020-01-01T02:30"),
    ("FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=8,17", "2020-01-06T08:00"),
    ("FREQ=HOURLY;INTERVAL=3", "2024-01-01T00:15"),
    ("FREQ=MINUTELY;INTERVAL=15", "2025-06-01T00:00"),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "2010-01-01T02:30"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "2020-01-31T23:00"),
    ("FREQ=DAILY;INTERVAL=2;BYHOUR=2;BYMINUTE=30", "2021-01-01T02:30"),
]


def _summary(per_expr: list[float], errors: int) -> dict[str, Any]:
    return {
        "median_us": statistics.median(per_expr) * 1e6 if per_expr else None,
        "max_us": max(per_expr) * 1e6 if per_expr else None,
        "expressions": len(per_expr),
        "errors": errors,
    }


def _croniter_calls(expr: str, seconds: bool, starts: list[datetime]) -> list[Any]:
    from croniter import croniter

    kwargs: dict[str, Any] = {}
    if seconds:
        if "second_at_beginning" not in inspect.signature(croniter.__init__).parameters:
            raise RuntimeError("this croniter has no seconds-first mode")
        kwargs["second_at_beginning"] = True
    it = croniter(expr, starts[0], **kwargs)

    def call(a: datetime) -> Any:
        it.set_current(a, force=True)
        return it.get_next(datetime)

    return [lambda a=a: call(a) for a in starts]


def measure(rounds: int = 30) -> dict[str, Any]:
    """Child entry: µs per next-fire call, median and worst over the expressions."""
    from dateutil.rrule import rrulestr

    from beatx.triggers import CronTrigger, RRuleTrigger

    zone = ZoneInfo(ZONE)
    starts = _starts(zone)
    out: dict[str, Any] = {}
    beatx_times, croniter_times, croniter_errors = [], [], 0
    for expr, seconds in EXTENDED:
        trigger = CronTrigger(expr, ZONE, extended=True, seconds=seconds)
        beatx_times.append(_time([lambda a=a, t=trigger: t.next_fire_time(a) for a in starts], rounds))
        try:
            croniter_times.append(_time(_croniter_calls(expr, seconds, starts), rounds))
        except Exception:
            croniter_errors += 1
    out["extended cron/beatx"] = _summary(beatx_times, 0)
    out["extended cron/croniter"] = _summary(croniter_times, croniter_errors)
    ours, theirs = [], []
    for rule, dtstart in RRULES:
        trigger = RRuleTrigger(rule, dtstart, ZONE)
        ours.append(_time([lambda a=a, t=trigger: t.next_fire_time(a) for a in starts], rounds))
        parsed = rrulestr(rule, dtstart=datetime.fromisoformat(dtstart).replace(tzinfo=zone))
        theirs.append(_time([lambda a=a, p=parsed: p.after(a) for a in starts], max(rounds // 10, 1)))
    out["rrule/beatx"] = _summary(ours, 0)
    out["rrule/dateutil"] = _summary(theirs, 0)
    from beatx.exclusion import ExcludingTrigger

    calendars = _calendars()
    for policy in ("skip", "next_business_day"):
        per_expr = []
        for expr in CALENDAR_CRONS:
            wrapped = ExcludingTrigger(CronTrigger(expr, ZONE), calendars, policy)  # type: ignore[arg-type]
            per_expr.append(_time([lambda a=a, t=wrapped: t.next_fire_time(a) for a in starts], rounds))
        out[f"calendars {policy}/beatx"] = _summary(per_expr, 0)
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
