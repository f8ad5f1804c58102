"""beatx: periodic jobs for Celery and asyncio.

Triggers say when, the engine applies misfire / coalesce / overlap rules, stores keep jobs
(memory, Redis, Django), dispatchers send fires to Celery workers or run them in-process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from beatx.clock import Clock, SystemClock
from beatx.config import SchedulerConfig
from beatx.errors import (
    BeatxError,
    ConfigurationError,
    ConflictingIdError,
    DispatchError,
    InvalidJobError,
    InvalidTriggerError,
    JobLookupError,
    LeaseLostError,
    PermanentDispatchError,
    RevisionConflictError,
    SerializationError,
    StoreError,
    TransientDispatchError,
)
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import Fire, Job, JobDefaults, JobStatus
from beatx.manager import JobManager, SchedulerHealth
from beatx.scheduler import Scheduler
from beatx.triggers import CronTrigger, DateTimeTrigger, IntervalTrigger, Trigger

if TYPE_CHECKING:
    from celery import Celery

__version__ = "0.1.0"

# A library leaves log output to the application: nothing is printed unless it configures logging.
logging.getLogger("beatx").addHandler(logging.NullHandler())

__all__ = [
    "BeatxError",
    "Clock",
    "ConfigurationError",
    "ConflictingIdError",
    "CronTrigger",
    "DateTimeTrigger",
    "DispatchError",
    "Event",
    "EventBus",
    "EventKind",
    "Fire",
    "IntervalTrigger",
    "InvalidJobError",
    "InvalidTriggerError",
    "Job",
    "JobDefaults",
    "JobLookupError",
    "JobManager",
    "JobStatus",
    "LeaseLostError",
    "PermanentDispatchError",
    "RevisionConflictError",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerHealth",
    "SerializationError",
    "StoreError",
    "SystemClock",
    "TransientDispatchError",
    "Trigger",
    "get_scheduler",
]


def get_scheduler(app: Celery | None = None, **overrides: Any) -> JobManager:
    """The management API bound to the store a Celery app is configured with.

    ``app`` defaults to Celery's current app (in a Django project, the one your
    ``celery.py`` creates). Jobs added here are picked up by the running beat at once.
    Needs ``pip install 'beatx[celery]'``.
    """
    from beatx.celery import get_scheduler as celery_get_scheduler

    return celery_get_scheduler(app, **overrides)
