"""The dispatcher protocol: how fires leave the scheduler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from beatx.errors import LeaseLostError, PermanentDispatchError, TransientDispatchError
from beatx.jobs import Fire
from beatx.stores.base import QueuedMessage

__all__ = ["Dispatcher", "MessageRenderer", "Revoker", "is_transient", "lease_lost"]

#: Exception class names (anywhere in an error's MRO) that mean "the broker or the network is
#: unavailable or slow now": kombu's and py-amqp's connection errors, redis-py's connection,
#: timeout and error replies (OOM, READONLY, LOADING during a failover), and the OS's.
_TRANSIENT_NAMES = frozenset(
    {
        "OperationalError",
        "ConnectionError",
        "TimeoutError",
        "RecoverableConnectionError",
        "ChannelError",
        "ConnectionForced",
        "ResponseError",
        "BusyLoadingError",
        "ReadOnlyError",
        "OutOfMemoryError",
    }
)


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


@runtime_checkable
class MessageRenderer(Protocol):
    """A dispatcher that can also build its fires' messages without sending them, for a store
    that pushes them in the same step as the fires' write-back (the atomic fire)."""

    def broker_server(self) -> str | None:
        """The broker's Redis server (``host:port`` or ``unix:<path>``, loopback names made
        one), or None when :meth:`render` cannot build messages for a store to push.

        :raises TransientDispatchError: the broker cannot be reached now."""
        ...

    def render(self, fires: Sequence[Fire]) -> Sequence[QueuedMessage | BaseException | None]:
        """One entry per fire: its message; None for a fire that must be dispatched instead;
        or the error that stopped it (as :meth:`Dispatcher.dispatch` reports errors)."""
        ...


@runtime_checkable
class Revoker(Protocol):
    """A dispatcher that can also revoke fires it sent (``overlap="cancel_other"`` and
    ``"terminate_other"``)."""

    def revoke(self, task_ids: Sequence[str], *, terminate: bool) -> None:
        """Ask the workers not to run ``task_ids`` (and, with ``terminate``, to kill those
        already running). Best effort: raises only what the broker raised."""
        ...


def lease_lost(remaining: int) -> list[BaseException | None]:
    """The results of fires left unsent because the guard said the lease is gone."""
    error = LeaseLostError("this beat lost its leader lease; the fire was not sent")
    return [error] * remaining


def is_transient(error: BaseException) -> bool:
    """Whether a dispatch error is worth retrying (the broker or network is down or slow),
    as opposed to a fire that can never be sent as it is (an encoding, type or value error,
    an unknown option): the engine retries the first kind with backoff and marks the job of
    the second kind FAILED.

    :class:`TransientDispatchError` and :class:`PermanentDispatchError` say it explicitly;
    otherwise an :class:`OSError` or any exception with a connection, timeout or error-reply
    class of kombu, py-amqp or redis-py in its MRO is transient, and everything else permanent.
    """
    if isinstance(error, TransientDispatchError | LeaseLostError):
        return True
    if isinstance(error, PermanentDispatchError):
        return False
    if isinstance(error, OSError):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(error).__mro__)
