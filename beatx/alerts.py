"""Alert rules: when a job needs someone's attention, decided from what the store knows.

Pure: every function takes the times and records it decides on as arguments and never reads
the clock. The leading beat reads the jobs that have rules and their run ledgers at a modest
cadence (:mod:`beatx.alert_watch`) and delivers what changed (:mod:`beatx.alert_delivery`).

A job's rules (``None`` each: not checked):

======================== ==================== ==========================================================
field                    alert kind           the condition holds while
======================== ==================== ==========================================================
``expect_every``         ``missed_heartbeat`` the job is schedulable and no fire of it was sent for
                                              ``expect_every`` seconds (counted from its last fire, or
                                              from when the watch saw the job edited, if later; a job
                                              that never fired: from when the watch first saw it)
``max_lateness``         ``late``             its newest fire went out more than ``max_lateness``
                                              seconds after its nominal time (plus its ``jitter``), or
                                              its next fire is due and unsent for longer than that
``max_runtime``          ``max_runtime``      a run started and has not finished within ``max_runtime``
                                              seconds
``alert_after_failures`` ``failures``         its last ``N`` ended runs all failed (``failed``,
                                              ``rejected``, ``unknown_task``)
======================== ==================== ==========================================================

An alert is raised once per episode (the condition starts to hold) and resolved once (it stops
holding, the job lost the rule, was removed, or paused for a heartbeat): :class:`AlertBook`
keeps the open episodes and says what changed.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from beatx.jobs import Job
from beatx.ledger import RunOutcome, RunRecord

__all__ = [
    "Alert",
    "AlertBook",
    "AlertKind",
    "AlertState",
    "conditions",
    "has_alert_rules",
    "runs_needed",
]


class AlertKind(enum.StrEnum):
    """What an alert is about (the rule that raised it)."""

    MISSED_HEARTBEAT = "missed_heartbeat"
    LATE = "late"
    MAX_RUNTIME = "max_runtime"
    FAILURES = "failures"


class AlertState(enum.StrEnum):
    """An alert is ``raised`` when its condition starts to hold and ``resolved`` when it ends."""

    RAISED = "raised"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One change of an alert: raised or resolved, with what it is about."""

    job_id: str
    kind: AlertKind
    state: AlertState
    #: When the change was seen.
    at: datetime
    #: When the episode was raised (for a resolved alert: how long it lasted).
    since: datetime
    #: The condition's figures (seconds, counts, times as ISO 8601, task ids), JSON-ready.
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the webhook posts."""
        return {
            "job_id": self.job_id,
            "kind": self.kind.value,
            "state": self.state.value,
            "at": self.at.isoformat(),
            "since": self.since.isoformat(),
            "details": self.details,
        }


def has_alert_rules(job: Job) -> bool:
    """Whether the job sets any alert rule."""
    return (
        job.expect_every is not None
        or job.max_lateness is not None
        or job.max_runtime is not None
        or job.alert_after_failures is not None
    )


def runs_needed(job: Job) -> int:
    """How many ledger records the rules of ``job`` look at (0: the job record is enough)."""
    if job.max_lateness is None and job.max_runtime is None and job.alert_after_failures is None:
        return 5 if job.expect_every is not None else 0  # a fire sent by run_job_now counts too
    return max(20, (job.alert_after_failures or 0) * 2)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_SUMMARIES = (RunOutcome.MISSED, RunOutcome.SKIPPED, RunOutcome.CAUGHT_UP)


def last_sent(job: Job, runs: Sequence[RunRecord]) -> datetime | None:
    """When a fire of the job last went out: the newest ``sent_at`` of its fires in ``runs``,
    or its last run's nominal time (a fire goes out at or after it), whichever is later."""
    times = [r.sent_at for r in runs if r.sent_at is not None and r.outcome not in _SUMMARIES]
    if job.last_run_time is not None:
        times.append(job.last_run_time)
    return max(times) if times else None


