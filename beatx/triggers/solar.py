"""Solar triggers: fire at sunrise, sunset, dawn, dusk or solar noon at a place.

The events, horizons and ``use_center`` flags are those of Celery's
``celery.schedules.solar``, computed by ``ephem`` (``pip install 'beatx[solar]'``), so a
``beat_schedule`` entry moves to beatx unchanged. ``ephem`` is imported when a solar trigger is
built, never by ``import beatx``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from beatx.errors import InvalidTriggerError, SerializationError
from beatx.triggers.base import STATE_VERSION, Trigger, check_state, require_aware

__all__ = ["SOLAR_EVENTS", "SolarTrigger"]

#: event -> (ephem horizon, ephem Observer method, use_center), as in celery.schedules.solar.
SOLAR_EVENTS: dict[str, tuple[str, str, bool]] = {
    "dawn_astronomical": ("-18", "next_rising", True),
    "dawn_nautical": ("-12", "next_rising", True),
    "dawn_civil": ("-6", "next_rising", True),
    "sunrise": ("-0:34", "next_rising", False),
    "solar_noon": ("0", "next_transit", False),
    "sunset": ("-0:34", "next_setting", False),
    "dusk_civil": ("-6", "next_setting", True),
    "dusk_nautical": ("-12", "next_setting", True),
    "dusk_astronomical": ("-18", "next_setting", True),
}
#: Days searched for an event that does not happen every day (polar day or night).
MAX_SEARCH_DAYS = 2 * 366
_EPHEM_EPOCH = datetime(1899, 12, 31, 12, tzinfo=UTC)  # ephem.Date(0)


def _ephem() -> Any:
    try:
        import ephem
    except ImportError as exc:
        raise InvalidTriggerError(
            "solar triggers need the ephem package: pip install 'beatx[solar]'"
        ) from exc
    return ephem


def _coordinate(value: Any, name: str, limit: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidTriggerError(f"solar {name} must be a number of degrees, got {value!r}")
    if not -limit <= value <= limit:
        raise InvalidTriggerError(f"solar {name} must be between -{limit} and {limit} degrees, got {value!r}")
    return float(value)


class SolarTrigger(Trigger):
    """Fires at a solar event at ``latitude`` / ``longitude`` (degrees, north and east positive).

    ``event`` is one of Celery's: ``dawn_astronomical``, ``dawn_nautical``, ``dawn_civil``,
    ``sunrise``, ``solar_noon``, ``sunset``, ``dusk_civil``, ``dusk_nautical``,
    ``dusk_astronomical``. Sunrise and sunset are when the sun's upper limb crosses 0°34'
    below the horizon; dawn and dusk when its centre crosses -6° (civil), -12° (nautical) or
    -18° (astronomical), with no atmospheric pressure, at sea level. Fire times are rounded to
    the second. Where an event does not happen on a day (polar day or night) the next day that
    has it is used. Needs ``pip install 'beatx[solar]'`` (ephem).
    """

    kind = "solar"
    __slots__ = ("event", "latitude", "longitude")

    def __init__(self, event: str, latitude: float, longitude: float) -> None:
        if event not in SOLAR_EVENTS:
            raise InvalidTriggerError(
                f"unknown solar event {event!r}; expected one of {', '.join(sorted(SOLAR_EVENTS))}"
            )
        self.event: str = event
        self.latitude: float = _coordinate(latitude, "latitude", 90)
        self.longitude: float = _coordinate(longitude, "longitude", 180)
        _ephem()

    def _event_after(self, ephem: Any, start: datetime) -> datetime | None:
        horizon, method, use_center = SOLAR_EVENTS[self.event]
        observer = ephem.Observer()
        observer.lat = str(self.latitude)
        observer.lon = str(self.longitude)
        observer.elev = 0
        observer.horizon = horizon
        observer.pressure = 0
        sun = ephem.Sun()
        kwargs = {"use_center": True} if use_center else {}
        moment = ephem.Date(start.astimezone(UTC).replace(tzinfo=None))
        observer.date = moment
        for _ in range(MAX_SEARCH_DAYS):
            try:
                found = getattr(observer, method)(sun, start=moment, **kwargs)
            except ephem.CircumpolarError:
                moment = observer.next_antitransit(sun, start=moment)
                continue
            return _EPHEM_EPOCH + timedelta(days=float(found))
        return None

    def next_fire_time(self, after: datetime) -> datetime | None:
        require_aware(after)
        ephem = _ephem()
        # An event up to half a second before ``after`` may round to a fire after it.
        start = after - timedelta(seconds=1)
        for _ in range(3):
            try:
                event = self._event_after(ephem, start)
            except (OverflowError, ValueError):
                return None
            if event is None:
                return None
            fire = (event + timedelta(microseconds=500_000)).replace(microsecond=0)
            if fire > after:
                return fire
            # The event rounds to ``after`` or before it: look past it.
            start = event + timedelta(minutes=1)
        return None

    def describe(self) -> str:
        return (
            f"at {self.event.replace('_', ' ')} at latitude {self.latitude:g}, longitude {self.longitude:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "event": self.event,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SolarTrigger:
        check_state(data, cls.kind)
        missing = [key for key in ("event", "latitude", "longitude") if key not in data]
        if missing:
            raise SerializationError(f"solar trigger: missing {', '.join(missing)}")
        return cls(data["event"], data["latitude"], data["longitude"])

    def _key(self) -> tuple[str, float, float]:
        return (self.event, self.latitude, self.longitude)

    def __repr__(self) -> str:
        return f"SolarTrigger({self.event!r}, latitude={self.latitude:g}, longitude={self.longitude:g})"
