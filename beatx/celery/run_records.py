"""Run records a worker could not write, kept and written when the store answers again.

A worker records each beatx run's start and end in the store (``task_prerun`` /
``task_postrun``). If the store is unreachable at that moment (restarting, failing over), a
lost *end* would leave the run "in flight" until ``beatx_run_timeout`` (an hour by default),
and ``max_instances`` would skip every fire of the job meanwhile. So a record whose write
fails is not dropped: it joins a queue (one per worker process), written in order by a
background thread, every :data:`RETRY_INTERVAL` seconds at first and then less often, until
the store takes it. While records wait, later ones queue behind them, so a run's end is never
written before its start. The task itself never waits for a retry.

The queue is bounded (:data:`MAX_PENDING`): past it, the oldest record is dropped with a
warning (its run then expires after ``beatx_run_timeout``). A worker killed with records
pending loses them the same way.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from beatx.stores.base import JobStore

__all__ = ["MAX_PENDING", "RETRY_INTERVAL", "PendingRecord", "RunRecordQueue"]

logger = logging.getLogger("beatx.celery")

#: Seconds between the first retries of a pending record (doubling up to :data:`MAX_INTERVAL`).
RETRY_INTERVAL = 0.5
MAX_INTERVAL = 5.0
#: Most records one worker process keeps while its store is unreachable.
MAX_PENDING = 10_000


@dataclass(frozen=True)
class PendingRecord:
    """One run record to write: ``what`` names it in logs (``"the end of job=... task_id=..."``)."""

    what: str
    write: Callable[[JobStore], None]


class RunRecordQueue:
    """Writes run records now, or later if the store fails (see the module docstring)."""

    def __init__(self, store: Callable[[], JobStore], *, retry_interval: float = RETRY_INTERVAL) -> None:
        self._store = store
        self._retry_interval = retry_interval
        self._pending: collections.deque[PendingRecord] = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def pending(self) -> int:
        """How many records wait for the store."""
        with self._lock:
            self._check_fork()
            return len(self._pending)

    def submit(self, record: PendingRecord) -> bool:
        """Write ``record`` now if nothing waits before it, else queue it. Returns whether it
        was written now."""
        with self._lock:
            self._check_fork()
            if self._pending:
                self._keep(record)
                return False
        try:
            record.write(self._store())
        except Exception as exc:
            with self._lock:
                self._keep(record)
                waiting = len(self._pending)
            logger.warning(
                "could not record %s: %s; kept, with %d record(s) waiting for the store",
                record.what,
                exc,
                waiting,
            )
            return False
        return True

    def flush(self) -> int:
        """Write the waiting records in order until one fails. Returns how many were written."""
        written = 0
        while True:
            with self._lock:
                self._check_fork()
                if not self._pending:
                    return written
                record = self._pending[0]
            record.write(self._store())  # raises: the caller retries later
            with self._lock:
                if self._pending and self._pending[0] is record:
                    self._pending.popleft()
            written += 1

    def _keep(self, record: PendingRecord) -> None:
        """Queue ``record`` (the lock held) and make sure a thread writes the queue."""
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.popleft()
            logger.warning(
                "dropping the run record of %s: %d records wait for the store already "
                "(the run counts as in flight until its beatx_run_timeout)",
                dropped.what,
                MAX_PENDING,
            )
        self._pending.append(record)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._retry_forever, name="beatx-run-records", daemon=True)
            self._thread.start()

    def _check_fork(self) -> None:
        """A forked child (a prefork pool process) starts with an empty queue of its own: the
        parent's records and thread are the parent's."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._pending = collections.deque()
            self._thread = None

    def _retry_forever(self) -> None:
        interval = self._retry_interval
        while True:
            time.sleep(interval)
            try:
                written = self.flush()
            except Exception as exc:
                interval = min(interval * 2, MAX_INTERVAL)
                logger.debug("run records still waiting for the store: %s", exc)
                continue
            if written:
                logger.info("%d run record(s) written after the store came back", written)
            interval = self._retry_interval
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
