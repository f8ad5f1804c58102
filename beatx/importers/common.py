"""What every importer shares: one imported entry (:class:`ImportedJob`), the job id an
entry's name becomes, and writing it with its run state (:func:`save_imported`).

Rules, the same for every source:

- the job id is the entry's name with every run of characters other than letters, digits and
  ``. _ : -`` replaced by ``-`` (``"Send report daily"`` becomes ``Send-report-daily``); the
  name stays the job's display name;
- the run count and the last run of the source are kept, so ``beatx jobs list`` shows the
  history and an interval job goes on from its last run instead of firing at once;
- a job whose id exists is left alone unless ``update`` (then its definition is brought to the
  entry, keeping beatx's run state); nothing is written on a dry run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from beatx.errors import BeatxError
from beatx.manager import JobManager
from beatx.triggers import Trigger

__all__ = ["ImportReport", "ImportedJob", "job_id_for", "save_imported"]

_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._:-]+")


def job_id_for(name: str) -> str:
    """The job id of an entry named ``name``: runs of other characters than letters, digits and
    ``. _ : -`` become one ``-`` (``"Send report daily"`` -> ``"Send-report-daily"``)."""
    return _NOT_IN_ID.sub("-", name.strip()).strip("-") or "job"


@dataclass(slots=True)
class ImportedJob:
    """One entry of another scheduler, converted."""

    name: str
    task: str
    trigger: Trigger
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    total_run_count: int = 0
    last_run_at: datetime | None = None

    @property
    def job_id(self) -> str:
        return job_id_for(self.name)


@dataclass(slots=True)
class ImportReport:
    """What an import did, entry by entry (``lines``) and in total (``counts``)."""

    counts: dict[str, int] = field(
        default_factory=lambda: {"imported": 0, "updated": 0, "unchanged": 0, "refused": 0}
    )
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)

    def refuse(self, name: str, reason: str) -> None:
        self.counts["refused"] += 1
        self.lines.append(("refused", f"! {name}: {reason}"))

    def note(self, text: str) -> None:
        self.lines.append(("note", text))

    def summary(self, *, dry_run: bool = False) -> str:
        prefix = "[dry run] " if dry_run else ""
        return prefix + ", ".join(f"{count} {what}" for what, count in self.counts.items())


def save_imported(
    manager: JobManager,
    entry: ImportedJob,
    report: ImportReport,
    *,
    update: bool = False,
    dry_run: bool = False,
    taken: set[str] | None = None,
) -> None:
    """Write one converted entry (see the module's rules); refusals go to ``report``.

    ``taken`` collects the ids this import wrote: two entries whose names give one id are
    refused rather than one overwriting the other.
    """
    job_id = entry.job_id
    if taken is not None:
        if job_id in taken:
            report.refuse(entry.name, f"its job id {job_id!r} is the id of another entry of this import")
            return
        taken.add(job_id)
    label = job_id if job_id == entry.name else f"{job_id} ({entry.name!r})"
    fields: dict[str, Any] = {
        "name": entry.name,
        "args": entry.args,
        "kwargs": entry.kwargs,
        "options": entry.options,
    }
    try:
        exists = manager.get_job(job_id) is not None
        if exists and not update:
            report.counts["unchanged"] += 1
            report.lines.append(
                ("unchanged", f"= {label}: exists (use --update to overwrite its definition)")
            )
            return
        if exists:
            if not dry_run:
                manager.ensure_job(entry.task, entry.trigger, id=job_id, **fields)
        else:
            job = manager.build_job(entry.task, entry.trigger, id=job_id, paused=entry.paused, **fields)
            job.total_run_count = int(entry.total_run_count or 0)
            job.last_run_time = entry.last_run_at
            manager.schedule(job, now=manager.clock.now())
            if job.next_run_time is None and not entry.paused:
                report.refuse(entry.name, f"its schedule ({entry.trigger.describe()}) never fires again")
                return
            if not dry_run:
                manager.store.add_job(job)
    except (BeatxError, ValueError, TypeError) as exc:
        report.refuse(entry.name, str(exc))
        return
    report.counts["updated" if exists else "imported"] += 1
    report.lines.append(("saved", f"+ {label}: {entry.task} {entry.trigger.describe()}"))