def conditions(
    job: Job, runs: Sequence[RunRecord], now: datetime, *, watched_since: datetime | None = None
) -> dict[AlertKind, dict[str, Any]]:
    """The alert conditions that hold for ``job`` at ``now``, with their details.

    ``runs``: its ledger, newest first (at least :func:`runs_needed` records when the store
    has them). ``watched_since``: when the heartbeat may start counting at the earliest (the
    watch first saw a job that never fired, or saw it edited), so a new or resumed job is not
    silent from the start; with no fire sent and no ``watched_since``, no heartbeat is missed.
    """
    found: dict[AlertKind, dict[str, Any]] = {}
    schedulable = job.status.schedulable
    if job.expect_every is not None and schedulable:
        sent = last_sent(job, runs)
        start = max((t for t in (sent, watched_since) if t is not None), default=None)
        silent = 0.0 if start is None else (now - start).total_seconds()
        if silent > job.expect_every:
            found[AlertKind.MISSED_HEARTBEAT] = {
                "expect_every": job.expect_every,
                "last_sent_at": _iso(sent),
                "silent_for": round(silent, 3),
            }
    if job.max_lateness is not None:
        allowed = job.max_lateness + (job.jitter or 0.0)
        fires = [r for r in runs if r.outcome not in _SUMMARIES and r.lateness is not None]
        newest = max(fires, key=lambda r: r.sent_at or now, default=None)
        overdue = (
            (now - job.next_run_time).total_seconds()
            if schedulable and job.next_run_time is not None
            else 0.0
        )
        if overdue > allowed:
            found[AlertKind.LATE] = {
                "max_lateness": job.max_lateness,
                "due_at": _iso(job.next_run_time),
                "unsent_for": round(overdue, 3),
            }
        elif newest is not None and (newest.lateness or 0.0) > allowed:
            found[AlertKind.LATE] = {
                "max_lateness": job.max_lateness,
                "task_id": newest.task_id,
                "scheduled_at": _iso(newest.scheduled_at),
                "lateness": round(newest.lateness or 0.0, 3),
            }
    if job.max_runtime is not None:
        long_runs = [
            r
            for r in runs
            if r.outcome in (RunOutcome.RUNNING, RunOutcome.RETRIED)
            and r.started_at is not None
            and (now - r.started_at).total_seconds() > job.max_runtime
        ]
        if long_runs:
            oldest = min(long_runs, key=lambda r: r.started_at or now)
            assert oldest.started_at is not None
            found[AlertKind.MAX_RUNTIME] = {
                "max_runtime": job.max_runtime,
                "task_ids": sorted(r.task_id for r in long_runs),
                "started_at": _iso(oldest.started_at),
                "running_for": round((now - oldest.started_at).total_seconds(), 3),
            }
    if job.alert_after_failures is not None:
        failed: list[RunRecord] = []
        for record in runs:
            if record.outcome.stage < 2 or record.outcome in (*_SUMMARIES, RunOutcome.REVOKED):
                continue  # in flight, or no run: neither breaks nor extends the streak
            if not record.outcome.is_error:
                break
            failed.append(record)
        if len(failed) >= job.alert_after_failures:
            found[AlertKind.FAILURES] = {
                "alert_after_failures": job.alert_after_failures,
                "failures": len(failed),
                "last_error": failed[0].error,
                "last_outcome": failed[0].outcome.value,
            }
    return found


@dataclass(slots=True)
class _Episode:
    since: datetime
    details: dict[str, Any]


class AlertBook:
    """The open alert episodes, per job and kind: :meth:`update` turns the conditions seen at
    one moment into the alerts raised and resolved since the last update.

    :meth:`to_json` / :meth:`from_json` keep it across leaders (the store's meta record), so
    a new leader does not raise again what the previous one raised.
    """

    def __init__(self) -> None:
        self._open: dict[str, dict[AlertKind, _Episode]] = {}

    def open_alerts(self) -> dict[str, dict[AlertKind, datetime]]:
        """``{job id: {kind: raised at}}`` of the open episodes."""
        return {
            job_id: {k: e.since for k, e in kinds.items()} for job_id, kinds in self._open.items() if kinds
        }

    def update(self, job_id: str, found: Mapping[AlertKind, dict[str, Any]], now: datetime) -> list[Alert]:
        """The job's conditions at ``now``: raise the new ones, resolve those that ended."""
        current = self._open.setdefault(job_id, {})
        changes: list[Alert] = []
        for kind in [k for k in current if k not in found]:
            episode = current.pop(kind)
            changes.append(
                Alert(
                    job_id=job_id,
                    kind=kind,
                    state=AlertState.RESOLVED,
                    at=now,
                    since=episode.since,
                    details=episode.details,
                )
            )
        for kind, details in found.items():
            if kind in current:
                current[kind].details = details
                continue
            current[kind] = _Episode(since=now, details=details)
            changes.append(
                Alert(job_id=job_id, kind=kind, state=AlertState.RAISED, at=now, since=now, details=details)
            )
        if not current:
            del self._open[job_id]
        return changes

    def forget_except(self, job_ids: Iterable[str], now: datetime) -> list[Alert]:
        """Resolve every open alert of a job not in ``job_ids`` (removed, or no rule left)."""
        keep = set(job_ids)
        changes: list[Alert] = []
        for job_id in [j for j in self._open if j not in keep]:
            changes += self.update(job_id, {}, now)
        return changes

    def to_json(self) -> str:
        return json.dumps(
            {
                job_id: {
                    k.value: {"since": e.since.isoformat(), "details": e.details} for k, e in kinds.items()
                }
                for job_id, kinds in self._open.items()
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertBook:
        """The book :meth:`to_json` wrote; an empty book for None or an unreadable value."""
        book = cls()
        if not text:
            return book
        try:
            data = json.loads(text)
            for job_id, kinds in data.items():
                book._open[str(job_id)] = {
                    AlertKind(k): _Episode(
                        since=datetime.fromisoformat(v["since"]), details=dict(v["details"])
                    )
                    for k, v in kinds.items()
                }
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()
        return book
