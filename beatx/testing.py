"""Test helpers, public so users can test their own schedules the way beatx does.

>>> clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
>>> clock.advance(seconds=30)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from beatx.dispatch.base import lease_lost
from beatx.errors import ConfigurationError
from beatx.jobs import Fire

__all__ = ["FakeClock", "RecordingDispatcher"]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float = 0, **units: float) -> datetime:
        """Move the clock forward by ``seconds`` (plus ``minutes=``, ``hours=``, ``days=``)."""
        step = timedelta(seconds=seconds, **units)
        if step < timedelta(0):
            raise ConfigurationError("a FakeClock only moves forward")
        self._now += step
        self._monotonic += step.total_seconds()
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (not earlier than now)."""
        return self.advance(seconds=(when - self._now).total_seconds())


class RecordingDispatcher:
    """A dispatcher that records fires instead of sending them.

    ``fail_jobs`` names jobs whose fires fail to dispatch, to test broker outages.
    """

    def __init__(self, *, fail_jobs: Sequence[str] = ()) -> None:
        self.fires: list[Fire] = []
        #: ``(task ids, terminate)`` of each :meth:`revoke` call.
        self.revoked: list[tuple[tuple[str, ...], bool]] = []
        self.fail_jobs = set(fail_jobs)
        self._lock = threading.Lock()

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        with self._lock:
            for index, fire in enumerate(fires):
                if guard is not None and not guard():
                    results.extend(lease_lost(len(fires) - index))
                    break
                if fire.job_id in self.fail_jobs:
                    results.append(ConnectionError(f"dispatch of {fire.job_id} refused"))
                else:
                    self.fires.append(fire)
                    results.append(None)
        return results

    def revoke(self, task_ids: Sequence[str], *, terminate: bool) -> None:
        """Record a revoke (``overlap="cancel_other"`` / ``"terminate_other"``)."""
        with self._lock:
            self.revoked.append((tuple(task_ids), terminate))

    def times(self, job_id: str) -> list[datetime]:
        """Scheduled times of the recorded fires of one job."""
        return [f.scheduled_at for f in self.fires if f.job_id == job_id]

    def clear(self) -> None:
        self.fires.clear()
