"""The engine: one ``tick(now)`` claims what is due, plans, dispatches and advances jobs.

It is the only place where the rules meet a store and a dispatcher, and it never reads the
clock: callers pass ``now``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from beatx.calendar_book import CalendarBook
from beatx.clock import Clock
from beatx.dispatch.base import Dispatcher, MessageRenderer, Revoker, is_transient
from beatx.engine.fire_log import SentSummary
from beatx.engine.overlap import LEDGER_READ, in_flight
from beatx.engine.rules import FirePlan, plan_fires
from beatx.errors import ConfigurationError, LeaseLostError, StoreError
from beatx.events import Event, EventBus, EventKind
from beatx.jobs import Fire, Job, JobStatus, Overlap
from beatx.stores.base import JobRelease, JobStore, QueuedMessage

__all__ = ["Engine", "TickResult", "atomic_fire_possible"]

logger = logging.getLogger("beatx.engine")

#: While a tick with a lookahead waits for its next fires, it writes back what it has sent and
#: claims the next window this many jobs at a time, and only while at least ``IDLE_WORK_MIN``
#: is left before the next fire, so the work never makes a fire late by more than one piece.
IDLE_PIECE = 16
IDLE_WORK_MIN = timedelta(milliseconds=1)
#: How often a tick looks again at jobs held back by runs in flight (a run's end is not a
#: change notification: the tick polls).
WAIT_POLL = 0.1
#: The longest a fire waits for a run in flight before it is skipped (``max_instances``).
MAX_WAIT = timedelta(seconds=5)

Planned = tuple[Job, FirePlan, list[Fire]]


@dataclass(slots=True)
class _NextWindow:
    """The jobs of the next lookahead window (due by ``horizon``), claimed while the current
    window waited for its fires; the next tick sends them."""

    horizon: datetime
    #: The lease token the window was claimed under; a window of another term is dropped.
    owner: str | None
    jobs: list[Job] = field(default_factory=list)
    complete: bool = False


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
    :param catch_up_window: seconds back from ``now`` within which every fire runs on its own,
        whatever ``coalesce`` says (see :func:`~beatx.engine.rules.plan_fires`); a beat sets it
        to its lease timeout plus a claim's lifetime, so a failover is not taken for an outage.
    :param outbox: the atomic fire. The dispatcher, when it can build messages that ``store``
        pushes in the same step as their fires' write-back (a Redis broker on the store's
        server: :func:`atomic_fire_possible`). A fire then goes out exactly when its job is
        written back, both or neither, fenced by the lease: a beat killed or frozen at any
        instant has sent each fire once. Fires it cannot build go through ``dispatcher``.
    :param log_each_fire: log each fire sent at INFO (``fire dispatched job=...``); otherwise
        at DEBUG, and each group of fires sent together is one INFO line
        (``fires dispatched count=...``, :mod:`beatx.engine.fire_log`).
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
        catch_up_window: float = 0.0,
        outbox: MessageRenderer | None = None,
        log_each_fire: bool = False,
    ) -> None:
        if lookahead < 0 or (lookahead > 0 and wait_until is None):
            raise ConfigurationError("lookahead must be >= 0 seconds, and a lookahead needs wait_until")
        self.lookahead = timedelta(seconds=lookahead)
        self.wait_until = wait_until
        self.store = store
        self.guard = guard
        self.clock = clock
        self.dispatcher = dispatcher
        self.outbox = outbox
        #: The level of the line logged per fire sent; INFO has one line per group instead.
        self.fire_log_level = logging.INFO if log_each_fire else logging.DEBUG
        #: The fires of the group being sent, for its INFO line (None: INFO is off).
        self._sent: SentSummary | None = None
        self.owner = owner
        self.batch_size = batch_size
        self.claim_ttl = claim_ttl
        self.max_sleep = max_sleep
        self.retry_delay = retry_delay
        self.max_concurrent_jobs = max_concurrent_jobs
        self.events = events or EventBus()
        self.catch_up_window = timedelta(seconds=catch_up_window)
        self._next_window: _NextWindow | None = None
        #: The earliest next run (or claim deadline) the last store read gave: when it has
        #: come, a tick claims at once instead of reading it again (see :meth:`_idle_sleep`).
        self._next_run_seen: datetime | None = None
        #: Jobs whose fires wait for a run in flight to end (``max_instances``), held under
        #: their claim: job id -> (job, when the wait gives up and skips).
        self._waiting: dict[str, tuple[Job, datetime]] = {}
        #: How long a fire held back by runs in flight waits before it is skipped: most of a
        #: claim's lifetime (the job is written back before its claim could expire), at most
        #: :data:`MAX_WAIT`.
        self.max_wait = min(timedelta(seconds=claim_ttl * 0.6), MAX_WAIT)
        #: Write-backs that failed with a store error (not a lost lease): the fires went out,
        #: so they are written back before anything new is claimed, never sent again.
        self._unreleased: list[JobRelease] = []
        #: The store's exclusion calendars, read again when they change: a job with
        #: ``exclude`` is planned by its trigger with them applied.
        self.calendars = CalendarBook(store)

    def tick(self, now: datetime) -> TickResult:
        """Claim the jobs due at ``now``, send their fires and advance them.

        A job that cannot be planned (its trigger raises) is marked FAILED with the error and
        stops firing; the others go on. A fire the dispatcher could not send leaves its job
        due, to be tried again after ``retry_delay``.

        With a ``lookahead``, what is already due is claimed and sent first; then the jobs due
        within the lookahead are claimed, planned, and sent as each comes due. While the tick
        waits for them it writes back what it has sent and claims the jobs of the window
        after this one (:data:`IDLE_PIECE` at a time), which the next tick sends, so a steady
        stream of fires never waits for a claim. :meth:`close` gives those jobs back.

        :raises LeaseLostError: if ``owner`` is set and no longer leads. Nothing more is sent;
            what this tick sent and had not written back yet stays claimed until the claims
            expire, and the new leader re-plans those jobs (their fires keep their task ids).
        :raises StoreError: if the store fails. A write-back that failed is kept and retried
            first by the next tick, before any claim: its fires are not sent again.
        """
        self._retry_unreleased()
        idle = self._idle_sleep(now)
        if idle is not None:
            return TickResult(sleep=idle)
        result = self._due_now_and_ahead(now)
        if self._waiting and result.sleep > WAIT_POLL:
            # Fires held back by runs in flight: look again soon (a run's end wakes nobody).
            return replace(result, sleep=WAIT_POLL)
        return result

    def _idle_sleep(self, now: datetime) -> float | None:
        """The sleep of a tick with nothing to do, found in one store read (the earliest next
        run or claim deadline, which an idle tick reads anyway to know how long to sleep);
        None when a job is due by the lookahead horizon or this engine holds jobs in memory.
        Most ticks are idle: they cost this one read instead of a claim attempt per part."""
        if self._waiting or (self._next_window is not None and self._next_window.jobs):
            return None
        seen = self._next_run_seen
        if seen is not None and seen <= now + self.lookahead:
            return None  # due by the last read (the beat woke for it): no read to spare
        next_run = self.store.next_run_time()
        if next_run is not None and next_run <= now + self.lookahead:
            return None
        return self._sleep_until(next_run, now)

    def _due_now_and_ahead(self, now: datetime) -> TickResult:
        try:
            due_now = self._tick(now, now)
            if not self.lookahead or due_now.claimed >= self.batch_size or due_now.dispatch_errors:
                return due_now
            ahead = self._tick(now, now + self.lookahead, ahead=True)
        except LeaseLostError:
            self.discard()
            raise
        except BaseException:
            # Jobs claimed for the next window stay claimed until their claim deadline; a
            # write-back that failed stays kept for the next tick.
            self._next_window = None
            raise
        return TickResult(
            sleep=ahead.sleep,
            claimed=due_now.claimed + ahead.claimed,
            fired=due_now.fired + ahead.fired,
            missed=due_now.missed + ahead.missed,
            skipped=due_now.skipped + ahead.skipped,
            dispatch_errors=ahead.dispatch_errors,
        )

    def discard(self) -> None:
        """Forget every claim this engine holds in memory (the next lookahead window and
        write-backs it could not make) without writing anything: called when leadership is
        lost, so a beat that leads again later never sends a window planned in an earlier
        term. Those claims expire in the store and the leader re-plans them."""
        self._next_window = None
        self._unreleased = []
        self._waiting = {}

    def _retry_unreleased(self) -> None:
        if not self._unreleased:
            return
        pending, self._unreleased = self._unreleased, []
        self._release_or_keep(pending)
        logger.info("write-back of %d job(s) retried and done", len(pending))

    def _release_or_keep(self, releases: list[JobRelease]) -> None:
        """Write ``releases`` back; on a store error keep them for the next tick (the lease
        lost: drop them, the claims expire) and raise."""
        if not releases:
            return
        try:
            self.store.release_jobs(releases, owner=self.owner)
        except LeaseLostError:
            raise
        except StoreError:
            self._unreleased = list(releases)
            raise

    def close(self) -> None:
        """Give back, unchanged, the jobs claimed for the next lookahead window and those held
        back by runs in flight (a clean stop)."""
        window, self._next_window = self._next_window, None
        held = [job for job, _ in self._waiting.values()]
        self._waiting = {}
        if window is not None and window.jobs and window.owner == self.owner:
            held += window.jobs
        if not held:
            return
        try:
            self.store.release_jobs([JobRelease.unchanged(job) for job in held], owner=self.owner)
        except StoreError as exc:
            logger.warning(
                "jobs claimed for the next window stay claimed until their claim deadline: %s", exc
            )

    def _tick(self, now: datetime, horizon: datetime, *, ahead: bool = False) -> TickResult:
        """One claim of the jobs due by ``horizon`` (for the ``ahead`` part of a lookahead
        tick, with those claimed earlier for this window), planned as of ``now`` (or their own
        due time, when later), sent in due order and written back."""
        # The due-now part of a lookahead tick sleeps as its ahead part says: it reads no
        # next run time of its own (unless it stops the tick: a full batch, an error).
        reads_next_run = ahead or not self.lookahead
        carried = self._take_next_window() if ahead else self._take_waiting()
        jobs = self._claim(horizon, carried)
        if not jobs:
            return TickResult(sleep=self._sleep_until_next(now) if reads_next_run else 0.0)

        free_slots: int | None = None
        if self.max_concurrent_jobs is not None:
            free_slots = max(self.max_concurrent_jobs - self.store.running_count(now), 0)

        totals = {"fired": 0, "missed": 0, "skipped": 0, "errors": 0}
        releases: list[JobRelease] = []
        waiting: list[Planned] = []
        self.calendars.new_tick()
        for job in jobs:
            # A job claimed ahead (lookahead) is planned as of its own due time.
            due = job.next_run_time
            at = due if due is not None and due > now else now
            waited = self._waiting.pop(job.id, None)
            give_up = waited[1] if waited is not None else now + self.max_wait
            try:
                # The overlap policies that hold or revoke fires also count the fires sent
                # and not started yet (the run ledger); ``skip`` reads nothing more.
                running = self._in_flight(job, now) if job.overlap.tracks_sent else ()
                plan = plan_fires(
                    self.calendars.plan_view(job),
                    at,
                    free_slots=free_slots,
                    catch_up_window=self.catch_up_window,
                    wait=now < give_up,
                    # The fires due when the wait began (planned as of then) are those that waited.
                    held_since=None if waited is None else max(give_up - self.max_wait, due or now),
                )
            except Exception as exc:
                releases.append(self._broken_job(job, now, exc))
                continue
            if plan.waiting:
                self._waiting[job.id] = (job, give_up)
                continue
            if plan.cancel_running:
                self._revoke(job, running, now)
            if free_slots is not None:
                free_slots -= len(plan.fire_times)
            if plan.fire_times:
                waiting.append((job, plan, _fires_of(job, plan)))
            else:
                releases.append(self._settle(job, plan, (), (), now, now, totals))

        if waiting:
            waiting.sort(key=lambda entry: entry[2][0].due)
            next_horizon = horizon + self.lookahead if ahead else None
            self._send_in_due_order(waiting, now, releases, totals, next_horizon)
        else:
            self._check_lease()
        self._release_or_keep(releases)
        if totals["errors"]:
            sleep = self.retry_delay
        elif len(jobs) >= self.batch_size:
            # A full batch: more may be due, claimed ahead by the store already (the Redis
            # store's claim ahead takes them out of the schedule, so a read of the next run
            # time would not see them). The next tick claims without reading first.
            self._next_run_seen = now
            sleep = 0.0
        elif not reads_next_run or (self._next_window is not None and self._next_window.jobs):
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

    def _claim(self, horizon: datetime, carried: list[Job]) -> list[Job]:
        """The jobs due by ``horizon``: ``carried`` (claimed earlier) and the rest."""
        limit = self.batch_size - len(carried)
        claimed = (
            self.store.acquire_due_jobs(horizon, limit=limit, owner=self.owner, claim_ttl=self.claim_ttl)
            if limit > 0
            else []
        )
        if not carried:
            return claimed
        # A job claimed again (the claim of the earlier piece expired) is taken as read now.
        fresh = {job.id for job in claimed}
        return [job for job in carried if job.id not in fresh] + claimed

    def _take_waiting(self) -> list[Job]:
        """The jobs held back by runs in flight, with their runs counted again (a job
        removed meanwhile is dropped: its claim went with it)."""
        if not self._waiting:
            return []
        carried = []
        for job_id, (job, give_up) in list(self._waiting.items()):
            fresh = self.store.get_job(job_id)
            if fresh is None:
                del self._waiting[job_id]
                continue
            job.running, job.last_finished_at = fresh.running, fresh.last_finished_at
            self._waiting[job_id] = (job, give_up)
            carried.append(job)
        return carried

    def _in_flight(self, job: Job, now: datetime) -> tuple[str, ...]:
        """Count the fires of ``job`` sent and not started yet into ``job.running`` (which
        the store counted: runs started); returns the task ids of its runs in flight."""
        found = in_flight(job.running, self.store.job_runs(job.id, limit=LEDGER_READ), now)
        job.running = found.count
        return found.task_ids

    def _revoke(self, job: Job, task_ids: Sequence[str], now: datetime) -> None:
        """Revoke the runs of ``job`` in flight before its new fire goes (``overlap=
        "cancel_other"`` / ``"terminate_other"``). Best effort: a dispatcher that cannot
        revoke, or a broker that refuses, is logged and the fire goes anyway."""
        terminate = job.overlap is Overlap.TERMINATE_OTHER
        if not task_ids:
            return
        if not isinstance(self.dispatcher, Revoker):
            logger.warning(
                "overlap=%s: the dispatcher cannot revoke runs; job=%s task_ids=%s go on",
                job.overlap.value,
                job.id,
                ",".join(task_ids),
            )
            return
        self._check_lease()
        try:
            self.dispatcher.revoke(task_ids, terminate=terminate)
        except Exception:
            logger.exception("revoke failed job=%s task_ids=%s", job.id, ",".join(task_ids))
            return
        logger.warning(
            "runs in flight revoked for a new fire job=%s task_ids=%s terminate=%s",
            job.id,
            ",".join(task_ids),
            terminate,
        )
        self._emit(
            EventKind.JOB_REVOKED,
            now,
            job.id,
            job.next_run_time,
            task_ids=list(task_ids),
            terminate=terminate,
        )

    def _take_next_window(self) -> list[Job]:
        window, self._next_window = self._next_window, None
        if window is None or window.owner != self.owner:
            return []
        return window.jobs

    def _send_in_due_order(
        self,
        waiting: list[Planned],
        now: datetime,
        releases: list[JobRelease],
        totals: dict[str, int],
        next_horizon: datetime | None,
    ) -> None:
        """Send the fires of ``waiting`` (in order of their first fire), each group when it
        comes due, and add the jobs' write-backs to ``releases``."""
        total = sum(len(job_fires) for _, _, job_fires in waiting)
        start = 0
        while start < len(waiting):
            due = max(waiting[start][2][0].due, now)
            if due > now:
                self._wait_for(due, releases, next_horizon)
                # Whatever came due while this beat was busy goes in the same group.
                due = max(due, self._sent_at(due))
            end = start + 1
            while end < len(waiting) and waiting[end][2][0].due <= due:
                end += 1
            group = waiting[start:end]
            start = end
            if self.outbox is not None:
                group = self._publish_with_write_back(group, now, due, releases, totals)
                if not group:
                    continue
            self._start_summary()
            outcomes = self._dispatch([fire for _, _, job_fires in group for fire in job_fires])
            unsent = sum(1 for outcome in outcomes if isinstance(outcome, LeaseLostError))
            if unsent:
                unsent += sum(len(job_fires) for _, _, job_fires in waiting[end:])
                raise LeaseLostError(
                    f"beat {self.owner!r} lost its lease while sending; {unsent} of {total} fires not sent"
                )
            sent_at = self._sent_at(due)
            cursor = 0
            for job, plan, job_fires in group:
                count = len(job_fires)
                results = outcomes[cursor : cursor + count]
                cursor += count
                releases.append(self._settle(job, plan, job_fires, results, now, sent_at, totals))
            self._log_summary(sent_at)

    def _publish_with_write_back(
        self,
        group: list[Planned],
        now: datetime,
        due: datetime,
        releases: list[JobRelease],
        totals: dict[str, int],
    ) -> list[Planned]:
        """The atomic fire: write back the jobs of ``group`` whose every message the outbox
        built, with those messages, so the store pushes them in the same step (the
        write-backs pending in ``releases`` go first, in the same call). A job with a fire
        the outbox could not build (the broker down, a fire that can never be sent) sends
        none of its fires: it is settled with that error, as a failed dispatch would be.
        Returns the jobs with a fire only ``send_task`` can send, for the dispatcher.

        A store error leaves the outcome unknown: the write-backs are kept and retried as
        they are, and a retry of one that was applied is ignored by the store (its claim was
        written back already), so its messages are never pushed twice."""
        assert self.outbox is not None
        messages = self.outbox.render([fire for _, _, job_fires in group for fire in job_fires])
        rest: list[Planned] = []
        ready: list[tuple[Planned, tuple[QueuedMessage, ...]]] = []
        cursor = 0
        for job, plan, job_fires in group:
            count = len(job_fires)
            mine = messages[cursor : cursor + count]
            cursor += count
            error = next((m for m in mine if isinstance(m, BaseException)), None)
            if error is not None:
                releases.append(self._settle(job, plan, job_fires, [error] * count, now, now, totals))
            elif all(isinstance(message, QueuedMessage) for message in mine):
                ready.append(((job, plan, job_fires), tuple(mine)))  # type: ignore[arg-type]
            else:
                rest.append((job, plan, job_fires))
        if not ready:
            return rest
        writes = [
            self._release(job, plan, job_fires, messages=mine) for (job, plan, job_fires), mine in ready
        ]
        pending = [*releases, *writes]
        releases.clear()
        self._check_lease()
        self._release_or_keep(pending)
        sent_at = self._sent_at(due)
        self._start_summary()
        for (job, plan, job_fires), _ in ready:  # their write-backs went out above
            self._report(job, plan, job_fires, [None] * len(job_fires), now, sent_at, totals)
        self._log_summary(sent_at)
        return rest

    def _wait_for(self, due: datetime, releases: list[JobRelease], next_horizon: datetime | None) -> None:
        """Wait until ``due``, first doing the idle work that fits before it: writing back
        what was sent, then claiming the window that ends at ``next_horizon``."""
        assert self.wait_until is not None
        while self.clock is not None and due - self.clock.now() >= IDLE_WORK_MIN:
            if len(releases) >= IDLE_PIECE:
                done = list(releases)
                releases.clear()
                self._release_or_keep(done)
            elif not self._claim_next_window(next_horizon):
                break
        self.wait_until(due)

    def _claim_next_window(self, horizon: datetime | None) -> bool:
        """Claim one piece of the next lookahead window; False when nothing is left to claim."""
        if horizon is None:
            return False
        if self._next_window is None:
            self._next_window = _NextWindow(horizon, self.owner)
        window = self._next_window
        if window.complete:
            return False
        limit = min(IDLE_PIECE, self.batch_size - len(window.jobs))
        jobs = self.store.acquire_due_jobs(
            window.horizon, limit=limit, owner=self.owner, claim_ttl=self.claim_ttl
        )
        window.jobs += jobs
        window.complete = len(jobs) < limit or len(window.jobs) >= self.batch_size
        return True

    def _sent_at(self, fallback: datetime) -> datetime:
        """When fires handed over just now were sent: the clock's time, or ``fallback``."""
        return self.clock.now() if self.clock is not None else fallback

    def _check_lease(self) -> None:
        if self.guard is not None and not self.guard():
            raise LeaseLostError(f"beat {self.owner!r} lost its lease during the tick")

    def _dispatch(self, fires: Sequence[Fire]) -> Sequence[BaseException | None]:
        try:
            outcomes = self.dispatcher.dispatch(fires, guard=self.guard)
        except Exception as exc:
            logger.exception("dispatcher failed for a batch of %d fires", len(fires))
            return [exc] * len(fires)
        if len(outcomes) != len(fires):
            error = RuntimeError(f"dispatcher returned {len(outcomes)} results for {len(fires)} fires")
            return [error] * len(fires)
        return outcomes

    @property
    def _reporting(self) -> bool:
        """Whether each fire is logged (:attr:`fire_log_level`) or announced (an event listener)."""
        return logger.isEnabledFor(self.fire_log_level) or self.events.has_listeners

    def _start_summary(self) -> None:
        """Start counting a group's fires for its INFO line (when INFO is on)."""
        self._sent = SentSummary() if logger.isEnabledFor(logging.INFO) else None

    def _log_summary(self, sent_at: datetime) -> None:
        """Log the INFO line of the group's fires sent at ``sent_at``, if any went out."""
        summary, self._sent = self._sent, None
        line = summary.line(sent_at) if summary is not None else None
        if line is not None:
            logger.info(line[0], *line[1])

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
        """Report what happened to ``job``'s fires (:meth:`_report`) and return the
        write-back that records it."""
        sent, failed_at, poison = self._report(job, plan, job_fires, results, now, sent_at, totals)
        if poison is not None:
            return self._broken_job(job, now, poison, sent=sent, plan=plan)
        return self._release(job, plan, sent, failed_at)

    def _report(
        self,
        job: Job,
        plan: FirePlan,
        job_fires: Sequence[Fire],
        results: Sequence[BaseException | None],
        now: datetime,
        sent_at: datetime,
        totals: dict[str, int],
    ) -> tuple[Sequence[Fire], datetime | None, str | None]:
        """Count, log and announce what happened to ``job``'s fires (``results``: one entry per
        fire, None when it went out). Returns the fires sent (up to the first that failed),
        the time of the one that failed for a while (the broker) and the error of one that can
        never be sent."""
        if (
            not plan.missed
            and not plan.skipped
            and not plan.not_caught_up
            and not any(results)
            and not self._reporting
        ):
            # The common case, without per-fire logging or events.
            totals["fired"] += len(job_fires)
            if self._sent is not None:
                self._sent.add(job.id, job_fires)
            return job_fires, None, None
        sent: list[Fire] = []
        failed_at: datetime | None = None
        poison: str | None = None
        log_fires = logger.isEnabledFor(self.fire_log_level)
        for fire, error in zip(job_fires, results, strict=True):
            if error is not None:
                if is_transient(error):
                    # The broker is down or slow (the dispatcher logged it once for the
                    # batch): the job stays due at this fire, retried after a back-off.
                    failed_at = fire.due
                    totals["errors"] += 1
                    logger.debug(
                        "fire not sent job=%s scheduled_at=%s error=%r", job.id, fire.scheduled_at, error
                    )
                else:
                    poison = "".join(traceback.format_exception_only(error)).strip()
                    logger.error(
                        "fire can never be sent, job marked failed until edited job=%s scheduled_at=%s error=%s",
                        job.id,
                        fire.scheduled_at.isoformat(),
                        poison,
                    )
                self._emit(EventKind.JOB_FAILED, now, job.id, fire.scheduled_at, error=repr(error))
                break
            sent.append(fire)
            # Lateness counts from when the fire was due: a jittered fire is not late by its delay.
            lateness = (sent_at - fire.due).total_seconds()
            if log_fires:
                logger.log(
                    self.fire_log_level,
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
            self._emit(
                EventKind.JOB_MISSED,
                now,
                job.id,
                job.next_run_time,
                count=plan.missed,
                reason="misfire_grace_time",
            )
        if plan.not_caught_up:
            totals["missed"] += plan.not_caught_up
            logger.warning(
                "fires not caught up job=%s count=%d (catchup=%s, catchup_window=%s, catchup_limit=%s)",
                job.id,
                plan.not_caught_up,
                job.catchup_policy.value,
                job.catchup_window,
                job.catchup_limit,
            )
            self._emit(
                EventKind.JOB_MISSED,
                now,
                job.id,
                job.next_run_time,
                count=plan.not_caught_up,
                reason="catchup",
            )
        if plan.caught_up or plan.coalesced:
            logger.info(
                "outage caught up job=%s catchup=%s run=%d coalesced=%d",
                job.id,
                job.catchup_policy.value,
                plan.caught_up,
                plan.coalesced,
            )
            self._emit(
                EventKind.JOB_CAUGHT_UP,
                now,
                job.id,
                job.next_run_time,
                count=plan.caught_up,
                coalesced=plan.coalesced,
                catchup=job.catchup_policy.value,
            )
        if plan.buffered:
            logger.info(
                "fires buffered job=%s count=%d (overlap=%s, running=%d, next=%s)",
                job.id,
                plan.buffered,
                job.overlap.value,
                job.running,
                plan.next_run_time.isoformat() if plan.next_run_time else None,
            )
            self._emit(
                EventKind.JOB_BUFFERED,
                now,
                job.id,
                plan.next_run_time,
                count=plan.buffered,
                overlap=job.overlap.value,
                running=job.running,
            )
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
        if self._sent is not None:
            self._sent.add(job.id, sent)
        return sent, failed_at, poison

    @staticmethod
    def _release(
        job: Job,
        plan: FirePlan,
        sent: Sequence[Fire],
        failed_at: datetime | None = None,
        messages: tuple[QueuedMessage, ...] = (),
    ) -> JobRelease:
        """The write-back of a job whose ``sent`` fires went out (until one failed at
        ``failed_at``); with ``messages``, the store pushes them with it (the atomic fire)."""
        next_run_time, status = plan.next_run_time, plan.status
        if failed_at is not None:
            # Keep the unsent fire due; the misfire rules decide on the retry.
            next_run_time, status = failed_at, job.status
        return JobRelease(
            job_id=job.id,
            claim=job.claim,
            next_run_time=next_run_time,
            status=status,
            last_run_time=sent[-1].scheduled_at if sent else job.last_run_time,
            fired=tuple(fire.scheduled_at for fire in sent),
            missed=plan.missed + plan.not_caught_up,
            skipped=plan.skipped,
            task_ids=tuple(fire.task_id for fire in sent),
            # The ledger's caught_up record: only once the outage's fire went out.
            caught_up=plan.caught_up if sent else 0,
            coalesced=plan.coalesced if sent else 0,
            messages=messages,
        )

    def _broken_job(
        self,
        job: Job,
        now: datetime,
        error: str | Exception,
        *,
        sent: Sequence[Fire] = (),
        plan: FirePlan | None = None,
    ) -> JobRelease:
        """The write-back of a job that cannot go on (its trigger raised, or one of its fires
        can never be sent): FAILED with the error and no next run, until someone edits it."""
        if isinstance(error, Exception):
            error = "".join(traceback.format_exception_only(error)).strip()
            logger.error("job cannot be planned and stops firing job=%s error=%s", job.id, error)
            self._emit(EventKind.JOB_FAILED, now, job.id, job.next_run_time, error=error)
        return JobRelease(
            job_id=job.id,
            claim=job.claim,
            next_run_time=None,
            status=JobStatus.FAILED,
            last_run_time=sent[-1].scheduled_at if sent else job.last_run_time,
            fired=tuple(fire.scheduled_at for fire in sent),
            missed=plan.missed + plan.not_caught_up if plan is not None else 0,
            skipped=plan.skipped if plan is not None else 0,
            task_ids=tuple(fire.task_id for fire in sent),
            error=error,
        )

    def _sleep_until_next(self, now: datetime) -> float:
        return self._sleep_until(self.store.next_run_time(), now)

    def _sleep_until(self, next_run: datetime | None, now: datetime) -> float:
        self._next_run_seen = next_run
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


def _fires_of(job: Job, plan: FirePlan) -> list[Fire]:
    """The fires of ``plan``, with their jittered due times when the job has any."""
    if not plan.due_times:
        return [Fire(job, at) for at in plan.fire_times]
    return [Fire(job, at, due) for at, due in zip(plan.fire_times, plan.due_times, strict=True)]


def atomic_fire_possible(store: JobStore, dispatcher: Dispatcher) -> bool:
    """Whether ``store`` can push ``dispatcher``'s messages in its write-back (the atomic
    fire, :class:`Engine`'s ``outbox``): a Redis store whose server is the Redis broker's."""
    can_publish = getattr(store, "can_publish", None)
    if can_publish is None or not isinstance(dispatcher, MessageRenderer):
        return False
    server = dispatcher.broker_server()
    return server is not None and bool(can_publish(server))
