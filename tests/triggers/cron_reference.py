"""A brute-force cron oracle that shares no code with ``beatx.triggers.cron``.

It walks the UTC minutes after ``after`` one by one and applies the brief's daylight-saving
rule literally. A UTC minute ``t`` is a fire when, with ``w`` the local wall time of ``t``:

* wildcard job (minute or hour field starts with ``*``): ``w`` matches the fields;
* fixed-time job: ``w`` matches and ``t`` is in the first pass (``fold == 0``), or ``t`` is
  the first instant after a gap (the wall clock jumped forward between ``t - 1 minute`` and
  ``t``) and some wall minute inside the skipped gap matches (all of them collapse into one
  fire at ``t``).

Only two shortcuts keep it fast, both of which provably skip no fire: a whole UTC day is
skipped when none of the local dates it can touch (the day before, the day, the day after)
matches the date fields, and within a day a run of minutes is skipped up to the next local
hour when the local hour does not match and the UTC offset stays the same across the run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
ALIASES = {
    "@every_minute": "* * * * *",
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MINUTE = timedelta(minutes=1)


def _number(text: str, names: list[str] | None, offset: int) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + offset
    return int(text)


def expand(text: str, low: int, high: int, names: list[str] | None = None, offset: int = 0) -> set[int]:
    """Expand one cron field (no validation: the engine's tests cover errors)."""
    out: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = _number(a, names, offset), _number(b, names, offset)
        else:
            first = _number(base, names, offset)
            last = high if step else first
        out.update(range(first, last + 1, int(step or 1)))
    return out


class Fields:
    def __init__(self, expression: str) -> None:
        expression = ALIASES.get(expression.strip().lower(), expression)
        minute, hour, dom, month, dow = expression.split()
        self.minutes = expand(minute, 0, 59)
        self.hours = expand(hour, 0, 23)
        self.doms = expand(dom, 1, 31)
        self.months = expand(month, 1, 12, MONTHS, 1)
        # Day-of-week runs 0-7 ("a/n" means "a-7/n"); 7 is Sunday.
        self.dows = {d % 7 for d in expand(dow, 0, 7, DAYS)}
        self.day_or = not (dom.startswith("*") or dow.startswith("*"))
        self.wildcard = minute.startswith("*") or hour.startswith("*")

    def date_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        cron_dow = d.isoweekday() % 7
        if self.day_or:
            return d.day in self.doms or cron_dow in self.dows
        return d.day in self.doms and cron_dow in self.dows

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and wall.hour in self.hours and self.date_matches(wall.date())


def _wall(t: datetime, tz: tzinfo) -> datetime:
    return t.astimezone(tz)


def reference_next(
    expression: str | Fields, tz: tzinfo, after: datetime, *, years: int = 5
) -> datetime | None:
    """The first fire strictly after ``after`` (an aware UTC datetime), or None within ``years``."""
    fields = expression if isinstance(expression, Fields) else Fields(expression)
    start = after.astimezone(UTC)
    t = start.replace(second=0, microsecond=0) + MINUTE
    limit = start + timedelta(days=366 * years)
    checked_day: date | None = None
    while t <= limit:
        if t.date() != checked_day:
            checked_day = t.date()
            if not any(fields.date_matches(checked_day + timedelta(days=k)) for k in (-1, 0, 1)):
                t = datetime(checked_day.year, checked_day.month, checked_day.day, tzinfo=UTC) + timedelta(
                    days=1
                )
                continue
        wall = _wall(t, tz)
        naive = wall.replace(tzinfo=None, fold=0)
        if fields.matches(wall) and (fields.wildcard or wall.fold == 0):
            return t
        if not fields.wildcard:
            previous = _wall(t - MINUTE, tz).replace(tzinfo=None, fold=0)
            skipped = previous + MINUTE
            while skipped < naive:  # the wall clock jumped: these minutes never happened
                if fields.matches(skipped):
                    return t
                skipped += MINUTE
        if wall.hour not in fields.hours:
            # Minutes up to the next local hour share this non-matching hour; when the offset
            # is the same at both ends there is no gap in between either, so none can fire.
            jump = t + timedelta(minutes=60 - wall.minute)
            if _wall(jump - MINUTE, tz).utcoffset() == wall.utcoffset():
                t = jump
                continue
        t += MINUTE
    return None


# -- H (Jenkins-style hashed values), read from docs/concepts/triggers.md --------------------

H_RANGES = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 28),
    "month": (1, 12),
    "day-of-week": (0, 6),
}
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


def reference_hash(key: str, field: str, index: int) -> int:
    import hashlib

    return int(hashlib.sha256((key + "\0" + field + "\0" + str(index)).encode()).hexdigest()[:16], 16)


def reference_expand_h(expression: str, key: str) -> str:
    """Every H item of a five-field expression written out, as the documentation says."""
    out = []
    for name, text in zip(FIELD_NAMES, expression.split(), strict=True):
        items = []
        for index, item in enumerate(text.split(",")):
            if not item.upper().startswith("H") or (len(item) > 1 and item[1] not in "(/"):
                items.append(item)
                continue
            h = reference_hash(key, name, index)
            low, high = H_RANGES[name]
            body, _, step = item[1:].partition("/")
            if body:
                low, high = (int(x) for x in body.strip("()").split("-"))
            if not step:
                items.append(str(low + h % (high - low + 1)))
            else:
                start = low + h % min(int(step), high - low + 1)
                items.append(f"{start}-{high}/{step}")
        out.append(",".join(items))
    return " ".join(out)
