"""``beatx.celery.setup(app)``: install beatx in a Celery project."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from celery import signals

from beatx.celery.worker_hooks import (
    _on_task_postrun,
    _on_task_prerun,
    _on_task_rejected,
    _on_task_retry,
    _on_task_revoked,
    _on_task_unknown,
    _on_worker_init,
    _worker_states,
    _WorkerState,
)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["setup"]

_DEFAULT_SCHEDULER = "celery.beat:PersistentScheduler"


#: The ways to name beatx's scheduler in ``beat_scheduler``.
_BEATX_NAMES = frozenset(
    {
        "beatx",
        "beatx.celery:BeatxScheduler",
        "beatx.celery.BeatxScheduler",
        "beatx.celery.beat_scheduler:BeatxScheduler",
        "beatx.celery.beat_scheduler.BeatxScheduler",
    }
)


def _default_scheduler(app: Celery) -> None:
    current = app.conf.get("beat_scheduler")
    if current in (None, "", _DEFAULT_SCHEDULER):
        app.conf.beat_scheduler = "beatx"
        return
    if current in _BEATX_NAMES or getattr(current, "__name__", None) == "BeatxScheduler":
        return
    warnings.warn(
        f"beatx.celery.setup(): the Celery app {app.main!r} sets beat_scheduler = {current!r}, "
        "which setup() keeps: `celery beat` runs that scheduler, not beatx (the workers still "
        "record beatx runs). Set beat_scheduler = 'beatx' (CELERY_BEAT_SCHEDULER in Django "
        "settings), remove it, or start `celery beat -S beatx`.",
        UserWarning,
        stacklevel=3,
    )


def setup(app: Celery) -> None:
    """Install beatx in a Celery project (call it once, next to the app)::

        app = Celery("proj")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        beatx.celery.setup(app)

    - workers record each beatx run in the store (start, end, duration, ``"ExcType: message"``
      of a failure) and its outcome in the run ledger (succeeded, failed, retried, revoked,
      rejected, unknown task), for the tasks whose message carries a ``beatx_job_id`` header;
      the store is opened lazily in each worker process (after the fork);
    - with ``beatx_dedupe = True`` (Redis or Django store), a second delivery of the same task id is
      dropped (``Ignore``) before the task runs;
    - ``beat_scheduler`` becomes ``"beatx"`` unless set to something else (then a
      :class:`UserWarning` says that ``celery beat`` will not run beatx).

    Idempotent.
    """
    if app not in _worker_states:
        _worker_states[app] = _WorkerState(app)
    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="beatx.celery.prerun")
    signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="beatx.celery.postrun")
    signals.task_retry.connect(_on_task_retry, weak=False, dispatch_uid="beatx.celery.retry")
    signals.task_revoked.connect(_on_task_revoked, weak=False, dispatch_uid="beatx.celery.revoked")
    signals.task_unknown.connect(_on_task_unknown, weak=False, dispatch_uid="beatx.celery.unknown")
    signals.task_rejected.connect(_on_task_rejected, weak=False, dispatch_uid="beatx.celery.rejected")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="beatx.celery.worker_init")
    if app.configured:
        _default_scheduler(app)
    else:
        app.on_after_configure.connect(
            lambda sender=None, **_: _default_scheduler(app),
            weak=False,
            dispatch_uid=f"beatx.setup.{id(app)}",
        )
