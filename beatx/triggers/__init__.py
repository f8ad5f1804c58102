"""Triggers: pure functions of time that say when a job fires."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from beatx.errors import InvalidTriggerError, SerializationError
from beatx.triggers.base import Trigger
from beatx.triggers.cron import CronTrigger
from beatx.triggers.date import DateTimeTrigger
from beatx.triggers.interval import IntervalTrigger
from beatx.triggers.rrule import RRuleTrigger
from beatx.triggers.solar import SolarTrigger

__all__ = [
    "CronTrigger",
    "DateTimeTrigger",
    "IntervalTrigger",
    "RRuleTrigger",
    "SolarTrigger",
    "Trigger",
    "build_trigger",
    "trigger_from_dict",
]

TRIGGER_TYPES: dict[str, type[Trigger]] = {
    "interval": IntervalTrigger,
    "cron": CronTrigger,
    "date": DateTimeTrigger,
    "rrule": RRuleTrigger,
    "solar": SolarTrigger,
}

#: The keyword arguments ``build_trigger`` (and YAML jobs) take for each kind.
TRIGGER_ARGUMENTS: dict[str, frozenset[str]] = {
    "interval": frozenset(
        {"seconds", "minutes", "hours", "days", "weeks", "start_now", "start_date", "end_date"}
    ),
    "cron": frozenset({"expression", "timezone", "start_date", "end_date", "extended", "seconds"}),
    "date": frozenset({"run_at", "timezone"}),
    "rrule": frozenset({"rule", "dtstart", "timezone", "exdates", "rdates"}),
    "solar": frozenset({"event", "latitude", "longitude"}),
}


def trigger_from_dict(data: dict[str, Any]) -> Trigger:
    """Rebuild any trigger from its :meth:`Trigger.to_dict` form."""
    kind = data.get("kind") if isinstance(data, dict) else None
    trigger_type = TRIGGER_TYPES.get(kind) if isinstance(kind, str) else None
    if trigger_type is None:
        raise SerializationError(f"unknown trigger kind {kind!r}; expected one of {', '.join(TRIGGER_TYPES)}")
    try:
        # Insertion order, not sorted: records written by one writer share it, and a
        # different order only costs a cache miss.
        key = tuple(data.items())
        hash(key)
    except TypeError:
        return trigger_type.from_dict(data)
    return _cached_trigger(trigger_type, key)


@lru_cache(maxsize=4096)
def _cached_trigger(trigger_type: type[Trigger], key: tuple[tuple[str, Any], ...]) -> Trigger:
    # Triggers are immutable values, so jobs rebuilt from storage on every claim can share
    # one object per stored form instead of parsing dates and expressions again.
    return trigger_type.from_dict(dict(key))


def build_trigger(kind: str, **arguments: Any) -> Trigger:
    """Build a trigger from its kind name and keyword arguments, as ``add_job`` and YAML
    configuration spell them: ``("interval", hours=1)``, ``("cron", expression="0 3 * * *")``,
    ``("date", run_date="2026-12-25")``, ``("rrule", rule="FREQ=WEEKLY;BYDAY=MO",
    dtstart="2026-01-05T09:00")``, ``("solar", event="sunset", latitude=48.85, longitude=2.35)``.

    :raises InvalidTriggerError: for an unknown kind or arguments the trigger does not take.
    """
    if kind == "date" and "run_date" in arguments:
        arguments["run_at"] = arguments.pop("run_date")
    allowed = TRIGGER_ARGUMENTS.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise InvalidTriggerError(
            f"unknown trigger {kind!r}; expected one of {', '.join(repr(k) for k in TRIGGER_ARGUMENTS)}"
        )
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise InvalidTriggerError(
            f"{kind} trigger: unknown argument(s) {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )
    try:
        return TRIGGER_TYPES[kind](**arguments)
    except TypeError as exc:
        raise InvalidTriggerError(f"{kind} trigger: {exc}") from exc
