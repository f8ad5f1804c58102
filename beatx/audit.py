"""The audit log: every change to a job's definition or status, who made it, through what, when,
and what changed (:meth:`beatx.JobManager.job_history`, ``beatx jobs history ID``).

:class:`beatx.JobManager` records one :class:`JobChange` after each write it makes (add,
edit, pause, resume, remove; ``ensure_job`` for YAML and ``beat_schedule`` imports), in the
store (:meth:`beatx.stores.base.JobStorage.record_change`). The diff compares the job's
definition and status before and after (:func:`diff_jobs`); run state (counters, last run,
next run time) is the beat's and the workers', not a change.

The entry is written after the change it describes, as a second step: a process killed between
the two leaves the change unrecorded (never a recorded change that did not happen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from beatx.errors import InvalidJobError
from beatx.jobs import Job, job_to_dict

__all__ = ["DEFAULT_HISTORY", "JobChange", "audited_fields", "diff_jobs"]

#: How many changes the memory and Redis stores keep per job (the Django store keeps all).
DEFAULT_HISTORY = 200

#: The keys of :func:`beatx.jobs.job_to_dict` that are not a change: run state, the beat's.
_NOT_CHANGES = frozenset(
    {
        "version",
        "next_run_time",
        "last_run_time",
        "total_run_count",
        "misfire_count",
        "skip_count",
        "last_error",
        "last_finished_at",
        "last_duration",
        "revision",
    }
)


def audited_fields(job: Job) -> dict[str, Any]:
    """The job's definition and status, JSON-ready: what a change is measured on."""
    try:
        data = job_to_dict(job)
    except InvalidJobError:
        # A function that has no importable name (a local one, run by the in-process
        # scheduler on the memory store): named by where it was defined.
        named = job.copy()
        named.func = (
            f"{getattr(job.func, '__module__', '?')}:{getattr(job.func, '__qualname__', repr(job.func))}"
        )
        data = job_to_dict(named)
    return {key: value for key, value in data.items() if key not in _NOT_CHANGES}


def diff_jobs(before: Job | None, after: Job | None) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for each audited field that differs (a missing job's
    fields are None)."""
    old = audited_fields(before) if before is not None else {}
    new = audited_fields(after) if after is not None else {}
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class JobChange:
    """One change to one job.

    ``action``: ``added``, ``replaced``, ``changed``, ``paused``, ``resumed`` or ``removed``.
    ``actor``: who (a user name, ``None`` when the caller did not say). ``source``: through
    what (``api``, ``cli``, ``admin``, ``yaml``, ``beat_schedule``, or what the caller names).
    ``changes``: ``{field: [before, after]}``.
    """

    job_id: str
    at: datetime
    action: str
    source: str
    actor: str | None = None
    changes: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping, as ``beatx jobs history --json`` prints and the stores keep."""
        return {
            "job_id": self.job_id,
            "at": self.at.isoformat(),
            "action": self.action,
            "source": self.source,
            "actor": self.actor,
            "changes": self.changes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobChange:
        return cls(
            job_id=str(data["job_id"]),
            at=datetime.fromisoformat(str(data["at"])),
            action=str(data["action"]),
            source=str(data["source"]),
            actor=data.get("actor"),
            changes=dict(data.get("changes") or {}),
        )
