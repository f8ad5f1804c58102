"""The worker signal handlers that record each beatx run's start and end in the store, and
what became of it in the job's run ledger (:meth:`beatx.stores.base.JobStorage.job_runs`).

| signal | where it fires | what is recorded |
|---|---|---|
| ``task_prerun`` | the process running the task | ``running``, the worker's name |
| ``task_postrun`` | same | ``succeeded``, ``failed`` (the error), ``rejected`` (``Reject``) |
| ``task_retry`` | same | ``retried`` with the reason; the run stays in flight |
| ``task_revoked`` | the worker's main process | ``revoked`` (the job's status is left alone) |
| ``task_unknown`` | the worker's main process | ``unknown_task``: the job turns ``failed`` and its ``last_error`` names the task |
| ``task_rejected`` | the worker's main process | ``rejected`` (a message the worker could not read) |

Every record goes through the worker's record queue (:mod:`beatx.celery.run_records`): a
record the store cannot take now is kept and written when it answers again, in order, so a
store outage never leaves a finished run counted as in flight. A record is one store call
that holds no lock the beat waits for (see the lock rules of :mod:`django_beatx.store`)."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from beatx.celery.dedupe import _DUPLICATE_FLAG, install_dedupe_guard
from beatx.celery.run_records import PendingRecord, RunRecordQueue
from beatx.celery.settings import BeatxSettings
from beatx.dispatch.celery import JOB_ID_HEADER
from beatx.failure_pause import pause_if_failing
from beatx.ledger import RunOutcome
from beatx.stores import open_store

if TYPE_CHECKING:
    from celery import Celery

    from beatx.stores.base import JobStore

__all__ = ["error_text"]

logger = logging.getLogger("beatx.celery")


def _header(task: Any, name: str) -> Any:
    request = getattr(task, "request", None)
    if request is None:
        return None
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name) if isinstance(headers, Mapping) else None
    return value


def _header_of(carrier: Any, name: str) -> Any:
    """Header ``name`` of a request (a ``Context``) or a message: an attribute, a key of its
    ``headers``, or a key of the ``headers`` nested in them (Celery's protocol 2)."""
    value = getattr(carrier, name, None)
    if value is not None:
        return value
    headers = getattr(carrier, "headers", None) or {}
    if not isinstance(headers, Mapping):
        return None
    value = headers.get(name)
    nested = headers.get("headers")
    if value is None and isinstance(nested, Mapping):
        value = nested.get(name)
    return value


def _worker_name(carrier: Any) -> str | None:
    name = getattr(carrier, "hostname", None)
    return str(name) if name else None


def error_text(exc: BaseException) -> str:
    """``"ExcType: message"`` as stored in ``last_error``."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _WorkerState:
    """Per-app worker state: the store (opened lazily in each process) and run start times."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._settings: BeatxSettings | None = None
        self._store: JobStore | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.started: dict[str, tuple[float, float]] = {}
        self.records = RunRecordQueue(lambda: self.store)

    @property
    def settings(self) -> BeatxSettings:
        if self._settings is None:
            self._settings = BeatxSettings.from_app(self.app)
        return self._settings

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # A forked child must not share its parent's sockets.
            self._store = None
            self._pid = os.getpid()

    @property
    def store(self) -> JobStore:
        with self._lock:
            self._check_fork()
            if self._store is None:
                settings = self.settings
                self._store = open_store(
                    settings.store, key_prefix=settings.key_prefix, **settings.store_options()
                )
            return self._store


_worker_states: weakref.WeakKeyDictionary[Any, _WorkerState] = weakref.WeakKeyDictionary()


def _state_for(task: Any) -> _WorkerState | None:
    app = getattr(task, "app", None) if task is not None else None
    if app is None:
        return None
    try:
        return _worker_states.get(app)
    except TypeError:
        return None


def _on_task_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    task = task or sender
    state = _state_for(task)
    if state is None or task_id is None:
        return
    job_id = _header(task, JOB_ID_HEADER)
    if not job_id:
        return
    settings = state.settings
    now = datetime.now(UTC)
    timeout = float(settings.run_timeout)
    job, task_key = str(job_id), str(task_id)
    worker = _worker_name(task.request)
    started = PendingRecord(
        f"the start of job={job} task_id={task_key}",
        lambda store: store.run_started(job, task_key, started_at=now, timeout=timeout, worker=worker),
    )
    if settings.dedupe:
        retries = int(getattr(task.request, "retries", 0) or 0)
        try:
            first = state.store.start_run_once(
                job, task_key, attempt=retries, started_at=now, timeout=timeout, worker=worker
            )
        except Exception as exc:
            # Whether this delivery is the first cannot be known: run it (at least once), and
            # record its start when the store answers.
            logger.warning("could not check job=%s task_id=%s for a second delivery: %s", job, task_key, exc)
            state.records.submit(started)
        else:
            if not first:
                logger.warning("dropping a second delivery job=%s task_id=%s", job, task_key)
                setattr(task.request, _DUPLICATE_FLAG, True)
                return
    else:
        state.records.submit(started)
    state.started[task_id] = (time.monotonic(), now.timestamp())


def _on_task_postrun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    task = task or sender
    worker = _state_for(task)
    if worker is None or task_id is None:
        return
    job_id = _header(task, JOB_ID_HEADER)
    if not job_id or getattr(task.request, _DUPLICATE_FLAG, False):
        return
    if state in ("RETRY", "IGNORED"):
        # A retry is still in flight (task_retry recorded it; the retried message carries the
        # same task id); an ignored run (Ignore) says nothing of how it ended.
        return
    started = worker.started.pop(task_id, None)
    duration = None if started is None else max(time.monotonic() - started[0], 0.0)
    error: str | None = None
    outcome = RunOutcome.SUCCEEDED
    if state == "FAILURE":
        error = error_text(retval) if isinstance(retval, BaseException) else f"failed: {retval!r}"
        outcome = RunOutcome.FAILED
    elif state == "REJECTED":
        reason = getattr(retval, "reason", None) or retval
        error = f"rejected: {error_text(reason) if isinstance(reason, BaseException) else reason!r}"
        outcome = RunOutcome.REJECTED
    _submit_end(worker, str(job_id), str(task_id), outcome, error=error, duration=duration, who=task.request)


def _submit_end(
    state: _WorkerState,
    job: str,
    task_id: str,
    outcome: RunOutcome,
    *,
    error: str | None,
    duration: float | None,
    who: Any,
) -> None:
    """Queue the record of how run ``task_id`` of ``job`` ended (``who``: the request or the
    consumer that names the worker)."""
    finished_at, worker = datetime.now(UTC), _worker_name(who)

    def record(store: JobStore) -> None:
        store.run_finished(
            job,
            task_id,
            finished_at=finished_at,
            duration=duration,
            error=error,
            outcome=outcome,
            worker=worker,
        )
        if outcome.is_error:
            _pause_if_failing(store, job)

    state.records.submit(PendingRecord(f"the end ({outcome.value}) of job={job} task_id={task_id}", record))


def _pause_if_failing(store: JobStore, job: str) -> None:
    """``pause_after_failures``: pause ``job`` after its consecutive failures (never raises:
    the run's end is recorded already)."""
    try:
        pause_if_failing(store, job)
    except Exception:
        logger.exception("could not check pause_after_failures of job %s", job)


def _on_task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    state = _state_for(sender)
    job_id = _header_of(request, JOB_ID_HEADER) if request is not None else None
    task_id = getattr(request, "id", None)
    if state is None or not job_id or not task_id or getattr(request, _DUPLICATE_FLAG, False):
        return
    job, task_key, at = str(job_id), str(task_id), datetime.now(UTC)
    retries = int(getattr(request, "retries", 0) or 0) + 1
    error = error_text(reason) if isinstance(reason, BaseException) else (str(reason) if reason else None)
    worker = _worker_name(request)
    state.records.submit(
        PendingRecord(
            f"the retry of job={job} task_id={task_key}",
            lambda store: store.run_retried(
                job, task_key, at=at, error=error, retries=retries, worker=worker
            ),
        )
    )


def _on_task_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    state = _state_for(sender)
    job_id = _header_of(request, JOB_ID_HEADER) if request is not None else None
    task_id = getattr(request, "id", None)
    if state is None or not job_id or not task_id:
        return
    state.started.pop(str(task_id), None)
    _submit_end(state, str(job_id), str(task_id), RunOutcome.REVOKED, error=None, duration=None, who=request)


def _on_task_unknown(
    sender: Any = None, message: Any = None, name: str | None = None, id: str | None = None, **_: Any
) -> None:
    state = _worker_states.get(getattr(sender, "app", None)) if sender is not None else None
    job_id = _header_of(message, JOB_ID_HEADER) if message is not None else None
    if state is None or not job_id or not id:
        return
    error = (
        f"unknown task {name!r}: no worker has registered it (seen by {_worker_name(sender) or 'a worker'})"
    )
    _submit_end(state, str(job_id), str(id), RunOutcome.UNKNOWN_TASK, error=error, duration=None, who=sender)


def _on_task_rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    state = _worker_states.get(getattr(sender, "app", None)) if sender is not None else None
    job_id = _header_of(message, JOB_ID_HEADER) if message is not None else None
    task_id = _header_of(message, "id") if message is not None else None
    if state is None or not job_id or not task_id:
        return
    error = "rejected: " + (
        error_text(exc) if isinstance(exc, BaseException) else "the worker could not read the message"
    )
    _submit_end(state, str(job_id), str(task_id), RunOutcome.REJECTED, error=error, duration=None, who=sender)


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    state = _worker_states.get(app) if app is not None else None
    if state is None:
        return
    try:
        if state.settings.dedupe:
            count = install_dedupe_guard(state.app)
            logger.info("beatx duplicate-delivery guard installed on %d task class(es)", count)
    except Exception:
        logger.exception("could not install the beatx duplicate-delivery guard")
