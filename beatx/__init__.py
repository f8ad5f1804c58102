"""beatx: periodic jobs for Celery and asyncio.

Triggers say when, the engine applies misfire / coalesce / overlap rules, stores keep jobs
(memory, Redis, Django), dispatchers send fires to Celery workers or run them in-process.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from beatx.audit import JobChange
from beatx.calendars import ExclusionCalendar
from beatx.clock import Clock, SystemClock
from beatx.config import SchedulerConfig
from beatx.errors import (
    BeatxError,
    CalendarInUseError,
    CalendarLookupError,
    ConfigurationError,
    ConflictingIdError,
    DispatchError,
    InvalidCalendarError,
    InvalidJobError,
    InvalidTriggerError,
    JobClaimedError,
    JobLookupError,
    LeaseLostError,
    PermanentDispatchError,
    RevisionConflictError,
    SerializationError,
    StoreError,
    TransientDispatchError,
)
from beatx.events import Event, EventBus, EventKind
from beatx.exclusion import ExcludingTrigger, PreviewFire
from beatx.jobs import CatchUp, Fire, Job, JobDefaults, JobStatus, Overlap
from beatx.ledger import RunOutcome, RunRecord
from beatx.manager import JobManager, SchedulerHealth
from beatx.scheduler import Scheduler
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger, RRuleTrigger, SolarTrigger, Trigger

if TYPE_CHECKING:
    from celery import Celery

__version__ = "0.1.0"

# A library leaves log output to the application: nothing is printed unless it configures logging.
logging.getLogger("beatx").addHandler(logging.NullHandler())

__all__ = [
    "BeatxError",
    "CalendarInUseError",
    "CalendarLookupError",
    "CatchUp",
    "Clock",
    "ConfigurationError",
    "ConflictingIdError",
    "CronTrigger",
    "DateTimeTrigger",
    "DispatchError",
    "Event",
    "EventBus",
    "EventKind",
    "ExcludingTrigger",
    "ExclusionCalendar",
    "Fire",
    "IntervalTrigger",
    "InvalidCalendarError",
    "InvalidJobError",
    "InvalidTriggerError",
    "Job",
    "JobChange",
    "JobClaimedError",
    "JobDefaults",
    "JobLookupError",
    "JobManager",
    "JobStatus",
    "LeaseLostError",
    "Overlap",
    "PermanentDispatchError",
    "PreviewFire",
    "RRuleTrigger",
    "RevisionConflictError",
    "RunOutcome",
    "RunRecord",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerHealth",
    "SerializationError",
    "SolarTrigger",
    "StoreError",
    "SystemClock",
    "TransientDispatchError",
    "Trigger",
    "get_job_manager",
    "get_scheduler",
]


def get_job_manager(app: Celery | None = None, **overrides: Any) -> JobManager:
    """The management API (a :class:`JobManager`) bound to the store a Celery app is configured with.

    ``app`` defaults to Celery's current app (in a Django project, the one your
    ``celery.py`` creates). Jobs added here are picked up by the running beat at once.
    Needs ``pip install 'beatx[celery]'``.

    Warns (:class:`UserWarning`) when the store is ``memory://``, ``beatx_store``'s default:
    most often the app was not imported yet (Celery's current app is then its empty default
    app), and the jobs added would live in this process only.
    """
    from beatx.celery import get_job_manager as celery_get_job_manager
    from beatx.stores.memory import MemoryStore

    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    manager = celery_get_job_manager(app, **overrides)
    if isinstance(manager.store, MemoryStore):
        warnings.warn(
            f"beatx.get_job_manager(): the store of the Celery app {app.main!r} is memory:// "
            "(beatx_store's default): the jobs added live in this process only, no beat sees them "
            "and they are lost when it exits. Import your Celery app first (or pass it: "
            "get_job_manager(app)) and set its beatx_store (CELERY_BEATX_STORE in Django settings), "
            "e.g. 'redis://127.0.0.1:6379/0' or 'django://'; or pass store='redis://...'.",
            UserWarning,
            stacklevel=2,
        )
    return manager


#: The older name of :func:`get_job_manager` (it returns a :class:`JobManager`, not a scheduler);
#: kept for existing code.
get_scheduler = get_job_manager
