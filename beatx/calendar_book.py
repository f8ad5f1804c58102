"""The calendars a beat plans with, and the trigger a job really fires by.

:class:`CalendarBook` reads a store's exclusion calendars once and again only when their
version moved (checked at most once per tick, and only by ticks that plan a job with
``exclude``), and wraps a job's trigger with the calendars it names
(:class:`beatx.exclusion.ExcludingTrigger`). :func:`effective_trigger` does the same from a
fresh read, for the management API and the previews.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from beatx.calendars import ExclusionCalendar
from beatx.errors import CalendarLookupError
from beatx.exclusion import ExcludingTrigger
from beatx.jitter import due_time, nominal_time
from beatx.jobs import Job, JobStatus
from beatx.stores.calendar_base import CalendarStorage, calendar_storage_of
from beatx.triggers.base import Trigger

__all__ = ["CalendarBook", "calendar_view", "effective_trigger", "named_calendars"]

_TICK = timedelta(microseconds=1)
_WRAPPED_LIMIT = 10_000


def named_calendars(
    names: tuple[str, ...],
    found: dict[str, ExclusionCalendar] | CalendarStorage,
    *,
    job_id: str | None = None,
) -> tuple[ExclusionCalendar, ...]:
    """The calendars ``names`` lists, from a dict by name or a storage.

    :raises CalendarLookupError: naming the first one missing (and the job).
    """
    calendars: list[ExclusionCalendar] = []
    for name in names:
        calendar = found.get(name) if isinstance(found, dict) else found.get_calendar(name)
        if calendar is None:
            raise CalendarLookupError(name, job_id=job_id)
        calendars.append(calendar)
    return tuple(calendars)


def effective_trigger(job: Job, store: Any) -> Trigger:
    """The job's trigger with its calendars (read from ``store`` now) applied; the trigger
    itself for a job that excludes nothing.

    :raises CalendarLookupError: when the job names a calendar the store does not have.
    """
    if not job.exclude:
        return job.trigger
    calendars = named_calendars(job.exclude, calendar_storage_of(store), job_id=job.id)
    return ExcludingTrigger(job.trigger, calendars, job.on_excluded)  # type: ignore[arg-type]


def calendar_view(job: Job, store: Any) -> Job:
    """The job with its calendars (read from ``store`` now) applied to its trigger: a shallow
    copy (the job itself when it excludes nothing), for computing its fire times.

    :raises CalendarLookupError: when the job names a calendar the store does not have.
    """
    if not job.exclude:
        return job
    view = copy.copy(job)
    view.trigger = effective_trigger(job, store)
    return view


class CalendarBook:
    """A beat's cached copy of a store's calendars."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._version: str | None = None
        self._calendars: dict[str, ExclusionCalendar] = {}
        self._checked = False
        #: (trigger, calendar names, policy) -> the wrapped trigger, so its cache of
        #: whole-day answers lasts from one tick to the next.
        self._wrapped: dict[tuple[Trigger, tuple[str, ...], str], ExcludingTrigger] = {}

    def new_tick(self) -> None:
        """Let the next :meth:`plan_view` check the calendars' version again."""
        self._checked = False

    def _refresh(self) -> None:
        if self._checked:
            return
        storage = calendar_storage_of(self._store)
        version = storage.calendars_version()
        if version != self._version:
            self._calendars = {calendar.name: calendar for calendar in storage.get_calendars()}
            self._version = version
            self._wrapped.clear()
        self._checked = True

    def trigger_of(self, job: Job) -> Trigger:
        """The job's trigger with its calendars applied.

        :raises CalendarLookupError: when the job names a calendar that does not exist.
        """
        if not job.exclude:
            return job.trigger
        self._refresh()
        key = (job.trigger, job.exclude, job.on_excluded)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            calendars = named_calendars(job.exclude, self._calendars, job_id=job.id)
            wrapped = ExcludingTrigger(job.trigger, calendars, job.on_excluded)  # type: ignore[arg-type]
            if len(self._wrapped) >= _WRAPPED_LIMIT:
                self._wrapped.clear()
            self._wrapped[key] = wrapped
        return wrapped

    def plan_view(self, job: Job) -> Job:
        """The job as the rules plan it: a shallow copy whose trigger has its calendars applied
        and whose next run time, when the calendars exclude it (they changed since it was
        computed), is moved to the next allowed fire."""
        if not job.exclude:
            return job
        trigger = self.trigger_of(job)
        view = copy.copy(job)
        view.trigger = trigger
        stored = job.next_run_time
        if stored is not None:
            jitter = getattr(job, "jitter", None)
            nominal = nominal_time(trigger, stored, jitter) if jitter else stored
            allowed = trigger.next_fire_time(nominal - _TICK)
            if allowed != nominal:
                view.next_run_time = due_time(view, allowed)
                if allowed is None and view.status.schedulable:
                    view.status = JobStatus.COMPLETED
        return view
