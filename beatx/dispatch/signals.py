"""Celery's ``before_task_publish`` and ``after_task_publish`` signals, sent by the template
paths of :class:`beatx.dispatch.celery.CeleryDispatcher` as ``send_task`` sends them.

Tracing and error-reporting integrations (OpenTelemetry, Sentry) connect receivers to these
signals; a receiver of ``before_task_publish`` may add headers (a trace context) to the
message about to be published. The template paths therefore send ``before_task_publish`` for
each fire with that fire's own header and property dicts, and build the message from them
afterwards, and send ``after_task_publish`` for each fire once the broker took it (after the
batch's replies or confirms were read), with the same arguments ``send_task`` gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PublishSignals", "Published"]


@dataclass(frozen=True, slots=True)
class Published:
    """What ``after_task_publish`` is sent with, for one fire."""

    name: str
    body: Any
    headers: Mapping[str, Any]
    exchange: str
    routing_key: str


class PublishSignals:
    """Which of the two signals have receivers now, and sending them.

    :param retry_policy: the ``retry_policy`` argument of ``before_task_publish``.
    """

    def __init__(self, retry_policy: Mapping[str, Any]) -> None:
        from celery import signals

        self._before = signals.before_task_publish
        self._after = signals.after_task_publish
        self.retry_policy = dict(retry_policy)

    @property
    def active(self) -> bool:
        """Whether either signal has a receiver (then each fire is announced)."""
        return bool(self._before.receivers or self._after.receivers)

    def before(
        self,
        name: str,
        body: Any,
        headers: dict[str, Any],
        properties: dict[str, Any],
        exchange: str,
        routing_key: str,
        declare: list[Any],
    ) -> None:
        """Send ``before_task_publish``: its receivers may change ``headers`` and
        ``properties``, which the message is then built from."""
        if self._before.receivers:
            self._before.send(
                sender=name,
                body=body,
                exchange=exchange,
                routing_key=routing_key,
                declare=declare,
                headers=headers,
                properties=properties,
                retry_policy=self.retry_policy,
            )

    def after(self, published: list[Published]) -> None:
        """Send ``after_task_publish`` for each fire the broker took, in order."""
        if not self._after.receivers:
            return
        for fire in published:
            self._after.send(
                sender=fire.name,
                body=fire.body,
                headers=fire.headers,
                exchange=fire.exchange,
                routing_key=fire.routing_key,
            )
