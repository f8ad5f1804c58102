"""The dispatcher protocol: how fires leave the scheduler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from beatx.errors import LeaseLostError
from beatx.jobs import Fire

__all__ = ["Dispatcher", "lease_lost"]


@runtime_checkable
class Dispatcher(Protocol):
    """Sends fires to whatever runs them (Celery workers, the asyncio loop)."""

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> Sequence[BaseException | None]:
        """Send a batch of fires.

        Returns one entry per fire, in order: ``None`` when the fire was handed over, or the
        exception that stopped it. A fire that failed is not counted as run; the engine keeps
        the job due and tries again after a short delay, under the misfire rules.
        Must not raise for a single fire's failure.

        :param guard: called before each fire is sent; when it returns False, that fire and
            every later one are not sent and get a :class:`~beatx.LeaseLostError`. The engine
            passes the leader's lease check here, so a beat frozen in the middle of a batch
            sends nothing more once it wakes without its lease.
        """
        ...


def lease_lost(remaining: int) -> list[BaseException | None]:
    """The results of fires left unsent because the guard said the lease is gone."""
    error = LeaseLostError("this beat lost its leader lease; the fire was not sent")
    return [error] * remaining
