"""Sends fires to Celery workers as ordinary task messages.

Each fire becomes ONE task message with the job's routing options, ``task_id`` = the fire's
deterministic id (:attr:`beatx.Fire.task_id`) and two extra headers, ``beatx_job_id`` and
``beatx_scheduled_at`` (ISO 8601, UTC), that the worker-side signal handlers of
:func:`beatx.celery.setup` use to record run state. Any worker with the task registered runs
it; workers need nothing from beatx to execute it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from beatx.dispatch.base import lease_lost
from beatx.jobs import Fire

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["DEFAULT_RETRY_POLICY", "JOB_ID_HEADER", "SCHEDULED_AT_HEADER", "CeleryDispatcher"]

logger = logging.getLogger("beatx.celery")

JOB_ID_HEADER = "beatx_job_id"
SCHEDULED_AT_HEADER = "beatx_scheduled_at"

#: kombu's publish retry policy for one message: short, so a broker outage costs a tick
#: about a second; the engine retries the fire later under the misfire rules.
DEFAULT_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def message_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The job options that go into the message: everything but beatx's own ``beatx_*`` keys."""
    return {key: value for key, value in options.items() if not key.startswith("beatx_")}


class CeleryDispatcher:
    """Publishes each fire as one Celery task message through one long-lived producer.

    The producer (and its broker connection) is acquired on the first dispatch and kept; it is
    dropped and acquired again after a connection error. A batch of fires is published in a
    loop on that producer, without a connection acquire per message.

    A broker outage never raises out of :meth:`dispatch`: the first connection error in a
    batch is returned for that fire and for every later fire of the batch (they are not
    attempted, so an outage costs one retry cycle per tick, not one per fire); the engine
    keeps those jobs due and tries again after its retry delay, under the misfire rules.

    :param app: the Celery app whose broker, routes and serializer settings are used.
    :param retry_policy: kombu's publish retry policy for one message (see
        :data:`DEFAULT_RETRY_POLICY`).
    :param retry: whether to retry a publish at all.
    """

    def __init__(
        self,
        app: Celery,
        *,
        retry: bool = True,
        retry_policy: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.retry = retry
        self.retry_policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None
        self.sent = 0

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        from kombu.exceptions import OperationalError

        errors: tuple[type[BaseException], ...] = (OperationalError, OSError, ConnectionError)
        if self._connection is not None:
            errors += tuple(self._connection.connection_errors) + tuple(self._connection.channel_errors)
        return errors

    def _get_producer(self) -> Any:
        if self._producer is None:
            connection = self.app.connection_for_write()
            try:
                self._producer = self.app.amqp.Producer(connection, auto_declare=False)
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._producer

    def _drop_producer(self) -> None:
        producer, connection = self._producer, self._connection
        self._producer = self._connection = None
        if producer is not None:
            try:
                producer.release()
            except Exception as exc:
                logger.debug("ignoring an error while releasing the producer: %r", exc)
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:
                logger.debug("ignoring an error while releasing the connection: %r", exc)

    def dispatch(
        self, fires: Sequence[Fire], *, guard: Callable[[], bool] | None = None
    ) -> list[BaseException | None]:
        """Publish one message per fire; see the class docstring for errors."""
        results: list[BaseException | None] = []
        with self._lock:
            for index, fire in enumerate(fires):
                if guard is not None and not guard():
                    results.extend(lease_lost(len(fires) - index))
                    return results
                try:
                    producer = self._get_producer()
                    self._send(producer, fire)
                except Exception as exc:
                    if isinstance(exc, self._connection_errors()):
                        logger.error(
                            "broker unavailable, %d fire(s) not sent (job=%s scheduled_at=%s): %s",
                            len(fires) - index,
                            fire.job_id,
                            fire.scheduled_at.isoformat(),
                            exc,
                        )
                        self._drop_producer()
                        results.extend([exc] * (len(fires) - index))
                        return results
                    logger.error(
                        "fire not sent job=%s scheduled_at=%s: %r",
                        fire.job_id,
                        fire.scheduled_at.isoformat(),
                        exc,
                    )
                    results.append(exc)
                else:
                    self.sent += 1
                    results.append(None)
        return results

    def _send(self, producer: Any, fire: Fire) -> None:
        job = fire.job
        options = message_options(job.options)
        headers = dict(options.pop("headers", None) or {})
        headers[JOB_ID_HEADER] = job.id
        headers[SCHEDULED_AT_HEADER] = fire.scheduled_at.isoformat()
        self.app.send_task(
            job.func_ref,
            args=list(job.args),
            kwargs=dict(job.kwargs),
            task_id=fire.task_id,
            producer=producer,
            headers=headers,
            retry=self.retry,
            retry_policy=self.retry_policy,
            **options,
        )

    def close(self) -> None:
        """Release the producer and its connection (a later dispatch acquires new ones)."""
        with self._lock:
            self._drop_producer()
