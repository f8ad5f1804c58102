"""What the engine logs about the fires it sent: one summary line per dispatched group.

A line per fire at INFO costs a burst about a sixth of its CPU (``celery beat -l info``); the
engine logs instead one INFO line per group of fires sent together (how many, which jobs,
the lateness range), and each fire at DEBUG, or at INFO with ``beatx_log_each_fire``
(``SchedulerConfig.log_each_fire``).

Pure: :class:`SentSummary` accumulates what it is given and formats it; the engine logs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from beatx.jobs import Fire

__all__ = ["SUMMARY_JOB_IDS", "SentSummary"]

#: How many job ids a summary line names before it says how many more there were.
SUMMARY_JOB_IDS = 5


@dataclass(slots=True)
class SentSummary:
    """The fires of one dispatched group: their count, their jobs (how many, and the first
    :data:`SUMMARY_JOB_IDS` ids) and the earliest and latest due time."""

    count: int = 0
    jobs: int = 0
    job_ids: list[str] = field(default_factory=list)
    earliest: datetime | None = None
    latest: datetime | None = None

    def add(self, job_id: str, fires: Sequence[Fire]) -> None:
        """Count ``fires`` (all of one job, all sent)."""
        if not fires:
            return
        self.count += len(fires)
        self.jobs += 1
        if len(self.job_ids) < SUMMARY_JOB_IDS:
            self.job_ids.append(job_id)
        if len(fires) == 1:
            first = last = fires[0].due
        else:
            dues = [fire.due for fire in fires]
            first, last = min(dues), max(dues)
        if self.earliest is None or first < self.earliest:
            self.earliest = first
        if self.latest is None or last > self.latest:
            self.latest = last

    def line(self, sent_at: datetime) -> tuple[str, tuple[object, ...]] | None:
        """The log message and its arguments, lateness counted from ``sent_at`` (when the
        group went out); None when nothing was sent."""
        if not self.count or self.earliest is None or self.latest is None:
            return None
        names = ",".join(self.job_ids) + (",..." if self.jobs > len(self.job_ids) else "")
        least = (sent_at - self.latest).total_seconds()
        most = (sent_at - self.earliest).total_seconds()
        return (
            "fires dispatched count=%d jobs=%d ids=%s lateness=%.3fs..%.3fs",
            (self.count, self.jobs, names, least, most),
        )
