"""Events: what happened in a scheduler, for metrics, health panels and users' hooks.

>>> bus = EventBus()
>>> unsubscribe = bus.subscribe(print, kinds={EventKind.JOB_FIRED})

A listener that raises is logged and never disturbs the scheduler.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event", "EventBus", "EventKind", "Listener"]

logger = logging.getLogger("beatx.events")


class EventKind(enum.StrEnum):
    """The kinds of event a scheduler emits."""

    JOB_ADDED = "job_added"
    JOB_CHANGED = "job_changed"
    JOB_REMOVED = "job_removed"
    #: A fire was handed to the dispatcher. ``data``: ``task_id``, ``lateness`` (seconds).
    JOB_FIRED = "job_fired"
    #: Fires were dropped: later than the misfire grace time, or not caught up after an
    #: outage (``catchup``, ``catchup_window``, ``catchup_limit``). ``data``: ``count``,
    #: ``reason`` (``"misfire_grace_time"`` or ``"catchup"``).
    JOB_MISSED = "job_missed"
    #: Fires were skipped because max_instances runs were in flight. ``data``: ``count``.
    JOB_SKIPPED = "job_skipped"
    #: Fires were held back by the overlap policy (``buffer_one`` / ``buffer_all``) until a
    #: run ends; they keep their nominal time and task id. ``data``: ``count``, ``overlap``,
    #: ``running`` (runs in flight).
    JOB_BUFFERED = "job_buffered"
    #: Runs in flight were revoked before a new fire (``cancel_other`` / ``terminate_other``).
    #: ``data``: ``task_ids``, ``terminate``.
    JOB_REVOKED = "job_revoked"
    #: An outage's late fires were sent by the catch-up policy. ``data``: ``count`` (fires
    #: sent for it), ``coalesced`` (late fires merged into those), ``catchup`` (the policy).
    JOB_CAUGHT_UP = "job_caught_up"
    #: A run raised, a fire could not be dispatched, or the job could not be planned.
    #: ``data``: ``error``.
    JOB_FAILED = "job_failed"
    #: A run finished without error. ``data``: ``duration``.
    JOB_SUCCEEDED = "job_succeeded"
    #: An alert rule's condition started to hold (:mod:`beatx.alerts`). ``data``: ``kind``,
    #: ``details``.
    ALERT_RAISED = "alert_raised"
    #: An alert's condition ended. ``data``: ``kind``, ``since`` (when it was raised), ``details``.
    ALERT_RESOLVED = "alert_resolved"
    LEADER_ACQUIRED = "leader_acquired"
    LEADER_LOST = "leader_lost"
    #: One engine tick ran. ``data``: ``duration`` (seconds), ``due`` (jobs claimed).
    TICK = "tick"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    at: datetime
    job_id: str | None = None
    scheduled_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class EventBus:
    """Delivers events to listeners, synchronously, in the emitting thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[Listener, frozenset[EventKind] | None]] = []

    def subscribe(
        self, listener: Listener, kinds: EventKind | Iterable[EventKind] | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` for every event (or only those of ``kinds``: one kind or several).

        Returns a function that unsubscribes it.

        :raises ValueError: for a kind that is not an :class:`EventKind` value.
        """
        if isinstance(kinds, str):  # one kind (an EventKind is a str, not a list of kinds)
            kinds = [kinds]
        entry = (listener, None if kinds is None else frozenset(EventKind(kind) for kind in kinds))
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: Event) -> None:
        for listener, kinds in tuple(self._listeners):
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                listener(event)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, event.kind.value)
