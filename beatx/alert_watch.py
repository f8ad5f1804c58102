"""The leader's alert watch: reads the jobs that have alert rules and their run ledgers from
the store at a modest cadence, decides with :mod:`beatx.alerts`, and announces what changed.

:class:`~beatx.beat.Beat` calls :meth:`AlertWatch.maybe_check` before each tick while it
leads: the first call of a term of leadership checks at once (before the term's first tick
sends an outage's catch-up fires, so a heartbeat missed while no beat ran is seen), later
calls every ``interval`` seconds, in a quiet moment (nothing due before the check would end,
judged by twice the last check's time, 50 ms at least: a check never delays a burst; after
three intervals without a quiet moment, at once). A check costs one query for the jobs with rules
(``alerting_jobs``: an index on every store) and their ledgers (Redis: all in one pipeline,
``job_runs_many``; elsewhere one read per job); a job without rules costs nothing, and a tick
that finds no check due costs one clock read.

The open alerts are kept in the store (meta record ``alerts``), so a new leader neither
raises again what its predecessor raised nor forgets to resolve it.

Each change is an event (``ALERT_RAISED`` / ``ALERT_RESOLVED``, which :mod:`beatx.metrics`
counts), a log line, and a delivery (:class:`beatx.alert_delivery.AlertDelivery`: webhook,
Sentry Crons) from a background thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from beatx.alerts import Alert, AlertBook, AlertState, conditions, has_alert_rules, last_sent, runs_needed
from beatx.clock import Clock, SystemClock
from beatx.errors import SerializationError, StoreError
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import Job
from beatx.ledger import RunRecord
from beatx.stores.base import JobStore

__all__ = ["ALERTS_META_KEY", "AlertWatch", "alerting_jobs"]

logger = logging.getLogger("beatx.alerts")

#: The meta record that keeps the open alerts (:meth:`beatx.alerts.AlertBook.to_json`).
ALERTS_META_KEY = "alerts"


def alerting_jobs(store: JobStore) -> list[Job]:
    """The jobs that set an alert rule: the store's ``alerting_jobs()`` (an index), else
    every job read and filtered (a store without that method)."""
    read: Callable[[], list[Job]] | None = getattr(store, "alerting_jobs", None)
    if read is not None:
        return read()
    return [job for job in store.get_jobs() if has_alert_rules(job)]


def _ledgers(store: JobStore, jobs: Sequence[Job]) -> dict[str, list[RunRecord]]:
    """The ledger records each job's rules look at (:func:`~beatx.alerts.runs_needed`): in one
    round trip where the store offers ``job_runs_many`` (Redis), else one read per job."""
    wanted = {job.id: runs_needed(job) for job in jobs if runs_needed(job)}
    if not wanted:
        return {}
    many: Callable[..., dict[str, list[RunRecord]]] | None = getattr(store, "job_runs_many", None)
    if many is not None:
        return many(list(wanted), limit=max(wanted.values()))
    return {job_id: store.job_runs(job_id, limit=limit) for job_id, limit in wanted.items()}


class AlertWatch:
    """Checks the alert rules of a store's jobs for the leading beat.

    :param deliver: called with each alert raised or resolved (an
        :meth:`~beatx.alert_delivery.AlertDelivery.deliver`); must not block.
    :param interval: seconds between checks.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        events: EventBus | None = None,
        deliver: Callable[[Alert], None] | None = None,
        interval: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.events = events or EventBus()
        self.deliver = deliver
        self.interval = interval
        self.clock = clock or SystemClock()
        self._term: int | None = None
        self._checked_at = float("-inf")
        #: Seconds the last check took (the beat runs one when it has twice that to spare).
        self.last_duration = 0.0
        self._book: AlertBook | None = None
        #: Job id -> (revision seen, when the heartbeat may start counting at the earliest).
        self._seen: dict[str, tuple[int, datetime | None]] = {}

    def maybe_check(self, term: int, *, quiet: bool = True) -> list[Alert]:
        """Check now if this is a new term of leadership, or ``interval`` has passed and the
        beat is ``quiet`` (nothing due right away: a check never delays a burst), or three
        intervals have passed whatever it is doing. A store error is logged and the check is
        tried again next time."""
        mono = self.clock.monotonic()
        if term != self._term:
            self._term = term
            self._book = None  # read again: another leader may have changed it meanwhile
            self._seen = {}
        elif mono - self._checked_at < (self.interval if quiet else 3 * self.interval):
            return []
        self._checked_at = mono
        try:
            return self.check(self.clock.now())
        except (StoreError, SerializationError) as exc:
            logger.warning("alert rules not checked, the store failed: %s", exc)
            self._book = None
            return []
        finally:
            self.last_duration = self.clock.monotonic() - mono

    def seconds_until_due(self) -> float:
        """Seconds until the next check is due (0 when it is)."""
        return max(0.0, self._checked_at + self.interval - self.clock.monotonic())

    def check(self, now: datetime) -> list[Alert]:
        """Evaluate every job's rules at ``now``; returns (and announces) what changed."""
        if self._book is None:
            self._book = AlertBook.from_json(self.store.read_meta(ALERTS_META_KEY))
        book = self._book
        jobs = alerting_jobs(self.store)
        ledgers = _ledgers(self.store, jobs)
        changes: list[Alert] = []
        for job in jobs:
            runs = ledgers.get(job.id, [])
            changes += book.update(
                job.id, conditions(job, runs, now, watched_since=self._since(job, runs, now)), now
            )
        changes += book.forget_except((job.id for job in jobs), now)
        live = {job.id for job in jobs}
        self._seen = {job_id: seen for job_id, seen in self._seen.items() if job_id in live}
        if changes:
            self.store.write_meta(ALERTS_META_KEY, book.to_json())
            for alert in changes:
                self._announce(alert)
        return changes

    def _since(self, job: Job, runs: Sequence[RunRecord], now: datetime) -> datetime | None:
        seen = self._seen.get(job.id)
        if seen is None:
            since = now if last_sent(job, runs) is None else None
        elif seen[0] != job.revision:
            since = now  # edited (resumed, a new rule): the heartbeat counts from now
        else:
            since = seen[1]
        self._seen[job.id] = (job.revision, since)
        return since

    def _announce(self, alert: Alert) -> None:
        raised = alert.state is AlertState.RAISED
        (logger.warning if raised else logger.info)(
            "alert %s job=%s kind=%s details=%s",
            alert.state.value,
            alert.job_id,
            alert.kind.value,
            alert.details,
        )
        if self.events.has_listeners:
            data = {"kind": alert.kind.value, "details": alert.details}
            if not raised:
                data["since"] = alert.since.isoformat()
            kind = EventKind.ALERT_RAISED if raised else EventKind.ALERT_RESOLVED
            self.events.emit(Event(kind, alert.at, alert.job_id, data=data))
        if self.deliver is not None:
            try:
                self.deliver(alert)
            except Exception:
                logger.exception("alert delivery failed for job %s", alert.job_id)
