"""The Celery integration: ``celery -A proj beat -S beatx`` and the worker-side run state.

Three things live here:

* :class:`BeatxScheduler`, a ``celery.beat.Scheduler`` registered under the
  ``celery.beat_schedulers`` entry point as ``beatx``, so ``celery -A proj beat -S beatx``
  (or ``beat_scheduler = "beatx"``) runs a beatx :class:`~beatx.beat.Beat` (leader lease +
  engine) and imports ``app.conf.beat_schedule`` at start-up;
* :func:`setup`, the one line a project adds next to its Celery app
  (``beatx.celery.setup(app)``): worker signal handlers that record each run's start and end
  in the store (``max_instances``, ``FAILED`` / ``last_error``, durations), the optional
  duplicate-delivery guard, and ``beat_scheduler = "beatx"``;
* :func:`get_job_manager` (older name: ``get_scheduler``), the management API
  (:class:`~beatx.JobManager`) bound to the configured store, for application code.

Settings are read from the Celery configuration (``beatx_store`` ...; in a Django project
with ``namespace="CELERY"``: ``CELERY_BEATX_STORE`` ...), see :class:`BeatxSettings`.

One file per job: :mod:`~beatx.celery.settings`, :mod:`~beatx.celery.beat_schedule`,
:mod:`~beatx.celery.manager_cache`, :mod:`~beatx.celery.beat_scheduler`,
:mod:`~beatx.celery.worker_hooks`, :mod:`~beatx.celery.dedupe` and :mod:`~beatx.celery.install`.
"""

from __future__ import annotations

from beatx.celery.beat_schedule import (
    BEAT_SCHEDULE_SOURCE,
    IMPORTED_IDS_META,
    SOURCE_OPTION,
    convert_schedule,
    import_beat_schedule,
)
from beatx.celery.beat_scheduler import BeatxScheduler
from beatx.celery.dedupe import install_dedupe_guard
from beatx.celery.install import setup
from beatx.celery.manager_cache import get_job_manager, get_scheduler, task_validator
from beatx.celery.settings import BeatxSettings
from beatx.celery.worker_hooks import error_text

__all__ = [
    "BEAT_SCHEDULE_SOURCE",
    "IMPORTED_IDS_META",
    "SOURCE_OPTION",
    "BeatxScheduler",
    "BeatxSettings",
    "convert_schedule",
    "error_text",
    "get_job_manager",
    "get_scheduler",
    "import_beat_schedule",
    "install_dedupe_guard",
    "setup",
    "task_validator",
]
