"""The engine: one ``tick(now)`` claims what is due, plans, dispatches and advances jobs.

It is the only place where the rules meet a store and a dispatcher, and it never reads the
clock: callers pass ``now``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from beatx.clock import Clock
from beatx.dispatch.base import Dispatcher, lease_lost
from beatx.engine.rules import FirePlan, plan_fires
from beatx.errors import LeaseLostError
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import Fire, Job, JobStatus
from beatx.stores.base import JobRelease, JobStore

__all__ = ["Engine", "TickResult"]

logger = logging.getLogger("beatx.engine")


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick did, and how long the caller may sleep before the next."""

    sleep: float
    claimed: int = 0
    fired: int = 0
    missed: int = 0
    skipped: int = 0
    dispatch_errors: int = 0


class Engine:
    """Runs ticks against a store and a dispatcher.

    :param owner: the leader-lease token this engine claims under (``None``: no leader check,
        for a single process).
    :param batch_size: jobs claimed per store round trip; a tick that fills a batch returns
        a zero sleep so the caller ticks again at once.
    :param max_sleep: the longest sleep a tick returns, so changes that a store cannot
        announce are still seen.
    :param retry_delay: the sleep after a dispatch failure (a broker outage), before trying again.
    :param max_concurrent_jobs: runs in flight across all jobs; fires beyond it are skipped.
    :param guard: the leader's lease check, handed to the dispatcher, which calls it before
        each fire; once it returns False nothing more is sent, nothing is written back and the
        tick raises :class:`LeaseLostError` (a leader that was frozen past its lease). The
        claims then expire and another beat re-plans them.
    :param clock: only to stamp when fires were actually sent (event and log lateness);
        the rules always use the ``now`` given to :meth:`tick`.
    :param lookahead: seconds ahead of ``now`` that a tick claims and plans jobs, so the work
        of a group of fires is done before they are due and they are sent on time. The tick
        then calls ``wait_until(scheduled time)`` before sending fires that are not due yet.
        0 (the default): only what is due at ``now``.
    :param wait_until: blocks until the given time; required with a ``lookahead``.
    """

    def __init__(
        self,
        store: JobStore,
        dispatcher: Dispatcher,
        *,
        owner: str | None = None,
        batch_size: int = 1000,
        claim_ttl: float = 60.0,
        max_sleep: float = 60.0,
        retry_delay: float = 1.0,
        max_concurrent_jobs: int | None = None,
        events: EventBus | None = None,
        guard: Callable[[], bool] | None = None,
        clock: Clock | None = None,
        lookahead: float = 0.0,
        wait_until: Callable[[datetime], None] | None = None,
    ) -> None:
        if lookahead < 0 or (lookahead > 0 and wait_until is None):
            raise ValueError("lookahead must be >= 0 seconds, and a lookahead needs wait_until")
        self.lookahead = timedelta(seconds=lookahead)
        self.wait_until = wait_until
        self.store = store
        self.guard = guard
        self.clock = clock
        self.dispatcher = dispatcher
        self.owner = owner
        self.batch_size = batch_size
        self.claim_ttl = claim_ttl
        self.max_sleep = max_sleep
        self.retry_delay = retry_delay
        self.max_concurrent_jobs = max_concurrent_jobs
        self.events = events or EventBus()

    def tick(self, now: datetime) -> TickResult:
        """Claim the jobs due at ``now``, send their fires and advance them.

        A job that cannot be planned (its trigger raises) is marked FAILED with the error and
        stops firing; the others go on. A fire the dispatcher could not send leaves its job
        due, to be tried again after ``retry_delay``.

        With a ``lookahead``, what is already due is claimed and sent first; then the jobs due
        within the lookahead are claimed, planned, and sent as each comes due.

        :raises LeaseLostError: if ``owner`` is set and no longer leads; nothing was claimed
            or written then.
        """
        due_now = self._tick(now, now, idle_sleep=not self.lookahead)
        if not self.lookahead or due_now.claimed >= self.batch_size or due_now.dispatch_errors:
            return due_now
        ahead = self._tick(now, now + self.lookahead)
        return TickResult(
            sleep=ahead.sleep,
            claimed=due_now.claimed + ahead.claimed,
            fired=due_now.fired + ahead.fired,
            missed=due_now.missed + ahead.missed,
            skipped=due_now.skipped + ahead.skipped,
            dispatch_errors=ahead.dispatch_errors,
        )

    def _tick(self, now: datetime, horizon: datetime, *, idle_sleep: bool = True) -> TickResult:
        """One claim of the jobs due by ``horizon``, planned as of ``now`` (or their own due
        time, when later), sent and written back."""
        jobs = self.store.acquire_due_jobs(
            horizon, limit=self.batch_size, owner=self.owner, claim_ttl=self.claim_ttl
        )
        if not jobs:
            return TickResult(sleep=self._sleep_until_next(now) if idle_sleep else 0.0)

        free_slots: int | None = None
        if self.max_concurrent_jobs is not None:
            free_slots = max(self.max_concurrent_jobs - self.store.running_count(now), 0)

        planned: list[tuple[Job, FirePlan, list[Fire]]] = []
        releases: list[JobRelease] = []
        fires: list[Fire] = []
        for job in jobs:
            # A job claimed ahead (lookahead) is planned as of its own due time.
            due = job.next_run_time
            at = due if due is not None and due > now else now
            try:
                plan = plan_fires(job, at, free_slots=free_slots)
            except Exception as exc:
                releases.append(self._broken_job(job, now, exc))
                continue
            if free_slots is not None:
                free_slots -= len(plan.fire_times)
            job_fires = [Fire(job, at) for at in plan.fire_times]
            planned.append((job, plan, job_fires))
            fires.extend(job_fires)

        outcomes, sent_times = self._dispatch_on_time(fires, now)
        unsent = sum(1 for outcome in outcomes if isinstance(outcome, LeaseLostError))
        if unsent:
            # Nothing is written back: the claims expire and the new leader re-plans these
            # jobs, sending the same fires with the same task ids.
            raise LeaseLostError(
                f"beat {self.owner!r} lost its lease while sending; {unsent} of {len(fires)} fires not sent"
            )
        totals = {"fired": 0, "missed": 0, "skipped": 0, "errors": 0}
        report = logger.isEnabledFor(logging.INFO) or self.events.has_listeners
        cursor = 0
        for job, plan, job_fires in planned:
            count = len(job_fires)
            results = outcomes[cursor : cursor + count]
            sent_at = sent_times[cursor] if count else now
            cursor += count
            if not report and not plan.missed and not plan.skipped and not any(results):
                # The common case, without per-fire logging or events.
                totals["fired"] += count
                releases.append(self._release(job, plan, job_fires))
                continue
            releases.append(self._settle(job, plan, job_fires, results, now, sent_at, totals))

        self.store.release_jobs(releases, owner=self.owner)
        if totals["errors"]:
            sleep = self.retry_delay
        elif len(jobs) >= self.batch_size:
            sleep = 0.0
        else:
            sleep = self._sleep_until_next(now)
        return TickResult(
            sleep=sleep,
            claimed=len(jobs),
            fired=totals["fired"],
            missed=totals["missed"],
            skipped=totals["skipped"],
            dispatch_errors=totals["errors"],
        )

    def _dispatch_on_time(
        self, fires: Sequence[Fire], now: datetime
    ) -> tuple[list[BaseException | None], list[datetime]]:
        """Send ``fires`` (in due order), waiting for the ones claimed ahead to be due.

        Returns the outcome of each fire and when it was handed over.
        """
        if not self.lookahead or not fires or fires[-1].scheduled_at <= now:
            outcomes = list(self._dispatch(fires))
            return outcomes, [self._sent_at(now)] * len(fires)
        assert self.wait_until is not None
        outcomes = []
        sent_times: list[datetime] = []
        start = 0
        while start < len(fires):
            due = max(fires[start].scheduled_at, now)
            if due > now:
                self.wait_until(due)
                # Whatever came due while this beat was busy goes in the same batch.
                due = max(due, self._sent_at(due))
            end = start + 1
            while end < len(fires) and fires[end].scheduled_at <= due:
                end += 1
            group = self._dispatch(fires[start:end])
            outcomes += group
            sent_times += [self._sent_at(due)] * len(group)
            start = end
            if any(isinstance(outcome, LeaseLostError) for outcome in group):
                outcomes += lease_lost(len(fires) - end)
                sent_times += [due] * (len(fires) - end)
                break
        return outcomes, sent_times

    def _sent_at(self, fallback: datetime) -> datetime:
        """When fires handed over just now were sent: the clock's time, or ``fallback``."""
        return self.clock.now() if self.clock is not None else fallback

    def _dispatch(self, fires: Sequence[Fire]) -> Sequence[BaseException | None]:
        if not fires:
            if self.guard is not None and not self.guard():
                raise LeaseLostError(f"beat {self.owner!r} lost its lease during the tick")
            return []
        try:
            outcomes = self.dispatcher.dispatch(fires, guard=self.guard)
        except Exception as exc:
            logger.exception("dispatcher failed for a batch of %d fires", len(fires))
            return [exc] * len(fires)
        if len(outcomes) != len(fires):
            error = RuntimeError(f"dispatcher returned {len(outcomes)} results for {len(fires)} fires")
            return [error] * len(fires)
        return outcomes

    def _settle(
        self,
        job: Job,
        plan: FirePlan,
        job_fires: Sequence[Fire],
        results: Sequence[BaseException | None],
        now: datetime,
        sent_at: datetime,
        totals: dict[str, int],
    ) -> JobRelease:
        sent: list[Fire] = []
        failed_at: datetime | None = None
        log_fires = logger.isEnabledFor(logging.INFO)
        for fire, error in zip(job_fires, results, strict=True):
            if error is not None:
                failed_at = fire.scheduled_at
                totals["errors"] += 1
                logger.error(
                    "fire not dispatched job=%s scheduled_at=%s error=%r",
                    job.id,
                    fire.scheduled_at.isoformat(),
                    error,
                )
                self._emit(EventKind.JOB_FAILED, now, job.id, fire.scheduled_at, error=repr(error))
                break
            sent.append(fire)
            lateness = (sent_at - fire.scheduled_at).total_seconds()
            if log_fires:
                logger.info(
                    "fire dispatched job=%s scheduled_at=%s lateness=%.3fs",
                    job.id,
                    fire.scheduled_at.isoformat(),
                    lateness,
                )
            self._emit(
                EventKind.JOB_FIRED,
                sent_at,
                job.id,
                fire.scheduled_at,
                task_id=fire.task_id,
                lateness=lateness,
            )
        if plan.missed:
            totals["missed"] += plan.missed
            logger.warning(
                "fires missed job=%s count=%d (later than misfire_grace_time)", job.id, plan.missed
            )
            self._emit(EventKind.JOB_MISSED, now, job.id, job.next_run_time, count=plan.missed)
        if plan.skipped:
            totals["skipped"] += plan.skipped
            logger.warning(
                "fires skipped job=%s count=%d (max_instances=%d, running=%d)",
                job.id,
                plan.skipped,
                job.max_instances,
                job.running,
            )
            self._emit(
                EventKind.JOB_SKIPPED,
                now,
                job.id,
                plan.skipped_times[0] if plan.skipped_times else None,
                count=plan.skipped,
            )
        totals["fired"] += len(sent)

        return self._release(job, plan, sent, failed_at)

    @staticmethod
    def _release(
        job: Job, plan: FirePlan, sent: Sequence[Fire], failed_at: datetime | None = None
    ) -> JobRelease:
        """The write-back of a job whose ``sent`` fires went out (until one failed at ``failed_at``)."""
        next_run_time, status = plan.next_run_time, plan.status
        if failed_at is not None:
            # Keep the unsent fire due; the misfire rules decide on the retry.
            next_run_time, status = failed_at, job.status
        return JobRelease(
            job_id=job.id,
            revision=job.revision,
            next_run_time=next_run_time,
            status=status,
            last_run_time=sent[-1].scheduled_at if sent else job.last_run_time,
            fired=tuple(fire.scheduled_at for fire in sent),
            missed=plan.missed,
            skipped=plan.skipped,
            task_ids=tuple(fire.task_id for fire in sent),
        )

    def _broken_job(self, job: Job, now: datetime, exc: Exception) -> JobRelease:
        error = "".join(traceback.format_exception_only(exc)).strip()
        logger.error("job cannot be planned and stops firing job=%s error=%s", job.id, error)
        self._emit(EventKind.JOB_FAILED, now, job.id, job.next_run_time, error=error)
        return JobRelease(
            job_id=job.id,
            revision=job.revision,
            next_run_time=None,
            status=JobStatus.FAILED,
            last_run_time=job.last_run_time,
            error=error,
        )

    def _sleep_until_next(self, now: datetime) -> float:
        next_run = self.store.next_run_time()
        if next_run is None:
            return self.max_sleep
        return min(max((next_run - self.lookahead - now).total_seconds(), 0.0), self.max_sleep)

    def _emit(
        self,
        kind: EventKind,
        now: datetime,
        job_id: str,
        scheduled_at: datetime | None,
        **data: object,
    ) -> None:
        if self.events.has_listeners:
            self.events.emit(Event(kind, now, job_id, scheduled_at, dict(data)))
