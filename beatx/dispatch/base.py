"""The dispatcher protocol: how fires leave the scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from beatx.jobs import Fire

__all__ = ["Dispatcher"]


@runtime_checkable
class Dispatcher(Protocol):
    """Sends fires to whatever runs them (Celery workers, the asyncio loop)."""

    def dispatch(self, fires: Sequence[Fire]) -> Sequence[BaseException | None]:
        """Send a batch of fires.

        Returns one entry per fire, in order: ``None`` when the fire was handed over, or the
        exception that stopped it. A fire that failed is not counted as run; the engine keeps
        the job due and tries again after a short delay, under the misfire rules.
        Must not raise for a single fire's failure.
        """
        ...
