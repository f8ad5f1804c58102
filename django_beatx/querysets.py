"""Named queries, exposed on the managers (``Job.objects.due(now)``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce

from beatx.jobs import JobStatus

if TYPE_CHECKING:
    _Base = models.QuerySet[Any]
else:
    _Base = models.QuerySet

#: Statuses whose jobs fire when due (see ``JobStatus.schedulable``).
SCHEDULABLE = (JobStatus.ACTIVE.value, JobStatus.FAILED.value)


class JobQuerySet(_Base):
    def schedulable(self) -> JobQuerySet:
        """Jobs that fire when due: active or failed, with a next run time."""
        return self.filter(status__in=SCHEDULABLE, next_run_time__isnull=False)

    def unclaimed(self, now: datetime) -> JobQuerySet:
        """Jobs no beat holds a live claim on at ``now``."""
        return self.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))

    def due(self, now: datetime) -> JobQuerySet:
        """Schedulable, unclaimed jobs whose next run time is at or before ``now``.

        Served by the ``(status, next_run_time)`` index.
        """
        return self.schedulable().filter(next_run_time__lte=now).unclaimed(now)


class JobRunQuerySet(_Base):
    def in_flight(self, now: datetime) -> JobRunQuerySet:
        """Runs a worker started and has not finished, whose in-flight record has not expired."""
        return self.filter(outcome="running", expires_at__gt=now)

    def ended_before(self, cutoff: datetime, now: datetime) -> JobRunQuerySet:
        """Runs whose last known moment (finished, else started, else sent) is before
        ``cutoff``, except runs still in flight at ``now``."""
        return (
            self.alias(last_seen=Coalesce("finished_at", "started_at", "dispatched_at"))
            .filter(last_seen__lt=cutoff)
            .exclude(outcome="running", expires_at__gt=now)
        )
